"""One secure-aggregation round with every party in this process: real clients, a real server and real
crypto — every message and (optionally) every state goes through ``to_dict`` → JSON → ``from_dict``.

The founding-document facade sums its in-process clients' updates with it; tests and the aggregation
benchmark use it too. Not part of the protocol's API (:mod:`privrec.sdk.secagg` re-exports the two sides
and their messages, not this). Client ``i`` (row ``i`` of ``vectors``) has id ``i + 1``. Clients run one
after another in this process, so the wall time of a round is the sum of all clients' and the server's
times; on real devices the clients run in parallel and a round takes about
``server_seconds + Σ_stages client_seconds_median[stage]`` plus network time.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ..validation import check_finite
from .client import SecAggClient
from .config import SecAggConfig
from .encoding import FixedPointEncoder
from .messages import ClientMessage, Message, message_from_dict
from .server import SecAggServer
from .stages import Stage

__all__ = ["SimulationStats", "simulate_round"]

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class SimulationStats:
    """Measurements of one simulated round.

    Attributes:
        survivors: ids of the clients whose inputs are in the sum (U3); row = id - 1.
        stage_counts: how many clients completed each stage (``{stage: count}``, Round-0..4 order).
        encoded_sum: the exact aggregate ``uint32[D]`` (sum mod 2^32 of the survivors' encodings).
        frac_bits: the encoder's f (see :class:`.FixedPointEncoder`).
        server_seconds: total server CPU time (receiving, closing stages, building requests, unmasking,
            and its side of message (de)serialisation).
        client_seconds_median: per stage, the median over the clients that ran it.
        client_seconds_total_median: median over clients of their total time in the round.
        bytes_sent_median, bytes_sent_max, bytes_received_median, bytes_received_max: per client, JSON
            bytes of the messages it sent / received (all clients that took part in Round 0).
        wall_seconds: wall time of the whole simulation (all clients run sequentially).
    """

    survivors: tuple[int, ...]
    stage_counts: dict[str, int]
    encoded_sum: NDArray[np.uint32]
    frac_bits: int
    server_seconds: float
    client_seconds_median: dict[str, float]
    client_seconds_total_median: float
    bytes_sent_median: float
    bytes_sent_max: int
    bytes_received_median: float
    bytes_received_max: int
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (without the encoded sum)."""
        return {
            "survivors": len(self.survivors),
            "stage_counts": dict(self.stage_counts),
            "frac_bits": self.frac_bits,
            "server_seconds": self.server_seconds,
            "client_seconds_median": dict(self.client_seconds_median),
            "client_seconds_total_median": self.client_seconds_total_median,
            "bytes_sent_median": self.bytes_sent_median,
            "bytes_sent_max": self.bytes_sent_max,
            "bytes_received_median": self.bytes_received_median,
            "bytes_received_max": self.bytes_received_max,
            "wall_seconds": self.wall_seconds,
        }


class _Clock:
    """Accumulates CPU time per owner (``"server"`` or a client id) and per stage."""

    def __init__(self) -> None:
        self.server = 0.0
        self.client: dict[int, dict[str, float]] = {}

    def charge(self, owner: int | None, stage: str, seconds: float) -> None:
        if owner is None:
            self.server += seconds
        else:
            per_stage = self.client.setdefault(owner, {})
            per_stage[stage] = per_stage.get(stage, 0.0) + seconds


def _check_dropout(dropout: Mapping[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for stage, fraction in (dropout or {}).items():
        if stage not in Stage.RUN:
            raise ValueError(f"`dropout` keys must be in {Stage.RUN}. Found {stage!r}.")
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction < 1.0:
            raise ValueError(f"`dropout[{stage!r}]` must be a fraction in [0, 1). Found {fraction!r}.")
        out[stage] = float(fraction)
    return out


def simulate_round(
    vectors: NDArray[np.floating[Any]],
    *,
    threshold: int,
    neighbours: int | None = None,
    dropout: Mapping[str, float] | None = None,
    clip_range: float,
    seed: int,
    restart_between_stages: bool = False,
) -> tuple[NDArray[np.float64], SimulationStats]:
    """Run one secure-aggregation round over the rows of ``vectors`` and return the decoded sum.

    Args:
        vectors: ``float[n, D]``, one update per client (n >= 2).
        threshold: the Shamir threshold t (see :class:`.SecAggConfig`).
        neighbours: k for SecAgg+, or ``None`` for the full mesh.
        dropout: ``{stage: fraction}`` with stages from :attr:`.Stage.RUN`: at that stage,
            ``round(fraction * alive)`` of the clients still in the round (chosen with ``seed``) go silent
            before sending their message.
        clip_range: R of the fixed-point encoding (the L2 clip norm works).
        seed: seeds the dropout choice and the public graph seed (the crypto uses ``secrets``).
        restart_between_stages: also round-trip the server's and every client's state through JSON after
            each stage, as a process restart would.

    Returns:
        ``(sum, stats)``: the decoded ``float64[D]`` sum of the survivors' (clipped, quantised) vectors,
        and :class:`SimulationStats`.

    Raises:
        SecAggAbortedError: too few survivors at some stage (the sum is not available).
    """
    if not isinstance(vectors, np.ndarray) or vectors.ndim != 2 or vectors.dtype.kind != "f":
        raise TypeError("`vectors` must be a 2-D float numpy array [num_clients, vector_length].")
    n, d = vectors.shape
    fractions = _check_dropout(dropout)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    encoder = FixedPointEncoder(clip_range=clip_range, max_clients=n)
    for first in range(0, n, 256):  # every row checked up front in O(256 D) memory; each row is encoded when masked
        if not np.isfinite(vectors[first : first + 256]).all():
            check_finite(vectors, "vectors")  # names the first bad entry
    config = SecAggConfig(
        round_id=f"sim-{seed}",
        participants=tuple(range(1, n + 1)),
        threshold=threshold,
        vector_length=d,
        neighbours=neighbours,
        graph_seed=hashlib.sha256(f"privrec-sim-graph-{seed}".encode()).digest(),
    )
    clock = _Clock()
    sent: dict[int, int] = {}
    received: dict[int, int] = {}
    t0 = time.perf_counter()
    server = SecAggServer(config)
    clock.server += time.perf_counter() - t0
    client_config = SecAggConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    clients = {u: SecAggClient(client_config, u) for u in config.participants}

    def wire(message: M, sender: int | None, receiver: int | None, stage: str) -> M:
        t = time.perf_counter()
        text = json.dumps(message.to_dict())
        clock.charge(sender, stage, time.perf_counter() - t)
        t = time.perf_counter()
        parsed = message_from_dict(json.loads(text))
        clock.charge(receiver, stage, time.perf_counter() - t)
        client = sender if sender is not None else receiver
        if client is not None:
            book = sent if sender is not None else received
            book[client] = book.get(client, 0) + len(text)
        if type(parsed) is not type(message):  # the wire must return the same class
            raise TypeError(f"Wire round trip changed {type(message).__name__} into {type(parsed).__name__}.")
        return parsed

    def step(stage: str, server: SecAggServer, client: SecAggClient) -> ClientMessage:
        """One client's turn in ``stage``: fetch the server's request, answer it (timed per side)."""
        u = client.client_id
        t = time.perf_counter()
        if stage == Stage.ADVERTISE_KEYS:
            reply: ClientMessage = client.advertise_keys()
            clock.charge(u, stage, time.perf_counter() - t)
            return reply
        if stage == Stage.SHARE_KEYS:
            roster = server.key_roster(u)
            clock.charge(None, stage, time.perf_counter() - t)
            roster = wire(roster, None, u, stage)
            t = time.perf_counter()
            reply = client.share_keys(roster)
        elif stage == Stage.MASKED_INPUT_COLLECTION:
            routing = server.share_routing(u)
            clock.charge(None, stage, time.perf_counter() - t)
            routing = wire(routing, None, u, stage)
            t = time.perf_counter()
            reply = client.mask_input(routing, encoder.encode(vectors[u - 1]))  # one row at a time: O(D) memory
        else:
            request = server.unmasking_request(u)
            clock.charge(None, stage, time.perf_counter() - t)
            request = wire(request, None, u, stage)
            t = time.perf_counter()
            reply = client.unmask(request)
        clock.charge(u, stage, time.perf_counter() - t)
        return reply

    stage_counts: dict[str, int] = {}
    for stage in Stage.RUN:
        recipients = list(server.recipients())
        k = round(fractions.get(stage, 0.0) * len(recipients))
        silent = set(rng.choice(recipients, size=k, replace=False).tolist()) if k else set()
        active = [u for u in recipients if u not in silent]
        for u in active:
            reply = step(stage, server, clients[u])
            incoming = wire(reply, u, None, stage)
            t = time.perf_counter()
            server.receive(incoming)
            clock.server += time.perf_counter() - t
        stage_counts[stage] = len(active)
        t = time.perf_counter()
        server.advance()  # raises SecAggAbortedError when too few survive
        clock.server += time.perf_counter() - t
        if restart_between_stages:
            t = time.perf_counter()
            server = SecAggServer.from_dict(json.loads(json.dumps(server.to_dict())))
            clock.server += time.perf_counter() - t
            for u in active:
                clients[u] = SecAggClient.from_dict(json.loads(json.dumps(clients[u].to_dict())))

    t = time.perf_counter()
    total = server.result()
    clock.server += time.perf_counter() - t
    per_stage = {
        stage: statistics.median(times[stage] for times in clock.client.values() if stage in times)
        for stage in Stage.RUN
        if any(stage in times for times in clock.client.values())
    }
    everyone = list(clock.client)
    stats = SimulationStats(
        survivors=server.survivors,
        stage_counts=stage_counts,
        encoded_sum=total,
        frac_bits=encoder.frac_bits,
        server_seconds=clock.server,
        client_seconds_median=per_stage,
        client_seconds_total_median=statistics.median(sum(clock.client[u].values()) for u in everyone),
        bytes_sent_median=statistics.median(sent.get(u, 0) for u in everyone),
        bytes_sent_max=max(sent.get(u, 0) for u in everyone),
        bytes_received_median=statistics.median(received.get(u, 0) for u in everyone),
        bytes_received_max=max(received.get(u, 0) for u in everyone),
        wall_seconds=time.perf_counter() - start,
    )
    return encoder.decode(total), stats
