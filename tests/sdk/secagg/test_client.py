"""SecAggClient: every transition of its state machine, each invalid one raising a clear error."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from privrec.sdk.secagg import (
    ClientStage,
    EncryptedShare,
    KeyRoster,
    PublicKeys,
    SecAggAbortedError,
    SecAggClient,
    SecAggIntegrityError,
    SecAggMessageError,
    SecAggStageError,
    ShareRouting,
    UnmaskingRequest,
    crypto,
)

from .roundkit import Recorded, make_config, run_round, wire

N, D, T = 5, 12, 3


@pytest.fixture(scope="module")
def rec() -> Recorded:
    return run_round(make_config(N, D, T))


def _requests(rec: Recorded, u: int) -> dict[str, Any]:
    """The server's requests to client u, rebuilt from the server snapshots."""
    from privrec.sdk.secagg import SecAggServer, Stage

    return {
        "roster": SecAggServer.from_dict(rec.server_snapshots[Stage.SHARE_KEYS]).key_roster(u),
        "routing": SecAggServer.from_dict(rec.server_snapshots[Stage.MASKED_INPUT_COLLECTION]).share_routing(u),
        "request": SecAggServer.from_dict(rec.server_snapshots[Stage.UNMASKING]).unmasking_request(u),
    }


def _client_at(rec: Recorded, stage: str, u: int = 1) -> SecAggClient:
    return SecAggClient.from_dict(json.loads(json.dumps(rec.client_snapshots[stage][u])))


OPERATIONS: dict[str, Callable[[SecAggClient, dict[str, Any], np.ndarray], object]] = {
    "advertise_keys": lambda c, r, x: c.advertise_keys(),
    "share_keys": lambda c, r, x: c.share_keys(r["roster"]),
    "mask_input": lambda c, r, x: c.mask_input(r["routing"], x),
    "unmask": lambda c, r, x: c.unmask(r["request"]),
}
VALID = {
    ClientStage.READY: "advertise_keys",
    ClientStage.KEYS_ADVERTISED: "share_keys",
    ClientStage.KEYS_SHARED: "mask_input",
    ClientStage.INPUT_MASKED: "unmask",
}
NEXT = {
    ClientStage.READY: ClientStage.KEYS_ADVERTISED,
    ClientStage.KEYS_ADVERTISED: ClientStage.KEYS_SHARED,
    ClientStage.KEYS_SHARED: ClientStage.INPUT_MASKED,
    ClientStage.INPUT_MASKED: ClientStage.COMPLETED,
}


@pytest.mark.parametrize("stage", [*VALID, ClientStage.COMPLETED, ClientStage.ABORTED])
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_transition_table(rec: Recorded, stage: str, operation: str) -> None:
    """Stages × operations: exactly the diagonal succeeds (and advances); everything else raises."""
    if stage == ClientStage.ABORTED:
        client = _client_at(rec, ClientStage.KEYS_ADVERTISED)
        client.state.stage, client.state.abort_reason = ClientStage.ABORTED, "test"
    else:
        client = _client_at(rec, stage)
    requests = _requests(rec, 1)
    if VALID.get(stage) == operation:
        OPERATIONS[operation](client, requests, rec.inputs[1])
        assert client.stage == NEXT[stage]
    else:
        with pytest.raises(SecAggStageError, match=f"`{operation}` is only valid in client stage"):
            OPERATIONS[operation](client, requests, rec.inputs[1])
        assert client.stage == stage


def test_resumed_client_produces_the_same_masked_input(rec: Recorded) -> None:
    """A client restarted from its saved state masks exactly as the original did (same keys and seed)."""
    client = _client_at(rec, ClientStage.KEYS_SHARED, u=2)
    again = client.mask_input(_requests(rec, 2)["routing"], rec.inputs[2])
    assert again == rec.sent["MaskedInput"][2]


