"""The bundle writer: weights, one artifact per format, golden self-test, then the manifest (docs/BUNDLE.md).

:func:`export_bundle` writes everything into a temporary sibling directory and renames it into place
only when the manifest is written (and signed, with ``sign_key``) and re-read cleanly, so a failed export
never leaves a half bundle. :func:`sign_bundle` signs an existing bundle. :func:`export_run` is what
``privrec export`` calls. :func:`export_format` (and its shorthands
:func:`export_onnx`, :func:`export_tflite`, :func:`export_coreml`) writes a single artifact without a
bundle around it, for apps that want only one file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray
from safetensors.numpy import load_file, save_file

import privrec
from privrec.sdk.model import ItemModel, TrainedModel
from privrec.sdk.quantize import Int4ItemModel, QuantizedItemModel, quantize_int4, quantize_int8
from privrec.sdk.reconstruct import FinetuneConfig

from .base import PRECISIONS, ArtifactRecord, Exportable, ExportConfig, Precision, get_exporter
from .files import MANIFEST_NAME, RESERVED_NAMES, parse_json, read_manifest_bytes
from .golden import golden_cases, load_golden, write_golden
from .manifest import (
    GOLDEN_NAME,
    ITEM_FEATURES_NAME,
    SCHEMA_VERSION,
    WEIGHTS_NAME,
    Manifest,
    bundle_signatures,
    check_weights_header,
    file_digest,
    files_table,
    load_item_features,
    load_manifest,
    verify_files,
    weight_specs,
    write_manifest,
)
from .reference import Reference
from .signing import PrivateKeySource, load_private_key, write_signature

__all__ = [
    "DEFAULT_FORMATS",
    "export_bundle",
    "export_coreml",
    "export_format",
    "export_onnx",
    "export_run",
    "export_tflite",
    "sign_bundle",
]

DEFAULT_FORMATS: tuple[str, ...] = ("onnx", "tflite", "coreml")
NO_PRIVACY: dict[str, Any] = {"mode": "none", "ledger": []}


def _check_precision(precision: object) -> Precision:
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {list(PRECISIONS)}. Found {precision!r}.")
    return precision


def _prepare_model(model: object, precision: object | None) -> tuple[Exportable, Precision]:
    """The model to export at ``precision`` (``None``: the model's own precision); quantizes float32."""
    for cls, own in ((QuantizedItemModel, "int8"), (Int4ItemModel, "int4")):
        if isinstance(model, cls):
            if precision not in (None, own):
                raise ValueError(
                    f"`precision` must be {own!r} for a {cls.__name__}. Found {precision!r}: export "
                    f"`model.dequantize()` for float32 (its values are the {own} grid, not the original weights)."
                )
            return model, cast(Precision, own)
    if not isinstance(model, ItemModel):
        raise TypeError(
            f"`model` must be an ItemModel, a QuantizedItemModel or an Int4ItemModel. Found {type(model).__name__}."
        )
    p = _check_precision("float32" if precision is None else precision)
    quantizers: dict[str, Callable[[ItemModel], Exportable]] = {"int8": quantize_int8, "int4": quantize_int4}
    return (quantizers[p](model) if p in quantizers else model), p


def _check_formats(formats: object) -> tuple[str, ...]:
    if isinstance(formats, str) or not isinstance(formats, Sequence):
        raise TypeError(f"`formats` must be a sequence of format names. Found {formats!r}.")
    fmts = tuple(formats)
    if not fmts:
        raise ValueError("`formats` must name at least one format. Found none.")
    dupes = sorted({f for f in fmts if fmts.count(f) > 1})
    if dupes:
        raise ValueError(f"`formats` must not repeat a format. Found {dupes} more than once.")
    for f in fmts:
        get_exporter(f)  # ValueError listing the known formats
    return fmts


def _check_items(items: object, num_items: int) -> list[dict[str, Any]]:
    """The item map: item metadata sorted by ``index``, one entry per model row, ``id`` the app's own item
    id as a non-empty string, unique (devices store their histories by it)."""
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TypeError(f"`items` must be a list of dicts. Found {type(items).__name__}.")
    out: list[dict[str, Any]] = []
    for pos, item in enumerate(items):
        index, ident = item.get("index"), item.get("id")
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"`items[{pos}]['index']` must be an int. Found {index!r}.")
        if not isinstance(ident, str | int) or isinstance(ident, bool):
            raise TypeError(f"`items[{pos}]['id']` must be a str or int. Found {ident!r}.")
        if str(ident) == "":
            raise ValueError(f"`items[{pos}]['id']` must be a non-empty item id. Found ''.")
        out.append({**item, "index": index, "id": str(ident), "title": str(item.get("title", ""))})
    first: dict[str, int] = {}
    for pos, item in enumerate(out):
        if first.setdefault(item["id"], pos) != pos:
            raise ValueError(
                f"`items[{pos}]['id']` repeats id {item['id']!r} of items[{first[item['id']]}]: a device stores its "
                "history by these ids, so they must be unique."
            )
    out.sort(key=lambda i: int(i["index"]))
    indices = [i["index"] for i in out]
    if indices != list(range(num_items)):
        missing = sorted(set(range(num_items)) - set(indices))[:5]
        raise ValueError(
            f"`items` must hold exactly one entry per model row 0..{num_items - 1}. Found {len(out)} entries"
            + (f"; missing indices start {missing}." if missing else "; some indices repeat or are out of range.")
        )
    json.dumps(out, allow_nan=False)  # TypeError/ValueError now, not after the artifacts are written
    return out


