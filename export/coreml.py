"""Core ML exporter: ML programs built directly with the MIL builder, and their Linux parity runner.

Files written into the bundle (``ExportConfig.coreml_targets``)::

    Recommender.mlpackage/           iOS18 (default): one multifunction package with the functions
                                     ``score``, ``recommend`` and ``finetune`` over one copy of the weights
    RecommenderScore.mlpackage/      iOS16 (opt-in fallback)  score(user, item_ids) -> scores
    RecommenderRecommend.mlpackage/  iOS16 (opt-in fallback)  recommend(user, mask) -> top_ids, top_scores
    RecommenderFinetune.mlpackage/   iOS16 (opt-in fallback)  finetune(user, item_ids, labels, lr, l2) -> user_out, loss

Why this layout: a multifunction ML program (several functions sharing one weight file) needs Core ML
specification 9, i.e. iOS18 / macOS15 (coremltools "Multifunction Models" guide). Its three functions
point at the same blobs (``weight_id``), so the table is stored once and the Core ML artifact costs about
what the ONNX one does. The table is stored as the precision says: float32 ``const``; int8 or int4 with
one float32 scale per row in ``constexpr_blockwise_shift_scale`` (``data`` int8 / int4 ``[items, d]``,
``scale`` ``[items, 1]``: ``V = q * scale``); and when the table was pruned (``sparsity > 0``), sparse —
the bit mask and the non-zero values only (``constexpr_sparse_to_dense``, jointly with the per-row
dequantize for int8 / int4 through ``constexpr_sparse_blockwise_shift_scale``). All of these exist
only from iOS18. int4 stores its scales and bias as float16, as ``weights.safetensors`` does: the
dequantize then yields a float16 table, exact because every int4 scale has at most 8 significant bits
(:mod:`privrec.sdk.quantize`), widened by a ``cast`` to float32; the bias is widened by
``constexpr_cast`` (float16 -> float32, also exact).

The fallback for iOS 16-17 (``coreml_targets=("iOS18", "iOS16")``, ``privrec export --coreml-ios16``):
an iOS16 package has exactly one function, so it is three packages, one per signature, each storing the
table (Core ML cannot share weights between packages): about 3x the bytes. It holds float32 or int8
(``constexpr_affine_dequantize``) dense tables; int4 needs iOS18 and is refused there. Apps pick the iOS18
package when ``#available(iOS 18, *)`` and the iOS16 packages otherwise (``details.variants``).

How the programs are built: by hand with ``coremltools``' MIL builder (``mb.program``/``mb.function``),
not by tracing a torch module, so every op is exactly the maths of docs/BUNDLE.md and the int8 / int4
packages store *our* table and per-row float32 scales bit for bit (iOS18 ``constexpr_blockwise_shift_scale``
and iOS16 ``constexpr_affine_dequantize`` with ``zero_point`` 0, ``axis`` 0 both compute
``V = q * scale[:, None]``), the dequantization of :mod:`privrec.sdk.quantize`.
``ct.optimize.coreml.linear_quantize_weights`` would re-quantize the float table with its own rounding
and scales, which differs from the :class:`QuantizedItemModel` that ``weights.safetensors`` holds.
Conversion uses ``compute_precision=FLOAT32`` (parity with the float32 reference), int32 ids, ``N``/``M``
dynamic through ``ct.RangeDim(1, upper)`` (ML programs need a finite upper bound; ``upper`` is in
``details``), ``K`` and the fine-tune steps fixed at export (the steps run in a MIL ``while_loop``).

Running: Core ML's runtime exists only on Apple platforms. :class:`CoreMLRunner` runs the *saved* packages
with the numpy MIL interpreter of :mod:`privrec.export.mil_interpreter` (backend ``"interpreter"``, every
platform) or with ``MLModel.predict`` (backend ``"coreml"``, macOS only). :func:`coreml_structure_problems`
checks the saved specs (inputs, outputs, ops, deployment target, compression) without running them.
"""

from __future__ import annotations

import gc
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coremltools as ct
import numpy as np
from coremltools.converters.mil.mil import Builder as mb  # noqa: N813  (coremltools' own idiom)
from coremltools.converters.mil.mil import Function, Program, Var, types
from coremltools.converters.mil.mil.program import get_new_symbol
from numpy.typing import NDArray

from privrec.sdk.quantize import Int4ItemModel, QuantizedItemModel

from .base import (
    ArtifactRecord,
    Exportable,
    ExportConfig,
    Precision,
    TensorSpec,
    register_exporter,
)
from .errors import BundleError
from .manifest import bundle_signatures
from .mil_interpreter import SUPPORTED_OPS, MilProgram, load_package_spec

__all__ = [
    "DENSE_PACKAGES",
    "MULTIFUNCTION_PACKAGE",
    "SIGNATURES",
    "CoreMLRunner",
    "check_coreml_structure",
    "coreml_structure_problems",
    "export",
    "package_size",
]