def test_secrets_are_forgotten_after_the_round(rec: Recorded) -> None:
    state = rec.clients[1].state
    assert state.stage == ClientStage.COMPLETED
    assert state.masking_private == state.encryption_private == state.self_mask_seed == b""
    assert state.dealers == ()


def _roster(rec: Recorded, **changes: Any) -> KeyRoster:
    return dataclasses.replace(_requests(rec, 1)["roster"], **changes)


def test_share_keys_refuses_bad_rosters(rec: Recorded) -> None:
    roster = _requests(rec, 1)["roster"]
    cases: list[tuple[Any, type[Exception], str]] = [
        (dataclasses.replace(roster, round_id="other"), SecAggMessageError, "KeyRoster is for round 'other'"),
        (dataclasses.replace(roster, recipient=2), SecAggMessageError, "addressed to client 2; this is client 1"),
        (dataclasses.replace(roster, keys=(*roster.keys, roster.keys[1])), SecAggMessageError, "lists client 2 twice"),
        (
            dataclasses.replace(roster, keys=roster.keys[1:]),
            SecAggMessageError,
            "must list client 1's own public keys unchanged",
        ),
        (
            dataclasses.replace(
                roster, keys=(PublicKeys(1, roster.keys[0].encryption, roster.keys[1].masking), *roster.keys[1:])
            ),
            SecAggMessageError,
            "own public keys unchanged",
        ),
        (
            dataclasses.replace(
                roster,
                keys=(*roster.keys, PublicKeys(99, bytes(32), bytes(32))),
            ),
            SecAggMessageError,
            "client 99, which is not a neighbour of client 1",
        ),
        (
            dataclasses.replace(roster, keys=(*roster.keys[:-1], dataclasses.replace(roster.keys[1], client_id=N))),
            SecAggMessageError,
            "public keys must all be different",
        ),
        (_requests(rec, 1)["routing"], TypeError, "`share_keys` takes a KeyRoster. Found ShareRouting."),
    ]
    for bad, error, message in cases:
        client = _client_at(rec, ClientStage.KEYS_ADVERTISED)
        with pytest.raises(error, match=message):
            client.share_keys(bad)
        assert client.stage == ClientStage.KEYS_ADVERTISED  # refused: state unchanged


def test_share_keys_aborts_below_threshold(rec: Recorded) -> None:
    client = _client_at(rec, ClientStage.KEYS_ADVERTISED)
    roster = _requests(rec, 1)["roster"]
    with pytest.raises(SecAggAbortedError, match="only 2 of its neighbourhood advertised keys; the threshold is 3"):
        client.share_keys(dataclasses.replace(roster, keys=roster.keys[:2]))
    assert client.stage == ClientStage.ABORTED
    assert "threshold is 3" in client.state.abort_reason


LOW_ORDER = [u.to_bytes(32, "little") for u in crypto.LOW_ORDER_POINTS]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("zero", "client 2's masking key is the zero point"),
        *((f"low_order_{i}", "client 2's masking key is (the zero point|a low-order point)") for i in range(5)),
        ("bit255", "client 2's masking key is not canonically encoded: bit 255 is set"),
        ("above_p", "client 2's masking key is not canonically encoded: u = p \\+ 3"),
        ("same_pair", "client 2's masking key equals client 2's encryption key; the public keys must all be different"),
        ("copied", "client 3's encryption key equals client 2's encryption key"),
    ],
)
def test_share_keys_refuses_bad_public_keys(rec: Recorded, case: str, message: str) -> None:
    """An honest client never uses a roster with a bad key (the server refuses them first, see
    test_server); if one arrives anyway it leaves the round naming the peer."""
    roster = _requests(rec, 1)["roster"]
    keys = {k.client_id: k for k in roster.keys}
    two, three = keys[2], keys[3]
    if case == "zero":
        two = dataclasses.replace(two, masking=bytes(32))
    elif case.startswith("low_order_"):
        two = dataclasses.replace(two, masking=LOW_ORDER[int(case[-1])])
    elif case == "bit255":
        two = dataclasses.replace(two, masking=two.masking[:31] + bytes([two.masking[31] | 0x80]))
    elif case == "above_p":
        two = dataclasses.replace(two, masking=(crypto.X25519_PRIME + 3).to_bytes(32, "little"))
    elif case == "same_pair":
        two = dataclasses.replace(two, masking=two.encryption)
    else:
        three = dataclasses.replace(three, encryption=two.encryption)
    keys[2], keys[3] = two, three
    client = _client_at(rec, ClientStage.KEYS_ADVERTISED)
    with pytest.raises(SecAggMessageError, match=message) as info:
        client.share_keys(dataclasses.replace(roster, keys=tuple(keys[v] for v in sorted(keys))))
    assert info.value.culprits == ((2, 3) if case == "copied" else (2,))
    assert client.stage == ClientStage.KEYS_ADVERTISED