def _check_item_features(features: object, num_items: int) -> NDArray[np.float32] | None:
    if features is None:
        return None
    if not isinstance(features, np.ndarray) or features.ndim != 2 or features.shape[0] != num_items or features.shape[1] == 0:
        shape = getattr(features, "shape", type(features).__name__)
        raise ValueError(f"`item_features` must be a float array of shape ({num_items}, f>0). Found {shape}.")
    out = np.ascontiguousarray(features, np.float32)
    if not np.isfinite(out).all():
        raise ValueError("`item_features` must be finite. Found NaN or inf.")
    return out


def _check_privacy(privacy: object) -> dict[str, Any]:
    if privacy is None:
        return dict(NO_PRIVACY)
    if not isinstance(privacy, dict):
        raise TypeError(f"`privacy` must be a dict (the privacy ledger). Found {type(privacy).__name__}.")
    try:
        json.dumps(privacy, allow_nan=False)
    except ValueError:
        raise ValueError(
            "`privacy` must be strict JSON (apps parse the manifest): write an infinite ε as null. Found NaN or inf."
        ) from None
    return privacy


def _expand_files(root: Path, record: ArtifactRecord) -> list[str]:
    """The record's files as bundle-relative file paths (a listed directory expands to its files)."""
    out: list[str] = []
    for rel in record.files:
        target = root / rel
        if target.is_dir():
            out.extend(sorted(p.relative_to(root).as_posix() for p in target.rglob("*") if p.is_file()))
        elif target.is_file():
            out.append(Path(rel).as_posix())
        else:
            raise ValueError(f"the {record.format} exporter listed {rel!r}, which it did not write.")
    return out


def _check_record(record: ArtifactRecord, fmt: str, precision: Precision, dim: int, num_items: int, top_k: int) -> None:
    if record.format != fmt or record.precision != precision:
        raise ValueError(
            f"the {fmt} exporter returned format={record.format!r}, precision={record.precision!r}; "
            f"expected {fmt!r}, {precision!r}."
        )
    expected = bundle_signatures(dim, num_items, top_k)

    def names(table: dict[str, Any]) -> dict[str, Any]:
        return {sig: ([(t.name, t.dtype) for t in ins], [(t.name, t.dtype) for t in outs]) for sig, (ins, outs) in table.items()}

    if names(record.signatures) != names(expected):
        raise ValueError(
            f"the {fmt} exporter's signatures {names(record.signatures)} differ from docs/BUNDLE.md "
            f"{names(expected)} (names and dtypes)."
        )


