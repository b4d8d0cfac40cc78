"""``privrec device simulate``: N devices, each holding one MovieLens user's data, taking part in rounds of
a running ``privrec serve`` over HTTP, with dropouts injected at every protocol stage.

Each device is a real :class:`~privrec.runtime.device.Device` (encrypted store, bundle, secure-aggregation
client) in its own thread; they talk to the server only over HTTP. Before each round every device draws,
independently and for each stage of :attr:`privrec.sdk.secagg.Stage.RUN` in turn, whether it goes silent
there (probability ``dropout`` per stage, from ``numpy.random.default_rng(seed + round)``); a silent device
is a dropout the server discovers when the stage's deadline passes.

``malicious={index: attack}`` makes devices misbehave (one of :data:`ATTACKS`; such a device never drops
out, so its attack always runs): it computes its honest answer and sends a tampered one. The server must
refuse the message naming the device, or complete the round with the exact sum of its survivors, or abort
naming the device; every honest device must leave the round cleanly whatever happens. A device whose
request the server refuses stops (outcome ``"refused"``, the server's reason in the report).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privrec.runtime.client import ServerClient, ServerError
from privrec.runtime.device import Device, RoundReport
from privrec.sdk.data import LeaveOneOutSplit, training_histories
from privrec.sdk.secagg import (
    AdvertiseKeys,
    EncryptedShare,
    RevealedShare,
    ShareKeys,
    Stage,
    UnmaskingResponse,
    message_from_dict,
)

__all__ = ["ATTACKS", "device_histories", "simulate_devices"]

#: What a malicious simulated device sends instead of its honest message (``simulate_devices(malicious=...)``).
ATTACKS: dict[str, str] = {
    "bad_openings": "Round 4: every share opening it reveals has one bit flipped (a holder lying about shares)",
    "same_keys": "Round 0: advertises its encryption key as its masking key too",
    "zero_key": "Round 0: advertises the zero point (all-zero bytes) as its masking key",
    "bad_dealing": "Round 1: seals a corrupted seed share for every other holder (its holders must refuse it)",
}


class _RefusedError(Exception):
    """The server refused a malicious device's tampered message (the attack was caught at the door)."""

    def __init__(self, status: int, detail: str, stage: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.stage = status, detail, stage


def _flip(item: RevealedShare) -> RevealedShare:
    return replace(item, share=bytes([item.share[0] ^ 1]) + item.share[1:])


def _garble(item: EncryptedShare) -> EncryptedShare:
    """One bit flipped in the last byte: inside the sealed seed share's authentication tag."""
    return replace(item, ciphertext=item.ciphertext[:-1] + bytes([item.ciphertext[-1] ^ 1]))


def _tamper(attack: str, message: dict[str, Any]) -> dict[str, Any]:
    """The tampered version of an honest outgoing message (typed through the SDK's messages)."""
    parsed = message_from_dict(message)
    if attack == "bad_openings" and isinstance(parsed, UnmaskingResponse):
        parsed = replace(parsed, self_mask_shares=tuple(_flip(r) for r in parsed.self_mask_shares),
                         key_shares=tuple(_flip(r) for r in parsed.key_shares))
    elif attack == "same_keys" and isinstance(parsed, AdvertiseKeys):
        parsed = replace(parsed, keys=replace(parsed.keys, masking=parsed.keys.encryption))
    elif attack == "zero_key" and isinstance(parsed, AdvertiseKeys):
        parsed = replace(parsed, keys=replace(parsed.keys, masking=bytes(32)))
    elif attack == "bad_dealing" and isinstance(parsed, ShareKeys):
        parsed = replace(parsed, shares=tuple(s if s.receiver == s.sender else _garble(s) for s in parsed.shares))
    return parsed.to_dict()


class _AttackingClient(ServerClient):
    """A device's HTTP client that tampers with its outgoing protocol messages (see :data:`ATTACKS`)."""

    def __init__(self, base_url: str, token: str | None, *, attack: str, **kwargs: Any) -> None:
        super().__init__(base_url, token, **kwargs)
        self.attack = attack
        self.last_round: dict[str, Any] = {}

    def current_round(self) -> dict[str, Any]:
        self.last_round = super().current_round()
        return self.last_round

    def submit(self, round_id: str, message: dict[str, Any]) -> dict[str, Any]:
        tampered = _tamper(self.attack, message)
        try:
            return super().submit(round_id, tampered)
        except ServerError as exc:
            if tampered != message and exc.status in (403, 422):
                raise _RefusedError(exc.status, exc.detail, str(message.get("type", ""))) from None
            raise


def _take_part(dev: Device, client: ServerClient, **kwargs: Any) -> RoundReport:
    """:meth:`Device.take_part`, with a refused attack and a server or timeout failure reported (outcomes
    ``"refused"`` and ``"error"``) instead of raised, so one device cannot end the simulation."""
    start = time.monotonic()
    try:
        return dev.take_part(client, **kwargs)
    except _RefusedError as exc:
        info = getattr(client, "last_round", {})
        return RoundReport(str(info.get("round_id", "")), "refused", exc.stage, int(info.get("model_version", -1)),
                           time.monotonic() - start, f"HTTP {exc.status}: {exc.detail}")
    except (ServerError, TimeoutError) as exc:
        return RoundReport("", "error", None, -1, time.monotonic() - start, f"{type(exc).__name__}: {exc}")


def device_histories(split: LeaveOneOutSplit, users: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Each user's training items, oldest first (:func:`privrec.sdk.data.training_histories`)."""
    return training_histories(split, users)


def _movielens_devices(devices: int, seed: int) -> tuple[LeaveOneOutSplit, NDArray[np.int64]]:
    from privrec.sdk.data import heldout_users, leave_one_out, load_movielens100k

    split = leave_one_out(load_movielens100k())
    train, _ = heldout_users(split.num_users, fraction=0.1, seed=seed)
    if devices > train.size:
        raise ValueError(f"`devices` must be at most {train.size} (MovieLens-100K training users). Found {devices}.")
    return split, train[:devices]


def _drop_plan(rng: np.random.Generator, devices: int, dropout: float) -> list[str | None]:
    plan: list[str | None] = []
    for _ in range(devices):
        stage = None
        for s in Stage.RUN:
            if rng.random() < dropout:
                stage = s
                break
        plan.append(stage)
    return plan


def simulate_devices(
    server: str,
    devices: int,
    dropout: float = 0.0,
    rounds: int = 1,
    *,
    split: LeaveOneOutSplit | None = None,
    users: NDArray[np.int64] | None = None,
    seed: int = 0,
    workdir: Path | None = None,
    poll_seconds: float = 0.05,
    round_timeout_seconds: float = 900.0,
    progress: bool = True,
    admin_token: str | None = None,
    verify: str | bool = True,
    public_key: Any = None,
    malicious: Mapping[int, str] | None = None,
    on_round: Callable[[list[Device], list[RoundReport]], None] | None = None,
) -> dict[str, Any]:
    """Run ``devices`` devices through ``rounds`` rounds of the server at ``server``.

    Args:
        server: base URL of ``privrec serve``.
        devices: how many devices (one user each).
        dropout: probability in [0, 1) that a device goes silent at each protocol stage.
        rounds: rounds to take part in.
        split, users: the data and the user index of each device; default MovieLens-100K (needs
            ``privrec data fetch``) and its first ``devices`` training users (10% held out, seed ``seed``).
        seed: seeds the dropout plan (sampling itself is drawn on each device with ``secrets``).
        workdir: where the devices keep their stores and bundles (default: a temporary directory).
        poll_seconds, round_timeout_seconds: passed to :meth:`Device.take_part`.
        progress: one line per round on stderr.
        admin_token: the server's admin token, to issue one enrolment code per new device (a server with
            ``admission="open"`` needs none).
        verify: the CA bundle (path) that signed the server's TLS certificate, for an ``https://`` server.
        public_key: the server's bundle-signing public key, pinned on every device (None: bundles are
            installed unsigned, with a warning — development only).
        malicious: ``{device index: attack}`` with attacks from :data:`ATTACKS` (see the module docstring).
        on_round: called after each round with the devices and their reports (tests read
            :attr:`Device.last_encoded_update` there to check the aggregate).

    Returns:
        A JSON-able summary: per round the outcomes, wall seconds and the server's status (its ``outcome``
        names the devices the round flagged); with ``malicious``, each attacker's id, attack, outcome and
        detail; bytes per device; the final ledger.
    """
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"`devices` must be an int >= 1. Found {devices!r}.")
    if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Found {dropout!r}.")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"`rounds` must be an int >= 1. Found {rounds!r}.")
    attackers = dict(malicious or {})
    for i, attack in attackers.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < devices:
            raise ValueError(f"`malicious` keys must be device indices in [0, {devices}). Found {i!r}.")
        if attack not in ATTACKS:
            raise ValueError(f"`malicious[{i}]` must be one of {sorted(ATTACKS)}. Found {attack!r}.")
    if split is None:
        split, users = _movielens_devices(devices, seed)
    if users is None:
        users = np.arange(devices, dtype=np.int64)
    if len(users) < devices:
        raise ValueError(f"`users` must name at least {devices} users. Found {len(users)}.")
    histories = device_histories(split, np.asarray(users[:devices]))
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="privrec-devices-")
        workdir = Path(tmp.name)
    try:
        fleet: list[Device] = []
        clients: list[ServerClient] = []
        for i, ids in enumerate(histories):
            dev = Device(Path(workdir) / f"device-{i}", name=f"sim-{i}", public_key=public_key,
                         allow_unsigned=public_key is None)
            if dev.interactions()[0].size == 0:
                dev.add_interactions(ids)
            fleet.append(dev)
            code = None
            if admin_token is not None and "credentials" not in dev.store:
                with ServerClient(server, verify=verify) as admin:
                    (code,) = admin.admin_enrolment_codes(1, admin_token)
            client = dev.connect(server, enrolment_code=code, verify=verify)
            if i in attackers:
                client.close()
                client = _AttackingClient(server, client.token, attack=attackers[i], verify=verify)
            clients.append(client)
        summary_rounds: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=min(devices, 128)) as pool:
            for r in range(rounds):
                plan = _drop_plan(np.random.default_rng(seed + r), devices, float(dropout))
                plan = [None if i in attackers else stage for i, stage in enumerate(plan)]
                before = [(c.bytes_sent, c.bytes_received) for c in clients]
                t0 = time.perf_counter()
                futures = [
                    pool.submit(
                        _take_part, dev, client, drop_at=plan[i], poll_seconds=poll_seconds,
                        timeout_seconds=round_timeout_seconds,
                    )
                    for i, (dev, client) in enumerate(zip(fleet, clients, strict=True))
                ]
                reports: list[RoundReport] = [f.result() for f in futures]
                seconds = time.perf_counter() - t0
                if on_round is not None:
                    on_round(fleet, reports)
                sent = [c.bytes_sent - b[0] for c, b in zip(clients, before, strict=True)]
                received = [c.bytes_received - b[1] for c, b in zip(clients, before, strict=True)]
                round_id = next((rep.round_id for rep in reports if rep.round_id), "")
                status = clients[0].status(round_id)
                entry = {
                    "round_id": round_id,
                    "seconds": seconds,
                    "outcomes": dict(Counter(rep.outcome for rep in reports)),
                    "dropped_at": dict(Counter(rep.stage for rep in reports if rep.outcome == "dropped")),
                    "phase": status["phase"],
                    "survivors": status["survivors"],
                    "outcome": status["outcome"],
                    "bytes_sent_median": statistics.median(sent),
                    "bytes_received_median": statistics.median(received),
                    "bytes_sent_max": max(sent),
                    "bytes_received_max": max(received),
                }
                if attackers:
                    entry["malicious"] = [
                        {"index": i, "device_id": fleet[i].device_id, "attack": attackers[i], "outcome": reports[i].outcome,
                         "detail": reports[i].detail}
                        for i in sorted(attackers)
                    ]
                summary_rounds.append(entry)
                if progress:
                    print(
                        f"round {r + 1}/{rounds} {round_id}: {status['phase']} in {seconds:.1f} s, "
                        f"survivors {status['survivors']}",
                        file=sys.stderr,
                    )
        ledger = clients[0].ledger()
        model = clients[0].model_info()
        for c in clients:
            c.close()
        return {
            "server": server,
            "devices": devices,
            "dropout": dropout,
            "rounds": summary_rounds,
            "model_version": model["version"],
            "epsilon": ledger["epsilon"],
            "delta": ledger["delta"],
            "ledger": ledger,
        }
    finally:
        if tmp is not None:
            tmp.cleanup()
