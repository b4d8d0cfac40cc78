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

Scale: ``result["scale"]`` runs SecAgg+ at n = 100, 1,000 and 10,000 devices with D = the ML-100K layout
(1,682 items × (32 factors + 1 bias)), a neighbourhood of k = log2 n rounded up to an even count (Bell et al.
2020, §3: k = O(log n) keeps per-client cost logarithmic) and t = k/2 + 1 (a majority of each closed
neighbourhood of k + 1). Each row runs in a fresh subprocess so its peak RSS is its own: ``peak_rss_mb`` is the
process's high-water mark (inputs, every simulated client and the server), ``round_rss_mb`` that mark minus
the RSS just before the round (the n devices' float32 inputs and the imports excluded), an upper bound on
what the server needs, since the simulated clients' state is in it too. ``growth`` fits ``log y = a + b log n``
over the rows of each dropout: b is the growth exponent (1 = linear in n). Flower's SecAgg+ runs beside it at
the same (n, k, t) while its previous n, scaled linearly, fits the time budget.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FULL",
    "QUICK",
    "SCALE",
    "SCALE_QUICK",
    "AggregationPlan",
    "FlowerPlan",
    "ScalePlan",
    "flower_markdown",
    "run_aggregation",
    "run_flower_comparison",
    "run_scale",
    "scale_markdown",
    "scale_neighbourhood",
]


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
class ScalePlan:
    """SecAgg+ at growing n with the neighbourhood of :func:`scale_neighbourhood`.

    Attributes:
        devices: the device counts n.
        length: D, values per device.
        dropouts: fractions of devices silent before sending their masked vector. With k + 1 = 15 at n = 10,000
            and t = 8, a round aborts when some closed neighbourhood loses 8 of 15: about n · C(15, 8) · p^8, so
            p = 0.05 keeps that below 0.3% where p = 0.1 would abort one round in four.
        dropout_devices: the n at which the non-zero dropouts run (``None``: every n). The full plan leaves the
            dropout round out at 10,000: one such round is about 4 minutes of one core on an idle machine and ten
            times that when the 2 shared cores are busy.
        flower_dropouts: the dropouts Flower also runs (each Flower round at 1,000 devices takes minutes).
        flower_budget_s: Flower runs at n while its wall time at the previous n, times the growth in n, fits this.
        timeout_s: per subprocess (privrec or Flower); a timeout is recorded as an error row.
    """

    devices: tuple[int, ...]
    length: int = ML100K_LENGTH
    dropouts: tuple[float, ...] = (0.0, 0.05)
    dropout_devices: tuple[int, ...] | None = None
    flower_dropouts: tuple[float, ...] = (0.0,)
    flower_budget_s: float = 900.0
    seed: int = 0
    timeout_s: float = 3_600.0


@dataclass(frozen=True)
class AggregationPlan:
    """Device counts, vector lengths and dropout fractions (and the Flower comparison, if any)."""

    devices: tuple[int, ...]
    lengths: tuple[int, ...]
    dropouts: tuple[float, ...] = (0.0, 0.3)
    seed: int = 0
    flower: FlowerPlan | None = field(default=None)
    scale: ScalePlan | None = field(default=None)


SCALE = ScalePlan(devices=(100, 1_000, 10_000), dropout_devices=(100, 1_000))
SCALE_QUICK = ScalePlan(devices=(8, 16), length=1_000, flower_budget_s=120.0, timeout_s=600.0)
FULL = AggregationPlan(
    devices=(10, 50, 100),
    lengths=(1_000, 10_000),
    flower=FlowerPlan(configs=((100, 11, 5),), length=ML100K_LENGTH),
    scale=SCALE,
)
QUICK = AggregationPlan(
    devices=(5, 10), lengths=(100, 1_000), flower=FlowerPlan(configs=((10, 4, 2),), length=1_000), scale=SCALE_QUICK
)


def scale_neighbourhood(n: int) -> tuple[int, int]:
    """``(k, t)`` for n devices: k = ⌈log2 n⌉ rounded up to even (Flower's ring has even k; capped at n - 1), and
    t = k // 2 + 1, a majority of each closed neighbourhood of k + 1 (no Round-3 caveat, see ``SecAggConfig``)."""
    if n < 3:
        raise ValueError(f"`n` must be >= 3 for a SecAgg+ neighbourhood. Found {n}.")
    k = math.ceil(math.log2(n))
    k = min(k + k % 2, n - 1)
    return k, k // 2 + 1


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
        "scale": run_scale(plan.scale) if plan.scale else {"rows": [], "growth": [], "flower": {"status": "not planned"}},
    }


