"""Quality suite: central, reconstructed, int8, pruned+int8 and the ALS baseline on one table (+ federated).

Full run: :func:`privrec.sdk.quality.quality_report` on MovieLens-100K (leave-one-out, full-catalog
HR@10 / NDCG@10), one seed, from the local cache (``privrec data fetch``). Federated and federated+DP
rows train with :func:`privrec.sdk.federated.run.train_federated_run` (its default config: central DP
calibrated to the default target ε, and the same with ``dp_mode="off"``), seed 0, evaluated by
reconstruction on its held-out users (so not the same users as the central rows); if that fails, the
latest demo report (``runs/demo/federated.json``) is read instead. ``--quick`` trains nothing: it reads the latest
demo report (``runs/demo/quality.json``) if present and says so, otherwise it reports the rows as missing.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["DEMO_DIR", "VARIANTS", "run_quality"]

DEMO_DIR = Path("runs/demo")
VARIANTS = ("als", "central", "reconstructed", "int8", "pruned50+int8", "federated", "federated+dp")


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _stamp(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rows_from_report(report: dict[str, Any], source: str) -> list[dict[str, Any]]:
    variants = report.get("variants", {})
    return [
        {"variant": v, "source": source, **{k: vals.get(k) for k in ("full_hr", "full_ndcg", "sampled_hr", "sampled_ndcg")}}
        for v, vals in variants.items()
        if isinstance(vals, dict)
    ]


def _federated_rows(demo_dir: Path) -> list[dict[str, Any]]:
    path = demo_dir / "federated.json"
    report = _read(path)
    if report is None:
        return []
    return _rows_from_report(report, f"{path} ({_stamp(path)})")


FEDERATED_RUNS: dict[str, dict[str, Any]] = {
    "federated": {"dp_mode": "off", "noise_multiplier": None, "target_epsilon": None},
    "federated+dp": {},  # the FederatedConfig defaults: central DP calibrated to its target ε
}


def _train_federated(variant: str, overrides: dict[str, Any], work: Path) -> dict[str, Any]:
    """One :func:`privrec.sdk.federated.run.train_federated_run` (seed 0); its held-out reconstruction metrics."""
    import warnings

    from privrec.sdk.federated.run import train_federated_run

    t0 = time.perf_counter()
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # leave the other core to whatever else runs (the latency suite, other users)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dp_mode="off" warns loudly by design; the row says "no DP"
        try:
            run = train_federated_run(work / variant.replace("+", "_"), overrides=overrides, seed=0, progress=True)
        finally:
            torch.set_num_threads(threads)
    metrics = json.loads((run / "metrics.json").read_text())
    privacy = metrics.get("privacy") or {}
    return {
        "variant": variant,
        "source": f"measured in this run (seed 0, {time.perf_counter() - t0:.0f} s; held-out users, reconstruction)",
        "full_hr": metrics["full"]["hr@10"],
        "full_ndcg": metrics["full"]["ndcg@10"],
        "sampled_hr": metrics["sampled"]["hr@10"],
        "sampled_ndcg": metrics["sampled"]["ndcg@10"],
        "epsilon": privacy.get("epsilon"),
        "delta": privacy.get("delta"),
        "rounds": privacy.get("rounds"),
    }


def run_quality(*, quick: bool, demo_dir: Path = DEMO_DIR, federated: bool = True) -> dict[str, Any]:
    """Rows ``{"variant", "source", "full_hr", ...}`` plus ``"missing"`` (variants without a number)."""
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    demo_quality = demo_dir / "quality.json"
    if quick:
        report = _read(demo_quality)
        if report is not None:
            rows += _rows_from_report(report, f"{demo_quality} ({_stamp(demo_quality)})")
            notes.append(f"--quick: read the latest demo report {demo_quality} ({_stamp(demo_quality)}); nothing trained.")
        else:
            notes.append(f"--quick: no demo report at {demo_quality}; run `privrec demo` or the full bench for numbers.")
    else:
        try:
            from privrec.sdk.data import leave_one_out, load_movielens100k
            from privrec.sdk.quality import quality_report

            split = leave_one_out(load_movielens100k())
        except Exception as exc:  # no data cache: say so instead of failing the whole bench
            notes.append(f"MovieLens-100K not available ({type(exc).__name__}: {exc}); run `privrec data fetch`.")
        else:
            t0 = time.perf_counter()
            report_obj, _ = quality_report(split, seeds=(0,), progress=True)
            rows += _rows_from_report(report_obj.to_dict(), "measured in this run (1 seed)")
            notes.append(f"quality_report on MovieLens-100K, seed 0, {time.perf_counter() - t0:.0f} s.")
            print(f"[bench quality] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    fed: list[dict[str, Any]] = []
    if not quick and federated:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="privrec-bench-fed-") as tmp:
            for variant, overrides in FEDERATED_RUNS.items():
                try:
                    fed.append(_train_federated(variant, overrides, Path(tmp)))
                except Exception as exc:  # the federated layer is another package's: report, do not crash
                    notes.append(f"{variant}: not measured ({type(exc).__name__}: {exc}).")
    if not fed:
        fed = _federated_rows(demo_dir)
    rows += fed
    if not fed:
        notes.append(f"federated / federated+DP: no report at {demo_dir / 'federated.json'} (run `privrec demo`).")
    found = {r["variant"] for r in rows}
    return {"rows": rows, "missing": [v for v in VARIANTS if v not in found], "notes": notes}
