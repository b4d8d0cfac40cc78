"""Run exported ``.tflite`` models in ``tflite-runtime`` 2.14 and compare with expected outputs.

Standalone on purpose: it runs in the second environment ``.venv-tflite214`` (``tflite-runtime==2.14.0``,
the last standalone TFLite interpreter, which needs numpy < 2) and must not import privrec, TensorFlow
or LiteRT. ``tests/export/test_tflite.py`` writes ``<dir>/cases.json`` with the inputs, the expected
outputs (from the numpy reference over the weights) and the tolerances, then runs::

    .venv-tflite214/bin/python tests/export/tflite214_parity.py <dir>

``cases.json``::

    {"models": {"float32": "float32/model.tflite", "int8": "int8/model.tflite"},
     "signatures": {"score": {"inputs": ["item_ids", "user"], "outputs": ["scores"]}, ...},
     "extra_signatures": {"int8": {"score_all": {"inputs": ["user"], "outputs": ["scores"]}}},  # optional
     "cases": [{"model": "int8", "signature": "recommend",
                "inputs": {"user": [...], "exclude": [3, 17]},        # mask = -inf at exclude, else 0
                "expected": {"top_ids": [...], "top_scores": [...]},
                "num_items": 200, "tolerance": 0.02}, ...]}

Prints one JSON object on stdout (``passed``, versions, every case's max abs error) and exits 0 when
every case passed and every model exposes exactly the expected signatures, 1 otherwise.
``top_ids`` pass when they equal the expected ids as sets up to ties: an id may differ only where its
score is within ``tolerance`` of the K-th expected score (docs/BUNDLE.md). Expected scores may be ``-inf``
(excluded items filling the tail when ``K`` exceeds the eligible items): 2.14 returns the lowest float32
there (its ``ADD`` clamps to the float32 range), accepted as ``-inf``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tflite_runtime
from tflite_runtime.interpreter import Interpreter

_INT_INPUTS = {"item_ids"}


def _inputs(case: dict[str, Any]) -> dict[str, np.ndarray]:
    raw = dict(case["inputs"])
    out: dict[str, np.ndarray] = {}
    if case["signature"] == "recommend":
        mask = np.zeros(int(case["num_items"]), np.float32)
        mask[np.asarray(raw.pop("exclude"), np.int64)] = -np.inf
        out["mask"] = mask
    for name, value in raw.items():
        dtype = np.int32 if name in _INT_INPUTS else np.float32
        out[name] = np.atleast_1d(np.asarray(value, dtype))
    return out


def _top_ids_match(got_ids: np.ndarray, expected: dict[str, Any], tolerance: float) -> bool:
    """Equal as sets up to ties: an expected id may be absent only if its score ties the K-th score.

    The returned scores are compared elementwise (sorted, within tolerance) separately, so a swapped
    tie shows up there if it was not a tie.
    """
    exp_ids = [int(i) for i in expected["top_ids"]]
    exp_score = dict(zip(exp_ids, (float(s) for s in expected["top_scores"]), strict=True))
    kth = float(expected["top_scores"][-1])
    got = [int(i) for i in got_ids.tolist()]
    if len(got) != len(exp_ids) or len(set(got)) != len(got):
        return False
    # equal scores (-inf included: excluded items filling the tail) are ties
    return all(exp_score[i] == kth or abs(exp_score[i] - kth) <= tolerance for i in set(exp_ids) - set(got))


def _max_abs_err(got: np.ndarray, want: np.ndarray) -> float:
    """Largest ``|got - want|`` over the finite expected entries; ``inf`` if an expected ``-inf`` is missing.

    2.14's float ``ADD`` clamps its output to the float32 range, so an excluded item's score (``x + -inf``)
    comes back as ``-3.4028235e38`` (the lowest float32), not ``-inf``: both count as ``-inf``.
    """
    lowest = np.finfo(np.float32).min
    got = np.where(got <= lowest, -np.inf, got.astype(np.float64))
    if not np.array_equal(np.isfinite(got), np.isfinite(want)) or not np.array_equal(
        got[~np.isfinite(got)], want[~np.isfinite(want)]
    ):
        return float("inf")
    finite = np.isfinite(want)
    if not finite.any():
        return 0.0
    return float(np.max(np.abs(got[finite].astype(np.float64) - want[finite])))


def _run_case(interpreters: dict[str, Interpreter], case: dict[str, Any]) -> dict[str, Any]:
    runner = interpreters[case["model"]].get_signature_runner(case["signature"])
    outputs = runner(**_inputs(case))
    tol = float(case["tolerance"])
    errors: dict[str, float] = {}
    dtypes: dict[str, str] = {}
    passed = True
    for name, exp in case["expected"].items():
        got = np.asarray(outputs[name])
        dtypes[name] = str(got.dtype)
        if name == "top_ids":
            ok = _top_ids_match(got, case["expected"], tol) and got.dtype == np.int32
            errors[name] = 0.0 if ok else float("inf")
        else:
            want = np.atleast_1d(np.asarray(exp, np.float64))
            if got.shape != want.shape or got.dtype != np.float32:
                errors[name] = float("inf")
                ok = False
            else:
                errors[name] = _max_abs_err(got, want) if want.size else 0.0
                ok = errors[name] <= tol
        passed = passed and ok
    return {
        "model": case["model"],
        "signature": case["signature"],
        "passed": passed,
        "max_abs_err": errors,
        "dtypes": dtypes,
        "tolerance": tol,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: tflite214_parity.py DIR  (DIR holds cases.json and the models)", file=sys.stderr)
        return 2
    root = Path(argv[1])
    spec = json.loads((root / "cases.json").read_text())
    interpreters = {
        name: Interpreter(model_path=str(root / rel), num_threads=1) for name, rel in spec["models"].items()
    }
    signatures = {name: it.get_signature_list() for name, it in interpreters.items()}
    want_sigs = {
        k: {"inputs": sorted(v["inputs"]), "outputs": sorted(v["outputs"])}
        for k, v in spec["signatures"].items()
    }
    extra = spec.get("extra_signatures", {})  # {model: {signature: io}}: signatures only some models have
    sigs_ok = all(
        {k: {"inputs": sorted(v["inputs"]), "outputs": sorted(v["outputs"])} for k, v in got.items()}
        == {
            **want_sigs,
            **{k: {"inputs": sorted(v["inputs"]), "outputs": sorted(v["outputs"])} for k, v in extra.get(name, {}).items()},
        }
        for name, got in signatures.items()
    )
    results = []
    for case in spec["cases"]:
        try:
            results.append(_run_case(interpreters, case))
        except Exception as exc:  # report every failure in the JSON instead of stopping at the first
            results.append(
                {
                    "model": case["model"],
                    "signature": case["signature"],
                    "passed": False,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
    passed = sigs_ok and bool(results) and all(r["passed"] for r in results)
    report = {
        "passed": passed,
        "tflite_runtime": tflite_runtime.__version__,
        "numpy": np.__version__,
        "signatures_ok": sigs_ok,
        "signatures": signatures,
        "cases": results,
    }
    print(json.dumps(report))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
