"""TFLite exporter and its LiteRT runner: one ``model.tflite`` with three named signatures (and, for catalogs of
``SCAN_MIN_ITEMS`` items or more, the optional whole-catalog ``score_all``).

Route (the one checked to work on this stack): a ``tf.Module`` with one ``tf.function`` per signature, each
with a fixed input signature, converted by ``tf.lite.TFLiteConverter.from_concrete_functions`` — this
keeps the signature keys, the dynamic ``N``/``M`` dimension and int8 constants. Only TFLite builtin ops
are allowed (no Flex/Select TF ops), so the file runs in the plain LiteRT interpreter and in the last
standalone ``tflite-runtime`` (2.14), checked by ``tests/export/tflite214_parity.py``.

Signatures (docs/BUNDLE.md, identical names and dtypes in every format):

- ``score(user f32[d], item_ids i32[N]) -> scores f32[N]``
- ``recommend(user f32[d], mask f32[num_items]) -> top_ids i32[K], top_scores f32[K]``
- ``finetune(user f32[d], item_ids i32[M], labels f32[M], lr f32[1], l2 f32[1])
  -> user_out f32[d], loss f32[1]``

``finetune`` unrolls ``config.finetune_steps`` steps of exactly
:func:`privrec.sdk.reconstruct.finetune_reference` (softmax cross-entropy over the ``M`` candidates,
analytic gradient in matmul form, L2 on ``u``) and returns the loss at the returned vector.

int8 (``QuantizedItemModel``): the table is stored once, as an int8 constant ``[num_items, d]``, and the
per-row scale as a float32 constant ``[num_items]``. ``score`` and ``finetune`` gather int8 rows and apply
the scale to the product, ``(cast(q[ids]) @ u) * scale[ids]`` (finetune: ``cast(q[ids]) * scale[ids]``).

The full-catalog ``recommend`` never dequantizes the table and never sorts the catalog (the int8 fast
path): an approximate scan, a proven threshold, an exact re-rank of the few items that can reach it.

1. **Scan**: ``scan[n] = FC(u)[n] · scale[n] + b[n] + mask[n]``. ``FC`` is one ``FULLY_CONNECTED`` with the
   int8 table ``q`` as weights and a float input ``u``: TFLite's dynamic-range "hybrid" kernel (XNNPACK's
   ``qd8-f32-qc8w`` in LiteRT) quantizes ``u`` to int8 on the fly, runs an integer matrix-vector product over
   the int8 table (1 byte per weight read) and scales the int32 output by ``u``'s step.
2. **Bound**: ``|scan[n] - exact[n]| ≤ E = max|u| · L1MAX · (1/254 + 1e-5 + d · 2^-23)`` for every item,
   with ``L1MAX = max_n scale[n] · Σ_k |q[n, k]|`` computed at export (a float32 constant, rounded up).
   Why: the kernel quantizes ``u`` per row, either symmetrically (TFLite's builtin kernel: step
   ``max|u| / 127``, error ≤ ``max|u| / 254`` per coordinate) or asymmetrically (XNNPACK ``qd8``: step
   ``(max(u, 0) - min(u, 0)) / 255``, error ≤ ``max|u| / 255``), so the integer product is off by at most
   ``Σ_k |q[n, k]| · max|u| / 254``; the int32 accumulation is exact; ``1e-5`` covers the float rounding
   of the output scaling and ``d · 2^-23`` that of the re-rank's float32 dot product (a ``d``-term sum).
   The bias and mask additions round by at most ``2^-24`` of the score, which is at most
   ``max|u| · L1MAX · (1 + 1/254) + max|b|`` for an eligible item (``mask`` is 0 or ``-inf``,
   docs/BUNDLE.md): ``ROUNDING = 2^-20`` of that bounds all four additions (scan and re-rank, bias and
   mask) and the threshold's own arithmetic. So ``margin = 2E + ROUNDING · (max|u| · L1MAX + max|b|)``,
   computed per call as ``max|u| · slope + offset`` (:class:`_Bound`).
3. **Threshold**: the scan (padded with ``-inf`` to a whole number of blocks, when ``num_items`` has no
   divisor near ``sqrt(num_items)``) viewed as ``[blocks, size]`` (:func:`_blocks`: about ``sqrt(N)`` items
   per block, at least ``K`` blocks); ``t`` = the ``K``-th largest block maximum (``TOPK_V2`` over the
   block maxima only). ``t ≤ scan_(K)``, the ``K``-th largest scan value: ``K`` distinct blocks each hold a
   value ≥ ``t``. Every item of the exact top-``K`` then has ``scan ≥ tau = t - margin``:
   ``scan_i ≥ exact_i - E ≥ exact_(K) - E ≥ scan_(K) - 2E ≥ t - 2E`` (the rounding terms included).
4. **Candidates**: the blocks whose maximum reaches ``tau`` (``WHERE``), gathered, and the items in them
   that reach ``tau`` (``WHERE``), as ids ``block · size + offset``, ascending. Every item with
   ``exact_i ≥ exact_(K)`` is one of them, so there are at least ``K``.
5. **Exact re-rank**: ``(cast(q[c]) @ u) · scale[c] + b[c] + mask[c]``, the maths of ``score``, then
   ``TOPK_V2(K)`` over the candidates. Their ids ascend, so the tie rule (lower item index first) is the
   one of a ``TOPK_V2`` over the whole catalog: ``top_ids`` are the exact top-``K`` of the re-rank's scores
   and ``top_scores`` are those scores.

With all but a few items masked (fewer than ``K`` blocks hold an eligible item) ``t = -inf`` and
``tau = -inf``: every item is a candidate (the padding slots are dropped), slower but exact, and the
``-inf`` entries fill the tail of the top-``K`` by lower index, as a full ``TOPK_V2`` would. Many exact
ties at the threshold (duplicated rows, ``u = 0``: then ``E = 0`` and the scan is ``b + mask`` exactly)
make many candidates, never a wrong answer. At 100k × 32 (one thread, LiteRT 2.3) the previous
``TOPK_V2(K + 64)`` over the catalog cost about 0.3 ms, as much as the scan; the block maxima, the
threshold, the two ``WHERE`` s (dynamic shapes: the interpreter re-prepares the ops after them on every
call) and the re-rank of the candidates (about 20 for ``u ~ N(0, 1)``, ``K = 10``) cost about 0.06 ms.

int8 ``score`` (catalogs of at least ``SCAN_MIN_ITEMS`` items): short lists gather their rows, as above.
Lists of ``N >= num_items / SCAN_RATIO`` ids score the whole catalog with the hybrid ``FULLY_CONNECTED``
instead (its cost does not depend on ``N``) and stay accurate for every item, whichever kernel runs:

- A second hybrid ``FULLY_CONNECTED`` whose weights are the ``d x d`` int8 identity (scale 1) returns the
  kernel's own quantized input ``Q(u)`` exactly (one non-zero term per output), so ``r = u - Q(u)`` is known
  (``|r| <= max|u| / 254``, XNNPACK's asymmetric or the builtin symmetric quantizer alike).
- ``scores = (FC(u) + FC(r)) · scale + b``: ``FC(u)`` is exact for ``Q(u)``, and ``FC(r)`` is off by at most
  ``Σ_k |q[n, k]| · max|r| / 254``, so ``|err| <= max|u| · L1MAX / 254^2`` plus float32 rounding (about
  1e-4 · max|u| at d = 32, against 1e-2 for one pass).
- The scan is gathered at the ids. The branch is one ``IF`` (``tf.cond`` on ``N · SCAN_RATIO >= num_items``)
  and nothing else. Skipping the ``GATHER`` for ids exactly ``0 .. num_items - 1`` (the runtime's whole
  catalog) would save about 0.45 ms at 100k, but every graph tried for it broke tflite-runtime 2.14 once
  the ids were resized between calls (heap corruption, or a ``GATHER`` out of bounds): a second ``IF``,
  nested or in sequence, and an in-order test (``RANGE``, ``CUMSUM`` or ``STRIDED_SLICE`` based) deciding
  the ``IF``; choosing by slice lengths inside the branch ran there but cost more than the ``GATHER``.
  :func:`_inline_branch_constants` makes the table a constant of the branch (the converter passes it in as
  an input), as the hybrid kernel needs.

At 100k × 32 (one thread, LiteRT 2.3, XNNPACK): the whole catalog about 1.0 ms (the scan about 0.55 ms, the
``GATHER`` of 100k ids about 0.45 ms: TFLite copies one element at a time), against 3.7-4.4 ms for gathering
100k rows (below ``SCAN_MIN_ITEMS``, see the end of the next paragraph).

``score_all(user f32[d]) -> scores f32[num_items]`` (catalogs of at least ``SCAN_MIN_ITEMS`` items, float32 and
int8; ``details.score_all`` in the manifest): the whole catalog without the ids input and its ``GATHER`` — what
``score`` returns for ``0 .. num_items - 1``. int8: :meth:`scan_exact`, the same two-pass scan as long-list
``score`` (bit-identical results); float32: one ``FULLY_CONNECTED`` over the float table, which the file already
stores once. No ``IF``, so tflite-runtime 2.14 runs it between resized ``score`` calls. About 1 KB of file at
100k × 32 (its subgraph; the identity probe's int8 buffer is shared). Measured at 100k × 32, one thread,
interleaved with the numpy baseline: ``score_all`` + top-10 0.87-0.91x numpy (int8) and 0.81-0.85x (float32),
against 1.43-1.47x and 4.0-4.1x for ``score`` over every id (the latency report has the committed figures).
Below ``SCAN_MIN_ITEMS`` the gathered rows cost under 0.2 ms for the whole catalog, and the probe (``d²`` bytes),
the branch subgraphs and ``score_all`` would cost about 4 KB at 1682 × 64, over the int8 size target there.

The converter cannot emit hybrid weights from a ``tf.function`` (it would need a float table, and with
``Optimize.DEFAULT`` it re-quantizes with its own scales). So ``recommend`` is traced with the
dequantized float table as a placeholder constant in ``tf.matmul(u[None], V, transpose_b=True)``
(lowered to ``FULLY_CONNECTED``), and :func:`_use_int8_weights` then edits the flatbuffer: that op's
weight tensor becomes ``INT8`` with the per-tensor scale 1 (the row scales are applied to the ``N``
outputs: per-channel scales would add 12 bytes per item to the file, the float32 scales again plus int64
zero points) and points at the int8 table's buffer, and the placeholder's float bytes are dropped. The file thus holds the
table once, in int8. (History: a plain ``cast(q) * scale`` is constant-folded by the converter into a
float32 table for small tables — seen with 200×8 — which silently ships a float table; the gathers above
depend on an input, so they cannot be folded.) The bias stays float32 and every constant is stored once,
shared by the three signatures.

File size (target: int8 ≤ 0.30 × float32 at 1682×64): after conversion, :func:`_compact` rewrites the
bookkeeping only — empty names for internal tensors, one empty buffer for all non-constant tensors, no
empty quantization tables, shared shape/index vectors, strings and operator options — about 5–7 KB less
per file, with the
signature keys, their input/output names, the graph and every weight byte unchanged.

``recommend`` tie rule: ``tf.math.top_k(sorted=True)`` lowers to TFLite ``TOPK_V2``, which orders equal
scores by the lower item index first — the same rule as :meth:`privrec.sdk.model.ItemModel.recommend`.
With ``K`` larger than the number of eligible items, excluded items (score ``-inf``) fill the tail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import Int4ItemModel, QuantizedItemModel
from privrec.sdk.reconstruct import LABEL_SUM_FLOOR

from .base import ArtifactRecord, Exportable, ExportConfig, Precision, register_exporter
from .manifest import bundle_signatures
from .scan_bound import bias_max, round_up_f32, row_l1_max

__all__ = ["TFLITE_FILE", "TFLiteRunner", "export"]

TFLITE_FILE = "model.tflite"
_SIGNATURE_NAMES = ("score", "recommend", "finetune")
TIE_RULE = "equal scores: lower item index first (TFLite TOPK_V2)"
QUANT_ERROR = 1.0 / 254.0 + 1e-5
"""int8 ``recommend``: the hybrid scan's error per unit of ``max|u| · L1MAX`` (module docstring, step 2)."""
ROUNDING = 2.0**-20
"""int8 ``recommend``: the threshold's float32 rounding margin, relative (module docstring, step 3)."""
SCAN_RATIO = 5
"""int8 ``score``: lists of at least ``num_items / SCAN_RATIO`` ids scan the whole catalog (at 100k × 32 the
gathered rows cost about as much as the scan and its ``GATHER`` for 13k-20k ids: 13k ids 0.53 ms by rows,
0.69 ms by scan; 20k ids 1.16 and 0.92 ms; one thread, medians of 400, a shared machine)."""
SCAN_MIN_ITEMS = 4096
"""int8 ``score``: smaller catalogs have no scan branch (module docstring); nor ``score_all`` (any precision)."""
CATALOG_SIGNATURE = "score_all"
"""The optional whole-catalog signature ``score_all(user f32[d]) -> scores f32[num_items]`` of catalogs of at
least ``SCAN_MIN_ITEMS`` items (module docstring, ``score_all``); the manifest's ``details.score_all`` is true."""


