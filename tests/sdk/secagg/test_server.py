"""SecAggServer: every transition tested (table-driven over stages × messages), the survivor rules,
aborts, persistence, and that the server never holds a client's plaintext."""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import secrets
from collections.abc import Callable
from typing import Any
from unittest import mock

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
    crypto,
    shamir,
)
from privrec.sdk.secagg.sealed import KINDS

from .roundkit import Recorded, expected_sum, make_config, play, run_round, wire

N, D, T = 6, 16, 4


@pytest.fixture(scope="module")
def rec() -> Recorded:
    return run_round(make_config(N, D, T))


#: A round aborted in Round 4 naming a culprit (a pseudo-stage of the tables below: its stage is ABORTED).
ABORTED_NAMING = "aborted_naming_a_culprit"


def _server_at(rec: Recorded, stage: str) -> SecAggServer:
    if stage == ServerStage.ABORTED:
        server = _server_at(rec, Stage.SHARE_KEYS)
        server.abort("test")
        return server
    if stage == ABORTED_NAMING:
        server = _server_at(rec, Stage.UNMASKING)
        error = server.abort("client 2 lied", culprits=(2,))
        assert error.culprits == (2,) and server.state.flagged == {2: "client 2 lied"}
        return SecAggServer.from_dict(json.loads(json.dumps(server.to_dict())))
    return SecAggServer.from_dict(json.loads(json.dumps(rec.server_snapshots[stage])))


STAGES = [*Stage.RUN, ServerStage.COMPLETED, ServerStage.ABORTED, ABORTED_NAMING]
_FINAL = (ServerStage.COMPLETED, ServerStage.ABORTED, ABORTED_NAMING)


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
            if stage in _FINAL
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


@pytest.mark.parametrize("stage", _FINAL)
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
        (dataclasses.replace(msg, shares=msg.shares[1:]), "must hold one share for each of [1, 2, 3, 4, 5, 6]"),
        (
            dataclasses.replace(msg, shares=(dataclasses.replace(msg.shares[0], ciphertext=b"x" * 48), *msg.shares[1:])),
            "the share for client 1 must be 224 bytes with a 12-byte nonce. Found 48 and 12",
        ),
        (dataclasses.replace(msg, shares=(*msg.shares, msg.shares[1])), "holds two shares for client 2"),
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
    with pytest.raises(SecAggMessageError, match=r"`self_mask_shares`: an opening must be 32 bytes. Found 1."):
        server.receive(short)
    # A share in clear (the unsealed protocol's Round-4 payload) is not an opening: refused outright.
    clear = dataclasses.replace(good, self_mask_shares=(RevealedShare(1, bytes(64)), *good.self_mask_shares[1:]))
    with pytest.raises(SecAggMessageError, match=r"an opening must be 32 bytes. Found 64."):
        server.receive(clear)


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


# --------------------------------------------------------------------- attacks by one registered device
# Each test is written as the attack: it fails with the stated error naming the device, and nothing the
# server keeps is corrupted (a refused message leaves the state unchanged; a completed round's sum is the
# exact sum of U3's inputs; otherwise the round aborts and outputs nothing).

ATTACKER = 3
_P = crypto.X25519_PRIME
_BAD_KEYS: dict[str, tuple[Any, str]] = {
    "masking == encryption": (lambda own, other: dataclasses.replace(own, masking=own.encryption),
                              "its masking key equals its encryption key"),
    "zero point": (lambda own, other: dataclasses.replace(own, masking=bytes(32)),
                   r"its masking key is the zero point \(u = 0, order 2"),
    "u = 1": (lambda own, other: dataclasses.replace(own, encryption=(1).to_bytes(32, "little")),
              r"its encryption key is a low-order point \(u = 1, order 4"),
    "u = p - 1": (lambda own, other: dataclasses.replace(own, masking=(_P - 1).to_bytes(32, "little")),
                  r"its masking key is a low-order point \(u = p - 1, order 4"),
    **{
        f"order 8 #{i}": (
            lambda own, other, u=u: dataclasses.replace(own, masking=u.to_bytes(32, "little")),
            r"its masking key is a low-order point \(u = \d+, order 8",
        )
        for i, u in enumerate(u for u, order in crypto.LOW_ORDER_POINTS.items() if order == 8)
    },
    "u = p (non-canonical zero)": (
        lambda own, other: dataclasses.replace(own, masking=_P.to_bytes(32, "little")),
        r"its masking key is not canonically encoded: u = p \+ 0 is at least p = 2\^255 - 19 \(X25519 reads it as u = 0\)",
    ),
    "bit 255 set": (
        lambda own, other: dataclasses.replace(own, encryption=own.encryption[:31] + bytes([own.encryption[31] | 0x80])),
        "its encryption key is not canonically encoded: bit 255 is set",
    ),
    "another device's encryption key": (lambda own, other: dataclasses.replace(own, encryption=other.encryption),
                                        "its encryption key is client 1's encryption key"),
    "another device's masking key as encryption key": (
        lambda own, other: dataclasses.replace(own, encryption=other.masking),
        "its encryption key is client 1's masking key",
    ),
}