def _tampered(share: EncryptedShare, what: str) -> EncryptedShare:
    """One byte of a sealed pair changed: its key commitment, its ciphertext body, its tag, or the nonce."""
    at = {"commitment": 0, "ciphertext": 40, "tag": 111, "seed_part": 150}.get(what)
    if at is None:
        return dataclasses.replace(share, nonce=bytes(12))
    c = share.ciphertext
    return dataclasses.replace(share, ciphertext=c[:at] + bytes([c[at] ^ 0x80]) + c[at + 1 :])


@pytest.mark.parametrize("what", ["commitment", "ciphertext", "tag", "seed_part", "nonce"])
def test_tampered_share_is_rejected_naming_its_dealer(rec: Recorded, what: str) -> None:
    routing: ShareRouting = _requests(rec, 1)["routing"]
    bad = dataclasses.replace(routing, shares=(routing.shares[0], _tampered(routing.shares[1], what), *routing.shares[2:]))
    client = _client_at(rec, ClientStage.KEYS_SHARED)
    with pytest.raises(SecAggIntegrityError, match=r"The sealed (key|seed) share from client 2 to client 1 is invalid") as info:
        client.mask_input(wire(bad), rec.inputs[1])
    assert info.value.culprits == (2,)
    assert client.stage == ClientStage.KEYS_SHARED


def test_share_rerouted_to_another_client_is_rejected(rec: Recorded) -> None:
    """A share client 3 sealed for client 2, relabelled for client 1: the keys and AD do not match."""
    share_for_2 = next(s for s in _requests(rec, 2)["routing"].shares if s.sender == 3)
    routing: ShareRouting = _requests(rec, 1)["routing"]
    forged = dataclasses.replace(share_for_2, receiver=1)
    bad = dataclasses.replace(routing, shares=tuple(forged if s.sender == 3 else s for s in routing.shares))
    with pytest.raises(SecAggIntegrityError, match="The sealed key share from client 3 to client 1 is invalid"):
        _client_at(rec, ClientStage.KEYS_SHARED).mask_input(bad, rec.inputs[1])


def test_own_share_must_come_back(rec: Recorded) -> None:
    routing: ShareRouting = _requests(rec, 1)["routing"]
    assert routing.shares[0].sender == 1  # a client holds (and is routed) a share of its own secrets
    client = _client_at(rec, ClientStage.KEYS_SHARED)
    with pytest.raises(SecAggMessageError, match=r"ShareRouting must hold client 1's own sealed shares\."):
        client.mask_input(dataclasses.replace(routing, shares=routing.shares[1:]), rec.inputs[1])
    assert client.stage == ClientStage.KEYS_SHARED


