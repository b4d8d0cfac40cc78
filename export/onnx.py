"""ONNX exporter: one small graph per signature, all three reading one shared external weights file.

Files written into the bundle::

    model.score.onnx       score(user f32[d], item_ids i32[N]) -> scores f32[N]
    model.recommend.onnx   recommend(user f32[d], mask f32[num_items]) -> top_ids i32[K], top_scores f32[K]
    model.finetune.onnx    finetune(user, item_ids, labels, lr, l2) -> user_out f32[d], loss f32[1]
    model.onnx.data        the weights, once (ONNX external data, 64-byte aligned)

Why this layout: an ONNX model has exactly one graph, and onnxruntime executes every node of it on
each run and wants every graph input fed (checked on onnxruntime 1.32: asking for one output still
runs the other branch and refuses a missing input), so putting the three signatures in one graph
would make ``score`` pay for ``recommend``'s full catalog pass and for ``finetune``'s unrolled steps.
One graph per signature keeps each call minimal, and ONNX external data (the
``location``/``offset``/``length`` fields of ``TensorProto``) lets the three graphs point at the same
bytes, so the weights are stored once. onnxruntime resolves the data file
relative to the graph file, so the four files must stay together (they do: they are one artifact).

The graphs are built directly with ``onnx.helper`` (opset 17): every op is exactly the maths of
docs/BUNDLE.md, with nothing a tracer could add or fold. ``N`` and ``M`` are dynamic; ``K`` and the
fine-tune ``steps`` are fixed at export (the steps are unrolled).

``score`` and ``recommend`` come from the fast-path builders of :mod:`privrec.export.onnx_int8`:

- ``int8`` stores the item table as uint8 rows, ``item_embedding_u8 uint8[num_items, 1, d]`` (the int8
  values + 128; ``weights.safetensors`` keeps ``item_embedding int8[num_items, d]``, the bundle contract),
  next to ``item_scale`` and ``item_bias`` (one byte per weight). ``recommend`` scans the table once with
  ``MatMulNBits`` (an integer GEMV), then re-ranks exactly the few items a proven threshold leaves
  (:func:`privrec.export.onnx_int8.add_int8_recommend`); ``score`` computes a short ``item_ids`` list
  exactly from its gathered rows and a long one (``N * 256 ≥ num_items``) by a two-level catalog scan
  (an ``If`` on ``N``: the scan costs the same whatever ``N``, so it only pays off for long lists);
  ``finetune`` gathers its ``M`` rows and dequantizes only those. The table is never dequantized whole.
  With ``ExportConfig.onnx_standard_ops`` (``privrec export --onnx-standard-ops``; also for ``d`` that is
  not a power of two ≥ 16) the graphs use standard ops only: the table transposed, ``item_embedding_t
  int8[d, num_items]``, scanned with ``MatMulInteger``, same threshold and re-rank — for onnxruntime-web
  (which runs ``MatMulNBits`` in float32) and other ONNX runtimes. ``details.int8_kernel`` in the manifest
  records which.
- ``float32`` feeds ``MatMul`` the user as a ``[d, 1]`` column: onnxruntime 1.32 runs
  ``MatMul(V [n, d], u [d])`` with a 1-D ``u`` about 180x slower (it misses the GEMV kernel). ``score``
  has the same ``If`` on ``N`` (``N * 16 < num_items``: gathered rows, else the scan).

Ties in ``recommend``: ``TopK`` (sorted, largest first) keeps the lower index first among equal values,
the stable rule of docs/BUNDLE.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper

from privrec.sdk.quantize import Int4ItemModel, QuantizedItemModel

from .base import ArtifactRecord, Exportable, ExportConfig, Precision, register_exporter
from .manifest import bundle_signatures
from .onnx_int8 import (
    OnnxGraph,
    add_float_recommend,
    add_float_score,
    add_int8_recommend,
    add_int8_score,
    bias_bound,
    int8_kernel,
    int8_rows,
    int8_tables,
    l1_bound,
    opset_imports,
)
from .onnx_runner import GRAPH_FILES, OnnxRunner, load_runner

__all__ = ["GRAPH_FILES", "OPSET", "WEIGHTS_FILE", "OnnxRunner", "export"]

OPSET = 17
IR_VERSION = 8  # onnxruntime mobile and every onnxruntime >= 1.10 read IR 8
WEIGHTS_FILE = "model.onnx.data"
_ALIGN = 64
_LABEL_SUM_FLOOR = 1e-12  # sdk/reconstruct.py LABEL_SUM_FLOOR


_Graph = OnnxGraph


def _weight_arrays(model: Exportable, kernel: str) -> dict[str, NDArray[Any]]:
    if isinstance(model, QuantizedItemModel):
        return int8_tables(model, kernel)
    return {"item_embedding": model.item_embedding, "item_bias": model.item_bias}


def _write_external(path: Path, arrays: dict[str, NDArray[Any]]) -> list[TensorProto]:
    """Write ``arrays`` into one raw little-endian file; return initializers pointing into it."""
    protos: list[TensorProto] = []
    offset = 0
    with path.open("wb") as f:
        for name, arr in arrays.items():
            pad = (-offset) % _ALIGN
            f.write(b"\0" * pad)
            offset += pad
            data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            f.write(data)
            t = TensorProto()
            t.name = name
            t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
            t.dims.extend(arr.shape)
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", path.name), ("offset", str(offset)), ("length", str(len(data)))):
                entry = t.external_data.add()
                entry.key, entry.value = key, value
            protos.append(t)
            offset += len(data)
    return protos


def _rows(g: _Graph, ids: str, int8: tuple[int, str] | None) -> tuple[str, str]:
    """``(V[ids] f32[M, d], b[ids] f32[M])``; int8 (``int8`` = (d, kernel)) rows are gathered in int8, then dequantized."""
    bias = g.op("Gather", "item_bias", ids, axis=0)
    if int8 is None:
        return g.op("Gather", "item_embedding", ids, axis=0), bias
    return int8_rows(g, ids, dim=int8[0], kernel=int8[1]), bias


def _score_graph(g: _Graph, model: Exportable, kernel: str) -> None:
    if isinstance(model, QuantizedItemModel):
        add_int8_score(g, num_items=model.num_items, dim=model.dim, kernel=kernel)
    else:
        add_float_score(g)


def _recommend_graph(g: _Graph, model: Exportable, top_k: int, kernel: str) -> None:
    if isinstance(model, QuantizedItemModel):
        n, d, l1, bias = model.num_items, model.dim, l1_bound(model), bias_bound(model)
        add_int8_recommend(g, num_items=n, dim=d, top_k=top_k, kernel=kernel, l1_max=l1, bias_max=bias)
    else:
        add_float_recommend(g, top_k=top_k)


def _finetune_graph(g: _Graph, int8: tuple[int, str] | None, steps: int) -> None:
    rows, bias = _rows(g, "item_ids", int8)
    label_sum = g.op("ReduceSum", "labels", keepdims=1)
    y = g.op(
        "Div",
        "labels",
        g.op("Max", label_sum, g.const("label_floor", np.array([_LABEL_SUM_FLOOR], np.float32))),
    )
    # Every MatMul is 2-D ([M, d] x [d, 1] and [1, M] x [M, d]): onnxruntime runs a 1-D operand outside its
    # GEMM/GEMV kernels, several times slower at the golden file's M = 2048.
    flat = g.const("shape_flat", np.array([-1], np.int64))
    axis_0 = g.const("axis_0", np.array([0], np.int64))
    axis_1 = g.const("axis_1", np.array([1], np.int64))

    def scores(u: str) -> str:  # V[ids] u + b, f32[M]
        return g.op("Add", g.op("Reshape", g.op("MatMul", rows, g.op("Unsqueeze", u, axis_1)), flat), bias)

    u = "user"
    for _ in range(steps):  # u <- u - lr * (V^T (softmax(s) - y) + l2 u), docs/BUNDLE.md
        residual = g.op("Unsqueeze", g.op("Sub", g.op("Softmax", scores(u), axis=-1), y), axis_0)  # [1, M]
        grad = g.op("Reshape", g.op("MatMul", residual, rows), flat)
        grad = g.op("Add", grad, g.op("Mul", "l2", u))
        u = g.op("Sub", u, g.op("Mul", "lr", grad))
    s = scores(u)
    ce = g.op("Neg", g.op("ReduceSum", g.op("Mul", y, g.op("LogSoftmax", s, axis=-1)), keepdims=1))
    half_l2 = g.op("Mul", "l2", g.const("half", np.array([0.5], np.float32)))
    reg = g.op("Mul", half_l2, g.op("ReduceSum", g.op("Mul", u, u), keepdims=1))
    g.output(u, "user_out")
    g.output(g.op("Add", ce, reg), "loss")


def _value_info(name: str, dtype: str, shape: tuple[int, ...], dyn: str) -> onnx.ValueInfoProto:
    elem = TensorProto.FLOAT if dtype == "float32" else TensorProto.INT32
    dims: list[int | str] = [dyn if s < 0 else s for s in shape]
    return helper.make_tensor_value_info(name, elem, dims)


def _save(g: _Graph, path: Path, signature: str, inputs: Sequence[Any], outputs: Sequence[Any], dyn: str) -> None:
    graph = helper.make_graph(
        g.graph_nodes(),
        f"privrec_{signature}",
        [_value_info(t.name, t.dtype, t.shape, dyn) for t in inputs],
        [_value_info(t.name, t.dtype, t.shape, dyn) for t in outputs],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=opset_imports(graph), producer_name="privrec")
    model.ir_version = IR_VERSION
    onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))  # path form: resolves the external data next to the graph


@register_exporter("onnx", load_runner)
def export(model: Exportable, bundle_dir: Path, config: ExportConfig) -> ArtifactRecord:
    """Write the ONNX artifact (four files, see the module docstring) into ``bundle_dir``."""
    if isinstance(model, Int4ItemModel):  # INT4 table + DequantizeLinear (opset 21): privrec.export.onnx_int4
        from .onnx_int4 import export_int4

        return export_int4(model, bundle_dir, config)
    int8 = isinstance(model, QuantizedItemModel)
    precision: Precision = "int8" if int8 else "float32"
    if config.top_k > model.num_items:
        raise ValueError(f"`top_k` must be <= num_items ({model.num_items}). Found {config.top_k}.")
    bundle_dir = Path(bundle_dir)
    kernel = int8_kernel(model.dim, standard_ops=config.onnx_standard_ops)
    weights = _write_external(bundle_dir / WEIGHTS_FILE, _weight_arrays(model, kernel))
    signatures = bundle_signatures(model.dim, model.num_items, config.top_k)
    builders: dict[str, Callable[[_Graph], None]] = {
        "score": lambda g: _score_graph(g, model, kernel),
        "recommend": lambda g: _recommend_graph(g, model, config.top_k, kernel),
        "finetune": lambda g: _finetune_graph(g, (model.dim, kernel) if int8 else None, config.finetune_steps),
    }
    for name, build in builders.items():
        g = _Graph(weights)
        build(g)
        inputs, outputs = signatures[name]
        _save(g, bundle_dir / GRAPH_FILES[name], name, inputs, outputs, "M" if name == "finetune" else "N")
    return ArtifactRecord(
        format="onnx",
        precision=precision,
        files=(*GRAPH_FILES.values(), WEIGHTS_FILE),
        signatures=signatures,
        details={
            "opset": OPSET,
            "ir_version": IR_VERSION,
            "graphs": dict(GRAPH_FILES),
            "external_data": WEIGHTS_FILE,
            "top_k": config.top_k,
            "finetune_steps": config.finetune_steps,
        }
        | ({"int8_kernel": kernel} if int8 else {}),
    )
