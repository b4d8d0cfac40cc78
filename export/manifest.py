"""``manifest.json``: write it, and read it back refusing anything that is not exactly what it says.

The format is docs/BUNDLE.md (schema version 1). :func:`load_manifest` is the one gate every reader
goes through (the runtime, ``privrec verify``, the reference): it checks the schema, then every listed
file's size and sha256, then the weight dtypes and shapes against the ``weights.safetensors`` header,
and raises :class:`~privrec.export.errors.BundleError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from .base import ArtifactRecord, Precision, TensorSpec
from .errors import BundleError

__all__ = [
    "GOLDEN_NAME",
    "ITEM_FEATURES_NAME",
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "WEIGHTS_NAME",
    "Manifest",
    "bundle_signatures",
    "check_weights_header",
    "file_digest",
    "files_table",
    "load_item_features",
    "load_manifest",
    "read_safetensors_header",
    "signatures_to_json",
    "verify_files",
    "weight_specs",
    "write_manifest",
]

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"
GOLDEN_NAME = "golden.json"
ITEM_FEATURES_NAME = "item_features.safetensors"

# safetensors header dtype codes -> numpy names (https://github.com/huggingface/safetensors, format spec).
_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}
_HEADER_LIMIT = 100_000_000  # the safetensors reference implementation refuses larger headers too
_CHUNK = 1 << 20
_SIGNATURE_NAMES = ("score", "recommend", "finetune")
_REQUIRED = (
    "schema_version",
    "model_version",
    "privrec_version",
    "dim",
    "num_items",
    "precision",
    "sparsity",
    "top_k",
    "finetune",
    "items",
    "weights",
    "signatures",
    "artifacts",
    "files",
    "privacy",
)

SignatureTable = dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]


def file_digest(path: Path) -> tuple[str, int]:
    """``(sha256 hex, size in bytes)`` of one file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def bundle_signatures(dim: int, num_items: int, top_k: int) -> SignatureTable:
    """The three signatures of docs/BUNDLE.md for a model of this size (``-1`` = dynamic)."""
    user = TensorSpec("user", "float32", (dim,))
    ids = TensorSpec("item_ids", "int32", (-1,))
    return {
        "score": ((user, ids), (TensorSpec("scores", "float32", (-1,)),)),
        "recommend": (
            (user, TensorSpec("mask", "float32", (num_items,))),
            (TensorSpec("top_ids", "int32", (top_k,)), TensorSpec("top_scores", "float32", (top_k,))),
        ),
        "finetune": (
            (
                user,
                ids,
                TensorSpec("labels", "float32", (-1,)),
                TensorSpec("lr", "float32", (1,)),
                TensorSpec("l2", "float32", (1,)),
            ),
            (TensorSpec("user_out", "float32", (dim,)), TensorSpec("loss", "float32", (1,))),
        ),
    }