@pytest.mark.parametrize("attack", list(_BAD_KEYS))
def test_bad_advertised_keys_are_refused_naming_the_device_and_the_round_continues(attack: str) -> None:
    forge, message = _BAD_KEYS[attack]
    config = make_config(N, D, T)
    rec = run_round(config, stop_after=Stage.ADVERTISE_KEYS)
    server = rec.server
    honest = {u: rec.clients[u].advertise_keys() for u in config.participants}
    server.receive(wire(honest[1]))
    bad = dataclasses.replace(honest[ATTACKER], keys=forge(honest[ATTACKER].keys, honest[1].keys))
    before = server.to_dict()
    with pytest.raises(SecAggMessageError, match=f"AdvertiseKeys from client {ATTACKER}: {message}") as info:
        server.receive(wire(bad))
    assert info.value.culprits == (ATTACKER,)
    assert server.to_dict() == before  # nothing stored
    for u in config.participants:
        if u not in (1, ATTACKER):
            server.receive(wire(honest[u]))
    server.advance()  # the attacker never got a valid key in: it is not in U1
    assert ATTACKER not in server.state.u1
    play(rec)
    assert rec.server.survivors == (1, 2, 4, 5, 6)
    np.testing.assert_array_equal(rec.server.result(), expected_sum(rec))


def test_an_honest_device_never_gets_a_roster_it_must_refuse() -> None:
    """Every key in every roster passes the client's own checks (the server checked them first)."""
    rec = run_round(make_config(N, D, T))
    for u in rec.config.participants:
        roster = SecAggServer.from_dict(rec.server_snapshots[Stage.SHARE_KEYS]).key_roster(u)
        keys = [k for entry in roster.keys for k in (entry.encryption, entry.masking)]
        assert len(set(keys)) == len(keys) == 2 * N
        assert all(crypto.public_key_problem(k) is None for k in keys)


def _openings(response: UnmaskingResponse, lie: Callable[[RevealedShare, UnmaskingResponse], bytes]) -> UnmaskingResponse:
    swap = lambda items: tuple(dataclasses.replace(r, share=lie(r, response)) for r in items)  # noqa: E731
    return dataclasses.replace(response, self_mask_shares=swap(response.self_mask_shares), key_shares=swap(response.key_shares))


def _first_only(lie: Callable[[bytes], bytes]) -> Callable[[RevealedShare, UnmaskingResponse], bytes]:
    """Lie about the first opening only (the others stay honest)."""
    return lambda r, resp: lie(r.share) if r is resp.self_mask_shares[0] else r.share


LIES: dict[str, Callable[[RevealedShare, UnmaskingResponse], bytes]] = {
    "one bit flipped in every opening": lambda r, resp: bytes([r.share[0] ^ 1]) + r.share[1:],
    "random openings": lambda r, resp: secrets.token_bytes(32),
    "one opening wrong": _first_only(lambda key: bytes(32)),
    # The key of another share: it opens a valid share, but not the one committed for this owner.
    "openings shifted to the next owner": lambda r, resp: resp.self_mask_shares[
        (list(resp.self_mask_shares).index(r) + 1) % len(resp.self_mask_shares)
    ].share if r in resp.self_mask_shares else r.share,
}


