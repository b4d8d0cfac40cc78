"""Cold start: from a signed bundle on disk to the first recommendation, per runtime.

What an app does at start-up, timed phase by phase with the runtime's own code:

1. ``load`` — :meth:`privrec.runtime.Recommender.load` with the publisher's pinned key: ``manifest.sig``
   checked over ``manifest.json``, the manifest parsed and validated, the size and sha256 checked of the
   files this runtime reads (:func:`~privrec.runtime.recommender.backend_files`: its artifact and
   ``golden.json``, whose bytes are kept; ``weights.safetensors`` and the other formats' artifacts, which
   the runtime never opens, are left to ``privrec verify``), and the backend's artifact opened
   (onnxruntime sessions or the LiteRT interpreter);
2. ``self_test`` — :meth:`~privrec.runtime.Recommender.self_test`: the kept ``golden.json`` bytes parsed
   and validated, then every case through the backend;
3. ``first recommend`` — one :meth:`~privrec.runtime.Recommender.recommend` call (K = 10, no exclusions).

``total`` = the three. After them, the two checks inside ``load`` are timed again on their own, so the
table can say where ``load``'s time goes: ``signature`` (read + Ed25519 check + parse of the manifest) and
``hash`` (sha256 and size of the runtime's files); ``open`` = load - signature - hash (the runner).
``total CPU`` is the CPU time of the timing thread over ``total`` (both runtimes run on the calling thread
here: one intra-op thread): the work start-up needs, which other jobs on a shared
machine cannot inflate the way they inflate wall time (up to twice on this 2-core machine). ``hash all``
is the sha256 of every listed file (what ``load`` did before it hashed only the runtime's files;
``privrec verify`` still does), timed for reference, not part of ``total``.

Two settings:

* **warm process** — a new ``Recommender`` in a process that already imported everything and loaded
  bundles before (an app re-opening its model): median of ``repeats`` loads, runtimes interleaved;
* **cold process** — a fresh ``python -c`` subprocess per load: ``import`` (``privrec.runtime`` and the
  backend's package) is timed apart, then the same phases; ``process`` = the subprocess's wall time from
  spawn to exit (interpreter start-up included). The bundle's files stay in the OS page cache: a first
  load after a reboot also pays the disk.

Bundles: synthetic int8 tables (:func:`~privrec.benchmarks.latency.synthetic_model`) at 1,682 items (the
ML-100K catalog) and 100,000 items, d = 32, exported with every format (ONNX, TFLite, Core ML: the other
formats' files are in the bundle, as shipped, but a runtime no longer hashes them at load) and signed
with a key made for the run.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["COLD_FULL", "COLD_QUICK", "ColdStartPlan", "cold_start_markdown", "measure_phases", "run_cold_start"]

#: runtime -> the package its runner imports (timed as part of a cold process's ``import``)
_BACKEND_PACKAGE = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert.interpreter"}
PHASES = ("load", "self_test", "first_recommend", "total", "signature", "hash", "open", "hash_all", "total_cpu")


@dataclass(frozen=True)
class ColdStartPlan:
    """Catalog sizes, dimension, formats and repeats of the cold-start measurement.

    Attributes:
        catalogs: item counts.
        dim: d.
        formats: the bundle's artifact formats (a runtime hashes only its own at load; ``hash all`` times all).
        backends: runtimes measured.
        warm_repeats: loads per runtime in the warm process (median reported).
        cold_repeats: subprocesses per runtime and catalog (median reported).
        target_ms: the warm-process goal at the largest catalog (int8), per runtime.
    """

    catalogs: tuple[int, ...] = (1_682, 100_000)
    dim: int = 32
    formats: tuple[str, ...] = ("onnx", "tflite", "coreml")
    backends: tuple[str, ...] = ("onnxruntime", "litert")
    warm_repeats: int = 15
    cold_repeats: int = 5
    seed: int = 0
    target_ms: float = 50.0


COLD_FULL = ColdStartPlan()
COLD_QUICK = ColdStartPlan(catalogs=(1_682,), formats=("onnx", "tflite"), warm_repeats=2, cold_repeats=1)


def measure_phases(bundle: Path, backend: str, public_key: Path, user: Any) -> dict[str, Any]:
    """One start-up (load, self-test, first recommend) and the breakdown of ``load``; times in ms."""
    from privrec.export.manifest import GOLDEN_NAME, load_manifest, read_listed_file, verify_files
    from privrec.runtime import Recommender
    from privrec.runtime.recommender import backend_files

    c0 = time.thread_time()
    t0 = time.perf_counter()
    rec = Recommender.load(bundle, backend, public_key=public_key)  # type: ignore[arg-type]
    t1 = time.perf_counter()
    report = rec.self_test()
    t2 = time.perf_counter()
    rec.recommend(user)
    t3 = time.perf_counter()
    c3 = time.thread_time()
    manifest = load_manifest(bundle, public_key=public_key, check_files=False)
    t4 = time.perf_counter()
    verify_files(bundle, manifest, only=[f for f in backend_files(manifest, backend) if f != GOLDEN_NAME])  # type: ignore[arg-type]
    read_listed_file(bundle, manifest, GOLDEN_NAME)
    t5 = time.perf_counter()
    verify_files(bundle, manifest)
    t6 = time.perf_counter()
    ms = {
        "load": t1 - t0,
        "self_test": t2 - t1,
        "first_recommend": t3 - t2,
        "total": t3 - t0,
        "signature": t4 - t3,
        "hash": t5 - t4,
        "open": (t1 - t0) - (t4 - t3) - (t5 - t4),
        "hash_all": t6 - t5,
        "total_cpu": c3 - c0,
    }
    return {k: v * 1e3 for k, v in ms.items()} | {"self_test_ok": bool(report["ok"])}


_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy
import privrec.runtime
import {package}
t1 = time.perf_counter()
import importlib.util
from pathlib import Path
spec = importlib.util.spec_from_file_location("coldstart", {module!r})  # not via privrec.benchmarks (torch, TF)
coldstart = sys.modules["coldstart"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(coldstart)
measure_phases = coldstart.measure_phases
user = numpy.random.default_rng(0).standard_normal({dim}).astype(numpy.float32)
out = measure_phases(Path({bundle!r}), {backend!r}, Path({key!r}), user)
print(json.dumps(out | {{"import": (t1 - t0) * 1e3}}))
"""