def signatures_to_json(table: SignatureTable) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The ``signatures`` field of the manifest."""

    def spec(t: TensorSpec) -> dict[str, Any]:
        return {"name": t.name, "dtype": t.dtype, "shape": list(t.shape)}

    return {name: {"inputs": [spec(t) for t in ins], "outputs": [spec(t) for t in outs]} for name, (ins, outs) in table.items()}


def _signatures_from_json(raw: Mapping[str, Any]) -> SignatureTable:
    def spec(d: Mapping[str, Any]) -> TensorSpec:
        return TensorSpec(str(d["name"]), str(d["dtype"]), tuple(int(x) for x in d["shape"]))

    return {name: (tuple(spec(t) for t in sig["inputs"]), tuple(spec(t) for t in sig["outputs"])) for name, sig in raw.items()}


def weight_specs(precision: Precision, num_items: int, dim: int) -> dict[str, dict[str, Any]]:
    """The ``weights`` field: the tensors ``weights.safetensors`` must hold for this precision."""
    specs: dict[str, dict[str, Any]] = {
        "item_embedding": {"dtype": precision, "shape": [num_items, dim]},
    }
    if precision == "int8":
        specs["item_scale"] = {"dtype": "float32", "shape": [num_items]}
    specs["item_bias"] = {"dtype": "float32", "shape": [num_items]}
    return specs


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{tensor name: (numpy dtype name, shape)}`` from a safetensors header, without reading the data.

    Layout (safetensors format spec): an unsigned little-endian u64 ``n``, then ``n`` bytes of JSON
    mapping each tensor name to ``{"dtype", "shape", "data_offsets"}`` (plus an optional
    ``__metadata__``), then the raw tensor bytes.
    """
    name = path.name
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise BundleError(f"{name}: header is truncated ({len(head)} bytes): not a safetensors file.")
        (n,) = struct.unpack("<Q", head)
        if n > _HEADER_LIMIT:
            raise BundleError(f"{name}: header length {n} is implausible: not a safetensors file.")
        blob = f.read(n)
    try:
        header = json.loads(blob)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{name}: header is not valid JSON ({exc}).") from None
    if not isinstance(header, dict):
        raise BundleError(f"{name}: header must be a JSON object. Found {type(header).__name__}.")
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(str(entry.get("dtype")), str(entry.get("dtype")))
        out[key] = (dtype, tuple(int(x) for x in entry.get("shape", [])))
    return out


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` (docs/BUNDLE.md). Construct with :meth:`from_dict`, which validates.

    Attributes mirror the JSON fields; ``finetune`` holds ``steps`` (int, baked into the artifacts),
    ``lr`` and ``l2`` (floats, the recommended inputs); ``items`` is empty when the exporter was given
    no item metadata (then an item's id is its row index).
    """

    schema_version: int
    model_version: str
    privrec_version: str
    dim: int
    num_items: int
    precision: Precision
    sparsity: float
    top_k: int
    finetune: dict[str, Any]
    items: list[dict[str, Any]]
    weights: dict[str, dict[str, Any]]
    signatures: SignatureTable
    artifacts: dict[str, dict[str, Any]]
    files: dict[str, dict[str, Any]]
    privacy: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def formats(self) -> tuple[str, ...]:
        """The artifact formats this bundle holds, sorted."""
        return tuple(sorted(self.artifacts))

    def artifact_record(self, fmt: str) -> ArtifactRecord:
        """The :class:`ArtifactRecord` of one artifact, as a runner factory expects it."""
        if fmt not in self.artifacts:
            raise ValueError(f"this bundle has no {fmt!r} artifact. Found formats {list(self.formats)}.")
        art = self.artifacts[fmt]
        return ArtifactRecord(
            format=fmt,
            precision=cast(Precision, art["precision"]),
            files=tuple(art["files"]),
            signatures=dict(self.signatures),
            details=dict(art.get("details", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json``."""
        out: dict[str, Any] = dict(self.extra)
        out.update(
            {
                "schema_version": self.schema_version,
                "model_version": self.model_version,
                "privrec_version": self.privrec_version,
                "dim": self.dim,
                "num_items": self.num_items,
                "precision": self.precision,
                "sparsity": self.sparsity,
                "top_k": self.top_k,
                "finetune": self.finetune,
                "items": self.items,
                "weights": self.weights,
                "signatures": signatures_to_json(self.signatures),
                "artifacts": self.artifacts,
                "files": self.files,
                "privacy": self.privacy,
            }
        )
        return out

    @classmethod
    def from_dict(cls, raw: object) -> Manifest:
        """Validate a decoded ``manifest.json``; :class:`BundleError` names the first bad field."""
        if not isinstance(raw, dict):
            raise BundleError(f"{MANIFEST_NAME}: must hold a JSON object. Found {type(raw).__name__}.")
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleError(
                f"{MANIFEST_NAME}: field `schema_version` must be {SCHEMA_VERSION} (the only version this "
                f"reader knows). Found {version!r}: export the bundle again with this privrec version."
            )
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise BundleError(f"{MANIFEST_NAME}: missing field(s) {missing}.")
        dim = _positive_int(raw, "dim")
        num_items = _positive_int(raw, "num_items")
        top_k = _positive_int(raw, "top_k")
        precision = raw["precision"]
        if precision not in ("float32", "int8"):
            raise BundleError(f"{MANIFEST_NAME}: field `precision` must be 'float32' or 'int8'. Found {precision!r}.")
        sparsity = raw["sparsity"]
        if not isinstance(sparsity, int | float) or not 0.0 <= float(sparsity) <= 1.0:
            raise BundleError(f"{MANIFEST_NAME}: field `sparsity` must be a number in [0, 1]. Found {sparsity!r}.")
        finetune = _finetune(raw["finetune"])
        items = _items(raw["items"], num_items)
        expected_weights = weight_specs(precision, num_items, dim)
        if raw["weights"] != expected_weights:
            raise BundleError(
                f"{MANIFEST_NAME}: field `weights` must be {expected_weights} for a {precision} model of "
                f"{num_items} items × {dim}. Found {raw['weights']!r}."
            )
        signatures = _signatures(raw["signatures"], dim, num_items, top_k)
        files = _files(raw["files"])
        artifacts = _artifacts(raw["artifacts"], files)
        privacy = raw["privacy"]
        if not isinstance(privacy, dict):
            raise BundleError(f"{MANIFEST_NAME}: field `privacy` must be an object. Found {privacy!r}.")
        for key in ("model_version", "privrec_version"):
            if not isinstance(raw[key], str):
                raise BundleError(f"{MANIFEST_NAME}: field `{key}` must be a string. Found {raw[key]!r}.")
        return cls(
            schema_version=SCHEMA_VERSION,
            model_version=raw["model_version"],
            privrec_version=raw["privrec_version"],
            dim=dim,
            num_items=num_items,
            precision=precision,
            sparsity=float(sparsity),
            top_k=top_k,
            finetune=finetune,
            items=items,
            weights=expected_weights,
            signatures=signatures,
            artifacts=artifacts,
            files=files,
            privacy=privacy,
            extra={k: v for k, v in raw.items() if k not in _REQUIRED},
        )


def _positive_int(raw: Mapping[str, Any], key: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BundleError(f"{MANIFEST_NAME}: field `{key}` must be an int > 0. Found {value!r}.")
    return value


_FINETUNE_REQUIRED = {"steps", "lr", "l2"}
_FINETUNE_OPTIONAL = {"calls", "recency_half_life"}


def _finetune(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict) or not _FINETUNE_REQUIRED <= set(raw) <= _FINETUNE_REQUIRED | _FINETUNE_OPTIONAL:
        raise BundleError(
            f"{MANIFEST_NAME}: field `finetune` must hold {{'steps', 'lr', 'l2'}} and optionally "
            f"{{'calls', 'recency_half_life'}}. Found {raw!r}."
        )
    calls = raw.get("calls", 1)
    if isinstance(calls, bool) or not isinstance(calls, int) or calls <= 0:
        raise BundleError(f"{MANIFEST_NAME}: field `finetune.calls` must be an int > 0. Found {calls!r}.")
    half_life = raw.get("recency_half_life")
    if half_life is not None and (
        isinstance(half_life, bool) or not isinstance(half_life, int | float) or not math.isfinite(half_life) or half_life <= 0
    ):
        raise BundleError(
            f"{MANIFEST_NAME}: field `finetune.recency_half_life` must be null or a number > 0. Found {half_life!r}."
        )
    steps, lr, l2 = raw["steps"], raw["lr"], raw["l2"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise BundleError(f"{MANIFEST_NAME}: field `finetune.steps` must be an int > 0. Found {steps!r}.")
    for key, value, low in (("lr", lr, 0.0), ("l2", l2, None)):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > low if low is not None else value >= 0)
        if not ok:
            bound = "> 0" if low is not None else ">= 0"
            raise BundleError(f"{MANIFEST_NAME}: field `finetune.{key}` must be a finite number {bound}. Found {value!r}.")
    out: dict[str, Any] = {"steps": steps, "lr": float(lr), "l2": float(l2), "calls": calls}
    out["recency_half_life"] = None if half_life is None else float(half_life)
    return out


def _items(raw: object, num_items: int) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise BundleError(f"{MANIFEST_NAME}: field `items` must be a list. Found {type(raw).__name__}.")
    if raw and len(raw) != num_items:
        raise BundleError(
            f"{MANIFEST_NAME}: field `items` must be empty or hold one entry per item ({num_items}). Found {len(raw)}."
        )
    for pos, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("index") != pos or not isinstance(item.get("id"), str):
            raise BundleError(f"{MANIFEST_NAME}: field `items[{pos}]` must be {{'index': {pos}, 'id': str, …}}. Found {item!r}.")
    return raw


def _signatures(raw: object, dim: int, num_items: int, top_k: int) -> SignatureTable:
    expected = signatures_to_json(bundle_signatures(dim, num_items, top_k))
    if raw != expected:
        raise BundleError(
            f"{MANIFEST_NAME}: field `signatures` must be the docs/BUNDLE.md signatures for dim={dim}, "
            f"num_items={num_items}, top_k={top_k}. Found {json.dumps(raw)[:300]}."
        )
    return _signatures_from_json(expected)


def _files(raw: object) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        raise BundleError(f"{MANIFEST_NAME}: field `files` must be a non-empty object. Found {raw!r}.")
    for rel, entry in raw.items():
        _check_relpath(rel)
        sha, size = (entry.get("sha256"), entry.get("size")) if isinstance(entry, dict) else (None, None)
        if not (isinstance(sha, str) and len(sha) == 64 and isinstance(size, int) and size >= 0):
            raise BundleError(
                f"{MANIFEST_NAME}: field `files[{rel!r}]` must be {{'sha256': 64 hex, 'size': int}}. Found {entry!r}."
            )
    for required in (WEIGHTS_NAME, GOLDEN_NAME):
        if required not in raw:
            raise BundleError(f"{MANIFEST_NAME}: field `files` must list {required}. Found {sorted(raw)}.")
    return raw


def _check_relpath(rel: str) -> None:
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts or rel == MANIFEST_NAME:
        raise BundleError(f"{MANIFEST_NAME}: field `files` holds an invalid path {rel!r} (must be relative, inside the bundle).")


def _artifacts(raw: object, files: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        raise BundleError(f"{MANIFEST_NAME}: field `artifacts` must be a non-empty object. Found {raw!r}.")
    for fmt, art in raw.items():
        if not isinstance(art, dict) or not isinstance(art.get("files"), list) or not art["files"]:
            raise BundleError(f"{MANIFEST_NAME}: field `artifacts.{fmt}.files` must be a non-empty list. Found {art!r}.")
        if art.get("precision") not in ("float32", "int8"):
            raise BundleError(
                f"{MANIFEST_NAME}: field `artifacts.{fmt}.precision` must be 'float32' or 'int8'. Found {art.get('precision')!r}."
            )
        unlisted = [f for f in art["files"] if f not in files]
        if unlisted:
            raise BundleError(f"{MANIFEST_NAME}: field `artifacts.{fmt}.files` names {unlisted}, absent from `files`.")
    return raw


def files_table(bundle_dir: Path, rel_paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "size"}}`` for the given files, sorted by path."""
    table: dict[str, dict[str, Any]] = {}
    for rel in sorted(set(rel_paths)):
        sha, size = file_digest(bundle_dir / rel)
        table[rel] = {"sha256": sha, "size": size}
    return table


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` (strict UTF-8 JSON: no NaN/Infinity, sorted keys) after re-validating it."""
    data = manifest.to_dict()
    Manifest.from_dict(json.loads(json.dumps(data)))
    path = bundle_dir / MANIFEST_NAME
    path.write_text(
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    return path


def load_manifest(bundle_dir: Path | str, *, check_files: bool = True) -> Manifest:
    """Read and validate ``bundle_dir/manifest.json``.

    With ``check_files`` (the default, and what every reader uses), also checks that every listed file
    exists with the listed size and sha256, and that ``weights.safetensors`` holds exactly the tensors,
    dtypes and shapes of ``weights``. Raises :class:`BundleError` naming the file and the field.
    """
    root = Path(bundle_dir)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{MANIFEST_NAME}: missing from {root}: is it a bundle written by `privrec export`?")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{MANIFEST_NAME}: not valid JSON ({exc}): the bundle is corrupt.") from None
    manifest = Manifest.from_dict(raw)
    if check_files:
        verify_files(root, manifest)
        check_weights_header(root / WEIGHTS_NAME, manifest.weights)
    return manifest


def verify_files(root: Path, manifest: Manifest) -> None:
    """Check every file listed in ``manifest.files`` for presence, size and sha256."""
    for rel, entry in manifest.files.items():
        target = root / rel
        if not target.is_file():
            raise BundleError(f"{rel}: listed in {MANIFEST_NAME} but missing from the bundle.")
        sha, size = file_digest(target)
        if size != entry["size"]:
            raise BundleError(
                f"{rel}: size mismatch (manifest {entry['size']} bytes, file {size} bytes): the bundle is corrupt or tampered."
            )
        if sha != entry["sha256"]:
            raise BundleError(
                f"{rel}: sha256 mismatch (manifest {entry['sha256'][:8]}…, file {sha[:8]}…): the bundle is corrupt or tampered."
            )


def check_weights_header(path: Path, weights: Mapping[str, Mapping[str, Any]]) -> None:
    """Check that a safetensors file holds exactly ``weights`` (names, dtypes, shapes)."""
    header = read_safetensors_header(path)
    if set(header) != set(weights):
        raise BundleError(f"{path.name}: tensors {sorted(header)} differ from the manifest's `weights` {sorted(weights)}.")
    for name, spec in weights.items():
        dtype, shape = header[name]
        if dtype != spec["dtype"]:
            raise BundleError(f"{path.name}: `{name}` dtype mismatch (manifest {spec['dtype']}, file {dtype}).")
        if list(shape) != list(spec["shape"]):
            raise BundleError(f"{path.name}: `{name}` shape mismatch (manifest {list(spec['shape'])}, file {list(shape)}).")


def load_item_features(bundle_dir: Path | str, manifest: Manifest) -> NDArray[np.float32] | None:
    """The bundle's public item features ``float32[num_items, f]`` (the optional ``item_features`` field), or None.

    The field is ``{"file": "item_features.safetensors", "columns": f}``; the file must be listed in
    ``files`` (so :func:`load_manifest` has checked its hash) and hold one tensor ``item_features`` of that
    shape. Raises :class:`BundleError` naming the file and field otherwise.
    """
    field_ = manifest.extra.get("item_features")
    if field_ is None:
        return None
    if not isinstance(field_, dict) or set(field_) != {"file", "columns"}:
        raise BundleError(f"{MANIFEST_NAME}: field `item_features` must be {{'file', 'columns'}}. Found {field_!r}.")
    rel, columns = field_["file"], field_["columns"]
    if rel != ITEM_FEATURES_NAME or rel not in manifest.files:
        raise BundleError(
            f"{MANIFEST_NAME}: field `item_features.file` must be {ITEM_FEATURES_NAME!r}, listed in `files`. Found {rel!r}."
        )
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise BundleError(f"{MANIFEST_NAME}: field `item_features.columns` must be an int >= 1. Found {columns!r}.")
    path = Path(bundle_dir) / rel
    check_weights_header(path, {"item_features": {"dtype": "float32", "shape": [manifest.num_items, columns]}})
    from safetensors.numpy import load_file

    features = load_file(str(path))["item_features"]
    if not np.isfinite(features).all():
        raise BundleError(f"{rel}: `item_features` must be finite. Found NaN or inf.")
    return np.ascontiguousarray(features, np.float32)
