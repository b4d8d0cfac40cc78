"""Latency suite: ``score`` + top-10, ``recommend`` and ``finetune`` per backend × precision × catalog × d.

Protocol: one thread everywhere (onnxruntime ``intra_op_num_threads=1``, LiteRT
``num_threads=1``, ``torch.set_num_threads(1)``, numpy's BLAS limited to 1 thread by threadpoolctl),
``warmup`` calls per case first, then ``calls`` visits per case, **interleaved**: each repeat visits
every case once, in a fresh random order, so load from other processes on a shared machine hits
candidates and baselines alike and the ratios stay meaningful. A visit makes ``burst`` back-to-back calls
(8 in the full run) and times the first and the last:

- **warm** (the figures the targets use, p50 / p95 over the visits): the last call of the burst, in the
  steady state a warm benchmark means. One earlier call is not enough: after another case has run, the
  100k × 32 int8 ``score`` takes about 0.47 ms on its 2nd call, 0.42 ms on its 4th, 0.27 ms on its 8th
  and 0.22 ms from then on (this machine; caches, TLB and prefetchers refill over several calls);
- **cold** (``p50_cold_ms``, ``ratio_numpy_cold``): the first call, made after the other cases of the
  (catalog, d) have run and evicted the caches (tables of 0.1–26 MB each) — closer to an app that
  recommends once per screen. Listed for every row; targets are not judged on it.

Cases per (catalog ``n``, dimension ``d``), on a synthetic model (``V ~ N(0, 0.3²)``, ``b ~ N(0, 0.1²)``,
users ``N(0, 1)``):

- backends: ``torch`` (eager, the maths written directly; int8 via ``torch._weight_int8pack_mm``),
  ``onnxruntime`` (the bundle's ONNX artifact from :mod:`privrec.export.onnx`, which ships the fast paths
  of :mod:`privrec.export.onnx_int8`: for int8, onnxruntime's ``MatMulNBits`` over 8-bit rows with the
  per-row scales and the bias fused, or ``MatMulInteger`` over the transposed table where ``d`` is not a power
  of two ≥ 16; for float32, the user as a ``[d, 1]`` column), ``litert`` (the bundle's TFLite artifact from
  :mod:`privrec.export.tflite`), and, for int8 only, two "before" graphs
  that dequantize the whole table into float32 on every call, kept only to measure the fast path's gain:
  ``onnxruntime-dequant`` (:class:`OnnxDequantRunner`: ``Cast`` → ``Mul`` by the per-row scale →
  ``MatMul`` with the user as a ``[d, 1]`` column → ``Add`` bias (→ ``Add`` mask → ``TopK``), the graph a
  naive int8 ONNX export produces, run with onnxruntime's ``ConstantFolding`` off, since by default it folds
  the dequantization into a float32 table at load and then runs like the float32 rows; ``score+top10`` and
  ``recommend``) and ``litert-dequant`` (the previous TFLite int8 ``recommend``); and the int8 scan kernel
  alone, op ``scan`` (``user`` in, ``f32[N]`` out, to show what ``recommend`` adds to the stock kernel):
  ``onnxruntime-scan`` (the bundle's ``MatMulNBits`` node as a one-node graph; absent where the graph has
  none) and ``litert-scan`` (one int8 ``FULLY_CONNECTED``, bias fused);
- ops: ``score+top10`` (every item's score as ``Recommender.score(user)`` gets it,
  :func:`privrec.export.base.score_catalog`: the ``score_all`` signature where the artifact has one — TFLite
  files of catalogs of 4,096 items or more — else ``score`` over every id; then
  the runtime's exact :func:`privrec.runtime.top_k`), ``recommend`` (mask all zeros, K = 10), ``finetune``
  (M = 50 interactions, the exported step count);
- baselines in the same loop: ``numpy`` float32 ``V @ u + b`` then ``argpartition`` top-10 (what a user
  writes by hand: the baseline the targets are set against); listed as rows for reference, ``numpy-prealloc`` (the same with
  preallocated outputs) and ``numpy-topk`` (``V @ u + b`` then :func:`privrec.runtime.top_k`, which
  separates the selection's share of the gain from the scoring's); and the
  **memory floor**: the table's bytes (``4nd`` float32, ``nd`` int8) divided by the read bandwidth,
  measured in the same run as the best ``np.add.reduce`` pass over a buffer larger than the last-level
  cache ("dram", best of the whole run) and over a hot buffer of the float32 table's size ("hot", for
  reference).

**Browser** (``result["browser"]``, :func:`run_browser_latency`): ``recommend`` (mask all zeros) and ``finetune``
(the same M = 50 inputs) of a bundle exported by :func:`privrec.export.export_bundle` (ONNX; float32 and int8) at
``browser_catalogs`` × ``browser_dims``, timed in Debian's headless Chromium (``/usr/bin/chromium``, driven by
``web_sample/scripts/bench.mjs`` through playwright-core) on the web sample's ``bench.html``: onnxruntime-web, the
WebAssembly backend, one thread, the page cross-origin isolated so ``performance.now()`` resolves 5 µs. The same
bundle's graphs run natively in onnxruntime (one thread) in the same loop: rounds of ``browser_chunk`` visits
alternate between the browser and native, with the visit protocol above (random order per visit, ``burst`` calls,
warm = the last, cold = the first). Each row carries both p50s and ``ratio_native`` = browser p50 / native p50
(and the cold ones); ``max_abs_err`` is ``recommend``'s error against the numpy reference (as above) and
``finetune``'s largest difference from the native ``user_out`` and ``loss``. Without node, the web sample's npm
packages (``make web``) or Chromium (``make chromium``), ``status`` says which is missing and there are no rows.

Every row carries ``ratio_numpy`` (p50 / numpy p50) and ``ratio_floor`` (p50 / floor of its precision), and
``score+top10`` / ``recommend`` / ``scan`` rows carry ``max_abs_err``: the largest absolute difference, on one call
made before timing, between the case's scores (all ``score`` and ``scan`` outputs; ``recommend``'s ``top_scores``
against both the reference's top-10 values and the reference's scores of the returned ids) and the numpy reference of its
precision (float32 ``V @ u + b``; for int8 the dequantized table ``(q * s[:, None]) @ u + b``). It is recorded,
not asserted; ``tests/benchmarks`` asserts the ``onnxruntime-dequant`` parity (≤ 2e-2, the int8 tolerance).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from privrec.export.base import SignatureRunner, get_runner_factory, score_catalog
from privrec.export.bundle import export_format
from privrec.runtime.topk import top_k
from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import QuantizedItemModel, quantize_int8
from privrec.sdk.reconstruct import FinetuneConfig

__all__ = [
    "FULL",
    "QUICK",
    "LatencyPlan",
    "OnnxDequantRunner",
    "browser_markdown",
    "browser_unavailable",
    "dequantized_scores",
    "measure_bandwidth",
    "run_browser_latency",
    "run_latency",
]

TOP = 10
M_FINETUNE = 50
OPS = ("score+top10", "recommend", "finetune")
OPSET = 17  # as privrec.export.onnx


@dataclass(frozen=True)
class LatencyPlan:
    """Sizes and repeats of one latency run."""

    catalogs: tuple[int, ...]
    dims: tuple[int, ...]
    calls: int
    warmup: int
    bandwidth_mb: int
    burst: int = 8  # calls per visit (>= 2): the first is timed as cold, the last as warm
    seed: int = 0
    browser_catalogs: tuple[int, ...] = (1_682, 100_000)  # MovieLens-100K's catalog, and a large one
    browser_dims: tuple[int, ...] = (32,)
    browser_chunk: int = 10  # visits per browser round before the native round that follows it


CALLS_ENV = "PRIVREC_BENCH_LATENCY_CALLS"


def _full_calls(default: int = 200) -> int:
    """Visits per case of the full plan: ``default``, or ``$PRIVREC_BENCH_LATENCY_CALLS`` (an int >= 10) to fit
    a run into a time window; the report states the number used."""
    raw = os.environ.get(CALLS_ENV)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 10:
        raise ValueError(f"${CALLS_ENV} must be an integer >= 10 (visits per case). Found {raw!r}.")
    return int(raw)


FULL = LatencyPlan(catalogs=(1_000, 10_000, 100_000), dims=(32, 64), calls=_full_calls(), warmup=20, bandwidth_mb=512)
QUICK = LatencyPlan(catalogs=(1_000, 10_000), dims=(32,), calls=30, warmup=3, bandwidth_mb=64, burst=2)


def synthetic_model(num_items: int, dim: int, seed: int) -> ItemModel:
    """``V ~ N(0, 0.3²)``, ``b ~ N(0, 0.1²)``, float32 (the benchmark's catalog shapes, no training)."""
    rng = np.random.default_rng(seed)
    return ItemModel(
        item_embedding=rng.normal(0.0, 0.3, (num_items, dim)).astype(np.float32),
        item_bias=rng.normal(0.0, 0.1, num_items).astype(np.float32),
    )


def measure_bandwidth(nbytes: int, repeats: int = 7) -> float:
    """Read bandwidth in bytes/s: the best of ``repeats`` ``np.add.reduce`` passes over ``nbytes`` of float64.

    The best (not the median) pass, because the floor built from it must be a lower bound: on a shared
    machine a median pass includes other processes' interference.
    """
    buf = np.ones(max(1, nbytes // 8), np.float64)
    np.add.reduce(buf)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.add.reduce(buf)
        times.append(time.perf_counter() - t0)
    return buf.nbytes / min(times)


class _TorchRunner:
    """The signatures written directly in torch eager mode (the "no export" reference point)."""

    def __init__(self, model: ItemModel | QuantizedItemModel) -> None:
        import torch

        self._torch = torch
        self.int8 = isinstance(model, QuantizedItemModel)
        self.table = torch.from_numpy(np.ascontiguousarray(model.item_embedding))
        self.bias = torch.from_numpy(model.item_bias)
        self.scale = torch.from_numpy(model.item_scale) if isinstance(model, QuantizedItemModel) else None

    def _dots(self, user: Any, rows: Any, scale: Any) -> Any:
        if scale is None:
            return rows @ user
        return self._torch._weight_int8pack_mm(user[None], rows, scale)[0]  # int8 weights, per-row scale

    def score(self, user: NDArray[np.float32], item_ids: NDArray[np.int32]) -> NDArray[np.float32]:
        with self._torch.inference_mode():
            ids = self._torch.from_numpy(item_ids.astype(np.int64))
            u = self._torch.from_numpy(user)
            scale = None if self.scale is None else self.scale[ids]
            out: NDArray[np.float32] = (self._dots(u, self.table[ids], scale) + self.bias[ids]).numpy()
            return out

    def recommend(self, user: NDArray[np.float32], mask: NDArray[np.float32]) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        with self._torch.inference_mode():
            u = self._torch.from_numpy(user)
            full = self._dots(u, self.table, self.scale) + self.bias + self._torch.from_numpy(mask)
            values, ids = self._torch.topk(full, TOP)
            return ids.numpy().astype(np.int32), values.numpy()

    def finetune(
        self,
        user: NDArray[np.float32],
        item_ids: NDArray[np.int32],
        labels: NDArray[np.float32],
        lr: NDArray[np.float32],
        l2: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        torch = self._torch
        with torch.inference_mode():
            ids = torch.from_numpy(item_ids.astype(np.int64))
            rows = self.table[ids].float()
            if self.scale is not None:
                rows = rows * self.scale[ids][:, None]
            b = self.bias[ids]
            y = torch.from_numpy(labels)
            y = y / torch.clamp(y.sum(), min=1e-12)
            u = torch.from_numpy(user)
            rate, reg = float(lr[0]), float(l2[0])
            for _ in range(FinetuneConfig().steps):
                p = torch.softmax(rows @ u + b, 0)
                u = u - rate * (rows.T @ (p - y) + reg * u)
            loss = -(y * torch.log_softmax(rows @ u + b, 0)).sum() + 0.5 * reg * (u * u).sum()
            return u.numpy(), loss.reshape(1).numpy()


def dequantized_scores(model: ItemModel | QuantizedItemModel, user: NDArray[np.float32]) -> NDArray[np.float32]:
    """numpy reference scores ``f32[num_items]``: ``V @ u + b``, with ``V = q * s[:, None]`` for an int8 model."""
    table = model.item_embedding.astype(np.float32)
    if isinstance(model, QuantizedItemModel):
        table = table * model.item_scale[:, None]
    out: NDArray[np.float32] = (table @ user + model.item_bias).astype(np.float32)
    return out


class OnnxDequantRunner:
    """The "before" of the int8 fast path: ONNX graphs that dequantize the whole int8 table on every call.

    What a naive int8 ONNX export does (built here, not in :mod:`privrec.export`, because nothing ships it):
    ``Cast(item_embedding int8[n, d]) → Mul(item_scale f32[n, 1]) → MatMul(·, user as a [d, 1] column) →
    Squeeze → Add(item_bias)`` gives ``scores f32[n]`` over the whole catalog; ``recommend`` then adds the
    mask and takes ``TopK`` (K = ``top_k``, sorted, largest first) with the ids cast to int32. The user is a
    ``[d, 1]`` column so the graph is not penalised by onnxruntime's slow 1-D ``MatMul`` (see
    :mod:`privrec.export.onnx`): the gap to the shipped graph is the per-call dequantization alone.
    Weights are embedded in the graphs; onnxruntime runs on the CPU with ``threads`` intra-/inter-op threads
    and its ``ConstantFolding`` optimizer disabled: with it (the default), onnxruntime folds ``Cast`` → ``Mul``
    of the two initializers into a float32 table when the session loads (``4 * n * d`` bytes resident, the
    float32 graph's speed), so nothing would be dequantized per call (checked on onnxruntime 1.32:
    ``recommend`` at 100k × 32 took 0.30 ms folded vs 2.5 ms unfolded).
    """

    def __init__(self, model: QuantizedItemModel, *, top_k: int = TOP, threads: int = 1) -> None:
        if not isinstance(model, QuantizedItemModel):
            raise TypeError(f"`model` must be a QuantizedItemModel. Found {type(model).__name__}.")
        n = model.num_items
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 < top_k <= n:
            raise ValueError(f"`top_k` must be an int in [1, {n}] (the number of items). Found {top_k!r}.")
        self.num_items = n
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
        self._sessions = {
            name: ort.InferenceSession(
                proto.SerializeToString(), options, providers=["CPUExecutionProvider"], disabled_optimizers=["ConstantFolding"]
            )
            for name, proto in self.build(model, top_k=top_k).items()
        }

    @staticmethod
    def build(model: QuantizedItemModel, *, top_k: int = TOP) -> dict[str, onnx.ModelProto]:
        """The ``score`` (``user f32[d] → scores f32[n]``) and ``recommend`` (``user, mask f32[n] → top_ids
        i32[K], top_scores f32[K]``) models, opset 17, weights embedded."""
        n, d = model.num_items, model.dim
        weights = [
            numpy_helper.from_array(np.ascontiguousarray(model.item_embedding, np.int8), "item_embedding"),
            numpy_helper.from_array(model.item_scale.astype(np.float32).reshape(n, 1), "item_scale"),
            numpy_helper.from_array(model.item_bias.astype(np.float32), "item_bias"),
            numpy_helper.from_array(np.array([1], np.int64), "axis_1"),
        ]
        k = numpy_helper.from_array(np.array([top_k], np.int64), "k")
        scores = [
            helper.make_node("Cast", ["item_embedding"], ["table_f32"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["table_f32", "item_scale"], ["table_deq"]),
            helper.make_node("Unsqueeze", ["user", "axis_1"], ["user_col"]),
            helper.make_node("MatMul", ["table_deq", "user_col"], ["dots_col"]),
            helper.make_node("Squeeze", ["dots_col", "axis_1"], ["dots"]),
            helper.make_node("Add", ["dots", "item_bias"], ["scores"]),
        ]
        top = [
            helper.make_node("Add", ["scores", "mask"], ["masked"]),
            helper.make_node("TopK", ["masked", "k"], ["top_scores", "top_ids_64"], axis=0, largest=1, sorted=1),
            helper.make_node("Cast", ["top_ids_64"], ["top_ids"], to=TensorProto.INT32),
        ]
        f32, i32 = TensorProto.FLOAT, TensorProto.INT32
        user = helper.make_tensor_value_info("user", f32, [d])
        specs = {
            "score": (scores, weights, [user], [helper.make_tensor_value_info("scores", f32, [n])]),
            "recommend": (
                scores + top,
                [*weights, k],
                [user, helper.make_tensor_value_info("mask", f32, [n])],
                [
                    helper.make_tensor_value_info("top_ids", i32, [top_k]),
                    helper.make_tensor_value_info("top_scores", f32, [top_k]),
                ],
            ),
        }
        models: dict[str, onnx.ModelProto] = {}
        for name, (nodes, inits, inputs, outputs) in specs.items():
            graph = helper.make_graph(nodes, f"privrec_dequant_{name}", inputs, outputs, initializer=inits)
            proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="privrec-bench")
            proto.ir_version = 8
            onnx.checker.check_model(proto)
            models[name] = proto
        return models

    def score_all(self, user: NDArray[np.float32]) -> NDArray[np.float32]:
        """``scores f32[num_items]``: every item, in id order."""
        (scores,) = self._sessions["score"].run(["scores"], {"user": np.ascontiguousarray(user, np.float32)})
        return np.asarray(scores, np.float32)

    def recommend(self, user: NDArray[np.float32], mask: NDArray[np.float32]) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """``(top_ids i32[K], top_scores f32[K])``, highest first."""
        feeds = {"user": np.ascontiguousarray(user, np.float32), "mask": np.ascontiguousarray(mask, np.float32)}
        ids, scores = self._sessions["recommend"].run(["top_ids", "top_scores"], feeds)
        return np.asarray(ids, np.int32), np.asarray(scores, np.float32)


def _litert_dequant(model: QuantizedItemModel, out: Path) -> Callable[[NDArray[np.float32], NDArray[np.float32]], Any]:
    """The previous TFLite int8 ``recommend``: ``scale * (cast(q) @ u)`` (the table dequantized per call)."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    n, d = model.num_items, model.dim

    class _Old(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.table, self.scale, self.bias = (tf.constant(a) for a in model.tensors().values())

        @tf.function(input_signature=[tf.TensorSpec([d], tf.float32, name="user"), tf.TensorSpec([n], tf.float32, name="mask")])  # type: ignore[untyped-decorator]
        def recommend(self, user: Any, mask: Any) -> dict[str, Any]:
            zero = tf.cast(tf.minimum(tf.abs(user[0]), 0.0), tf.int32)
            q = tf.gather(self.table, tf.range(n + zero))
            full = tf.linalg.matvec(tf.cast(q, tf.float32), user) * self.scale
            top_scores, top_ids = tf.math.top_k(full + self.bias + mask, k=TOP, sorted=True)
            return {"top_ids": top_ids, "top_scores": top_scores}

    module = _Old()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.recommend.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    path = out / "dequant.tflite"
    path.write_bytes(converter.convert())
    runner = Interpreter(model_path=str(path), num_threads=1).get_signature_runner()  # the only signature
    return lambda user, mask: runner(user=user, mask=mask)


def _onnx_scan(bundle_dir: Path) -> Callable[[NDArray[np.float32]], Any] | None:
    """The scan of the bundle's int8 ``recommend`` alone: its ``MatMulNBits`` node (bias fused) as a one-node
    graph over the same initializers and session options, ``user`` in, ``f32[N]`` out; None when the graph has
    no such node (``d`` that is not a power of two ≥ 16)."""
    from privrec.export.onnx_runner import GRAPH_FILES, session_options

    model = onnx.load(str(bundle_dir / GRAPH_FILES["recommend"]))
    nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    if len(nodes) != 1 or nodes[0].input[0] != "user":
        return None
    node = nodes[0]
    dim = next(int(a.i) for a in node.attribute if a.name == "K")
    graph = helper.make_graph(
        [node],
        "privrec_scan",
        [helper.make_tensor_value_info("user", TensorProto.FLOAT, [dim])],
        [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)],
        [t for t in model.graph.initializer if t.name in node.input],
    )
    scan = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    options = session_options("recommend", 1, int8_kernel="MatMulNBits")
    session = ort.InferenceSession(scan.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda user: session.run([node.output[0]], {"user": user})[0]


def _litert_scan(model: QuantizedItemModel, out: Path) -> Callable[[NDArray[np.float32]], Any]:
    """LiteRT's ``FULLY_CONNECTED`` alone over the int8 table: the converter's dynamic-range quantization of the
    dequantized table (int8 weights with one scale per row, the bias fused: one op, ``user`` in, ``f32[N]`` out)."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    dequantized = model.dequantize().item_embedding

    class _Scan(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.table, self.bias = tf.constant(dequantized), tf.constant(model.item_bias)

        @tf.function(input_signature=[tf.TensorSpec([model.dim], tf.float32, name="user")])  # type: ignore[untyped-decorator]
        def scan(self, user: Any) -> dict[str, Any]:
            return {"scores": tf.linalg.matvec(self.table, user) + self.bias}

    module = _Scan()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.scan.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = out / "scan.tflite"
    path.write_bytes(converter.convert())
    runner = Interpreter(model_path=str(path), num_threads=1).get_signature_runner()
    return lambda user: runner(user=user)["scores"]


@dataclass(frozen=True)
class _Case:
    backend: str
    precision: str
    op: str
    fn: Callable[[], object]
    max_abs_err: float | None = None  # vs the numpy reference of the precision, one call before timing


def _top_err(result: tuple[NDArray[Any], NDArray[Any]], ref: NDArray[np.float32]) -> float:
    """``recommend``'s ``(top_ids, top_scores)`` vs reference scores ``ref`` (mask included): the values vs the
    reference top-K values, and vs ``ref[top_ids]``."""
    ids, top = np.asarray(result[0], np.int64), np.asarray(result[1], np.float32)
    want = np.sort(ref)[::-1][: top.size]
    return float(max(np.max(np.abs(top - want)), np.max(np.abs(top - ref[ids]))))


def _score_err(scores: NDArray[Any], ref: NDArray[np.float32]) -> float:
    return float(np.max(np.abs(np.asarray(scores, np.float32) - ref)))


def _runner_cases(
    backend: str, precision: str, runner: Any, inputs: dict[str, Any], ref: NDArray[np.float32], ops: tuple[str, ...] = OPS
) -> list[_Case]:
    user, ids, mask, ft = inputs["user"], inputs["all_ids"], inputs["mask"], inputs["finetune"]

    def score_top() -> object:
        return top_k(score_catalog(runner, user, ids), TOP)

    fns: dict[str, Callable[[], object]] = {
        "score+top10": score_top,
        "recommend": lambda: runner.recommend(user, mask),
        "finetune": lambda: runner.finetune(user, *ft),
    }
    errs: dict[str, Callable[[], float]] = {
        "score+top10": lambda: _score_err(score_catalog(runner, user, ids), ref),
        "recommend": lambda: _top_err(runner.recommend(user, mask), ref + mask),
    }
    return [_Case(backend, precision, op, fns[op], errs[op]() if op in errs else None) for op in ops]


def _cases(model: ItemModel, qmodel: QuantizedItemModel, work: Path, inputs: dict[str, Any]) -> list[_Case]:
    steps = FinetuneConfig().steps
    user, mask = inputs["user"], inputs["mask"]
    cases: list[_Case] = []
    for precision, m in (("float32", model), ("int8", qmodel)):
        ref = dequantized_scores(m, user)
        for fmt, backend in (("onnx", "onnxruntime"), ("tflite", "litert")):
            out = work / f"{fmt}-{precision}"
            record = export_format(m, out, fmt, finetune_steps=steps)
            runner: SignatureRunner = get_runner_factory(fmt)(out, record)
            cases += _runner_cases(backend, precision, runner, inputs, ref)
        cases += _runner_cases("torch", precision, _TorchRunner(m), inputs, ref)
    qref = dequantized_scores(qmodel, user)
    deq = OnnxDequantRunner(qmodel, top_k=TOP, threads=1)

    def deq_score_top() -> object:
        return top_k(deq.score_all(user), TOP)

    deq_err = _score_err(deq.score_all(user), qref), _top_err(deq.recommend(user, mask), qref + mask)
    cases.append(_Case("onnxruntime-dequant", "int8", "score+top10", deq_score_top, deq_err[0]))
    cases.append(_Case("onnxruntime-dequant", "int8", "recommend", lambda: deq.recommend(user, mask), deq_err[1]))
    old = _litert_dequant(qmodel, work)
    first = old(user, mask)
    old_err = _top_err((first["top_ids"], first["top_scores"]), qref + mask)
    cases.append(_Case("litert-dequant", "int8", "recommend", lambda: old(user, mask), old_err))
    onnx_scan = _onnx_scan(work / "onnx-int8")
    if onnx_scan is not None:
        cases.append(_Case("onnxruntime-scan", "int8", "scan", lambda: onnx_scan(user), _score_err(onnx_scan(user), qref)))
    litert_scan = _litert_scan(qmodel, work)
    cases.append(_Case("litert-scan", "int8", "scan", lambda: litert_scan(user), _score_err(litert_scan(user), qref)))
    table, bias = model.item_embedding, model.item_bias

    def numpy_baseline() -> object:
        s = table @ user + bias
        return np.argpartition(-s, TOP)[:TOP]

    cases.append(_Case("numpy", "float32", "baseline", numpy_baseline))
    scores = np.empty(table.shape[0], np.float32)

    def numpy_preallocated() -> object:  # the same without the catalog-sized temporaries (but argpartition's)
        np.matmul(table, user, out=scores)
        np.add(scores, bias, out=scores)
        np.negative(scores, out=scores)
        return np.argpartition(scores, TOP)[:TOP]

    cases.append(_Case("numpy-prealloc", "float32", "score+top10", numpy_preallocated))
    cases.append(_Case("numpy-topk", "float32", "score+top10", lambda: top_k(table @ user + bias, TOP)))
    return cases


def _time_cases(cases: list[_Case], calls: int, warmup: int, seed: int, burst: int) -> list[NDArray[np.float64]]:
    """Seconds ``float64[calls, 2]`` per case: column 0 the first (cold) call of a visit, 1 its last (warm)."""
    if burst < 2:
        raise ValueError(f"`burst` must be >= 2 (a cold and a warm call per visit). Found {burst}.")
    for case in cases:
        for _ in range(warmup):
            case.fn()
    times = np.zeros((len(cases), calls, 2))
    rng = np.random.default_rng(seed)
    for rep in range(calls):
        for i in rng.permutation(len(cases)):
            fn = cases[i].fn
            t0 = time.perf_counter()
            fn()
            cold = time.perf_counter() - t0
            for _ in range(burst - 2):
                fn()
            t1 = time.perf_counter()
            fn()
            times[i, rep] = (cold, time.perf_counter() - t1)
    return list(times)


def _inputs(num_items: int, dim: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 1)
    ids = rng.choice(num_items, M_FINETUNE, replace=False).astype(np.int32)
    labels = np.zeros(M_FINETUNE, np.float32)
    labels[:5] = 1.0
    ft = FinetuneConfig()
    return {
        "user": rng.normal(size=dim).astype(np.float32),
        "all_ids": np.arange(num_items, dtype=np.int32),
        "mask": np.zeros(num_items, np.float32),
        "finetune": (ids, labels, np.array([ft.lr], np.float32), np.array([ft.l2], np.float32)),
    }


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_latency(plan: LatencyPlan) -> dict[str, Any]:
    """Measure every case of ``plan``; returns ``{"plan", "bandwidth", "baselines", "rows"}`` (times in ms)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    dram: list[float] = []
    measured: list[tuple[int, int, float, list[tuple[_Case, NDArray[np.float64]]]]] = []
    try:
        with threadpool_limits(limits=1), tempfile.TemporaryDirectory(prefix="privrec-bench-") as tmp:
            for n in plan.catalogs:
                for d in plan.dims:
                    t0 = time.perf_counter()
                    model = synthetic_model(n, d, plan.seed + n + d)
                    qmodel = quantize_int8(model)
                    work = Path(tmp) / f"{n}x{d}"
                    cases = _cases(model, qmodel, work, _inputs(n, d, plan.seed))
                    dram.append(measure_bandwidth(plan.bandwidth_mb << 20))
                    hot = measure_bandwidth(4 * n * d, repeats=51)
                    times = _time_cases(cases, plan.calls, plan.warmup, plan.seed + n + d, plan.burst)
                    dram.append(measure_bandwidth(plan.bandwidth_mb << 20))
                    measured.append((n, d, hot, list(zip(cases, times, strict=True))))
                    _say(f"[bench latency] {n}x{d}: {len(cases)} cases x {plan.calls} calls in {time.perf_counter() - t0:.0f} s")
    finally:
        torch.set_num_threads(torch_threads)
    bw = max(dram)  # the best DRAM pass of the whole run: the floor is a lower bound
    baselines, rows = _summarise(measured, bw)
    browser = run_browser_latency(plan)
    return {"plan": asdict(plan), "bandwidth_dram_gbs_best": bw / 1e9, "baselines": baselines, "rows": rows, "browser": browser}


def _summarise(
    measured: list[tuple[int, int, float, list[tuple[_Case, NDArray[np.float64]]]]], bw: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Baselines (numpy p50/p95, floors) and rows (p50/p95 and both ratios) from the timed calls."""
    baselines: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for n, d, hot, cases in measured:
        base_both = next(t for c, t in cases if c.backend == "numpy")
        base, base_cold = base_both[:, 1], base_both[:, 0]
        base_p50 = float(np.median(base)) * 1e3
        base_cold_p50 = float(np.median(base_cold)) * 1e3
        floors = {"float32": 4 * n * d / bw * 1e3, "int8": n * d / bw * 1e3}
        baselines.append(
            {
                "catalog": n,
                "dim": d,
                "numpy_p50_ms": base_p50,
                "numpy_p95_ms": float(np.percentile(base, 95)) * 1e3,
                "numpy_p50_cold_ms": base_cold_p50,
                "bandwidth_dram_gbs": bw / 1e9,
                "bandwidth_hot_gbs": hot / 1e9,
                "floor_float32_ms": floors["float32"],
                "floor_int8_ms": floors["int8"],
            }
        )
        for c, both in cases:
            if c.backend == "numpy":
                continue
            t, cold = both[:, 1], both[:, 0]
            p50 = float(np.median(t)) * 1e3
            p50_cold = float(np.median(cold)) * 1e3
            rows.append(
                {
                    "catalog": n,
                    "dim": d,
                    "backend": c.backend,
                    "precision": c.precision,
                    "op": c.op,
                    "p50_ms": p50,
                    "p95_ms": float(np.percentile(t, 95)) * 1e3,
                    "calls": len(t),
                    "ratio_numpy": p50 / base_p50,
                    "ratio_floor": p50 / floors[c.precision],
                    "p50_cold_ms": p50_cold,
                    "ratio_numpy_cold": p50_cold / base_cold_p50,
                    "ratio_floor_cold": p50_cold / floors[c.precision],
                    "max_abs_err": c.max_abs_err,
                }
            )
    return baselines, rows


# --- the browser row: the same bundle in onnxruntime-web (Chromium, WebAssembly) vs onnxruntime native ----------

WEB_SAMPLE = Path(__file__).resolve().parents[2] / "web_sample"
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_OPS = ("recommend", "finetune")
_DRIVER_TIMEOUT_S = 300.0  # one command (a bundle load, a round); the driver is killed past it


def browser_unavailable() -> str | None:
    """Why the browser row cannot run on this machine (what to install), or None when it can."""
    if not (WEB_SAMPLE / "package.json").is_file():
        return f"web_sample/ not found at {WEB_SAMPLE}: the browser row needs a source checkout"
    if shutil.which("node") is None:
        return "node is not installed (Node 20.19+ builds and drives the web sample)"
    missing = [p for p in ("onnxruntime-web", "playwright-core", "vite") if not (WEB_SAMPLE / "node_modules" / p).is_dir()]
    if missing:
        return f"web_sample/node_modules lacks {missing}: run `make web`"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is not installed: run `make chromium` (Debian's chromium package)"
    return None


class _IsolatedHandler(SimpleHTTPRequestHandler):
    """Static files, cross-origin isolated: Chromium then resolves ``performance.now()`` to 5 µs, not 100 µs."""

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the bench's stderr is its progress
        pass


@contextmanager
def _serve(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (an ephemeral port) while the block runs; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_IsolatedHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _BrowserDriver:
    """``web_sample/scripts/bench.mjs`` in a subprocess: one JSON command per line in, one JSON answer per line out."""

    def __init__(self, base_url: str, log: Path) -> None:
        self._log = log.open("w")
        self._proc = subprocess.Popen(
            [shutil.which("node") or "node", "scripts/bench.mjs", base_url, str(CHROMIUM)],
            cwd=WEB_SAMPLE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )  # fmt: skip
        self._log_path = log
        self.browser = str(self._read()["browser"])

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        watchdog = threading.Timer(_DRIVER_TIMEOUT_S, self._proc.kill)
        watchdog.start()
        try:
            line = self._proc.stdout.readline()
        finally:
            watchdog.cancel()
        if not line:
            self._log.flush()
            raise RuntimeError(f"the browser driver stopped: {self._log_path.read_text()[-1500:].strip() or 'no output'}")
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise RuntimeError(f"browser: {msg['error']}")
        return msg

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            if self._proc.poll() is None and self._proc.stdin is not None:
                self._proc.stdin.write('{"cmd": "quit"}\n')
                self._proc.stdin.flush()
            self._proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        finally:
            self._log.close()


def _build_site(out: Path, work: Path) -> None:
    """``vite build`` of the web sample's current sources into ``out`` (the app and ``bench.html``)."""
    node = shutil.which("node") or "node"
    proc = subprocess.run(
        [node, "node_modules/vite/bin/vite.js", "build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "warn"],
        cwd=WEB_SAMPLE, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        (work / "vite.log").write_text(proc.stdout + proc.stderr)
        raise RuntimeError(f"vite build failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}")


def _web_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    ids, labels, lr, l2 = inputs["finetune"]
    return {
        "user": inputs["user"].tolist(),
        "finetune": {"item_ids": ids.tolist(), "labels": labels.tolist(), "lr": float(lr[0]), "l2": float(l2[0])},
    }


def _browser_case(
    driver: _BrowserDriver, url: str, model: ItemModel | QuantizedItemModel, native: SignatureRunner, inputs: dict[str, Any],
    plan: LatencyPlan, seed: int,
) -> tuple[dict[str, NDArray[np.float64]], dict[str, NDArray[np.float64]], dict[str, float]]:
    """Browser and native ``[calls, 2]`` (cold, warm) milliseconds per op, alternating rounds, and each op's error."""
    opened = driver.ask(cmd="open", url=url, inputs=_web_inputs(inputs))
    if not opened.get("isolated"):
        raise RuntimeError("bench.html is not cross-origin isolated: performance.now() would resolve only 100 µs")
    user, mask, ft = inputs["user"], inputs["mask"], inputs["finetune"]
    cases = [
        _Case("onnxruntime", "", "recommend", lambda: native.recommend(user, mask)),
        _Case("onnxruntime", "", "finetune", lambda: native.finetune(user, *ft)),
    ]
    driver.ask(cmd="round", visits=plan.warmup, burst=plan.burst, seed=seed)
    _time_cases(cases, 0, plan.warmup, seed, plan.burst)
    web: dict[str, list[list[float]]] = {op: [] for op in BROWSER_OPS}
    nat: dict[str, list[NDArray[np.float64]]] = {op: [] for op in BROWSER_OPS}
    done = 0
    while done < plan.calls:
        visits = min(plan.browser_chunk, plan.calls - done)
        got = driver.ask(cmd="round", visits=visits, burst=plan.burst, seed=seed + 1 + done)
        for op in BROWSER_OPS:
            web[op] += got[op]
        for case, times in zip(cases, _time_cases(cases, visits, 0, seed + 1 + done, plan.burst), strict=True):
            nat[case.op].append(times * 1e3)
        done += visits
    out = driver.ask(cmd="outputs")
    ref = dequantized_scores(model, user) + mask
    want_user, want_loss = native.finetune(user, *ft)
    errors = {
        "recommend": _top_err((np.asarray(out["top_ids"]), np.asarray(out["top_scores"], np.float32)), ref),
        "finetune": float(max(np.max(np.abs(np.asarray(out["user_out"]) - want_user)),
                              abs(float(out["loss"]) - float(np.asarray(want_loss).reshape(-1)[0])))),
    }  # fmt: skip
    return ({op: np.asarray(web[op], np.float64) for op in BROWSER_OPS},
            {op: np.concatenate(nat[op]) for op in BROWSER_OPS}, errors)  # fmt: skip


def run_browser_latency(plan: LatencyPlan) -> dict[str, Any]:
    """The browser row (module docstring): ``{"status", "browser", "rows"}``; ``status`` is ``"ok"``, or why there
    are no rows (what is missing, or what failed) — it never raises for a missing or failing browser."""
    why = browser_unavailable()
    if why is not None:
        return {"status": why, "browser": None, "rows": []}
    if not plan.browser_catalogs or not plan.browser_dims:
        return {"status": "not planned", "browser": None, "rows": []}
    from privrec.export.bundle import export_bundle

    steps = FinetuneConfig().steps
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="privrec-bench-web-") as tmp:
            work = Path(tmp)
            site = work / "site"
            _build_site(site, work)
            cases = []
            for n in plan.browser_catalogs:
                for d in plan.browser_dims:
                    model = synthetic_model(n, d, plan.seed + n + d)  # the table the main rows time
                    for precision, m in (("float32", model), ("int8", quantize_int8(model))):
                        name = f"{n}x{d}-{precision}"
                        # standard ops (MatMulInteger): what a browser bundle is exported with (web_sample/README.md)
                        export_bundle(
                            m, site / "bundles" / name, formats=("onnx",), finetune=FinetuneConfig(steps=steps),
                            onnx_standard_ops=True,
                        )
                        record = export_format(m, work / "native" / name, "onnx", finetune_steps=steps, onnx_standard_ops=True)
                        native = get_runner_factory("onnx")(work / "native" / name, record)
                        cases.append((n, d, precision, m, native, f"bundles/{name}/"))
            with _serve(site) as base:
                driver = _BrowserDriver(base, work / "driver.log")
                try:
                    for n, d, precision, m, native, url in cases:
                        t0 = time.perf_counter()
                        inputs = _inputs(n, d, plan.seed)
                        web, nat, errors = _browser_case(driver, url, m, native, inputs, plan, plan.seed + n + d)
                        rows += _browser_rows(n, d, precision, driver.browser, web, nat, errors)
                        seconds = time.perf_counter() - t0
                        _say(f"[bench latency] browser {n}x{d} {precision}: {plan.calls} visits in {seconds:.0f} s")
                finally:
                    driver.close()
            return {"status": "ok", "browser": f"Chromium {driver.browser}", "rows": rows}
    except (RuntimeError, OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
        return {"status": f"failed: {exc}", "browser": None, "rows": rows}


def _browser_rows(
    n: int, d: int, precision: str, browser: str, web: dict[str, NDArray[np.float64]], nat: dict[str, NDArray[np.float64]],
    errors: dict[str, float],
) -> list[dict[str, Any]]:
    rows = []
    for op in BROWSER_OPS:
        w, v = web[op], nat[op]
        p50, p50_cold = float(np.median(w[:, 1])), float(np.median(w[:, 0]))
        native_p50, native_cold = float(np.median(v[:, 1])), float(np.median(v[:, 0]))
        rows.append(
            {
                "catalog": n,
                "dim": d,
                "backend": "onnxruntime-web",
                "runtime": f"Chromium {browser}, WebAssembly, 1 thread",
                "precision": precision,
                "op": op,
                "calls": len(w),
                "p50_ms": p50,
                "p95_ms": float(np.percentile(w[:, 1], 95)),
                "p50_cold_ms": p50_cold,
                "native_backend": "onnxruntime",
                "native_p50_ms": native_p50,
                "native_p95_ms": float(np.percentile(v[:, 1], 95)),
                "native_p50_cold_ms": native_cold,
                "ratio_native": p50 / native_p50,
                "ratio_native_cold": p50_cold / native_cold,
                "max_abs_err": errors[op],
            }
        )
    return rows


def browser_markdown(result: dict[str, Any]) -> str:
    """The browser section of the latency report (markdown)."""
    from .report import table

    browser = result.get("browser") or {"status": "not planned", "rows": []}
    head = "## Browser: onnxruntime-web in Chromium (WebAssembly, one thread) vs onnxruntime native\n\n"
    if browser["status"] != "ok":
        return head + f"Browser row: {browser['status']}.\n"
    note = (
        f"{browser['browser']}, headless, the web sample's `bench.html` (onnxruntime-web, one WebAssembly thread, the "
        "page cross-origin isolated so `performance.now()` resolves 5 µs). The same bundle's ONNX graphs run natively "
        "in onnxruntime (one thread) in the same loop, rounds alternating between the two. The bundles are exported "
        "with `--onnx-standard-ops`, as web_sample/README.md says: int8 scans with `MatMulInteger`, which "
        "onnxruntime-web runs in integers, not onnxruntime's `MatMulNBits` (the default, about 2x faster natively), "
        "which it runs in float32. `recommend`: mask of zeros, "
        "K = 10; `finetune`: M = 50, the exported steps. `× native` = browser p50 / native p50 (warm; cold beside it). "
        "`max abs err`: `recommend` vs the numpy reference, `finetune` vs the native output.\n\n"
    )
    columns = [
        ("catalog", "items"),
        ("dim", "d"),
        ("precision", "precision"),
        ("op", "op"),
        ("p50_ms", "browser p50 ms"),
        ("p95_ms", "browser p95 ms"),
        ("native_p50_ms", "native p50 ms"),
        ("ratio_native", "× native"),
        ("p50_cold_ms", "browser cold p50 ms"),
        ("native_p50_cold_ms", "native cold p50 ms"),
        ("ratio_native_cold", "cold × native"),
        ("max_abs_err", "max abs err"),
    ]
    return head + note + table(browser["rows"], columns)
