"""The runtime Recommender (runtime/recommender.py): runs exported artifacts, validates every input.

Bundles are signed with a key made once per module (``keys``) and loaded with its public half, as an
app does; a test that edits ``manifest.json`` on purpose loads with ``allow_unsigned=True``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from privrec.export import (
    BundleError,
    BundleWarning,
    SignatureError,
    export_bundle,
    generate_signing_key,
    verify_bundle,
)
from privrec.runtime import Recommender
from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import quantize_int8
from privrec.sdk.reconstruct import FinetuneConfig, finetune_reference, reconstruct

N, D = 120, 6


@pytest.fixture
def model() -> ItemModel:
    rng = np.random.default_rng(7)
    return ItemModel(rng.normal(0, 0.3, (N, D)).astype(np.float32), rng.normal(0, 0.1, N).astype(np.float32))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(private_key_path, public_key_path)`` of a publisher key made for this module."""
    return generate_signing_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def public_key(keys: tuple[Path, Path]) -> Path:
    return keys[1]


@pytest.fixture
def bundle(tmp_path: Path, model: ItemModel, keys: tuple[Path, Path]) -> Path:
    items = [{"index": i, "id": f"m{i}", "title": f"Title {i}"} for i in range(N)]
    return export_bundle(
        model,
        tmp_path / "bundle",
        formats=("onnx",),
        items=items,
        top_k=8,
        finetune=FinetuneConfig(steps=4, lr=0.5, l2=0.01),
        sign_key=keys[0],
    )


@pytest.fixture
def rec(bundle: Path, public_key: Path) -> Recommender:
    return Recommender.load(bundle, public_key=public_key)


def test_score_recommend_finetune_match_the_model(rec: Recommender, model: ItemModel) -> None:
    u = np.linspace(-1, 1, D).astype(np.float32)
    np.testing.assert_allclose(rec.score(u, [0, 5, N - 1]), model.score(u, [0, 5, N - 1]), atol=1e-5)
    np.testing.assert_allclose(rec.score(u.astype(np.float64), np.arange(N)), model.score(u), atol=1e-5)
    np.testing.assert_array_equal(rec.score(u), rec.score(u, np.arange(N)))  # None = the whole catalog, in order
    assert rec.score(u, []).shape == (0,)
    ids, scores = rec.recommend(u, exclude=[3, 4], k=5)
    want_ids, want_scores = model.recommend(u, 5, [3, 4])
    assert ids.tolist() == want_ids.tolist()
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert len(rec.recommend(u)[0]) == 8  # default k: the exported K
    out, loss = rec.finetune(u, [1, 2, 3], np.array([1.0, 0.0, 2.0]))
    want, want_loss = finetune_reference(
        u,
        model.item_embedding,
        model.item_bias,
        np.array([1, 2, 3]),
        np.array([1.0, 0.0, 2.0]),
        lr=float(np.float32(0.5)),
        l2=float(np.float32(0.01)),
        steps=4,
    )
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert isinstance(loss, float) and abs(loss - want_loss) < 1e-5
    out2, _ = rec.finetune(u, [1, 2, 3], lr=0.1, l2=0.0)  # explicit lr, l2 and default labels
    want2, _ = finetune_reference(
        u,
        model.item_embedding,
        model.item_bias,
        np.array([1, 2, 3]),
        np.ones(3),
        lr=float(np.float32(0.1)),
        l2=0.0,
        steps=4,
    )
    np.testing.assert_allclose(out2, want2, atol=1e-5)


def test_repeated_finetune_reconstructs_like_the_sdk(rec: Recommender, model: ItemModel) -> None:
    positives = [2, 17, 40, 99]
    labels = np.zeros(N, np.float32)
    labels[positives] = 1.0
    u = np.zeros(D, np.float32)
    for _ in range(5):
        u, _ = rec.finetune(u, np.arange(N), labels)
    want = reconstruct(model, positives, FinetuneConfig(steps=4, lr=0.5, l2=0.01, calls=5))
    np.testing.assert_allclose(u, want, atol=1e-4)


def test_metadata(rec: Recommender, bundle: Path) -> None:
    assert rec.items[7] == {"index": 7, "id": "m7", "title": "Title 7"}
    assert (rec.num_items, rec.dim, rec.top_k, rec.backend) == (N, D, 8, "onnxruntime")
    assert rec.manifest.model_version == json.loads((bundle / "manifest.json").read_text())["model_version"]


