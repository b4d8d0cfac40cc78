"""SecAggServer: every transition tested (table-driven over stages × messages), the survivor rules,
aborts, persistence, and that the server never holds a client's plaintext."""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from privrec.sdk.secagg import (
    CLIENT_MESSAGES,
    AdvertiseKeys,
    MaskedInput,
    PublicKeys,
    RevealedShare,
    SecAggAbortedError,
    SecAggIntegrityError,
    SecAggMessageError,
    SecAggServer,
    SecAggStageError,
    ServerStage,
    ShareKeys,
    Stage,
    UnmaskingResponse,
)

from .roundkit import Recorded, expected_sum, make_config, run_round, wire

N, D, T = 6, 16, 4


@pytest.fixture(scope="module")
def rec() -> Recorded:
    return run_round(make_config(N, D, T))


def _server_at(rec: Recorded, stage: str) -> SecAggServer:
    if stage == ServerStage.ABORTED:
        server = _server_at(rec, Stage.SHARE_KEYS)
        server.abort("test")
        return server
    return SecAggServer.from_dict(json.loads(json.dumps(rec.server_snapshots[stage])))


STAGES = [*Stage.RUN, ServerStage.COMPLETED, ServerStage.ABORTED]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("message_type", [c.__name__ for c in CLIENT_MESSAGES])
def test_receive_transition_table(rec: Recorded, stage: str, message_type: str) -> None:
    """Server stages × client message types: only the stage's own message is accepted."""
    server = _server_at(rec, stage)
    message = rec.sent[message_type][1]
    before = server.to_dict()
    if stage == message.STAGE:
        server.receive(wire(message))
        assert server.pending() == tuple(u for u in server.recipients() if u != 1)
    else:
        expected = (
            "accepts no more messages"
            if stage in (ServerStage.COMPLETED, ServerStage.ABORTED)
            else (f"{message_type} belongs to stage {message.STAGE!r}; the server is in stage {stage!r}.")
        )
        with pytest.raises(SecAggStageError, match=expected):
            server.receive(wire(message))
        assert server.to_dict() == before


REQUESTS = {
    "key_roster": (Stage.SHARE_KEYS, lambda s: s.key_roster(1)),
    "share_routing": (Stage.MASKED_INPUT_COLLECTION, lambda s: s.share_routing(1)),
    "unmasking_request": (Stage.UNMASKING, lambda s: s.unmasking_request(1)),
    "result": (ServerStage.COMPLETED, lambda s: s.result()),
}


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_request_transition_table(rec: Recorded, stage: str, request_name: str) -> None:
    valid_stage, call = REQUESTS[request_name]
    server = _server_at(rec, stage)
    if stage == valid_stage:
        assert call(server) is not None
    else:
        with pytest.raises(SecAggStageError, match=f"`{request_name}` is only valid in server stage"):
            call(server)


@pytest.mark.parametrize("stage", [ServerStage.COMPLETED, ServerStage.ABORTED])
def test_final_stages_cannot_advance_or_abort(rec: Recorded, stage: str) -> None:
    server = _server_at(rec, stage)
    with pytest.raises(SecAggStageError, match="it cannot advance"):
        server.advance()
    with pytest.raises(SecAggStageError, match="is already"):
        server.abort("again")


def test_full_round_sum_is_exact(rec: Recorded) -> None:
    assert rec.server.stage == ServerStage.COMPLETED
    assert rec.server.survivors == tuple(range(1, N + 1))
    np.testing.assert_array_equal(rec.server.result(), expected_sum(rec))
    # checked against numpy's own modular sum of the plaintexts
    np.testing.assert_array_equal(rec.server.result(), np.sum(list(rec.inputs.values()), axis=0, dtype=np.uint32))


def test_refused_messages(rec: Recorded) -> None:
    adv = rec.sent["AdvertiseKeys"][1]
    server = _server_at(rec, Stage.ADVERTISE_KEYS)
    server.receive(wire(adv))
    keys = PublicKeys(client_id=42, encryption=bytes(32), masking=bytes(32))
    cases: list[tuple[Any, type[Exception], str]] = [
        (adv, SecAggMessageError, "Duplicate AdvertiseKeys from client 1."),
        (dataclasses.replace(adv, round_id="old"), SecAggMessageError, "AdvertiseKeys is for round 'old'"),
        (AdvertiseKeys(rec.config.round_id, 42, keys), SecAggMessageError, "client 42, which is not a participant"),
        (rec.sent["AdvertiseKeys"][2].to_dict(), TypeError, "`message` must be one of"),
    ]
    for message, error, text in cases:
        before = server.to_dict()
        with pytest.raises(error, match=text):
            server.receive(message)
        assert server.to_dict() == before


