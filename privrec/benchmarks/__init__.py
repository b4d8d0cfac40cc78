"""``privrec bench`` suites: latency, size, quality and aggregation, with same-run baselines."""

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
