"""SecAgg+ with a ~log n neighbourhood (the setting `privrec bench aggregation` runs at 10,000 devices):
per-client work bounded by k, exact sums under any dropout the threshold tolerates, and a client that
claims or reveals a share of a non-neighbour is refused with the server's state untouched."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privrec.sdk.secagg import (
    EncryptedShare,
    RevealedShare,
    SecAggMessageError,
    SecAggServer,
    ShareKeys,
    Stage,
    UnmaskingResponse,
)

from .roundkit import Recorded, expected_sum, make_config, run_round

N, D = 24, 8
K = math.ceil(math.log2(N))  # 5: the bench's neighbourhood size rule, k ≈ log2 n
T = K // 2 + 2  # 4 > (k + 1) / 2: a majority of every closed neighbourhood


@pytest.fixture(scope="module")
def rec() -> Recorded:
    return run_round(make_config(N, D, T, k=K))


def test_per_client_work_is_bounded_by_the_neighbourhood(rec: Recorded) -> None:
    graph = rec.config.graph
    assert all(len(nbrs) in (K, K + 1) for nbrs in graph.values())  # odd k on even n: exactly k
    for u, msg in rec.sent["ShareKeys"].items():
        assert sorted(s.receiver for s in msg.shares) == sorted(graph[u] | {u})  # k + 1 sealed shares, not n
    for u, msg in rec.sent["UnmaskingResponse"].items():
        assert {r.owner for r in msg.self_mask_shares} == graph[u] | {u}
    np.testing.assert_array_equal(rec.server.result(), expected_sum(rec))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stage=st.sampled_from(Stage.RUN),
    dropped=st.sets(st.integers(1, N), max_size=K + 1 - T),
)
def test_any_dropout_the_threshold_tolerates_keeps_the_sum_exact(stage: str, dropped: set[int]) -> None:
    # At most k + 1 - t clients drop in all, so every closed neighbourhood keeps >= t members.
    rec = run_round(make_config(N, D, T, k=K), silent={stage: dropped})
    want = set(range(1, N + 1)) - (dropped if stage != Stage.UNMASKING else set())
    assert set(rec.server.survivors) == want
    np.testing.assert_array_equal(rec.server.result(), expected_sum(rec))


def _outsider(rec: Recorded, u: int) -> int:
    return min(set(rec.config.participants) - rec.config.graph[u] - {u})


def test_a_share_addressed_to_a_non_neighbour_is_refused(rec: Recorded) -> None:
    u = 1
    stranger = _outsider(rec, u)
    msg: ShareKeys = rec.sent["ShareKeys"][u]
    server = SecAggServer.from_dict(json.loads(json.dumps(rec.server_snapshots[Stage.SHARE_KEYS])))
    before = server.to_dict()
    swapped = dataclasses.replace(msg.shares[-1], receiver=stranger)
    extra = EncryptedShare(sender=u, receiver=stranger, nonce=msg.shares[0].nonce, ciphertext=msg.shares[0].ciphertext)
    expected = sorted(rec.config.graph[u] | {u})
    for shares in ((*msg.shares[:-1], swapped), (*msg.shares, extra)):
        with pytest.raises(SecAggMessageError) as info:
            server.receive(dataclasses.replace(msg, shares=shares))
        assert f"ShareKeys from client {u} must hold one share for each of {expected}." in str(info.value)
        assert str(stranger) in str(info.value).split("Found", 1)[1]  # names what was received
        assert server.to_dict() == before  # nothing stored


@pytest.mark.parametrize("field", ["self_mask_shares", "key_shares"])
def test_revealing_a_share_of_a_non_neighbour_is_refused(rec: Recorded, field: str) -> None:
    u = 1
    stranger = _outsider(rec, u)
    good: UnmaskingResponse = rec.sent["UnmaskingResponse"][u]
    server = SecAggServer.from_dict(json.loads(json.dumps(rec.server_snapshots[Stage.UNMASKING])))
    before = server.to_dict()
    claimed = RevealedShare(owner=stranger, share=good.self_mask_shares[0].share)
    bad = dataclasses.replace(good, **{field: (*getattr(good, field), claimed)})
    with pytest.raises(SecAggMessageError, match=rf"`{field}` must hold one share for each of") as info:
        server.receive(bad)
    assert f"{stranger}]" in str(info.value)  # the received owners, the stranger among them
    assert server.to_dict() == before
    server.receive(good)  # the honest response still goes through
