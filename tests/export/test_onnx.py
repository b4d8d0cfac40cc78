"""The ONNX exporter and its onnxruntime runner (export/onnx.py), against numpy and golden values."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx_nodes import all_nodes

from privrec.export import ExportConfig, get_exporter, get_runner_factory
from privrec.export.bundle import export_onnx
from privrec.export.onnx import GRAPH_FILES, OPSET, WEIGHTS_FILE, OnnxRunner
from privrec.export.onnx_int8 import TABLE_T, TABLE_U8
from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import QuantizedItemModel, quantize_int8
from privrec.sdk.reconstruct import finetune_reference


def _runner(model: ItemModel | QuantizedItemModel, out: Path, **config: int) -> OnnxRunner:
    record = get_exporter("onnx")(model, out, ExportConfig(**config))
    runner = get_runner_factory("onnx")(out, record)
    assert isinstance(runner, OnnxRunner)
    return runner


def _assert_top_k_up_to_ties(ids: np.ndarray, scores: np.ndarray, full: np.ndarray, k: int, tol: float) -> None:
    """``ids`` is the stable top-``k`` of ``full`` except among items within ``tol`` of the K-th score."""
    want = np.argsort(-full, kind="stable")[:k]
    kth = full[want[-1]]
    assert set(want[full[want] > kth + tol].tolist()) <= set(ids.tolist())
    assert np.all(full[ids] >= kth - tol)
    np.testing.assert_allclose(scores, full[ids], atol=tol, rtol=0)


def _artifact_bytes(out: Path) -> int:
    return sum((out / f).stat().st_size for f in (*GRAPH_FILES.values(), WEIGHTS_FILE))


def test_golden_values_on_a_hand_made_model(tmp_path: Path) -> None:
    # V rows 0 and 3 are identical, so items 0 and 3 tie: the lower index must come first.
    V = np.array([[1, 0], [0, 1], [1, 1], [1, 0]], np.float32)
    b = np.array([0.0, 0.5, -1.0, 0.0], np.float32)
    r = _runner(ItemModel(V, b), tmp_path, top_k=3, finetune_steps=1)
    u = np.array([2, 3], np.float32)
    np.testing.assert_array_equal(r.score(u, np.array([0, 1, 2, 3], np.int32)), [2.0, 3.5, 4.0, 2.0])
    ids, scores = r.recommend(u, np.zeros(4, np.float32))
    assert ids.dtype == np.int32
    assert ids.tolist() == [2, 1, 0] and scores.tolist() == [4.0, 3.5, 2.0]
    ids, scores = r.recommend(u, np.array([0, 0, -np.inf, 0], np.float32))
    assert ids.tolist() == [1, 0, 3] and scores.tolist() == [3.5, 2.0, 2.0]
    # One step from u = 0 on item 1 alone: softmax of one score is 1, so the CE gradient is 0 and only
    # the L2 term (zero at u = 0) remains; the loss is 0 (log 1) + 0.
    out, loss = r.finetune(
        np.zeros(2, np.float32),
        np.array([1], np.int32),
        np.ones(1, np.float32),
        np.ones(1, np.float32),
        np.zeros(1, np.float32),
    )
    np.testing.assert_array_equal(out, [0.0, 0.0])
    np.testing.assert_allclose(loss, [0.0], atol=1e-7)
    # Two items, u = 0: p = softmax([0, 0.5]), y = [1, 0]; u1 = -lr * V^T (p - y).
    p = np.exp([0.0, 0.5]) / np.exp([0.0, 0.5]).sum()
    expected = -(V[[0, 1]].T @ (p - [1.0, 0.0]))
    out, _ = r.finetune(
        np.zeros(2, np.float32),
        np.array([0, 1], np.int32),
        np.array([1, 0], np.float32),
        np.ones(1, np.float32),
        np.zeros(1, np.float32),
    )
    np.testing.assert_allclose(out, expected, atol=1e-7)


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_parity_with_numpy_over_dynamic_n_and_m(tmp_path: Path, small_model: ItemModel, precision: str) -> None:
    model: ItemModel | QuantizedItemModel = small_model if precision == "float32" else quantize_int8(small_model)
    ref = small_model if precision == "float32" else quantize_int8(small_model).dequantize()
    r = _runner(model, tmp_path, top_k=10, finetune_steps=7)
    # float32: only float32 rounding. int8: the graph quantizes the user in two int8 levels (error about
    # |V_i|_1 * max|u| / 254 / 127 < 1e-3 here), far inside the 2e-2 int8 tolerance of docs/BUNDLE.md.
    tol = 1e-5 if precision == "float32" else 1e-3
    rng = np.random.default_rng(1)
    n = ref.num_items
    for _ in range(3):
        u = rng.normal(size=ref.dim).astype(np.float32)
        for ids in (np.array([5]), rng.choice(n, 13, replace=False), np.arange(n)):
            got = r.score(u, ids.astype(np.int32))
            np.testing.assert_allclose(got, ref.score(u, ids), atol=tol, rtol=0)
        exclude = rng.choice(n, 9, replace=False)
        mask = np.zeros(n, np.float32)
        mask[exclude] = -np.inf
        ids, scores = r.recommend(u, mask)
        want_ids, want_scores = ref.recommend(u, 10, exclude)
        if precision == "float32":
            assert ids.tolist() == want_ids.tolist()
            np.testing.assert_allclose(scores, want_scores, atol=tol, rtol=0)
        full = ref.item_embedding.astype(np.float64) @ u.astype(np.float64) + ref.item_bias + mask
        _assert_top_k_up_to_ties(ids, scores, full, 10, tol)
        for m in (1, 11, n):
            cand = rng.choice(n, m, replace=False)
            labels = rng.random(m).astype(np.float32) + 0.1
            out, loss = r.finetune(u, cand.astype(np.int32), labels, np.array([0.5], np.float32), np.array([0.01], np.float32))
            want_u, want_loss = finetune_reference(
                u,
                ref.item_embedding,
                ref.item_bias,
                cand,
                labels,
                lr=float(np.float32(0.5)),
                l2=float(np.float32(0.01)),
                steps=7,
            )
            np.testing.assert_allclose(out, want_u, atol=2e-5, rtol=0)
            assert loss.shape == (1,) and abs(float(loss[0]) - want_loss) < 2e-5


@pytest.mark.parametrize(("dim", "standard_ops"), [(8, False), (32, False), (32, True)])
def test_int8_table_is_stored_once_in_its_kernel_s_layout_and_never_dequantized_whole(
    tmp_path: Path, make_model: Callable[..., ItemModel], dim: int, standard_ops: bool
) -> None:
    """d = 32: uint8 rows read by MatMulNBits; d = 8 or ``onnx_standard_ops``: the int8 table transposed, read
    by MatMulInteger. Either way the table is only gathered or multiplied in integers, and the manifest
    records the kernel (the runner prepacks MatMulNBits weights only)."""
    model = quantize_int8(make_model(200, dim, seed=0))
    record = get_exporter("onnx")(model, tmp_path, ExportConfig(onnx_standard_ops=standard_ops))
    n, d = model.num_items, model.dim
    kernel = "MatMulNBits" if dim >= 16 and not standard_ops else "MatMulInteger"
    assert record.details["int8_kernel"] == kernel
    table = TABLE_U8 if kernel == "MatMulNBits" else TABLE_T
    for signature, file in GRAPH_FILES.items():
        graph = onnx.load(str(tmp_path / file), load_external_data=False).graph
        inits = {t.name: t for t in graph.initializer}
        assert "item_embedding" not in inits and ({TABLE_U8, TABLE_T} - {table}).isdisjoint(inits), signature
        want = (TensorProto.UINT8, [n, 1, d]) if table == TABLE_U8 else (TensorProto.INT8, [d, n])
        assert (inits[table].data_type, list(inits[table].dims)) == want
        assert inits[table].data_location == TensorProto.EXTERNAL
        assert inits["item_scale"].data_type == TensorProto.FLOAT
        assert not [t.name for t in inits.values() if t.data_type == TensorProto.FLOAT and len(t.dims) == 2]
        nodes = all_nodes(graph)
        readers = {node.op_type for node in nodes if table in node.input}
        assert readers and readers <= {"Gather", kernel}, (signature, readers)
        if signature != "finetune":
            assert kernel in {node.op_type for node in nodes}, signature
    finetune = onnx.load(str(tmp_path / GRAPH_FILES["finetune"]), load_external_data=False).graph
    gather = next(node for node in finetune.node if node.op_type == "Gather" and node.input[0] == table)
    after = next(node for node in finetune.node if gather.output[0] in node.input)
    if table == TABLE_U8:  # rows [M, 1, d] -> [M, d], then cast
        assert after.op_type == "Reshape"
        after = next(node for node in finetune.node if after.output[0] in node.input)
    assert after.op_type == "Cast"
    # int8 table + float32 scale + float32 bias, each 64-byte aligned.
    assert (tmp_path / WEIGHTS_FILE).stat().st_size <= n * d + 4 * n + 4 * n + 2 * 64
    loaded = {t.name: t for t in onnx.load(str(tmp_path / GRAPH_FILES["score"])).graph.initializer}  # reads model.onnx.data
    stored = onnx.numpy_helper.to_array(loaded[table]).astype(np.int16)
    np.testing.assert_array_equal(stored.reshape(n, d) - 128 if table == TABLE_U8 else stored.T, model.item_embedding)


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_score_is_the_same_for_short_and_long_id_lists(
    tmp_path: Path, make_model: Callable[..., ItemModel], precision: str
) -> None:
    """``score`` gathers per id when N * ratio < num_items (int8 ratio 256, float32 16), else scans: same values."""
    base = make_model(4000, 8, seed=2)
    model: ItemModel | QuantizedItemModel = base if precision == "float32" else quantize_int8(base)
    ref = base if precision == "float32" else quantize_int8(base).dequantize()
    r = _runner(model, tmp_path)
    u = np.random.default_rng(0).normal(size=8).astype(np.float32)
    everything = r.score(u, np.arange(4000, dtype=np.int32))
    full = ref.item_embedding.astype(np.float64) @ u.astype(np.float64) + ref.item_bias
    for n in (0, 1, 15, 16, 249, 250, 251, 4000):  # int8 by id for N <= 15; float32 for N <= 249
        ids = np.random.default_rng(n).integers(0, 4000, n).astype(np.int32)
        got = r.score(u, ids)
        assert got.shape == (n,)
        np.testing.assert_allclose(got, full[ids], atol=1e-5 if precision == "float32" else 1e-3, rtol=0)
        # int8: by id is exact float32, the scan two-level (error about 1e-4): equal within the scan's error.
        np.testing.assert_allclose(got, everything[ids], atol=1e-6 if precision == "float32" else 1e-3, rtol=0)


@pytest.mark.parametrize(("precision", "short", "long"), [("float32", 249, 250), ("int8", 15, 16)])
def test_score_runs_the_by_id_branch_only_for_short_lists(
    tmp_path: Path, make_model: Callable[..., ItemModel], precision: str, short: int, long: int
) -> None:
    """onnxruntime's profile shows which ``If`` branch ran: by id gathers rows, scale and bias; the scan gathers once.

    (1-D gathers are ``GatherElements``, 12x faster than ``Gather`` in onnxruntime 1.32; both are counted.)"""
    base = make_model(4000, 8)
    export_onnx(base if precision == "float32" else quantize_int8(base), tmp_path)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session = ort.InferenceSession(str(tmp_path / GRAPH_FILES["score"]), options, providers=["CPUExecutionProvider"])
    for n in (1, short, long, 4000):
        session.run(None, {"user": np.ones(8, np.float32), "item_ids": np.arange(n, dtype=np.int32)})
    gathers, runs = 0, []
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            gathers += event["args"]["op_name"] in ("Gather", "GatherElements")
        elif event.get("name") == "model_run":
            runs.append(gathers)
            gathers = 0
    by_id = 2 if precision == "float32" else 3  # rows (float32 or uint8) + bias (+ int8 scale)
    assert runs == [by_id, by_id, 1, 1]


def test_three_graphs_share_one_weights_file(tmp_path: Path, small_model: ItemModel) -> None:
    export_onnx(small_model, tmp_path, top_k=4, finetune_steps=6)
    for signature, name in GRAPH_FILES.items():
        model = onnx.load(str(tmp_path / name), load_external_data=False)
        assert model.opset_import[0].version == OPSET
        locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
        assert locations == {WEIGHTS_FILE}, signature
        assert (tmp_path / name).stat().st_size < 16_000  # graphs only; the weights live once
    finetune = onnx.load(str(tmp_path / GRAPH_FILES["finetune"]), load_external_data=False).graph
    assert sum(n.op_type == "Softmax" for n in finetune.node) == 6  # steps unrolled
    recommend = onnx.load(str(tmp_path / GRAPH_FILES["recommend"]), load_external_data=False).graph
    assert [d.dim_value for d in recommend.output[0].type.tensor_type.shape.dim] == [4]
    score = onnx.load(str(tmp_path / GRAPH_FILES["score"]), load_external_data=False).graph
    assert [(i.name, i.type.tensor_type.elem_type) for i in score.input] == [
        ("user", TensorProto.FLOAT),
        ("item_ids", TensorProto.INT32),
    ]
    assert score.input[1].type.tensor_type.shape.dim[0].dim_param == "N"


def test_int8_artifact_is_at_most_030_of_float32(tmp_path: Path, make_model: Callable[..., ItemModel]) -> None:
    """int8 + f32 scale + f32 bias costs (d + 8) bytes per item vs 4d + 4: <= 0.30 needs d >= 34."""
    model = make_model(2000, 64)
    export_onnx(model, tmp_path / "f32")
    export_onnx(model, tmp_path / "i8", precision="int8")
    ratio = _artifact_bytes(tmp_path / "i8") / _artifact_bytes(tmp_path / "f32")
    assert ratio <= 0.30, ratio
    # At d = 32 the weights alone give 40 / 132 = 0.303: measured, not promised.
    small = make_model(2000, 32)
    export_onnx(small, tmp_path / "f32_32")
    export_onnx(small, tmp_path / "i8_32", precision="int8")
    weights_ratio = (tmp_path / "i8_32" / WEIGHTS_FILE).stat().st_size / (tmp_path / "f32_32" / WEIGHTS_FILE).stat().st_size
    assert abs(weights_ratio - 40 / 132) < 1e-3


def test_runner_uses_one_thread_by_default(tmp_path: Path, small_model: ItemModel) -> None:
    r = _runner(small_model, tmp_path)
    for session in r._sessions.values():
        opts = session.get_session_options()
        assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1


def test_top_k_larger_than_the_catalog_is_refused(tmp_path: Path, make_model: Callable[..., ItemModel]) -> None:
    with pytest.raises(ValueError, match=r"`top_k` must be <= num_items \(5\)\. Found 10\."):
        get_exporter("onnx")(make_model(5, 3), tmp_path, ExportConfig(top_k=10))


def test_empty_item_ids_give_empty_scores(tmp_path: Path, small_model: ItemModel) -> None:
    r = _runner(small_model, tmp_path)
    assert r.score(np.ones(8, np.float32), np.zeros(0, np.int32)).shape == (0,)


@pytest.mark.parametrize("standard_ops", [False, True])
def test_runner_prepacks_only_the_matmulnbits_scans(
    tmp_path: Path, make_model: Callable[..., ItemModel], standard_ops: bool
) -> None:
    """MatMulNBits has its integer kernel only on prepacked weights: the int8 score and recommend sessions of
    a MatMulNBits bundle prepack; everything else (MatMulInteger, finetune, float32) does not."""
    model = quantize_int8(make_model(300, 32, seed=1))
    record = get_exporter("onnx")(model, tmp_path, ExportConfig(onnx_standard_ops=standard_ops))
    runner = get_runner_factory("onnx")(tmp_path, record)
    assert isinstance(runner, OnnxRunner)
    for name, session in runner._sessions.items():
        try:
            disabled = session.get_session_options().get_session_config_entry("session.disable_prepacking")
        except RuntimeError:  # onnxruntime raises for a key never set: prepacking on (its default)
            disabled = ""
        assert disabled == ("1" if standard_ops or name == "finetune" else ""), (name, disabled)
