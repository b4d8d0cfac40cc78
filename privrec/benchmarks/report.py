"""Markdown tables and matplotlib (Agg) PNG plots for the benchmark suites.

Every report starts, and every figure ends, with the machine it ran on (:func:`.machine.machine_line`).
Nothing here measures anything: it formats the dicts the suites return, so a report is regenerated
from one command and never edited by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .machine import machine_info, machine_line

__all__ = ["acceptance", "int8_gain", "latency_markdown", "plot_latency", "plot_rows", "scan_share", "table"]

ACCEPT_BACKENDS = ("onnxruntime", "litert")


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A markdown table of ``rows`` with ``(key, header)`` columns."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def machine_section() -> str:
    """The machine, versions, BLAS pools and thread environment, as markdown."""
    m = machine_info()
    blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads, {b['architecture']})" for b in m["blas"])
    env = ", ".join(f"{k}={v}" for k, v in m["thread_env"].items()) or "none set"
    load = m["load_average_at_start"]
    return (
        f"**Machine**: {machine_line()}; {m['os']}, Python {m['python']}. BLAS (threadpoolctl): {blas or 'none loaded'}"
        f" — limited to 1 thread during timing. Thread env vars: {env}. Load average at start: "
        f"{', '.join(f'{x:.1f}' for x in load) if load else 'n/a'} (a shared machine: absolute times are noisy, "
        "ratios from interleaved runs are the figures to read).\n"
    )


def _pick(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def acceptance(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The latency targets, evaluated at 100k × 32 (or the largest d = 32 catalog measured)."""
    rows = result["rows"]
    cats = sorted({r["catalog"] for r in rows if r["dim"] == 32})
    if not cats:
        return []
    n = 100_000 if 100_000 in cats else cats[-1]
    out: list[dict[str, Any]] = []

    def add(target: str, row: dict[str, Any] | None, key: str, limit: float) -> None:
        if row is None:
            return
        value = float(row[key])
        cold_key = "p50_cold_ms" if key == "p50_ms" else f"{key}_cold"
        out.append(
            {
                "catalog": n,
                "target": target,
                "backend": row["backend"],
                "precision": row["precision"],
                "op": row["op"],
                "measured": value,
                "measured_cold": row.get(cold_key),
                "limit": limit,
                "ok": value <= limit,
                "miss_factor": None if value <= limit else value / limit,
            }
        )

    for op in ("score+top10", "recommend"):
        for backend in ACCEPT_BACKENDS:
            r = _pick(rows, catalog=n, dim=32, backend=backend, precision="int8", op=op)
            add("int8 p50 / numpy f32 ≤ 1.0", r, "ratio_numpy", 1.0)
            add("int8 p50 / memory floor (int8 table) ≤ 3", r, "ratio_floor", 3.0)
            if op == "recommend":  # the tighter goal: a graph within 1.5× of reading the int8 table once
                add("int8 p50 / memory floor (int8 table) ≤ 1.5", r, "ratio_floor", 1.5)
        for backend in ACCEPT_BACKENDS:
            add(
                "float32 p50 / numpy f32 ≤ 1.5",
                _pick(rows, catalog=n, dim=32, backend=backend, precision="float32", op=op),
                "ratio_numpy",
                1.5,
            )
    for backend in ACCEPT_BACKENDS:
        for precision in ("float32", "int8"):
            r = _pick(rows, catalog=n, dim=32, backend=backend, precision=precision, op="finetune")
            add("finetune M=50 p50 ≤ 1 ms", r, "p50_ms", 1.0)
    return out


