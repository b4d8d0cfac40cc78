"""Size suite: every artifact format × precision × sparsity, bytes on disk and gzip-compressed, and the
quality each compressed MovieLens-100K model keeps.

The gzip figure is what an app download costs (stores compress their payloads): ``gzip.compress`` at
level 9 of each file, summed. ``ratio_float32`` divides by the dense float32 artifact of the same format
and catalog. Precisions: float32, int8 and int4 (:mod:`privrec.sdk.quantize`); sparsity is magnitude
pruning (:func:`privrec.sdk.prune.magnitude_prune`, global threshold), passed to the exporters so the
formats that store a sparse table do (Core ML iOS18, ONNX int4).

Catalogs: with ``ml100k`` in the plan, the 1,682-item catalog is the model trained on MovieLens-100K
(:func:`privrec.sdk.train.train_central`, its default ``d`` = 64, seed 0), pruned by
:func:`privrec.sdk.prune.prune_and_finetune` (mask fixed, fine-tuned), and each compressed variant's
full-catalog HR@10 over all users is measured from the exact weights the bundle stores (its
``dequantize()``) against float32. The other catalogs are synthetic (``V ~ N(0, 0.3²)``): sizes do not
depend on the kept values, only gzip does a little.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from safetensors.numpy import save_file

from privrec.export.base import Exportable, available_formats, get_exporter
from privrec.export.bundle import export_format
from privrec.sdk.model import ItemModel
from privrec.sdk.prune import magnitude_prune
from privrec.sdk.quantize import QuantizedItemModel, quantize_int4, quantize_int8

from .latency import synthetic_model
from .report import table

__all__ = ["FULL", "PRECISIONS", "QUICK", "SizePlan", "quality_rows", "run_size", "size_acceptance", "size_markdown"]

PRECISIONS = ("float32", "int8", "int4")


@dataclass(frozen=True)
class SizePlan:
    """Catalogs (items × d), sparsities and formats to export; ``ml100k``: the 1,682 × 64 catalog is the trained
    MovieLens-100K model and its HR@10 is measured per variant (needs ``privrec data fetch``)."""

    shapes: tuple[tuple[int, int], ...]
    sparsities: tuple[float, ...]
    formats: tuple[str, ...]
    ml100k: bool = False


FULL = SizePlan(
    shapes=((1682, 64), (100_000, 32)), sparsities=(0.0, 0.5), formats=("onnx", "tflite", "coreml"), ml100k=True
)
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


def _artifact(model: Exportable, fmt: str, out: Path, sparsity: float) -> list[Path]:
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


def _compress(model: ItemModel, precision: str) -> Exportable:
    if precision == "int8":
        return quantize_int8(model)
    if precision == "int4":
        return quantize_int4(model)
    return model


def _trained_ml100k(sparsities: tuple[float, ...]) -> tuple[Any, dict[float, Any]]:
    """The MovieLens-100K split and ``{sparsity: TrainedModel}`` (0 = trained; > 0 pruned and fine-tuned)."""
    from privrec.sdk.data import leave_one_out, load_movielens100k
    from privrec.sdk.prune import prune_and_finetune
    from privrec.sdk.train import TrainConfig, train_central

    split = leave_one_out(load_movielens100k())
    cfg = TrainConfig()
    print(f"[bench size] training MovieLens-100K d={cfg.dim}", file=sys.stderr)
    trained = train_central(split, cfg, seed=0, progress=True).model
    models = {0.0: trained}
    for s in sparsities:
        if s > 0:
            print(f"[bench size] pruning to {s} and fine-tuning", file=sys.stderr)
            models[s] = prune_and_finetune(trained, split, s, cfg, seed=0, progress=True)
    return split, models


def _scorer(U: Any, V: Any, b: Any) -> Any:
    def score(users: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(U[users] @ V.T + b, np.float32)

    return score


def quality_rows(split: Any, models: dict[float, Any]) -> list[dict[str, Any]]:
    """Full-catalog HR@10 / NDCG@10 on all users of each precision × sparsity, from the stored weights.

    ``hr_ratio_float32`` divides by the dense float32 model's HR@10 (the goal is ≥ 0.98).
    """
    from privrec.sdk.evaluate import evaluate

    rows: list[dict[str, Any]] = []
    for sparsity, trained in sorted(models.items()):
        U = trained.user_embedding
        for precision in PRECISIONS:
            stored = _compress(trained.items, precision)
            items = stored if isinstance(stored, ItemModel) else stored.dequantize()
            V, b = items.item_embedding, items.item_bias

            m = evaluate(_scorer(U, V, b), split)
            rows.append(
                {"precision": precision, "sparsity": sparsity, "full_hr10": m.full_hr, "full_ndcg10": m.full_ndcg}
                | {"users": m.users}
            )
            print(f"[bench size] quality {precision} sparsity={sparsity}: HR@10 {m.full_hr:.4f}", file=sys.stderr)
    base = next(r["full_hr10"] for r in rows if r["precision"] == "float32" and r["sparsity"] == 0.0)
    for r in rows:
        r["hr_ratio_float32"] = r["full_hr10"] / base if base else None
    return rows


def run_size(plan: SizePlan) -> dict[str, Any]:
    """Export every combination and measure it; returns ``{"plan", "rows", "quality", "skipped"}``."""
    formats, skipped = _usable_formats(plan.formats)
    kinds = ["weights.safetensors", *formats, "onnx-int8fast"]
    rows: list[dict[str, Any]] = []
    quality: list[dict[str, Any]] = []
    trained: dict[float, Any] = {}
    if plan.ml100k:
        split, trained = _trained_ml100k(plan.sparsities)
        quality = quality_rows(split, trained)
    with tempfile.TemporaryDirectory(prefix="privrec-size-") as tmp:
        for n, d in plan.shapes:
            real = plan.ml100k and (n, d) == (1682, 64)
            base = trained[0.0].items if real else synthetic_model(n, d, seed=n + d)
            dense: dict[str, int] = {}
            for sparsity in plan.sparsities:
                pruned = magnitude_prune(base, sparsity)[0] if sparsity > 0 else base
                model = trained[sparsity].items if real else pruned
                for precision in PRECISIONS:
                    m = _compress(model, precision)
                    for kind in kinds:
                        if kind == "onnx-int8fast" and precision != "int8":
                            continue
                        out = Path(tmp) / f"{n}x{d}-{sparsity}-{precision}-{kind}"
                        case = {
                            "catalog": n, "dim": d, "model": "ml-100k" if real else "synthetic",
                            "format": kind, "precision": precision, "sparsity": sparsity,
                        }  # fmt: skip
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
    result = {"plan": asdict(plan), "rows": rows, "quality": quality, "skipped": skipped}
    result["acceptance"] = size_acceptance(result)
    return result


def _over_eighth(row: dict[str, Any]) -> int | None:
    """Bytes of ``row``'s artifact beyond 1/8 of its float32 artifact (<= 0: the 1/8 goal is met)."""
    ratio = row.get("ratio_float32")
    if not ratio:
        return None
    return round(float(row["bytes"] - row["bytes"] / ratio / 8))


