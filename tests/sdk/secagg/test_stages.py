"""Stage constants: distinct, in the paper's order, Round 3 documented but not run."""

from __future__ import annotations

from privrec.sdk.secagg import ClientStage, ServerStage, Stage


def test_protocol_stages() -> None:
    assert Stage.RUN == ("advertise_keys", "share_keys", "masked_input_collection", "unmasking")
    assert Stage.CONSISTENCY_CHECK not in Stage.RUN
    assert len(set(ServerStage.ALL)) == len(ServerStage.ALL) == 6
    assert len(set(ClientStage.ALL)) == len(ClientStage.ALL) == 6
    assert ServerStage.ALL[:4] == Stage.RUN