SIGNATURES = ("score", "recommend", "finetune")
DENSE_PACKAGES = {
    "score": "RecommenderScore.mlpackage",
    "recommend": "RecommenderRecommend.mlpackage",
    "finetune": "RecommenderFinetune.mlpackage",
}
MULTIFUNCTION_PACKAGE = "Recommender.mlpackage"
DENSE_TARGET = "iOS16"  # the three single-function packages (fallback for iOS 16-17)
MULTIFUNCTION_TARGET = "iOS18"
_STALE_PACKAGES = ("RecommenderSparse.mlpackage",)  # written by earlier versions into the same place
_TARGETS = {"iOS16": ct.target.iOS16, "iOS18": ct.target.iOS18}
_SPEC_VERSIONS = {"iOS16": 7, "iOS18": 9}  # Core ML specification version of each deployment target
_OPSETS = {"iOS16": "CoreML6", "iOS18": "CoreML8"}
_MIN_DYNAMIC_UPPER = 65536
_LABEL_SUM_FLOOR = 1e-12  # sdk/reconstruct.py LABEL_SUM_FLOOR
# Ops each signature's program must contain (beyond const/constexpr), for the structural checks.
_REQUIRED_OPS = {
    "score": {"gather", "matmul", "add"},
    "recommend": {"matmul", "add", "topk"},
    "finetune": {"gather", "matmul", "softmax", "reduce_log_sum_exp", "sub", "mul", "while_loop"},
}


def dynamic_upper_bound(num_items: int) -> int:
    """Upper bound of the dynamic ``N``/``M`` (``ct.RangeDim``): at least the catalog, at least 65,536."""
    return max(num_items, _MIN_DYNAMIC_UPPER)


# --------------------------------------------------------------------------------------------------
# Weights inside a MIL function
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Weights:
    """What the programs store: the table (float32, or int8 / int4 values + float32 row scales) and the bias."""

    table: NDArray[Any]  # float32, or int8 [num_items, d] holding int8 or int4 values
    scale: NDArray[np.floating] | None  # [num_items] for int8 (float32) / int4 (float16)
    bias: NDArray[np.floating]  # float32, or float16 for int4
    precision: Precision

    @classmethod
    def of(cls, model: Exportable) -> _Weights:
        if isinstance(model, QuantizedItemModel):
            return cls(model.item_embedding, model.item_scale, model.item_bias, "int8")
        if isinstance(model, Int4ItemModel):
            return cls(model.values(), model.item_scale, model.item_bias, "int4")
        return cls(model.item_embedding, None, model.item_bias, "float32")

    def stored(self, values: NDArray[Any]) -> NDArray[Any]:
        """``values`` with the dtype the blob stores: int4 tables as coremltools' int4 (two per byte)."""
        return values.astype(types.np_int4_dtype) if self.precision == "int4" else values


def _shared_const(val: NDArray[Any], name: str) -> Var:
    """A const whose blob every function of a multifunction program shares (``weight_id``)."""
    var: Var = mb.const(val=val, name=name)
    var.op.weight_id = name
    return var


# int4 names (short: every function of the program repeats them, and the program's bytes are a fixed cost):
# the float16 table out of the dequantize, its float32 cast ("v32"), and the widened bias ("b32").
TABLE_F16 = "v16"


def _bias(w: _Weights) -> Var:
    """The float32 bias ``[num_items]``: a shared const, or for int4 its float16 blob widened by ``constexpr_cast``."""
    if w.bias.dtype != np.float16:
        return _shared_const(w.bias, "item_bias")
    var: Var = mb.constexpr_cast(source_val=_shared_const(w.bias, "item_bias_f16"), output_dtype="fp32", name="b32")
    return var


def _widened(table: Var) -> Var:
    """A float16 dequantized table (int4: float16 scales) as float32; already float32 tables pass through."""
    if table.dtype == types.fp32:
        return table
    var: Var = mb.cast(x=table, dtype="fp32", name="v32")
    return var


