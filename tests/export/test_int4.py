"""int4 weights end to end: the quantizer (privrec.sdk.quantize), the numpy reference of the stored weights,
the ONNX (INT4 DequantizeLinear, sparse bit mask) and TFLite (packed uint8) artifacts, sizes computed from
the files, the manifest's hashes, and tampered payloads refused. Core ML int4 lives in test_coreml.py."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_edits import edit_manifest, rehash
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from privrec.export import BundleError, SignatureError, get_runner_factory, load_manifest, load_reference, verify_bundle
from privrec.export.golden import TOLERANCE
from privrec.export.manifest import MANIFEST_NAME, WEIGHTS_NAME, file_digest
from privrec.export.reference import topk_stable
from privrec.sdk.model import ItemModel
from privrec.sdk.prune import magnitude_prune
from privrec.sdk.quantize import Int4ItemModel, pack_int4, quantize_int4, unpack_int4


# --------------------------------------------------------------------------------------------------
# The quantizer
# --------------------------------------------------------------------------------------------------
def test_pack_layout_is_low_nibble_first_twos_complement() -> None:
    packed = pack_int4(np.array([[1, -2, 7, -7], [0, 0, -1, 3]]))
    assert packed.dtype == np.uint8 and packed.tolist() == [[0xE1, 0x97], [0x00, 0x3F]]
    np.testing.assert_array_equal(unpack_int4(packed), [[1, -2, 7, -7], [0, 0, -1, 3]])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_pack_unpack_round_trip(rows: int, half: int, seed: int) -> None:
    values = np.random.default_rng(seed).integers(-8, 8, (rows, 2 * half))
    np.testing.assert_array_equal(unpack_int4(pack_int4(values)), values)


def test_quantize_int4_golden_and_error_bound() -> None:
    # Row 0: max 1.4 -> scale 0.2 at clip ratio 1, rounded to 8 significant bits: 205 / 1024 (the grid
    # 0.2 would be exact on is not a float16 of 8 bits); row 1 is zero; zeros stay zero.
    V = np.array([[1.4, -0.2, 0.0, 0.6], [0.0, 0.0, 0.0, 0.0]], np.float32)
    q = quantize_int4(ItemModel(V, np.array([0.5, -0.1], np.float32)))
    np.testing.assert_array_equal(q.values(), [[7, -1, 0, 3], [0, 0, 0, 0]])
    assert q.item_scale.dtype == np.float16 and q.item_scale.tolist() == [205 / 1024, 1.0]
    # The bias is stored as float16 (-0.1 -> its nearest float16), dequantize widens it exactly.
    assert q.item_bias.dtype == np.float16
    np.testing.assert_array_equal(q.dequantize().item_bias, np.array([0.5, -0.1], np.float16).astype(np.float32))
    # Random rows: the error is at most half a step of each row's scale (plus what clipping removes).
    V = np.random.default_rng(0).normal(0, 0.3, (500, 16)).astype(np.float32)
    q = quantize_int4(ItemModel(V, np.zeros(500, np.float32)))
    err = np.abs(q.dequantize().item_embedding - V)
    clipped = np.abs(V) > 7 * q.item_scale[:, None]
    assert (err[~clipped] <= 0.5 * np.broadcast_to(q.item_scale[:, None], V.shape)[~clipped] + 1e-6).all()
    assert q.dim == 16 and q.item_embedding.shape == (500, 8) and q.item_embedding.nbytes == 500 * 8
    assert sum(t.nbytes for t in q.tensors().values()) == 500 * (8 + 2 + 2)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1e-6, 1e-3, 0.3, 50.0, 3e3]))
def test_int4_scales_make_every_product_exact_in_float16(seed: int, sigma: float) -> None:
    # Every stored scale has <= 8 significant bits and is a normal float16, so q * scale (|q| <= 7) is the
    # same number computed in float16 (Core ML / ONNX half-precision dequantize) and in float32 (reference).
    V = np.random.default_rng(seed).normal(0, sigma, (64, 8)).astype(np.float32)
    q = quantize_int4(ItemModel(V, np.zeros(64, np.float32)))
    s = q.item_scale
    assert ((s.view(np.uint16) & 0x7) == 0).all() and (s >= np.float16(2.0**-14)).all()
    half = q.values().astype(np.float16) * s[:, None]
    np.testing.assert_array_equal(half.astype(np.float32), q.dequantize().item_embedding)
    # Within half a step of the row's scale wherever nothing was clipped (the smallest scale at most too).
    err = np.abs(q.dequantize().item_embedding - V)
    step = s.astype(np.float32)[:, None]
    clipped = np.abs(V) > 7 * step
    assert (err[~clipped] <= 0.5 * np.broadcast_to(step, V.shape)[~clipped] * (1 + 1e-6)).all()


def test_int4_errors_name_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"^int4 packs two weights per byte: `dim` must be even\. Found 3\.$"):
        quantize_int4(ItemModel(np.ones((2, 3), np.float32), np.zeros(2, np.float32)))
    with pytest.raises(ValueError, match=r"^`values` must be in \[-8, 7\] \(int4\)\. Found \[0, 9\]\.$"):
        pack_int4(np.array([[0, 9]]))
    with pytest.raises(ValueError, match=r"must hold int4 values in \[-7, 7\] \(symmetric\)\. Found -8\."):
        Int4ItemModel(np.array([[0x08]], np.uint8), np.ones(1, np.float16), np.zeros(1, np.float16))
    with pytest.raises(ValueError, match=r"^`item_scale` must be > 0\. Found 0\.0 at position 0\.$"):
        Int4ItemModel(np.array([[0x01]], np.uint8), np.zeros(1, np.float16), np.zeros(1, np.float16))
    with pytest.raises(ValueError, match=r"^`item_scale` must be float16 of shape \(1,\)\. Found float32 \(1,\)\.$"):
        Int4ItemModel(np.array([[0x01]], np.uint8), np.ones(1, np.float32), np.zeros(1, np.float16))
    with pytest.raises(ValueError, match=r"at most 8 significant bits .* Found 0\.199951171875 at position 0\.$"):
        Int4ItemModel(np.array([[0x01]], np.uint8), np.array([0.2], np.float16), np.zeros(1, np.float16))
    with pytest.raises(ValueError, match=r"^`item_scale` must hold float16 values in \[2\*\*-14, 9344\] .* Found 7\.629.*e-06"):
        Int4ItemModel(np.array([[0x01]], np.uint8), np.array([2.0**-17], np.float16), np.zeros(1, np.float16))
    with pytest.raises(ValueError, match=r"^int4 stores float16 row scales: .* within ±65408\. Found 1000000\.0 in row 1\.$"):
        quantize_int4(ItemModel(np.array([[1, 2], [1e6, 0]], np.float32), np.zeros(2, np.float32)))
    with pytest.raises(ValueError, match=r"^int4 stores the bias as float16: .* ±65504\. Found -100000\.0 at position 0\.$"):
        quantize_int4(ItemModel(np.ones((1, 2), np.float32), np.array([-1e5], np.float32)))


# --------------------------------------------------------------------------------------------------
# Bundles: parity against the stored weights, top-10, sizes, hashes, tampering
# --------------------------------------------------------------------------------------------------
def _check_runner(bundle: Path, fmt: str) -> None:
    """Every signature of ``fmt`` against the reference built from weights.safetensors; top-10 sets equal."""
    manifest = load_manifest(bundle)
    ref = load_reference(bundle, manifest)
    runner = get_runner_factory(fmt)(bundle, manifest.artifact_record(fmt))
    tol = TOLERANCE["int4"]
    rng = np.random.default_rng(5)
    for _ in range(3):
        u = rng.normal(0, 1, ref.dim).astype(np.float32)
        ids = rng.choice(ref.num_items, 40, replace=False).astype(np.int32)
        np.testing.assert_allclose(runner.score(u, ids), ref.score(u, ids), atol=tol, rtol=0)
        mask = np.zeros(ref.num_items, np.float32)
        mask[ids[:5]] = -np.inf
        top, scores = runner.recommend(u, mask)
        want = topk_stable(ref.masked_scores(u, mask), 10)
        assert set(top.tolist()) == set(want.tolist())
        np.testing.assert_allclose(scores, ref.masked_scores(u, mask)[want], atol=tol, rtol=0)
        labels = (rng.random(40) < 0.3).astype(np.float32)
        got_u, got_loss = runner.finetune(u, ids, labels, np.array([0.1], np.float32), np.array([0.01], np.float32))
        want_u, want_loss = ref.finetune(u, ids, labels, 0.1, 0.01)
        np.testing.assert_allclose(got_u, want_u, atol=tol, rtol=0)
        np.testing.assert_allclose(got_loss, [want_loss], atol=tol, rtol=0)


@pytest.fixture
def int4_model(make_model: Callable[..., ItemModel]) -> ItemModel:
    return make_model(300, 32, seed=2)


def test_onnx_int4_parity_sizes_and_hashes(make_bundle: Callable[..., Path], int4_model: ItemModel) -> None:
    pruned, _ = magnitude_prune(int4_model, 0.5)
    b4 = make_bundle(int4_model, precision="int4")
    b8 = make_bundle(int4_model, precision="int8")
    s4 = make_bundle(pruned, precision="int4", sparsity=0.5)
    for bundle in (b4, s4):
        assert verify_bundle(bundle)["ok"]
        _check_runner(bundle, "onnx")
        manifest = json.loads((bundle / MANIFEST_NAME).read_text())
        assert manifest["precision"] == "int4"
        assert manifest["weights"]["item_embedding"] == {"dtype": "uint8", "shape": [300, 16]}
        assert manifest["weights"]["item_scale"] == manifest["weights"]["item_bias"] == {"dtype": "float16", "shape": [300]}
        # The manifest holds the sha256 and size of every file, as found on disk.
        on_disk = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
        assert sorted(manifest["files"]) == sorted(set(on_disk) - {MANIFEST_NAME})
        for rel, entry in manifest["files"].items():
            assert file_digest(bundle / rel) == (entry["sha256"], entry["size"])
    # The stored table is exactly what the numpy reference unpacks.
    stored = load_file(str(b4 / WEIGHTS_NAME))
    q = quantize_int4(int4_model)
    np.testing.assert_array_equal(stored["item_embedding"], q.item_embedding)
    for name in ("item_scale", "item_bias"):  # float16, bit for bit
        assert stored[name].dtype == np.float16 and (stored[name].view(np.uint16) == q.tensors()[name].view(np.uint16)).all()

    def data_bytes(b: Path) -> int:
        return (b / "model.onnx.data").stat().st_size

    # Per row: int8 32 + 4 + 4 bytes; int4 16 + 2 + 2 (float16 scale and bias); int4 at 50% sparsity
    # 4 (mask) + 8 + 2 + 2; plus alignment padding between the tensors.
    assert data_bytes(b4) <= 300 * (16 + 2 + 2) + 4 * 64
    assert data_bytes(b4) < 0.55 * data_bytes(b8)
    assert data_bytes(s4) < 0.85 * data_bytes(b4)
    assert data_bytes(s4) <= 300 * (4 + 8 + 2 + 2) + 4 * 64
    # A bundle in the float32-scale int4 layout (what this version no longer writes) is refused on load.
    old = load_file(str(b4 / WEIGHTS_NAME))
    save_file({k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in old.items()}, str(b4 / WEIGHTS_NAME))
    rehash(b4, WEIGHTS_NAME)
    with pytest.raises(BundleError, match=r"`item_scale` dtype mismatch \(manifest float16, file float32\)"):
        load_manifest(b4)

    def old_layout(data: dict[str, Any]) -> None:  # what an earlier version wrote into the manifest
        data["weights"]["item_scale"]["dtype"] = data["weights"]["item_bias"]["dtype"] = "float32"

    edit_manifest(b4, old_layout)
    with pytest.raises(BundleError, match=r"field `weights` must be .* for a int4 model of 300 items"):
        load_manifest(b4)


def test_tflite_int4_parity_and_size(make_bundle: Callable[..., Path], int4_model: ItemModel) -> None:
    b4 = make_bundle(int4_model, formats=("tflite",), precision="int4")
    b32 = make_bundle(int4_model, formats=("tflite",), precision="float32")
    assert verify_bundle(b4)["ok"]
    _check_runner(b4, "tflite")
    # No float32 copy of the table hides in the file: it is smaller than the float32 table alone.
    assert (b4 / "model.tflite").stat().st_size < 300 * 32 * 4
    assert (b4 / "model.tflite").stat().st_size < 0.5 * (b32 / "model.tflite").stat().st_size
    # Pruned: the bit mask + int4 non-zeros expanded by the graph, same parity.
    s4 = make_bundle(magnitude_prune(int4_model, 0.5)[0], formats=("tflite",), precision="int4", sparsity=0.5)
    assert verify_bundle(s4)["ok"]
    _check_runner(s4, "tflite")
    assert load_manifest(s4).artifacts["tflite"]["details"]["table"] == "sparse bit mask + int4 non-zeros"


def test_tampered_int4_payload_is_refused(
    make_bundle: Callable[..., Path], int4_model: ItemModel, signing_keys: tuple[Path, Path]
) -> None:
    bundle = make_bundle(int4_model, precision="int4", sign_key=signing_keys[0])
    before = (bundle / WEIGHTS_NAME).read_bytes()
    # 1. Flipped nibbles in the table: the manifest's sha256 no longer matches.
    tensors = load_file(str(bundle / WEIGHTS_NAME))
    tensors["item_embedding"][0, 0] ^= 0x11
    save_file(tensors, str(bundle / WEIGHTS_NAME))
    with pytest.raises(BundleError, match=r"weights\.safetensors: sha256 mismatch"):
        load_manifest(bundle)
    # 2. The same edit with the manifest re-hashed: the publisher's signature no longer matches.
    rehash(bundle, WEIGHTS_NAME)
    with pytest.raises(SignatureError):
        load_manifest(bundle, public_key=signing_keys[1])
    # 3. A consistently re-hashed, unsigned bundle holding -8 (outside symmetric int4): the reference refuses it.
    tensors["item_embedding"][3, 1] = 0x88
    save_file(tensors, str(bundle / WEIGHTS_NAME))
    rehash(bundle, WEIGHTS_NAME)
    (bundle / "manifest.sig").unlink()
    with pytest.raises(BundleError, match=r"must hold symmetric int4 values in \[-7, 7\]\. Found -8 in row 3\."):
        load_reference(bundle, load_manifest(bundle))
    # Nothing that was stored got rewritten by the readers.
    assert (bundle / WEIGHTS_NAME).read_bytes() != before


def test_cli_export_int4_with_sparsity_then_verify(tmp_path: Path, small_model: ItemModel) -> None:
    from test_bundle import _synthetic_run

    _synthetic_run(tmp_path / "run", small_model)
    cli = [sys.executable, "-m", "privrec"]
    args = ["export", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--formats", "onnx"]
    done = subprocess.run([*cli, *args, "--precision", "int4", "--sparsity", "0.5"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    manifest = load_manifest(tmp_path / "b")
    assert manifest.precision == "int4" and abs(manifest.sparsity - 0.5) < 0.02  # --precision and --sparsity compose
    assert manifest.artifacts["onnx"]["details"]["table"] == "sparse bit mask + int4 non-zeros"
    done = subprocess.run([*cli, "verify", str(tmp_path / "b"), "--json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and {c["precision"] for c in report["checks"]} == {"int4"}
    # The iOS16 fallback cannot hold int4: one line, exit code 2, nothing written.
    bad = ["export", str(tmp_path / "run"), "--out", str(tmp_path / "c"), "--formats", "coreml", "--precision", "int4"]
    done = subprocess.run([*cli, *bad, "--coreml-ios16"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    # (converter libraries log to stderr on import; the CLI's own error is the last line)
    assert done.stderr.splitlines()[-1].startswith("error: `coreml_targets` must not include 'iOS16' for an int4 model")
    assert not (tmp_path / "c").exists()