def _cold_process(bundle: Path, backend: str, key: Path, dim: int) -> dict[str, Any]:
    code = _CHILD.format(
        package=_BACKEND_PACKAGE[backend], dim=dim, bundle=str(bundle), backend=backend, key=str(key), module=__file__
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False)
    wall = (time.perf_counter() - start) * 1e3
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"cold-start subprocess ({backend}) failed with exit {proc.returncode}: {tail[0]}")
    out: dict[str, Any] = json.loads(lines[-1])
    return out | {"process": wall}


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in runs[0] if k != "self_test_ok"]
    out: dict[str, Any] = {f"{k}_ms": statistics.median(r[k] for r in runs) for k in keys}
    return out | {"self_test_ok": all(r["self_test_ok"] for r in runs), "repeats": len(runs)}


def _export(n: int, plan: ColdStartPlan, root: Path) -> tuple[Path, Path, str]:
    """A signed int8 bundle of ``plan.formats`` (without Core ML, noted, if its exporter fails here)."""
    from privrec.export import export_bundle, generate_signing_key
    from privrec.sdk.quantize import quantize_int8

    from .latency import synthetic_model

    private, public = generate_signing_key(root / f"keys-{n}")
    model = quantize_int8(synthetic_model(n, plan.dim, plan.seed + n))
    try:
        return export_bundle(model, root / f"bundle-{n}", formats=plan.formats, sign_key=private), public, ""
    except Exception as exc:  # the bundle without Core ML is still what the Python runtime loads
        if "coreml" not in plan.formats:
            raise
        formats = tuple(f for f in plan.formats if f != "coreml")
        note = f"Core ML export failed here ({type(exc).__name__}: {exc}); bundle without it"
        bundle = export_bundle(model, root / f"bundle-{n}", formats=formats, sign_key=private, overwrite=True)
        return bundle, public, note


def run_cold_start(plan: ColdStartPlan) -> dict[str, Any]:
    """Warm- and cold-process start-up per catalog × runtime; returns ``{"plan", "rows", "acceptance"}``."""
    from tqdm import tqdm

    rows: list[dict[str, Any]] = []
    started = {"utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "load_average": _load_average()}
    user = np.random.default_rng(plan.seed).standard_normal(plan.dim).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="privrec-coldstart-") as tmp:
        for n in plan.catalogs:
            bundle, key, note = _export(n, plan, Path(tmp))
            size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
            for backend in plan.backends:  # one untimed start per runtime: imports and first-use costs paid here
                measure_phases(bundle, backend, key, user)
            warm: dict[str, list[dict[str, Any]]] = {b: [] for b in plan.backends}
            for _ in tqdm(range(plan.warm_repeats), desc=f"cold start {n}: warm process", file=sys.stderr):
                for backend in plan.backends:
                    gc.collect()
                    warm[backend].append(measure_phases(bundle, backend, key, user))
            cold: dict[str, list[dict[str, Any]]] = {b: [] for b in plan.backends}
            for _ in tqdm(range(plan.cold_repeats), desc=f"cold start {n}: cold process", file=sys.stderr):
                for backend in plan.backends:
                    cold[backend].append(_cold_process(bundle, backend, key, plan.dim))
            for backend in plan.backends:
                base = {"catalog": n, "dim": plan.dim, "precision": "int8", "backend": backend, "bundle_bytes": size}
                base |= {"formats": ",".join(sorted(json.loads((bundle / "manifest.json").read_text())["artifacts"]))}
                if note:
                    base["note"] = note
                rows.append(base | {"process": "warm"} | _medians(warm[backend]))
                rows.append(base | {"process": "cold"} | _medians(cold[backend]))
    top = max(plan.catalogs)
    acceptance = [
        {
            "catalog": r["catalog"],
            "backend": r["backend"],
            "goal": f"warm-process load + self-test + first recommend ≤ {plan.target_ms:g} ms (int8, d = {plan.dim})",
            "measured_ms": r["total_ms"],
            "cpu_ms": r.get("total_cpu_ms"),
            "limit_ms": plan.target_ms,
            "met": r["total_ms"] <= plan.target_ms,
            "ratio": r["total_ms"] / plan.target_ms,
        }
        for r in rows
        if r["catalog"] == top and r["process"] == "warm"
    ]
    when = started | {"load_average_end": _load_average()}
    return {"plan": asdict(plan), "rows": rows, "acceptance": acceptance, "measured": when}