def _table(w: _Weights, target: str, sparse: bool) -> Var:
    """The float32 item table ``[num_items, d]`` as a (possibly compressed) compile-time constant."""
    if target == DENSE_TARGET:  # iOS16: dense only
        if w.scale is None:
            return _shared_const(w.table, "item_embedding")
        # V = scale * (q - 0), per row (axis 0): exactly QuantizedItemModel.dequantize().
        var: Var = mb.constexpr_affine_dequantize(
            quantized_data=_shared_const(w.table, "item_embedding_int8"),
            zero_point=np.int8(0),
            scale=_shared_const(w.scale, "item_scale"),
            axis=0,
            name="item_embedding",
        )
        return var
    if not sparse:
        if w.scale is None:
            return _shared_const(w.table, "item_embedding")
        # iOS18 blockwise dequantize with one block per row: V = q * scale[:, None].
        half = w.scale.dtype == np.float16
        deq: Var = mb.constexpr_blockwise_shift_scale(
            data=_shared_const(w.stored(w.table), f"item_embedding_{w.precision}"),
            scale=_shared_const(w.scale[:, None], "item_scale"),
            name=TABLE_F16 if half else "item_embedding",
        )
        return _widened(deq)
    mask = _shared_const((w.table != 0).astype(types.np_uint1_dtype), "item_embedding_mask")
    nonzero = _shared_const(w.stored(np.ascontiguousarray(w.table[w.table != 0])), "item_embedding_nonzero")
    if w.scale is None:
        dense: Var = mb.constexpr_sparse_to_dense(nonzero_data=nonzero, mask=mask, name="item_embedding")
        return dense
    # Joint sparse + int8 / int4 (iOS18): dequantize the non-zeros per row, then scatter them by the mask.
    out_mask, values = mb.constexpr_sparse_blockwise_shift_scale(
        data_mask=mask, nonzero_data=nonzero, scale=_shared_const(w.scale[:, None], "item_scale")
    )
    half = w.scale.dtype == np.float16
    name = TABLE_F16 if half else "item_embedding"
    return _widened(mb.constexpr_sparse_to_dense(nonzero_data=values, mask=out_mask, name=name))


def _dot_rows(V: Var, u_col: Var, prefix: str) -> Var:
    """``V @ u`` as ``[rows]`` for ``V [rows, d]`` and ``u_col [d, 1]`` (short op names: see ``_finetune_body``)."""
    out: Var = mb.squeeze(x=mb.matmul(x=V, y=u_col, name=f"{prefix}m"), axes=[1], name=f"{prefix}q")
    return out


def _score_body(w: _Weights, target: str, sparse: bool, user: Var, item_ids: Var) -> Var:
    V, b = _table(w, target, sparse), _bias(w)
    rows = mb.gather(x=V, indices=item_ids, axis=0, name="sg")
    s = _dot_rows(rows, mb.expand_dims(x=user, axes=[1], name="su"), "s")
    out: Var = mb.add(x=s, y=mb.gather(x=b, indices=item_ids, axis=0, name="sb"), name="scores")
    return out


def _recommend_body(w: _Weights, target: str, sparse: bool, top_k: int, user: Var, mask: Var) -> tuple[Var, Var]:
    V, b = _table(w, target, sparse), _bias(w)
    dots = _dot_rows(V, mb.expand_dims(x=user, axes=[1], name="ru"), "r")
    s = mb.add(x=mb.add(x=dots, y=b, name="rb"), y=mask, name="rs")
    values, indices = mb.topk(x=s, k=top_k, axis=0, ascending=False, name="rk")
    return mb.identity(x=indices, name="top_ids"), mb.identity(x=values, name="top_scores")


