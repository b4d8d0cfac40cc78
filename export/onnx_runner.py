"""Run an exported ONNX artifact with onnxruntime: the on-device side of the ONNX format.

Needs only onnxruntime and numpy (``privrec[runtime]``); the exporter (:mod:`privrec.export.onnx`) needs the
``onnx`` package too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from .base import ArtifactRecord
from .errors import BundleError
from .files import bundle_path

__all__ = ["GRAPH_FILES", "OnnxRunner", "load_runner"]

GRAPH_FILES = {
    "score": "model.score.onnx",
    "recommend": "model.recommend.onnx",
    "finetune": "model.finetune.onnx",
}


def load_runner(bundle_dir: Path, record: ArtifactRecord) -> OnnxRunner:
    """The runner factory of the ``onnx`` format (:func:`privrec.export.base.get_runner_factory`)."""
    return OnnxRunner.load(bundle_dir, record)


class OnnxRunner:
    """Runs an exported ONNX artifact with onnxruntime (CPU, one thread per session by default)."""

    def __init__(self, sessions: dict[str, ort.InferenceSession]) -> None:
        self._sessions = sessions

    @classmethod
    def load(cls, bundle_dir: Path, record: ArtifactRecord, *, threads: int = 1) -> OnnxRunner:
        """One ``InferenceSession`` per signature graph; ``threads`` sets intra- and inter-op threads.

        Opens only graph files the record lists, inside ``bundle_dir`` and reached without a symbolic link
        (:class:`~privrec.export.errors.BundleError` otherwise), whatever ``details.graphs`` says.
        """
        graphs = record.details.get("graphs", GRAPH_FILES)
        names = ("score", "recommend", "finetune")
        if not isinstance(graphs, dict) or not all(isinstance(graphs.get(n), str) for n in names):
            raise BundleError(
                f"manifest.json: field `artifacts.onnx.details.graphs` must map {list(names)} to files. Found {graphs!r:.200}."
            )
        paths: dict[str, Path] = {}
        for name in names:
            rel = str(graphs[name])
            if rel not in record.files:
                raise BundleError(
                    f"manifest.json: field `artifacts.onnx.details.graphs.{name}` names {rel!r}, which is not a file of "
                    "`artifacts.onnx.files`: a runner opens only listed files."
                )
            paths[name] = bundle_path(Path(bundle_dir), rel)
        found = record.details.get("int8_kernel")
        kernel = found if isinstance(found, str) else None  # only picks prepacking: a wrong value costs speed, not results
        options = {name: session_options(name, threads, int8_kernel=kernel) for name in names}
        sessions = {
            name: ort.InferenceSession(str(paths[name]), options[name], providers=["CPUExecutionProvider"]) for name in names
        }
        for name, session in sessions.items():
            _check_io(str(graphs[name]), session, record.signatures[name])
        return cls(sessions)

    def score(self, user: NDArray[np.float32], item_ids: NDArray[np.int32]) -> NDArray[np.float32]:
        """``scores f32[N]``."""
        feeds = {"user": _f32(user), "item_ids": np.ascontiguousarray(item_ids, np.int32)}
        (scores,) = self._sessions["score"].run(["scores"], feeds)
        return np.asarray(scores, np.float32)

    def recommend(self, user: NDArray[np.float32], mask: NDArray[np.float32]) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """``(top_ids i32[K], top_scores f32[K])``."""
        ids, scores = self._sessions["recommend"].run(["top_ids", "top_scores"], {"user": _f32(user), "mask": _f32(mask)})
        return np.asarray(ids, np.int32), np.asarray(scores, np.float32)

    def finetune(
        self,
        user: NDArray[np.float32],
        item_ids: NDArray[np.int32],
        labels: NDArray[np.float32],
        lr: NDArray[np.float32],
        l2: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(user_out f32[d], loss f32[1])``."""
        feeds = {
            "user": _f32(user),
            "item_ids": np.ascontiguousarray(item_ids, np.int32),
            "labels": _f32(labels),
            "lr": _f32(lr).reshape(1),
            "l2": _f32(l2).reshape(1),
        }
        out, loss = self._sessions["finetune"].run(["user_out", "loss"], feeds)
        return np.asarray(out, np.float32), np.asarray(loss, np.float32)


#: The graph optimization level of every session. The exported graphs are already lean (no foldable constant
#: chains, integer kernels chosen at export), so onnxruntime's graph passes buy nothing per call and cost
#: session creation time.
GRAPH_OPTIMIZATION = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
#: The signatures whose sessions prepack their constant weights, when the int8 graphs scan with
#: ``MatMulNBits`` (manifest ``details.int8_kernel``): its integer kernel exists only on prepacked weights
#: (unpacked, the op runs a float fallback 25x slower: 9.3 vs 0.37 ms at 100k x 32), and prepacking costs
#: about 8 ms of session creation per ``MatMulNBits`` node at 100k x 32 (one thread, onnxruntime 1.32).
#: Everything else runs unpacked: ``MatMulInteger`` over the transposed table measured faster unpacked
#: (recommend 1.27 vs 1.77 ms, catalog score 1.13 vs 1.47 ms) and packing the 3.2 MB table cost ~8 ms;
#: ``finetune`` gathers a few rows; float32 was within noise either way.
PREPACKED_WITH_MATMULNBITS = ("score", "recommend")


def session_options(signature: str, threads: int = 1, *, int8_kernel: str | None = None) -> ort.SessionOptions:
    """The ``SessionOptions`` of one signature's session: ``threads`` intra- and inter-op threads,
    :data:`GRAPH_OPTIMIZATION`, and weight prepacking only for :data:`PREPACKED_WITH_MATMULNBITS` of a
    ``MatMulNBits`` artifact (``int8_kernel``, from the manifest's ``details``)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.graph_optimization_level = GRAPH_OPTIMIZATION
    if not (int8_kernel == "MatMulNBits" and signature in PREPACKED_WITH_MATMULNBITS):
        options.add_session_config_entry("session.disable_prepacking", "1")
    return options


_ORT_TYPES = {"float32": "tensor(float)", "int32": "tensor(int32)"}


def _check_io(file: str, session: ort.InferenceSession, signature: tuple[Sequence[Any], Sequence[Any]]) -> None:
    """Refuse a graph whose inputs or outputs differ from the manifest's signature (names, dtypes, fixed dims)."""
    for kind, specs, args in (("inputs", signature[0], session.get_inputs()), ("outputs", signature[1], session.get_outputs())):
        found = [(a.name, a.type, [d if isinstance(d, int) else -1 for d in a.shape]) for a in args]
        want = [(t.name, _ORT_TYPES.get(t.dtype, t.dtype), list(t.shape)) for t in specs]
        if found != want:
            raise ValueError(f"{file}: graph {kind} {found} differ from the manifest signature {want}.")


def _f32(a: NDArray[Any]) -> NDArray[np.float32]:
    return np.ascontiguousarray(a, np.float32)