def int8_gain(result: dict[str, Any]) -> list[dict[str, Any]]:
    """int8 ``recommend`` / ``score+top10``: the shipped int8 graph ("after") vs a graph that dequantizes the whole
    table into float32 on every call ("before"), per runtime × catalog × d; ``speedup`` = before p50 / after p50.

    onnxruntime: ``onnxruntime`` (the bundle's int8 fast path) vs ``onnxruntime-dequant``; LiteRT: ``litert``
    (the bundle) vs ``litert-dequant`` (``recommend`` only).
    """
    rows = result["rows"]
    out = []
    pairs = (("onnxruntime", "onnxruntime-dequant", "onnxruntime"), ("litert", "litert-dequant", "litert"))
    for n, d in sorted({(r["catalog"], r["dim"]) for r in rows}):
        for runtime, before, after in pairs:
            for op in ("recommend", "score+top10"):
                b = _pick(rows, catalog=n, dim=d, backend=before, precision="int8", op=op)
                a = _pick(rows, catalog=n, dim=d, backend=after, precision="int8", op=op)
                if a and b and a is not b:
                    out.append(
                        {
                            "catalog": n,
                            "dim": d,
                            "runtime": runtime,
                            "op": op,
                            "before": before,
                            "before_ms": b["p50_ms"],
                            "after": after,
                            "after_ms": a["p50_ms"],
                            "speedup": b["p50_ms"] / a["p50_ms"],
                            "before_max_abs_err": b.get("max_abs_err"),
                            "after_max_abs_err": a.get("max_abs_err"),
                        }
                    )
    return out


def scan_share(result: dict[str, Any]) -> list[dict[str, Any]]:
    """int8 ``recommend`` against its scan kernel alone, in the same loop, per runtime × catalog × d.

    ``scan`` rows: ``onnxruntime-scan`` (the bundle's ``MatMulNBits`` node as a one-node graph) and ``litert-scan``
    (one int8 ``FULLY_CONNECTED`` with its bias fused); ``recommend_over_scan`` = recommend p50 / scan p50 (what the
    mask, the threshold and the exact re-rank add to the stock kernel).
    """
    rows = result["rows"]
    out = []
    for n, d in sorted({(r["catalog"], r["dim"]) for r in rows}):
        for runtime in ("onnxruntime", "litert"):
            scan = _pick(rows, catalog=n, dim=d, backend=f"{runtime}-scan", precision="int8", op="scan")
            rec = _pick(rows, catalog=n, dim=d, backend=runtime, precision="int8", op="recommend")
            if scan and rec:
                out.append(
                    {
                        "catalog": n,
                        "dim": d,
                        "runtime": runtime,
                        "scan_ms": scan["p50_ms"],
                        "scan_floor": scan["ratio_floor"],
                        "recommend_ms": rec["p50_ms"],
                        "recommend_floor": rec["ratio_floor"],
                        "recommend_over_scan": rec["p50_ms"] / scan["p50_ms"],
                        "scan_max_abs_err": scan.get("max_abs_err"),
                    }
                )
    return out