def test_fewer_eligible_items_than_k(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    small = ItemModel(np.eye(3, dtype=np.float32), np.zeros(3, np.float32))
    r = Recommender.load(export_bundle(small, tmp_path / "b", formats=("onnx",), top_k=3, sign_key=keys[0]), public_key=keys[1])
    ids, scores = r.recommend(np.array([1.0, 2.0, 3.0], np.float32), exclude=[2, 0])
    assert ids.tolist() == [1] and scores.tolist() == [2.0]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda r: r.score(np.full(D, np.nan, np.float32), [0]),
            ValueError,
            r"`user` must be finite\. Found nan at position 0\.",
        ),
        (
            lambda r: r.score(np.ones(D + 1, np.float32), [0]),
            ValueError,
            r"`user` must have shape \(6,\)\. Found \(7,\)\.",
        ),
        (
            lambda r: r.score(np.ones(D, np.int32), [0]),
            TypeError,
            r"`user` must have a float dtype\. Found int32\.",
        ),
        (
            lambda r: r.score([1.0] * D, [0]),
            TypeError,
            r"`user` must be a numpy array of shape \(6,\)\. Found list\.",
        ),
        (
            lambda r: r.score(np.ones(D, np.float32), [0, N]),
            ValueError,
            r"`item_ids` must be in \[0, 120\)\. Found 120 at position 1\.",
        ),
        (
            lambda r: r.score(np.ones(D, np.float32), [-1]),
            ValueError,
            r"`item_ids` must be in \[0, 120\)\. Found -1 at position 0\.",
        ),
        (
            lambda r: r.score(np.ones(D, np.float32), np.array([0.0])),
            TypeError,
            r"`item_ids` must have an integer dtype\. Found float64\.",
        ),
        (
            lambda r: r.score(np.ones(D, np.float32), np.zeros((2, 2), int)),
            ValueError,
            r"`item_ids` must be 1-D\. Found shape \(2, 2\)\.",
        ),
        (
            lambda r: r.recommend(np.ones(D, np.float32), k=9),
            ValueError,
            r"`k` must be in \[1, 8\] \(the K this bundle was exported with\)\. Found 9\.",
        ),
        (lambda r: r.recommend(np.ones(D, np.float32), k=0), ValueError, r"`k` must be in \[1, 8\]"),
        (
            lambda r: r.recommend(np.ones(D, np.float32), k=2.0),
            TypeError,
            r"`k` must be an int\. Found float\.",
        ),
        (
            lambda r: r.recommend(np.ones(D, np.float32), exclude=[500]),
            ValueError,
            r"`exclude` must be in \[0, 120\)\. Found 500 at position 0\.",
        ),
        (
            lambda r: r.finetune(np.ones(D, np.float32), []),
            ValueError,
            r"`item_ids` must hold at least one item",
        ),
        (
            lambda r: r.finetune(np.ones(D, np.float32), [1, 2], np.array([1.0, -1.0])),
            ValueError,
            r"`labels` must be >= 0\. Found -1\.0 at position 1\.",
        ),
        (
            lambda r: r.finetune(np.ones(D, np.float32), [1, 2], np.zeros(2)),
            ValueError,
            r"`labels` must have a positive sum\. Found 0\.0\.",
        ),
        (
            lambda r: r.finetune(np.ones(D, np.float32), [1, 2], np.ones(3)),
            ValueError,
            r"`labels` must have shape \(2,\) \(one per item id\)\. Found \(3,\)\.",
        ),
        (
            lambda r: r.finetune(np.ones(D, np.float32), [1], np.array([np.inf])),
            ValueError,
            r"`labels` must be finite\. Found inf at position 0\.",
        ),
        (
            lambda r: r.finetune(np.ones(D, np.float32), [1], [1.0]),
            TypeError,
            r"`labels` must be a numpy array of shape \(1,\)\. Found list\.",
        ),
        (
            lambda r: r.finetune(np.ones(D, np.float32), [1], lr=0.0),
            ValueError,
            r"`lr` must be a finite float > 0\. Found 0\.0\.",
        ),
        (
            lambda r: r.finetune(np.ones(D, np.float32), [1], l2=float("nan")),
            ValueError,
            r"`l2` must be a finite float >= 0\. Found nan\.",
        ),
    ],
)
def test_inputs_are_validated(rec: Recommender, call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call(rec)  # type: ignore[operator]


def test_load_refuses_a_tampered_file_naming_it(bundle: Path, public_key: Path) -> None:
    path = bundle / "model.recommend.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"^model\.recommend\.onnx: sha256 mismatch .*the bundle is corrupt or tampered"):
        Recommender.load(bundle, public_key=public_key)


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture
def two_format_bundle(tmp_path: Path, model: ItemModel, keys: tuple[Path, Path]) -> Path:
    if importlib.util.find_spec("privrec.export.tflite") is None:
        pytest.skip("export/tflite.py is not in this tree")
    try:
        return export_bundle(quantize_int8(model), tmp_path / "b2", formats=("onnx", "tflite"), top_k=8, sign_key=keys[0])
    except ImportError as exc:
        pytest.skip(f"the TFLite exporter cannot import here: {exc}")


@pytest.mark.parametrize(
    ("backend", "rel"),
    [
        ("onnxruntime", "model.onnx.data"),
        ("onnxruntime", "model.finetune.onnx"),
        ("onnxruntime", "golden.json"),
        ("litert", "model.tflite"),
        ("litert", "golden.json"),
    ],
)
def test_every_file_the_backend_reads_is_still_hash_checked(
    two_format_bundle: Path, public_key: Path, backend: str, rel: str
) -> None:
    _flip_last_byte(two_format_bundle / rel)
    with pytest.raises(BundleError, match=rf"^{rel.replace('.', r'[.]')}: sha256 mismatch .*the bundle is corrupt or tampered"):
        Recommender.load(two_format_bundle, backend, public_key=public_key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backend", "other"),
    [
        ("onnxruntime", "model.tflite"),
        ("litert", "model.onnx.data"),
        ("onnxruntime", "weights.safetensors"),
        ("litert", "weights.safetensors"),
    ],
)
def test_a_tampered_file_the_runtime_never_opens_is_left_to_verify(
    two_format_bundle: Path, public_key: Path, backend: str, other: str
) -> None:
    """load hashes only what its backend reads (not another format's artifact, not the training-side weights);
    `privrec verify` still checks every listed file."""
    from privrec.export import verify_bundle
    from privrec.runtime.recommender import backend_files

    _flip_last_byte(two_format_bundle / other)
    rec = Recommender.load(two_format_bundle, backend, public_key=public_key)  # type: ignore[arg-type]
    assert other not in backend_files(rec.manifest, rec.backend)
    assert rec.self_test()["ok"] is True
    with pytest.raises(BundleError, match=rf"^{other.replace('.', r'[.]')}: sha256 mismatch"):
        verify_bundle(two_format_bundle, public_key=public_key)


def test_self_test_uses_the_golden_bytes_load_checked(bundle: Path, public_key: Path) -> None:
    """golden.json replaced after load (hashes and all) changes nothing: self_test parses the kept bytes."""
    rec = Recommender.load(bundle, public_key=public_key)
    golden = json.loads((bundle / "golden.json").read_text())
    for case in golden["cases"]:
        if case["signature"] == "score":
            case["outputs"]["scores"] = [s + 1.0 for s in case["outputs"]["scores"]]
    (bundle / "golden.json").write_text(json.dumps(golden))
    report = rec.self_test()
    assert report["ok"] is True and report["max_abs_err"]["score"] < 1e-4


def test_load_refuses_wrong_schema_and_missing_file(bundle: Path, public_key: Path) -> None:
    (bundle / "model.onnx.data").unlink()
    with pytest.raises(BundleError, match=r"^model\.onnx\.data: listed in manifest\.json but missing"):
        Recommender.load(bundle, public_key=public_key)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["schema_version"] = 2
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"field `schema_version` must be 1 .* Found 2"), pytest.warns(BundleWarning):
        Recommender.load(bundle, allow_unsigned=True)