def size_acceptance(result: dict[str, Any]) -> dict[str, Any]:
    """The size targets, computed from the rows of one run.

    - ``smallest``: per catalog and format, the smallest artifact and its ratio to float32 (target ≤ 1/6,
      goal ≤ 1/8), with that variant's HR@10 ratio when quality was measured (goal ≥ 0.98);
    - ``coreml_vs_onnx``: per catalog, precision and sparsity, Core ML bytes / ONNX bytes (target ≤ 1.1).
    """
    ok = [r for r in result["rows"] if "bytes" in r and r["format"] in ("onnx", "tflite", "coreml")]
    hr = {(q["precision"], q["sparsity"]): q["hr_ratio_float32"] for q in result.get("quality", [])}
    smallest: list[dict[str, Any]] = []
    for key in sorted({(r["catalog"], r["dim"], r["format"]) for r in ok}):
        group = [r for r in ok if (r["catalog"], r["dim"], r["format"]) == key]
        best = min(group, key=lambda r: r["bytes"])
        ratio = best["ratio_float32"]
        quality = hr.get((best["precision"], best["sparsity"])) if best.get("model") == "ml-100k" else None
        smallest.append(
            {
                "catalog": key[0], "dim": key[1], "format": key[2], "precision": best["precision"],
                "sparsity": best["sparsity"], "bytes": best["bytes"], "ratio_float32": ratio,
                "le_1_6": ratio is not None and ratio <= 1 / 6, "le_1_8": ratio is not None and ratio <= 1 / 8,
                "over_1_8": _over_eighth(best),
                "hr_ratio_float32": quality, "hr_ge_0_98": None if quality is None else quality >= 0.98,
            }
        )  # fmt: skip
    vs: list[dict[str, Any]] = []
    for r in ok:
        if r["format"] != "coreml":
            continue
        twin = next(
            (o for o in ok if o["format"] == "onnx" and all(o[k] == r[k] for k in ("catalog", "dim", "precision", "sparsity"))),
            None,
        )
        if twin is not None:
            ratio = r["bytes"] / twin["bytes"]
            vs.append(
                {k: r[k] for k in ("catalog", "dim", "precision", "sparsity")}
                | {"coreml_bytes": r["bytes"], "onnx_bytes": twin["bytes"], "ratio": ratio, "le_1_1": ratio <= 1.1}
            )
    # With quality measured: per format, the smallest artifact whose model keeps HR@10 ≥ 0.98× float32.
    at_quality: list[dict[str, Any]] = []
    for key in sorted({(r["catalog"], r["dim"], r["format"]) for r in ok if r.get("model") == "ml-100k"}):
        group = [
            r for r in ok
            if (r["catalog"], r["dim"], r["format"]) == key and (hr.get((r["precision"], r["sparsity"])) or 0.0) >= 0.98
        ]  # fmt: skip
        if group:
            best = min(group, key=lambda r: r["bytes"])
            ratio = best["ratio_float32"]
            at_quality.append(
                {k: best[k] for k in ("catalog", "dim", "format", "precision", "sparsity", "bytes", "ratio_float32")}
                | {"le_1_6": ratio is not None and ratio <= 1 / 6, "le_1_8": ratio is not None and ratio <= 1 / 8}
                | {"over_1_8": _over_eighth(best)}
                | {"hr_ratio_float32": hr[(best["precision"], best["sparsity"])], "hr_ge_0_98": True}
            )
    return {"smallest": smallest, "smallest_at_quality": at_quality, "coreml_vs_onnx": vs}


