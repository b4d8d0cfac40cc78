"""Size suite: every artifact format × precision × sparsity, bytes on disk and gzip-compressed.

The gzip figure is what an app download costs (stores compress their payloads): ``gzip.compress`` at
level 9 of each file, summed. ``ratio_float32`` divides by the dense float32 artifact of the same format
and catalog. Sparsity is magnitude pruning (:func:`privrec.sdk.prune.magnitude_prune`, global
threshold) without fine-tuning: sizes do not depend on the values kept.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import onnx
from safetensors.numpy import save_file

from privrec.export.base import available_formats, get_exporter
from privrec.export.bundle import export_format
from privrec.sdk.model import ItemModel
from privrec.sdk.prune import magnitude_prune
from privrec.sdk.quantize import QuantizedItemModel, quantize_int8

from .latency import synthetic_model

__all__ = ["FULL", "QUICK", "SizePlan", "run_size"]


@dataclass(frozen=True)
class SizePlan:
    """Catalogs (items × d) and sparsities to export."""

    shapes: tuple[tuple[int, int], ...]
    sparsities: tuple[float, ...]
    formats: tuple[str, ...]


FULL = SizePlan(shapes=((1682, 32), (100_000, 32)), sparsities=(0.0, 0.5), formats=("onnx", "tflite", "coreml"))
QUICK = SizePlan(shapes=((1000, 32),), sparsities=(0.0, 0.5), formats=("onnx", "tflite"))  # Core ML: full run only (slow)


def _files(root: Path, rels: tuple[str, ...] | list[str]) -> list[Path]:
    out: list[Path] = []
    for rel in rels:
        p = root / rel
        out.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    return out


def _measure(files: list[Path]) -> tuple[int, int]:
    raw = sum(f.stat().st_size for f in files)
    gz = sum(len(gzip.compress(f.read_bytes(), compresslevel=9, mtime=0)) for f in files)
    return raw, gz


def _usable_formats(wanted: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    usable, skipped = [], {}
    for fmt in wanted:
        if fmt not in available_formats():
            skipped[fmt] = "not a registered format"
            continue
        try:
            get_exporter(fmt)
        except Exception as exc:  # an optional converter that does not import here
            skipped[fmt] = f"{type(exc).__name__}: {exc}"
        else:
            usable.append(fmt)
    return usable, skipped


def _artifact(model: ItemModel | QuantizedItemModel, fmt: str, out: Path, sparsity: float) -> list[Path]:
    if fmt == "weights.safetensors":
        out.mkdir(parents=True, exist_ok=True)
        save_file(dict(model.tensors()), str(out / fmt))
        return [out / fmt]
    if fmt == "onnx-int8fast":
        from privrec.export.onnx_int8 import build_int8_models

        if not isinstance(model, QuantizedItemModel):
            raise TypeError("onnx-int8fast needs an int8 model.")
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, proto in build_int8_models(model).items():  # standalone files: the table is in each
            paths.append(out / f"model.{name}.onnx")
            onnx.save_model(proto, str(paths[-1]))
        return paths[:1]  # one graph's file holds the whole table once; the bundle would share it
    record = export_format(model, out, fmt, sparsity=sparsity)
    return _files(out, record.files)


def run_size(plan: SizePlan) -> dict[str, Any]:
    """Export every combination and measure it; returns ``{"plan", "rows", "skipped"}``."""
    formats, skipped = _usable_formats(plan.formats)
    kinds = ["weights.safetensors", *formats, "onnx-int8fast"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="privrec-size-") as tmp:
        for n, d in plan.shapes:
            base = synthetic_model(n, d, seed=n + d)
            dense: dict[str, int] = {}
            for sparsity in plan.sparsities:
                model = magnitude_prune(base, sparsity)[0] if sparsity > 0 else base
                for precision in ("float32", "int8"):
                    m: ItemModel | QuantizedItemModel = quantize_int8(model) if precision == "int8" else model
                    for kind in kinds:
                        if kind == "onnx-int8fast" and precision != "int8":
                            continue
                        out = Path(tmp) / f"{n}x{d}-{sparsity}-{precision}-{kind}"
                        case = {"catalog": n, "dim": d, "format": kind, "precision": precision, "sparsity": sparsity}
                        try:
                            raw, gz = _measure(_artifact(m, kind, out, sparsity))
                        except Exception as exc:  # a converter failure is a result, not a crash
                            rows.append(case | {"error": f"{type(exc).__name__}: {exc}"})
                            continue
                        if precision == "float32" and sparsity == 0.0:
                            dense[kind] = raw
                        ref = dense.get("onnx" if kind == "onnx-int8fast" else kind)
                        rows.append(
                            case
                            | {
                                "bytes": raw,
                                "gzip_bytes": gz,
                                "ratio_float32": raw / ref if ref else None,
                                "gzip_ratio_float32": None,
                            }
                        )
                        print(f"[bench size] {n}x{d} {kind} {precision} sparsity={sparsity}: {raw:,} B", file=sys.stderr)
            dense_gz = {
                (r["format"]): r["gzip_bytes"]
                for r in rows
                if r["catalog"] == n and r.get("sparsity") == 0.0 and r["precision"] == "float32" and "bytes" in r
            }
            for r in rows:
                if r["catalog"] == n and "gzip_bytes" in r:
                    ref_gz = dense_gz.get("onnx" if r["format"] == "onnx-int8fast" else r["format"])
                    r["gzip_ratio_float32"] = r["gzip_bytes"] / ref_gz if ref_gz else None
    return {"plan": asdict(plan), "rows": rows, "skipped": skipped}