def _lying(liars: set[int], lie: Callable[[RevealedShare, UnmaskingResponse], bytes]) -> Any:
    return lambda stage, u, reply: _openings(reply, lie) if stage == Stage.UNMASKING and u in liars else reply


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_revealer_is_discarded_and_named_and_the_sum_stays_exact(lie: str) -> None:
    """Client 2 reveals wrong openings in Round 4 (the attack that shifted shares by a Lagrange coefficient
    has no share to shift: the server opens the dealers' own ciphertexts). 5 of 6 survive and t = 4, so
    the 4 honest revealers suffice: the round completes with the exact sum of U3 — client 2's input
    included (it masked honestly) — and client 2 is recorded as flagged."""
    rec = run_round(make_config(N, D, T), silent={Stage.MASKED_INPUT_COLLECTION: {6}}, tamper=_lying({2}, LIES[lie]))
    server = rec.server
    assert server.stage == ServerStage.COMPLETED
    assert server.survivors == (1, 2, 3, 4, 5)
    assert server.state.u4 == (1, 3, 4, 5)
    assert list(server.state.flagged) == [2]
    assert server.state.flagged[2].startswith("Client 2 revealed an opening of its ")
    assert [f["client_id"] for f in server.summary()["flagged"]] == [2]
    np.testing.assert_array_equal(server.result(), expected_sum(rec))
    restored = SecAggServer.from_dict(json.loads(json.dumps(server.to_dict())))
    assert restored.state.flagged == server.state.flagged


def test_lying_revealers_that_leave_fewer_than_t_openings_abort_the_round_naming_them() -> None:
    """Three liars of six: the three honest openings of each secret are fewer than t = 4."""
    rec = run_round(make_config(N, D, T), stop_after=Stage.UNMASKING)
    with pytest.raises(SecAggAbortedError) as info:
        play(rec, tamper=_lying({2, 5, 6}, LIES["random openings"]))
    assert info.value.culprits == (2, 5, 6)
    text = str(info.value)
    assert "fewer than the threshold t = 4" in text
    assert "The openings of client(s) [2, 5, 6] were discarded: they do not match their dealers' commitments." in text
    assert rec.server.stage == ServerStage.ABORTED
    assert sorted(rec.server.state.flagged) == [2, 5, 6]
    assert rec.server.state.result is None


def _deal_wrongly(dealer: int, holder: int, kind: str, how: str, openers: tuple[int, ...] = (1, 2, 3, 4)) -> Any:
    """``around`` hook: ``dealer`` deals ``holder`` a wrong share of its s_sk (``kind="key"``) or b
    (``"seed"``), sealed correctly (the commitment matches, the share opens): only the polynomial is off.

    ``how="plus_one"`` adds 1 to the second chunk; ``how="lagrange"`` adds the inverse of the holder's
    Lagrange coefficient at 0 for the holders ``openers``, so that exactly those t shares reconstruct the
    secret with its second 16-bit chunk + 1 (a wrong but well-formed secret; the first chunk holds bits
    X25519 clamps away, so a change there would not even change the key).
    """
    real = shamir.share
    k = KINDS.index(kind)

    def share(secret_bytes: np.ndarray, holders: Any, threshold: int) -> np.ndarray:
        out = real(secret_bytes, holders, threshold)
        i = list(holders).index(holder)
        if how == "plus_one":
            delta = 1
        else:
            others = [x for x in openers if x != holder]
            lam = 1
            for x in others:
                lam = lam * x * pow(x - holder, shamir.PRIME - 2, shamir.PRIME) % shamir.PRIME
            delta = pow(lam, shamir.PRIME - 2, shamir.PRIME)
        out[k, i, 1] = (int(out[k, i, 1]) + delta) % shamir.PRIME
        return out

    def around(stage: str, u: int) -> Any:
        if (stage, u) == (Stage.SHARE_KEYS, dealer):
            return mock.patch.object(shamir, "share", share)
        return contextlib.nullcontext()

    return around


