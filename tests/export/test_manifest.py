"""manifest.json: round trip, schema checks, and refusal of every kind of tampering (export/manifest.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_edits import edit_manifest, rehash
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from privrec.export import BundleError, load_manifest
from privrec.export.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    read_safetensors_header,
)
from privrec.sdk.errors import DataIntegrityError
from privrec.sdk.model import ItemModel


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
    edit_manifest(bundle, lambda d: d.__setitem__("schema_version", version))
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
    rehash(bundle, "weights.safetensors")
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
    rehash(bundle, "weights.safetensors")
    with pytest.raises(BundleError, match=r"`item_embedding` shape mismatch \(manifest \[200, 8\], file \[199, 8\]\)"):
        load_manifest(bundle)


def test_manifest_weights_must_match_dim_and_precision(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    edit_manifest(bundle, lambda d: d["weights"]["item_embedding"].__setitem__("dtype", "int8"))
    with pytest.raises(BundleError, match=r"manifest\.json: field `weights` must be .* for a float32 model of 200 items × 8"):
        load_manifest(bundle)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dim", 0, r"field `dim` must be an int in \[1, 4096\]\. Found 0\."),
        ("precision", "int2", r"field `precision` must be one of \['float32', 'int8', 'int4'\]\. Found 'int2'\."),
        ("top_k", True, r"field `top_k` must be an int in \[1, 200\]\. Found True\."),
        (
            "finetune",
            {"steps": 0, "lr": 1.0, "l2": 0.0},
            r"field `finetune\.steps` must be an int in \[1, 1000\]\. Found 0\.",
        ),
        (
            "items",
            [{"index": 1, "id": "x"}],
            r"field `items` must be empty or hold one entry per item \(200\)",
        ),
        ("artifacts", {}, r"field `artifacts` must be a non-empty object"),
        (
            "files",
            {"../evil": {"sha256": "0" * 64, "size": 1}},
            r"field `files` holds '\.\./evil', a path that is not normalised",
        ),
    ],
)
def test_schema_violations_name_the_field(make_bundle: Callable[..., Path], field: str, value: object, message: str) -> None:
    bundle = make_bundle()
    edit_manifest(bundle, lambda d: d.__setitem__(field, value))
    with pytest.raises(BundleError, match=message):
        load_manifest(bundle)


def test_missing_field_and_missing_or_broken_manifest(make_bundle: Callable[..., Path], tmp_path: Path) -> None:
    bundle = make_bundle()
    edit_manifest(bundle, lambda d: d.pop("privacy"))
    with pytest.raises(BundleError, match=r"manifest\.json: missing field\(s\) \['privacy'\]"):
        load_manifest(bundle)
    (bundle / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON"):
        load_manifest(bundle)
    with pytest.raises(BundleError, match=r"manifest\.json: missing from"):
        load_manifest(tmp_path / "nowhere")


def test_signatures_must_be_the_contract(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    edit_manifest(bundle, lambda d: d["signatures"]["score"]["inputs"][1].__setitem__("dtype", "int64"))
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


# ----------------------------------------------------------------- paths: every path is a listed file inside
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d, out: d["artifacts"]["onnx"]["details"]["graphs"].__setitem__("score", str(out)),
            r"field `artifacts\.onnx\.details\.graphs\.score` holds '/.*evil\.onnx', an absolute path",
        ),
        (
            lambda d, out: d["artifacts"]["onnx"]["details"]["graphs"].__setitem__("score", "golden.json"),
            r"field `artifacts\.onnx\.details\.graphs\.score` names 'golden\.json', which is not a file .* of "
            r"`artifacts\.onnx\.files`",
        ),
        (
            lambda d, out: d["artifacts"]["onnx"]["details"]["graphs"].__setitem__("score", "unlisted.onnx"),
            r"field `artifacts\.onnx\.details\.graphs\.score` names 'unlisted\.onnx', which is not a file",
        ),
        (
            lambda d, out: d["artifacts"]["onnx"]["details"]["graphs"].__setitem__("score", 5),
            r"field `artifacts\.onnx\.details\.graphs\.score` holds 5, a int, not a path string",
        ),
        (
            lambda d, out: d["artifacts"]["onnx"]["details"].__setitem__("external_data", "../model.onnx.data"),
            r"field `artifacts\.onnx\.details\.external_data` holds '\.\./model\.onnx\.data', a path that is not normalised",
        ),
        (
            lambda d, out: d["artifacts"]["onnx"]["details"].update(variants={"x": {"packages": {"score": "Other.mlpackage"}}}),
            r"field `artifacts\.onnx\.details\.variants\.x\.packages\.score` names 'Other\.mlpackage', which is not a file",
        ),
        (
            lambda d, out: d["artifacts"]["onnx"]["files"].append("C:\\model.onnx"),
            r"field `artifacts\.onnx\.files\[4\]` holds 'C:\\\\model\.onnx', a path with a backslash, colon",
        ),
        (
            lambda d, out: d["files"].__setitem__("manifest.sig", {"sha256": "0" * 64, "size": 0}),
            r"field `files` lists 'manifest\.sig', which is never listed",
        ),
        (
            lambda d, out: d["files"]["golden.json"].__setitem__("sha256", "A" * 64),
            r"field `files\['golden\.json'\]` must be \{'sha256': 64 lowercase hex",
        ),
        (
            lambda d, out: d.__setitem__("item_features", {"file": "/tmp/item_features.safetensors", "columns": 2}),
            r"field `item_features\.file` must be 'item_features\.safetensors', listed in `files`",
        ),
    ],
)
def test_paths_in_the_manifest_must_be_listed_files_inside_the_bundle(
    make_bundle: Callable[..., Path], tmp_path: Path, edit: Callable[[dict[str, Any], Path], None], message: str
) -> None:
    bundle = make_bundle()
    outside = tmp_path / "outside" / "evil.onnx"
    edit_manifest(bundle, lambda d: edit(d, outside))
    with pytest.raises(BundleError, match=rf"^manifest\.json: {message}"):
        load_manifest(bundle)


def test_a_symlink_to_a_file_outside_the_bundle_is_refused_even_rehashed(
    make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = make_bundle()
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "model.score.onnx"
    shutil.copy(bundle / "model.score.onnx", secret)
    (bundle / "model.score.onnx").unlink()
    os.symlink(secret, bundle / "model.score.onnx")
    rehash(bundle, "model.score.onnx")  # the link's target has the listed bytes: only the path rule can tell
    message = r"^model\.score\.onnx: 'model\.score\.onnx' is a symbolic link; a bundle holds regular files only"
    with pytest.raises(BundleError, match=message):
        load_manifest(bundle)


def test_a_file_under_a_symlinked_directory_is_refused(make_bundle: Callable[..., Path], tmp_path: Path) -> None:
    bundle = make_bundle()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.onnx.data").write_bytes((bundle / "model.onnx.data").read_bytes())
    os.symlink(outside, bundle / "shared")

    def edit(d: dict[str, Any]) -> None:
        d["files"]["shared/model.onnx.data"] = d["files"]["model.onnx.data"]
        d["artifacts"]["onnx"]["files"].append("shared/model.onnx.data")

    edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=r"^shared/model\.onnx\.data: 'shared' is a symbolic link"):
        load_manifest(bundle)


def test_a_symlinked_manifest_is_refused(make_bundle: Callable[..., Path], tmp_path: Path) -> None:
    bundle = make_bundle()
    (bundle / MANIFEST_NAME).rename(tmp_path / "elsewhere.json")
    os.symlink(tmp_path / "elsewhere.json", bundle / MANIFEST_NAME)
    with pytest.raises(BundleError, match=r"^manifest\.json: 'manifest\.json' is a symbolic link"):
        load_manifest(bundle)


# --------------------------------------------------------------- parse errors are BundleErrors, never crashes
def test_a_deeply_nested_manifest_is_a_bundle_error(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    text = (bundle / MANIFEST_NAME).read_text()
    deep = "[" * 200_000 + "]" * 200_000  # far beyond Python's recursion limit
    (bundle / MANIFEST_NAME).write_text(text.replace('"ledger": []', f'"ledger": {deep}', 1))
    with pytest.raises(BundleError, match=r"^manifest\.json: not valid JSON \(nesting deeper than 64 levels\)"):
        load_manifest(bundle)
    (bundle / MANIFEST_NAME).write_text(text.replace('"ledger": []', '"ledger": ' + "[" * 80 + "]" * 80, 1))
    with pytest.raises(BundleError, match=r"^manifest\.json: not valid JSON \(nesting deeper than 64 levels\)"):
        load_manifest(bundle)


def _safetensors(header: object, data: bytes) -> bytes:
    blob = json.dumps(header).encode()
    return len(blob).to_bytes(8, "little") + blob + data


def _entry(dtype: object = "F32", shape: object = (1,), offsets: object = (0, 4)) -> dict[str, object]:
    return {"dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape,
            "data_offsets": list(offsets) if isinstance(offsets, tuple) else offsets}


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"item_embedding": ["F32", [200, 8], [0, 6400]]}, b"", r"header field `item_embedding` must be an object with keys"),
        ({"item_embedding": {"dtype": "F32", "shape": [2]}}, b"", r"header field `item_embedding` must be an object with keys"),
        ({"item_embedding": _entry(dtype=7)}, bytes(4), r"header field `item_embedding\.dtype` must be one of .*Found 7\."),
        ({"item_embedding": _entry(shape="200")}, bytes(4), r"header field `item_embedding\.shape` must be a list of ints"),
        ({"item_embedding": _entry(shape=[True])}, bytes(4), r"header field `item_embedding\.shape` must be a list of ints"),
        ({"w": _entry(offsets=(4, 0))}, bytes(4), r"header field `w\.data_offsets` must be \[begin, end\]"),
        ({"item_embedding": _entry(offsets={"a": 1})}, bytes(4), r"header field `item_embedding\.data_offsets` must be"),
        ({"w": _entry(shape=(2,))}, bytes(4), r"header field `w\.data_offsets` spans 4 bytes, but F32\[2\] needs 8"),
        ({"a": _entry(), "b": _entry()}, bytes(4), r"header field `b\.data_offsets` starts at byte 0; the data before it"),
        ({"a": _entry()}, bytes(8), r"the tensors end at data byte 4, but the file holds 8 data bytes"),
        ({"__metadata__": {"k": ["v"]}}, b"", r"header field `__metadata__` must map strings to strings"),
        ([1, 2], b"", r"header must be a JSON object\. Found list\."),
    ],
)
def test_safetensors_header_entries_of_the_wrong_type_are_bundle_errors(
    make_bundle: Callable[..., Path], header: object, data: bytes, message: str
) -> None:
    bundle = make_bundle()
    (bundle / "weights.safetensors").write_bytes(_safetensors(header, data))
    rehash(bundle, "weights.safetensors")
    with pytest.raises(BundleError, match=rf"^weights\.safetensors: {message}"):
        load_manifest(bundle)


def test_truncated_but_rehashed_weights_are_refused_at_load(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    data = (bundle / "weights.safetensors").read_bytes()
    (bundle / "weights.safetensors").write_bytes(data[:-100])
    rehash(bundle, "weights.safetensors")
    message = r"^weights\.safetensors: the tensors end at data byte \d+, but the file holds \d+ data bytes: the file is truncated"
    with pytest.raises(BundleError, match=message):
        load_manifest(bundle)
    (bundle / "weights.safetensors").write_bytes(data[:20])  # even the header is cut
    rehash(bundle, "weights.safetensors")
    with pytest.raises(BundleError, match=r"^weights\.safetensors: header length \d+ does not fit a file of 20 bytes"):
        load_manifest(bundle)


# ------------------------------------------------------------------ limits that bound every reader's work
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["finetune"].update(steps=10**9), r"field `finetune\.steps` must be an int in \[1, 1000\]\. Found 10+\."),
        (lambda d: d["finetune"].update(calls=10**9), r"field `finetune\.calls` must be an int in \[1, 1000\]\. Found 10+\."),
        (lambda d: d.update(num_items=10**8), r"field `num_items` must be an int in \[1, 10000000\]\. Found 100000000\."),
        (lambda d: d.__setitem__("dim", 4097), r"field `dim` must be an int in \[1, 4096\]\. Found 4097\."),
        (lambda d: d.update(num_items=10_000_000, dim=4096), r"fields `num_items` × `dim` must be at most 2147483647"),
        (lambda d: d.__setitem__("top_k", 201), r"field `top_k` must be an int in \[1, 200\]\. Found 201\."),
    ],
)
def test_manifest_limits_are_checked_up_front(
    make_bundle: Callable[..., Path], edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    bundle = make_bundle()
    edit_manifest(bundle, edit)
    start = time.perf_counter()
    with pytest.raises(BundleError, match=rf"^manifest\.json: {message}"):
        load_manifest(bundle)
    assert time.perf_counter() - start < 5.0


# ------------------------------------------------------------------------------------------- item map
def _catalog(n: int = 200) -> list[dict[str, Any]]:
    return [{"index": i, "id": f"sku-{i:04d}", "title": f"Item {i}"} for i in range(n)]


def test_item_map_round_trips_in_any_order_and_maps_ids(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(items=_catalog())
    # Entries may come in any order: the indices are a permutation of the rows, and the reader sorts them.
    edit_manifest(bundle, lambda d: d.__setitem__("items", list(reversed(d["items"]))))
    m = load_manifest(bundle)
    assert [i["index"] for i in m.items] == list(range(200))
    assert m.item_map.explicit and m.item_map.ids[17] == "sku-0017" and m.item_map.row("sku-0199") == 199
    assert m.item_map.row("sku-9999") is None and "sku-0003" in m.item_map
    mapped = m.item_map.map_history(["sku-0005", "gone", "sku-0002", "sku-0005"], [1.0, 2.0, 0.5, 3.0])
    assert mapped.rows.tolist() == [5, 2, 5] and mapped.weights.tolist() == [1.0, 0.5, 3.0]
    assert mapped.dropped == ("gone",)
    assert m.item_map.ids_of([3, 0]) == ["sku-0003", "sku-0000"]


def test_a_bundle_without_an_item_map_has_the_implicit_one(make_bundle: Callable[..., Path]) -> None:
    m = load_manifest(make_bundle())
    assert m.items == [] and not m.item_map.explicit
    assert m.item_map.ids[:3] == ("0", "1", "2") and m.item_map.row("199") == 199 and m.item_map.row("200") is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda items: items[7].__setitem__("id", "sku-0003"),
         r"field `items\[7\]`\.id repeats id 'sku-0003' of items\[3\]: item ids must be unique\."),
        (lambda items: items[9].__setitem__("index", 4),
         r"field `items\[9\]`\.index repeats index 4 of items\[4\]: the indices must be a permutation of 0\.\.199, "
         r"and index 9 has no entry\."),
        (lambda items: items[5].__setitem__("index", 200), r"field `items\[5\]`\.index must be in \[0, 200\)\. Found 200\."),
        (lambda items: items[5].__setitem__("index", -1), r"field `items\[5\]`\.index must be in \[0, 200\)\. Found -1\."),
        (lambda items: items[2].__setitem__("index", "2"), r"field `items\[2\]`\.index must be an int\. Found '2'\."),
        (lambda items: items[2].__setitem__("index", True), r"field `items\[2\]`\.index must be an int\. Found True\."),
        (lambda items: items[6].__setitem__("id", 6),
         r"field `items\[6\]`\.id must be a non-empty string \(the app's item id\)\. Found 6\."),
        (lambda items: items[6].__setitem__("id", ""), r"field `items\[6\]`\.id must be a non-empty string"),
        (lambda items: items[6].pop("id"), r"field `items\[6\]`\.id must be a non-empty string .* Found None\."),
        (lambda items: items[1].__setitem__("title", ["x"]), r"field `items\[1\]`\.title must be a string\. Found \['x'\]\."),
        (lambda items: items.__setitem__(3, "sku-0003"), r"field `items\[3\]` must be an object"),
        (lambda items: items.pop(), r"field `items` must be empty or hold one entry per item \(200\)\. Found 199\."),
    ],
)
def test_a_tampered_item_map_is_refused_naming_the_problem(
    make_bundle: Callable[..., Path], edit: Callable[[list[dict[str, Any]]], object], message: str
) -> None:
    bundle = make_bundle(items=_catalog())
    before = (bundle / MANIFEST_NAME).read_bytes()
    raw = json.loads(before)
    edit(raw["items"])
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(raw)
    edit_manifest(bundle, lambda d: d.__setitem__("items", raw["items"]))
    with pytest.raises(BundleError, match=message):
        load_manifest(bundle)


def test_the_writer_refuses_an_inconsistent_item_map(make_model: Callable[..., ItemModel], tmp_path: Path) -> None:
    from privrec.export import export_bundle

    model = make_model(4, 2)
    dupes = [{"index": i, "id": "a" if i in (1, 3) else str(i)} for i in range(4)]
    with pytest.raises(ValueError, match=r"`items\[3\]\['id'\]` repeats id 'a' of items\[1\]"):
        export_bundle(model, tmp_path / "b", formats=("onnx",), items=dupes, top_k=2)
    with pytest.raises(ValueError, match=r"`items\[0\]\['id'\]` must be a non-empty item id"):
        export_bundle(model, tmp_path / "b", formats=("onnx",), items=[{"index": i, "id": ""} for i in range(4)], top_k=2)
    with pytest.raises(ValueError, match=r"missing indices start \[3\]"):
        export_bundle(model, tmp_path / "b", formats=("onnx",), items=[{"index": i, "id": str(i)} for i in range(3)], top_k=2)
    assert not (tmp_path / "b").exists()


@settings(max_examples=60, deadline=None)
@given(
    catalog=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=30, unique=True),
    others=st.lists(st.text(min_size=1, max_size=6), max_size=10),
    data=st.data(),
)
def test_mapping_a_history_keeps_exactly_the_ids_the_catalog_holds(catalog: list[str], others: list[str], data: Any) -> None:
    """Through any permutation of any catalog, a history maps to rows whose ids are the history's ids the
    catalog holds, in order, with their weights; the rest are reported as dropped, in order."""
    from privrec.export.item_map import ItemMap, check_item_map

    order = data.draw(st.permutations(range(len(catalog))))
    raw = [{"index": row, "id": catalog[k]} for k, row in enumerate(order)]
    item_map = ItemMap.from_items(check_item_map(raw, len(catalog)), len(catalog))
    assert all(item_map.ids[row] == catalog[k] for k, row in enumerate(order))
    history = data.draw(st.lists(st.sampled_from(catalog + others), max_size=25))
    weights = np.arange(len(history), dtype=np.float32)
    mapped = item_map.map_history(history, weights)
    held = [(h, float(w)) for h, w in zip(history, weights, strict=True) if h in set(catalog)]
    assert list(zip(item_map.ids_of(mapped.rows.tolist()), mapped.weights.tolist(), strict=True)) == held
    assert mapped.dropped == tuple(h for h in history if h not in set(catalog))