def test_backend_must_exist_in_the_bundle(bundle: Path, public_key: Path) -> None:
    with pytest.raises(ValueError, match=r"`backend` must be one of \['litert', 'onnxruntime'\]\. Found 'torch'\."):
        Recommender.load(bundle, backend="torch", public_key=public_key)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"backend 'litert' needs a 'tflite' artifact; this bundle holds \['onnx'\]"):
        Recommender.load(bundle, backend="litert", public_key=public_key)


def test_litert_backend_agrees_with_onnxruntime(tmp_path: Path, model: ItemModel, keys: tuple[Path, Path]) -> None:
    if importlib.util.find_spec("privrec.export.tflite") is None:
        pytest.skip("export/tflite.py is not in this tree")
    try:
        bundle = export_bundle(quantize_int8(model), tmp_path / "b", formats=("onnx", "tflite"), top_k=8, sign_key=keys[0])
    except ImportError as exc:
        pytest.skip(f"the TFLite exporter cannot import here: {exc}")
    ort_rec, lite = Recommender.load(bundle, public_key=keys[1]), Recommender.load(bundle, backend="litert", public_key=keys[1])
    assert lite.backend == "litert"
    u = np.linspace(-1, 1, D).astype(np.float32)
    # int8 ONNX quantizes the user in two int8 levels (export/onnx_int8.py): about 1e-5 from the dequantized maths
    np.testing.assert_allclose(lite.score(u, np.arange(N)), ort_rec.score(u, np.arange(N)), atol=1e-3)
    np.testing.assert_allclose(lite.score(u), ort_rec.score(u), atol=1e-3)
    assert lite.recommend(u, exclude=[0])[0].tolist() == ort_rec.recommend(u, exclude=[0])[0].tolist()
    out_l, loss_l = lite.finetune(u, np.arange(N))
    out_o, loss_o = ort_rec.finetune(u, np.arange(N))
    np.testing.assert_allclose(out_l, out_o, atol=1e-4)
    assert abs(loss_l - loss_o) < 1e-4


