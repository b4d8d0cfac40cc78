"""``privrec bench data``: how fast, and in how much memory, an app's own interaction file loads.

A seeded synthetic log (string user and item ids as an app would have them, Zipf-popular items, a time and a
rating column) is written as CSV, Parquet and JSON Lines; each file is then loaded by
:func:`privrec.sdk.data.load_interactions` in a **fresh Python process**, which reports the wall time of the
load and its peak resident memory (``VmHWM``, reset after the imports) above the process's resident memory
after imports. The full run
uses 1,000,000 interactions (``--quick``: 100,000); the report extrapolates the memory per interaction to 10M.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FULL_ROWS", "QUICK_ROWS", "measure_load", "run_data_bench", "write_synthetic_files"]

FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000

# The child resets its peak-RSS mark after the imports (Linux: writing 5 to /proc/self/clear_refs), so the
# peak it reports is the load's own, not the imports'.
_CHILD = """
import json, resource, sys, time
from privrec.sdk.data import load_interactions
import pyarrow, pyarrow.csv, pyarrow.json, pyarrow.parquet, pyarrow.compute

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))

base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
t0 = time.perf_counter()
data = load_interactions(sys.argv[1], progress=False)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "baseline_mb": base, "peak_mb": status("VmHWM"),
                  "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": len(data),
                  "users": data.num_users, "items": data.num_items}))
"""


def write_synthetic_files(folder: Path, rows: int, *, seed: int = 0) -> dict[str, Path]:
    """Write ``rows`` synthetic interactions as ``interactions.csv``, ``.parquet`` and ``.jsonl`` in ``folder``.

    Users ``user-000123`` (about 50 interactions each), items ``sku-0004567`` with Zipf(1.1) popularity over
    ``max(1000, rows // 50)`` items, increasing timestamps, ratings 1–5. Returns ``{format: path}``.
    """
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.csv as pcsv  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    rng = np.random.default_rng(seed)
    n_users = max(10, rows // 50)
    n_items = max(1000, rows // 50)
    users = rng.integers(0, n_users, rows)
    items = np.minimum(rng.zipf(1.1, rows) - 1, n_items - 1)
    times = 1_600_000_000 + np.sort(rng.integers(0, 10**8, rows))
    ratings = rng.integers(1, 6, rows)
    table = pa.table({
        "user_id": pa.array(np.char.add("user-", np.char.zfill(users.astype(str), 6))),
        "item_id": pa.array(np.char.add("sku-", np.char.zfill(items.astype(str), 7))),
        "timestamp": pa.array(times),
        "rating": pa.array(ratings),
    })
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "interactions.csv", "parquet": folder / "interactions.parquet",
             "jsonl": folder / "interactions.jsonl"}
    pcsv.write_csv(table, paths["csv"])
    pq.write_table(table, paths["parquet"])
    with open(paths["jsonl"], "w") as f:
        cols = [table.column(c).to_pylist() for c in ("user_id", "item_id", "timestamp", "rating")]
        for start in range(0, rows, 100_000):
            f.write("".join(
                f'{{"user_id": "{u}", "item_id": "{i}", "timestamp": {t}, "rating": {r}}}\n'
                for u, i, t, r in zip(*(c[start:start + 100_000] for c in cols), strict=True)
            ))
    return paths


def measure_load(path: Path) -> dict[str, Any]:
    """Load ``path`` in a fresh process: ``{"seconds", "baseline_mb", "peak_mb", "rows", "users", "items"}``."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"loading {path} failed: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_data_bench(*, quick: bool, out: Path) -> dict[str, Any]:
    """Write the synthetic files, load each in a fresh process, and write ``report.md``, ``load.png`` and
    ``result.json`` into ``out``."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .machine import machine_info
    from .report import machine_section, table

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    n = QUICK_ROWS if quick else FULL_ROWS
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="privrec-bench-data-") as tmp:
        print(f"[bench data] writing {n:,} interactions as CSV, Parquet and JSON Lines", file=sys.stderr)
        paths = write_synthetic_files(Path(tmp), n)
        for fmt, path in paths.items():
            print(f"[bench data] loading {path.name}", file=sys.stderr)
            m = measure_load(path)
            extra = m["peak_mb"] - m["baseline_mb"]
            rows.append({
                "format": fmt, "file_mb": path.stat().st_size / 2**20, **m, "load_mb": extra,
                "rows_per_s": m["rows"] / m["seconds"], "bytes_per_row": extra * 2**20 / m["rows"],
                "est_10m_gb": (m["baseline_mb"] + extra * 10_000_000 / m["rows"]) / 1024,
            })
    result: dict[str, Any] = {"rows": rows, "interactions": n, "quick": quick}
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar([r["format"] for r in rows], [r["seconds"] for r in rows], color=["tab:blue", "tab:green", "tab:orange"])
    ax.set_ylabel("seconds")
    ax.set_title(f"load_interactions: {n:,} interactions (fresh process)")
    fig.tight_layout()
    fig.savefig(out / "load.png", dpi=110)
    plt.close(fig)
    md = "\n".join([
        "# privrec bench: data\n",
        machine_section(),
        f"{n:,} synthetic interactions ({rows[0]['users']:,} users, {rows[0]['items']:,} items; string ids, a time "
        "and a rating column), each file loaded by `privrec.sdk.data.load_interactions` in a fresh process. "
        "*Baseline* is the resident memory after imports (Python, numpy, pyarrow, privrec); *peak RSS* is the high-water mark "
        "during the load (reset after the imports); *load* is their difference; *10M est.* "
        "scales the load memory linearly to 10,000,000 interactions (plus the baseline). Reported, not asserted: "
        "a shared machine makes the times noisy.\n",
        table(rows, [("format", "format"), ("file_mb", "file MB"), ("seconds", "load s"),
                     ("rows_per_s", "rows/s"), ("baseline_mb", "baseline MB"), ("peak_mb", "peak RSS MB"),
                     ("load_mb", "load MB"), ("bytes_per_row", "bytes/row"), ("est_10m_gb", "10M est. GB")]),
        "![load time](load.png)\n",
    ])
    result["machine"] = machine_info()
    result["seconds"] = time.perf_counter() - t0
    (out / "report.md").write_text(md)
    (out / "result.json").write_text(json.dumps(result, indent=1, allow_nan=False, default=str) + "\n")
    return result
