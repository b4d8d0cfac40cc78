"""``privrec bench``: dispatches to the benchmark suites; each writes a markdown report and PNG plots.

Suites: ``privacy`` (privacy–utility trade-off, :mod:`privrec.benchmarks.privacy`), and the
latency / size / quality / aggregation suites of :mod:`privrec.benchmarks` (see the README).
Each suite writes into ``<out>/<suite>/``; the CLI's default ``out`` is ``reports/bench``, where the committed
reports live, so a run without ``--out`` regenerates them in place.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = ["SUITES", "run_bench"]

# suite name → "module:function"; each function takes (quick: bool, out: Path) and returns a JSON-able dict.
SUITES: dict[str, str] = {
    "privacy": "privrec.benchmarks.privacy:run_privacy_bench",
    "latency": "privrec.benchmarks.suites:run_latency_bench",
    "size": "privrec.benchmarks.suites:run_size_bench",
    "quality": "privrec.benchmarks.suites:run_quality_bench",
    "aggregation": "privrec.benchmarks.suites:run_aggregation_bench",
    "audit": "privrec.benchmarks.audit:run_audit_bench",
    "population": "privrec.benchmarks.population:run_population_bench",
    "data": "privrec.benchmarks.data:run_data_bench",
}


def run_bench(what: str, *, quick: bool, out: Path) -> dict[str, Any]:
    """Run one suite, or ``"all"`` of them, writing reports under ``out``."""
    names = list(SUITES) if what == "all" else [what]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise ValueError(f"unknown bench suite {unknown[0]!r}. Expected 'all' or one of {sorted(SUITES)}.")
    results: dict[str, Any] = {}
    for name in names:
        module, func = SUITES[name].split(":")
        results[name] = getattr(importlib.import_module(module), func)(quick=quick, out=Path(out) / name)
    return results