def test_self_test_runs_golden_cases(rec: Recommender, bundle: Path) -> None:
    result = rec.self_test()
    assert result["ok"] is True and result["cases"] == 9 and result["tolerance"] == 1e-4
    assert all(0.0 <= e < 1e-5 for e in result["max_abs_err"].values())


def test_self_test_fails_when_golden_outputs_disagree(bundle: Path) -> None:
    from privrec.export.manifest import file_digest

    golden = json.loads((bundle / "golden.json").read_text())
    for case in golden["cases"]:
        if case["signature"] == "finetune":
            case["outputs"]["loss"] += 0.01
    (bundle / "golden.json").write_text(json.dumps(golden))
    manifest = json.loads((bundle / "manifest.json").read_text())
    sha, size = file_digest(bundle / "golden.json")
    manifest["files"]["golden.json"] = {"sha256": sha, "size": size}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(BundleWarning):
        result = Recommender.load(bundle, allow_unsigned=True).self_test()
    assert result["ok"] is False
    assert abs(result["max_abs_err"]["finetune"] - 0.01) < 1e-4 and result["max_abs_err"]["score"] < 1e-5


def test_graph_that_disagrees_with_the_manifest_is_refused(tmp_path: Path, model: ItemModel) -> None:
    from privrec.export.manifest import file_digest

    a = export_bundle(model, tmp_path / "a", formats=("onnx",), top_k=8)
    b = export_bundle(model, tmp_path / "b", formats=("onnx",), top_k=5)
    (a / "model.recommend.onnx").write_bytes((b / "model.recommend.onnx").read_bytes())
    manifest = json.loads((a / "manifest.json").read_text())
    for rel in manifest["files"]:
        sha, size = file_digest(a / rel)
        manifest["files"][rel] = {"sha256": sha, "size": size}
    (a / "manifest.json").write_text(json.dumps(manifest))
    with (
        pytest.raises(ValueError, match=r"^model\.recommend\.onnx: graph outputs .*\[5\].* differ from the manifest signature"),
        pytest.warns(BundleWarning),
    ):
        Recommender.load(a, allow_unsigned=True)


@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_reconstruct_on_device_equals_sdk_reconstruction(tmp_path: Path, backend: str, keys: tuple[Path, Path]) -> None:
    """What a device computes through the exported `finetune` equals the evaluation's reconstruction."""
    from privrec.export.bundle import export_bundle
    from privrec.sdk.model import ItemModel
    from privrec.sdk.reconstruct import FinetuneConfig, reconstruct

    rng = np.random.default_rng(7)
    model = ItemModel(rng.normal(0, 0.5, (60, 6)).astype(np.float32), rng.normal(0, 0.2, 60).astype(np.float32))
    ft = FinetuneConfig(steps=4, calls=3, lr=0.1, l2=0.5)
    bundle = export_bundle(
        model, tmp_path / "b", formats=("onnx", "tflite"), finetune=ft, recency_half_life=2.0, sign_key=keys[0]
    )
    rec = Recommender.load(bundle, backend=backend, public_key=keys[1])  # type: ignore[arg-type]
    assert rec.manifest.finetune["calls"] == 3 and rec.manifest.finetune["recency_half_life"] == 2.0
    history = [5, 17, 3, 42]  # oldest first
    labels = (0.5 ** (np.arange(3, -1, -1) / 2.0)).astype(np.float32)
    expected = reconstruct(model, history, ft, labels=labels)
    np.testing.assert_allclose(rec.reconstruct(history), expected, atol=1e-4)
    with pytest.raises(ValueError, match=r"`history` must be in \[0, 60\)\. Found 60 at position 1\."):
        rec.reconstruct([1, 60])
    with pytest.raises(ValueError, match="no interactions"):
        rec.reconstruct([])


GOLDEN_RECIPE = Path(__file__).resolve().parents[1] / "golden" / "reconstruction_recipe.json"


