"""ONNX int4 artifact: the item table stored as ONNX ``INT4`` (two weights per byte) and dequantized in the graph.

Same four files and signatures as :mod:`privrec.export.onnx`; what differs is the weights file and one
node at the head of each graph::

    item_embedding_int4  INT4 [num_items, d]   the packed bytes of weights.safetensors, unchanged
    item_scale_f16       f16 [num_items]       one symmetric scale per row (as weights.safetensors stores it)
    item_bias_f16        f16 [num_items]
    item_scale = Cast(item_scale_f16, to=FLOAT)   # exact: every float16 is a float32
    item_bias = Cast(item_bias_f16, to=FLOAT)
    item_embedding = DequantizeLinear(item_embedding_int4, item_scale, axis=0)   # f32 [num_items, d]

The two ``Cast`` nodes cost a few bytes; the float16 storage saves 4 bytes per item.

``DequantizeLinear`` with an ``INT4`` input and a per-axis scale is a standard op from opset 21 (ONNX IR
10); onnxruntime 1.32's CPU kernel runs it, and so does onnxruntime-web 1.30 (WASM backend, one thread,
under Node 20): both the dense and the sparse graphs below matched the numpy reference there (checked
by hand against golden.json, with the float16 scale and bias and their ``Cast`` nodes: max abs error
1.3e-6; the web sample's browser tests run float32 and int8 bundles). The standard op was chosen over
``com.microsoft`` ``MatMulNBits`` / ``GatherBlockQuantized`` (4-bit contrib kernels) so that every ONNX
runtime, not only onnxruntime, can read the artifact. ONNX packs ``INT4`` two per byte with the first
element in the low nibble — exactly :func:`privrec.sdk.quantize.pack_int4` — so the file holds the very
bytes the numpy reference unpacks.

After the dequantize the graphs are the float32 graphs of :mod:`privrec.export.onnx` (``score`` with
its ``If`` on ``N``, ``recommend``, ``finetune`` unrolled), reading ``item_embedding`` from that node.

Sparse storage (``sparsity > 0``): the zeros of the int4 table are dropped from the file. It stores a
bit mask ``item_mask uint8[ceil(num_items * d / 8)]`` (bit ``k`` of byte ``k // 8``, least significant
first, is 1 when flat entry ``k`` is non-zero) and the non-zero values in row-major order as
``item_nonzero INT4 [nnz]``; the graph expands them: bits by ``BitShift``/``BitwiseAnd``, the position of
each entry's value by ``CumSum`` of the mask, a ``Gather`` of the dequantized values and a multiply by the
mask. The file then costs ``d / 8 + (1 - sparsity) d / 2`` bytes per row instead of ``d / 2``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper

from privrec.sdk.quantize import Int4ItemModel, pack_int4

from .base import ArtifactRecord, ExportConfig
from .manifest import bundle_signatures
from .onnx import WEIGHTS_FILE, _finetune_graph, _value_info, _write_external
from .onnx_int8 import OnnxGraph, add_float_recommend, add_float_score
from .onnx_runner import GRAPH_FILES

__all__ = ["INT4_IR_VERSION", "INT4_OPSET", "TABLE_INT4", "export_int4", "sparse_layout"]

INT4_OPSET = 21  # DequantizeLinear accepts INT4 from opset 21
INT4_IR_VERSION = 10  # INT4 / UINT4 tensors need IR 10
TABLE_INT4 = "item_embedding_int4"
NONZERO_INT4 = "item_nonzero"
MASK_BITS = "item_mask"
SCALE_F16 = "item_scale_f16"
BIAS_F16 = "item_bias_f16"


def sparse_layout(values: NDArray[np.int8]) -> tuple[NDArray[np.uint8], NDArray[np.int8]]:
    """``(mask bits uint8[ceil(size / 8)], non-zero values int8[nnz])`` of an ``int8[rows, d]`` int4 table.

    Bit ``k % 8`` of byte ``k // 8`` (least significant first) is 1 when flat entry ``k`` is non-zero;
    the non-zeros follow in row-major order.
    """
    flat = np.asarray(values, np.int8).ravel()
    keep = flat != 0
    return np.packbits(keep, bitorder="little"), np.ascontiguousarray(flat[keep])


def _as_int4(proto: TensorProto, shape: tuple[int, ...]) -> TensorProto:
    """Relabel an external uint8 initializer holding packed pairs as ``INT4`` of ``shape``."""
    proto.data_type = TensorProto.INT4
    del proto.dims[:]
    proto.dims.extend(shape)
    return proto


def _weights(model: Int4ItemModel, path: Path, sparse: bool) -> list[TensorProto]:
    n, d = model.num_items, model.dim
    if not sparse:
        protos = _write_external(path, {TABLE_INT4: model.item_embedding, SCALE_F16: model.item_scale, BIAS_F16: model.item_bias})
        _as_int4(protos[0], (n, d))
        return protos
    bits, nonzero = sparse_layout(model.values())
    # An odd count is padded with one zero nibble for the packing; the INT4 tensor declares the real count.
    padded = np.concatenate([nonzero, np.zeros(nonzero.size % 2, np.int8)])
    arrays: dict[str, NDArray[Any]] = {
        MASK_BITS: bits,
        NONZERO_INT4: pack_int4(padded.reshape(1, -1)).ravel(),
        SCALE_F16: model.item_scale,
        BIAS_F16: model.item_bias,
    }
    protos = _write_external(path, arrays)
    _as_int4(protos[1], (int(nonzero.size),))
    return protos


def _widen(g: OnnxGraph) -> None:
    """``item_scale`` / ``item_bias`` f32 from their float16 initializers (exact)."""
    g.nodes.append(helper.make_node("Cast", [SCALE_F16], ["item_scale"], to=TensorProto.FLOAT))
    g.nodes.append(helper.make_node("Cast", [BIAS_F16], ["item_bias"], to=TensorProto.FLOAT))


def _dense_table(g: OnnxGraph, n: int, d: int) -> None:
    """``item_embedding f32[n, d] = DequantizeLinear(item_embedding_int4, item_scale, axis=0)``."""
    g.nodes.append(helper.make_node("DequantizeLinear", [TABLE_INT4, "item_scale"], ["item_embedding"], axis=0))


def _sparse_table(g: OnnxGraph, n: int, d: int) -> None:
    """``item_embedding f32[n, d]`` expanded from the bit mask and the int4 non-zeros (module docstring)."""
    shifts = g.const("bit_shifts", np.arange(8, dtype=np.uint8))
    one = g.const("u8_one", np.array(1, np.uint8))
    bytes_col = g.op("Unsqueeze", MASK_BITS, g.const("axis_1", np.array([1], np.int64)))  # [B, 1]
    bits = g.op("BitwiseAnd", g.op("BitShift", bytes_col, shifts, direction="RIGHT"), one)  # [B, 8]
    flat = g.op(
        "Slice",
        g.op("Reshape", bits, g.const("shape_flat", np.array([-1], np.int64))),
        g.const("zero_1", np.array([0], np.int64)),
        g.const("size_1", np.array([n * d], np.int64)),
    )
    keep = g.op("Cast", flat, to=TensorProto.INT64)  # [n * d] 0/1
    # Position of entry k's value: (number of non-zeros up to and including k) - 1, clipped at 0 for the
    # leading zeros (their value is multiplied by 0 below).
    pos = g.op(
        "Sub", g.op("CumSum", keep, g.const("axis_0_scalar", np.array(0, np.int64))), g.const("i64_one", np.array([1], np.int64))
    )
    pos = g.op("Max", pos, g.const("i64_zero", np.array([0], np.int64)))
    values = g.op("DequantizeLinear", NONZERO_INT4, g.const("unit_scale", np.array(1.0, np.float32)))  # f32 [nnz]
    # A table with no non-zero at all still needs one value to gather from.
    values = g.op("Concat", values, g.const("f32_zero_1", np.array([0.0], np.float32)), axis=0)
    dense = g.op("Mul", g.op("Gather", values, pos, axis=0), g.op("Cast", flat, to=TensorProto.FLOAT))
    rows = g.op("Reshape", dense, g.const("shape_n_d", np.array([n, d], np.int64)))
    scale_col = g.op("Unsqueeze", "item_scale", "axis_1")
    g.nodes.append(helper.make_node("Mul", [rows, scale_col], ["item_embedding"]))


def _save(g: OnnxGraph, path: Path, signature: str, inputs: Any, outputs: Any, dyn: str) -> None:
    graph = helper.make_graph(
        g.graph_nodes(),
        f"privrec_{signature}",
        [_value_info(t.name, t.dtype, t.shape, dyn) for t in inputs],
        [_value_info(t.name, t.dtype, t.shape, dyn) for t in outputs],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", INT4_OPSET)], producer_name="privrec")
    model.ir_version = INT4_IR_VERSION
    onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))


def export_int4(model: Int4ItemModel, bundle_dir: Path, config: ExportConfig) -> ArtifactRecord:
    """Write the int4 ONNX artifact (same four files as float32 and int8) into ``bundle_dir``.

    With ``config.sparsity > 0`` the table is stored sparse (bit mask + int4 non-zeros).
    """
    if not isinstance(model, Int4ItemModel):
        raise TypeError(f"`model` must be an Int4ItemModel. Found {type(model).__name__}.")
    if config.top_k > model.num_items:
        raise ValueError(f"`top_k` must be <= num_items ({model.num_items}). Found {config.top_k}.")
    bundle_dir = Path(bundle_dir)
    n, d = model.num_items, model.dim
    sparse = config.sparsity > 0
    weights = _weights(model, bundle_dir / WEIGHTS_FILE, sparse)
    table = _sparse_table if sparse else _dense_table
    signatures = bundle_signatures(d, n, config.top_k)
    builders: dict[str, Callable[[OnnxGraph], None]] = {
        "score": add_float_score,
        "recommend": lambda g: add_float_recommend(g, top_k=config.top_k),
        "finetune": lambda g: _finetune_graph(g, None, config.finetune_steps),
    }
    for name, build in builders.items():
        g = OnnxGraph(weights)
        _widen(g)
        table(g, n, d)
        build(g)
        inputs, outputs = signatures[name]
        _save(g, bundle_dir / GRAPH_FILES[name], name, inputs, outputs, "M" if name == "finetune" else "N")
    return ArtifactRecord(
        format="onnx",
        precision="int4",
        files=(*GRAPH_FILES.values(), WEIGHTS_FILE),
        signatures=signatures,
        details={
            "opset": INT4_OPSET,
            "ir_version": INT4_IR_VERSION,
            "graphs": dict(GRAPH_FILES),
            "external_data": WEIGHTS_FILE,
            "top_k": config.top_k,
            "finetune_steps": config.finetune_steps,
            "table": "sparse bit mask + int4 non-zeros" if sparse else "int4 DequantizeLinear",
        },
    )
