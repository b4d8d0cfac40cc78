"""Aggregation suite: one secure-aggregation round vs the number of devices and the vector length D.

Each row is one :func:`privrec.sdk.secagg.simulate_round` with real clients, a real server and real
crypto (X25519, AES-GCM, Shamir), every message through JSON, at 0% and 30% dropout. The 30% devices
go silent at the masked-input stage (after sharing their keys), the costly case: the server must
reconstruct their pairwise masks from the survivors' shares (Bonawitz et al. 2017, §4, Round 4).
Clients run one after another in this process, so ``wall_s`` is the sum of every client's and the
server's time; ``round_s_est`` = server time + the sum over stages of the median client time is what a
round costs when devices run in parallel (network excluded). Bytes are the JSON bytes each device sends
and receives (median over devices). Threshold: ``floor(n / 2) + 1``; full mesh (no SecAgg+ graph).

Flower comparison: ``result["flower"]`` puts privrec's round next to one round of Flower's
SecAgg+ (``flwr``, the optional bench extra, installed into its own ``.venv-flwr`` by
``make bench-flower``) on the same n, D, neighbour count, threshold and dropout, run in the same bench
run. Flower runs in a subprocess (``privrec/benchmarks/flower_secagg.py``, which imports only flwr and
numpy and documents the Flower code paths it drives); the same estimate is reported for both:
``round_s_est`` = server seconds + Σ_stages median client seconds, and bytes per device are the
serialised messages (privrec: JSON; Flower: protobuf). Flower's ring graph only has even neighbour
counts, so k = 11 runs Flower with 10 neighbours (slightly less work for Flower). When ``.venv-flwr``
is missing the comparison is skipped with a note; it never fails the bench.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FULL", "QUICK", "AggregationPlan", "FlowerPlan", "flower_markdown", "run_aggregation", "run_flower_comparison"]


#: The ML-100K model's vector length D: 1682 items × (32 factors + 1 bias).
ML100K_LENGTH = 1682 * 33

#: The Flower side: the standalone script and the interpreter of the venv it runs in (``make bench-flower``, at the
#: repository root; ``PRIVREC_FLOWER_PYTHON`` overrides).
FLOWER_SCRIPT = Path(__file__).with_name("flower_secagg.py")
FLOWER_PYTHON = Path(os.environ.get("PRIVREC_FLOWER_PYTHON", Path(__file__).resolve().parents[2] / ".venv-flwr/bin/python"))
FLOWER_NOT_INSTALLED = "not installed: run `make bench-flower` (builds .venv-flwr with flwr, the optional bench extra)"


@dataclass(frozen=True)
class FlowerPlan:
    """privrec vs Flower's SecAgg+ on the same round.

    Attributes:
        configs: ``(devices, neighbours, threshold)`` triples; ``neighbours=None`` is the full mesh.
            The thresholds are explicit because SecAgg+ with ~11 neighbours and 30% random dropout
            aborts at a majority threshold (some neighbourhood keeps fewer than ``t`` survivors) in
            both implementations; ``t = 5`` is the largest that both complete at this seed.
        length: D.
        dropouts: fractions of the devices that go silent before sending their masked vector.
        timeout_s: per Flower subprocess; a timeout is recorded as an error row.
    """

    configs: tuple[tuple[int, int | None, int], ...]
    length: int
    dropouts: tuple[float, ...] = (0.0, 0.3)
    timeout_s: float = 1_800.0


@dataclass(frozen=True)
class AggregationPlan:
    """Device counts, vector lengths and dropout fractions (and the Flower comparison, if any)."""

    devices: tuple[int, ...]
    lengths: tuple[int, ...]
    dropouts: tuple[float, ...] = (0.0, 0.3)
    seed: int = 0
    flower: FlowerPlan | None = field(default=None)


FULL = AggregationPlan(
    devices=(10, 50, 100),
    lengths=(1_000, 10_000),
    flower=FlowerPlan(configs=((100, 11, 5), (100, None, 51)), length=ML100K_LENGTH),
)
QUICK = AggregationPlan(
    devices=(5, 10), lengths=(100, 1_000), flower=FlowerPlan(configs=((10, 4, 2),), length=1_000)
)


def run_aggregation(plan: AggregationPlan) -> dict[str, Any]:
    """Simulate every (n, D, dropout); returns ``{"plan", "rows", "http"}``."""
    from privrec.sdk.secagg.local import simulate_round
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
        "flower": run_flower_comparison(plan.flower, seed=plan.seed) if plan.flower else {"status": "not planned", "rows": []},
    }


def _privrec_side(n: int, length: int, neighbours: int | None, threshold: int, dropout: float, seed: int) -> dict[str, Any]:
    from privrec.sdk.secagg.local import simulate_round
    from privrec.sdk.secagg.stages import Stage

    vectors = np.random.default_rng(seed).uniform(-0.1, 0.1, (n, length))
    drop = {Stage.MASKED_INPUT_COLLECTION: dropout} if dropout else None
    try:
        total, stats = simulate_round(
            vectors, threshold=threshold, neighbours=neighbours, dropout=drop, clip_range=1.0, seed=seed
        )
    except Exception as exc:  # an aborted round is a result
        return {"error": f"{type(exc).__name__}: {exc}"}
    survivors = np.array(stats.survivors) - 1
    return {
        "survivors": len(stats.survivors),
        "round_s_est": stats.server_seconds + sum(stats.client_seconds_median.values()),
        "server_s": stats.server_seconds,
        "client_total_median_s": stats.client_seconds_total_median,
        "wall_s": stats.wall_seconds,
        "bytes_per_device_median": stats.bytes_sent_median + stats.bytes_received_median,
        "bytes_sent_median": stats.bytes_sent_median,
        "sum_max_abs_err": float(np.max(np.abs(total - vectors[survivors].sum(0)))),
    }


def _flower_side(
    python: Path, n: int, length: int, neighbours: int | None, threshold: int, dropout: float, seed: int, timeout_s: float
) -> dict[str, Any]:
    cmd = [str(python), str(FLOWER_SCRIPT), "--n", str(n), "--dim", str(length), "--threshold", str(threshold)]
    cmd += ["--dropout", str(dropout), "--seed", str(seed), "--json"] + (["--neighbours", str(neighbours)] if neighbours else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or 'no output'}"}
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def run_flower_comparison(plan: FlowerPlan, *, seed: int = 0, python: Path | None = None) -> dict[str, Any]:
    """privrec's :func:`~privrec.sdk.secagg.simulate.simulate_round` and Flower's SecAgg+ on the same rounds.

    Returns ``{"status", "python", "rows"}``; ``status`` is ``"ok"`` or :data:`FLOWER_NOT_INSTALLED`
    (then no row is run). Each row holds both sides (``privrec_*``, ``flower_*``) and the ratios
    ``round_ratio`` = privrec round_s_est / Flower round_s_est and ``bytes_ratio`` likewise.
    """
    python = python or FLOWER_PYTHON
    if not python.exists():
        return {"status": FLOWER_NOT_INSTALLED, "python": str(python), "rows": []}
    rows: list[dict[str, Any]] = []
    for n, neighbours, threshold in plan.configs:
        for dropout in plan.dropouts:
            mine = _privrec_side(n, plan.length, neighbours, threshold, dropout, seed)
            theirs = _flower_side(python, n, plan.length, neighbours, threshold, dropout, seed, plan.timeout_s)
            row: dict[str, Any] = {
                "devices": n,
                "length": plan.length,
                "neighbours": neighbours if neighbours else n - 1,
                "flower_neighbours": theirs.get("flower_neighbours"),
                "threshold": threshold,
                "dropout": dropout,
                "flwr_version": theirs.get("flwr_version"),
            }
            row |= {f"privrec_{k}": v for k, v in mine.items()}
            row |= {f"flower_{k}": v for k, v in theirs.items() if k not in {"flower_neighbours", "flwr_version"}}
            if "error" not in mine and "error" not in theirs:
                row["round_ratio"] = mine["round_s_est"] / theirs["round_s_est"]
                row["wall_ratio"] = mine["wall_s"] / theirs["wall_s"]
                row["bytes_ratio"] = mine["bytes_per_device_median"] / theirs["bytes_per_device_median"]
            rows.append(row)
            print(
                f"[bench aggregation] flower comparison n={n} k={row['neighbours']} D={plan.length} dropout={dropout}: "
                f"privrec {mine.get('round_s_est', float('nan')):.2f} s, flower {theirs.get('round_s_est', float('nan')):.2f} s",
                file=sys.stderr,
            )
    return {"status": "ok", "python": str(python), "rows": rows}


def flower_markdown(result: dict[str, Any]) -> str:
    """The privrec-vs-Flower section of the aggregation report (markdown)."""
    from .report import table

    flower = result.get("flower") or {"status": "not planned", "rows": []}
    head = "## privrec vs Flower SecAgg+ (same n, D, k, t, dropout; same run)\n\n"
    if flower["status"] != "ok":
        return head + f"Flower: {flower['status']}.\n"
    version = next((r["flwr_version"] for r in flower["rows"] if r.get("flwr_version")), "?")
    note = (
        f"flwr {version}, in-process (no gRPC), via `{FLOWER_SCRIPT.name}`. round s (est.) = server + Σ stage median client"
        " time, for both. Bytes: privrec JSON, Flower protobuf, sent + received per device (median). Ratios are privrec / Flower"
        " (lower is better for privrec). Flower's ring graph has an even neighbour count: k = 11 runs Flower with 10.\n\n"
    )
    columns = [
        ("devices", "n"),
        ("length", "D"),
        ("neighbours", "k"),
        ("flower_neighbours", "k (Flower)"),
        ("threshold", "t"),
        ("dropout", "dropout"),
        ("privrec_round_s_est", "privrec round s"),
        ("flower_round_s_est", "Flower round s"),
        ("round_ratio", "round ratio"),
        ("privrec_wall_s", "privrec wall s"),
        ("flower_wall_s", "Flower wall s"),
        ("privrec_bytes_per_device_median", "privrec B/device"),
        ("flower_bytes_per_device_median", "Flower B/device"),
        ("bytes_ratio", "bytes ratio"),
        ("privrec_error", "privrec error"),
        ("flower_error", "Flower error"),
    ]
    return head + note + table(flower["rows"], columns)
