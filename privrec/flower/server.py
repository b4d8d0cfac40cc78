"""The ServerApp's rounds: privrec's end-of-round step over Flower's Grid, and the RUN_DIR it writes.

Each round (DP-FedAvg, McMahan et al. 2018, Alg. 1, with Federated Reconstruction, Singhal et al. 2021):

1. the round's :class:`~privrec.sdk.federated.RoundSetup` is fixed (C, Z, q, the cohort denominator q·N for
   the N connected devices) and the ledger's budget checked, as the in-process simulation does;
2. devices join by Poisson sampling at rate q (the amplification the accountant assumes), drawn with
   ``numpy.random.default_rng(seed)`` over the nodes in ``partition-id`` order — the draw
   :func:`~privrec.sdk.federated.simulate.simulate_federated` makes over its devices, so the same seed
   samples the same users;
3. the cohort computes :func:`~privrec.sdk.federated.device_update` in its ClientApps (:mod:`.client_app`),
   summed by Flower's SecAgg+ (:mod:`.aggregation`);
4. :func:`~privrec.sdk.federated.finish_round` — the step the simulation, the facade and ``privrec serve``
   run — adds central noise, divides by q·N, applies the server optimizer (FedAvg with momentum or
   FedAdam), moves C under adaptive clipping, and returns the round's privacy event, which the
   :class:`~privrec.sdk.privacy.PrivacyAccountant` (dp-accounting, RDP and PLD) composes. Flower's own DP
   wrappers are not used: ε is privrec's ledger.

The result is a :class:`~privrec.sdk.federated.FederatedResult`, written as ``privrec train --mode federated``
writes its RUN_DIR (:func:`~privrec.sdk.federated.run.write_federated_run`) and exported by ``privrec export``'s
:func:`~privrec.export.bundle.export_run`. Nothing here imports torch: Flower's environment installs the
device and server path only. The ServerApp does not score held-out users (a deployed server holds no user
data to score them with): its ``metrics.json`` carries the privacy ledger and the Flower settings, and
``privrec evaluate RUN_DIR`` — where the evaluation data and ``privrec[train]`` are — prints the same
held-out metrics ``privrec train`` writes.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid

from privrec.sdk.federated import (
    ParamLayout,
    RoundParams,
    RoundSetup,
    finish_round,
    make_server_optimizer,
    split_aggregate,
)
from privrec.sdk.federated.result import FederatedResult
from privrec.sdk.privacy import AdaptiveClipper, PrivacyAccountant, PrivacyLedger, PrivacyWarning
from privrec.sdk.recipe import ReconstructionRecipe

from .aggregation import Aggregate, MeteredGrid, PollingGrid, plain_sum, secure_sum
from .client_app import PARTITION_QUERY
from .partition import Population, load_population
from .settings import FlowerSettings
from .wire import TrainInstruction

__all__ = ["INSECURE_AGGREGATION_WARNING", "run_rounds", "sampling_order", "server_main", "wait_for_nodes", "write_run"]

INSECURE_AGGREGATION_WARNING = (
    "Secure aggregation was off (secagg.enabled = false): the server received every device's clipped update "
    "in the clear."
)


def wait_for_nodes(grid: Grid, want: int, *, seconds: float) -> list[int]:
    """The connected node ids once at least ``want`` are connected; ``RuntimeError`` after ``seconds``."""
    give_up = time.monotonic() + seconds
    while True:
        nodes = sorted(int(n) for n in grid.get_node_ids())
        if len(nodes) >= want:
            return nodes
        if time.monotonic() > give_up:
            raise RuntimeError(f"only {len(nodes)} of {want} SuperNodes connected within {seconds:.0f} s.")
        time.sleep(0.5)


def sampling_order(grid: Grid, nodes: Sequence[int], *, timeout: float | None) -> list[int]:
    """``nodes`` in ``partition-id`` order (nodes that do not answer last, by node id)."""
    queries = [Message(RecordDict(), dst_node_id=n, message_type=PARTITION_QUERY) for n in nodes]
    partition: dict[int, int] = {}
    for reply in grid.send_and_receive(queries, timeout=timeout):
        if not reply.has_error():
            record = reply.content.config_records.get("partition")
            value = None if record is None else record.get("partition-id")
            if isinstance(value, int) and not isinstance(value, bool):
                partition[reply.metadata.src_node_id] = value
    big = 1 << 62
    return sorted(nodes, key=lambda n: (partition.get(n, big), n))


def _median(counts: dict[int, int], nodes: Sequence[int]) -> float:
    return float(statistics.median(counts.get(n, 0) for n in nodes)) if nodes else 0.0


def run_rounds(grid: Grid, context: Context, settings: FlowerSettings, population: Population) -> FederatedResult:
    """Run ``settings.federated.rounds`` rounds over the connected SuperNodes (module docstring)."""
    t0 = time.perf_counter()
    cfg, seed = settings.federated, settings.seed
    timeout = settings.secagg.timeout or None
    polling: Grid = PollingGrid(grid)  # type: ignore[assignment]
    metered = MeteredGrid(polling) if settings.meter_bytes else None
    link: Grid = metered if metered is not None else polling  # type: ignore[assignment]
    nodes = sampling_order(polling, wait_for_nodes(grid, settings.min_nodes or population.size,
                                                seconds=settings.node_wait_seconds), timeout=timeout)
    features = None
    if cfg.item_features == "genre":
        from privrec.sdk.federated.side_info import movielens100k_item_features

        features = movielens100k_item_features(population.data)[0]
    layout = ParamLayout(num_items=population.split.num_items, dim=cfg.dim, free_embedding=cfg.free_embedding,
                         features=features, train_bias=cfg.train_bias)
    recipe = ReconstructionRecipe.from_finetune(cfg.finetune, recency_half_life=cfg.recency_half_life)
    N = len(nodes)
    m = cfg.expected_cohort(N)
    dp = cfg.dp_config(expected_devices=m, noise_seed=seed)  # warns (PrivacyWarning) in mode "off"
    private = dp.mode != "off"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)  # DPConfig already warned about seeded noise
        noise = dp.make_noise()  # the generator privrec serve uses: seeded only when secure_noise is false
    clipper = None
    if dp.adaptive_clipping and dp.count_noise_std is not None:
        clipper = AdaptiveClipper(initial_clip_norm=dp.clip_norm, count_noise_std=dp.count_noise_std,
                                  target_unclipped_quantile=dp.target_unclipped_quantile,
                                  clip_learning_rate=dp.clip_learning_rate, expected_devices=m)
    optimizer = make_server_optimizer(cfg.server_optimizer, lr=cfg.server_lr, momentum=cfg.server_momentum,
                                      beta1=cfg.beta1, beta2=cfg.beta2, tau=cfg.tau)
    params = layout.init(init_std=cfg.init_std, seed=seed)
    rng = np.random.default_rng(seed)  # cohort sampling, drawn as simulate_federated draws it
    if not settings.secagg.enabled:
        warnings.warn(INSECURE_AGGREGATION_WARNING, PrivacyWarning, stacklevel=2)
    accountant = PrivacyAccountant(delta=cfg.delta)
    history: list[dict[str, Any]] = []
    stop_reason: str | None = None
    aborted = 0
    for r in range(1, cfg.rounds + 1):
        start = time.perf_counter()
        setup = RoundSetup(
            dp_mode=dp.mode, noise_multiplier=dp.resolved_update_noise_multiplier if private else 0.0,
            clip_norm=clipper.clip_norm if clipper is not None else cfg.clip_norm, sample_rate=cfg.sample_rate,
            denominator=m, local_lr=cfg.local_lr, bias_scale=cfg.bias_scale,
            min_survivors=max(1, math.floor(cfg.min_cohort_fraction * m)) if dp.mode == "distributed" else 1,
            count_noise_std=clipper.count_noise_std if clipper is not None else None,
        )
        if cfg.epsilon_budget is not None and accountant.would_exceed(budget=cfg.epsilon_budget, next_event=setup.event()):
            stop_reason = (f"privacy budget reached: round {r} would take ε past {cfg.epsilon_budget} "
                           f"(spent {accountant.epsilon_rdp():.4f} after {r - 1} rounds at δ={cfg.delta}).")
            print(f"privrec: stopping federated training: {stop_reason}", file=sys.stderr)
            break
        cohort = [nodes[i] for i in np.flatnonzero(rng.random(N) < cfg.sample_rate)]  # Poisson sampling
        instruction = TrainInstruction(
            round=RoundParams.from_setup(setup, round_id=f"flower-{context.run_id}-{r}", model_version=r - 1,
                                         max_clients=max(len(cohort), 1), layout=layout),
            recipe=recipe, num_items=layout.num_items, dim=layout.dim, params=params.copy(), features=layout.features,
        )
        aggregate: Aggregate
        if settings.secagg.enabled:
            aggregate = secure_sum(link, context, cohort, instruction, round_number=r, settings=settings.secagg)
        else:
            aggregate = plain_sum(link, cohort, instruction, round_number=r, timeout=timeout)
        applied = False
        if aggregate.total is not None:
            total, count_sum = split_aggregate(aggregate.total, adaptive=setup.adaptive)
            outcome = finish_round(params, total, setup=setup, survivors=aggregate.survivors, optimizer=optimizer,
                                   noise=noise, clipper=clipper, count_sum=count_sum)
            applied = outcome.applied
            if outcome.event is not None:
                accountant.compose(outcome.event)
        if not applied:
            aborted += 1
        row: dict[str, Any] = {
            "round": r, "cohort": len(cohort), "survivors": aggregate.survivors, "applied": applied,
            "clip_norm": setup.clip_norm, "epsilon": accountant.epsilon_rdp() if private else None,
            "seconds": time.perf_counter() - start,
        }
        if metered is not None:
            to_node, from_node = metered.reset()
            row |= {"bytes_received_per_device_median": _median(to_node, cohort),
                    "bytes_sent_per_device_median": _median(from_node, cohort)}
        history.append(row)
        print(f"privrec flower: round {r}: cohort {len(cohort)}, survivors {aggregate.survivors}, applied {applied}, "
              f"{row['seconds']:.2f} s", file=sys.stderr)
    ledger_warnings: list[str] = []
    if aborted:
        ledger_warnings.append(f"{aborted} round(s) released nothing (secure aggregation halted, too few devices, "
                               "or fewer distributed-DP survivors than planned).")
    if not settings.secagg.enabled:
        ledger_warnings.append(INSECURE_AGGREGATION_WARNING)
    ledger = PrivacyLedger.from_accountant(accountant, mode=dp.mode, secure_noise=noise.secure,
                                           warnings=tuple(ledger_warnings))
    return FederatedResult(
        layout=layout, params=params, config=cfg, history=history, ledger=ledger,
        noise_multiplier=dp.resolved_update_noise_multiplier if private else 0.0, rounds_run=len(history),
        stop_reason=stop_reason, train_users=population.devices, heldout_users=population.heldout,
        seconds=time.perf_counter() - t0,
    )


def write_run(out: Path, result: FederatedResult, settings: FlowerSettings, population: Population) -> Path:
    """The RUN_DIR of ``privrec train --mode federated`` (weights, config, history, ledger, items) with a
    ``metrics.json`` of the ledger and the Flower settings (held-out metrics: ``privrec evaluate RUN_DIR``), and
    the bundle in ``out/bundle`` when ``settings.bundle_formats`` names formats."""
    # ``json_safe`` (non-finite floats as null) is how ``privrec train`` writes metrics.json.
    from privrec.sdk.federated.run import json_safe, write_federated_run

    out = write_federated_run(Path(out), result, dataset=population.data.name, seed=settings.seed,
                              items_catalog=population.data.item_catalog())
    metrics = {
        "privacy": result.ledger.to_manifest(),
        "flower": {"secure_aggregation": settings.secagg.enabled, "devices": population.size},
        "run": {"mode": "federated", "dataset": population.data.name, "seed": settings.seed},
    }
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2) + "\n")
    formats = tuple(f for f in settings.bundle_formats.split(",") if f)
    if formats:
        from privrec.export.bundle import export_run

        export_run(out, out / "bundle", formats=formats, overwrite=True)
    return out


def server_main(grid: Grid, context: Context) -> FederatedResult:
    """What the ServerApp runs: read the settings, run the rounds, write the RUN_DIR."""
    settings = FlowerSettings.from_run_config(context.run_config)
    population = load_population(settings.data)
    result = run_rounds(grid, context, settings, population)
    if settings.out_dir:
        out = write_run(Path(settings.out_dir), result, settings, population)
        print(f"privrec flower: RUN_DIR written to {out}", file=sys.stderr)
    return result