def test_refused_share_keys(rec: Recorded) -> None:
    msg: ShareKeys = rec.sent["ShareKeys"][1]
    server = _server_at(rec, Stage.SHARE_KEYS)
    cases = [
        (dataclasses.replace(msg, shares=msg.shares[1:]), "must hold one share for each of [2, 3, 4, 5, 6]"),
        (dataclasses.replace(msg, shares=(*msg.shares, msg.shares[0])), "holds two shares for client 2"),
        (
            dataclasses.replace(msg, shares=(dataclasses.replace(msg.shares[0], sender=3), *msg.shares[1:])),
            "holds a share sent by client 3",
        ),
    ]
    for bad, text in cases:
        with pytest.raises(SecAggMessageError, match=text.replace("[", r"\[").replace("]", r"\]")):
            server.receive(bad)
    assert server.pending() == tuple(range(1, N + 1))


def test_refused_masked_inputs(rec: Recorded) -> None:
    server = _server_at(rec, Stage.MASKED_INPUT_COLLECTION)
    short = MaskedInput(round_id=rec.config.round_id, sender=1, vector=bytes(4 * (D - 1)))
    with pytest.raises(SecAggMessageError, match=f"must hold {D} uint32 words. Found {D - 1}."):
        server.receive(short)
    server.receive(rec.sent["MaskedInput"][1])
    with pytest.raises(SecAggMessageError, match=r"Duplicate MaskedInput from client 1."):
        server.receive(rec.sent["MaskedInput"][1])


def test_refused_unmasking_responses(rec: Recorded) -> None:
    server = _server_at(rec, Stage.UNMASKING)
    good: UnmaskingResponse = rec.sent["UnmaskingResponse"][1]
    both = dataclasses.replace(good, key_shares=(good.self_mask_shares[1],))
    with pytest.raises(SecAggMessageError, match=r"`key_shares` must hold one share for each of\s+\[\]"):
        server.receive(both)
    missing = dataclasses.replace(good, self_mask_shares=good.self_mask_shares[1:])
    with pytest.raises(SecAggMessageError, match="`self_mask_shares` must hold one share for each of"):
        server.receive(missing)
    short = dataclasses.replace(good, self_mask_shares=(RevealedShare(1, b"x"), *good.self_mask_shares[1:]))
    with pytest.raises(SecAggMessageError, match=r"A share must be 64 bytes. Found 1."):
        server.receive(short)


def test_dropped_client_is_refused_later() -> None:
    rec = run_round(make_config(N, D, T), silent={Stage.SHARE_KEYS: {2}})
    assert rec.server.state.u2 == (1, 3, 4, 5, 6)
    server = SecAggServer.from_dict(rec.server_snapshots[Stage.MASKED_INPUT_COLLECTION])
    late = MaskedInput(round_id=rec.config.round_id, sender=2, vector=bytes(4 * D))
    with pytest.raises(SecAggMessageError, match="client 2, which is dropped in an earlier stage"):
        server.receive(late)
    with pytest.raises(SecAggMessageError, match="Client 2 is not in U2"):
        server.share_routing(2)
    np.testing.assert_array_equal(rec.server.result(), expected_sum(rec))


@pytest.mark.parametrize("stage", Stage.RUN)
def test_dropout_at_each_stage_keeps_the_sum_exact(stage: str) -> None:
    rec = run_round(make_config(N, D, T), silent={stage: {2, 5}})
    expected_survivors = (1, 2, 3, 4, 5, 6) if stage == Stage.UNMASKING else (1, 3, 4, 6)
    assert rec.server.survivors == expected_survivors
    np.testing.assert_array_equal(rec.server.result(), expected_sum(rec))


@pytest.mark.parametrize("stage", Stage.RUN)
def test_too_few_survivors_abort(stage: str) -> None:
    with pytest.raises(SecAggAbortedError, match="fewer than the threshold t = 4") as info:
        run_round(make_config(N, D, T), silent={stage: {2, 4, 5}})
    round_name = {
        Stage.ADVERTISE_KEYS: "Round 0",
        Stage.SHARE_KEYS: "Round 1",
        Stage.MASKED_INPUT_COLLECTION: "Round 2",
        Stage.UNMASKING: "Round 4",
    }[stage]
    assert f"aborted after {round_name}" in str(info.value)


def test_abort_state_is_recorded_and_final() -> None:
    rec = run_round(make_config(N, D, T), stop_after=Stage.SHARE_KEYS)
    server = rec.server
    for u in (1, 2, 3):
        server.receive(rec.clients[u].share_keys(server.key_roster(u)))
    with pytest.raises(SecAggAbortedError):
        server.advance()
    assert server.stage == ServerStage.ABORTED
    assert "3 clients answered, 0 usable" in server.state.abort_reason
    restored = SecAggServer.from_dict(json.loads(json.dumps(server.to_dict())))
    assert restored.stage == ServerStage.ABORTED
    assert restored.summary()["abort_reason"] == server.state.abort_reason


