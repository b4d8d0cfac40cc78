"""The founding document's snippets run through :mod:`privrec.compat` exactly as printed (only the import
changed), and each founding name is the thin wrapper it claims to be."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_readme_quickstart import QUICK_START

from privrec.compat import (
    CoreMLExporter,
    DifferentialPrivacy,
    MobileOptimizedRecommender,
    PrivateRecommenderModel,
    SecureAggregator,
    TensorFlowLiteExporter,
)
from privrec.sdk.errors import PrivacyBudgetExceededError

# The founding document's "Basic Example" (the README's Quick Start test holds its text), with
# `from federated_recommender import` → `from privrec.compat import`.
BASIC_EXAMPLE = QUICK_START.replace("from privrec import FederatedRecommendationSystem",
                                    "from privrec.compat import FederatedRecommendationSystem")

# The founding document's iOS and Android snippets, with `from edge_deployment import` → `from privrec.compat import`.
MOBILE_EXAMPLE = """
from privrec.compat import CoreMLExporter, MobileOptimizedRecommender

model = MobileOptimizedRecommender(num_items=1000, embedding_dim=32)
CoreMLExporter.export_to_coreml(model, 1000, 32, "Recommender.mlmodel")
"""

ANDROID_EXAMPLE = """
from privrec.compat import TensorFlowLiteExporter

