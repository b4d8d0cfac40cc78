"""``privrec device simulate``: N devices, each holding one MovieLens user's data, taking part in rounds of
a running ``privrec serve`` over HTTP, with dropouts injected at every protocol stage.

Each device is a real :class:`~privrec.runtime.device.Device` (encrypted store, bundle, secure-aggregation
client) in its own thread; they talk to the server only over HTTP. Before each round every device draws,
independently and for each stage of :attr:`privrec.sdk.secagg.Stage.RUN` in turn, whether it goes silent
there (probability ``dropout`` per stage, from ``numpy.random.default_rng(seed + round)``); a silent device
is a dropout the server discovers when the stage's deadline passes.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privrec.runtime.client import ServerClient
from privrec.runtime.device import Device, RoundReport
from privrec.sdk.data import LeaveOneOutSplit
from privrec.sdk.secagg import Stage

__all__ = ["device_histories", "simulate_devices"]


def device_histories(split: LeaveOneOutSplit, users: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Each user's training items, oldest first: the history a device stores. How the history becomes
    labels is the bundle's reconstruction recipe (its recency half-life), applied on the device."""
    order = np.argsort(split.train_users, kind="stable")  # grouped by user, time order kept within a user
    users_sorted, items_sorted = split.train_users[order], split.train_items[order]
    starts = np.searchsorted(users_sorted, users, side="left")
    ends = np.searchsorted(users_sorted, users, side="right")
    return [items_sorted[a:b].astype(np.int64) for a, b in zip(starts, ends, strict=True)]


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

    Returns:
        A JSON-able summary: per round the outcomes, wall seconds and the server's status; bytes per device;
        the final ledger.
    """
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"`devices` must be an int >= 1. Found {devices!r}.")
    if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Found {dropout!r}.")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"`rounds` must be an int >= 1. Found {rounds!r}.")
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
            dev = Device(Path(workdir) / f"device-{i}", name=f"sim-{i}")
            if dev.interactions()[0].size == 0:
                dev.add_interactions(ids)
            fleet.append(dev)
            clients.append(dev.connect(server))
        summary_rounds: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=min(devices, 128)) as pool:
            for r in range(rounds):
                plan = _drop_plan(np.random.default_rng(seed + r), devices, float(dropout))
                before = [(c.bytes_sent, c.bytes_received) for c in clients]
                t0 = time.perf_counter()
                futures = [
                    pool.submit(
                        dev.take_part, client, drop_at=plan[i], poll_seconds=poll_seconds,
                        timeout_seconds=round_timeout_seconds,
                    )
                    for i, (dev, client) in enumerate(zip(fleet, clients, strict=True))
                ]
                reports: list[RoundReport] = [f.result() for f in futures]
                seconds = time.perf_counter() - t0
                sent = [c.bytes_sent - b[0] for c, b in zip(clients, before, strict=True)]
                received = [c.bytes_received - b[1] for c, b in zip(clients, before, strict=True)]
                round_id = reports[0].round_id
                status = clients[0].status(round_id)
                entry = {
                    "round_id": round_id,
                    "seconds": seconds,
                    "outcomes": dict(Counter(rep.outcome for rep in reports)),
                    "dropped_at": dict(Counter(rep.stage for rep in reports if rep.stage is not None)),
                    "phase": status["phase"],
                    "survivors": status["survivors"],
                    "outcome": status["outcome"],
                    "bytes_sent_median": statistics.median(sent),
                    "bytes_received_median": statistics.median(received),
                    "bytes_sent_max": max(sent),
                    "bytes_received_max": max(received),
                }
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