def _load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def refresh_report(out: Path, plan: ColdStartPlan = COLD_FULL) -> dict[str, Any]:
    """Measure the cold start again and replace only its section of ``out/report.md`` and its key of
    ``out/result.json`` (the latency suite's other sections and rows are left as they were measured).

    For a start-up measured at a quieter moment than the rest of the suite; the section states when it was
    measured and the load average then, so the report says which figures come from which moment.
    """
    _section_start(out)  # fail before measuring
    cold = run_cold_start(plan)
    cold["measured"]["separately"] = True
    return splice_cold_start(out, cold)


def _section_start(out: Path) -> int:
    report = (out / "report.md").read_text()
    if _HEAD not in report:
        raise ValueError(f"{out / 'report.md'} has no section starting {_HEAD!r}: run `privrec bench latency` first.")
    return report.index(_HEAD)


_HEAD = "## Cold start: signed bundle on disk"


def splice_cold_start(out: Path, cold: dict[str, Any]) -> dict[str, Any]:
    """Write ``cold`` (a :func:`run_cold_start` result) as the cold-start section of ``out/report.md`` and
    the ``cold_start`` key of ``out/result.json``; everything before the section is kept byte for byte."""
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    report = (out / "report.md").read_text()
    result["cold_start"] = cold
    (out / "report.md").write_text(report[: _section_start(out)] + cold_start_markdown(cold))
    (out / "result.json").write_text(json.dumps(result, indent=1, allow_nan=False, default=str) + "\n")
    return result


def _measured_line(when: dict[str, Any] | None) -> str:
    if not when:
        return ""

    def fmt(load: list[float] | None) -> str:
        return ", ".join(f"{x:.1f}" for x in load) if load else "n/a"

    return (
        f"Measured {when['utc']}; load average (1, 5, 15 min) {fmt(when.get('load_average'))} at the start of this "
        f"section and {fmt(when.get('load_average_end'))} at its end (a shared 2-core machine: other jobs' load "
        "lengthens every phase)."
        + (
            " This section was measured on its own (`python -m privrec.benchmarks.coldstart`), after the rest of the "
            "report, whose rows and load average are from the suite's run."
            if when.get("separately")
            else ""
        )
        + "\n"
    )


def cold_start_markdown(result: dict[str, Any]) -> str:
    """The cold-start section of the latency report (markdown)."""
    from .report import table

    if not result.get("rows"):
        return ""
    doc = (__doc__ or "").split("\n\n")
    notes = sorted({r["note"] for r in result["rows"] if r.get("note")})
    return "\n".join(
        [
            "## Cold start: signed bundle on disk → first recommendation\n",
            " ".join(" ".join(p.split()) for p in doc[1:4]) + "\n",
            " ".join(" ".join(p.split()) for p in doc[4:]) + "\n",
            _measured_line(result.get("measured")),
            *[f"- {n}" for n in notes],
            "### Acceptance\n",
            table(
                result["acceptance"],
                [("catalog", "items"), ("backend", "runtime"), ("goal", "goal"), ("measured_ms", "measured ms"),
                 ("limit_ms", "limit ms"), ("met", "met"), ("ratio", "× limit"), ("cpu_ms", "CPU ms (not judged)")],
            ),
            table(
                result["rows"],
                [
                    ("catalog", "items"),
                    ("backend", "runtime"),
                    ("process", "process"),
                    ("bundle_bytes", "bundle bytes"),
                    ("import_ms", "import ms"),
                    ("load_ms", "load ms"),
                    ("self_test_ms", "self-test ms"),
                    ("first_recommend_ms", "first recommend ms"),
                    ("total_ms", "total ms"),
                    ("total_cpu_ms", "total CPU ms"),
                    ("signature_ms", "of load: signature ms"),
                    ("hash_ms", "of load: hash ms"),
                    ("open_ms", "of load: open ms"),
                    ("hash_all_ms", "hash all files ms (not in load)"),
                    ("process_ms", "process wall ms"),
                    ("self_test_ok", "self-test ok"),
                    ("repeats", "repeats"),
                ],
            ),
        ]
    )


if __name__ == "__main__":  # python -m privrec.benchmarks.coldstart [out]: re-measure the cold-start section only
    refresh_report(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/bench/latency"))
