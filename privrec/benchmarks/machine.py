"""What a benchmark ran on: CPU model, cores, runtime versions, BLAS threading, load.

Every figure and report of :mod:`privrec.benchmarks` carries :func:`machine_line`, so a number is never
separated from the machine it was measured on.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["RUNTIMES", "machine_info", "machine_line"]

RUNTIMES = ("numpy", "torch", "onnxruntime", "ai-edge-litert", "tensorflow-cpu", "onnx", "coremltools")
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "NVPL_BLAS_DEBUG_CPU_TYPE")


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@cache
def machine_info() -> dict[str, Any]:
    """CPU model, logical cores (and the ones this process may use), versions, BLAS pools, thread env vars."""
    import numpy  # noqa: F401  (threadpoolctl only sees BLAS libraries already loaded)
    from threadpoolctl import threadpool_info

    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        flags = next((ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("flags")), "")
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma") if f" {f}" in flags]
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "simd": simd,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in RUNTIMES},
        "blas": [
            {k: pool.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for pool in threadpool_info()
        ],
        "thread_env": {k: os.environ[k] for k in _THREAD_ENV if k in os.environ},
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def machine_line() -> str:
    """One line for figure footers and report headers."""
    m = machine_info()
    v = m["versions"]
    return (
        f"{m['cpu']}, {m['cores']} cores ({', '.join(m['simd'])}); numpy {v['numpy']}, torch {v['torch']}, "
        f"onnxruntime {v['onnxruntime']}, ai-edge-litert {v['ai-edge-litert']}, tensorflow {v['tensorflow-cpu']}"
    )
