"""One round of Flower's SecAgg+ for n in-process clients with D-length vectors: round time and bytes.

Standalone: runs in ``.venv-flwr`` (``make bench-flower``) and imports only flwr, numpy and the
standard library — never privrec. :mod:`privrec.benchmarks.aggregation` runs it in a subprocess::

    .venv-flwr/bin/python privrec/benchmarks/flower_secagg.py --n 100 --dim 55506 --neighbours 11 --dropout 0.3 --json

Flower code paths exercised (flwr 1.42.0), unmodified:

* server: ``flwr.server.workflow.SecAggPlusWorkflow.__call__`` — ``setup_stage``, ``share_keys_stage``,
  ``collect_masked_vectors_stage``, ``unmask_stage`` (Shamir ``combine_shares``, mask regeneration with
  ``pseudo_rand_gen``, ``dequantize``), then ``FedAvg.aggregate_fit`` on the unmasked result, all on a
  ``flwr.server.compat.LegacyContext`` with a ``FedAvg`` strategy and a ``SimpleClientManager`` of
  ``GridClientProxy`` objects;
* client: ``flwr.client.mod.secaggplus_mod`` (``_setup`` → X25519 key pairs, ``_share_keys`` → Shamir
  ``create_shares`` + AES-GCM ``encrypt``, ``_collect_masked_vectors`` → ``decrypt``, ``quantize``,
  private + pairwise masks, ``_unmask``), with a ``call_next`` that returns the client's vector as a
  ``FitRes`` (``num_examples=1``) converted by ``flwr.compat.common.recorddict_compat``, exactly what a
  ``ClientApp`` with ``mods=[secaggplus_mod]`` does; the client state lives in its ``Context``.
* transport: every message (server → client and back) goes through Flower's protobuf serde
  (``message_to_proto`` → ``SerializeToString`` → ``message_from_proto``). Only the gRPC layer and the
  SuperLink/SuperNode processes are replaced by an in-process ``Grid`` whose ``send_and_receive``
  delivers each message to the addressed client's mod and returns the replies.

Not exercised: gRPC, the SuperLink's message store, Ray/simulation engine, model training.

Neighbours: Flower's SecAgg+ graph is a ring where each client's closed neighbourhood is
``num_shares`` consecutive clients (itself and ``num_shares // 2`` on each side), so the number of
neighbours k is always even (``num_shares`` is bumped to odd by the workflow). ``--neighbours k`` maps
to ``num_shares = k + 1`` when k is even; for odd k it uses ``num_shares = k`` (k - 1 neighbours, i.e.
slightly *less* work for Flower). ``--neighbours`` omitted or >= n - 1 gives the full mesh
(``num_shares = n``). The reported ``flower_neighbours`` is the count actually used.

Model download: the global parameters sent with ``FitIns`` are empty (zero arrays) so the bytes count
only the aggregation protocol, as privrec's simulation does. Weights: ``num_examples = 1`` and
``max_weight = 1.0``, so the result is the survivors' plain mean. ``clipping_range`` = ``--clip``
(default 1.0, privrec's ``clip_range``); quantisation 2^22, modulus 2^32 (Flower's defaults).

Dropout: ``round(dropout * n)`` clients (chosen with ``--seed``) answer the setup and share-keys stages
and then go silent in the collect-masked-vectors stage (their replies never arrive), the costly case:
the server reconstructs their pairwise masks from the survivors' shares of their ``sk1``.

Timing: clients run one after another in this process. Per client and stage we time the client's
side (deserialising the request, the mod, serialising the reply); the server's time per stage is that
stage's wall time minus the clients' time. ``round_s_est`` = server seconds + Σ_stages median client
seconds, the same estimate as privrec's ``simulate_round``; ``wall_s`` is the sequential wall time.
Bytes: serialised protobuf ``Message`` bytes each client receives and sends (median over clients that
took part in the setup stage).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.compat.common import recorddict_compat as compat
from flwr.proto.message_pb2 import Message as ProtoMessage
from flwr.server.client_manager import SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.supercore.task_identity import TaskIdentity

STAGE_NAMES = ("setup", "share_keys", "collect_masked_vectors", "unmask")


class InProcessGrid:
    """The part of ``flwr.serverapp.grid.Grid`` that ``SecAggPlusWorkflow`` uses: ``send_and_receive``."""

    def __init__(self, vectors: dict[int, np.ndarray], dropped: set[int]) -> None:
        self.vectors = vectors
        self.dropped = dropped
        self.contexts = {
            nid: Context(run_id=1, node_id=nid, node_config={}, state=RecordDict(), run_config={}) for nid in vectors
        }
        self.stage_index = -1
        self.stage_wall: list[float] = []
        self.client_seconds: dict[int, dict[str, float]] = {nid: {} for nid in vectors}
        self.sent: dict[int, int] = {nid: 0 for nid in vectors}
        self.received: dict[int, int] = {nid: 0 for nid in vectors}

    def _fit(self, nid: int) -> Any:
        """``call_next`` of the mod: the ClientApp's train function returning this client's vector."""

        def call_next(msg: Message, ctxt: Context) -> Message:
            fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([self.vectors[nid]]), 1, {})
            return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

        return call_next

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Message]:
        """Deliver each message to its client's ``secaggplus_mod`` through protobuf; return the replies."""
        self.stage_index += 1
        stage = STAGE_NAMES[self.stage_index]
        start = time.perf_counter()
        client_total = 0.0
        replies: list[Message] = []
        for msg in messages:
            nid = msg.metadata.dst_node_id
            wire = message_to_proto(msg).SerializeToString()  # server side
            self.received[nid] += len(wire)
            if stage == "collect_masked_vectors" and nid in self.dropped:
                continue  # the client went silent: its reply never arrives
            t = time.perf_counter()
            proto = ProtoMessage()
            proto.ParseFromString(wire)
            incoming = message_from_proto(proto)
            reply = secaggplus_mod(incoming, self.contexts[nid], self._fit(nid))
            out = message_to_proto(reply).SerializeToString()
            spent = time.perf_counter() - t
            client_total += spent
            self.client_seconds[nid][stage] = spent
            self.sent[nid] += len(out)
            back = ProtoMessage()  # server side
            back.ParseFromString(out)
            replies.append(message_from_proto(back))
        self.stage_wall.append(time.perf_counter() - start - client_total)
        return replies


