"""``manifest.json``: write it, and read it back refusing anything that is not exactly what it says.

The format is docs/BUNDLE.md (schema version 1). :func:`load_manifest` is the one gate every reader
goes through (the runtime, ``privrec verify``, the reference): with a pinned public key it first checks
``manifest.sig`` over the exact bytes it then parses; it checks the schema, the limits that bound every
reader's work, that every path is a listed file inside the bundle, then every listed file's size and
sha256 (never through a symbolic link), then the ``weights.safetensors`` header (names, dtypes, shapes
and data offsets that exactly fill the file), and raises :class:`~privrec.export.errors.BundleError`
naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
from numpy.typing import NDArray

from .base import PRECISIONS, ArtifactRecord, Precision, TensorSpec
from .errors import BundleError
from .files import (
    MANIFEST_NAME,
    RESERVED_NAMES,
    SIGNATURE_NAME,
    check_relpath,
    open_bundle_file,
    parse_json,
    read_manifest_bytes,
)
from .item_map import ItemMap, check_item_map
from .signing import PublicKeySource, check_manifest_signature, load_public_key

__all__ = [
    "GOLDEN_NAME",
    "ITEM_FEATURES_NAME",
    "MANIFEST_NAME",
    "MAX_DIM",
    "MAX_FINETUNE_CALLS",
    "MAX_FINETUNE_STEPS",
    "MAX_NUM_ITEMS",
    "MAX_TABLE_ELEMENTS",
    "SCHEMA_VERSION",
    "SIGNATURE_NAME",
    "WEIGHTS_NAME",
    "Manifest",
    "bundle_signatures",
    "check_weights_file",
    "check_weights_header",
    "file_digest",
    "files_table",
    "load_item_features",
    "load_manifest",
    "load_safetensors",
    "read_listed_file",
    "read_safetensors_header",
    "safetensors_header_from_bytes",
    "signatures_to_json",
    "verify_files",
    "weight_specs",
    "write_manifest",
]

SCHEMA_VERSION = 1
WEIGHTS_NAME = "weights.safetensors"
GOLDEN_NAME = "golden.json"
ITEM_FEATURES_NAME = "item_features.safetensors"

# safetensors header dtype codes -> (numpy name, bytes per element)
# (https://github.com/huggingface/safetensors, format spec).
_SAFETENSORS_DTYPES = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U64": ("uint64", 8),
    "U32": ("uint32", 4),
    "U16": ("uint16", 2),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
_HEADER_LIMIT = 100_000_000  # the safetensors reference implementation refuses larger headers too
_TENSOR_KEYS = frozenset({"dtype", "shape", "data_offsets"})
_CHUNK = 1 << 20

# Limits checked before anything is computed, so the work of a reader (load, self-test, `privrec verify`)
# is bounded by the bundle's real size, never by a number an attacker writes (docs/BUNDLE.md, "Limits").
MAX_DIM = 4096
MAX_NUM_ITEMS = 10_000_000
# JVM arrays and Swift buffers are indexed by a signed 32-bit int: the Kotlin core holds the whole table
# in one FloatArray, so a larger table could not be read on a device at all.
MAX_TABLE_ELEMENTS = 2**31 - 1
MAX_FINETUNE_STEPS = 1000
MAX_FINETUNE_CALLS = 1000
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Keys of an artifact's `details` whose string values (at any depth) are bundle paths the runners open:
# ONNX `graphs`/`external_data`, Core ML `variants.*.packages` (directories) and `variants.*.files`.
_DETAIL_PATH_KEYS = frozenset({"external_data", "file", "files", "graphs", "packages", "path", "paths"})
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
    if precision == "int4":  # two int4 values per byte (privrec.sdk.quantize.pack_int4)
        specs["item_embedding"] = {"dtype": "uint8", "shape": [num_items, (dim + 1) // 2]}
    # int4 keeps its per-row scale and the bias in float16 (privrec.sdk.quantize): 2 bytes per item each.
    per_row = "float16" if precision == "int4" else "float32"
    if precision in ("int8", "int4"):
        specs["item_scale"] = {"dtype": per_row, "shape": [num_items]}
    specs["item_bias"] = {"dtype": per_row, "shape": [num_items]}
    return specs


SafetensorsHeader = dict[str, tuple[str, tuple[int, ...]]]


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """``{tensor name: (numpy dtype name, shape)}`` from a safetensors file, reading only its header.

    Layout (safetensors format spec): an unsigned little-endian u64 ``n``, then ``n`` bytes of JSON
    mapping each tensor name to ``{"dtype", "shape", "data_offsets"}`` (plus an optional
    ``__metadata__`` of strings), then the raw tensor bytes. Every entry is checked: a known dtype, a
    shape of non-negative ints, and ``data_offsets`` that hold exactly ``dtype size × elements`` bytes
    and together fill the data section with no gap, overlap or missing byte. A truncated file (even
    one whose new sha256 was written into the manifest) is refused here.
    """
    with Path(path).open("rb") as f:
        return _header_from_file(f, Path(path).name)


def _header_from_file(f: BinaryIO, name: str) -> SafetensorsHeader:
    size = os.fstat(f.fileno()).st_size
    n = _header_length(f.read(8), size, name)
    return _parse_safetensors_header(f.read(n), size - 8 - n, name)


def safetensors_header_from_bytes(data: bytes, name: str) -> SafetensorsHeader:
    """:func:`read_safetensors_header` over a whole file already in memory (``name`` is for messages)."""
    n = _header_length(data[:8], len(data), name)
    return _parse_safetensors_header(data[8 : 8 + n], len(data) - 8 - n, name)


def _header_length(head: bytes, file_size: int, name: str) -> int:
    if len(head) != 8:
        raise BundleError(f"{name}: header is truncated ({len(head)} bytes): not a safetensors file.")
    (n,) = struct.unpack("<Q", head)
    if n > _HEADER_LIMIT:
        raise BundleError(f"{name}: header length {n} is implausible: not a safetensors file.")
    if n > file_size - 8:
        raise BundleError(f"{name}: header length {n} does not fit a file of {file_size} bytes: the file is truncated.")
    return int(n)


def _parse_safetensors_header(blob: bytes, data_size: int, name: str) -> SafetensorsHeader:
    header = parse_json(blob, f"{name}: header is")
    if not isinstance(header, dict):
        raise BundleError(f"{name}: header must be a JSON object. Found {type(header).__name__}.")
    out: SafetensorsHeader = {}
    spans: list[tuple[int, int, str]] = []
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise BundleError(f"{name}: header field `__metadata__` must map strings to strings. Found {entry!r:.200}.")
            continue
        if not isinstance(entry, dict) or set(entry) != _TENSOR_KEYS:
            found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise BundleError(f"{name}: header field `{key}` must be an object with keys {sorted(_TENSOR_KEYS)}. Found {found}.")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _SAFETENSORS_DTYPES:
            raise BundleError(
                f"{name}: header field `{key}.dtype` must be one of {sorted(_SAFETENSORS_DTYPES)}. Found {dtype!r:.80}."
            )
        numpy_name, item_bytes = _SAFETENSORS_DTYPES[dtype]
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise BundleError(f"{name}: header field `{key}.shape` must be a list of ints >= 0. Found {shape!r:.80}.")
        pair = isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
        if not (pair and 0 <= offsets[0] <= offsets[1]):
            raise BundleError(
                f"{name}: header field `{key}.data_offsets` must be [begin, end] with 0 <= begin <= end. Found {offsets!r:.80}."
            )
        need = math.prod(shape) * item_bytes
        if offsets[1] - offsets[0] != need:
            span = offsets[1] - offsets[0]
            raise BundleError(f"{name}: header field `{key}.data_offsets` spans {span} bytes, but {dtype}{shape} needs {need}.")
        spans.append((offsets[0], offsets[1], key))
        out[key] = (numpy_name, tuple(shape))
    at = 0
    for begin, end, key in sorted(spans):
        if begin != at:
            raise BundleError(
                f"{name}: header field `{key}.data_offsets` starts at byte {begin}; the data before it ends at {at} "
                "(tensors must fill the data section without gaps or overlaps)."
            )
        at = end
    if at != data_size:
        raise BundleError(
            f"{name}: the tensors end at data byte {at}, but the file holds {data_size} data bytes: the file is "
            "truncated or padded."
        )
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` (docs/BUNDLE.md). Construct with :meth:`from_dict`, which validates.

    Attributes mirror the JSON fields; ``finetune`` holds ``steps`` (int, baked into the artifacts),
    ``lr`` and ``l2`` (floats, the recommended inputs); ``items`` is the item map sorted by row (one
    ``{"index", "id", "title", …}`` per row, ids unique), or empty when the exporter was given no item
    metadata: then row ``r`` holds the item with id ``str(r)`` (:attr:`item_map`).
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

    @cached_property
    def item_map(self) -> ItemMap:
        """Row ↔ app item id (:class:`~privrec.export.item_map.ItemMap`; the implicit map without ``items``)."""
        return ItemMap.from_items(self.items, self.num_items)

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
        dim = _bounded_int(raw, "dim", MAX_DIM)
        num_items = _bounded_int(raw, "num_items", MAX_NUM_ITEMS)
        top_k = _bounded_int(raw, "top_k", num_items)
        if dim * num_items > MAX_TABLE_ELEMENTS:
            raise BundleError(
                f"{MANIFEST_NAME}: fields `num_items` × `dim` must be at most {MAX_TABLE_ELEMENTS} (a device holds the "
                f"table in one array). Found {num_items} × {dim} = {num_items * dim}."
            )
        precision = raw["precision"]
        if precision not in PRECISIONS:
            raise BundleError(f"{MANIFEST_NAME}: field `precision` must be one of {list(PRECISIONS)}. Found {precision!r}.")
        sparsity = raw["sparsity"]
        if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0.0 <= float(sparsity) <= 1.0:
            raise BundleError(f"{MANIFEST_NAME}: field `sparsity` must be a number in [0, 1]. Found {sparsity!r}.")
        finetune = _finetune(raw["finetune"])
        items = _items(raw["items"], num_items)
        expected_weights = weight_specs(precision, num_items, dim)
        if raw["weights"] != expected_weights:
            raise BundleError(
                f"{MANIFEST_NAME}: field `weights` must be {expected_weights} for a {precision} model of "
                f"{num_items} items × {dim}. Found {json.dumps(raw['weights'])[:300]}."
            )
        signatures = _signatures(raw["signatures"], dim, num_items, top_k)
        files = _files(raw["files"])
        artifacts = _artifacts(raw["artifacts"], files)
        privacy = raw["privacy"]
        if not isinstance(privacy, dict):
            raise BundleError(f"{MANIFEST_NAME}: field `privacy` must be an object. Found {type(privacy).__name__}.")
        for key in ("model_version", "privrec_version"):
            if not isinstance(raw[key], str):
                raise BundleError(f"{MANIFEST_NAME}: field `{key}` must be a string. Found {raw[key]!r:.80}.")
        extra = {k: v for k, v in raw.items() if k not in _REQUIRED}
        if extra.get("item_features") is not None:
            _item_features_field(extra["item_features"], files)
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
            extra=extra,
        )


def _bounded_int(raw: Mapping[str, Any], key: str, high: int) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= high:
        raise BundleError(f"{MANIFEST_NAME}: field `{key}` must be an int in [1, {high}]. Found {value!r:.80}.")
    return value


_FINETUNE_REQUIRED = {"steps", "lr", "l2"}
_FINETUNE_OPTIONAL = {"calls", "recency_half_life"}


def _finetune(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict) or not _FINETUNE_REQUIRED <= set(raw) <= _FINETUNE_REQUIRED | _FINETUNE_OPTIONAL:
        raise BundleError(
            f"{MANIFEST_NAME}: field `finetune` must hold {{'steps', 'lr', 'l2'}} and optionally "
            f"{{'calls', 'recency_half_life'}}. Found {raw!r:.200}."
        )
    calls = raw.get("calls", 1)
    if isinstance(calls, bool) or not isinstance(calls, int) or not 0 < calls <= MAX_FINETUNE_CALLS:
        raise BundleError(
            f"{MANIFEST_NAME}: field `finetune.calls` must be an int in [1, {MAX_FINETUNE_CALLS}]. Found {calls!r:.80}."
        )
    half_life = raw.get("recency_half_life")
    if half_life is not None and (
        isinstance(half_life, bool) or not isinstance(half_life, int | float) or not math.isfinite(half_life) or half_life <= 0
    ):
        raise BundleError(
            f"{MANIFEST_NAME}: field `finetune.recency_half_life` must be null or a number > 0. Found {half_life!r}."
        )
    steps, lr, l2 = raw["steps"], raw["lr"], raw["l2"]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 < steps <= MAX_FINETUNE_STEPS:
        raise BundleError(
            f"{MANIFEST_NAME}: field `finetune.steps` must be an int in [1, {MAX_FINETUNE_STEPS}]. Found {steps!r:.80}."
        )
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
    """The item map, validated (:func:`~privrec.export.item_map.check_item_map`) and sorted by row."""
    return check_item_map(raw, num_items)


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
        raise BundleError(f"{MANIFEST_NAME}: field `files` must be a non-empty object. Found {raw!r:.200}.")
    for rel, entry in raw.items():
        check_relpath(rel, "files")
        if rel in RESERVED_NAMES:
            raise BundleError(
                f"{MANIFEST_NAME}: field `files` lists {rel!r}, which is never listed ({MANIFEST_NAME} and "
                f"{SIGNATURE_NAME} cannot hash themselves)."
            )
        ok = isinstance(entry, dict) and set(entry) == {"sha256", "size"}
        ok = ok and isinstance(entry["sha256"], str) and _SHA256_HEX.fullmatch(entry["sha256"]) is not None
        ok = ok and _is_int(entry["size"]) and entry["size"] >= 0
        if not ok:
            raise BundleError(
                f"{MANIFEST_NAME}: field `files[{rel!r}]` must be {{'sha256': 64 lowercase hex, 'size': int >= 0}}. "
                f"Found {entry!r:.200}."
            )
    for required in (WEIGHTS_NAME, GOLDEN_NAME):
        if required not in raw:
            raise BundleError(f"{MANIFEST_NAME}: field `files` must list {required}. Found {sorted(raw)[:20]}.")
    return raw


def _artifacts(raw: object, files: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        raise BundleError(f"{MANIFEST_NAME}: field `artifacts` must be a non-empty object. Found {raw!r:.200}.")
    for fmt, art in raw.items():
        where = f"artifacts.{fmt}"
        if not isinstance(art, dict) or not isinstance(art.get("files"), list) or not art["files"]:
            raise BundleError(f"{MANIFEST_NAME}: field `{where}.files` must be a non-empty list. Found {art!r:.200}.")
        if art.get("precision") not in PRECISIONS:
            raise BundleError(
                f"{MANIFEST_NAME}: field `{where}.precision` must be one of {list(PRECISIONS)}. "
                f"Found {art.get('precision')!r:.80}."
            )
        for i, rel in enumerate(art["files"]):
            check_relpath(rel, f"{where}.files[{i}]")
        unlisted = [f for f in art["files"] if f not in files]
        if unlisted:
            raise BundleError(f"{MANIFEST_NAME}: field `{where}.files` names {unlisted[:5]}, absent from `files`.")
        details = art.get("details", {})
        if not isinstance(details, dict):
            raise BundleError(f"{MANIFEST_NAME}: field `{where}.details` must be an object. Found {type(details).__name__}.")
        own = frozenset(art["files"])
        for field_, value in _detail_paths(details, f"{where}.details", under_path_key=False):
            rel = check_relpath(value, field_)
            if rel not in own and not any(f.startswith(rel + "/") for f in own):
                raise BundleError(
                    f"{MANIFEST_NAME}: field `{field_}` names {rel!r}, which is not a file (or a directory of files) "
                    f"of `{where}.files`: every path an artifact uses must be listed, so its sha256 is checked."
                )
    return raw


def _detail_paths(node: object, where: str, *, under_path_key: bool) -> Iterator[tuple[str, object]]:
    """``(field, value)`` of every leaf under a key of :data:`_DETAIL_PATH_KEYS` in an artifact's details.

    Every such leaf is a path a runner may open (a non-string leaf is yielded too, and refused)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _detail_paths(value, f"{where}.{key}", under_path_key=under_path_key or key in _DETAIL_PATH_KEYS)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _detail_paths(value, f"{where}[{i}]", under_path_key=under_path_key)
    elif under_path_key:
        yield where, node


