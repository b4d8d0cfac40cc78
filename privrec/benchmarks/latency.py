"""Latency suite: ``score`` + top-10, ``recommend`` and ``finetune`` per backend × precision × catalog × d.

Protocol (issue #6): one thread everywhere (onnxruntime ``intra_op_num_threads=1``, LiteRT
``num_threads=1``, ``torch.set_num_threads(1)``, numpy's BLAS limited to 1 thread by threadpoolctl), warm
(``warmup`` calls per case first), then ``calls`` timed calls per case, **interleaved**: each repeat
times every case once, in a fresh random order, so load from other processes on a shared machine hits
candidates and baselines alike and the ratios stay meaningful. p50 / p95 are over those calls.

Cases per (catalog ``n``, dimension ``d``), on a synthetic model (``V ~ N(0, 0.3²)``, ``b ~ N(0, 0.1²)``,
users ``N(0, 1)``):

- backends: ``torch`` (eager, the maths written directly; int8 via ``torch._weight_int8pack_mm``),
  ``onnxruntime`` (the bundle's ONNX artifact from :mod:`privrec.export.onnx`), ``litert`` (the bundle's
  TFLite artifact from :mod:`privrec.export.tflite`), ``onnxruntime-fast`` (the ``score``/``recommend``
  graphs of :mod:`privrec.export.onnx_int8`: int8 integer kernels, and for float32 the ``[d, 1]`` user
  column; not yet wired into the bundle), and for int8 ``litert-dequant`` (the previous TFLite int8
  ``recommend``, which dequantizes the whole table per call; kept only as the "before");
- ops: ``score+top10`` (the ``score`` signature over every id, then ``np.argpartition`` top-10),
  ``recommend`` (mask all zeros, K = 10), ``finetune`` (M = 50 interactions, the exported step count);
- baselines in the same loop: ``numpy`` float32 ``V @ u + b`` then ``argpartition`` top-10 (what a user
  writes by hand; ``numpy-prealloc``, the same with preallocated outputs, is listed as a row), and the
  **memory floor**: the table's bytes (``4nd`` float32, ``nd`` int8) divided by the read bandwidth,
  measured in the same run as the best ``np.add.reduce`` pass over a buffer larger than the last-level
  cache ("dram", best of the whole run) and over a hot buffer of the float32 table's size ("hot", for
  reference).

Every row carries ``ratio_numpy`` (p50 / numpy p50) and ``ratio_floor`` (p50 / floor of its precision).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privrec.export.base import SignatureRunner, get_runner_factory
from privrec.export.bundle import export_format
from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import QuantizedItemModel, quantize_int8
from privrec.sdk.reconstruct import FinetuneConfig

__all__ = ["FULL", "QUICK", "LatencyPlan", "measure_bandwidth", "run_latency"]

TOP = 10
M_FINETUNE = 50
OPS = ("score+top10", "recommend", "finetune")


@dataclass(frozen=True)
class LatencyPlan:
    """Sizes and repeats of one latency run."""

    catalogs: tuple[int, ...]
    dims: tuple[int, ...]
    calls: int
    warmup: int
    bandwidth_mb: int
    seed: int = 0


FULL = LatencyPlan(catalogs=(1_000, 10_000, 100_000), dims=(32, 64), calls=200, warmup=20, bandwidth_mb=512)
QUICK = LatencyPlan(catalogs=(1_000, 10_000), dims=(32,), calls=30, warmup=3, bandwidth_mb=64)


def synthetic_model(num_items: int, dim: int, seed: int) -> ItemModel:
    """``V ~ N(0, 0.3²)``, ``b ~ N(0, 0.1²)``, float32 (the shapes of the issue, no training)."""
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


@dataclass(frozen=True)
class _Case:
    backend: str
    precision: str
    op: str
    fn: Callable[[], object]


def _runner_cases(backend: str, precision: str, runner: Any, inputs: dict[str, Any], ops: tuple[str, ...] = OPS) -> list[_Case]:
    user, ids, mask, ft = inputs["user"], inputs["all_ids"], inputs["mask"], inputs["finetune"]

    def score_top() -> object:
        s = runner.score(user, ids)
        return np.argpartition(-s, TOP)[:TOP]

    fns: dict[str, Callable[[], object]] = {
        "score+top10": score_top,
        "recommend": lambda: runner.recommend(user, mask),
        "finetune": lambda: runner.finetune(user, *ft),
    }
    return [_Case(backend, precision, op, fns[op]) for op in ops]


def _cases(model: ItemModel, qmodel: QuantizedItemModel, work: Path, inputs: dict[str, Any]) -> list[_Case]:
    from privrec.export.onnx_int8 import Int8FastRunner

    steps = FinetuneConfig().steps
    cases: list[_Case] = []
    for precision, m in (("float32", model), ("int8", qmodel)):
        for fmt, backend in (("onnx", "onnxruntime"), ("tflite", "litert")):
            out = work / f"{fmt}-{precision}"
            record = export_format(m, out, fmt, finetune_steps=steps)
            runner: SignatureRunner = get_runner_factory(fmt)(out, record)
            cases += _runner_cases(backend, precision, runner, inputs)
        cases += _runner_cases("torch", precision, _TorchRunner(m), inputs)
        cases += _runner_cases("onnxruntime-fast", precision, Int8FastRunner.from_model(m), inputs, OPS[:2])
    old = _litert_dequant(qmodel, work)
    cases.append(_Case("litert-dequant", "int8", "recommend", lambda: old(inputs["user"], inputs["mask"])))
    table, bias = model.item_embedding, model.item_bias
    user = inputs["user"]

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
    return cases


def _time_cases(cases: list[_Case], calls: int, warmup: int, seed: int) -> list[NDArray[np.float64]]:
    for case in cases:
        for _ in range(warmup):
            case.fn()
    times = np.zeros((len(cases), calls))
    rng = np.random.default_rng(seed)
    for rep in range(calls):
        for i in rng.permutation(len(cases)):
            t0 = time.perf_counter()
            cases[i].fn()
            times[i, rep] = time.perf_counter() - t0
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
    measured: list[tuple[int, int, float, list[tuple[str, str, str, NDArray[np.float64]]]]] = []
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
                    times = _time_cases(cases, plan.calls, plan.warmup, plan.seed + n + d)
                    dram.append(measure_bandwidth(plan.bandwidth_mb << 20))
                    measured.append((n, d, hot, [(c.backend, c.precision, c.op, t) for c, t in zip(cases, times, strict=True)]))
                    _say(f"[bench latency] {n}x{d}: {len(cases)} cases x {plan.calls} calls in {time.perf_counter() - t0:.0f} s")
    finally:
        torch.set_num_threads(torch_threads)
    bw = max(dram)  # the best DRAM pass of the whole run: the floor is a lower bound
    baselines, rows = _summarise(measured, bw)
    return {"plan": asdict(plan), "bandwidth_dram_gbs_best": bw / 1e9, "baselines": baselines, "rows": rows}


def _summarise(
    measured: list[tuple[int, int, float, list[tuple[str, str, str, NDArray[np.float64]]]]], bw: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Baselines (numpy p50/p95, floors) and rows (p50/p95 and both ratios) from the timed calls."""
    baselines: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for n, d, hot, cases in measured:
        base = next(t for backend, _, _, t in cases if backend == "numpy")
        base_p50 = float(np.median(base)) * 1e3
        floors = {"float32": 4 * n * d / bw * 1e3, "int8": n * d / bw * 1e3}
        baselines.append(
            {
                "catalog": n,
                "dim": d,
                "numpy_p50_ms": base_p50,
                "numpy_p95_ms": float(np.percentile(base, 95)) * 1e3,
                "bandwidth_dram_gbs": bw / 1e9,
                "bandwidth_hot_gbs": hot / 1e9,
                "floor_float32_ms": floors["float32"],
                "floor_int8_ms": floors["int8"],
            }
        )
        for backend, precision, op, t in cases:
            if backend == "numpy":
                continue
            p50 = float(np.median(t)) * 1e3
            rows.append(
                {
                    "catalog": n,
                    "dim": d,
                    "backend": backend,
                    "precision": precision,
                    "op": op,
                    "p50_ms": p50,
                    "p95_ms": float(np.percentile(t, 95)) * 1e3,
                    "calls": len(t),
                    "ratio_numpy": p50 / base_p50,
                    "ratio_floor": p50 / floors[precision],
                }
            )
    return baselines, rows