def run(
    n: int, dim: int, neighbours: int | None, dropout: float, threshold: int | None, clip: float, seed: int
) -> dict[str, Any]:
    """Run one SecAgg+ round and return its measurements (see the module docstring)."""
    if n < 3:
        raise ValueError(f"`n` must be at least 3. Found {n}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Found {dropout}.")
    full_mesh = neighbours is None or neighbours >= n - 1
    num_shares = n if full_mesh or neighbours is None else neighbours + (1 - neighbours % 2)
    flower_neighbours = num_shares - 1
    if threshold is None:
        threshold = num_shares // 2 + 1
    # What flwr.server.compat.app sets before running a ServerApp's workflow.
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, SUPERLINK_NODE_ID, 1
    random.seed(seed)  # the workflow shuffles the ring with `random`
    rng = np.random.default_rng(seed)
    node_ids = [int(x) for x in rng.choice(2**62, size=n, replace=False) + 1]
    data = rng.uniform(-0.1, 0.1, (n, dim))
    vectors = {nid: data[i] for i, nid in enumerate(node_ids)}
    k_drop = round(dropout * n)
    drop_rng = np.random.default_rng([seed, 1])  # the dropped set does not depend on D
    dropped = {int(x) for x in drop_rng.choice(node_ids, size=k_drop, replace=False)} if k_drop else set()
    grid = InProcessGrid(vectors, dropped)

    manager = SimpleClientManager()
    for nid in node_ids:
        manager.register(GridClientProxy(nid, grid, 1))
    strategy = FedAvg(fraction_fit=1.0, min_fit_clients=n, min_available_clients=n, fraction_evaluate=0.0)
    state = RecordDict()
    state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WorkflowKey.CURRENT_ROUND: 1})
    state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(ndarrays_to_parameters([]), True)
    server_context = Context(run_id=1, node_id=SUPERLINK_NODE_ID, node_config={}, state=state, run_config={})
    context = LegacyContext(server_context, strategy=strategy, client_manager=manager)
    workflow = SecAggPlusWorkflow(
        num_shares=num_shares if num_shares < n else 1.0,
        reconstruction_threshold=threshold,
        max_weight=1.0,
        clipping_range=clip,
    )

    stage_server_s: dict[str, float] = {}
    stage_ok: dict[str, bool] = {}
    for stage in STAGE_NAMES:  # time each of the workflow's stage methods (instance wrappers, code unchanged)
        setattr(workflow, f"{stage}_stage", _timed(getattr(workflow, f"{stage}_stage"), stage, grid, stage_server_s, stage_ok))
    start = time.perf_counter()
    workflow(grid, context)
    wall = time.perf_counter() - start

    survivors = [i for i, nid in enumerate(node_ids) if nid not in dropped]
    row: dict[str, Any] = {
        "n": n,
        "dim": dim,
        "neighbours_requested": neighbours,
        "flower_neighbours": flower_neighbours,
        "num_shares": num_shares,
        "threshold": threshold,
        "dropout": dropout,
        "survivors": len(survivors),
        "wall_s": wall,
    }
    halted = [stage for stage in STAGE_NAMES if not stage_ok.get(stage, False)]
    if halted:
        row["error"] = f"SecAgg+ halted in stage {halted[0]!r} (Flower logs 'Insufficient available nodes' or too few shares)"
        return row
    params = compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
    mean = parameters_to_ndarrays(params)[0]
    everyone = list(node_ids)
    per_stage = {
        stage: statistics.median(times[stage] for times in grid.client_seconds.values() if stage in times)
        for stage in STAGE_NAMES
    }
    server_s = wall - sum(sum(times.values()) for times in grid.client_seconds.values())
    row |= {
        "server_s": server_s,
        "server_s_per_stage": stage_server_s,
        "client_s_median_per_stage": per_stage,
        "client_total_median_s": statistics.median(sum(grid.client_seconds[u].values()) for u in everyone),
        "round_s_est": server_s + sum(per_stage.values()),
        "bytes_sent_median": statistics.median(grid.sent[u] for u in everyone),
        "bytes_received_median": statistics.median(grid.received[u] for u in everyone),
        "mean_max_abs_err": float(np.max(np.abs(mean - data[survivors].mean(0)))),
        "flwr_version": _flwr_version(),
    }
    row["bytes_per_device_median"] = row["bytes_sent_median"] + row["bytes_received_median"]
    return row