def test_mask_input_refuses_bad_input(rec: Recorded) -> None:
    routing: ShareRouting = _requests(rec, 1)["routing"]
    x = rec.inputs[1]
    cases: list[tuple[Any, Any, type[Exception], str]] = [
        (routing, x.astype(np.int64), TypeError, "`vector` must be a uint32 numpy array"),
        (routing, x[:-1], SecAggMessageError, rf"`vector` must have shape \({D},\). Found \({D - 1},\)."),
        (
            dataclasses.replace(routing, shares=(*routing.shares, routing.shares[1])),
            x,
            SecAggMessageError,
            "two shares from client 2",
        ),
        (
            dataclasses.replace(routing, shares=(dataclasses.replace(routing.shares[0], sender=77),)),
            x,
            SecAggMessageError,
            "share from client 77, which is not in client 1's roster",
        ),
        (
            dataclasses.replace(routing, shares=(dataclasses.replace(routing.shares[0], receiver=4),)),
            x,
            SecAggMessageError,
            "share for client 4; this is client 1",
        ),
        (dataclasses.replace(routing, round_id="r0"), x, SecAggMessageError, "ShareRouting is for round 'r0'"),
    ]
    for bad, vector, error, message in cases:
        client = _client_at(rec, ClientStage.KEYS_SHARED)
        with pytest.raises(error, match=message):
            client.mask_input(bad, vector)
        assert client.stage == ClientStage.KEYS_SHARED


def test_mask_input_aborts_below_threshold(rec: Recorded) -> None:
    routing: ShareRouting = _requests(rec, 1)["routing"]
    client = _client_at(rec, ClientStage.KEYS_SHARED)
    with pytest.raises(SecAggAbortedError, match="only 2 of its neighbourhood completed Round 1"):
        client.mask_input(dataclasses.replace(routing, shares=routing.shares[:2]), rec.inputs[1])
    assert client.stage == ClientStage.ABORTED


@pytest.mark.parametrize(
    ("survivors", "dropped", "error", "message"),
    [
        ((1, 2, 3), (3, 4, 5), SecAggMessageError, "client 3 as both surviving and dropped"),
        ((1, 2, 2, 3), (4, 5), SecAggMessageError, "lists a client twice"),
        ((2, 3, 4), (1, 5), SecAggMessageError, "must list client 1 itself among the survivors"),
        ((1, 2, 3), (4,), SecAggMessageError, r"Unknown: \[\]; missing: \[5\]"),
        ((1, 2, 3, 4), (5, 6), SecAggMessageError, r"Unknown: \[6\]; missing: \[\]"),
        ((1, 2), (3, 4, 5), SecAggAbortedError, "only 2 of its neighbourhood sent masked inputs"),
    ],
)
def test_unmask_refuses_inconsistent_requests(
    rec: Recorded, survivors: tuple[int, ...], dropped: tuple[int, ...], error: type[Exception], message: str
) -> None:
    client = _client_at(rec, ClientStage.INPUT_MASKED)
    request = UnmaskingRequest(round_id=rec.config.round_id, recipient=1, survivors=survivors, dropped=dropped)
    with pytest.raises(error, match=message):
        client.unmask(request)
    expected = ClientStage.ABORTED if error is SecAggAbortedError else ClientStage.INPUT_MASKED
    assert client.stage == expected


def test_unmask_reveals_exactly_one_secret_per_peer(rec: Recorded) -> None:
    client = _client_at(rec, ClientStage.INPUT_MASKED)
    request = UnmaskingRequest(round_id=rec.config.round_id, recipient=1, survivors=(1, 2, 4), dropped=(3, 5))
    response = client.unmask(request)
    assert [s.owner for s in response.self_mask_shares] == [1, 2, 4]
    assert [s.owner for s in response.key_shares] == [3, 5]
    with pytest.raises(SecAggStageError):  # no second answer, so never both secrets of one peer
        client.unmask(dataclasses.replace(request, survivors=(1, 2, 3, 4, 5), dropped=()))


def test_constructor_validation(rec: Recorded) -> None:
    with pytest.raises(ValueError, match=r"`client_id` must be one of the round's participants. Found 9."):
        SecAggClient(rec.config, 9)
    with pytest.raises(TypeError, match="`client_id` must be an int"):
        SecAggClient(rec.config, "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`config` must be a SecAggConfig"):
        SecAggClient({}, 1)  # type: ignore[arg-type]
