"""The ``privrec bench`` suites: each takes ``(quick, out)``, writes ``out/report.md`` + PNGs + ``out/result.json``,
and returns the JSON-able result (registered in :data:`privrec.bench.SUITES`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import aggregation, coldstart, latency, quality, size
from .machine import machine_info
from .report import (
    acceptance,
    int8_gain,
    latency_markdown,
    machine_section,
    plot_latency,
    plot_rows,
    scan_share,
    table,
)

__all__ = ["run_aggregation_bench", "run_latency_bench", "run_quality_bench", "run_size_bench"]


def _finish(result: dict[str, Any], out: Path, markdown: str, started: float) -> dict[str, Any]:
    result["machine"] = machine_info()
    result["seconds"] = time.perf_counter() - started
    (out / "report.md").write_text(markdown)
    (out / "result.json").write_text(json.dumps(result, indent=1, allow_nan=False, default=str) + "\n")
    return result


def run_latency_bench(*, quick: bool, out: Path) -> dict[str, Any]:
    """Latency of every backend × precision × op against numpy and the memory floor (see :mod:`.latency`)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    result = latency.run_latency(latency.QUICK if quick else latency.FULL)
    result["quick"] = quick
    result["acceptance"] = acceptance(result)
    result["int8_gain"] = int8_gain(result)
    result["scan_share"] = scan_share(result)
    result["cold_start"] = coldstart.run_cold_start(coldstart.COLD_QUICK if quick else coldstart.COLD_FULL)
    plots = plot_latency(result, out)
    md = latency_markdown(result, plots) + "\n" + latency.browser_markdown(result)
    return _finish(result, out, md + "\n" + coldstart.cold_start_markdown(result["cold_start"]), t0)


def run_size_bench(*, quick: bool, out: Path) -> dict[str, Any]:
    """Bytes on disk and gzip per format × precision × sparsity, and HR@10 per compressed model (see :mod:`.size`)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    result = size.run_size(size.QUICK if quick else size.FULL)
    result["quick"] = quick
    ok = [r for r in result["rows"] if "bytes" in r]
    plots = []
    for n, d in sorted({(r["catalog"], r["dim"]) for r in ok}):
        sub = [r for r in ok if r["catalog"] == n and r["dim"] == d]
        plots.append(
            plot_rows(
                sub,
                out,
                f"size_{n}x{d}.png",
                x="format",
                y="bytes",
                group=("format", "precision", "sparsity"),
                title=f"{n} items × d={d}: bytes on disk",
                xlabel="bytes",
                ylabel="",
                bar=True,
            )
        )
    md = size.size_markdown(result, plots, machine_section())
    return _finish(result, out, md, t0)


def run_quality_bench(*, quick: bool, out: Path) -> dict[str, Any]:
    """HR@10 / NDCG@10 per variant on MovieLens-100K (see :mod:`.quality`)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    result = quality.run_quality(quick=quick)
    result["quick"] = quick
    md = "\n".join(
        [
            "# privrec bench: quality\n",
            machine_section(),
            "",
            *[f"- {n}" for n in result["notes"]],
            "",
            table(
                result["rows"],
                [
                    ("variant", "variant"),
                    ("full_hr", "full HR@10"),
                    ("full_ndcg", "full NDCG@10"),
                    ("sampled_hr", "sampled HR@10"),
                    ("sampled_ndcg", "sampled NDCG@10"),
                    ("epsilon", "ε"),
                    ("delta", "δ"),
                    ("source", "source"),
                ],
            ),
            f"\nMissing variants: {', '.join(result['missing']) or 'none'}.\n",
        ]
    )
    return _finish(result, out, md, t0)


def run_aggregation_bench(*, quick: bool, out: Path) -> dict[str, Any]:
    """Secure-aggregation round time and bytes per device vs devices and D (see :mod:`.aggregation`)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    result = aggregation.run_aggregation(aggregation.QUICK if quick else aggregation.FULL)
    result["quick"] = quick
    ok = [r for r in result["rows"] if "wall_s" in r]
    plots = [
        plot_rows(
            ok,
            out,
            "aggregation_round_time.png",
            x="devices",
            y="round_s_est",
            group=("length", "dropout"),
            title="secure aggregation: estimated round time (server + median client per stage)",
            xlabel="devices",
            ylabel="seconds",
        ),
        plot_rows(
            ok,
            out,
            "aggregation_bytes.png",
            x="devices",
            y="bytes_per_device_median",
            group=("length", "dropout"),
            title="secure aggregation: bytes sent + received per device (median)",
            xlabel="devices",
            ylabel="bytes",
        ),
    ]
    scale_ok = [r for r in result["scale"]["rows"] if "round_s_est" in r]
    if scale_ok:
        plots += [
            plot_rows(
                [r | {"figure": figure} | {"value": r[key]} for r in scale_ok for key, figure in
                 (("round_s_est", "round (est.)"), ("server_s", "server"), ("client_total_median_s", "client median"))],
                out,
                "aggregation_scale.png",
                x="devices",
                y="value",
                group=("figure", "dropout"),
                title="SecAgg+ (k ≈ log2 n), D = ML-100K layout: seconds vs devices",
                xlabel="devices",
                ylabel="seconds",
            )
        ]
    md = "\n".join(
        [
            "# privrec bench: aggregation\n",
            machine_section(),
            "",
            (aggregation.__doc__ or "").split("\n\n", 1)[0].replace("\n", " ") + "\n",
            f"HTTP: {result['http']}.\n",
            table(
                result["rows"],
                [
                    ("devices", "devices"),
                    ("length", "D"),
                    ("dropout", "dropout"),
                    ("survivors", "survivors"),
                    ("round_s_est", "round s (est.)"),
                    ("server_s", "server s"),
                    ("client_total_median_s", "client s (median)"),
                    ("wall_s", "wall s (sequential)"),
                    ("bytes_sent_median", "sent B/device"),
                    ("bytes_received_median", "received B/device"),
                    ("sum_max_abs_err", "sum max err"),
                    ("error", "error"),
                ],
            ),
            aggregation.flower_markdown(result),
            aggregation.scale_markdown(result),
            *[f"![{p}]({p})\n" for p in plots],
        ]
    )
    return _finish(result, out, md, t0)
