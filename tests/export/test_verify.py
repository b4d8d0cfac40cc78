"""``verify_bundle`` (export/verify.py): passes good bundles, catches wrong artifacts, refuses tampering."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_edits import edit_manifest, rehash_all

from privrec.export import BundleError, key_id, verify_bundle
from privrec.export.verify import max_abs_err, topk_equal_up_to_ties
from privrec.sdk.model import ItemModel

_FIELDS = {"format", "signature", "precision", "max_abs_err", "tolerance", "topk_equal", "ok", "cases"}


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_fresh_bundle_passes_every_check(make_bundle: Callable[..., Path], precision: str) -> None:
    report = verify_bundle(make_bundle(precision=precision))
    assert report["ok"] is True
    checks = report["checks"]
    assert [(c["format"], c["signature"]) for c in checks] == [
        (f, s) for f in ("golden", "onnx") for s in ("score", "recommend", "finetune")
    ]
    tol = 1e-4 if precision == "float32" else 2e-2
    for c in checks:
        assert set(c) == _FIELDS
        assert c["precision"] == precision and c["tolerance"] == tol and c["ok"] is True
        # identical weights: only float32 rounding remains, except that the int8 ONNX score/recommend quantize
        # the user vector in two int8 levels (export/onnx_int8.py: about 1e-5 here, far inside 2e-2)
        assert 0.0 <= c["max_abs_err"] < (1e-3 if precision == "int8" and c["format"] == "onnx" else 1e-5)
    onnx = {c["signature"]: c for c in checks if c["format"] == "onnx"}
    assert onnx["recommend"]["topk_equal"] is True and onnx["score"]["topk_equal"] is True
    assert onnx["finetune"]["topk_equal"] is None
    assert onnx["score"]["cases"] == 15  # 4 users × 3 sizes + 3 golden cases


def test_artifact_with_other_weights_fails(make_bundle: Callable[..., Path], make_model: Callable[..., ItemModel]) -> None:
    good = make_bundle(make_model(200, 8, seed=0))
    other = make_bundle(make_model(200, 8, seed=1))
    shutil.copy(other / "model.onnx.data", good / "model.onnx.data")  # an exporter that wrote other weights
    rehash_all(good)
    report = verify_bundle(good)
    assert report["ok"] is False
    by = {(c["format"], c["signature"]): c for c in report["checks"]}
    assert all(by[("golden", s)]["ok"] for s in ("score", "recommend", "finetune"))
    for sig in ("score", "recommend", "finetune"):
        assert by[("onnx", sig)]["ok"] is False and by[("onnx", sig)]["max_abs_err"] > 0.1
    assert by[("onnx", "recommend")]["topk_equal"] is False


def test_artifact_with_wrong_step_count_fails_only_finetune(make_bundle: Callable[..., Path]) -> None:
    from privrec.sdk.reconstruct import FinetuneConfig

    good = make_bundle(finetune=FinetuneConfig(steps=5))
    other = make_bundle(finetune=FinetuneConfig(steps=6))
    shutil.copy(other / "model.finetune.onnx", good / "model.finetune.onnx")
    rehash_all(good)
    report = verify_bundle(good)
    assert report["ok"] is False
    failed = {(c["format"], c["signature"]) for c in report["checks"] if not c["ok"]}
    assert failed == {("onnx", "finetune")}


def test_edited_golden_file_fails_its_check(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    golden = json.loads((bundle / "golden.json").read_text())
    golden["cases"][0]["outputs"]["scores"][0] += 0.5
    (bundle / "golden.json").write_text(json.dumps(golden))
    rehash_all(bundle)
    report = verify_bundle(bundle)
    failed = [(c["format"], c["signature"]) for c in report["checks"] if not c["ok"]]
    assert failed == [("golden", "score")]


def test_unrunnable_artifact_fails_loudly(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    (bundle / "model.score.onnx").write_bytes(b"not an onnx model")
    rehash_all(bundle)
    report = verify_bundle(bundle)
    assert report["ok"] is False
    onnx = [c for c in report["checks"] if c["format"] == "onnx"]
    assert len(onnx) == 3 and all(not c["ok"] and c["max_abs_err"] is None for c in onnx)
    assert all(c["error"].startswith("runner failed to load:") for c in onnx)


def test_tampered_bundle_is_refused_not_reported(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    data = bytearray((bundle / "model.onnx.data").read_bytes())
    data[0] ^= 0xFF
    (bundle / "model.onnx.data").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"^model\.onnx\.data: sha256 mismatch"):
        verify_bundle(bundle)


def test_max_abs_err_semantics() -> None:
    inf = np.inf
    assert max_abs_err(np.array([1.0, -inf]), np.array([1.5, -inf])) == 0.5
    assert max_abs_err(np.array([1.0, -inf]), np.array([1.0, 0.0])) == inf
    assert max_abs_err(np.array([np.nan]), np.array([0.0])) == inf
    assert max_abs_err(np.array([1.0]), np.array([1.0, 2.0])) == inf
    assert max_abs_err(np.zeros(0), np.zeros(0)) == 0.0


def test_topk_equality_allows_only_ties() -> None:
    scores = np.array([5.0, 4.0, 3.0, 3.0, 1.0])
    assert topk_equal_up_to_ties(np.array([0, 1, 2]), scores, 3, 1e-4)
    assert topk_equal_up_to_ties(np.array([0, 1, 3]), scores, 3, 1e-4)  # 2 and 3 tie at the K-th score
    assert not topk_equal_up_to_ties(np.array([0, 1, 4]), scores, 3, 1e-4)
    assert topk_equal_up_to_ties(np.array([0, 1, 4]), scores, 3, 2.5)  # within a loose tolerance
    assert not topk_equal_up_to_ties(np.array([0, 0, 1]), scores, 3, 1e-4)  # repeated id
    assert not topk_equal_up_to_ties(np.array([0, 1, 5]), scores, 3, 1e-4)  # out of range


def test_report_is_json_serialisable(make_bundle: Callable[..., Path]) -> None:
    report: dict[str, Any] = verify_bundle(make_bundle(precision="int8"))
    assert json.loads(json.dumps(report))["ok"] is True


# ------------------------------------------------------------------------------------- signatures
def test_signature_is_reported_ok_not_checked_absent_or_bad(
    make_bundle: Callable[..., Path], signing_keys: tuple[Path, Path]
) -> None:
    bundle = make_bundle(sign_key=signing_keys[0])
    report = verify_bundle(bundle, public_key=signing_keys[1])
    assert report["ok"] is True and report["signature"]["status"] == "ok"
    assert report["signature"]["key_id"] == key_id(signing_keys[1]) and len(report["checks"]) == 6

    unchecked = verify_bundle(bundle)
    assert unchecked["ok"] is True and unchecked["signature"]["status"] == "not_checked"
    assert unchecked["signature"]["key_id"] == key_id(signing_keys[1])  # what manifest.sig claims, unverified
    assert "not checked: no public key given" in unchecked["signature"]["detail"]

    edit_manifest(bundle, lambda d: d["privacy"].update(epsilon=0.01))
    bad = verify_bundle(bundle, public_key=signing_keys[1])
    assert (bad["ok"], bad["signature"]["status"], bad["checks"], bad["model_version"]) == (False, "bad", [], None)
    assert bad["signature"]["detail"].startswith("manifest.sig: the signature does not verify manifest.json")
    assert json.loads(json.dumps(bad)) == bad

    unsigned = make_bundle()
    absent = verify_bundle(unsigned, public_key=signing_keys[1])
    assert (absent["ok"], absent["signature"]["status"], absent["checks"]) == (False, "absent", [])
    assert verify_bundle(unsigned)["signature"] == {
        "status": "not_checked",
        "key_id": None,
        "detail": "not checked: no public key given (manifest.sig absent); pass the publisher's key (--public-key) to "
        "authenticate the bundle",
    }


def test_swapped_artifacts_with_consistent_hashes_fail_verify_with_the_key(
    make_bundle: Callable[..., Path], make_model: Callable[..., ItemModel], signing_keys: tuple[Path, Path]
) -> None:
    """The attack: the evil model's weights, golden file and artifacts, with every hash updated. Without the
    key it passes every parity check (the bundle is consistent); with it, nothing is even run."""
    good = make_bundle(make_model(200, 8, seed=0), sign_key=signing_keys[0])
    evil = make_bundle(make_model(200, 8, seed=5))
    for rel in json.loads((good / "manifest.json").read_text())["files"]:
        shutil.copy(evil / rel, good / rel)
    rehash_all(good)
    assert verify_bundle(good)["ok"] is True
    report = verify_bundle(good, public_key=signing_keys[1])
    assert (report["ok"], report["signature"]["status"], report["checks"]) == (False, "bad", [])


# ------------------------------------------------------------- parse errors and bounded work in verify
def test_a_golden_case_with_missing_keys_is_a_bundle_error(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    golden = json.loads((bundle / "golden.json").read_text())
    del golden["cases"][4]["inputs"]["exclude"]
    (bundle / "golden.json").write_text(json.dumps(golden))
    rehash_all(bundle)
    message = r"^golden\.json: field `cases\[4\]\.inputs` must be an object with keys \['exclude', 'user'\]"
    with pytest.raises(BundleError, match=message):
        verify_bundle(bundle)


def test_huge_finetune_steps_are_refused_before_any_work(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    edit_manifest(bundle, lambda d: d["finetune"].update(steps=10**9))
    start = time.perf_counter()
    with pytest.raises(BundleError, match=r"^manifest\.json: field `finetune\.steps` must be an int in \[1, 1000\]"):
        verify_bundle(bundle)
    assert time.perf_counter() - start < 5.0


def test_truncated_but_rehashed_weights_are_refused_not_crashed_on(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    data = (bundle / "weights.safetensors").read_bytes()
    (bundle / "weights.safetensors").write_bytes(data[: len(data) // 2])
    rehash_all(bundle)
    with pytest.raises(BundleError, match=r"^weights\.safetensors: the tensors end at data byte \d+, but the file holds"):
        verify_bundle(bundle)