def _finetune_body(
    w: _Weights, target: str, sparse: bool, steps: int, user: Var, item_ids: Var, labels: Var, lr: Var, l2: Var
) -> tuple[Var, Var]:
    """``steps`` analytic steps of sdk/reconstruct.py (Singhal et al. 2021, §3), column form, in a ``while_loop``.

    The loop keeps one copy of the step in the program instead of ``steps`` (unrolled, the fine-tune
    function was about 23 KB of the 30 KB program, as large as a 1,682 × 64 int4 table). Its flag and axis
    parameters are shared constants and its ops have short names, for the same reason: the program's
    bytes are a fixed cost every bundle pays next to the table.
    """
    count = iter(range(1_000_000))

    def nm() -> str:
        return f"f{next(count)}"

    V, b = _table(w, target, sparse), _bias(w)
    no = mb.const(val=False, name="no")
    yes = mb.const(val=True, name="yes")
    ax0, ax1 = mb.const(val=np.array([0], np.int32), name="ax0"), mb.const(val=np.array([1], np.int32), name="ax1")
    zero = mb.const(val=np.int32(0), name="zero")
    rows = mb.gather(x=V, indices=item_ids, axis=zero, name=nm())  # [M, d]
    b_col = mb.expand_dims(x=mb.gather(x=b, indices=item_ids, axis=zero, name=nm()), axes=ax1, name=nm())  # [M, 1]
    total = mb.maximum(x=mb.reduce_sum(x=labels, axes=ax0, keep_dims=yes, name=nm()), y=np.float32(_LABEL_SUM_FLOOR), name=nm())
    y_col = mb.expand_dims(x=mb.real_div(x=labels, y=total, name=nm()), axes=ax1, name=nm())  # [M, 1], sums to 1
    u0 = mb.expand_dims(x=user, axes=ax1, name=nm())  # [d, 1]

    def dots(x: Var, y: Var, transpose_x: Var) -> Var:
        out: Var = mb.matmul(x=x, y=y, transpose_x=transpose_x, transpose_y=no, name=nm())
        return out

    def cond(u: Var, i: Var) -> Var:
        out: Var = mb.less(x=i, y=np.int32(steps), name=nm())
        return out

    def body(u: Var, i: Var) -> tuple[Var, Var]:
        s = mb.add(x=dots(rows, u, no), y=b_col, name=nm())
        resid = mb.sub(x=mb.softmax(x=s, axis=zero, name=nm()), y=y_col, name=nm())
        grad = mb.add(x=dots(rows, resid, yes), y=mb.mul(x=l2, y=u, name=nm()), name=nm())
        return mb.sub(x=u, y=mb.mul(x=lr, y=grad, name=nm()), name=nm()), mb.add(x=i, y=np.int32(1), name=nm())

    u, _ = mb.while_loop(_cond=cond, _body=body, loop_vars=(u0, np.int32(0)), name=nm())
    # loss at the returned u: -sum(y * log_softmax(s)) + l2/2 * |u|^2
    s = mb.add(x=dots(rows, u, no), y=b_col, name=nm())
    log_p = mb.sub(x=s, y=mb.reduce_log_sum_exp(x=s, axes=ax0, keep_dims=yes, name=nm()), name=nm())
    ce = mb.mul(
        x=mb.reduce_sum(x=mb.mul(x=y_col, y=log_p, name=nm()), axes=ax0, keep_dims=no, name=nm()), y=np.float32(-1.0), name=nm()
    )
    half_l2 = mb.mul(x=l2, y=np.float32(0.5), name=nm())
    reg = mb.mul(x=half_l2, y=mb.reduce_sum(x=mb.mul(x=u, y=u, name=nm()), axes=ax0, keep_dims=no, name=nm()), name=nm())
    return mb.squeeze(x=u, axes=ax1, name="user_out"), mb.add(x=ce, y=reg, name="loss")


def _input_types(signature: str, dim: int, num_items: int) -> list[ct.TensorType]:
    upper = dynamic_upper_bound(num_items)
    f32, i32 = np.float32, np.int32
    user = ct.TensorType(name="user", shape=(dim,), dtype=f32)
    if signature == "score":
        return [user, ct.TensorType(name="item_ids", shape=(ct.RangeDim(1, upper),), dtype=i32)]
    if signature == "recommend":
        return [user, ct.TensorType(name="mask", shape=(num_items,), dtype=f32)]
    m = ct.RangeDim(1, upper)
    return [
        user,
        ct.TensorType(name="item_ids", shape=(m,), dtype=i32),
        ct.TensorType(name="labels", shape=(m,), dtype=f32),
        ct.TensorType(name="lr", shape=(1,), dtype=f32),
        ct.TensorType(name="l2", shape=(1,), dtype=f32),
    ]


def _function(signature: str, w: _Weights, config: ExportConfig, target: str, sparse: bool) -> Function:
    """One signature as a MIL function for ``target`` (inputs typed as in docs/BUNDLE.md)."""
    n, d = w.table.shape
    spec = mb.TensorSpec
    f32, i32, opset = types.fp32, types.int32, _TARGETS[target]
    fn: Function
    if signature == "score":

        def score(user: Var, item_ids: Var) -> Var:
            return _score_body(w, target, sparse, user, item_ids)

        fn = mb.function(input_specs=[spec((d,), f32), spec((get_new_symbol(),), i32)], opset_version=opset)(score)
    elif signature == "recommend":

        def recommend(user: Var, mask: Var) -> tuple[Var, Var]:
            return _recommend_body(w, target, sparse, config.top_k, user, mask)

        fn = mb.function(input_specs=[spec((d,), f32), spec((n,), f32)], opset_version=opset)(recommend)
    else:

        def finetune(user: Var, item_ids: Var, labels: Var, lr: Var, l2: Var) -> tuple[Var, Var]:
            return _finetune_body(w, target, sparse, config.finetune_steps, user, item_ids, labels, lr, l2)

        m = get_new_symbol()
        specs = [spec((d,), f32), spec((m,), i32), spec((m,), f32), spec((1,), f32), spec((1,), f32)]
        fn = mb.function(input_specs=specs, opset_version=opset)(finetune)
    # mb.function names its inputs after the Python parameters; Core ML needs the contract's names.
    fn.set_input_types(tuple(_input_types(signature, d, n)))
    return fn


