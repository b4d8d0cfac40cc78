"""The ONNX int8 fast path: full-catalog scoring that never dequantizes the item table.

:mod:`privrec.export.onnx` (int8) computes ``V = cast(q) * scale`` over the whole table on every
``recommend`` call: a float32 copy of the table (4 bytes per weight written, then read again) before the
product. This module builds the same signatures from integer kernels instead:

- the item table is stored **transposed**, ``item_embedding_t int8[d, num_items]`` (``TABLE_T``): onnxruntime's
  ``MatMulInteger`` (MLAS u8s8 GEMM) runs ``[2, d] x [d, n]`` about 3x faster than ``[n, d] x [d, 1]``
  (0.27 ms vs 0.83 ms for 100k x 32, one thread, onnxruntime 1.32), because the packed operand is then
  the 2-row user block, not the table;
- the user vector is quantized **in two levels** (``hi = round(u / s1)``, ``s1 = max|u| / 127``, then the
  residual ``r = u - s1 * hi``, ``|r| ≤ s1 / 2``, with the fixed scale ``s2 = s1 / 254``), stacked as a
  uint8 ``[2, d]`` block with zero point 128, so one pass over the int8 table gives
  ``u · q_i ≈ s1 (hi · q_i) + s2 (lo · q_i)`` with a relative error of about ``1 / 127²`` instead of
  ``1 / 127`` (max abs error 5e-5 vs 1.3e-2 at d = 32 with ``u ~ N(0, 1)``: a plain
  ``DynamicQuantizeLinear`` is too close to the 2e-2 int8 tolerance);
- the per-row scale is applied to the ``n`` outputs, never to the ``n x d`` table:
  ``scores = (s1 * acc[0] + s2 * acc[1]) * item_scale + item_bias``.

All ops are standard ONNX (opset 17: ``Abs``, ``ReduceMax``, ``Round``, ``Cast``, ``MatMulInteger``,
``TopK``, …), so onnxruntime mobile runs them; ``com.microsoft`` ``MatMulIntegerToFloat`` and
``DynamicQuantizeMatMul`` were measured slower here (0.99 / 0.93 ms vs 0.82 ms for the single-level
``MatMulInteger`` graph).

Wired into :mod:`privrec.export.onnx` (the graph builders take any object with ``op``, ``op_multi``,
``const`` and ``output`` like its ``_Graph``): the int8 bundle stores :func:`transposed_table` as the
initializer ``TABLE_T`` instead of ``item_embedding``, builds ``score`` with :func:`add_int8_score`,
``recommend`` with :func:`add_int8_recommend`, and takes ``finetune``'s rows from :func:`int8_rows`.
float32 has the same kind of fix (:func:`add_float_score`, :func:`add_float_recommend`): the user vector as
a ``[d, 1]`` column instead of a 1-D input to ``MatMul``. ``score`` (both precisions) branches on ``N``
with an ``If``: per id for short lists, one catalog scan for long ones (:func:`add_int8_score`).
:func:`build_fast_models` builds the same ``score``/``recommend`` graphs as standalone models (weights
embedded; the tests and the size benchmark use them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import QuantizedItemModel

__all__ = [
    "FLOAT_SCAN_RATIO",
    "INT8_SCAN_RATIO",
    "OPSET",
    "TABLE_T",
    "GraphBuilder",
    "Int8FastRunner",
    "add_float_recommend",
    "add_float_score",
    "add_int8_recommend",
    "add_int8_score",
    "build_fast_models",
    "build_int8_models",
    "float_catalog_scores",
    "int8_catalog_scores",
    "int8_rows",
    "transposed_table",
]

OPSET = 17
TABLE_T = "item_embedding_t"
_ZERO_POINT = 128  # uint8 zero point: symmetric int8 values shifted into [1, 255]
INT8_SCAN_RATIO = 256  # int8 `score` scans the catalog once N >= num_items / 256 (see add_int8_score)
FLOAT_SCAN_RATIO = 16  # float32 `score` scans the catalog once N >= num_items / 16 (see add_float_score)


class GraphBuilder(Protocol):
    """What the builders need (``privrec.export.onnx._Graph`` has exactly these methods)."""

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str: ...

    def op_multi(self, op_type: str, inputs: Sequence[str], n_out: int, **attrs: Any) -> list[str]: ...

    def const(self, name: str, value: NDArray[Any]) -> str: ...

    def output(self, src: str, name: str) -> None: ...


def transposed_table(model: QuantizedItemModel) -> NDArray[np.int8]:
    """``item_embedding.T`` as a contiguous ``int8[d, num_items]`` (the ``TABLE_T`` initializer)."""
    if not isinstance(model, QuantizedItemModel):
        raise TypeError(f"`model` must be a QuantizedItemModel. Found {type(model).__name__}.")
    return np.ascontiguousarray(model.item_embedding.T)


class _Branch:
    """A :class:`GraphBuilder` for an ``If`` branch: its own nodes (names prefixed), constants in the parent graph.

    ONNX subgraphs may read outer-scope values, so the branch uses the parent's initializers (the weights,
    and the small constants it adds through ``const``) directly.
    """

    def __init__(self, parent: GraphBuilder, prefix: str) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self._parent = parent
        self._prefix = prefix
        self._count = 0

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._count += 1
        out = f"{self._prefix}_{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def op_multi(self, op_type: str, inputs: Sequence[str], n_out: int, **attrs: Any) -> list[str]:
        self._count += 1
        outs = [f"{self._prefix}_{op_type.lower()}_{self._count}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs

    def const(self, name: str, value: NDArray[Any]) -> str:
        return self._parent.const(name, value)

    def output(self, src: str, name: str) -> None:
        self.nodes.append(helper.make_node("Identity", [src], [name]))

    def graph(self, src: str) -> onnx.GraphProto:
        """The branch as a subgraph with one float32 output (``{prefix}_out``) taken from ``src``."""
        out = f"{self._prefix}_out"
        self.output(src, out)
        return helper.make_graph(self.nodes, self._prefix, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])


def _if_short_list(
    g: GraphBuilder, by_id: Callable[[GraphBuilder], str], scan: Callable[[GraphBuilder], str], *, ratio: int
) -> str:
    """``If(N * ratio < num_items, by_id, scan)``: ``N`` from ``item_ids``, ``num_items`` from ``item_bias``."""
    n_ids = g.op("Mul", g.op("Shape", "item_ids"), g.const(f"scan_ratio_{ratio}", np.array([ratio], np.int64)))
    short = g.op("Less", n_ids, g.op("Shape", "item_bias"))  # bool [1]
    cond = g.op("Squeeze", short, g.const("axes_0", np.array([0], np.int64)))
    then_b, else_b = _Branch(g, "by_id"), _Branch(g, "scan")
    return g.op("If", cond, then_branch=then_b.graph(by_id(then_b)), else_branch=else_b.graph(scan(else_b)))


def _user_block(g: GraphBuilder, user: str, dim: int) -> tuple[str, str]:
    """Two-level quantization of ``user``: ``(uint8 [2, d] (zero point 128), scales f32 [2])``, ``u ≈ scales @ (block - 128)``.

    ``x = u / s1`` with ``s1 = max|u| / 127``; ``hi = round(x)``; ``lo = round(254 (x - hi))``, so
    ``u ≈ s1 hi + (s1 / 254) lo``. ``|x - hi| ≤ ½`` keeps ``lo`` in ``[-127, 127]``, and the error bound,
    ``s1 / 508`` per coordinate, is the one a second measured scale ``max|r| / 127`` would give in the
    worst case — with 14 graph nodes instead of 23 (about 1.5 us each in onnxruntime).
    """
    peak = g.op("Max", g.op("ReduceMax", g.op("Abs", user), keepdims=1), g.const("tiny", np.array([1e-30], np.float32)))
    s1 = g.op("Div", peak, g.const("c127", np.array([127.0], np.float32)))  # [1]
    x = g.op("Div", user, s1)  # [d], in [-127, 127]
    hi = g.op("Round", x)
    lo = g.op("Round", g.op("Mul", g.op("Sub", x, hi), g.const("c254", np.array([254.0], np.float32))))
    levels = g.op("Reshape", g.op("Concat", hi, lo, axis=0), g.const("shape_2_d", np.array([2, dim], np.int64)))
    shifted = g.op("Add", levels, g.const("c128", np.array([float(_ZERO_POINT)], np.float32)))
    block = g.op("Cast", shifted, to=TensorProto.UINT8)
    scales = g.op("Mul", s1, g.const("level_scales", np.array([1.0, 1.0 / 254.0], np.float32)))  # [2]
    return block, scales


def _dots(g: GraphBuilder, user: str, table_t: str, dim: int) -> str:
    """``f32[N]``: ``q[:, j] · user`` for every column ``j`` of the int8 ``table_t [d, N]`` (no row scale)."""
    block, scales = _user_block(g, user, dim)
    zero_point = g.const("u_zero_point", np.array(_ZERO_POINT, np.uint8))
    acc = g.op("Cast", g.op("MatMulInteger", block, table_t, zero_point), to=TensorProto.FLOAT)  # [2, N]
    return g.op("MatMul", scales, acc)  # [2] x [2, N] -> [N]


def int8_catalog_scores(
    g: GraphBuilder, *, dim: int, user: str = "user", scale: str = "item_scale", bias: str = "item_bias"
) -> str:
    """``f32[num_items]``: ``V · user + b`` over the whole catalog from ``TABLE_T``, table never dequantized."""
    return g.op("Add", g.op("Mul", _dots(g, user, TABLE_T, dim), scale), bias)


def take_1d(g: GraphBuilder, data: str, ids: str) -> str:
    """``data[ids]`` for a 1-D ``data`` and 1-D ``ids``, as ``GatherElements``.

    Same result as ``Gather(axis=0)`` for 1-D operands, but onnxruntime 1.32's ``Gather`` copies one
    element at a time through its generic block copy: 0.80 ms for 100k float32 by 100k ids, against
    0.066 ms for ``GatherElements`` (one thread). The whole-catalog ``score`` paid that on every call.
    """
    return g.op("GatherElements", data, ids, axis=0)


def _int8_scores_by_id(g: GraphBuilder, *, dim: int) -> str:
    """``f32[N]``: ``V[item_ids] · user + b[item_ids]`` from the gathered int8 columns of ``TABLE_T`` (``[d, N]``)."""
    cols = g.op("Gather", TABLE_T, "item_ids", axis=1)
    scale = take_1d(g, "item_scale", "item_ids")
    return g.op("Add", g.op("Mul", _dots(g, "user", cols, dim), scale), take_1d(g, "item_bias", "item_ids"))


def add_int8_score(g: GraphBuilder, *, dim: int) -> None:
    """``score(user, item_ids) -> scores``: per id for a short list, by one catalog scan for a long one.

    An ``If`` on ``N`` (``N * INT8_SCAN_RATIO < num_items``, ``num_items`` read from ``item_bias``'s shape, so
    the graph has no baked-in catalog size) chooses between

    - **by id**: gather the ``N`` int8 columns of ``TABLE_T`` (``[d, N]``), one ``MatMulInteger`` with the
      user block, scale and bias gathered per id: about 15 us + 0.28 us per id at d = 32 (0.55 us at
      d = 64), i.e. about 9 ns per int8 element gathered from the transposed table;
    - **scan**: :func:`int8_catalog_scores` over the whole table, then :func:`take_1d` at ``item_ids``:
      about 0.15 ms (d = 32) / 0.21 ms (d = 64) at 100k items whatever ``N`` (plus under 1 ns per id of
      gather and copy), so it wins from ``N`` ≈ ``num_items / 200`` (d = 32) or ``/ 300`` (d = 64).

    Measured on onnxruntime 1.32, one thread, 100k / 10k / 1682 items. ``score`` is typically called on a
    short candidate list (tens to hundreds of ids: a re-rank), where the by-id branch is 5-10x faster
    than the scan at 100k items (17 us vs 0.15 ms for 10 ids), and on the whole catalog by
    ``score``-then-top-K callers, where the scan is 30x faster than the by-id branch (1.0 ms vs 30 ms).
    The ``If`` costs about 2-3 us. Both branches quantize the user identically and do the same
    float32 operations per output, so a score does not depend on the branch taken.
    """

    def scan(b: GraphBuilder) -> str:
        return take_1d(b, int8_catalog_scores(b, dim=dim), "item_ids")

    scores = _if_short_list(g, lambda b: _int8_scores_by_id(b, dim=dim), scan, ratio=INT8_SCAN_RATIO)
    g.output(scores, "scores")


def _add_top_k(g: GraphBuilder, scores: str, top_k: int) -> None:
    values, indices = g.op_multi("TopK", [scores, g.const("k", np.array([top_k], np.int64))], 2, axis=0, largest=1, sorted=1)
    g.output(g.op("Cast", indices, to=TensorProto.INT32), "top_ids")
    g.output(values, "top_scores")


def add_int8_recommend(g: GraphBuilder, *, dim: int, top_k: int) -> None:
    """``recommend(user, mask) -> top_ids, top_scores``; ``TopK`` keeps the lower index first on ties."""
    _add_top_k(g, g.op("Add", int8_catalog_scores(g, dim=dim), "mask"), top_k)


def int8_rows(g: GraphBuilder, ids: str) -> str:
    """``V[ids]`` as float32 ``[M, d]`` from ``TABLE_T`` (for ``finetune``: M is small, so dequantizing is cheap)."""
    cols = g.op("Cast", g.op("Gather", TABLE_T, ids, axis=1), to=TensorProto.FLOAT)  # [d, M]
    scale = g.op("Unsqueeze", g.op("Gather", "item_scale", ids, axis=0), g.const("axis_1", np.array([1], np.int64)))
    return g.op("Mul", g.op("Transpose", cols, perm=[1, 0]), scale)


def _column(g: GraphBuilder, user: str) -> str:
    return g.op("Unsqueeze", user, g.const("axis_1", np.array([1], np.int64)))


def float_catalog_scores(g: GraphBuilder, *, user: str = "user", table: str = "item_embedding", bias: str = "item_bias") -> str:
    """float32 ``V · user + b`` over the catalog, with ``user`` as a ``[d, 1]`` column.

    Not int8, but the same finding: onnxruntime 1.32 runs ``MatMul(V [n, d], u [d])`` (1-D second input, what
    :mod:`privrec.export.onnx` emitted before these builders) about 180x slower than ``MatMul(V, u [d, 1])`` (88 ms vs 0.48 ms
    for 100k x 32, one thread): the 1-D form misses the MLAS GEMV path.
    """
    dots = g.op("Reshape", g.op("MatMul", table, _column(g, user)), g.const("shape_flat", np.array([-1], np.int64)))
    return g.op("Add", dots, bias)


def _float_scores_by_id(g: GraphBuilder) -> str:
    rows = g.op("Gather", "item_embedding", "item_ids", axis=0)
    dots = g.op("Reshape", g.op("MatMul", rows, _column(g, "user")), g.const("shape_flat", np.array([-1], np.int64)))
    return g.op("Add", dots, take_1d(g, "item_bias", "item_ids"))


def add_float_score(g: GraphBuilder) -> None:
    """float32 ``score``: rows gathered then ``MatMul`` with the ``[d, 1]`` user column, or a catalog scan for long lists.

    The same ``If`` on ``N`` as :func:`add_int8_score`, with ``FLOAT_SCAN_RATIO``: gathering float32 rows
    costs about 27 ns per id at d = 32 while the ``[N, d]`` copy stays in cache, then up to 75 ns per id
    (7.6 ms for 100k ids at 100k x 32), against about 0.4 ms for the catalog scan plus :func:`take_1d`
    (onnxruntime 1.32, one thread); the scan wins from ``N`` ≈ ``num_items / 10`` (100k) to ``num_items / 4`` (10k).
    """
    scores = _if_short_list(
        g, _float_scores_by_id, lambda b: take_1d(b, float_catalog_scores(b), "item_ids"), ratio=FLOAT_SCAN_RATIO
    )
    g.output(scores, "scores")


def add_float_recommend(g: GraphBuilder, *, top_k: int) -> None:
    """float32 ``recommend`` over :func:`float_catalog_scores`."""
    _add_top_k(g, g.op("Add", float_catalog_scores(g), "mask"), top_k)


class OnnxGraph:
    """A tiny :class:`GraphBuilder`: nodes get unique output names, small constants become initializers.

    Used by :mod:`privrec.export.onnx` for the shipped graphs and here for standalone models.
    """

    def __init__(self, initializers: Sequence[TensorProto]) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers = list(initializers)
        self._count = 0

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._count += 1
        out = f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def op_multi(self, op_type: str, inputs: Sequence[str], n_out: int, **attrs: Any) -> list[str]:
        self._count += 1
        outs = [f"{op_type.lower()}_{self._count}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs

    def const(self, name: str, value: NDArray[Any]) -> str:
        if not any(t.name == name for t in self.initializers):
            self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def output(self, src: str, name: str) -> None:
        self.nodes.append(helper.make_node("Identity", [src], [name]))


def build_int8_models(model: QuantizedItemModel, *, top_k: int = 10) -> dict[str, onnx.ModelProto]:
    """Standalone ``score`` and ``recommend`` models (weights embedded) of the int8 fast path.

    Same signatures, names and dtypes as docs/BUNDLE.md; ``N`` is dynamic in ``score``.
    """
    if not isinstance(model, QuantizedItemModel):
        raise TypeError(f"`model` must be a QuantizedItemModel. Found {type(model).__name__}.")
    return build_fast_models(model, top_k=top_k)


def build_fast_models(model: ItemModel | QuantizedItemModel, *, top_k: int = 10) -> dict[str, onnx.ModelProto]:
    """Standalone fast ``score`` and ``recommend`` models: int8 (:func:`add_int8_score`, …) or float32."""
    if not isinstance(model, ItemModel | QuantizedItemModel):
        raise TypeError(f"`model` must be an ItemModel or a QuantizedItemModel. Found {type(model).__name__}.")
    int8 = isinstance(model, QuantizedItemModel)
    n, d = model.num_items, model.dim
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 < top_k <= n:
        raise ValueError(f"`top_k` must be an int in [1, {n}] (the number of items). Found {top_k!r}.")
    arrays: dict[str, NDArray[Any]]
    if isinstance(model, QuantizedItemModel):
        arrays = {TABLE_T: transposed_table(model), "item_scale": model.item_scale, "item_bias": model.item_bias}
    else:
        arrays = {"item_embedding": model.item_embedding, "item_bias": model.item_bias}
    weights = [numpy_helper.from_array(a, name) for name, a in arrays.items()]
    f32, i32 = TensorProto.FLOAT, TensorProto.INT32
    specs: dict[str, tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]] = {
        "score": (
            [helper.make_tensor_value_info("user", f32, [d]), helper.make_tensor_value_info("item_ids", i32, ["N"])],
            [helper.make_tensor_value_info("scores", f32, ["N"])],
        ),
        "recommend": (
            [helper.make_tensor_value_info("user", f32, [d]), helper.make_tensor_value_info("mask", f32, [n])],
            [helper.make_tensor_value_info("top_ids", i32, [top_k]), helper.make_tensor_value_info("top_scores", f32, [top_k])],
        ),
    }
    models: dict[str, onnx.ModelProto] = {}
    for name, (inputs, outputs) in specs.items():
        g = OnnxGraph(weights)
        if name == "score":
            add_int8_score(g, dim=d) if int8 else add_float_score(g)
        else:
            add_int8_recommend(g, dim=d, top_k=top_k) if int8 else add_float_recommend(g, top_k=top_k)
        graph = helper.make_graph(g.nodes, f"privrec_fast_{name}", inputs, outputs, initializer=g.initializers)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="privrec")
        proto.ir_version = 8
        onnx.checker.check_model(proto)
        models[name] = proto
    return models


class Int8FastRunner:
    """Runs :func:`build_int8_models` in onnxruntime (CPU, ``threads`` intra-/inter-op threads)."""

    def __init__(self, models: dict[str, onnx.ModelProto], *, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
        self._sessions = {
            name: ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
            for name, m in models.items()
        }

    @classmethod
    def from_model(cls, model: ItemModel | QuantizedItemModel, *, top_k: int = 10, threads: int = 1) -> Int8FastRunner:
        """Build and load the fast-path models of ``model`` (int8 or float32)."""
        return cls(build_fast_models(model, top_k=top_k), threads=threads)

    def score(self, user: NDArray[np.float32], item_ids: NDArray[np.int32]) -> NDArray[np.float32]:
        """``scores f32[N]``."""
        feeds = {"user": np.ascontiguousarray(user, np.float32), "item_ids": np.ascontiguousarray(item_ids, np.int32)}
        (scores,) = self._sessions["score"].run(["scores"], feeds)
        return np.asarray(scores, np.float32)

    def recommend(self, user: NDArray[np.float32], mask: NDArray[np.float32]) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """``(top_ids i32[K], top_scores f32[K])``, highest first."""
        feeds = {"user": np.ascontiguousarray(user, np.float32), "mask": np.ascontiguousarray(mask, np.float32)}
        ids, scores = self._sessions["recommend"].run(["top_ids", "top_scores"], feeds)
        return np.asarray(ids, np.int32), np.asarray(scores, np.float32)