def test_secagg_plus_prunes_isolated_clients_and_aborts_per_neighbourhood() -> None:
    # n = 10, k = 4 (closed neighbourhoods of 5), t = 3.
    config = make_config(10, D, 3, k=4)
    graph = config.graph
    victim = 1
    nbrs = sorted(graph[victim])
    # Three of client 1's four neighbours never advertise: client 1 has 2 < t holders and is pruned.
    rec = run_round(config, silent={Stage.ADVERTISE_KEYS: set(nbrs[:3])})
    assert victim not in rec.server.state.u1
    np.testing.assert_array_equal(rec.server.result(), expected_sum(rec))
    # Client 1 sends its masked input but three neighbours vanish before unmasking: its seed has too
    # few holders left, so the round aborts (the sum cannot be unmasked).
    with pytest.raises(SecAggAbortedError, match="holders of client 1's self-mask seed shares survive"):
        run_round(config, silent={Stage.UNMASKING: set(nbrs[:3])})


def test_corrupted_key_share_is_detected() -> None:
    config = make_config(N, D, T)
    rec = run_round(config, silent={Stage.MASKED_INPUT_COLLECTION: {6}}, stop_after=Stage.UNMASKING)
    server = rec.server
    for u in server.recipients():
        response = rec.clients[u].unmask(server.unmasking_request(u))
        if u == 1:  # client 1 lies about its share of client 6's masking key
            bad = RevealedShare(owner=6, share=bytes(64))
            response = dataclasses.replace(response, key_shares=(bad,))
        server.receive(response)
    with pytest.raises((SecAggIntegrityError, SecAggAbortedError)) as info:
        server.advance()
    assert server.stage == ServerStage.ABORTED
    text = str(info.value)
    assert "does not match its advertised public key" in text or "inconsistent" in text


def test_restart_between_every_message() -> None:
    """Persist and reload the server (and the client) around every single message: same exact sum."""
    config = make_config(N, D, T)
    ref = run_round(config, stop_after=Stage.ADVERTISE_KEYS)
    clients = {u: json.dumps(c.to_dict()) for u, c in ref.clients.items()}
    server_json = json.dumps(SecAggServer(config).to_dict())
    from privrec.sdk.secagg import SecAggClient

    for stage in Stage.RUN:
        for u in config.participants:
            server = SecAggServer.from_dict(json.loads(server_json))
            client = SecAggClient.from_dict(json.loads(clients[u]))
            if stage == Stage.ADVERTISE_KEYS:
                reply: Any = client.advertise_keys()
            elif stage == Stage.SHARE_KEYS:
                reply = client.share_keys(wire(server.key_roster(u)))
            elif stage == Stage.MASKED_INPUT_COLLECTION:
                reply = client.mask_input(wire(server.share_routing(u)), ref.inputs[u])
            else:
                reply = client.unmask(wire(server.unmasking_request(u)))
            clients[u] = json.dumps(client.to_dict())
            server = SecAggServer.from_dict(json.loads(server_json))
            server.receive(wire(reply))
            server_json = json.dumps(server.to_dict())
        server = SecAggServer.from_dict(json.loads(server_json))
        server.advance()
        server_json = json.dumps(server.to_dict())
    server = SecAggServer.from_dict(json.loads(server_json))
    np.testing.assert_array_equal(server.result(), np.sum(list(ref.inputs.values()), axis=0, dtype=np.uint32))


def _raw_blobs(value: Any) -> list[bytes]:
    """Every byte string in a JSON tree: base64 fields decoded, other strings as UTF-8."""
    out: list[bytes] = []
    if isinstance(value, dict):
        for v in value.values():
            out += _raw_blobs(v)
    elif isinstance(value, list):
        for v in value:
            out += _raw_blobs(v)
    elif isinstance(value, str):
        out.append(value.encode())
        with contextlib.suppress(binascii.Error, ValueError):
            out.append(base64.b64decode(value, validate=True))
    return out


@pytest.mark.parametrize("k", [None, 3])
def test_server_never_holds_a_plaintext(k: int | None) -> None:
    """Nothing the server holds — its serialised state at every stage and every message it received —
    contains any 16-byte window (4 coordinates) of any client's plaintext encoding."""
    rec = run_round(make_config(N, 64, T if k is None else 3, k=k), silent={Stage.MASKED_INPUT_COLLECTION: {2}})
    blob = b"\x00".join(b"".join(_raw_blobs(tree)) for tree in [*rec.server_snapshots.values(), *rec.server_inbox])
    assert len(blob) > 6 * 64 * 4
    for u, x in rec.inputs.items():
        raw = x.astype("<u4").tobytes()
        for start in range(0, len(raw) - 16, 4):
            assert raw[start : start + 16] not in blob, f"client {u}'s plaintext found in the server's data"
    # The detector works: a plaintext embedded in a message would be found.
    leaked = _raw_blobs(MaskedInput.from_array(round_id="r", sender=1, values=rec.inputs[1]).to_dict())
    assert rec.inputs[1].astype("<u4").tobytes()[:16] in b"".join(leaked)