def _convert_and_save(prog: Program, target: str, path: Path, description: str, meta: Mapping[str, str]) -> None:
    # ct.convert ends with a full gc.collect(); with torch and TensorFlow loaded that walks millions of
    # objects (seconds per call). Freezing the objects that exist before the call limits the collection
    # to what the conversion allocated; unfreeze hands them back to the collector afterwards.
    gc.freeze()
    try:
        model = ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=_TARGETS[target],
            compute_precision=ct.precision.FLOAT32,
            skip_model_load=True,  # loading compiles with Core ML, which only exists on Apple platforms
        )
    finally:
        gc.unfreeze()
    model.short_description = description
    model.author = "privrec"
    model.user_defined_metadata.update(meta)
    model.save(str(path))


def _package_files(bundle_dir: Path, package: str) -> list[str]:
    root = bundle_dir / package
    return sorted(str(p.relative_to(bundle_dir)) for p in root.rglob("*") if p.is_file())


def package_size(path: Path) -> int:
    """Bytes on disk of one ``.mlpackage`` (the sum of its files' sizes)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


@dataclass(frozen=True)
class _Variant:
    target: str
    packages: dict[str, str]  # signature -> package dir (relative to the bundle)
    functions: dict[str, str]  # signature -> function name inside that package
    compression: tuple[str, ...]
    sparse: bool  # the table is stored as a bit mask + non-zeros


def _runner_factory(bundle_dir: Path, record: ArtifactRecord) -> CoreMLRunner:
    return CoreMLRunner(bundle_dir, record)


def _compression(precision: str, target: str, sparse: bool) -> tuple[str, ...]:
    """The constexpr ops that hold the table of ``target`` (what the structure check expects)."""
    quantized = precision != "float32"
    if target == DENSE_TARGET:
        return ("constexpr_affine_dequantize",) if quantized else ()
    half = ("constexpr_cast",) if precision == "int4" else ()  # the float16 bias (module docstring)
    if sparse:
        if quantized:
            return ("constexpr_sparse_blockwise_shift_scale", "constexpr_sparse_to_dense", *half)
        return ("constexpr_sparse_to_dense",)
    return ("constexpr_blockwise_shift_scale", *half) if quantized else ()


@register_exporter("coreml", _runner_factory)
def export(model: Exportable, bundle_dir: Path, config: ExportConfig) -> ArtifactRecord:
    """Write the Core ML packages (see the module docstring) into ``bundle_dir`` and describe them."""
    if not isinstance(model, Exportable):
        raise TypeError(f"`model` must be an ItemModel, QuantizedItemModel or Int4ItemModel. Found {type(model).__name__}.")
    if config.top_k > model.num_items:
        raise ValueError(f"`top_k` must be <= num_items ({model.num_items}). Found {config.top_k}.")
    w = _Weights.of(model)
    if w.precision == "int4" and DENSE_TARGET in config.coreml_targets:
        raise ValueError(
            "`coreml_targets` must not include 'iOS16' for an int4 model: 4-bit weights with per-row scales "
            f"need iOS18 (constexpr_blockwise_shift_scale). Found {config.coreml_targets!r}."
        )
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    for stale in (*DENSE_PACKAGES.values(), MULTIFUNCTION_PACKAGE, *_STALE_PACKAGES):
        shutil.rmtree(bundle_dir / stale, ignore_errors=True)  # a re-export must not leave old files behind
    precision = w.precision
    sparse = config.sparsity > 0
    meta = {
        "privrec.precision": precision,
        "privrec.top_k": str(config.top_k),
        "privrec.finetune_steps": str(config.finetune_steps),
    }
    variants: list[_Variant] = []
    if MULTIFUNCTION_TARGET in config.coreml_targets:
        prog = Program()
        for sig in SIGNATURES:
            prog.add_function(sig, _function(sig, w, config, MULTIFUNCTION_TARGET, sparse=sparse))
        prog.default_function_name = "score"
        prog.export_as_multifunction = True  # per-function descriptions (Model.proto FunctionDescription)
        _convert_and_save(
            prog,
            MULTIFUNCTION_TARGET,
            bundle_dir / MULTIFUNCTION_PACKAGE,
            "privrec score / recommend / finetune (docs/BUNDLE.md)",
            {**meta, "privrec.signature": ",".join(SIGNATURES)},
        )
        variants.append(
            _Variant(
                MULTIFUNCTION_TARGET,
                dict.fromkeys(SIGNATURES, MULTIFUNCTION_PACKAGE),
                {s: s for s in SIGNATURES},
                _compression(precision, MULTIFUNCTION_TARGET, sparse),
                sparse,
            )
        )
    if DENSE_TARGET in config.coreml_targets:
        for sig in SIGNATURES:
            prog = Program()
            prog.add_function("main", _function(sig, w, config, DENSE_TARGET, sparse=False))
            _convert_and_save(
                prog,
                DENSE_TARGET,
                bundle_dir / DENSE_PACKAGES[sig],
                f"privrec {sig} signature (docs/BUNDLE.md)",
                {**meta, "privrec.signature": sig},
            )
        variants.append(
            _Variant(
                DENSE_TARGET,
                dict(DENSE_PACKAGES),
                dict.fromkeys(SIGNATURES, "main"),
                _compression(precision, DENSE_TARGET, False),
                False,
            )
        )

    files: list[str] = []
    details_variants: dict[str, object] = {}
    for v in variants:
        pkgs = sorted(set(v.packages.values()))
        per_package = {p: _package_files(bundle_dir, p) for p in pkgs}
        files.extend(f for p in pkgs for f in per_package[p])
        details_variants[v.target] = {
            "deployment_target": v.target,
            "specification_version": _SPEC_VERSIONS[v.target],
            "packages": dict(v.packages),
            "functions": dict(v.functions),
            "compression": list(v.compression),
            "sparse": v.sparse,
            "files": per_package,
            "bytes": {p: package_size(bundle_dir / p) for p in pkgs},
        }
    return ArtifactRecord(
        format="coreml",
        precision=precision,
        files=tuple(files),
        signatures=bundle_signatures(model.dim, model.num_items, config.top_k),
        details={
            "deployment_target": variants[0].target,
            "variants": details_variants,
            "compute_precision": "float32",
            "dynamic_upper_bound": dynamic_upper_bound(model.num_items),
            "table_sparsity": float(np.mean(w.table == 0)),
            "top_k": config.top_k,
            "finetune_steps": config.finetune_steps,
            "coremltools_version": ct.__version__,
        },
    )


# --------------------------------------------------------------------------------------------------
# Reading back: variants, structure, runner
# --------------------------------------------------------------------------------------------------
def _variants(record: ArtifactRecord) -> dict[str, dict[str, Any]]:
    raw = record.details.get("variants")
    if not isinstance(raw, Mapping) or not raw:
        raise BundleError("coreml artifact: `details.variants` is missing or empty.")
    return {str(k): dict(v) for k, v in raw.items()}


def _dims_ok(declared: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    return len(declared) == len(expected) and all(
        (e == -1 and d == -1) or (e != -1 and d == e) for d, e in zip(declared, expected, strict=True)
    )


def _feature_ranges(spec: Any, function: str) -> dict[str, list[tuple[int, int]]]:
    desc = spec.description
    features = desc.input
    for fd in desc.functions:
        if fd.name == function:
            features = fd.input
    out: dict[str, list[tuple[int, int]]] = {}
    for f in features:
        arr = f.type.multiArrayType
        if arr.HasField("shapeRange"):
            out[f.name] = [(int(r.lowerBound), int(r.upperBound)) for r in arr.shapeRange.sizeRanges]
        else:
            out[f.name] = [(int(s), int(s)) for s in arr.shape]
    return out


def _signature_problems(
    prog: MilProgram, spec: Any, function: str, sig: str, target: str, record: ArtifactRecord, upper: int
) -> list[str]:
    where = f"{target} {sig}"
    if function not in prog.functions:
        return [f"{where}: the package has no function {function!r} (found {sorted(prog.functions)})."]
    fn = prog.functions[function]
    problems: list[str] = []
    if fn.opset != _OPSETS[target]:
        problems.append(f"{where}: opset must be {_OPSETS[target]}. Found {fn.opset}.")
    inputs, outputs = record.signatures[sig]
    ranges = _feature_ranges(spec, function)

    def compare(kind: str, declared: Mapping[str, Any], expected: tuple[TensorSpec, ...]) -> None:
        if list(declared) != [t.name for t in expected]:
            problems.append(f"{where}: {kind} must be {[t.name for t in expected]}. Found {list(declared)}.")
            return
        for t in expected:
            tt = declared[t.name]
            if tt.numpy_dtype != np.dtype(t.dtype):
                problems.append(f"{where}: {kind[:-1]} `{t.name}` must be {t.dtype}. Found {tt.numpy_dtype}.")
            # Outputs computed from a dynamic input carry an unknown dim; their fixed dims must match.
            ok = _dims_ok(tt.shape, t.shape) or (kind == "outputs" and len(tt.shape) == len(t.shape))
            if not ok:
                problems.append(f"{where}: {kind[:-1]} `{t.name}` must have shape {t.shape}. Found {tt.shape}.")
            if kind == "inputs":
                want = [(1, upper) if s == -1 else (s, s) for s in t.shape]
                if ranges.get(t.name) != want:
                    problems.append(f"{where}: input `{t.name}` must have size ranges {want}. Found {ranges.get(t.name)}.")

    compare("inputs", fn.inputs, inputs)
    compare("outputs", fn.outputs, outputs)
    ops = fn.op_counts()
    missing = sorted(_REQUIRED_OPS[sig] - set(ops))
    if missing:
        problems.append(f"{where}: ops {missing} are missing.")
    unknown = sorted(set(ops) - SUPPORTED_OPS)
    if unknown:
        problems.append(f"{where}: ops {unknown} are not supported by the numpy interpreter.")
    return problems


# Which parameter of each compression op holds the stored (quantized) values.
_VALUE_PARAMS = {
    "constexpr_affine_dequantize": "quantized_data",
    "constexpr_blockwise_shift_scale": "data",
    "constexpr_sparse_blockwise_shift_scale": "nonzero_data",
}
_MIL_DTYPES = {"int8": "INT8", "int4": "INT4"}


def _compression_problems(
    prog: MilProgram, function: str, target: str, precision: str, sparse: bool, shape: tuple[int, int]
) -> list[str]:
    """The item table is stored as the precision and variant promise (int8 / int4 blobs, sparse mask)."""
    where = f"{target} {function}"
    fn = prog.functions[function]
    ops = {op.type: op for op in fn.operations}
    problems: list[str] = []
    # The int4 bias (float16, widened by constexpr_cast) is checked apart from the table's ops.
    cast = "constexpr_cast"
    if (cast in ops) != (cast in _compression(precision, target, sparse)):
        bias_ops = "a float16 bias widened by constexpr_cast" if cast not in ops else "no constexpr_cast"
        have = sorted(t for t in ops if t.startswith("constexpr_"))
        problems.append(f"{where}: a {precision} program must have {bias_ops}. Found {have}.")
    found = sorted(t for t in ops if t.startswith("constexpr_") and t != cast)
    expected = sorted(t for t in _compression(precision, target, sparse) if t != cast)
    if found != expected:
        return [
            *problems,
            f"{where}: a {precision}{' sparse' if sparse else ''} table must be stored with {expected}. Found {found}.",
        ]
    for op_type, key in _VALUE_PARAMS.items():
        if op_type in ops:
            tt = fn.param_type(ops[op_type], key)
            want = _MIL_DTYPES.get(precision)
            if tt.dtype != want:
                problems.append(f"{where}: `{op_type}.{key}` must be {want} for {precision}. Found {tt.dtype}.")
            if key != "nonzero_data" and tt.shape != shape:
                problems.append(f"{where}: `{op_type}.{key}` must have shape {shape}. Found {tt.shape}.")
    if "constexpr_sparse_to_dense" in ops and target == MULTIFUNCTION_TARGET:
        got = fn.param_type(ops["constexpr_sparse_to_dense"], "mask")
        if (got.dtype, got.shape) != ("UINT1", shape):
            problems.append(f"{where}: the sparse mask must be UINT1 {shape}. Found {got.dtype} {got.shape}.")
    return problems


def coreml_structure_problems(bundle_dir: Path, record: ArtifactRecord) -> list[str]:
    """Every way the saved packages differ from what ``record`` promises (empty list = all good).

    Checked per variant and signature, from the files on disk: the package exists and holds an ML
    program of the variant's specification version; the function's opset; input and output names,
    dtypes and shapes (dynamic dims as ``ct.RangeDim(1, upper)``); the ops the maths needs, all of
    them supported by the interpreter; compression: exactly the constexpr ops the precision and the
    variant's ``sparse`` flag call for, with int8 / int4 stored values of the table's shape.
    """
    bundle_dir = Path(bundle_dir)
    problems: list[str] = []
    upper = int(record.details.get("dynamic_upper_bound", 0))  # type: ignore[call-overload]
    for target, v in _variants(record).items():
        if target not in _SPEC_VERSIONS:
            problems.append(f"unknown Core ML deployment target {target!r} (expected {sorted(_SPEC_VERSIONS)}).")
            continue
        loaded: dict[str, tuple[MilProgram, Any]] = {}
        for sig in SIGNATURES:
            pkg, function = str(v["packages"][sig]), str(v["functions"][sig])
            if pkg not in loaded:
                try:
                    spec, model_dir = load_package_spec(bundle_dir / pkg)
                    loaded[pkg] = (MilProgram(spec, model_dir), spec)
                except (OSError, ValueError, NotImplementedError) as e:
                    problems.append(f"{target} {pkg}: cannot be read: {e}")
                    continue
                if loaded[pkg][1].specificationVersion != _SPEC_VERSIONS[target]:
                    problems.append(
                        f"{target} {pkg}: specification version must be {_SPEC_VERSIONS[target]}. "
                        f"Found {loaded[pkg][1].specificationVersion}."
                    )
            prog, spec = loaded[pkg]
            problems += _signature_problems(prog, spec, function, sig, target, record, upper)
            if function in prog.functions:
                dim = record.signatures["score"][0][0].shape[0]
                num_items = record.signatures["recommend"][0][1].shape[0]
                sparse = v.get("sparse") is True
                problems += _compression_problems(prog, function, target, record.precision, sparse, (num_items, dim))
    return problems


def check_coreml_structure(bundle_dir: Path, record: ArtifactRecord) -> None:
    """Raise :class:`BundleError` listing every problem :func:`coreml_structure_problems` finds."""
    problems = coreml_structure_problems(bundle_dir, record)
    if problems:
        raise BundleError("Core ML artifact does not match its record:\n- " + "\n- ".join(problems))


class CoreMLRunner:
    """Runs one variant (``"iOS16"`` or ``"iOS18"``) of the saved Core ML artifact.

    Args:
        bundle_dir: the bundle directory.
        record: the ``coreml`` :class:`ArtifactRecord` (from the exporter or the manifest).
        variant: deployment target of the packages to run; default ``details.deployment_target`` (iOS16).
        backend: ``"interpreter"`` (numpy MIL interpreter, any platform) or ``"coreml"`` (``MLModel.predict``,
            macOS only).
    """

    def __init__(
        self,
        bundle_dir: Path,
        record: ArtifactRecord,
        *,
        variant: str | None = None,
        backend: str = "interpreter",
    ) -> None:
        variants = _variants(record)
        variant = variant or str(record.details.get("deployment_target", DENSE_TARGET))
        if variant not in variants:
            raise ValueError(f"`variant` must be one of {sorted(variants)}. Found {variant!r}.")
        if backend not in ("interpreter", "coreml"):
            raise ValueError(f"`backend` must be 'interpreter' or 'coreml'. Found {backend!r}.")
        if backend == "coreml" and sys.platform != "darwin":
            raise RuntimeError("Core ML predict needs macOS: use backend='interpreter' elsewhere.")
        self.variant, self.backend = variant, backend
        self.upper = int(record.details.get("dynamic_upper_bound", _MIN_DYNAMIC_UPPER))  # type: ignore[call-overload]
        v = variants[variant]
        self._calls: dict[str, Callable[[dict[str, NDArray[Any]]], dict[str, NDArray[Any]]]] = {}
        programs: dict[str, MilProgram] = {}
        for sig in SIGNATURES:
            pkg, function = Path(bundle_dir) / str(v["packages"][sig]), str(v["functions"][sig])
            if backend == "interpreter":
                if pkg.name not in programs:
                    programs[pkg.name] = MilProgram.load(pkg)
                self._calls[sig] = _interpreter_call(programs[pkg.name], function)
            else:
                self._calls[sig] = _coreml_call(pkg, function, multifunction=function != "main")

    def _check_len(self, name: str, n: int) -> None:
        if not 1 <= n <= self.upper:
            raise ValueError(f"`{name}` must hold between 1 and {self.upper} ids for Core ML. Found {n}.")

    def score(self, user: NDArray[np.float32], item_ids: NDArray[np.int32]) -> NDArray[np.float32]:
        """``scores f32[N]``."""
        self._check_len("item_ids", int(item_ids.shape[0]))
        out = self._calls["score"]({"user": user.astype(np.float32), "item_ids": item_ids.astype(np.int32)})
        return np.asarray(out["scores"], np.float32).reshape(-1)

    def recommend(self, user: NDArray[np.float32], mask: NDArray[np.float32]) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """``(top_ids i32[K], top_scores f32[K])``, highest first."""
        out = self._calls["recommend"]({"user": user.astype(np.float32), "mask": mask.astype(np.float32)})
        return np.asarray(out["top_ids"]).astype(np.int32).reshape(-1), np.asarray(out["top_scores"], np.float32).reshape(-1)

    def finetune(
        self,
        user: NDArray[np.float32],
        item_ids: NDArray[np.int32],
        labels: NDArray[np.float32],
        lr: NDArray[np.float32],
        l2: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(user_out f32[d], loss f32[1])``."""
        self._check_len("item_ids", int(item_ids.shape[0]))
        feeds = {
            "user": user.astype(np.float32),
            "item_ids": item_ids.astype(np.int32),
            "labels": labels.astype(np.float32),
            "lr": np.asarray(lr, np.float32).reshape(1),
            "l2": np.asarray(l2, np.float32).reshape(1),
        }
        out = self._calls["finetune"](feeds)
        return np.asarray(out["user_out"], np.float32).reshape(-1), np.asarray(out["loss"], np.float32).reshape(1)


def _interpreter_call(prog: MilProgram, function: str) -> Callable[[dict[str, NDArray[Any]]], dict[str, NDArray[Any]]]:
    return lambda feeds: prog.run(feeds, function)


def _coreml_call(
    pkg: Path, function: str, *, multifunction: bool
) -> Callable[[dict[str, NDArray[Any]]], dict[str, NDArray[Any]]]:  # pragma: no cover - macOS only
    kwargs: dict[str, Any] = {"function_name": function} if multifunction else {}
    model = ct.models.MLModel(str(pkg), compute_units=ct.ComputeUnit.CPU_ONLY, **kwargs)
    return lambda feeds: {k: np.asarray(v) for k, v in model.predict(feeds).items()}
