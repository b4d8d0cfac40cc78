"""The contract every exporter follows (one module per format, the same signature, a registry).

An exporter is ``export(model, bundle_dir, config) -> ArtifactRecord``: it writes its artifact files
into ``bundle_dir`` and describes them. A runner loads an artifact back and runs the three signatures
(docs/BUNDLE.md) on a desktop runtime, for parity checks and for :mod:`privrec.runtime`:

- ``score(user f32[d], item_ids i32[N]) -> scores f32[N]``
- ``recommend(user f32[d], mask f32[items]) -> top_ids i32[K], top_scores f32[K]``  (mask 0 or -inf)
- ``finetune(user f32[d], item_ids i32[M], labels f32[M], lr f32[1], l2 f32[1]) -> user_out f32[d], loss f32[1]``
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import Int4ItemModel, QuantizedItemModel

__all__ = [
    "COREML_TARGETS",
    "PRECISIONS",
    "ArtifactRecord",
    "CatalogScorer",
    "ExportConfig",
    "Exportable",
    "ExporterFn",
    "Precision",
    "RunnerFactory",
    "SignatureRunner",
    "TensorSpec",
    "available_formats",
    "get_exporter",
    "get_runner_factory",
    "register_exporter",
    "score_catalog",
]

Precision = Literal["float32", "int8", "int4"]
PRECISIONS: tuple[Precision, ...] = ("float32", "int8", "int4")
COREML_TARGETS: tuple[str, ...] = ("iOS18", "iOS16")
Exportable = ItemModel | QuantizedItemModel | Int4ItemModel


@dataclass(frozen=True)
class ExportConfig:
    """Export-time constants baked into every artifact.

    Attributes:
        top_k: ``K`` of the ``recommend`` signature.
        finetune_steps: gradient steps unrolled in the ``finetune`` signature.
        sparsity: target sparsity the table was pruned to (0 = dense); with ``sparsity > 0`` the formats
            that can store a sparse table do (Core ML iOS18 ``constexpr_sparse_to_dense``, ONNX int4 bit
            mask + non-zeros), so pruning shrinks the files.
        coreml_targets: Core ML deployment targets to write: ``("iOS18",)`` (default: one multifunction
            package holding the three signatures over one copy of the weights), ``("iOS18", "iOS16")``
            (plus the fallback for older iOS: three single-function iOS16 packages, each with its own copy
            of the table; dense float32 or int8 only), or ``("iOS16",)`` alone.
        onnx_standard_ops: int8 ONNX graphs from standard ONNX ops only (``MatMulInteger`` over the transposed
            table) instead of onnxruntime's ``com.microsoft`` ``MatMulNBits`` (uint8 rows; about 2x faster in
            onnxruntime on CPU, but onnxruntime-web runs it in float32, several times slower than
            ``MatMulInteger``, and other ONNX runtimes lack it). For browser bundles and non-onnxruntime consumers.
    """

    top_k: int = 10
    finetune_steps: int = 10
    sparsity: float = 0.0
    coreml_targets: tuple[str, ...] = ("iOS18",)
    onnx_standard_ops: bool = False

    def __post_init__(self) -> None:
        if self.top_k <= 0:
            raise ValueError(f"`top_k` must be > 0. Found {self.top_k}.")
        if self.finetune_steps <= 0:
            raise ValueError(f"`finetune_steps` must be > 0. Found {self.finetune_steps}.")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"`sparsity` must be in [0, 1). Found {self.sparsity}.")
        targets = self.coreml_targets
        if (
            not isinstance(targets, tuple)
            or not targets
            or len(set(targets)) != len(targets)
            or not set(targets) <= set(COREML_TARGETS)
        ):
            raise ValueError(
                f"`coreml_targets` must be a non-empty tuple of distinct targets from {list(COREML_TARGETS)}. "
                f"Found {targets!r}."
            )


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature: name, dtype (numpy name) and shape (-1 = dynamic)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ArtifactRecord:
    """What an exporter wrote.

    Attributes:
        format: registry key (``"onnx"``, ``"tflite"``, ``"coreml"``).
        precision: ``"float32"``, ``"int8"`` or ``"int4"``.
        files: paths relative to the bundle directory (a ``.mlpackage`` directory counts as one entry
            per file inside it).
        signatures: for each signature name, its inputs and outputs.
        details: format-specific facts for the manifest (opset, deployment target, compression, …).
    """

    format: str
    precision: Precision
    files: tuple[str, ...]
    signatures: dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]
    details: dict[str, object] = field(default_factory=dict)


class SignatureRunner(Protocol):
    """Runs the three signatures of one loaded artifact. Inputs are already validated."""

    def score(self, user: NDArray[np.float32], item_ids: NDArray[np.int32]) -> NDArray[np.float32]: ...

    def recommend(
        self, user: NDArray[np.float32], mask: NDArray[np.float32]
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]: ...

    def finetune(
        self,
        user: NDArray[np.float32],
        item_ids: NDArray[np.int32],
        labels: NDArray[np.float32],
        lr: NDArray[np.float32],
        l2: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]: ...


@runtime_checkable
class CatalogScorer(Protocol):
    """A runner that may also score the whole catalog in one call, without the ids input (``score_all``)."""

    def score_all(self, user: NDArray[np.float32]) -> NDArray[np.float32] | None:
        """``scores f32[num_items]`` in item order, or None where the loaded artifact has no such signature."""
        ...


def score_catalog(runner: SignatureRunner, user: NDArray[np.float32], all_ids: NDArray[np.int32]) -> NDArray[np.float32]:
    """Every item's score ``f32[num_items]``, in item order: the artifact's ``score_all`` signature where the
    runner has one (:class:`CatalogScorer`), else ``score`` over ``all_ids`` (``0 .. num_items - 1``, int32).

    Both give the same scores within the precision's parity tolerance (docs/BUNDLE.md); ``score_all`` saves the
    catalog-sized ids input and the per-element gather at it (TFLite's ``GATHER`` copies one element at a time).
    """
    if isinstance(runner, CatalogScorer):
        scores = runner.score_all(user)
        if scores is not None:
            return scores
    return runner.score(user, all_ids)


ExporterFn = Callable[[Exportable, Path, ExportConfig], ArtifactRecord]
RunnerFactory = Callable[[Path, ArtifactRecord], SignatureRunner]

_EXPORTERS: dict[str, ExporterFn] = {}
_RUNNERS: dict[str, RunnerFactory] = {}
# Built-in formats register themselves when their module is imported; importing lazily keeps
# TensorFlow and coremltools out of processes that only need ONNX.
_BUILTIN_MODULES: dict[str, str] = {
    "onnx": "privrec.export.onnx",
    "tflite": "privrec.export.tflite",
    "coreml": "privrec.export.coreml",
}


# A runner needs less than its exporter (an ONNX runner needs onnxruntime, not the onnx package): built-in
# runners whose module differs from the exporter's are found here first.
_BUILTIN_RUNNERS: dict[str, str] = {"onnx": "privrec.export.onnx_runner:load_runner"}


def _ensure_loaded(name: str) -> None:
    if name not in _EXPORTERS and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])


def register_exporter(name: str, runner: RunnerFactory) -> Callable[[ExporterFn], ExporterFn]:
    """Decorator registering an exporter and its runner under a format name; duplicates are refused."""

    def deco(fn: ExporterFn) -> ExporterFn:
        if name in _EXPORTERS:
            raise ValueError(f"an exporter for format {name!r} is already registered.")
        _EXPORTERS[name] = fn
        _RUNNERS[name] = runner
        return fn

    return deco


def available_formats() -> tuple[str, ...]:
    """Known format names (built-in and registered), sorted."""
    return tuple(sorted(set(_EXPORTERS) | set(_BUILTIN_MODULES)))


def get_exporter(name: str) -> ExporterFn:
    """The exporter registered for ``name``; ``ValueError`` listing the known formats otherwise."""
    _ensure_loaded(name)
    try:
        return _EXPORTERS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}. Expected one of {list(available_formats())}.") from None


def get_runner_factory(name: str) -> RunnerFactory:
    """The runner factory registered for ``name``."""
    if name not in _RUNNERS and name in _BUILTIN_RUNNERS:
        module, attr = _BUILTIN_RUNNERS[name].split(":")
        factory: RunnerFactory = getattr(importlib.import_module(module), attr)
        return factory
    _ensure_loaded(name)
    try:
        return _RUNNERS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}. Expected one of {list(available_formats())}.") from None
