"""The ONNX int8 fast path, run in onnxruntime, against the numpy reference over the dequantized table.

Tolerance: int8 max abs error ≤ 2e-2 and top-K sets equal up to ties (docs/BUNDLE.md); the two-level user
quantization actually lands near 1e-4, which the tighter checks below pin down.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from onnx_nodes import all_nodes

from privrec.export.onnx_int8 import (
    FLOAT_SCAN_RATIO,
    INT8_SCAN_RATIO,
    TABLE_T,
    Int8FastRunner,
    build_fast_models,
    build_int8_models,
    transposed_table,
)
from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import QuantizedItemModel, quantize_int8

NUM_ITEMS, DIM, K = 200, 8, 10
TOL = 2e-2


def _model(num_items: int, dim: int, seed: int) -> QuantizedItemModel:
    rng = np.random.default_rng(seed)
    emb = rng.normal(0.0, 0.3, (num_items, dim)).astype(np.float32)
    return quantize_int8(ItemModel(emb, rng.normal(0.0, 0.1, num_items).astype(np.float32)))


@pytest.fixture(scope="module")
def fast() -> tuple[QuantizedItemModel, ItemModel, Int8FastRunner]:
    q = _model(NUM_ITEMS, DIM, seed=3)
    return q, q.dequantize(), Int8FastRunner.from_model(q, top_k=K)


def _ref(reference: ItemModel, user: NDArray[np.float32]) -> NDArray[np.float64]:
    return reference.item_embedding.astype(np.float64) @ user.astype(np.float64) + reference.item_bias


def test_graphs_store_the_table_once_in_int8_transposed() -> None:
    q = _model(50, 4, seed=0)
    models = build_int8_models(q, top_k=5)
    assert set(models) == {"score", "recommend"}
    for m in models.values():
        big = [t for t in m.graph.initializer if t.name == TABLE_T]
        assert len(big) == 1 and big[0].data_type == onnx.TensorProto.INT8 and list(big[0].dims) == [4, 50]
        assert not any(t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2 for t in m.graph.initializer)
        nodes = all_nodes(m.graph)
        assert "MatMulInteger" in {n.op_type for n in nodes}
        assert not ({"DequantizeLinear"} & {n.op_type for n in nodes})
        # The table is only gathered (int8) or multiplied in integers: never cast to float32 whole.
        assert {n.op_type for n in nodes if TABLE_T in n.input} <= {"Gather", "MatMulInteger"}
    np.testing.assert_array_equal(transposed_table(q), q.item_embedding.T)


@pytest.mark.parametrize("n", [1, 23, NUM_ITEMS])
def test_score_parity(fast: tuple[QuantizedItemModel, ItemModel, Int8FastRunner], n: int) -> None:
    _, ref, runner = fast
    rng = np.random.default_rng(n)
    user = rng.normal(size=DIM).astype(np.float32)
    ids = rng.permutation(NUM_ITEMS)[:n].astype(np.int32)
    got = runner.score(user, ids)
    assert got.dtype == np.float32 and got.shape == (n,)
    err = float(np.max(np.abs(got - _ref(ref, user)[ids])))
    assert err <= 1e-3  # two-level quantization: far inside the 2e-2 int8 tolerance


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(1e-3, 1e2), seed=st.integers(0, 2**16))
def test_two_level_error_scales_with_the_user_norm(
    fast: tuple[QuantizedItemModel, ItemModel, Int8FastRunner], scale: float, seed: int
) -> None:
    # One int8 level alone gives about |V|·max|u|/254; two levels about 1/127 of that.
    _, ref, runner = fast
    user = (np.random.default_rng(seed).normal(size=DIM) * scale).astype(np.float32)
    got = runner.score(user, np.arange(NUM_ITEMS, dtype=np.int32))
    bound = np.abs(ref.item_embedding).sum(1).max() * float(np.abs(user).max()) / 254 / 64 + 1e-5 * (1 + scale)
    assert float(np.max(np.abs(got - _ref(ref, user)))) <= bound


def test_zero_user_scores_are_the_bias(fast: tuple[QuantizedItemModel, ItemModel, Int8FastRunner]) -> None:
    q, _, runner = fast
    got = runner.score(np.zeros(DIM, np.float32), np.arange(NUM_ITEMS, dtype=np.int32))
    np.testing.assert_array_equal(got, q.item_bias)


@pytest.mark.parametrize("excluded", [0, 60, NUM_ITEMS - 3])
def test_recommend_parity(fast: tuple[QuantizedItemModel, ItemModel, Int8FastRunner], excluded: int) -> None:
    _, ref, runner = fast
    rng = np.random.default_rng(excluded)
    user = rng.normal(size=DIM).astype(np.float32)
    mask = np.zeros(NUM_ITEMS, np.float32)
    mask[rng.choice(NUM_ITEMS, excluded, replace=False)] = -np.inf
    top_ids, top_scores = runner.recommend(user, mask)
    assert top_ids.dtype == np.int32 and top_ids.shape == top_scores.shape == (K,)
    full = _ref(ref, user) + mask
    want = np.argsort(-full, kind="stable")[:K]
    eligible = min(K, NUM_ITEMS - excluded)
    assert set(top_ids[:eligible].tolist()) == set(want[:eligible].tolist())
    np.testing.assert_allclose(top_scores[:eligible], full[top_ids[:eligible]], atol=TOL)
    assert np.all(np.isneginf(top_scores[eligible:]))


def test_recommend_ties_go_to_the_lower_index() -> None:
    zero = quantize_int8(ItemModel(np.zeros((30, 4), np.float32), np.zeros(30, np.float32)))
    runner = Int8FastRunner.from_model(zero, top_k=8)
    mask = np.zeros(30, np.float32)
    mask[[0, 2, 5]] = -np.inf
    top_ids, top_scores = runner.recommend(np.ones(4, np.float32), mask)
    np.testing.assert_array_equal(top_ids, [1, 3, 4, 6, 7, 8, 9, 10])
    np.testing.assert_array_equal(top_scores, np.zeros(8, np.float32))


def test_10k_catalog_top10_equals_the_reference() -> None:
    q = _model(10_000, 32, seed=5)
    ref = q.dequantize()
    runner = Int8FastRunner.from_model(q)
    rng = np.random.default_rng(1)
    for _ in range(5):
        user = rng.normal(size=32).astype(np.float32)
        top_ids, top_scores = runner.recommend(user, np.zeros(10_000, np.float32))
        full = _ref(ref, user)
        np.testing.assert_array_equal(top_ids, np.argsort(-full, kind="stable")[:10])
        assert float(np.max(np.abs(top_scores - full[top_ids]))) <= 1e-3


def test_refuses_a_float_model_and_a_bad_top_k() -> None:
    with pytest.raises(TypeError, match=r"`model` must be a QuantizedItemModel\. Found ItemModel\."):
        build_int8_models(_model(5, 2, seed=0).dequantize())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`top_k` must be an int in \[1, 5\] \(the number of items\)\. Found 6\."):
        build_int8_models(_model(5, 2, seed=0), top_k=6)


def test_float_fast_path_matches_the_float_reference() -> None:
    """The float32 graphs (user as a [d, 1] column) meet the float32 tolerance 1e-4."""
    rng = np.random.default_rng(9)
    model = ItemModel(rng.normal(0, 0.3, (300, 16)).astype(np.float32), rng.normal(0, 0.1, 300).astype(np.float32))
    runner = Int8FastRunner.from_model(model, top_k=K)
    ops = {n.op_type for m in build_fast_models(model).values() for n in all_nodes(m.graph)}
    assert "MatMulInteger" not in ops and "MatMul" in ops
    user = rng.normal(size=16).astype(np.float32)
    full = _ref(model, user)
    ids = np.array([299, 0, 17, 17], np.int32)
    assert float(np.max(np.abs(runner.score(user, ids) - full[ids]))) <= 1e-4
    mask = np.zeros(300, np.float32)
    mask[np.argsort(-full)[:3]] = -np.inf  # exclude the 3 best
    top_ids, top_scores = runner.recommend(user, mask)
    np.testing.assert_array_equal(top_ids, np.argsort(-(full + mask), kind="stable")[:K])
    assert float(np.max(np.abs(top_scores - full[top_ids]))) <= 1e-4


BIG = 5000  # int8: by id for N <= 19 (N * 256 < 5000); float32: by id for N <= 312 (N * 16 < 5000)
Big = dict[str, tuple[ItemModel | QuantizedItemModel, Int8FastRunner]]


@pytest.fixture(scope="module")
def big() -> Big:
    """A 5000 x 8 model in both precisions with its fast runner (read-only: ``run`` mutates nothing)."""
    q = _model(BIG, 8, seed=11)
    return {
        "int8": (q, Int8FastRunner.from_model(q, top_k=K)),
        "float32": (q.dequantize(), Int8FastRunner.from_model(q.dequantize(), top_k=K)),
    }


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_int8_score_is_the_same_by_id_and_by_scan(big: Big, n: int, seed: int) -> None:
    """``score`` takes the per-id branch for N * 256 < num_items and the catalog scan otherwise: same values."""
    model, runner = big["int8"]
    rng = np.random.default_rng(seed)
    user = rng.normal(size=8).astype(np.float32)
    everything = runner.score(user, np.arange(BIG, dtype=np.int32))  # N = num_items: the scan
    ids = rng.integers(0, BIG, n).astype(np.int32)
    got = runner.score(user, ids)
    assert got.shape == (n,)
    np.testing.assert_array_equal(got, everything[ids])  # same quantized user, same float32 ops per output
    assert isinstance(model, QuantizedItemModel)
    assert n == 0 or float(np.max(np.abs(got - _ref(model.dequantize(), user)[ids]))) <= 1e-3


@pytest.mark.parametrize("n", [0, 1, 300, 312, 313, BIG])
def test_float_score_is_the_same_by_id_and_by_scan(big: Big, n: int) -> None:
    """float32 ``score``: gathered rows for N * 16 < num_items, else the catalog scan; both meet 1e-5."""
    model, runner = big["float32"]
    assert isinstance(model, ItemModel)
    rng = np.random.default_rng(n)
    user = rng.normal(size=8).astype(np.float32)
    ids = rng.integers(0, BIG, n).astype(np.int32)
    got = runner.score(user, ids)
    np.testing.assert_allclose(got, _ref(model, user)[ids], atol=1e-5, rtol=0)
    scan = runner.score(user, np.arange(BIG, dtype=np.int32))[ids]
    np.testing.assert_allclose(got, scan, atol=1e-6, rtol=0)


def test_score_graph_branches_on_n_with_the_documented_ratio() -> None:
    assert (INT8_SCAN_RATIO, FLOAT_SCAN_RATIO) == (256, 16)
    for model, ratio in ((_model(60, 4, seed=0), INT8_SCAN_RATIO), (_model(60, 4, seed=0).dequantize(), FLOAT_SCAN_RATIO)):
        score = build_fast_models(model, top_k=5)["score"].graph
        (if_node,) = [n for n in score.node if n.op_type == "If"]
        branches = {a.name: {n.op_type for n in a.g.node} for a in if_node.attribute}
        assert set(branches) == {"then_branch", "else_branch"}
        assert {"Gather", "GatherElements"} <= branches["then_branch"]  # rows by id; 1-D scale/bias by id
        assert "GatherElements" in branches["else_branch"] and "Gather" not in branches["else_branch"]  # 1-D: the fast op
        value = next(t for t in score.initializer if t.name == f"scan_ratio_{ratio}")
        assert onnx.numpy_helper.to_array(value).tolist() == [ratio]