def _rss_kb(field_name: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in kB (Linux ``/proc/self/status``; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def scale_row(n: int, length: int, dropout: float, seed: int) -> dict[str, Any]:
    """One SecAgg+ round at n devices (run by :func:`run_scale` in a fresh process; see the module docstring)."""
    from privrec.sdk.secagg.local import simulate_round
    from privrec.sdk.secagg.stages import Stage

    k, t = scale_neighbourhood(n)
    rng = np.random.default_rng(seed + n)
    vectors = np.empty((n, length), dtype=np.float32)  # float32 and filled in blocks: 2.2 GB at 10,000 × ML-100K
    for first in range(0, n, 512):
        block = vectors[first : first + 512]
        block[:] = rng.uniform(-0.1, 0.1, block.shape)
    rss_before = _rss_kb("VmRSS")
    drop = {Stage.MASKED_INPUT_COLLECTION: dropout} if dropout else None
    row: dict[str, Any] = {"devices": n, "length": length, "neighbours": k, "threshold": t, "dropout": dropout}
    try:
        total, stats = simulate_round(vectors, threshold=t, neighbours=k, dropout=drop, clip_range=1.0, seed=seed)
    except Exception as exc:  # an aborted round is a result
        return row | {"error": f"{type(exc).__name__}: {exc}"}
    want = np.zeros(length)
    for u in stats.survivors:
        want += vectors[u - 1]
    return row | {
        "survivors": len(stats.survivors),
        "server_s": stats.server_seconds,
        "client_total_median_s": stats.client_seconds_total_median,
        "round_s_est": stats.server_seconds + sum(stats.client_seconds_median.values()),
        "wall_s": stats.wall_seconds,
        "bytes_sent_median": stats.bytes_sent_median,
        "bytes_received_median": stats.bytes_received_median,
        "bytes_per_device_median": stats.bytes_sent_median + stats.bytes_received_median,
        "peak_rss_mb": _rss_kb("VmHWM") / 1024,
        "round_rss_mb": (_rss_kb("VmHWM") - rss_before) / 1024,
        "sum_max_abs_err": float(np.max(np.abs(total - want))),
    }


def _scale_subprocess(n: int, length: int, dropout: float, seed: int, timeout_s: float) -> dict[str, Any]:
    code = (
        "import json, sys; from privrec.benchmarks.aggregation import scale_row; "
        f"print(json.dumps(scale_row({n}, {length}, {dropout!r}, {seed})))"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"devices": n, "length": length, "dropout": dropout, "error": f"timed out after {timeout_s:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"devices": n, "length": length, "dropout": dropout, "error": f"exit {proc.returncode}: {tail[0]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    return out


#: The figures whose growth in n is fitted: (key, label).
GROWTH = (
    ("round_s_est", "round s (est.)"),
    ("server_s", "server s"),
    ("client_total_median_s", "client s (median)"),
    ("bytes_per_device_median", "bytes per device"),
    ("round_rss_mb", "round RSS MB"),
)


def growth_exponents(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Least-squares slope b of ``log y = a + b log n`` per dropout and figure (rows without errors, >= 2 n)."""
    out: list[dict[str, Any]] = []
    for dropout in sorted({r["dropout"] for r in rows}):
        ok = [r for r in rows if r["dropout"] == dropout and "error" not in r]
        if len({r["devices"] for r in ok}) < 2:
            continue
        entry: dict[str, Any] = {"dropout": dropout, "devices": [r["devices"] for r in ok]}
        for key, _ in GROWTH:
            pts = [(r["devices"], r[key]) for r in ok if r.get(key, 0) > 0]
            if len(pts) >= 2:
                entry[key] = float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])
        out.append(entry)
    return out


def run_scale(plan: ScalePlan, *, python: Path | None = None) -> dict[str, Any]:
    """SecAgg+ rows at every n × dropout (each in a subprocess), their growth exponents, and Flower beside them.

    Returns ``{"plan", "rows", "growth", "flower"}``; ``flower`` is ``{"status", "rows"}`` as in
    :func:`run_flower_comparison`, its rows pairing each Flower round with the privrec row of the same n and dropout.
    """
    from tqdm import tqdm

    rows: list[dict[str, Any]] = []
    cases = [
        (n, dropout)
        for n in plan.devices
        for dropout in plan.dropouts
        if dropout == 0.0 or plan.dropout_devices is None or n in plan.dropout_devices
    ]
    for n, dropout in tqdm(cases, desc="bench aggregation: scale", file=sys.stderr):
        row = _scale_subprocess(n, plan.length, dropout, plan.seed, plan.timeout_s)
        rows.append(row)
        print(f"[bench aggregation] scale n={n} dropout={dropout}: {row.get('round_s_est', row.get('error'))}", file=sys.stderr)
    python = python or FLOWER_PYTHON
    flower: dict[str, Any] = {"status": "ok", "python": str(python), "rows": []}
    if not python.exists():
        flower = {"status": FLOWER_NOT_INSTALLED, "python": str(python), "rows": []}
    for dropout in plan.flower_dropouts if python.exists() else ():
        previous: tuple[int, float] | None = None
        for n in plan.devices:
            k, t = scale_neighbourhood(n)
            mine = next((r for r in rows if r["devices"] == n and r["dropout"] == dropout), {"error": "not run"})
            base: dict[str, Any] = {"devices": n, "length": plan.length, "neighbours": k, "threshold": t, "dropout": dropout}
            estimate = previous[1] * n / previous[0] if previous else 0.0
            if estimate > plan.flower_budget_s:
                last = previous[0] if previous else 0
                why = f"skipped: ~{estimate:.0f} s (linear from n = {last}) > {plan.flower_budget_s:.0f} s budget"
                flower["rows"].append(base | {"flower_error": why})
                continue
            theirs = _flower_side(python, n, plan.length, k, t, dropout, plan.seed, plan.timeout_s)
            row = base | {"flower_neighbours": theirs.get("flower_neighbours"), "flwr_version": theirs.get("flwr_version")}
            row |= {f"privrec_{key}": v for key, v in mine.items() if key not in base}
            row |= {f"flower_{key}": v for key, v in theirs.items() if key not in {"flower_neighbours", "flwr_version"}}
            if "error" not in mine and "error" not in theirs:
                row["round_ratio"] = mine["round_s_est"] / theirs["round_s_est"]
                row["wall_ratio"] = mine["wall_s"] / theirs["wall_s"]
                row["bytes_ratio"] = mine["bytes_per_device_median"] / theirs["bytes_per_device_median"]
                previous = (n, float(theirs["wall_s"]))
            else:
                previous = (n, math.inf)
            flower["rows"].append(row)
            print(f"[bench aggregation] scale flower n={n}: {theirs.get('round_s_est', theirs.get('error'))}", file=sys.stderr)
    return {"plan": asdict(plan), "rows": rows, "growth": growth_exponents(rows), "flower": flower}


def scale_acceptance(scale: dict[str, Any]) -> list[dict[str, Any]]:
    """The two scale goals: n = 10,000 (the largest n) completes with its exponent; privrec ≤ 0.5× Flower's round
    time at n = 1,000 if Flower finished there, else at Flower's largest finished n."""
    rows, out = scale["rows"], []
    top = max((r["devices"] for r in rows), default=0)
    done = [r for r in rows if r["devices"] == top and "error" not in r]
    exps = [g for g in scale["growth"] if g["dropout"] == 0.0]
    out.append(
        {
            "goal": f"n = {top:,} completes, growth exponent reported",
            "measured": f"{len(done)} of {sum(r['devices'] == top for r in rows)} rounds; round-time exponent "
            + (f"{exps[0]['round_s_est']:.2f}" if exps and "round_s_est" in exps[0] else "—"),
            "met": bool(done) and len(done) == sum(r["devices"] == top for r in rows) and bool(exps),
        }
    )
    finished = [r for r in scale["flower"]["rows"] if "round_ratio" in r and r["dropout"] == 0.0]
    at = next((r for r in finished if r["devices"] == 1_000), None) or max(finished, key=lambda r: r["devices"], default=None)
    out.append(
        {
            "goal": "privrec round ≤ 0.5× Flower SecAgg+ (n = 1,000, or Flower's largest finished n)",
            "measured": f"{at['round_ratio']:.3g}× at n = {at['devices']:,}" if at else "Flower did not run",
            "met": bool(at and at["round_ratio"] <= 0.5),
        }
    )
    return out


def scale_markdown(result: dict[str, Any]) -> str:
    """The scale section of the aggregation report (markdown)."""
    from .report import table

    scale = result.get("scale") or {"rows": []}
    if not scale["rows"]:
        return ""
    parts = [
        "## Scale: SecAgg+ at 100 – 10,000 devices, D = the ML-100K layout\n",
        "k = ⌈log2 n⌉ rounded up to even, t = k/2 + 1; each row in a fresh process; clients run one after another, "
        "so round s (est.) = server + Σ stage median client time. round RSS = peak RSS minus the RSS before the round "
        "(server and all n simulated clients' state; the inputs excluded): an upper bound on the server's memory.\n",
        "### Acceptance\n",
        table(scale_acceptance(scale), [("goal", "goal"), ("measured", "measured"), ("met", "met")]),
        table(
            scale["rows"],
            [
                ("devices", "n"),
                ("length", "D"),
                ("neighbours", "k"),
                ("threshold", "t"),
                ("dropout", "dropout"),
                ("survivors", "survivors"),
                ("round_s_est", "round s (est.)"),
                ("server_s", "server s"),
                ("client_total_median_s", "client s (median)"),
                ("wall_s", "wall s (sequential)"),
                ("bytes_per_device_median", "B/device"),
                ("peak_rss_mb", "peak RSS MB"),
                ("round_rss_mb", "round RSS MB"),
                ("sum_max_abs_err", "sum max err"),
                ("error", "error"),
            ],
        ),
        "### Growth exponents (slope of log y against log n)\n",
        table(scale["growth"], [("dropout", "dropout"), *GROWTH]),
        "### Beside Flower SecAgg+ (same n, k, t)\n",
    ]
    flower = scale["flower"]
    if flower["status"] != "ok":
        parts.append(f"Flower: {flower['status']}.\n")
    else:
        parts.append(
            table(
                flower["rows"],
                [
                    ("devices", "n"),
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
                    ("flower_error", "Flower error"),
                ],
            )
        )
    return "\n".join(parts)


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