def latency_markdown(result: dict[str, Any], plots: list[str]) -> str:
    """The latency report."""
    plan = result["plan"]
    parts = [
        "# privrec bench: latency\n",
        machine_section(),
        f"\nSingle thread, {plan['warmup']} warm-up calls per case, then {plan['calls']} visits per case, all cases of a "
        f"(catalog, d) interleaved in a fresh random order every repeat. Each visit makes {plan.get('burst', 2)} "
        "back-to-back calls and times two: **warm** = the last (the steady state a warm benchmark means: after another "
        "case ran, it takes several calls for caches, TLB and prefetchers to refill; p50/p95 and the targets use it) "
        "and **cold** = the first, made after the other cases ran and evicted the caches (closer to "
        "an app that recommends once per screen; listed as `cold` columns, not judged). Synthetic tables "
        "V ~ N(0, 0.3²), b ~ N(0, 0.1²); users N(0, 1). `score+top10` = every item's score as "
        "`Recommender.score(user)` gets it (the `score_all` signature where the artifact has one: TFLite files of "
        "catalogs of 4,096 items or more; else the `score` signature over every id), then the runtime's exact "
        "`privrec.runtime.top_k` (block maxima → "
        "threshold → sort of the few candidates; `numpy-topk` is numpy scoring with the same selection, so the "
        "selection's share of any gain is visible); `recommend` = the signature (K = 10, mask of zeros); `finetune` = M = 50, "
        "the exported 10 steps. `× numpy` = p50 / p50 of the numpy float32 baseline (`V @ u + b`, `argpartition` "
        "top-10) measured in the same loop; `× floor` = p50 / (table bytes of the row's precision ÷ DRAM read "
        "bandwidth measured in the same run: the best `np.add.reduce` pass over a buffer larger than the L3 cache, so the "
        "floor is a lower bound). The numpy baseline allocates four catalog-sized temporaries per call (as hand-written "
        "code does); their page faults make it sensitive to machine load, like every other row. "
        "The 100k × 32 float32 table (12.8 MB) fits in this CPU's L3 cache, so warm calls can beat the DRAM floor; "
        "the hot-buffer bandwidth is listed for reference.\n",
        "\n## Targets\n",
        table(
            acceptance(result),
            [
                ("catalog", "catalog"),
                ("target", "target"),
                ("backend", "backend"),
                ("precision", "precision"),
                ("op", "op"),
                ("measured", "measured (warm)"),
                ("limit", "limit"),
                ("ok", "met"),
                ("miss_factor", "missed by ×"),
                ("measured_cold", "cold-cache value (not judged)"),
            ],
        ),
        "\n## int8 fast path: gain over dequantizing the table per call\n",
        "**after** is the shipped int8 artifact: for onnxruntime the bundle's ONNX graphs (onnxruntime's `MatMulNBits` "
        "over 8-bit rows with their scales and the bias fused; `MatMulInteger` over the transposed table where d is not "
        "a power of two ≥ 16); for LiteRT the bundle's TFLite int8 graph. "
        "**before** dequantizes the whole table into float32 on every call: `onnxruntime-dequant` is the graph a naive "
        "int8 ONNX export produces (`Cast` int8 [n, d] → `Mul` per-row scale [n, 1] → `MatMul` with the user as a "
        "[d, 1] column, so it does not pay onnxruntime's slow 1-D `MatMul` → `Add` bias (→ `Add` mask → `TopK`), "
        "built in the bench, one thread, onnxruntime's `ConstantFolding` disabled: by default onnxruntime folds "
        "`Cast`→`Mul` of the two initializers into a float32 table at load, i.e. 4 bytes per weight resident and the speed "
        "of the `onnxruntime float32` rows, so nothing would be dequantized per call); `litert-dequant` is the previous "
        "TFLite int8 `recommend`. Both run in the "
        "same interleaved loop as every other row. `speedup ×` = before p50 / after p50; `max abs err` = largest "
        "absolute difference from the numpy dequantized reference `(q · s[:, None]) @ u + b` on one call (recorded, "
        "not asserted).\n\n",
        table(
            int8_gain(result),
            [
                ("catalog", "catalog"),
                ("dim", "d"),
                ("runtime", "runtime"),
                ("op", "op"),
                ("before", "before"),
                ("before_ms", "before p50 ms"),
                ("after", "after"),
                ("after_ms", "after p50 ms"),
                ("speedup", "speedup ×"),
                ("before_max_abs_err", "before max abs err"),
                ("after_max_abs_err", "after max abs err"),
            ],
        ),
        "\n## int8 `recommend` against its scan kernel alone\n",
        "What the stock kernel costs by itself, in the same interleaved loop: `onnxruntime-scan` is the bundle's own "
        "`MatMulNBits` node (8-bit rows, one block of d per row, `accuracy_level` 4, bias fused) as a one-node graph "
        "with the same session options; `litert-scan` is one int8 `FULLY_CONNECTED` (the converter's dynamic-range "
        "quantization of the same dequantized table: one scale per row, bias fused; the bundle's graph uses one scale "
        "for the table and multiplies the per-row scales afterwards, which spares the file LiteRT's one int64 zero "
        "point per row: 8 bytes per item). `recommend ÷ scan` is what the mask, the threshold and the exact re-rank "
        "add. The 3.2 MB int8 table of 100k × 32 stays in this CPU's L3 cache between warm calls, so the kernel "
        "runs at the core's speed, which other jobs on this shared machine move, while the DRAM floor is the run's "
        "best streaming pass.\n\n",
        table(
            scan_share(result),
            [
                ("catalog", "catalog"),
                ("dim", "d"),
                ("runtime", "runtime"),
                ("scan_ms", "scan p50 ms"),
                ("scan_floor", "scan × floor"),
                ("recommend_ms", "recommend p50 ms"),
                ("recommend_floor", "recommend × floor"),
                ("recommend_over_scan", "recommend ÷ scan"),
                ("scan_max_abs_err", "scan max abs err"),
            ],
        ),
        "\n## Baselines\n",
        table(
            result["baselines"],
            [
                ("catalog", "catalog"),
                ("dim", "d"),
                ("numpy_p50_ms", "numpy p50 ms"),
                ("numpy_p95_ms", "numpy p95 ms"),
                ("numpy_p50_cold_ms", "numpy cold p50 ms"),
                ("bandwidth_dram_gbs", "DRAM GB/s"),
                ("bandwidth_hot_gbs", "hot GB/s"),
                ("floor_float32_ms", "floor f32 ms"),
                ("floor_int8_ms", "floor int8 ms"),
            ],
        ),
        "\n## All rows\n",
        table(
            result["rows"],
            [
                ("catalog", "catalog"),
                ("dim", "d"),
                ("backend", "backend"),
                ("precision", "precision"),
                ("op", "op"),
                ("p50_ms", "p50 ms"),
                ("p95_ms", "p95 ms"),
                ("ratio_numpy", "× numpy"),
                ("ratio_floor", "× floor"),
                ("p50_cold_ms", "cold p50 ms"),
                ("ratio_numpy_cold", "cold × numpy"),
                ("ratio_floor_cold", "cold × floor"),
                ("max_abs_err", "max abs err"),
            ],
        ),
        "\n## Plots\n",
        *[f"![{p}]({p})\n" for p in plots],
    ]
    return "\n".join(parts)