def _item_features_field(raw: object, files: Mapping[str, Any]) -> tuple[str, int]:
    """The optional ``item_features`` field ``{"file": "item_features.safetensors", "columns": f}``, checked."""
    if not isinstance(raw, dict) or set(raw) != {"file", "columns"}:
        raise BundleError(f"{MANIFEST_NAME}: field `item_features` must be {{'file', 'columns'}}. Found {raw!r:.200}.")
    rel, columns = raw["file"], raw["columns"]
    if rel != ITEM_FEATURES_NAME or rel not in files:
        raise BundleError(
            f"{MANIFEST_NAME}: field `item_features.file` must be {ITEM_FEATURES_NAME!r}, listed in `files`. Found {rel!r:.80}."
        )
    if not _is_int(columns) or columns < 1:
        raise BundleError(f"{MANIFEST_NAME}: field `item_features.columns` must be an int >= 1. Found {columns!r:.80}.")
    return rel, columns


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


def load_manifest(
    bundle_dir: Path | str, *, public_key: PublicKeySource | None = None, check_files: bool = True
) -> Manifest:
    """Read and validate ``bundle_dir/manifest.json``.

    With ``public_key`` (the publisher's pinned Ed25519 key, see :mod:`privrec.export.signing`), first
    checks ``manifest.sig`` over the exact bytes that are then parsed: an unsigned bundle, another key's
    signature or a manifest changed after signing raise :class:`~privrec.export.errors.SignatureError`
    before anything else is read. Without it, nothing authenticates the bundle: the checks below only
    make it self-consistent.

    With ``check_files`` (the default, and what every reader uses), also checks that every listed file is
    a regular file inside the bundle (no symbolic link on the way) with the listed size and sha256, and
    that ``weights.safetensors`` holds exactly the tensors, dtypes and shapes of ``weights`` with data
    offsets that fill the file. Raises :class:`BundleError` naming the file and the field.
    """
    root = Path(bundle_dir)
    data = read_manifest_bytes(root)
    if public_key is not None:
        check_manifest_signature(root, data, load_public_key(public_key))
    manifest = Manifest.from_dict(parse_json(data, f"{MANIFEST_NAME}:"))
    if check_files:
        verify_files(root, manifest)
        check_weights_file(root, manifest)
    return manifest