def _json_safe(value: object) -> Any:
    """Details as plain JSON (numpy scalars and tuples converted)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))


def _write_bundle(
    tmp: Path,
    model: Exportable,
    precision: Precision,
    fmts: tuple[str, ...],
    ft: FinetuneConfig,
    top_k: int,
    items: list[dict[str, Any]],
    privacy: dict[str, Any],
    sparsity: float,
    recency_half_life: float | None = None,
    item_features: NDArray[np.float32] | None = None,
    sign_key: Ed25519PrivateKey | None = None,
    coreml_targets: tuple[str, ...] = ("iOS18",),
    onnx_standard_ops: bool = False,
) -> None:
    save_file(dict(model.tensors()), str(tmp / WEIGHTS_NAME))
    extra: dict[str, Any] = {}
    if item_features is not None:
        save_file({"item_features": item_features}, str(tmp / ITEM_FEATURES_NAME))
        extra["item_features"] = {"file": ITEM_FEATURES_NAME, "columns": int(item_features.shape[1])}
    config = ExportConfig(
        top_k=top_k,
        finetune_steps=ft.steps,
        sparsity=sparsity,
        coreml_targets=coreml_targets,
        onnx_standard_ops=onnx_standard_ops,
    )
    artifacts: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for fmt in fmts:
        record = get_exporter(fmt)(model, tmp, config)
        _check_record(record, fmt, precision, model.dim, model.num_items, top_k)
        files = _expand_files(tmp, record)
        for f in files:
            if f in owner or f in (WEIGHTS_NAME, GOLDEN_NAME, *RESERVED_NAMES):
                raise ValueError(f"the {fmt} exporter wrote {f!r}, which {owner.get(f, 'the bundle')} already owns.")
            owner[f] = fmt
        artifacts[fmt] = {"files": files, "precision": precision, "details": _json_safe(record.details)}
    # The reference is rebuilt from the file on disk, so golden.json tests what ships.
    ref = Reference.from_tensors(load_file(str(tmp / WEIGHTS_NAME)), top_k=top_k, steps=ft.steps)
    write_golden(tmp, golden_cases(ref, precision=precision, lr=ft.lr, l2=ft.l2))
    listed = {WEIGHTS_NAME, GOLDEN_NAME, *owner, *([ITEM_FEATURES_NAME] if item_features is not None else [])}
    stray = sorted(
        p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file() and p.relative_to(tmp).as_posix() not in listed
    )
    if stray:
        raise ValueError(f"exporters left files no artifact lists: {stray[:5]}. Every bundle file must be in the manifest.")
    weights_sha, _ = file_digest(tmp / WEIGHTS_NAME)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        model_version=f"{stamp}-{weights_sha[:8]}",
        privrec_version=privrec.__version__,
        dim=model.dim,
        num_items=model.num_items,
        precision=precision,
        sparsity=model.sparsity if isinstance(model, Int4ItemModel) else float((model.item_embedding == 0).mean()),
        top_k=top_k,
        finetune={
            "steps": ft.steps, "lr": float(ft.lr), "l2": float(ft.l2), "calls": ft.calls,
            "recency_half_life": recency_half_life,
        },
        items=items,
        weights=weight_specs(precision, model.num_items, model.dim),
        signatures=bundle_signatures(model.dim, model.num_items, top_k),
        artifacts=artifacts,
        files=files_table(tmp, listed),
        privacy=privacy,
        extra=extra,
    )
    write_manifest(tmp, manifest)
    if sign_key is not None:
        sign_bundle(tmp, sign_key)
    # The bundle must pass the reader's own checks (with its signature) before it is published.
    checked = load_manifest(tmp, public_key=None if sign_key is None else sign_key.public_key())
    load_golden(tmp, checked)
    load_item_features(tmp, checked)


def sign_bundle(bundle_dir: Path | str, private_key: PrivateKeySource) -> Path:
    """Sign a bundle: write ``manifest.sig``, an Ed25519 signature of the exact bytes of ``manifest.json``.

    The bundle is checked first (schema, paths, limits, every file's size and sha256, the weights
    header), so a corrupt or tampered bundle is never signed; the bytes checked are the bytes signed.
    ``private_key`` is a path to a PKCS#8 PEM file, its bytes, or an ``Ed25519PrivateKey``
    (:func:`~privrec.export.signing.load_private_key`). Replaces an existing ``manifest.sig``. Returns its path.
    """
    key = load_private_key(private_key)
    root = Path(bundle_dir)
    data = read_manifest_bytes(root)
    manifest = Manifest.from_dict(parse_json(data, f"{MANIFEST_NAME}:"))
    verify_files(root, manifest)
    check_weights_header(root / WEIGHTS_NAME, manifest.weights)
    return write_signature(root, data, key)


def export_bundle(
    model: Exportable,
    out_dir: Path | str,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    precision: Precision | None = None,
    finetune: FinetuneConfig | None = None,
    top_k: int = 10,
    items: list[dict[str, Any]] | None = None,
    privacy: dict[str, Any] | None = None,
    sparsity: float = 0.0,
    overwrite: bool = False,
    recency_half_life: float | None = None,
    item_features: NDArray[np.floating] | None = None,
    sign_key: PrivateKeySource | None = None,
    coreml_targets: tuple[str, ...] = ("iOS18",),
    onnx_standard_ops: bool = False,
) -> Path:
    """Write a complete bundle (docs/BUNDLE.md) to ``out_dir`` and return its path.

    Args:
        model: float32 :class:`ItemModel`, int8 :class:`QuantizedItemModel` or int4 :class:`Int4ItemModel`.
        out_dir: the bundle directory to create; must not exist or be empty unless ``overwrite``.
        formats: artifact formats, each a registered exporter (``privrec.export.available_formats()``).
        precision: ``"float32"``, ``"int8"`` or ``"int4"`` (an ``ItemModel`` is quantized with
            :func:`~privrec.sdk.quantize.quantize_int8` or :func:`~privrec.sdk.quantize.quantize_int4`);
            ``None`` keeps the model's own precision.
        finetune: steps (baked into the artifacts), and the recommended ``lr`` and ``l2``; default
            :class:`FinetuneConfig()`.
        top_k: ``K`` of ``recommend`` (at most the number of items).
        items: the item map, one ``{"index", "id", "title", ...}`` per model row: ``id`` is the app's own
            item id (a str, or an int written as its decimal string), unique; devices store their history
            by it, so a later bundle with a changed catalog keeps every surviving item's history. None
            writes none: row ``r`` then holds the item with id ``str(r)``.
        privacy: the privacy ledger for the manifest; default ``{"mode": "none", "ledger": []}``.
        sparsity: the target sparsity the table was pruned to, in [0, 1) (the manifest records the
            measured fraction of zeros; Core ML uses the target to pick its sparse variant).
        overwrite: replace an existing non-empty ``out_dir``.
        recency_half_life: how devices weight their history when reconstructing (label of the item
            ``r`` interactions before the latest = ``0.5 ** (r / h)``); ``None`` = uniform labels.
        item_features: public item features ``F [num_items, f]`` (e.g. genres) of a table tied to them
            (``V = E + F W``), shipped as ``item_features.safetensors`` so a device can compute its
            federated update of ``W``; None ships none.
        sign_key: the publisher's Ed25519 private key (a PEM path, its bytes, or the key object): writes
            ``manifest.sig`` (:func:`sign_bundle`) so apps can verify the bundle with the public key they
            pin. None writes an unsigned bundle, which readers load only with ``allow_unsigned=True``.
        coreml_targets: Core ML deployment targets (:class:`~privrec.export.base.ExportConfig`): one iOS18
            multifunction package by default; add ``"iOS16"`` for the three-package fallback.
        onnx_standard_ops: int8 ONNX graphs from standard ONNX ops only (``MatMulInteger``) instead of
            onnxruntime's ``MatMulNBits`` (:class:`~privrec.export.base.ExportConfig`): for bundles that
            onnxruntime-web or another ONNX runtime runs.

    The bundle appears atomically: it is written to a temporary sibling directory, signed, checked with
    :func:`~privrec.export.manifest.load_manifest` (against the signing key's public half), and renamed
    into place.
    """
    m, p = _prepare_model(model, precision)
    fmts = _check_formats(formats)
    ExportConfig(coreml_targets=coreml_targets)  # refuses bad targets before any work
    ft = FinetuneConfig() if finetune is None else finetune
    if not isinstance(ft, FinetuneConfig):
        raise TypeError(f"`finetune` must be a FinetuneConfig. Found {type(ft).__name__}.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 < top_k <= m.num_items:
        raise ValueError(f"`top_k` must be an int in [1, {m.num_items}] (the number of items). Found {top_k!r}.")
    if not isinstance(sparsity, int | float) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"`sparsity` must be in [0, 1). Found {sparsity!r}.")
    meta = _check_items(items, m.num_items)
    ledger = _check_privacy(privacy)
    features = _check_item_features(item_features, m.num_items)
    key = None if sign_key is None else load_private_key(sign_key)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty: remove it, choose another --out, or pass overwrite=True.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        _write_bundle(
            tmp, m, p, fmts, ft, top_k, meta, ledger, float(sparsity), recency_half_life, features, key, coreml_targets,
            onnx_standard_ops,
        )
        os.chmod(tmp, 0o755)
        old: Path | None = None
        if out.is_dir() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old)
        os.replace(tmp, out)  # POSIX rename: atomic, and replaces an empty directory
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def export_run(
    run_dir: Path | str,
    out: Path | str,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    precision: str = "float32",
    sparsity: float = 0.0,
    overwrite: bool = False,
    sign_key: PrivateKeySource | None = None,
    coreml_targets: tuple[str, ...] = ("iOS18",),
    onnx_standard_ops: bool = False,
) -> Path:
    """Export a RUN_DIR written by ``privrec train`` (what ``privrec export`` calls).

    Reads ``weights.safetensors`` (:meth:`TrainedModel.load`), ``config.json`` (its optional
    ``"finetune"`` object with ``steps``/``lr``/``l2``), ``items.json`` (item metadata, if present) and
    ``privacy_ledger.json`` (the privacy ledger, if present; otherwise ``{"mode": "none"}``). With
    ``sparsity > 0`` the item table is first pruned and fine-tuned by ``privrec.sdk.prune.prune_run``.
    ``sign_key`` signs the bundle; ``coreml_targets`` picks the Core ML packages and ``onnx_standard_ops`` the
    int8 ONNX kernel (:func:`export_bundle`).
    """
    run = Path(run_dir)
    key = None if sign_key is None else load_private_key(sign_key)  # a bad key fails before any work
    trained = TrainedModel.load(run)
    config = _read_json(run / "config.json", default={})
    if not isinstance(config, dict):
        raise ValueError(f"{run / 'config.json'} must hold a JSON object. Found {type(config).__name__}.")
    ft_raw = config.get("finetune") or {}
    if not isinstance(ft_raw, dict):
        raise ValueError(f"{run / 'config.json'}: `finetune` must be an object. Found {ft_raw!r}.")
    ft = FinetuneConfig(**{k: ft_raw[k] for k in ("steps", "lr", "l2", "calls") if k in ft_raw})
    items = _read_json(run / "items.json", default=None)
    privacy = _read_json(run / "privacy_ledger.json", default=None)
    p = _check_precision(precision)
    if not isinstance(sparsity, int | float) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"`sparsity` must be in [0, 1). Found {sparsity!r}.")
    model: ItemModel = trained.items
    if sparsity > 0:
        from privrec.sdk.prune import prune_run

        model = prune_run(run, sparsity)
    return export_bundle(
        model,
        out,
        formats=formats,
        precision=p,
        finetune=ft,
        items=items,
        privacy=privacy,
        sparsity=float(sparsity),
        overwrite=overwrite,
        recency_half_life=(config.get("train") or {}).get("recency_half_life"),
        sign_key=key,
        coreml_targets=coreml_targets,
        onnx_standard_ops=onnx_standard_ops,
    )


def _read_json(path: Path, *, default: Any) -> Any:
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}).") from None


def export_format(
    model: Exportable,
    out_dir: Path | str,
    fmt: str,
    *,
    precision: Precision | None = None,
    top_k: int = 10,
    finetune_steps: int = 10,
    sparsity: float = 0.0,
    coreml_targets: tuple[str, ...] = ("iOS18",),
    onnx_standard_ops: bool = False,
) -> ArtifactRecord:
    """Write one format's artifact files into ``out_dir`` (no manifest, weights or golden file).

    For apps that want a single file (``model.tflite``, ``Recommender.mlpackage``) or a single ONNX
    artifact. Without the manifest nothing checks the files' integrity: prefer :func:`export_bundle`.
    Returns the exporter's record (files relative to ``out_dir``).
    """
    m, _ = _prepare_model(model, precision)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 < top_k <= m.num_items:
        raise ValueError(f"`top_k` must be an int in [1, {m.num_items}] (the number of items). Found {top_k!r}.")
    exporter = get_exporter(fmt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = ExportConfig(
        top_k=top_k,
        finetune_steps=finetune_steps,
        sparsity=sparsity,
        coreml_targets=coreml_targets,
        onnx_standard_ops=onnx_standard_ops,
    )
    return exporter(m, out, config)


def export_onnx(model: Exportable, out_dir: Path | str, **kwargs: Any) -> ArtifactRecord:
    """:func:`export_format` for ONNX (three graph files sharing ``model.onnx.data``)."""
    return export_format(model, out_dir, "onnx", **kwargs)


def export_tflite(model: Exportable, out_dir: Path | str, **kwargs: Any) -> ArtifactRecord:
    """:func:`export_format` for TFLite."""
    return export_format(model, out_dir, "tflite", **kwargs)


def export_coreml(model: Exportable, out_dir: Path | str, **kwargs: Any) -> ArtifactRecord:
    """:func:`export_format` for Core ML."""
    return export_format(model, out_dir, "coreml", **kwargs)
