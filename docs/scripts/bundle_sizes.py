"""Measure what one signed bundle weighs at 100,000 items, per platform, and what rebuilding a user vector
costs there (the Optimization page quotes both).

A bundle always holds ``manifest.json``, ``manifest.sig``, ``weights.safetensors`` and ``golden.json`` beside
its artifacts, and a device checks every file the manifest lists, so an app ships the whole bundle of the
formats it was exported with: ``--formats tflite`` for Android, ``--formats coreml`` for iOS. This script exports
a synthetic 100,000 × d table (V ~ N(0, 0.3²), as the size benchmark) for each platform, d ∈ {32, 64},
float32 and int8, and writes ``docs/data/bundle_sizes.json``. For the ONNX and TFLite bundles it also times
``Recommender.reconstruct`` (the recipe's ``calls`` × ``finetune`` over the whole catalog, default recipe:
20 calls × 5 steps) for a 50-item history, one thread, median of 5 after one warm-up.

Run from the repository root (about a minute)::

    .venv/bin/python docs/scripts/bundle_sizes.py
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from privrec.export import export_bundle, generate_signing_key
from privrec.runtime import Recommender
from privrec.sdk.model import ItemModel

OUT = Path(__file__).resolve().parents[1] / "data" / "bundle_sizes.json"
PLATFORMS = {"android (tflite)": ("tflite",), "ios (coreml)": ("coreml",), "onnx": ("onnx",)}


def _gzip_bytes(root: Path) -> int:
    return sum(len(gzip.compress(p.read_bytes(), 6)) for p in root.rglob("*") if p.is_file())


def _reconstruct_ms(bundle: Path, backend: str, public_key: Path) -> float:
    rec = Recommender.load(bundle, backend=backend, public_key=public_key)  # type: ignore[arg-type]
    history = list(range(0, 100_000, 2000))
    rec.reconstruct(history)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        rec.reconstruct(history)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        private_key, public_key = generate_signing_key(Path(tmp) / "keys")
        for dim in (32, 64):
            rng = np.random.default_rng(0)
            model = ItemModel(item_embedding=(rng.normal(size=(100_000, dim)) * 0.3).astype(np.float32),
                              item_bias=(rng.normal(size=100_000) * 0.1).astype(np.float32))
            for precision in ("float32", "int8"):
                for platform, formats in PLATFORMS.items():
                    out = Path(tmp) / f"{dim}-{precision}-{formats[0]}"
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        export_bundle(model, out, formats=formats, precision=precision, sign_key=private_key)
                    files = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*") if p.is_file()}
                    rows.append({
                        "items": 100_000, "dim": dim, "precision": precision, "platform": platform,
                        "bytes": sum(files.values()), "gzip_bytes": _gzip_bytes(out),
                        "weights_bytes": files["weights.safetensors"], "golden_bytes": files["golden.json"],
                        "manifest_bytes": files["manifest.json"],
                    })
                    backend = {"tflite": "litert", "onnx": "onnxruntime"}.get(formats[0])
                    if backend is not None:
                        rows[-1]["reconstruct_ms"] = _reconstruct_ms(out, backend, public_key)
                    print(rows[-1])
    OUT.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