@dataclass(frozen=True)
class _Blocks:
    """The int8 ``recommend`` scan viewed as ``[count, size]``: ``pad`` trailing ``-inf`` slots make it fit."""

    size: int
    count: int
    pad: int


def _blocks(num_items: int, top_k: int) -> _Blocks:
    """Blocks of about ``sqrt(num_items)`` items and at least ``top_k`` of them (``size <= num_items // top_k``);
    a divisor of ``num_items`` within a factor 2 of that size if there is one, so that nothing is padded."""
    target = max(1, min(math.isqrt(num_items), num_items // top_k))
    for size in range(target, (target - 1) // 2, -1):
        if num_items % size == 0:
            return _Blocks(size, num_items // size, 0)
    count = -(-num_items // target)
    return _Blocks(target, count, count * target - num_items)


@dataclass(frozen=True)
class _Bound:
    """The int8 ``recommend`` margin ``max|u| · slope + offset`` (float32 constants, rounded up)."""

    slope: float
    offset: float


def _bound(table: NDArray[Any], scale: NDArray[np.float32], bias: NDArray[np.float32]) -> _Bound:
    """``slope = L1MAX · (2 (QUANT_ERROR + d · 2^-23) + ROUNDING)``, ``offset = max|b| · ROUNDING`` (module docstring)."""
    slope = row_l1_max(table, scale) * (2.0 * (QUANT_ERROR + int(table.shape[1]) * 2.0**-23) + ROUNDING)
    return _Bound(round_up_f32(slope), round_up_f32(bias_max(bias) * ROUNDING))


def _scan_score(num_items: int, dim: int) -> bool:
    """Whether the int8 ``score`` gets the whole-catalog scan branch (module docstring, int8 ``score``), and the
    file the ``score_all`` signature (either precision)."""
    return num_items >= SCAN_MIN_ITEMS and num_items > dim


_Weights = tuple[NDArray[Any], NDArray[np.float32] | None, NDArray[np.float32], Precision]


def _weights(model: Exportable) -> _Weights:
    if isinstance(model, QuantizedItemModel):
        return model.item_embedding, model.item_scale, model.item_bias, "int8"
    if isinstance(model, ItemModel):
        return model.item_embedding, None, model.item_bias, "float32"
    raise TypeError(f"`model` must be an ItemModel or a QuantizedItemModel. Found {type(model).__name__}.")


_F = TypeVar("_F", bound=Callable[..., Any])


def _tf_signature(*specs: Any) -> Callable[[_F], _F]:
    """``tf.function(input_signature=specs)``, typed for mypy (TensorFlow ships no type hints)."""
    import tensorflow as tf

    return cast(Callable[[_F], _F], tf.function(input_signature=list(specs)))


def _build_module(
    table: NDArray[Any], scale: NDArray[np.float32] | None, bias: NDArray[np.float32], top_k: int, steps: int
) -> Any:
    """The ``tf.Module`` whose three ``tf.function`` s are the signatures (TensorFlow imported lazily)."""
    import tensorflow as tf

    num_items, dim = (int(s) for s in table.shape)
    blocks = _blocks(num_items, top_k)
    bound = None if scale is None else _bound(table, scale, bias)
    whole = _scan_score(num_items, dim)
    scan = scale is not None and whole

    class _Recommender(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="privrec")
            self.table = tf.constant(table)
            self.scale = None if scale is None else tf.constant(scale)
            self.bias = tf.constant(bias)
            # int8 `recommend`: float stand-in for the FULLY_CONNECTED weights, replaced by the int8 table
            # in the flatbuffer (:func:`_use_int8_weights`); never shipped.
            self.placeholder = None if scale is None else tf.constant(table.astype(np.float32))
            # int8 `score` on long lists: the d x d identity probe, float here, int8 in the file.
            self.probe = tf.constant(np.eye(dim, dtype=np.float32)) if scan else None

        def rows(self, ids: Any) -> Any:
            """``V[ids]`` as float32 ``[len(ids), d]`` (int8: dequantized after the gather)."""
            gathered = tf.gather(self.table, ids)
            if self.scale is None:
                return gathered
            return tf.cast(gathered, tf.float32) * tf.expand_dims(tf.gather(self.scale, ids), 1)

        def exact(self, user: Any, ids: Any) -> Any:
            """``V[ids] · u + b[ids]``; int8 applies the row scale to the product, not to the rows."""
            if self.scale is None:
                return tf.linalg.matvec(tf.gather(self.table, ids), user) + tf.gather(self.bias, ids)
            dots = tf.linalg.matvec(tf.cast(tf.gather(self.table, ids), tf.float32), user)
            return dots * tf.gather(self.scale, ids) + tf.gather(self.bias, ids)

        def scan_exact(self, user: Any) -> Any:
            """Every item's score from two hybrid ``FULLY_CONNECTED`` passes over the int8 table (module
            docstring, int8 ``score``): the probe gives the kernel's own quantized ``u``, the second pass
            scans the exact remainder ``u - Q(u)``."""
            x = tf.expand_dims(user, 0)
            quantized = tf.matmul(x, self.probe, transpose_b=True)  # Q(u): made the int8 identity by _use_int8_weights
            rest = x - quantized
            dots = tf.matmul(x, self.placeholder, transpose_b=True) + tf.matmul(rest, self.placeholder, transpose_b=True)
            return tf.reshape(dots, [num_items]) * self.scale + self.bias

        @_tf_signature(
            tf.TensorSpec([dim], tf.float32, name="user"),
            tf.TensorSpec([None], tf.int32, name="item_ids"),
        )
        def score(self, user: Any, item_ids: Any) -> dict[str, Any]:
            if self.probe is None:
                return {"scores": self.exact(user, item_ids)}
            # Long lists: the whole-catalog scan, gathered at the ids (its cost does not depend on N); short ones:
            # their rows. One IF and nothing else (module docstring, int8 ``score``: tflite-runtime 2.14).
            long = tf.shape(item_ids)[0] * SCAN_RATIO >= num_items
            return {
                "scores": tf.cond(
                    long, lambda: tf.gather(self.scan_exact(user), item_ids), lambda: self.exact(user, item_ids)
                )
            }

        if whole:  # a class attribute only where it is exported (saving the module traces every tf.function)

            @_tf_signature(tf.TensorSpec([dim], tf.float32, name="user"))
            def score_all(self, user: Any) -> dict[str, Any]:
                """Every item's score, in item order, without the ids input and its ``GATHER`` (module docstring)."""
                if self.probe is None:  # float32: one FULLY_CONNECTED over the table
                    return {"scores": tf.linalg.matvec(self.table, user) + self.bias}
                return {"scores": self.scan_exact(user)}

        @_tf_signature(
            tf.TensorSpec([dim], tf.float32, name="user"),
            tf.TensorSpec([num_items], tf.float32, name="mask"),
        )
        def recommend(self, user: Any, mask: Any) -> dict[str, Any]:
            if bound is None:  # float32
                full = tf.linalg.matvec(self.table, user)
                top_scores, top_ids = tf.math.top_k(full + self.bias + mask, k=top_k, sorted=True)
                return {"top_ids": top_ids, "top_scores": top_scores}
            return self.recommend_int8(user, mask, bound)

        def recommend_int8(self, user: Any, mask: Any, bound: _Bound) -> dict[str, Any]:
            """Steps 1-5 of the module docstring: scan, bound, threshold, candidates, exact re-rank."""
            # 1. scan: FULLY_CONNECTED over the placeholder, rewritten to int8 hybrid weights afterwards, then
            #    the row scale, bias and mask (three elementwise passes; no TopK over the catalog).
            dots = tf.reshape(tf.matmul(tf.expand_dims(user, 0), self.placeholder, transpose_b=True), [num_items])
            scan = dots * self.scale + self.bias + mask
            # 2. the margin: 2E plus float32 rounding. `min(dots[0], 0) <= 0 <= max|u|` leaves max|u| unchanged,
            #    but reading `dots` a second time keeps the converter from fusing the row-scale multiply into the
            #    FULLY_CONNECTED weights (they must stay the int8 table; `_use_int8_weights` checks it): a scalar,
            #    where a dependency added to the scores would cost a pass over the catalog.
            umax = tf.maximum(tf.reduce_max(tf.abs(user)), tf.minimum(dots[0], 0.0))
            margin = umax * bound.slope + bound.offset
            # 3. threshold: t, the K-th largest block maximum, is <= the K-th largest scan value.
            if blocks.pad:
                scan = tf.concat([scan, tf.fill([blocks.pad], -np.inf)], 0)
            grid = tf.reshape(scan, [blocks.count, blocks.size])
            block_max = tf.reduce_max(grid, axis=1)
            t = tf.math.top_k(block_max, k=top_k, sorted=True).values[top_k - 1]
            # t = -inf (fewer than K blocks hold an eligible item) gives tau = -inf: every item is a candidate.
            tau = t - margin
            # 4. candidates: the items whose scan reaches tau, in the blocks whose maximum does; ascending ids.
            chosen = tf.reshape(tf.where(block_max >= tau), [-1])
            starts = tf.cast(chosen, tf.int32) * blocks.size
            row, offset = tf.unstack(tf.cast(tf.where(tf.gather(grid, chosen) >= tau), tf.int32), axis=1)
            cand = tf.gather(starts, row) + offset
            if blocks.pad:  # only with tau = -inf can a padding slot be a candidate
                cand = tf.gather(cand, tf.reshape(tf.where(cand < num_items), [-1]))
            # 5. exact re-rank: ids ascend, so TOPK_V2 (lower index first among equal scores) keeps the tie rule.
            exact = self.exact(user, cand) + tf.gather(mask, cand)
            top_scores, pos = tf.math.top_k(exact, k=top_k, sorted=True)
            return {"top_ids": tf.gather(cand, pos), "top_scores": top_scores}

        @_tf_signature(
            tf.TensorSpec([dim], tf.float32, name="user"),
            tf.TensorSpec([None], tf.int32, name="item_ids"),
            tf.TensorSpec([None], tf.float32, name="labels"),
            tf.TensorSpec([1], tf.float32, name="lr"),
            tf.TensorSpec([1], tf.float32, name="l2"),
        )
        def finetune(self, user: Any, item_ids: Any, labels: Any, lr: Any, l2: Any) -> dict[str, Any]:
            # sdk/reconstruct.py `finetune_reference`, unrolled `steps` times (Singhal et al. 2021, §3).
            v = self.rows(item_ids)
            b = tf.gather(self.bias, item_ids)
            y = labels / tf.maximum(tf.reduce_sum(labels), LABEL_SUM_FLOOR)
            u = user
            for _ in range(steps):
                p = tf.nn.softmax(tf.linalg.matvec(v, u) + b)
                grad = tf.reduce_sum(v * tf.expand_dims(p - y, 1), axis=0) + l2 * u
                u = u - lr * grad
            log_p = tf.nn.log_softmax(tf.linalg.matvec(v, u) + b)
            loss = -tf.reduce_sum(y * log_p) + 0.5 * l2 * tf.reduce_sum(u * u)
            return {"user_out": u, "loss": loss}

    return _Recommender()


def _convert(model: Exportable, config: ExportConfig, compact: bool = True) -> tuple[bytes, Precision, int, str]:
    """The ``.tflite`` bytes, precision, ``K`` and TensorFlow version; ``compact=False`` skips :func:`_compact`."""
    import tensorflow as tf

    table, scale, bias, precision = _weights(model)
    top_k = config.top_k
    if top_k > table.shape[0]:
        raise ValueError(f"`top_k` must be <= num_items ({table.shape[0]}). Found {top_k}.")
    module = _build_module(table, scale, bias, top_k, config.finetune_steps)
    names = (*_SIGNATURE_NAMES, CATALOG_SIGNATURE) if _scan_score(*table.shape) else _SIGNATURE_NAMES
    functions = [getattr(module, name).get_concrete_function() for name in names]
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    data = bytes(converter.convert())
    if scale is not None:
        data = _use_int8_weights(data, table, scale)
    return (_compact(data) if compact else data), precision, top_k, str(tf.__version__)


def _use_int8_weights(data: bytes, table: NDArray[Any], scale: NDArray[np.float32]) -> bytes:
    """Point the int8 scans' ``FULLY_CONNECTED`` weights at the int8 table (hybrid kernel).

    Every ``FULLY_CONNECTED`` (in any subgraph, ``IF`` branches included) whose weights are a constant of the
    table's shape holding exactly the table's values (float32 placeholder, or int8 with scale 1 if the
    converter quantized it itself) gets ``INT8`` weights with the per-tensor scale 1 and zero point 0 (the
    graph multiplies the ``N`` outputs by ``scale``, see the module docstring) that point at the buffer of
    the int8 table (already in the file for ``score``/``finetune``); the placeholder's buffer is emptied.
    The ``score`` probe (float32 ``d x d`` identity) becomes the int8 identity with scale 1. Raises
    ``RuntimeError`` if the converter did not produce exactly that (a converter change must not silently
    ship a float table or a mis-scaled one).
    """
    import flatbuffers  # type: ignore[import-untyped]
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    shape = [int(s) for s in table.shape]
    dim = shape[1]
    probe = _scan_score(*shape)

    def payload(buffer: int) -> bytes:
        raw = model.buffers[buffer].data
        return b"" if raw is None else bytes(raw)

    def scale_one(t: Any) -> bool:
        q = t.quantization
        return (
            q is not None and q.scale is not None and [float(x) for x in q.scale] == [1.0]
            and (q.zeroPoint is None or all(int(z) == 0 for z in q.zeroPoint))
        )

    int8_buffers = {
        t.buffer
        for g in model.subgraphs
        for t in g.tensors
        if t.type == schema.TensorType.INT8
        and [int(s) for s in t.shape] == shape
        and payload(t.buffer) == table.astype(np.int8).tobytes()
        and not scale_one(t)
    }
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    _inline_branch_constants(model, codes, schema)
    weights = [
        g.tensors[op.inputs[1]]
        for g in model.subgraphs
        for op in g.operators
        if codes[op.opcodeIndex] == schema.BuiltinOperator.FULLY_CONNECTED
        and payload(g.tensors[op.inputs[1]].buffer)
    ]
    scans = [w for w in weights if [int(s) for s in w.shape] == shape]
    probes = [w for w in weights if [int(s) for s in w.shape] == [dim, dim]]
    want_scans, want_probes = (5, 2) if probe else (1, 0)  # score's two scans and probe, score_all's, recommend's scan
    if (
        len(int8_buffers) != 1
        or len(scans) != want_scans
        or len(probes) != want_probes
        or len(weights) != len(scans) + len(probes)
    ):
        raise RuntimeError(
            f"int8 scans: expected one int8 table buffer, {want_scans} FULLY_CONNECTED placeholders of shape "
            f"{shape} and {want_probes} of shape {[dim, dim]}; found {len(int8_buffers)}, {len(scans)} and "
            f"{len(probes)} (of {len(weights)} constant FULLY_CONNECTED weights). The TensorFlow converter "
            "changed its output."
        )
    table_bytes = {schema.TensorType.FLOAT32: table.reshape(-1).astype(np.float32).tobytes(),
                   schema.TensorType.INT8: table.astype(np.int8).tobytes()}  # fmt: skip
    eye = np.eye(dim, dtype=np.float32)
    probe_bytes = {schema.TensorType.FLOAT32: eye.tobytes(), schema.TensorType.INT8: eye.astype(np.int8).tobytes()}
    for w in scans:
        if payload(w.buffer) != table_bytes.get(w.type) or (w.type == schema.TensorType.INT8 and not scale_one(w)):
            raise RuntimeError(
                "int8 scans: the converter changed the FULLY_CONNECTED weights (e.g. fused the row-scale multiply "
                "into them); they are no longer the int8 table. Refusing to ship a mis-scaled model."
            )
    for w in probes:
        if payload(w.buffer) != probe_bytes.get(w.type) or (w.type == schema.TensorType.INT8 and not scale_one(w)):
            raise RuntimeError("int8 score: the converter changed the identity probe's weights. Refusing to ship it.")
    # Checked all; now rewrite (scans may share one placeholder buffer, emptied once).
    for w in scans:
        if w.buffer not in int8_buffers:
            model.buffers[w.buffer].data = None  # the float stand-in is never shipped
        w.buffer = next(iter(int8_buffers))
        _int8_scale_one(schema, w)
    if probes:  # one int8 identity buffer, shared by every probe
        identity = schema.BufferT()
        identity.data = np.frombuffer(probe_bytes[schema.TensorType.INT8], np.uint8).copy()
        model.buffers.append(identity)
    for w in probes:
        model.buffers[w.buffer].data = None  # the float identity is never shipped
        w.buffer = len(model.buffers) - 1
        _int8_scale_one(schema, w)
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _inline_branch_constants(model: Any, codes: list[int], schema: Any) -> None:
    """Make the constants an ``IF`` passes to its branches constants of the branch subgraphs.

    The converter lowers ``tf.cond`` to ``IF`` with every captured constant (the table, its float
    placeholder, the scales, the bias) as an input of both branches. A hybrid ``FULLY_CONNECTED`` needs
    constant weights (XNNPACK packs them once), so each such input is dropped from the ``IF`` and from both
    branches' input lists, and the branch tensor it fed points at the constant's buffer instead (same type,
    shape and quantization: the values the branch reads are unchanged).
    """
    changed = True
    while changed:  # nested IFs: the constants just inlined into a branch feed that branch's own IFs
        changed = False
        for graph in model.subgraphs:
            for op in graph.operators:
                if codes[op.opcodeIndex] == schema.BuiltinOperator.IF:
                    changed = _inline_if(model, graph, op) or changed


def _inline_if(model: Any, graph: Any, op: Any) -> bool:
    """One ``IF`` of :func:`_inline_branch_constants`; True if it had constant inputs."""
    branches = [model.subgraphs[op.builtinOptions.thenSubgraphIndex], model.subgraphs[op.builtinOptions.elseSubgraphIndex]]
    keep = [0]  # the condition
    for position, index in enumerate(int(i) for i in op.inputs[1:]):
        data = None if index < 0 else model.buffers[graph.tensors[index].buffer].data
        if data is None or len(data) == 0:
            keep.append(position + 1)
            continue
        source = graph.tensors[index]
        for branch in branches:
            target = branch.tensors[int(branch.inputs[position])]
            target.buffer, target.type, target.quantization = source.buffer, source.type, source.quantization
    if len(keep) == len(op.inputs):
        return False
    for branch in branches:
        branch.inputs = np.array([int(branch.inputs[p - 1]) for p in keep[1:]], np.int32)
    op.inputs = np.array([int(op.inputs[p]) for p in keep], np.int32)
    return True


def _int8_scale_one(schema: Any, tensor: Any) -> None:
    """Make ``tensor`` ``INT8`` with the per-tensor scale 1 and zero point 0 (row scales go on the output)."""
    tensor.type = schema.TensorType.INT8
    quant = schema.QuantizationParametersT()
    quant.scale = [1.0]
    quant.zeroPoint = [0]
    tensor.quantization = quant


def _compact(data: bytes) -> bytes:
    """Shrink the flatbuffer's bookkeeping without touching the graph or a single weight byte.

    The converter gives every tensor its own (mostly empty) buffer, an empty quantization table and its
    TensorFlow name (``"GatherV2_1;1"``, ...), per signature subgraph: at 1682×64 that is ~19 KB in the
    int8 file, about 13 % of it. This rewrite:

    - gives every tensor that is not a signature input/output the empty name, stored once (signature
      inputs and outputs, the SignatureDef keys and their input/output names are kept exactly: runners
      look them up by name; the interpreter addresses every other tensor by index);
    - points every tensor without constant data at buffer 0 (the schema's empty sentinel), stores
      byte-identical constants once, and drops buffers nothing refers to;
    - drops empty quantization tables and the converter's ``CONVERSION_METADATA`` entry (provenance
      only; ``min_runtime_version`` is kept);
    - writes each distinct operator-options table once (:func:`_pack_shared`).

    Operators, tensor types, shapes and constant bytes are unchanged, so the numerics are identical.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)

    def payload(buffer: Any) -> bytes:
        return b"" if buffer.data is None else bytes(buffer.data)

    for buffer in model.buffers:
        if buffer.offset or buffer.size:
            return data  # external (> 2 GB) buffer layout: leave the file as the converter wrote it
    model.metadata = [m for m in model.metadata or [] if m.name != b"CONVERSION_METADATA"]
    kept: list[Any] = [schema.BufferT()]  # index 0: the empty sentinel
    by_bytes: dict[bytes, int] = {b"": 0}

    def remap(old: int) -> int:
        key = payload(model.buffers[old])
        if key not in by_bytes:
            by_bytes[key] = len(kept)
            kept.append(model.buffers[old])
        return by_bytes[key]

    io: dict[int, set[int]] = {g: set() for g in range(len(model.subgraphs))}
    for g, graph in enumerate(model.subgraphs):
        io[g].update(int(t) for t in list(graph.inputs if graph.inputs is not None else []))
        io[g].update(int(t) for t in list(graph.outputs if graph.outputs is not None else []))
    for signature in model.signatureDefs or []:
        io[signature.subgraphIndex].update(int(t.tensorIndex) for t in [*signature.inputs, *signature.outputs])
    for g, graph in enumerate(model.subgraphs):
        for index, tensor in enumerate(graph.tensors):
            tensor.buffer = remap(tensor.buffer)
            if index not in io[g]:
                tensor.name = b""
            q = tensor.quantization
            if q is not None and not any(
                x is not None and len(x) > 0 for x in (q.scale, q.zeroPoint, q.min, q.max)
            ) and q.details is None:
                tensor.quantization = None
    for entry in model.metadata:
        # metadata buffers are never shared with tensors (their bytes may coincide with a constant's)
        kept.append(model.buffers[entry.buffer])
        entry.buffer = len(kept) - 1
    model.buffers = kept
    return _pack_shared(model, len(data))


def _pack_shared(model: Any, size_hint: int) -> bytes:
    """Serialize a ``ModelT``, writing each distinct string, small vector (shapes, op inputs, names) and
    operator-options table (``AddOptions``, ``GatherOptions(axis=0)``, ...) once.

    Sharing an offset between several tables is valid FlatBuffers (what ``CreateSharedString`` does for
    strings); the TFLite verifier only checks that each offset is in bounds. ``uint8`` vectors are the
    ``Buffer.data`` payloads and get the schema's ``force_align: 16`` (the Python object API ignores it).
    """
    import flatbuffers

    class _SharingBuilder(flatbuffers.Builder):  # type: ignore[misc]
        head: int
        Bytes: bytearray
        vectorNumElems: int  # noqa: N815 (flatbuffers' attribute name)

        def __init__(self, size: int) -> None:
            super().__init__(size)
            self.shared: dict[tuple[str, bytes], int] = {}

        def CreateString(self, s: str | bytes, encoding: str = "utf-8", errors: str = "strict") -> int:  # noqa: N802
            raw = s.encode(encoding, errors) if isinstance(s, str) else bytes(s)
            key = ("str", raw)
            if key not in self.shared:
                self.shared[key] = super().CreateString(raw)
            return self.shared[key]

        def CreateNumpyVector(self, x: NDArray[Any]) -> int:  # noqa: N802
            if x.dtype == np.uint8:  # Buffer.data (deduplicated by the caller): not shared, 16-byte aligned
                payload = x.tobytes()
                self.StartVector(1, len(payload), 16)
                self.head = self.head - len(payload)
                self.Bytes[self.head : self.head + len(payload)] = payload
                self.vectorNumElems = len(payload)
                return int(self.EndVector())
            key = (x.dtype.str, x.tobytes())
            if key not in self.shared:
                self.shared[key] = super().CreateNumpyVector(x)
            return self.shared[key]

    class _SharedOptions:
        """Packs like the options object it wraps, once per distinct content."""

        def __init__(self, options: Any, packed: dict[Any, int]) -> None:
            self.options, self.packed = options, packed
            fields = sorted(vars(options).items())
            self.key = (type(options).__name__, repr([(k, v.tolist() if isinstance(v, np.ndarray) else v) for k, v in fields]))

        def Pack(self, builder: Any) -> int:  # noqa: N802 (the flatbuffers object API's name)
            if self.key not in self.packed:
                self.packed[self.key] = self.options.Pack(builder)
            return self.packed[self.key]

    packed: dict[Any, int] = {}
    for graph in model.subgraphs:
        for op in graph.operators:
            if op.builtinOptions is not None:
                op.builtinOptions = _SharedOptions(op.builtinOptions, packed)
    builder = _SharingBuilder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _factory(bundle_dir: Path, record: ArtifactRecord) -> TFLiteRunner:
    return TFLiteRunner(Path(bundle_dir) / record.files[0], score_all=record.details.get(CATALOG_SIGNATURE) is True)


@register_exporter("tflite", _factory)
def export(model: Exportable, bundle_dir: Path, config: ExportConfig) -> ArtifactRecord:
    """Write ``bundle_dir/model.tflite`` (three named signatures, plus ``score_all`` for catalogs of at least
    ``SCAN_MIN_ITEMS`` items) and describe it.

    Args:
        model: float32 :class:`ItemModel` or int8 :class:`QuantizedItemModel`.
        bundle_dir: output directory (created if missing).
        config: ``top_k`` (``K`` of ``recommend``, at most the item count) and ``finetune_steps``.

    Returns:
        The artifact record: ``files=("model.tflite",)``, the specs of the three contract signatures and
        details (converter version, stored table dtype, tie rule, ``score_all``: whether the file has it).

    Raises:
        TypeError: ``model`` or ``config`` has the wrong type.
        ValueError: ``config.top_k`` exceeds the number of items.
    """
    if not isinstance(config, ExportConfig):
        raise TypeError(f"`config` must be an ExportConfig. Found {type(config).__name__}.")
    if isinstance(model, Int4ItemModel):  # packed uint8 table unpacked in the graph: privrec.export.tflite_int4
        from .tflite_int4 import export_int4

        return export_int4(model, bundle_dir, config)
    data, precision, top_k, tf_version = _convert(model, config)
    out_dir = Path(bundle_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TFLITE_FILE).write_bytes(data)
    table = model.item_embedding
    return ArtifactRecord(
        format="tflite",
        precision=precision,
        files=(TFLITE_FILE,),
        signatures=bundle_signatures(int(table.shape[1]), int(table.shape[0]), top_k),
        details={
            "converter": f"tensorflow {tf_version} TFLiteConverter.from_concrete_functions",
            "ops": "TFLITE_BUILTINS",
            "table_dtype": str(table.dtype),
            "top_k": top_k,
            "finetune_steps": config.finetune_steps,
            "tie_rule": TIE_RULE,
            CATALOG_SIGNATURE: _scan_score(*(int(x) for x in table.shape)),
        },
    )


class TFLiteRunner:
    """Runs ``model.tflite`` in the LiteRT interpreter (``ai_edge_litert``, one thread).

    Implements :class:`privrec.export.base.SignatureRunner` and :class:`privrec.export.base.CatalogScorer`
    (``score_all`` when the file has that signature and ``score_all=True``, as the manifest's
    ``details.score_all`` says). Inputs are assumed validated by the caller; each call resizes the dynamic
    ``N``/``M`` inputs through LiteRT's signature runner. Not thread-safe: one runner per thread.

    Raises ``ValueError`` naming what is missing if the file lacks one of the three signatures, or lacks
    ``score_all`` while ``score_all=True``.
    """

    def __init__(self, path: Path, *, score_all: bool = False) -> None:
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No TFLite model at {path}.")
        self.path = path
        self._interpreter = Interpreter(model_path=str(path), num_threads=1)
        found = set(self._interpreter.get_signature_list())
        missing = [name for name in _SIGNATURE_NAMES if name not in found]
        if missing:
            raise ValueError(f"{path.name} must have signatures {list(_SIGNATURE_NAMES)}. Missing {missing}.")
        if score_all and CATALOG_SIGNATURE not in found:
            raise ValueError(
                f"{path.name} must have the `{CATALOG_SIGNATURE}` signature (the manifest's details.{CATALOG_SIGNATURE} "
                f"is true). Found {sorted(found)}."
            )
        names = (*_SIGNATURE_NAMES, CATALOG_SIGNATURE) if score_all else _SIGNATURE_NAMES
        self._runners = {name: self._interpreter.get_signature_runner(name) for name in names}

    def signature_list(self) -> dict[str, dict[str, list[str]]]:
        """The interpreter's signature keys with their input and output names."""
        return dict(self._interpreter.get_signature_list())

    def _run(self, name: str, **inputs: NDArray[Any]) -> dict[str, NDArray[Any]]:
        out = self._runners[name](**{k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return {k: np.asarray(v) for k, v in out.items()}

    def score(self, user: NDArray[np.float32], item_ids: NDArray[np.int32]) -> NDArray[np.float32]:
        """``scores f32[N]`` for ``item_ids i32[N]``."""
        ids = np.asarray(item_ids, np.int32)
        if ids.size == 0:  # a zero-sized dynamic input is not portable across TFLite versions
            return np.zeros(0, np.float32)
        out = self._run("score", user=np.asarray(user, np.float32), item_ids=ids)
        return out["scores"].astype(np.float32, copy=False)

    def score_all(self, user: NDArray[np.float32]) -> NDArray[np.float32] | None:
        """``scores f32[num_items]`` in item order through ``score_all``; None when this runner has none."""
        if CATALOG_SIGNATURE not in self._runners:
            return None
        return self._run(CATALOG_SIGNATURE, user=np.asarray(user, np.float32))["scores"].astype(np.float32, copy=False)

    def recommend(
        self, user: NDArray[np.float32], mask: NDArray[np.float32]
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """``(top_ids i32[K], top_scores f32[K])``, highest first; ties by lower index."""
        out = self._run("recommend", user=np.asarray(user, np.float32), mask=np.asarray(mask, np.float32))
        return out["top_ids"].astype(np.int32, copy=False), out["top_scores"].astype(np.float32, copy=False)

    def finetune(
        self,
        user: NDArray[np.float32],
        item_ids: NDArray[np.int32],
        labels: NDArray[np.float32],
        lr: NDArray[np.float32],
        l2: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(user_out f32[d], loss f32[1])`` after the exported number of steps."""
        if np.asarray(item_ids).size == 0:
            raise ValueError("`item_ids` must hold at least one item for `finetune`. Found 0.")
        out = self._run(
            "finetune",
            user=np.asarray(user, np.float32),
            item_ids=np.asarray(item_ids, np.int32),
            labels=np.asarray(labels, np.float32),
            lr=np.asarray(lr, np.float32).reshape(1),
            l2=np.asarray(l2, np.float32).reshape(1),
        )
        user_out = out["user_out"].astype(np.float32, copy=False)
        return user_out, out["loss"].astype(np.float32, copy=False).reshape(1)