TensorFlowLiteExporter.export_to_tflite(model, 1000, 32, "recommender.tflite")
"""


def test_basic_example_runs_as_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert BASIC_EXAMPLE.count("from privrec.compat import FederatedRecommendationSystem") == 1
    namespace: dict[str, object] = {"__name__": "founding"}
    exec(compile(BASIC_EXAMPLE, "founding-basic-example", "exec"), namespace)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("Top 10 Recommendations: [")
    ids = json.loads(line.split(": ", 1)[1])
    assert len(ids) == 10 and len(set(ids)) == 10 and all(0 <= i < 1000 for i in ids)
    fed = namespace["fed_system"]
    spent = fed.privacy_spent()  # type: ignore[attr-defined]
    assert 0 < spent.epsilon <= 1.0  # five rounds of a budget planned for twenty


def test_mobile_and_android_examples_run_as_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "founding"}
    exec(compile(MOBILE_EXAMPLE, "founding-ios-example", "exec"), namespace)
    exec(compile(ANDROID_EXAMPLE, "founding-android-example", "exec"), namespace)
    for package in ("RecommenderScore", "RecommenderRecommend", "RecommenderFinetune"):
        assert (tmp_path / f"{package}.mlpackage" / "Manifest.json").is_file()
    assert not list(tmp_path.glob(".coreml-*")) and not list(tmp_path.glob(".tflite-*"))  # no temporary left
    tflite = tmp_path / "recommender.tflite"
    assert tflite.is_file()

    # The .tflite runs in LiteRT with the three named signatures, and matches the int8 model it was made from.
    from ai_edge_litert.interpreter import Interpreter

    model = namespace["model"]
    assert isinstance(model, MobileOptimizedRecommender)
    interpreter = Interpreter(model_path=str(tflite))
    assert set(interpreter.get_signature_list()) == {"score", "recommend", "finetune"}
    user = np.random.default_rng(0).normal(size=32).astype(np.float32)
    ids = np.arange(1000, dtype=np.int32)
    got = interpreter.get_signature_runner("score")(user=user, item_ids=ids)["scores"]
    want = model.exportable().dequantize().score(user)
    assert np.abs(got - want).max() < 2e-2


def test_coreml_export_runs_in_the_mil_interpreter(tmp_path: Path) -> None:
    from privrec.export.coreml import CoreMLRunner

    model = PrivateRecommenderModel(num_items=50, embedding_dim=8, seed=3)
    record = CoreMLExporter.export_to_coreml(model, 50, 8, tmp_path / "Recommender.mlmodel")
    assert record.precision == "float32" and all((tmp_path / f).is_file() for f in record.files)
    runner = CoreMLRunner(tmp_path, record, variant="iOS16")
    user = np.linspace(-1, 1, 8).astype(np.float32)
    scores = runner.score(user, np.arange(50, dtype=np.int32))
    assert np.abs(scores - model.score(user)).max() < 1e-4


def test_coreml_packages_take_the_stem_of_the_path(tmp_path: Path) -> None:
    record = CoreMLExporter.export_to_coreml(MobileOptimizedRecommender(20, 4), 20, 4, tmp_path / "out" / "Movies.mlmodel")
    names = sorted({f.split("/")[0] for f in record.files})
    assert names == ["MoviesFinetune.mlpackage", "MoviesRecommend.mlpackage", "MoviesScore.mlpackage"]
    assert all((tmp_path / "out" / f).is_file() for f in record.files)


def test_exporters_refuse_sizes_that_do_not_match_the_model(tmp_path: Path) -> None:
    model = MobileOptimizedRecommender(num_items=1000, embedding_dim=32)
    with pytest.raises(ValueError, match=r"^`num_items` must match the model \(1000\)\. Found 999\.$"):
        TensorFlowLiteExporter.export_to_tflite(model, 999, 32, tmp_path / "r.tflite")
    with pytest.raises(ValueError, match=r"^`embedding_dim` must match the model \(32\)\. Found 64\.$"):
        CoreMLExporter.export_to_coreml(model, 1000, 64, tmp_path / "R.mlmodel")
    with pytest.raises(TypeError, match="`model` must be a PrivateRecommenderModel"):
        TensorFlowLiteExporter.export_to_tflite("model", 1000, 32, tmp_path / "r.tflite")


def test_private_recommender_model_is_mf_with_a_local_user_vector() -> None:
    model = PrivateRecommenderModel(num_items=200, embedding_dim=16, seed=1)
    items = model.item_model
    assert items.item_embedding.shape == (200, 16) and not items.item_bias.any()
    user = model.user_vector([3, 7, 11])
    assert user.shape == (16,) and user.dtype == np.float32
    np.testing.assert_allclose(model.score(user), items.item_embedding @ user + items.item_bias, rtol=1e-5, atol=1e-6)
    top = model.recommend(user, top_k=5, exclude=[3, 7, 11])
    assert len(top) == 5 and not {3, 7, 11} & set(top)
    # The user vector is the recipe's, through the same finetune maths every device runs.
    from privrec.sdk.federated.device import NumpySignatures

    labels = model.recipe.labels([3, 7, 11], 200)
    again = model.recipe.fit(NumpySignatures(items, model.recipe.steps).finetune, labels, dim=16)
    np.testing.assert_array_equal(user, again)


def test_mobile_optimized_recommender_exports_int8_and_prunes() -> None:
    dense = MobileOptimizedRecommender(num_items=100, embedding_dim=8).exportable()
    assert dense.item_embedding.dtype == np.int8 and dense.sparsity < 0.05
    sparse = MobileOptimizedRecommender(num_items=100, embedding_dim=8, sparsity=0.5).exportable()
    assert sparse.sparsity >= 0.5
    with pytest.raises(ValueError, match=r"^`sparsity` must be in \[0, 1\)\. Found 1\.0\.$"):
        MobileOptimizedRecommender(num_items=100, embedding_dim=8, sparsity=1.0)


def test_differential_privacy_clips_noises_accounts_and_stops_at_the_budget() -> None:
    from privrec.sdk.privacy import PrivacyWarning

    with pytest.warns(PrivacyWarning, match="NOT secure"):  # seeded noise is for tests only, and says so
        dp = DifferentialPrivacy(epsilon=1.0, delta=1e-5, clip_norm=1.0, rounds=3, secure_noise=False, seed=0)
    assert dp.noise_multiplier > 1.0
    updates = np.full((10, 4), 3.0)
    clipped, norms = dp.clip(updates)
    np.testing.assert_allclose(np.linalg.norm(clipped, axis=1), 1.0)
    np.testing.assert_allclose(norms, 6.0)
    totals = [dp.privatize(updates) for _ in range(3)]
    noise = np.concatenate([t - clipped.sum(axis=0) for t in totals])
    assert 0.3 * dp.noise_multiplier < noise.std() < 3 * dp.noise_multiplier  # std Z·C, C = 1
    assert dp.releases == 3 and dp.spent().epsilon <= 1.0
    with pytest.raises(PrivacyBudgetExceededError, match=r"^release 4 would take ε past the budget 1\.0"):
        dp.privatize(updates)


def test_differential_privacy_validates_at_construction() -> None:
    with pytest.raises(ValueError, match="clip_norm"):
        DifferentialPrivacy(epsilon=1.0, delta=1e-5, clip_norm=0.0)
    with pytest.raises(TypeError):
        DifferentialPrivacy(1.0, 1e-5)  # type: ignore[misc]  # privacy parameters are keyword-only


def test_secure_aggregator_returns_the_sum_and_refuses_misuse() -> None:
    rng = np.random.default_rng(0)
    updates = rng.uniform(-1, 1, size=(6, 40))
    agg = SecureAggregator(clip_range=1.0)
    for i, u in enumerate(updates):
        agg.submit(f"device_{i}", u)
    total = agg.aggregate()
    np.testing.assert_allclose(total, updates.sum(axis=0), atol=1e-5)
    assert agg.last_stats is not None and len(agg.last_stats.survivors) == 6
    agg.submit("a", updates[0])
    with pytest.raises(ValueError, match=r"^`client_id` must submit once per round\. Found 'a' twice\.$"):
        agg.submit("a", updates[1])
    with pytest.raises(ValueError, match=r"^`update` must have length 40 like the first one\. Found 3\.$"):
        agg.submit("b", np.zeros(3))
    with pytest.raises(ValueError, match=r"^secure aggregation needs at least 2 submitted updates\. Found 1\.$"):
        agg.aggregate()


def test_founding_names_are_the_real_classes() -> None:
    import privrec
    from privrec import compat
    from privrec.sdk.federated import facade

    assert compat.FederatedClient is facade.FederatedClient is privrec.FederatedClient
    assert compat.FederatedRecommendationSystem is facade.FederatedRecommendationSystem
    assert sorted(compat.__all__) == compat.__all__


def test_importing_compat_loads_no_heavy_framework() -> None:
    code = textwrap.dedent("""
        import sys
        import privrec.compat
        heavy = [m for m in ("torch", "tensorflow", "coremltools", "dp_accounting", "onnx") if m in sys.modules]
        print(",".join(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""