def check_weights_file(root: Path, manifest: Manifest) -> None:
    """Check that ``weights.safetensors`` holds exactly the manifest's ``weights`` (names, dtypes, shapes)
    with data offsets that fill the file (its header only; the sha256 is :func:`verify_files`'s job)."""
    with open_bundle_file(root, WEIGHTS_NAME) as f:
        _check_tensors(_header_from_file(f, WEIGHTS_NAME), manifest.weights, WEIGHTS_NAME)


def verify_files(root: Path, manifest: Manifest, only: Iterable[str] | None = None) -> None:
    """Check every file listed in ``manifest.files`` (or only the listed files named in ``only``): a regular
    file inside the bundle reached without a symbolic link, with the listed size and sha256. A name in
    ``only`` that ``files`` does not list is refused (:class:`BundleError`)."""
    if only is not None:
        wanted = list(dict.fromkeys(only))
        unlisted = [rel for rel in wanted if rel not in manifest.files]
        if unlisted:
            raise BundleError(f"{unlisted[0]}: not listed in {MANIFEST_NAME} `files`: a reader never uses an unlisted file.")
    entries = manifest.files.items() if only is None else [(rel, manifest.files[rel]) for rel in wanted]
    for rel, entry in entries:
        with open_bundle_file(root, rel) as f:
            size = os.fstat(f.fileno()).st_size
            if size != entry["size"]:
                raise BundleError(
                    f"{rel}: size mismatch (manifest {entry['size']} bytes, file {size} bytes): "
                    "the bundle is corrupt or tampered."
                )
            h = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        sha = h.hexdigest()
        if sha != entry["sha256"]:
            raise BundleError(
                f"{rel}: sha256 mismatch (manifest {entry['sha256'][:8]}…, file {sha[:8]}…): the bundle is corrupt or tampered."
            )


