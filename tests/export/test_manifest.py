"""manifest.json: round trip, schema checks, and refusal of every kind of tampering (export/manifest.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from privrec.export import BundleError, load_manifest
from privrec.export.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    file_digest,
    read_safetensors_header,
)
from privrec.sdk.errors import DataIntegrityError
from privrec.sdk.model import ItemModel


def _edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = bundle / MANIFEST_NAME
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _rehash(bundle: Path, rel: str) -> None:
    """Make the manifest agree with a modified file (simulating a consistent forgery)."""
    sha, size = file_digest(bundle / rel)

    def edit(data: dict[str, Any]) -> None:
        data["files"][rel] = {"sha256": sha, "size": size}

    _edit_manifest(bundle, edit)


def test_round_trip(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(precision="int8", top_k=7)
    m = load_manifest(bundle)
    on_disk = json.loads((bundle / MANIFEST_NAME).read_text())
    assert m.to_dict() == on_disk
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    assert (m.schema_version, m.num_items, m.dim, m.precision, m.top_k) == (SCHEMA_VERSION, 200, 8, "int8", 7)
    assert on_disk["weights"] == {
        "item_embedding": {"dtype": "int8", "shape": [200, 8]},
        "item_scale": {"dtype": "float32", "shape": [200]},
        "item_bias": {"dtype": "float32", "shape": [200]},
    }
    assert on_disk["signatures"]["recommend"]["outputs"][0] == {
        "name": "top_ids",
        "dtype": "int32",
        "shape": [7],
    }
    assert on_disk["privacy"] == {"mode": "none", "ledger": []}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-[0-9a-f]{8}", on_disk["model_version"])
    weights_sha = on_disk["files"]["weights.safetensors"]["sha256"]
    assert on_disk["model_version"].endswith(weights_sha[:8])
    assert set(on_disk["files"]) == {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {MANIFEST_NAME}


def test_every_listed_file_is_protected_by_its_hash(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    listed = list(json.loads((bundle / MANIFEST_NAME).read_text())["files"])
    assert len(listed) >= 6
    for rel in listed:
        path = bundle / rel
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(BundleError, match=rf"^{re.escape(rel)}: sha256 mismatch \(manifest [0-9a-f]{{8}}…, file "):
            load_manifest(bundle)
        path.write_bytes(original)
    load_manifest(bundle)  # restored: loads again


def test_size_change_and_missing_file_are_named(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    with (bundle / "golden.json").open("a") as f:
        f.write(" ")
    with pytest.raises(BundleError, match=r"^golden\.json: size mismatch \(manifest \d+ bytes, file \d+ bytes\)"):
        load_manifest(bundle)
    (bundle / "golden.json").unlink()
    with pytest.raises(BundleError, match=r"^golden\.json: listed in manifest\.json but missing from the bundle\."):
        load_manifest(bundle)


def test_errors_are_data_integrity_errors_and_value_errors(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    (bundle / "model.onnx.data").write_bytes(b"")
    with pytest.raises(DataIntegrityError):
        load_manifest(bundle)
    with pytest.raises(ValueError, match=r"model\.onnx\.data"):
        load_manifest(bundle)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_unknown_schema_version_is_refused(make_bundle: Callable[..., Path], version: object) -> None:
    bundle = make_bundle()
    _edit_manifest(bundle, lambda d: d.__setitem__("schema_version", version))
    with pytest.raises(
        BundleError,
        match=rf"manifest\.json: field `schema_version` must be 1 .* Found {re.escape(repr(version))}",
    ):
        load_manifest(bundle)


def test_wrong_dtype_in_weights_is_refused_even_with_a_matching_hash(
    make_bundle: Callable[..., Path],
) -> None:
    bundle = make_bundle()
    rng = np.random.default_rng(0)
    save_file(
        {
            "item_embedding": rng.normal(size=(200, 8)),
            "item_bias": np.zeros(200, np.float32),
        },  # float64 table
        str(bundle / "weights.safetensors"),
    )
    _rehash(bundle, "weights.safetensors")
    with pytest.raises(
        BundleError,
        match=r"^weights\.safetensors: `item_embedding` dtype mismatch \(manifest float32, file float64\)",
    ):
        load_manifest(bundle)


def test_wrong_shape_in_weights_is_refused(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    save_file(
        {"item_embedding": np.zeros((199, 8), np.float32), "item_bias": np.zeros(200, np.float32)},
        str(bundle / "weights.safetensors"),
    )
    _rehash(bundle, "weights.safetensors")
    with pytest.raises(BundleError, match=r"`item_embedding` shape mismatch \(manifest \[200, 8\], file \[199, 8\]\)"):
        load_manifest(bundle)


def test_manifest_weights_must_match_dim_and_precision(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    _edit_manifest(bundle, lambda d: d["weights"]["item_embedding"].__setitem__("dtype", "int8"))
    with pytest.raises(BundleError, match=r"manifest\.json: field `weights` must be .* for a float32 model of 200 items × 8"):
        load_manifest(bundle)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dim", 0, r"field `dim` must be an int > 0\. Found 0\."),
        ("precision", "int4", r"field `precision` must be 'float32' or 'int8'\. Found 'int4'\."),
        ("top_k", True, r"field `top_k` must be an int > 0\. Found True\."),
        (
            "finetune",
            {"steps": 0, "lr": 1.0, "l2": 0.0},
            r"field `finetune\.steps` must be an int > 0\. Found 0\.",
        ),
        (
            "items",
            [{"index": 1, "id": "x"}],
            r"field `items` must be empty or hold one entry per item \(200\)",
        ),
        ("artifacts", {}, r"field `artifacts` must be a non-empty object"),
        ("files", {"../evil": {"sha256": "0" * 64, "size": 1}}, r"invalid path '\.\./evil'"),
    ],
)
def test_schema_violations_name_the_field(make_bundle: Callable[..., Path], field: str, value: object, message: str) -> None:
    bundle = make_bundle()
    _edit_manifest(bundle, lambda d: d.__setitem__(field, value))
    with pytest.raises(BundleError, match=message):
        load_manifest(bundle)


def test_missing_field_and_missing_or_broken_manifest(make_bundle: Callable[..., Path], tmp_path: Path) -> None:
    bundle = make_bundle()
    _edit_manifest(bundle, lambda d: d.pop("privacy"))
    with pytest.raises(BundleError, match=r"manifest\.json: missing field\(s\) \['privacy'\]"):
        load_manifest(bundle)
    (bundle / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON"):
        load_manifest(bundle)
    with pytest.raises(BundleError, match=r"manifest\.json: missing from"):
        load_manifest(tmp_path / "nowhere")


def test_signatures_must_be_the_contract(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    _edit_manifest(bundle, lambda d: d["signatures"]["score"]["inputs"][1].__setitem__("dtype", "int64"))
    with pytest.raises(BundleError, match=r"field `signatures` must be the docs/BUNDLE\.md signatures"):
        load_manifest(bundle)


def test_safetensors_header_reader(tmp_path: Path, small_model: ItemModel) -> None:
    save_file(small_model.tensors(), str(tmp_path / "w.safetensors"), metadata={"k": "v"})
    assert read_safetensors_header(tmp_path / "w.safetensors") == {
        "item_embedding": ("float32", (200, 8)),
        "item_bias": ("float32", (200,)),
    }
    (tmp_path / "short").write_bytes(b"\x01\x02")
    with pytest.raises(BundleError, match=r"^short: header is truncated \(2 bytes\)"):
        read_safetensors_header(tmp_path / "short")
    (tmp_path / "bad").write_bytes((5).to_bytes(8, "little") + b"nope!")
    with pytest.raises(BundleError, match=r"^bad: header is not valid JSON"):
        read_safetensors_header(tmp_path / "bad")
