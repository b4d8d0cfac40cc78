"""The ONNX int8 fast path: full-catalog scoring that never dequantizes the item table.

A naive int8 export computes ``V = cast(q) * scale`` over the whole table on every ``recommend`` call: a
float32 copy of the table (4 bytes per weight written, then read again) before the product. This module
builds the signatures from integer kernels instead, with one of two scan kernels (:func:`int8_kernel`):

- **MatMulNBits** (the default when ``d`` is a power of two ≥ 16): the table is stored as uint8 rows,
  ``item_embedding_u8 uint8[num_items, 1, d]`` (``TABLE_U8``: the int8 values + 128, the layout of
  onnxruntime's ``com.microsoft`` ``MatMulNBits`` with 8 bits and one block of ``d`` per row, whose
  per-block scale is then the per-row scale). ``accuracy_level`` 4: MLAS quantizes the input per block and
  runs an integer GEMV over the table, 1 byte per weight read: about 0.2 ms for 100k x 32 on one x86 core,
  against 0.40 ms for ``MatMulInteger``. It needs onnxruntime's weight prepacking (without it the op falls
  back to a float kernel, 25x slower), so the ``score`` and ``recommend`` sessions prepack
  (:data:`privrec.export.onnx_runner.PREPACKED_WITH_MATMULNBITS`). It is not a standard ONNX op:
  onnxruntime implements it (CPU and mobile); onnxruntime-web runs it in float32, several times slower
  than ``MatMulInteger`` there (20 vs 6 ms for 100k x 32 under Node, one thread).
- **MatMulInteger** (standard ONNX: ``ExportConfig.onnx_standard_ops``, or any other ``d``): the table is
  stored transposed, ``item_embedding_t int8[d, num_items]`` (``TABLE_T``), and the user in two uint8
  levels is the packed operand of ``[2, d] x [d, N]`` (:func:`_integer_dots`).

Either way:

- ``recommend`` (:func:`add_int8_recommend`) scans the catalog once, bounds the scan's error, and re-ranks
  exactly the few items that a proven threshold leaves, instead of a ``TopK`` over every score (0.26 ms
  at 100k): ``top_scores`` exact, ``top_ids`` the exact top-K;
- ``score`` (:func:`add_int8_score`) computes a short id list exactly from its gathered rows and scans the
  catalog for a long one in two levels (max abs error about 1e-4 at d = 32 with ``u ~ N(0, 1)``; one level
  alone is about 1e-2, too close to the 2e-2 int8 tolerance);
- ``finetune`` takes its rows from :func:`int8_rows`.

Wired into :mod:`privrec.export.onnx` (the graph builders take any object with ``op``, ``op_multi``,
``const`` and ``output`` like its ``_Graph``), which stores :func:`int8_tables` and records the kernel in
the manifest (``details.int8_kernel``). float32 has the same kind of fix (:func:`add_float_score`,
:func:`add_float_recommend`): the user vector as a ``[d, 1]`` column instead of a 1-D input to ``MatMul``.
:func:`build_fast_models` builds the same ``score``/``recommend`` graphs as standalone models (weights
embedded; the tests and the size benchmark use them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import QuantizedItemModel

from .scan_bound import bias_max, round_up_f32, row_l1_max

__all__ = [
    "FLOAT_SCAN_RATIO",
    "INT8_SCAN_RATIO",
    "INTEGER",
    "MS_DOMAIN",
    "NBITS",
    "OPSET",
    "ROUNDING",
    "SCAN_SLACK",
    "TABLE_T",
    "TABLE_U8",
    "GraphBuilder",
    "Int8FastRunner",
    "add_float_recommend",
    "add_float_score",
    "add_int8_recommend",
    "add_int8_score",
    "bias_bound",
    "block_size",
    "build_fast_models",
    "build_int8_models",
    "float_catalog_scores",
    "int8_catalog_scores",
    "int8_kernel",
    "int8_rows",
    "int8_tables",
    "l1_bound",
    "offset_table",
    "opset_imports",
    "scan_slack",
    "transposed_table",
    "uses_matmul_nbits",
]

OPSET = 17
MS_DOMAIN = "com.microsoft"
TABLE_U8 = "item_embedding_u8"  # MatMulNBits graphs: uint8[N, 1, d], the int8 values + 128
TABLE_T = "item_embedding_t"  # standard-op graphs: int8[d, N], the table transposed
NBITS, INTEGER = "MatMulNBits", "MatMulInteger"  # the two int8 scan kernels (int8_kernel)
_ZERO_POINT = 128  # uint8 zero point: symmetric int8 values shifted into [1, 255]
INT8_SCAN_RATIO = 256  # int8 `score` scans the catalog once N >= num_items / 256 (see add_int8_score)
FLOAT_SCAN_RATIO = 16  # float32 `score` scans the catalog once N >= num_items / 16 (see add_float_score)
#: E = max|u| * L1MAX * scan_slack(d) + max|b| * ROUNDING bounds |scan - exact| per item (add_int8_recommend).
SCAN_SLACK = 1.0 / 127.0 + 1e-5
ROUNDING = 2.0**-20  # float32 rounding of the few additions and comparisons around a score (about 16 ulps)


class GraphBuilder(Protocol):
    """What the builders need (``privrec.export.onnx._Graph`` has exactly these methods)."""

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str: ...

    def op_multi(self, op_type: str, inputs: Sequence[str], n_out: int, **attrs: Any) -> list[str]: ...

    def const(self, name: str, value: NDArray[Any]) -> str: ...

    def output(self, src: str, name: str) -> None: ...


def scan_slack(dim: int) -> float:
    """The relative part of the scan bound: ``SCAN_SLACK`` + ``d · 2^-23`` (the float32 rounding of the exact
    re-rank's ``d``-term dot product) + ``ROUNDING``."""
    return SCAN_SLACK + dim * 2.0**-23 + ROUNDING


def _round_up(value: float) -> NDArray[np.float32]:
    return np.array([round_up_f32(value)], np.float32)


def offset_table(model: QuantizedItemModel) -> NDArray[np.uint8]:
    """``item_embedding + 128`` as a contiguous ``uint8[num_items, 1, d]`` (the ``TABLE_U8`` initializer).

    One byte per weight, the rows in the order of ``weights.safetensors``; the middle axis of 1 is the
    layout ``MatMulNBits`` reads (``[N, blocks per column, bytes per block]`` with one block of ``d``).
    """
    if not isinstance(model, QuantizedItemModel):
        raise TypeError(f"`model` must be a QuantizedItemModel. Found {type(model).__name__}.")
    n, d = model.item_embedding.shape
    return (model.item_embedding.astype(np.int16) + _ZERO_POINT).astype(np.uint8).reshape(n, 1, d)


def transposed_table(model: QuantizedItemModel) -> NDArray[np.int8]:
    """``item_embedding.T`` as a contiguous ``int8[d, num_items]`` (the ``TABLE_T`` initializer of standard-op graphs)."""
    if not isinstance(model, QuantizedItemModel):
        raise TypeError(f"`model` must be a QuantizedItemModel. Found {type(model).__name__}.")
    return np.ascontiguousarray(model.item_embedding.T)


def int8_kernel(dim: int, *, standard_ops: bool = False) -> str:
    """The scan kernel of the int8 graphs: ``"MatMulNBits"`` (onnxruntime's contrib op, uint8 rows) when ``d``
    allows it and ``standard_ops`` is off, else ``"MatMulInteger"`` (standard ONNX, transposed int8 table)."""
    return NBITS if uses_matmul_nbits(dim) and not standard_ops else INTEGER


def int8_tables(model: QuantizedItemModel, kernel: str) -> dict[str, NDArray[Any]]:
    """The int8 initializers of ``kernel``'s graphs: the table in its layout, ``item_scale``, ``item_bias``."""
    table = {TABLE_U8: offset_table(model)} if kernel == NBITS else {TABLE_T: transposed_table(model)}
    return table | {"item_scale": model.item_scale, "item_bias": model.item_bias}


def uses_matmul_nbits(dim: int) -> bool:
    """``MatMulNBits`` takes one block per row when ``d`` is a power of two ≥ 16 (its block sizes); else the
    graphs scan with ``MatMulInteger`` (same results within the int8 tolerance, about 2x slower)."""
    return dim >= 16 and dim & (dim - 1) == 0


def l1_bound(model: QuantizedItemModel) -> NDArray[np.float32]:
    """``f32[1]``: ``max_i scale_i * sum_k |q_ik|`` (the largest row L1 norm), rounded up to float32."""
    return _round_up(row_l1_max(model.item_embedding, model.item_scale))


def bias_bound(model: QuantizedItemModel) -> float:
    """``max_i |b_i|`` (0 for an empty catalog)."""
    return bias_max(model.item_bias)


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


class _Split:
    """The user vector in two levels: ``u = s1 * hi + resid`` with integer ``hi`` in [-127, 127].

    ``peak = max|u|`` (at least 1e-30), ``s1 = peak / 127``, ``hi = round(u / s1)``, so ``|resid| ≤ s1 / 2``
    per coordinate and ``s1 * hi`` is exactly representable by any symmetric int8 quantizer (its own scale
    is ``s1`` again).
    """

    def __init__(self, g: GraphBuilder, user: str) -> None:
        tiny = g.const("tiny", np.array([1e-30], np.float32))
        self.peak = g.op("Max", g.op("ReduceMax", g.op("Abs", user), keepdims=1), tiny)  # [1]
        self.s1 = g.op("Div", self.peak, g.const("c127", np.array([127.0], np.float32)))  # [1]
        self.x = g.op("Div", user, self.s1)  # [d], in [-127, 127]
        self.hi = g.op("Round", self.x)  # [d], integers
        self.u_hi = g.op("Mul", self.hi, self.s1)  # [d]
        self.resid = g.op("Sub", user, self.u_hi)  # [d]


def _nbits_dots(g: GraphBuilder, vec: str, num_items: int, dim: int, bias: str | None) -> str:
    """``f32[N]``: ``V_i · vec (+ bias_i)`` for every row, one ``MatMulNBits`` (8 bits, one block per row).

    ``accuracy_level=4`` lets onnxruntime quantize ``vec`` to int8 per block and run an integer GEMV over the
    uint8 table (about 0.2 ms for 100k x 32 on one x86 core, the int8 memory floor's order); where that kernel
    is missing (e.g. onnxruntime-web) it dequantizes block by block in float32 instead, which is exact but
    slow. A 1-D ``vec`` gives a 1-D output, so no reshapes surround it.
    """
    inputs = [vec, TABLE_U8, "item_scale"] + (["", "", bias] if bias is not None else [])
    return g.op("MatMulNBits", *inputs, domain=MS_DOMAIN, K=dim, N=num_items, bits=8, block_size=dim, accuracy_level=4)


def _integer_dots(g: GraphBuilder, split: _Split, dim: int) -> str:
    """``f32[N]``: ``V_i · u`` without the bias, one ``MatMulInteger`` over the transposed int8 table.

    The two levels ``hi`` and ``lo = round(254 * (x - hi))`` form a uint8 ``[2, d]`` block (zero point 128):
    ``u · q_i ≈ s1 (hi · q_i) + (s1 / 254) (lo · q_i)`` with a relative error of about ``1 / 127²``. The block
    is the packed operand and the constant ``[d, N]`` table is streamed (MLAS u8s8 GEMM: 0.27 ms for 100k x
    32 against 0.83 ms for ``[N, d] x [d, 2]``, one thread, onnxruntime 1.32).
    """
    lo = g.op("Round", g.op("Mul", g.op("Sub", split.x, split.hi), g.const("c254", np.array([254.0], np.float32))))
    levels = g.op("Reshape", g.op("Concat", split.hi, lo, axis=0), g.const("shape_2_d", np.array([2, dim], np.int64)))
    shifted = g.op("Add", levels, g.const("c128", np.array([float(_ZERO_POINT)], np.float32)))
    block = g.op("Cast", shifted, to=TensorProto.UINT8)  # [2, d]
    zero_point = g.const("u_zero_point", np.array(_ZERO_POINT, np.uint8))
    acc = g.op("Cast", g.op("MatMulInteger", block, TABLE_T, zero_point), to=TensorProto.FLOAT)  # [2, N]
    scales = g.op("Mul", split.s1, g.const("level_scales", np.array([1.0, 1.0 / 254.0], np.float32)))  # [2]
    return g.op("Mul", g.op("MatMul", scales, acc), "item_scale")  # [2] x [2, N] -> [N]


def int8_catalog_scores(g: GraphBuilder, *, num_items: int, dim: int, kernel: str, user: str = "user") -> str:
    """``f32[num_items]``: ``V · user + b`` over the whole catalog in two levels (max error about ``|V|₁ max|u| / 127²``).

    ``MatMulNBits``: one call on ``s1 * hi`` (exact in its int8 quantization) and one on the residual
    (quantized with its own scale, error ≤ ``s1 / 508`` per coordinate); ``MatMulInteger``: :func:`_integer_dots`.
    """
    split = _Split(g, user)
    if kernel == NBITS:
        return g.op(
            "Add", _nbits_dots(g, split.u_hi, num_items, dim, "item_bias"), _nbits_dots(g, split.resid, num_items, dim, None)
        )
    return g.op("Add", _integer_dots(g, split, dim), "item_bias")


def take_1d(g: GraphBuilder, data: str, ids: str) -> str:
    """``data[ids]`` for a 1-D ``data`` and 1-D ``ids``, as ``GatherElements``.

    Same result as ``Gather(axis=0)`` for 1-D operands, but onnxruntime 1.32's ``Gather`` copies one
    element at a time through its generic block copy: 0.80 ms for 100k float32 by 100k ids, against
    0.066 ms for ``GatherElements`` (one thread). The whole-catalog ``score`` paid that on every call.
    """
    return g.op("GatherElements", data, ids, axis=0)


def int8_rows(g: GraphBuilder, ids: str, *, dim: int, kernel: str) -> str:
    """``V[ids]`` as float32 ``[M, d]``: the ``M`` rows (or columns) gathered, then dequantized (for ``finetune``:
    ``M`` is small, so dequantizing those rows is cheap)."""
    scale = g.op("Unsqueeze", g.op("Gather", "item_scale", ids, axis=0), g.const("axis_1", np.array([1], np.int64)))
    return g.op("Mul", _int_rows(g, ids, dim, kernel), scale)


def _int_rows(g: GraphBuilder, ids: str, dim: int, kernel: str) -> str:
    """``q[ids]`` as float32 ``[M, d]`` (the integer values, no scale)."""
    if kernel == NBITS:
        rows = g.op("Reshape", g.op("Gather", TABLE_U8, ids, axis=0), g.const("shape_rows", np.array([-1, dim], np.int64)))
        return g.op("Sub", g.op("Cast", rows, to=TensorProto.FLOAT), g.const("c128", np.array([float(_ZERO_POINT)], np.float32)))
    return g.op("Transpose", g.op("Cast", g.op("Gather", TABLE_T, ids, axis=1), to=TensorProto.FLOAT), perm=[1, 0])


def _exact_by_id(
    g: GraphBuilder, ids: str, *, dim: int, kernel: str, gather: Callable[[GraphBuilder, str, str], str]
) -> str:
    """``f32[M]``: ``(q[ids] · user) * scale[ids] + b[ids]`` in float32: exact up to float rounding."""
    column = g.op("Unsqueeze", "user", g.const("axis_1", np.array([1], np.int64)))
    if kernel == NBITS:  # [M, 1, d] rows straight from the gather: a batched MatMul, one reshape after it
        c128 = g.const("c128", np.array([float(_ZERO_POINT)], np.float32))
        rows = g.op("Sub", g.op("Cast", g.op("Gather", TABLE_U8, ids, axis=0), to=TensorProto.FLOAT), c128)
    else:
        rows = _int_rows(g, ids, dim, kernel)
    dots = g.op("Reshape", g.op("MatMul", rows, column), g.const("shape_flat", np.array([-1], np.int64)))
    return g.op("Add", g.op("Mul", dots, gather(g, "item_scale", ids)), gather(g, "item_bias", ids))


def add_int8_score(g: GraphBuilder, *, num_items: int, dim: int, kernel: str) -> None:
    """``score(user, item_ids) -> scores``: per id for a short list, by one catalog scan for a long one.

    An ``If`` on ``N`` (``N * INT8_SCAN_RATIO < num_items``, ``num_items`` read from ``item_bias``'s shape)
    chooses between

    - **by id**: gather the ``N`` int8 rows, ``q · user`` in float32, times the row scale, plus the bias:
      exact up to float rounding, a few hundred ns per id at d = 32;
    - **scan**: :func:`int8_catalog_scores` over the whole table (two levels; max error about 1e-4 at
      d = 32), then :func:`take_1d` at ``item_ids``: about 0.45 ms at 100k x 32 whatever ``N``.

    So a score depends on the branch by at most the scan's error (well inside the 2e-2 int8 tolerance).
    ``score`` is typically called on a short candidate list (a re-rank: the by-id branch) or on the whole
    catalog by ``score``-then-top-K callers (the scan, 30x faster than the by-id branch there).
    """

    def scan(b: GraphBuilder) -> str:
        return take_1d(b, int8_catalog_scores(b, num_items=num_items, dim=dim, kernel=kernel), "item_ids")

    def by_id(b: GraphBuilder) -> str:
        return _exact_by_id(b, "item_ids", dim=dim, kernel=kernel, gather=take_1d)

    g.output(_if_short_list(g, by_id, scan, ratio=INT8_SCAN_RATIO), "scores")


def _add_top_k(g: GraphBuilder, scores: str, top_k: int) -> None:
    values, indices = g.op_multi("TopK", [scores, g.const("k", np.array([top_k], np.int64))], 2, axis=0, largest=1, sorted=1)
    g.output(g.op("Cast", indices, to=TensorProto.INT32), "top_ids")
    g.output(values, "top_scores")


def block_size(num_items: int, top_k: int) -> int:
    """The block length of :func:`add_int8_recommend`'s threshold: about ``sqrt(N) / 6``, preferring a divisor of
    ``N`` within a factor 2 of that (no ``-inf`` padding to copy the scan into), and at most ``N // K`` so that
    there are at least ``K`` blocks.

    Measured at 100k x 32 (onnxruntime 1.32, one thread, interleaved): 50-wide blocks fastest; 100 about 2%,
    160 about 5% and 317 (padded) about 15% slower per ``recommend``; 20 about 3% slower. Small blocks make
    the ``NonZero`` over the chosen blocks short and cost a ``TopK`` over more block maxima.
    """
    cap = max(1, num_items // top_k)
    target = max(1, min(int(np.ceil(np.sqrt(num_items) / 6)), cap))
    divisors = [w for w in range(max(1, target // 2), min(2 * target, cap) + 1) if num_items % w == 0]
    return min(divisors, key=lambda w: (abs(w - target), w)) if divisors else target


def add_int8_recommend(
    g: GraphBuilder, *, num_items: int, dim: int, top_k: int, l1_max: NDArray[np.float32], bias_max: float, kernel: str
) -> None:
    """``recommend(user, mask) -> top_ids, top_scores``: an approximate scan, a proven threshold, an exact re-rank.

    1. **Scan**: ``scan_i ≈ u · V_i + b_i + mask_i`` — one ``MatMulNBits`` over the uint8 table, which
       quantizes ``u`` to int8 itself (the bias is fused into it): about 0.2 ms at 100k x 32. With
       ``MatMulInteger`` (standard ops), the two-level :func:`_integer_dots` (error far below ``E``).
    2. **Bound**: ``|scan_i - exact_i| ≤ E = max|u| · L1MAX · scan_slack(d) + max|b| · ROUNDING``, with
       ``L1MAX`` the largest row L1 norm (:func:`l1_bound`, a constant of the graph). Why: an int8 quantizer
       of ``u`` moves each coordinate by at most ``max|u| / 254`` (symmetric, as MLAS does) or ``/ 255``
       (asymmetric); ``SCAN_SLACK`` allows twice that (``1 / 127``), a margin for kernels not measured here
       (onnxruntime-web runs the op in float32: exact); the integer accumulation is exact, ``1e-5`` covers
       the float rounding of the output scaling, ``d · 2^-23`` the re-rank's own float32 dot product, and
       ``ROUNDING`` (relative to the largest ``|dot| + |b|``) the additions of bias and mask and the
       threshold arithmetic — without it a tiny ``u`` (``E`` → 0) would leave less margin than one ulp of
       the bias. ``2E`` is one multiply-add on ``max|u|`` with constants folded at export.
    3. **Threshold**: the scan (padded with ``-inf``) viewed as blocks of :func:`block_size`; ``t`` = the
       ``K``-th largest block maximum. ``t`` ≤ the ``K``-th largest scan value (``K`` distinct blocks each hold
       a value ≥ ``t``), so every true top-``K`` item has ``scan ≥ exact - E ≥ exact_(K) - E ≥ scan_(K) - 2E
       ≥ t - 2E = tau``. Only the blocks whose maximum reaches ``tau`` are searched for candidates.
    4. **Re-rank**: the candidates (ascending ids) are rescored exactly in float32 (:func:`_exact_by_id`
       plus ``mask``), and ``TopK`` takes the final ``K``: lower id first among equal scores, the rule of
       docs/BUNDLE.md. ``top_scores`` are exact; ``top_ids`` are the exact top-``K``.

    A full ``TopK`` over the catalog cost about 0.26 ms at 100k (onnxruntime 1.32), more than the scan;
    steps 3-4 cost about 0.05 ms. With every item but a few masked with ``-inf``, ``t`` is ``-inf`` and every
    real item becomes a candidate: slower, still exact.
    """
    if kernel == NBITS:  # MatMulNBits quantizes `user` itself (1-D in, [N] out): no nodes around it
        peak = g.op("ReduceMax", g.op("Abs", "user"), keepdims=1)
        out = _nbits_dots(g, "user", num_items, dim, "item_bias")
    else:
        split = _Split(g, "user")
        peak, out = split.peak, g.op("Add", _integer_dots(g, split, dim), "item_bias")
    scan = g.op("Add", out, "mask")
    # 2E = peak * (2 L1MAX slack) + 2 offset, both constants folded at export (rounded up).
    slope = g.const("scan_slope", _round_up(2.0 * float(l1_max[0]) * float(_round_up(scan_slack(dim))[0])))
    offset = g.const("scan_offset", _round_up(2.0 * float(_round_up(bias_max * ROUNDING)[0])))
    margin = g.op("Add", g.op("Mul", peak, slope), offset)
    ids = _candidates(g, scan, margin, num_items=num_items, top_k=top_k)
    by_id = _exact_by_id(g, ids, dim=dim, kernel=kernel, gather=_gather_rows)
    exact = g.op("Add", by_id, _gather_rows(g, "mask", ids))
    values, pos = g.op_multi("TopK", [exact, g.const("k", np.array([top_k], np.int64))], 2, axis=0, largest=1, sorted=1)
    g.output(g.op("Cast", _gather_rows(g, ids, pos), to=TensorProto.INT32), "top_ids")
    g.output(values, "top_scores")


def _gather_rows(g: GraphBuilder, data: str, ids: str) -> str:
    return g.op("Gather", data, ids, axis=0)


def _candidates(g: GraphBuilder, scan: str, margin: str, *, num_items: int, top_k: int) -> str:
    """``i64[C]``, ascending: the ids whose ``scan`` reaches ``tau = t - margin`` (``t``: the ``K``-th largest
    block maximum), found in the blocks whose maximum reaches ``tau``; ``C ≥ K``."""
    flat = g.const("shape_flat", np.array([-1], np.int64))
    width = block_size(num_items, top_k)
    blocks = -(-num_items // width)
    pad = blocks * width - num_items
    if pad:
        scan = g.op("Concat", scan, g.const(f"pad_{pad}", np.full(pad, -np.inf, np.float32)), axis=0)
    grid = g.op("Reshape", scan, g.const("shape_blocks", np.array([blocks, width], np.int64)))  # [B, W]
    block_max = g.op("ReduceMax", grid, axes=[1], keepdims=0)  # [B]
    k = g.const("k", np.array([top_k], np.int64))
    best = g.op_multi("TopK", [block_max, k], 2, axis=0, largest=1, sorted=1)[0]
    tau = g.op("Sub", _gather_rows(g, best, g.const("last", np.array([top_k - 1], np.int64))), margin)  # [1]
    chosen = g.op("Reshape", g.op("NonZero", g.op("GreaterOrEqual", block_max, tau)), flat)  # block numbers
    where = g.op("NonZero", g.op("GreaterOrEqual", _gather_rows(g, grid, chosen), tau))  # [2, C], row-major
    row = _gather_rows(g, where, g.const("scalar_0", np.array(0, np.int64)))  # [C]: position among `chosen`
    col = _gather_rows(g, where, g.const("scalar_1", np.array(1, np.int64)))  # [C]: offset in the block
    starts = g.op("Mul", _gather_rows(g, chosen, row), g.const("width", np.array([width], np.int64)))
    ids = g.op("Add", starts, col)
    if pad:  # only with t = -inf can a padding slot be a candidate
        real = g.op("Less", ids, g.const("num_items", np.array([num_items], np.int64)))
        ids = g.op("Compress", ids, real, axis=0)
    return ids


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

    def graph_nodes(self) -> list[onnx.NodeProto]:
        """:attr:`nodes` with each output's ``Identity`` folded into the node it copies, where that node's result
        is used by nothing else (each node costs onnxruntime about a microsecond per call)."""
        uses: dict[str, int] = {}
        for node in _all_nodes(self.nodes):
            for name in node.input:
                uses[name] = uses.get(name, 0) + 1
        producers = {out: node for node in self.nodes for out in node.output}
        kept: list[onnx.NodeProto] = []
        renamed: dict[str, str] = {}
        for node in self.nodes:
            src = node.input[0] if node.op_type == "Identity" else ""
            if src in producers and uses.get(src) == 1 and src not in renamed:
                renamed[src] = node.output[0]
                continue
            kept.append(node)
        out: list[onnx.NodeProto] = []
        for node in kept:
            node = copy.deepcopy(node) if any(o in renamed for o in node.output) else node
            for i, name in enumerate(node.output):
                node.output[i] = renamed.get(name, name)
            out.append(node)
        return out


def _all_nodes(nodes: Sequence[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """``nodes`` and, recursively, the nodes of their subgraphs (an ``If`` branch may read an outer value)."""
    found: list[onnx.NodeProto] = []
    for node in nodes:
        found.append(node)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found.extend(_all_nodes(attr.g.node))
    return found


def build_int8_models(model: QuantizedItemModel, *, top_k: int = 10, standard_ops: bool = False) -> dict[str, onnx.ModelProto]:
    """Standalone ``score`` and ``recommend`` models (weights embedded) of the int8 fast path.

    Same signatures, names and dtypes as docs/BUNDLE.md; ``N`` is dynamic in ``score``.
    """
    if not isinstance(model, QuantizedItemModel):
        raise TypeError(f"`model` must be a QuantizedItemModel. Found {type(model).__name__}.")
    return build_fast_models(model, top_k=top_k, standard_ops=standard_ops)


def build_fast_models(
    model: ItemModel | QuantizedItemModel, *, top_k: int = 10, standard_ops: bool = False
) -> dict[str, onnx.ModelProto]:
    """Standalone fast ``score`` and ``recommend`` models: int8 (:func:`add_int8_score`, …; ``standard_ops``
    picks ``MatMulInteger`` over ``MatMulNBits``, :func:`int8_kernel`) or float32."""
    if not isinstance(model, ItemModel | QuantizedItemModel):
        raise TypeError(f"`model` must be an ItemModel or a QuantizedItemModel. Found {type(model).__name__}.")
    n, d = model.num_items, model.dim
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 < top_k <= n:
        raise ValueError(f"`top_k` must be an int in [1, {n}] (the number of items). Found {top_k!r}.")
    arrays: dict[str, NDArray[Any]]
    kernel = int8_kernel(d, standard_ops=standard_ops)
    if isinstance(model, QuantizedItemModel):
        arrays = int8_tables(model, kernel)
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
        if isinstance(model, QuantizedItemModel):
            if name == "score":
                add_int8_score(g, num_items=n, dim=d, kernel=kernel)
            else:
                l1, bias = l1_bound(model), bias_bound(model)
                add_int8_recommend(g, num_items=n, dim=d, top_k=top_k, kernel=kernel, l1_max=l1, bias_max=bias)
        elif name == "score":
            add_float_score(g)
        else:
            add_float_recommend(g, top_k=top_k)
        graph = helper.make_graph(g.graph_nodes(), f"privrec_fast_{name}", inputs, outputs, initializer=g.initializers)
        proto = helper.make_model(graph, opset_imports=opset_imports(graph), producer_name="privrec")
        proto.ir_version = 8
        onnx.checker.check_model(proto)
        models[name] = proto
    return models


def opset_imports(graph: onnx.GraphProto) -> list[onnx.OperatorSetIdProto]:
    """The default domain at :data:`OPSET`, plus ``com.microsoft`` version 1 when a node (or a subgraph's)
    uses it (``MatMulNBits``)."""
    domains: set[str] = set()

    def visit(g: onnx.GraphProto) -> None:
        for node in g.node:
            domains.add(node.domain)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)

    visit(graph)
    found = [helper.make_opsetid("", OPSET)]
    return found + ([helper.make_opsetid(MS_DOMAIN, 1)] if MS_DOMAIN in domains else [])


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
