"""Helpers for the secure-aggregation tests: run a real round step by step and record everything."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privrec.sdk.secagg import (
    ClientStage,
    Message,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    ServerStage,
    Stage,
    message_from_dict,
)


def wire(message: Any) -> Any:
    """Through JSON and back, as a transport would."""
    return message_from_dict(json.loads(json.dumps(message.to_dict())))


@dataclass
class Recorded:
    """A round run by :func:`run_round` with snapshots of every state and every message."""

    config: SecAggConfig
    server: SecAggServer
    clients: dict[int, SecAggClient]
    inputs: dict[int, NDArray[np.uint32]]
    #: server state at the start of each server stage (before any message of that stage)
    server_snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: client states at the start of each client stage, per client
    client_snapshots: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    #: every message sent, by class name, by client
    sent: dict[str, dict[int, Message]] = field(default_factory=dict)
    #: every message the server received, in order (as JSON)
    server_inbox: list[dict[str, Any]] = field(default_factory=list)


def make_config(n: int, d: int, t: int, k: int | None = None, round_id: str = "round-1") -> SecAggConfig:
    return SecAggConfig(
        round_id=round_id,
        participants=tuple(range(1, n + 1)),
        threshold=t,
        vector_length=d,
        neighbours=k,
        graph_seed=b"public-graph-seed",
    )


#: ``tamper(stage, client id, reply) -> reply``: what a malicious client sends instead of its honest reply.
Tamper = Callable[[str, int, Any], Any]
#: ``around(stage, client id)``: a context manager entered while that client computes its reply.
Around = Callable[[str, int], contextlib.AbstractContextManager[Any]]


def run_round(
    config: SecAggConfig,
    *,
    seed: int = 0,
    silent: dict[str, set[int]] | None = None,
    stop_after: str | None = None,
    tamper: Tamper | None = None,
    around: Around | None = None,
) -> Recorded:
    """Run a round; clients in ``silent[stage]`` do not answer that stage (and stay silent afterwards).

    Stops (without advancing) before ``stop_after``'s messages are sent when given. ``tamper`` replaces
    replies before the server sees them; ``around`` wraps a client's computation of its reply (e.g. to
    make a dealer deal inconsistent shares).
    """
    rng = np.random.default_rng(seed)
    silent = silent or {}
    server = SecAggServer(config)
    clients = {u: SecAggClient(config, u) for u in config.participants}
    inputs = {
        u: rng.integers(0, 2**32, size=config.vector_length, dtype=np.uint64).astype(np.uint32) for u in config.participants
    }
    rec = Recorded(config=config, server=server, clients=clients, inputs=inputs)
    return play(rec, silent=silent, stop_after=stop_after, tamper=tamper, around=around)


_CLIENT_STAGE_BEFORE = {
    Stage.ADVERTISE_KEYS: ClientStage.READY,
    Stage.SHARE_KEYS: ClientStage.KEYS_ADVERTISED,
    Stage.MASKED_INPUT_COLLECTION: ClientStage.KEYS_SHARED,
    Stage.UNMASKING: ClientStage.INPUT_MASKED,
}


def play(
    rec: Recorded,
    *,
    silent: dict[str, set[int]] | None = None,
    stop_after: str | None = None,
    tamper: Tamper | None = None,
    around: Around | None = None,
) -> Recorded:
    """Run ``rec``'s round from its server's current stage on (see :func:`run_round`)."""
    silent = silent or {}
    server, clients, inputs = rec.server, rec.clients, rec.inputs
    gone: set[int] = set()
    for stage in Stage.RUN[Stage.RUN.index(server.stage) :]:
        rec.server_snapshots[stage] = json.loads(json.dumps(server.to_dict()))
        rec.client_snapshots[_CLIENT_STAGE_BEFORE[stage]] = {
            u: json.loads(json.dumps(c.to_dict())) for u, c in clients.items()
        }
        if stage == stop_after:
            return rec
        gone |= silent.get(stage, set())
        for u in server.recipients():
            if u in gone:
                continue
            c = clients[u]
            with around(stage, u) if around is not None else contextlib.nullcontext():
                if stage == Stage.ADVERTISE_KEYS:
                    reply: Message = c.advertise_keys()
                elif stage == Stage.SHARE_KEYS:
                    reply = c.share_keys(wire(server.key_roster(u)))
                elif stage == Stage.MASKED_INPUT_COLLECTION:
                    reply = c.mask_input(wire(server.share_routing(u)), inputs[u])
                else:
                    reply = c.unmask(wire(server.unmasking_request(u)))
            if tamper is not None:
                reply = tamper(stage, u, reply)
            rec.sent.setdefault(type(reply).__name__, {})[u] = reply
            rec.server_inbox.append(reply.to_dict())
            server.receive(wire(reply))
        server.advance()
    rec.server_snapshots[ServerStage.COMPLETED] = json.loads(json.dumps(server.to_dict()))
    rec.client_snapshots[ClientStage.COMPLETED] = {u: c.to_dict() for u, c in clients.items()}
    return rec


def expected_sum(rec: Recorded) -> NDArray[np.uint32]:
    """Σ inputs of the survivors (U3) mod 2^32, computed directly."""
    total = np.zeros(rec.config.vector_length, dtype=np.uint64)
    for u in rec.server.survivors:
        total += rec.inputs[u]
    return (total % 2**32).astype(np.uint32)
