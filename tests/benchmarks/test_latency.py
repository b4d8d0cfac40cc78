"""The latency suite's ``onnxruntime-dequant`` "before" graph: parity with numpy, and its input checks; and its
browser row (onnxruntime-web in Chromium against onnxruntime native), which says why when it cannot run.

The graph is the reference point of the int8 fast-path gain in the latency report, so it must compute the
same scores as the dequantized table, ``(q * s[:, None]) @ u + b`` (within the 2e-2 int8 tolerance; in
practice float32 rounding), and ``recommend`` must return the reference's top-K in order.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from privrec.benchmarks import latency
from privrec.benchmarks.latency import LatencyPlan, OnnxDequantRunner, dequantized_scores, synthetic_model
from privrec.sdk.quantize import QuantizedItemModel, quantize_int8

pytestmark = pytest.mark.xdist_group("bench")

TOL = 2e-2  # the int8 parity tolerance of docs/BUNDLE.md
K = 10


def _numpy_reference(q: QuantizedItemModel, user: NDArray[np.float32]) -> NDArray[np.float64]:
    """Written out independently of :func:`dequantized_scores`, in float64."""
    table = q.item_embedding.astype(np.float64) * q.item_scale.astype(np.float64)[:, None]
    out: NDArray[np.float64] = table @ user.astype(np.float64) + q.item_bias.astype(np.float64)
    return out


@pytest.fixture(scope="module")
def model() -> QuantizedItemModel:
    return quantize_int8(synthetic_model(200, 8, seed=3))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.0, 1e-3, 1.0, 30.0]), n=st.sampled_from([10, 200, 1_000]))
def test_dequant_scores_and_recommend_match_numpy(seed: int, scale: float, n: int) -> None:
    q = quantize_int8(synthetic_model(n, 8, seed=seed % 1000))
    runner = OnnxDequantRunner(q, top_k=K)
    rng = np.random.default_rng(seed)
    user = (scale * rng.normal(size=8)).astype(np.float32)
    mask = np.where(rng.random(n) < 0.2, np.float32(-1e9), np.float32(0.0)).astype(np.float32)
    ref = _numpy_reference(q, user)
    scores = runner.score_all(user)
    assert scores.shape == (n,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(dequantized_scores(q, user), ref, rtol=0, atol=TOL)
    ids, top = runner.recommend(user, mask)
    assert ids.dtype == np.int32 and top.dtype == np.float32 and ids.shape == top.shape == (K,)
    masked = ref.astype(np.float32) + mask  # in float32, as the graph: a masked score is exactly -1e9
    np.testing.assert_allclose(top, np.sort(masked)[::-1][:K], rtol=0, atol=TOL)  # the reference's top-K, highest first
    np.testing.assert_allclose(top, masked[ids], rtol=0, atol=TOL)  # and they are the scores of the returned ids
    assert len(set(ids.tolist())) == K


def test_dequant_recommend_golden_order(model: QuantizedItemModel) -> None:
    user = np.linspace(-1.0, 1.0, 8).astype(np.float32)
    ref = _numpy_reference(model, user)
    ids, _ = OnnxDequantRunner(model, top_k=K).recommend(user, np.zeros(200, np.float32))
    assert ids.tolist() == np.argsort(-ref, kind="stable")[:K].tolist()


def test_dequant_graph_dequantizes_the_table(model: QuantizedItemModel) -> None:
    """The "before" must be the naive graph: the int8 table cast to float and scaled, the user as a [d, 1] column."""
    for name, proto in OnnxDequantRunner.build(model, top_k=K).items():
        ops = [node.op_type for node in proto.graph.node]
        assert ops[:5] == ["Cast", "Mul", "Unsqueeze", "MatMul", "Squeeze"], name
        assert "MatMulInteger" not in ops
        weights = {t.name: tuple(t.dims) for t in proto.graph.initializer}
        assert weights["item_embedding"] == (200, 8) and weights["item_scale"] == (200, 1)
        assert ("TopK" in ops) == (name == "recommend")


def test_dequant_runner_rejects_bad_inputs(model: QuantizedItemModel) -> None:
    with pytest.raises(TypeError, match="QuantizedItemModel"):
        OnnxDequantRunner(model.dequantize())  # type: ignore[arg-type]
    for bad in (0, 201, True):
        with pytest.raises(ValueError, match="top_k"):
            OnnxDequantRunner(model, top_k=bad)


# --- the browser row: onnxruntime-web in Debian's Chromium vs onnxruntime native --------------------------------

TINY_BROWSER = LatencyPlan(
    catalogs=(), dims=(), calls=6, warmup=1, bandwidth_mb=1, burst=2, browser_catalogs=(300,), browser_dims=(8,), browser_chunk=3
)


def test_plans_time_the_browser_at_movielens_and_100k_items() -> None:
    for plan in (latency.QUICK, latency.FULL):
        assert plan.browser_catalogs == (1_682, 100_000) and plan.browser_dims == (32,)


def test_browser_row_says_why_when_chromium_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(latency, "CHROMIUM", tmp_path / "no-chromium")
    why = latency.browser_unavailable()
    assert why is not None
    assert latency.run_browser_latency(TINY_BROWSER) == {"status": why, "browser": None, "rows": []}  # no exception
    if shutil.which("node") and (latency.WEB_SAMPLE / "node_modules" / "playwright-core").is_dir():
        assert why == f"{tmp_path / 'no-chromium'} is not installed: run `make chromium` (Debian's chromium package)"
    assert latency.browser_markdown({"browser": {"status": why, "rows": []}}).endswith(f"Browser row: {why}.\n")


def test_browser_row_times_the_bundle_against_native() -> None:
    why = latency.browser_unavailable()
    if why is not None:
        if os.environ.get("PRIVREC_REQUIRE_WEB") == "1":
            pytest.fail(why)
        pytest.skip(why)
    result = latency.run_browser_latency(TINY_BROWSER)
    assert result["status"] == "ok", result["status"]
    assert result["browser"].startswith("Chromium ")
    rows = result["rows"]
    assert {(r["catalog"], r["dim"], r["precision"], r["op"]) for r in rows} == {
        (300, 8, p, op) for p in ("float32", "int8") for op in latency.BROWSER_OPS
    }
    for r in rows:
        assert r["backend"] == "onnxruntime-web" and r["native_backend"] == "onnxruntime"
        assert r["calls"] == TINY_BROWSER.calls
        assert 0 < r["p50_ms"] <= r["p95_ms"] and r["p50_cold_ms"] > 0
        assert 0 < r["native_p50_ms"] <= r["native_p95_ms"] and r["native_p50_cold_ms"] > 0
        assert r["ratio_native"] == pytest.approx(r["p50_ms"] / r["native_p50_ms"])
        assert r["ratio_native_cold"] == pytest.approx(r["p50_cold_ms"] / r["native_p50_cold_ms"])
        # the browser computed what the reference and the native runtime compute (float32 rounding; int8 tolerance)
        assert 0 <= r["max_abs_err"] <= (1e-4 if r["precision"] == "float32" or r["op"] == "finetune" else TOL), r
    md = latency.browser_markdown({"browser": result})
    assert "| 300 | 8 | int8 | recommend |" in md and "× native" in md