def read_listed_file(root: Path | str, manifest: Manifest, rel: str) -> bytes:
    """The bytes of one listed file, checked against its ``files`` entry after they are read.

    What is returned is exactly what was hashed, so a file replaced after :func:`load_manifest` is
    refused rather than used.
    """
    entry = manifest.files.get(rel)
    if entry is None:
        raise BundleError(f"{rel}: not listed in {MANIFEST_NAME} `files`: a reader never uses an unlisted file.")
    with open_bundle_file(Path(root), rel) as f:
        data = f.read(int(entry["size"]) + 1)
    if len(data) != entry["size"]:
        raise BundleError(
            f"{rel}: size mismatch (manifest {entry['size']} bytes, file {len(data)}+ bytes): the bundle is corrupt or tampered."
        )
    sha = hashlib.sha256(data).hexdigest()
    if sha != entry["sha256"]:
        raise BundleError(
            f"{rel}: sha256 mismatch (manifest {entry['sha256'][:8]}…, file {sha[:8]}…): the bundle is corrupt or tampered."
        )
    return data


def _check_tensors(header: SafetensorsHeader, weights: Mapping[str, Mapping[str, Any]], name: str) -> None:
    if set(header) != set(weights):
        raise BundleError(f"{name}: tensors {sorted(header)} differ from the manifest's `weights` {sorted(weights)}.")
    for tensor, spec in weights.items():
        dtype, shape = header[tensor]
        if dtype != spec["dtype"]:
            raise BundleError(f"{name}: `{tensor}` dtype mismatch (manifest {spec['dtype']}, file {dtype}).")
        if list(shape) != list(spec["shape"]):
            raise BundleError(f"{name}: `{tensor}` shape mismatch (manifest {list(spec['shape'])}, file {list(shape)}).")


