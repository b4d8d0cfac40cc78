"""Aggregation suite: one secure-aggregation round vs the number of devices and the vector length D.

Each row is one :func:`privrec.sdk.secagg.simulate_round` with real clients, a real server and real
crypto (X25519, AES-GCM, Shamir), every message through JSON, at 0% and 30% dropout. The 30% devices
go silent at the masked-input stage (after sharing their keys), the costly case: the server must
reconstruct their pairwise masks from the survivors' shares (Bonawitz et al. 2017, §4, Round 4).
Clients run one after another in this process, so ``wall_s`` is the sum of every client's and the
server's time; ``round_s_est`` = server time + the sum over stages of the median client time is what a
round costs when devices run in parallel (network excluded). Bytes are the JSON bytes each device sends
and receives (median over devices). Threshold: ``floor(n / 2) + 1``; full mesh (no SecAgg+ graph).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["FULL", "QUICK", "AggregationPlan", "run_aggregation"]


@dataclass(frozen=True)
class AggregationPlan:
    """Device counts, vector lengths and dropout fractions."""

    devices: tuple[int, ...]
    lengths: tuple[int, ...]
    dropouts: tuple[float, ...] = (0.0, 0.3)
    seed: int = 0


FULL = AggregationPlan(devices=(10, 50, 100), lengths=(1_000, 10_000))
QUICK = AggregationPlan(devices=(5, 10), lengths=(100, 1_000))


def run_aggregation(plan: AggregationPlan) -> dict[str, Any]:
    """Simulate every (n, D, dropout); returns ``{"plan", "rows", "http"}``."""
    from privrec.sdk.secagg.simulate import simulate_round
    from privrec.sdk.secagg.stages import Stage

    rows: list[dict[str, Any]] = []
    for n in plan.devices:
        for length in plan.lengths:
            vectors = np.random.default_rng(plan.seed + n + length).uniform(-0.1, 0.1, (n, length))
            for dropout in plan.dropouts:
                drop = {Stage.MASKED_INPUT_COLLECTION: dropout} if dropout else None
                try:
                    total, stats = simulate_round(vectors, threshold=n // 2 + 1, dropout=drop, clip_range=1.0, seed=plan.seed)
                except Exception as exc:  # an aborted round is a result
                    rows.append({"devices": n, "length": length, "dropout": dropout, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                survivors = np.array(stats.survivors) - 1
                err = float(np.max(np.abs(total - vectors[survivors].sum(0))))
                rows.append(
                    {
                        "devices": n,
                        "length": length,
                        "dropout": dropout,
                        "survivors": len(stats.survivors),
                        "wall_s": stats.wall_seconds,
                        "server_s": stats.server_seconds,
                        "client_total_median_s": stats.client_seconds_total_median,
                        "round_s_est": stats.server_seconds + sum(stats.client_seconds_median.values()),
                        "bytes_sent_median": stats.bytes_sent_median,
                        "bytes_received_median": stats.bytes_received_median,
                        "bytes_per_device_median": stats.bytes_sent_median + stats.bytes_received_median,
                        "bytes_per_value_sent": stats.bytes_sent_median / length,
                        "sum_max_abs_err": err,
                    }
                )
                print(f"[bench aggregation] n={n} D={length} dropout={dropout}: {stats.wall_seconds:.2f} s", file=sys.stderr)
    return {
        "plan": asdict(plan),
        "rows": rows,
        "http": "not measured: the HTTP round (server_stub + `privrec device simulate`) is not wired into this suite yet",
    }