@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_reconstruction_recipe_golden(tmp_path: Path, backend: str, keys: tuple[Path, Path]) -> None:
    """The pinned recipe (tests/golden/reconstruction_recipe.json; the Kotlin core and the Swift package read
    the same file): each history's labels and user vector, rebuilt through the exported `finetune`."""
    from privrec.export.bundle import export_bundle
    from privrec.sdk.model import ItemModel
    from privrec.sdk.recipe import ReconstructionRecipe

    golden = json.loads(GOLDEN_RECIPE.read_text())
    model = ItemModel(np.asarray(golden["item_embedding"], np.float32), np.asarray(golden["item_bias"], np.float32))
    recipe = ReconstructionRecipe.from_manifest(golden["finetune"])
    bundle = export_bundle(model, tmp_path / "b", formats=("onnx", "tflite"), finetune=recipe.finetune,
                           recency_half_life=recipe.recency_half_life, top_k=5, sign_key=keys[0])
    rec = Recommender.load(bundle, backend=backend, public_key=keys[1])  # type: ignore[arg-type]
    assert rec.recipe == recipe
    for case in golden["cases"]:
        np.testing.assert_array_equal(rec.recipe.labels(case["history"], rec.num_items), np.float32(case["labels"]))
        np.testing.assert_allclose(rec.reconstruct(case["history"]), case["user"], atol=golden["tolerance"], rtol=0)


def test_reconstruction_recipe_golden_is_the_reference() -> None:
    """The golden values are what the float64 reference computes today (a change to the recipe fails here)."""
    from privrec.sdk.recipe import ReconstructionRecipe
    from privrec.sdk.reconstruct import finetune_reference

    golden = json.loads(GOLDEN_RECIPE.read_text())
    V, b = np.asarray(golden["item_embedding"]), np.asarray(golden["item_bias"])
    recipe = ReconstructionRecipe.from_manifest(golden["finetune"])

    def finetune(u: np.ndarray, ids: np.ndarray, lab: np.ndarray, lr: float, l2: float) -> tuple[np.ndarray, float]:
        return finetune_reference(u, V, b, ids, lab, lr=lr, l2=l2, steps=recipe.steps)

    for case in golden["cases"]:
        labels = recipe.labels(case["history"], golden["num_items"])
        np.testing.assert_allclose(recipe.fit(finetune, labels, dim=golden["dim"]), case["user"], atol=1e-7)