@pytest.mark.parametrize("how", ["plus_one", "lagrange"])
@pytest.mark.parametrize("kind", ["seed", "key"])
def test_inconsistent_dealing_with_more_than_t_openings_aborts_naming_the_dealer(kind: str, how: str) -> None:
    """Client 3 deals client 2 a share off its polynomial. For b_3 (client 3 survives) all 6 open it; for
    s_sk_3 (client 3 drops before Round 2) its 5 neighbours do: either way more than t = 4 shares are
    opened, so the Reed–Solomon check sees it and the round aborts naming the dealer, not the holder."""
    silent = {Stage.MASKED_INPUT_COLLECTION: {ATTACKER}} if kind == "key" else {}
    with pytest.raises(SecAggAbortedError) as info:
        run_round(make_config(N, D, T), silent=silent, around=_deal_wrongly(ATTACKER, 2, kind, how))
    what = "self-mask seed" if kind == "seed" else "masking key"
    assert info.value.culprits == (ATTACKER,)
    assert (
        f"client(s) [3] dealt inconsistent shares. Client 3's {what} shares do not lie on one polynomial of degree 3"
        in str(info.value)
    )


def test_inconsistent_masking_key_dealing_with_exactly_t_openings_aborts_naming_the_dealer() -> None:
    """Exactly t openings carry no redundancy, but a masking key is checked against its public key."""
    rec = run_round(
        make_config(N, D, T), silent={Stage.MASKED_INPUT_COLLECTION: {ATTACKER}}, stop_after=Stage.UNMASKING,
        around=_deal_wrongly(ATTACKER, 2, "key", "lagrange", openers=(1, 2, 4, 5)),
    )
    with pytest.raises(SecAggAbortedError, match="reconstructed masking key of client 3 does not match") as info:
        play(rec, silent={Stage.UNMASKING: {6}})  # s_sk_3 is opened by exactly {1, 2, 4, 5}
    assert info.value.culprits == (ATTACKER,)


def test_inconsistent_seed_dealing_with_exactly_t_openings_is_not_detected() -> None:
    """The documented limit (:mod:`privrec.sdk.secagg.sealed`): with exactly t openings of b_3, t shares dealt
    off one polynomial reconstruct a wrong, well-formed seed and the sum is wrong — as wrong as if client 3
    had sent a wrong masked input, which no server can detect either. Here holders {1, 2, 3, 4} open b_3."""
    rec = run_round(make_config(N, D, T), stop_after=Stage.UNMASKING, around=_deal_wrongly(ATTACKER, 2, "seed", "lagrange"))
    play(rec, silent={Stage.UNMASKING: {5, 6}})
    assert rec.server.stage == ServerStage.COMPLETED and rec.server.state.flagged == {}
    assert not np.array_equal(rec.server.result(), expected_sum(rec))


def test_a_share_that_does_not_open_under_its_commitment_is_refused_by_its_holder() -> None:
    """Client 3 seals garbage for client 2 under the right committed key: client 2 refuses it in Round 2,
    naming client 3 (and so cannot be blamed for it in Round 4)."""

    def garble(stage: str, u: int, reply: Any) -> Any:
        if (stage, u) != (Stage.SHARE_KEYS, ATTACKER):
            return reply
        shares = tuple(
            dataclasses.replace(s, ciphertext=s.ciphertext[:150] + bytes([s.ciphertext[150] ^ 1]) + s.ciphertext[151:])
            if s.receiver == 2 else s
            for s in reply.shares
        )
        return dataclasses.replace(reply, shares=shares)

    with pytest.raises(SecAggIntegrityError, match="The sealed seed share from client 3 to client 2 is invalid") as info:
        run_round(make_config(N, D, T), tamper=garble)
    assert info.value.culprits == (ATTACKER,)
    # A holder that skips its Round-2 check and opens the share anyway still cannot frame anyone: the
    # opening matches the commitment, so the server proves the dealer wrong.
    from privrec.sdk.secagg import client as client_module

    def skip_check(stage: str, u: int) -> Any:
        if (stage, u) == (Stage.MASKED_INPUT_COLLECTION, 2):
            return mock.patch.object(client_module, "verify_sealed", lambda *a, **k: None)
        return contextlib.nullcontext()

    with pytest.raises(SecAggAbortedError, match=r"client\(s\) \[3\] dealt a share that does not open") as info2:
        run_round(make_config(N, D, T), tamper=garble, around=skip_check)
    assert info2.value.culprits == (ATTACKER,)