def _figure(title: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    ax.set_title(title, fontsize=10)
    fig.text(0.01, 0.01, machine_line(), fontsize=6, color="0.35")
    return fig, ax


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path.name


def plot_latency(result: dict[str, Any], out: Path) -> list[str]:
    """One PNG per (op, d): p50 vs catalog size per backend × precision, with the numpy baseline and floors."""
    rows, base = result["rows"], result["baselines"]
    names = []
    for d in sorted({r["dim"] for r in rows}):
        for op in ("score+top10", "recommend", "finetune"):
            fig, ax = _figure(f"{op}, d = {d}: p50 latency, one thread")
            series = sorted({(r["backend"], r["precision"]) for r in rows if r["dim"] == d and r["op"] == op})
            for backend, precision in series:
                pts = sorted(
                    (r["catalog"], r["p50_ms"])
                    for r in rows
                    if r["dim"] == d and r["op"] == op and r["backend"] == backend and r["precision"] == precision
                )
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    marker="o",
                    ls="-" if precision == "float32" else "--",
                    label=f"{backend} {precision}",
                )
            b = sorted(
                (r["catalog"], r["numpy_p50_ms"], r["floor_float32_ms"], r["floor_int8_ms"]) for r in base if r["dim"] == d
            )
            ax.plot([x[0] for x in b], [x[1] for x in b], color="k", lw=2, label="numpy f32 baseline")
            ax.plot([x[0] for x in b], [x[2] for x in b], color="0.5", ls=":", label="memory floor f32")
            ax.plot([x[0] for x in b], [x[3] for x in b], color="0.7", ls=":", label="memory floor int8")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("catalog size (items)")
            ax.set_ylabel("p50 (ms)")
            ax.legend(fontsize=6, ncol=2)
            names.append(_save(fig, out / f"latency_{op.replace('+', '_')}_d{d}.png"))
    return names


def plot_rows(
    rows: list[dict[str, Any]],
    out: Path,
    name: str,
    *,
    x: str,
    y: str,
    group: tuple[str, ...],
    title: str,
    xlabel: str,
    ylabel: str,
    bar: bool = False,
) -> str:
    """A generic line (or bar) plot of ``rows``: ``y`` vs ``x``, one series per ``group`` key tuple."""
    fig, ax = _figure(title)
    series = sorted({tuple(r.get(g) for g in group) for r in rows if y in r}, key=str)
    if bar:
        labels = [" ".join(str(v) for v in key) for key in series]
        values = [next(r[y] for r in rows if y in r and tuple(r.get(g) for g in group) == key) for key in series]
        ax.barh(labels, values)
        ax.tick_params(axis="y", labelsize=6)
    else:
        for key in series:
            pts = sorted((r[x], r[y]) for r in rows if y in r and tuple(r.get(g) for g in group) == key)
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                label=" ".join(f"{g}={v}" for g, v in zip(group, key, strict=True)),
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _save(fig, out / name)