# ------------------------------------------------------------------------- attacks on a bundle on disk
def test_litert_scores_a_large_catalog_through_score_all(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    """A catalog of 4,096 items or more gets the TFLite ``score_all`` signature: ``score(user)`` (no ids) goes
    through it, gives the same scores as ``score`` over every id (the same two-pass scan) and onnxruntime's
    within the int8 tolerance; the first whole-catalog score checks it against the golden ``score`` cases
    (the start-up self-test runs the three contract signatures only)."""
    if importlib.util.find_spec("privrec.export.tflite") is None:
        pytest.skip("export/tflite.py is not in this tree")
    rng = np.random.default_rng(11)
    n, d = 5000, 8
    big = ItemModel(rng.normal(0, 0.3, (n, d)).astype(np.float32), rng.normal(0, 0.1, n).astype(np.float32))
    bundle = export_bundle(quantize_int8(big), tmp_path / "b", formats=("onnx", "tflite"), top_k=8, sign_key=keys[0])
    lite = Recommender.load(bundle, backend="litert", public_key=keys[1])
    assert lite.manifest.artifact_record("tflite").details["score_all"] is True
    u = rng.normal(size=d).astype(np.float32)
    whole = lite.score(u)
    assert whole.shape == (n,) and whole.dtype == np.float32
    np.testing.assert_array_equal(whole, lite.score(u, np.arange(n)))
    np.testing.assert_allclose(whole, Recommender.load(bundle, public_key=keys[1]).score(u), atol=2e-2)
    assert lite.self_test()["ok"]
    report = verify_bundle(bundle, public_key=keys[1])  # `privrec verify` checks score_all too (at the score cases)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]


def test_a_score_all_that_disagrees_with_golden_is_refused_on_first_use(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    """golden.json's ``score`` outputs shifted (and the manifest rehashed: a consistent forgery): the first
    whole-catalog ``score`` checks ``score_all`` against them and refuses, naming the signature and the error;
    the file is not changed by the attempt."""
    if importlib.util.find_spec("privrec.export.tflite") is None:
        pytest.skip("export/tflite.py is not in this tree")
    rng = np.random.default_rng(12)
    n, d = 5000, 8
    big = ItemModel(rng.normal(0, 0.3, (n, d)).astype(np.float32), rng.normal(0, 0.1, n).astype(np.float32))
    bundle = export_bundle(quantize_int8(big), tmp_path / "b", formats=("tflite",), top_k=8)
    golden = json.loads((bundle / "golden.json").read_text())
    for case in golden["cases"]:
        if case["signature"] == "score":
            case["outputs"]["scores"] = [s + 0.5 for s in case["outputs"]["scores"]]
    (bundle / "golden.json").write_text(json.dumps(golden))
    _rehash(bundle, "golden.json")
    before = (bundle / "golden.json").read_bytes()
    with pytest.warns(BundleWarning):
        lite = Recommender.load(bundle, backend="litert", allow_unsigned=True)
    u = rng.normal(size=d).astype(np.float32)
    assert lite.score(u, np.arange(3)).shape == (3,)  # lists of ids do not use score_all
    with pytest.raises(ValueError, match=r"`score_all` of the litert artifact disagrees with golden.json.*0\.5"):
        lite.score(u)
    assert not lite.self_test()["ok"]  # the contract's `score` disagrees with the forged cases too
    assert (bundle / "golden.json").read_bytes() == before


def test_a_manifest_claiming_score_all_for_a_file_without_it_is_refused(
    tmp_path: Path, model: ItemModel, keys: tuple[Path, Path]
) -> None:
    """``details.score_all`` edited to true for a small catalog's file (which has no such signature): the LiteRT
    backend refuses to load, naming the signature; the manifest was not changed by the attempt."""
    if importlib.util.find_spec("privrec.export.tflite") is None:
        pytest.skip("export/tflite.py is not in this tree")
    bundle = export_bundle(model, tmp_path / "b", formats=("tflite",), top_k=8)
    assert json.loads((bundle / "manifest.json").read_text())["artifacts"]["tflite"]["details"]["score_all"] is False
    _edit_manifest(bundle, lambda data: data["artifacts"]["tflite"]["details"].update(score_all=True))
    before = (bundle / "manifest.json").read_bytes()
    with pytest.raises(ValueError, match="must have the `score_all` signature"), pytest.warns(BundleWarning):
        Recommender.load(bundle, backend="litert", allow_unsigned=True)
    assert (bundle / "manifest.json").read_bytes() == before


def _edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _rehash(bundle: Path, *rels: str) -> None:
    """Make the manifest agree with the files as they are now (a consistent forgery)."""
    from privrec.export.manifest import file_digest

    def edit(data: dict[str, Any]) -> None:
        for rel in rels or tuple(data["files"]):
            sha, size = file_digest(bundle / rel)
            data["files"][rel] = {"sha256": sha, "size": size}

    _edit_manifest(bundle, edit)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model path onnxruntime is asked to open during the test."""
    import onnxruntime as ort

    paths: list[str] = []
    real = ort.InferenceSession

    def spy(path: str, *args: Any, **kwargs: Any) -> Any:
        paths.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    return paths


def test_graph_paths_outside_the_bundle_are_never_opened(bundle: Path, tmp_path: Path, opened: list[str]) -> None:
    """Finding: `details.graphs` could name any absolute path, with every listed hash still matching."""
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = outside / "evil.onnx"
    evil.write_bytes((bundle / "model.score.onnx").read_bytes())
    _edit_manifest(bundle, lambda d: d["artifacts"]["onnx"]["details"]["graphs"].update(score=str(evil)))
    message = r"^manifest\.json: field `artifacts\.onnx\.details\.graphs\.score` holds '/.*evil\.onnx', an absolute path"
    with pytest.raises(BundleError, match=message), pytest.warns(BundleWarning):
        Recommender.load(bundle, allow_unsigned=True)
    # Listed in `files` under a path that climbs out, with its real hash: refused by the path rule.
    shutil.copy(bundle / "model.onnx.data", outside / "model.onnx.data")

    def climb(d: dict[str, Any]) -> None:
        d["files"]["../outside/evil.onnx"] = d["files"]["model.score.onnx"]
        d["artifacts"]["onnx"]["files"].append("../outside/evil.onnx")
        d["artifacts"]["onnx"]["details"]["graphs"]["score"] = "../outside/evil.onnx"

    _edit_manifest(bundle, climb)
    message = r"^manifest\.json: field `files` holds '\.\./outside/evil\.onnx', a path that is not normalised"
    with pytest.raises(BundleError, match=message), pytest.warns(BundleWarning):
        Recommender.load(bundle, allow_unsigned=True)
    assert opened == []


def test_the_runner_opens_only_listed_graphs(bundle: Path, tmp_path: Path, opened: list[str]) -> None:
    """Defence in depth: a record that bypassed the manifest checks still cannot point the runner outside."""
    from dataclasses import replace

    from privrec.export.manifest import load_manifest
    from privrec.export.onnx_runner import OnnxRunner

    record = load_manifest(bundle).artifact_record("onnx")
    graphs = {"score": str(tmp_path / "x.onnx"), "recommend": "a", "finetune": "b"}
    outside = replace(record, details={**record.details, "graphs": graphs})
    with pytest.raises(BundleError, match=r"`artifacts\.onnx\.details\.graphs\.score` names '/.*x\.onnx', which is not a file"):
        OnnxRunner.load(bundle, outside)
    (tmp_path / "link.onnx").symlink_to(bundle / "model.score.onnx")
    linked = replace(record, files=(*record.files, "link.onnx"), details={**record.details, "graphs": {
        "score": "link.onnx", "recommend": "model.recommend.onnx", "finetune": "model.finetune.onnx"}})
    (bundle / "link.onnx").symlink_to(tmp_path / "link.onnx")
    with pytest.raises(BundleError, match=r"^link\.onnx: 'link\.onnx' is a symbolic link"):
        OnnxRunner.load(bundle, linked)
    assert opened == []


def test_unsigned_bundles_need_an_explicit_opt_in(tmp_path: Path, model: ItemModel, keys: tuple[Path, Path]) -> None:
    unsigned = export_bundle(model, tmp_path / "unsigned", formats=("onnx",), top_k=8)
    with pytest.raises(ValueError, match=r"^`public_key` is required: pass the publisher's pinned Ed25519 public key"):
        Recommender.load(unsigned)
    with pytest.raises(SignatureError, match=r"^manifest\.sig: missing: the bundle is unsigned"):
        Recommender.load(unsigned, public_key=keys[1])
    with pytest.warns(BundleWarning, match=r"without checking its signature \(allow_unsigned=True\): anyone who can write"):
        assert Recommender.load(unsigned, allow_unsigned=True).num_items == N
    with pytest.raises(ValueError, match=r"`allow_unsigned=True` cannot be combined with `public_key`"):
        Recommender.load(unsigned, public_key=keys[1], allow_unsigned=True)


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("the privacy ledger the app shows", lambda d: d["privacy"].update(mode="central", epsilon=0.5, delta=1e-6)),
        ("an item title", lambda d: d["items"][3].update(title="Click here")),
        ("finetune.calls", lambda d: d["finetune"].update(calls=1)),
    ],
)
def test_manifest_edits_without_rehashing_are_refused(
    bundle: Path, public_key: Path, what: str, edit: Callable[[dict[str, Any]], None], opened: list[str]
) -> None:
    _edit_manifest(bundle, edit)
    with pytest.raises(SignatureError, match=r"^manifest\.sig: the signature does not verify manifest\.json"):
        Recommender.load(bundle, public_key=public_key)
    assert opened == [], what


def test_swapping_every_artifact_with_new_hashes_is_refused(
    bundle: Path, public_key: Path, tmp_path: Path, opened: list[str]
) -> None:
    """Finding: artifacts and golden swapped, hashes updated: `load`, `self_test` and `verify` all passed."""
    from privrec.export import verify_bundle

    rng = np.random.default_rng(99)
    evil_model = ItemModel(rng.normal(0, 0.3, (N, D)).astype(np.float32), rng.normal(0, 0.1, N).astype(np.float32))
    ft = FinetuneConfig(steps=4, lr=0.5, l2=0.01)
    evil = export_bundle(evil_model, tmp_path / "evil", formats=("onnx",), top_k=8, finetune=ft)
    for rel in json.loads((bundle / "manifest.json").read_text())["files"]:
        shutil.copy(evil / rel, bundle / rel)
    _rehash(bundle)
    with pytest.warns(BundleWarning):
        assert Recommender.load(bundle, allow_unsigned=True).self_test()["ok"] is True  # consistent: only a key can tell
    opened.clear()
    with pytest.raises(SignatureError, match=r"^manifest\.sig: the signature does not verify manifest\.json"):
        Recommender.load(bundle, public_key=public_key)
    assert opened == []
    report = verify_bundle(bundle, public_key=public_key)
    assert (report["ok"], report["signature"]["status"]) == (False, "bad")


def test_the_signature_is_checked_before_any_other_file(bundle: Path, public_key: Path) -> None:
    (bundle / "weights.safetensors").unlink()
    (bundle / "model.score.onnx").write_bytes(b"garbage")
    _edit_manifest(bundle, lambda d: d.update(schema_version=2))
    with pytest.raises(SignatureError, match=r"^manifest\.sig: "):
        Recommender.load(bundle, public_key=public_key)


def test_a_rehashed_symlink_to_a_file_outside_is_refused(bundle: Path, tmp_path: Path, opened: list[str]) -> None:
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(bundle / "model.finetune.onnx", outside)
    (bundle / "model.finetune.onnx").symlink_to(outside)
    _rehash(bundle, "model.finetune.onnx")
    message = r"^model\.finetune\.onnx: 'model\.finetune\.onnx' is a symbolic link"
    with pytest.raises(BundleError, match=message), pytest.warns(BundleWarning):
        Recommender.load(bundle, allow_unsigned=True)
    assert opened == []


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda b: (b / "manifest.json").write_text(
                (b / "manifest.json").read_text().replace('"ledger": []', '"ledger": ' + "[" * 100_000 + "]" * 100_000)
            ),
            r"^manifest\.json: not valid JSON \(nesting deeper than 64 levels\)",
        ),
        (
            lambda b: _edit_manifest(b, lambda d: d["finetune"].update(steps=10**9)),
            r"^manifest\.json: field `finetune\.steps` must be an int in \[1, 1000\]\. Found 1000000000\.",
        ),
    ],
)
def test_corrupt_bundles_are_bundle_errors_not_crashes(
    bundle: Path, corrupt: Callable[[Path], object], message: str, opened: list[str]
) -> None:
    corrupt(bundle)
    start = time.perf_counter()
    with pytest.raises(BundleError, match=message), pytest.warns(BundleWarning):
        Recommender.load(bundle, allow_unsigned=True)
    assert time.perf_counter() - start < 10.0 and opened == []


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda b: ((b / "weights.safetensors").write_bytes((b / "weights.safetensors").read_bytes()[:-64]),
                       _rehash(b, "weights.safetensors")),
            r"^weights\.safetensors: the tensors end at data byte \d+, but the file holds \d+ data bytes: the file is truncated",
        ),
        (
            lambda b: ((b / "weights.safetensors").write_bytes(_header_only({"item_embedding": ["F32", [N, D]]})),
                       _rehash(b, "weights.safetensors")),
            r"^weights\.safetensors: header field `item_embedding` must be an object with keys",
        ),
    ],
)
def test_corrupt_weights_are_refused_by_verify_and_never_read_by_load(
    bundle: Path, corrupt: Callable[[Path], object], message: str
) -> None:
    """The runtime runs the artifact and never opens weights.safetensors (so it neither hashes nor parses it);
    `privrec verify` refuses a rehashed but malformed weights file with a message naming it."""
    from privrec.export import verify_bundle

    corrupt(bundle)
    with pytest.warns(BundleWarning):
        rec = Recommender.load(bundle, allow_unsigned=True)
    assert rec.self_test()["ok"] is True
    with pytest.raises(BundleError, match=message):
        verify_bundle(bundle)


def _header_only(header: dict[str, Any]) -> bytes:
    blob = json.dumps(header).encode()
    return len(blob).to_bytes(8, "little") + blob


def test_a_golden_case_with_missing_keys_fails_self_test_as_a_bundle_error(bundle: Path) -> None:
    golden = json.loads((bundle / "golden.json").read_text())
    del golden["cases"][7]["outputs"]["loss"]
    (bundle / "golden.json").write_text(json.dumps(golden))
    _rehash(bundle, "golden.json")
    with pytest.warns(BundleWarning):
        rec = Recommender.load(bundle, allow_unsigned=True)
    message = r"^golden\.json: field `cases\[7\]\.outputs` must be an object with keys \['loss', 'user_out'\]"
    with pytest.raises(BundleError, match=message):
        rec.self_test()


def test_finetune_refuses_non_finite_outputs(rec: Recommender) -> None:
    """Finding: `finetune(lr=1e30)` returned NaN silently."""
    u = np.ones(D, np.float32)
    message = (
        r"^`finetune` output `user_out` must be finite\. Found (nan|-?inf) at position \d+: the steps diverged; "
        r"lower `lr` \(found 1e\+30\) or raise `l2` \(found 0\.01\)\."
    )
    with pytest.raises(ValueError, match=message):
        rec.finetune(u, np.arange(N), lr=1e30)
    with pytest.raises(ValueError, match=r"^`lr` must be at most 3\.40282e\+38 \(the largest float32\)\. Found 1e\+39\."):
        rec.finetune(u, [1], lr=1e39)
    out, loss = rec.finetune(u, [1, 2])  # the manifest's lr is fine
    assert np.isfinite(out).all() and np.isfinite(loss)


class _NanRunner:
    """A runner whose every output is NaN (a broken or hostile artifact)."""

    def score(self, user: Any, item_ids: Any) -> Any:
        return np.full(len(item_ids), np.nan, np.float32)

    def recommend(self, user: Any, mask: Any) -> Any:
        return np.arange(8, dtype=np.int32), np.array([1.0] * 7 + [np.inf], np.float32)

    def finetune(self, user: Any, item_ids: Any, labels: Any, lr: Any, l2: Any) -> Any:
        return np.zeros(D, np.float32), np.array([np.nan], np.float32)


def test_non_finite_outputs_of_any_signature_are_refused(rec: Recommender) -> None:
    from dataclasses import replace

    broken = replace(rec, _runner=_NanRunner())
    u = np.ones(D, np.float32)
    with pytest.raises(ValueError, match=r"^`score` output `scores` must be finite\. Found nan at position 0"):
        broken.score(u, [0, 1])
    with pytest.raises(ValueError, match=r"^`recommend` output `top_scores` must be finite\. Found inf at position 7"):
        broken.recommend(u)
    with pytest.raises(ValueError, match=r"^`finetune` output `loss` must be finite\. Found nan at position 0"):
        broken.finetune(u, [0])