def check_weights_header(path: Path, weights: Mapping[str, Mapping[str, Any]]) -> None:
    """Check that a safetensors file holds exactly ``weights`` (names, dtypes, shapes) and nothing else."""
    _check_tensors(read_safetensors_header(path), weights, path.name)


def load_safetensors(
    root: Path | str, manifest: Manifest, rel: str, tensors: Mapping[str, Mapping[str, Any]]
) -> dict[str, NDArray[Any]]:
    """The tensors of a listed safetensors file, read once, hash-checked and header-checked against ``tensors``."""
    from safetensors.numpy import load

    data = read_listed_file(root, manifest, rel)
    _check_tensors(safetensors_header_from_bytes(data, rel), tensors, rel)
    return dict(load(data))


def load_item_features(bundle_dir: Path | str, manifest: Manifest) -> NDArray[np.float32] | None:
    """The bundle's public item features ``float32[num_items, f]`` (the optional ``item_features`` field), or None.

    The field is ``{"file": "item_features.safetensors", "columns": f}``; the file must be listed in
    ``files`` and hold one tensor ``item_features`` of that shape (checked again, with its sha256, as it
    is read). Raises :class:`BundleError` naming the file and field otherwise.
    """
    field_ = manifest.extra.get("item_features")
    if field_ is None:
        return None
    rel, columns = _item_features_field(field_, manifest.files)
    spec = {"item_features": {"dtype": "float32", "shape": [manifest.num_items, columns]}}
    features = load_safetensors(bundle_dir, manifest, rel, spec)["item_features"]
    if not np.isfinite(features).all():
        raise BundleError(f"{rel}: `item_features` must be finite. Found NaN or inf.")
    return np.ascontiguousarray(features, np.float32)
