"""``privrec bench`` suites: latency, size, quality and aggregation, with same-run baselines.

The suites are imported on first use (PEP 562): a module of one suite (e.g. :mod:`.flower_app`, which runs in
Flower's torch-free environment) imports without the others' dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privrec._lazy import lazy_exports

if TYPE_CHECKING:
    from .latency import LatencyPlan, measure_bandwidth, run_latency, synthetic_model
    from .machine import machine_info, machine_line
    from .suites import run_aggregation_bench, run_latency_bench, run_quality_bench, run_size_bench

__all__ = [
    "LatencyPlan",
    "machine_info",
    "machine_line",
    "measure_bandwidth",
    "run_aggregation_bench",
    "run_latency",
    "run_latency_bench",
    "run_quality_bench",
    "run_size_bench",
    "synthetic_model",
]

_LAZY = {
    "LatencyPlan": ".latency",
    "measure_bandwidth": ".latency",
    "run_latency": ".latency",
    "synthetic_model": ".latency",
    "machine_info": ".machine",
    "machine_line": ".machine",
    "run_aggregation_bench": ".suites",
    "run_latency_bench": ".suites",
    "run_quality_bench": ".suites",
    "run_size_bench": ".suites",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