def size_markdown(result: dict[str, Any], plots: list[str], machine: str) -> str:
    """The size report (markdown) of a :func:`run_size` result, its plots and the machine section."""
    skipped = "".join(f"- `{k}` skipped: {v}\n" for k, v in result["skipped"].items())
    acc = result["acceptance"]

    def yes(flag: object) -> str:
        return "n/a" if flag is None else ("yes" if flag else "**no**")

    smallest = [
        r | {"le_1_6": yes(r["le_1_6"]), "le_1_8": yes(r["le_1_8"]), "hr_ge_0_98": yes(r["hr_ge_0_98"])}
        for r in acc["smallest"]
    ]
    at_quality = [
        r | {"le_1_6": yes(r["le_1_6"]), "le_1_8": yes(r["le_1_8"]), "hr_ge_0_98": yes(r["hr_ge_0_98"])}
        for r in acc.get("smallest_at_quality", [])
    ]
    vs = [r | {"le_1_1": yes(r["le_1_1"])} for r in acc["coreml_vs_onnx"]]
    columns = [
        ("catalog", "items"),
        ("dim", "d"),
        ("format", "format"),
        ("precision", "precision"),
        ("sparsity", "sparsity"),
        ("bytes", "bytes"),
        ("ratio_float32", "ratio"),
        ("le_1_6", "≤ 1/6"),
        ("le_1_8", "≤ 1/8"),
        ("over_1_8", "bytes over 1/8"),
        ("hr_ratio_float32", "HR@10 ratio"),
        ("hr_ge_0_98", "≥ 0.98"),
    ]
    md = "\n".join(
        [
            "# privrec bench: size\n",
            machine,
            "\nBytes on disk of each artifact (all its files) and gzip -9 of each file, summed; `ratio` = bytes / the dense "
            "float32 artifact of the same format (`onnx-int8fast`: vs `onnx`; one standalone graph file, table embedded). "
            "Precisions: int8 with one symmetric float32 scale per row and a float32 bias; int4 with one symmetric "
            "float16 scale per row (at most 8 significant bits, so q × scale is exact in float16 and float32) and a "
            "float16 bias, in every format and in weights.safetensors. Sparsity: magnitude pruning, and the "
            "sparse storage of each format where it has one (Core ML iOS18 bit mask + non-zeros; ONNX int4 bit mask + "
            "int4 non-zeros; TFLite, ONNX float32/int8 and safetensors store zeros). Core ML: the one iOS18 "
            "multifunction package (the iOS16 fallback is opt-in and not measured here). "
            + (
                "The 1,682 × 64 catalog is the model trained on MovieLens-100K (pruned variants fine-tuned with the "
                "mask fixed); the others are synthetic, V ~ N(0, 0.3²).\n"
                if result["plan"]["ml100k"]
                else "Synthetic tables, V ~ N(0, 0.3²).\n"
            ),
            skipped,
            "## Acceptance\n",
            "Smallest artifact per format (target ≤ 1/6 of its float32 size, goal ≤ 1/8; for MovieLens-100K with full "
            "HR@10 on all users ≥ 0.98× float32). `bytes over 1/8`: how far the artifact is from the 1/8 goal (≤ 0: "
            "met). A dense int4 artifact cannot reach 1/8: its table alone is 1/8 of the float32 table, and the "
            "per-row scale and bias (2 + 2 bytes) and the graphs come on top.\n",
            table(smallest, columns),
            *(
                [
                    "\nSmallest MovieLens-100K artifact per format whose model keeps full HR@10 ≥ 0.98× float32:\n",
                    table(at_quality, columns),
                ]
                if at_quality
                else []
            ),
            "\nCore ML artifact / ONNX artifact (target ≤ 1.1):\n",
            table(
                vs,
                [
                    ("catalog", "items"),
                    ("dim", "d"),
                    ("precision", "precision"),
                    ("sparsity", "sparsity"),
                    ("coreml_bytes", "Core ML bytes"),
                    ("onnx_bytes", "ONNX bytes"),
                    ("ratio", "ratio"),
                    ("le_1_1", "≤ 1.1"),
                ],
            ),
            *(
                [
                    "\n## Quality of each compressed MovieLens-100K model\n",
                    "Full-catalog HR@10 / NDCG@10 over all users (catalog minus the user's training items), computed "
                    "from the exact weights the bundle stores; ratio vs dense float32.\n",
                    table(
                        result["quality"],
                        [
                            ("precision", "precision"),
                            ("sparsity", "sparsity"),
                            ("full_hr10", "HR@10"),
                            ("full_ndcg10", "NDCG@10"),
                            ("hr_ratio_float32", "HR@10 ratio"),
                            ("users", "users"),
                        ],
                    ),
                ]
                if result["quality"]
                else []
            ),
            "\n## Every artifact\n",
            table(
                result["rows"],
                [
                    ("catalog", "items"),
                    ("dim", "d"),
                    ("model", "model"),
                    ("format", "format"),
                    ("precision", "precision"),
                    ("sparsity", "sparsity"),
                    ("bytes", "bytes"),
                    ("gzip_bytes", "gzip bytes"),
                    ("ratio_float32", "ratio"),
                    ("gzip_ratio_float32", "gzip ratio"),
                    ("error", "error"),
                ],
            ),
            *[f"![{p}]({p})\n" for p in plots],
        ]
    )
    return md