def _timed(method: Any, stage: str, grid: InProcessGrid, out: dict[str, float], ok_out: dict[str, bool]) -> Any:
    """Wrap a workflow stage method: its wall time minus the clients' time in it is the server's."""

    def wrapper(*args: Any) -> Any:
        before = sum(sum(times.values()) for times in grid.client_seconds.values())
        t = time.perf_counter()
        ok = method(*args)
        clients = sum(sum(times.values()) for times in grid.client_seconds.values()) - before
        out[stage] = time.perf_counter() - t - clients
        ok_out[stage] = bool(ok)
        print(f"[flower_secagg] {stage}: server {out[stage]:.2f} s, clients {clients:.2f} s (sequential)", file=sys.stderr)
        return ok

    return wrapper


def _flwr_version() -> str:
    from importlib.metadata import version

    return version("flwr")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One in-process round of Flower's SecAgg+ (see the module docstring).")
    parser.add_argument("--n", type=int, default=100, help="number of clients")
    parser.add_argument("--dim", type=int, default=55_506, help="vector length D")
    parser.add_argument("--neighbours", type=int, default=None, help="k; omit (or >= n - 1) for the full mesh")
    parser.add_argument("--dropout", type=float, default=0.0, help="fraction silent at collect-masked-vectors")
    parser.add_argument("--threshold", type=int, default=None, help="Shamir threshold (default num_shares // 2 + 1)")
    parser.add_argument("--clip", type=float, default=1.0, help="clipping_range")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    row = run(args.n, args.dim, args.neighbours, args.dropout, args.threshold, args.clip, args.seed)
    if args.json:
        print(json.dumps(row))
    else:
        for key, value in row.items():
            print(f"{key}: {value}")
    sys.exit(1 if "error" in row else 0)


if __name__ == "__main__":
    main()
