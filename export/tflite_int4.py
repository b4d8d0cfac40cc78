"""TFLite int4 artifact: the packed int4 table as a ``uint8`` constant, unpacked by the graph.

LiteRT's builtin kernels take int4 only as the weights of a few ops (``FULLY_CONNECTED``/``CONV`` with
int4 per-channel quantization), and the converter produces those only from its own quantizer (with its
own scales and rounding), not from a table we quantized. So ``model.tflite`` stores the bytes of
``weights.safetensors``' ``item_embedding`` (``uint8[num_items, d / 2]``, two int4 values per byte, low
nibble first: :func:`privrec.sdk.quantize.pack_int4`) as a ``uint8`` constant, and every signature
unpacks the rows it needs with builtin integer ops (``GATHER``, ``CAST``, ``FLOOR_MOD``, ``FLOOR_DIV``,
``PACK``, ``RESHAPE``): ``lo = byte mod 16``, ``hi = byte div 16``, ``v = n - 16 (n >= 8)``, then
``V[ids] = v * item_scale[ids]``. ``recommend`` does the same over all rows, gathered with indices
that depend on an input (``range(num_items + 0)``, the zero computed from ``user``): a constant table
would otherwise be unpacked once by the converter's constant folding and shipped as float32, and a
constant ``range`` would be shipped as an int32 array (4 bytes per row).

Pruned tables (``sparsity > 0``) are stored sparse, as in the ONNX int4 artifact: a bit mask
``uint8[ceil(num_items * d / 8)]`` (bit ``k % 8`` of byte ``k // 8``, least significant first, set when flat
entry ``k`` is non-zero) and the non-zero values packed two per byte in row-major order. The graph
expands them on every call (bits by ``FLOOR_DIV``/``FLOOR_MOD`` by powers of two, positions by
``CUMSUM``, a ``GATHER`` of the unpacked values, times the mask) before taking its rows: a whole-table
pass even for a short ``score`` list (speed is the latency report's subject; the file is what shrinks).

The per-row scales and the bias are float16 (as ``weights.safetensors`` stores them). LiteRT's ``GATHER``
has no float16 kernel, so they are stored as their ``int16`` bit patterns, gathered as ``int16`` and widened
by ``BITCAST`` (to float16) and ``CAST`` (to float32): exact, and 2 bytes per item each instead of 4.

``finetune`` runs its steps in a ``WHILE`` loop: one copy of the step in the file (the ten unrolled steps
cost 7.3 KB more at 1,682 × 64, about a seventh of the int4 table), the same float32 ops in the same order as
the unrolled float32 artifact.

Signatures and the runner are those of :mod:`privrec.export.tflite`; the same bookkeeping compaction
applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from privrec.sdk.quantize import Int4ItemModel, pack_int4
from privrec.sdk.reconstruct import LABEL_SUM_FLOOR

from .base import ArtifactRecord, ExportConfig
from .manifest import bundle_signatures
from .tflite import _SIGNATURE_NAMES, TFLITE_FILE, TIE_RULE, _compact, _tf_signature

__all__ = ["export_int4"]


def _build_module(model: Int4ItemModel, top_k: int, steps: int, sparse: bool) -> Any:
    """The ``tf.Module`` of the three signatures over the packed table (TensorFlow imported lazily)."""
    import tensorflow as tf

    packed, scale, bias = model.item_embedding, model.item_scale, model.item_bias
    num_items, dim = model.num_items, model.dim
    if sparse:
        from .onnx_int4 import sparse_layout

        bits, nonzero = sparse_layout(model.values())
        nonzero_packed = pack_int4(np.concatenate([nonzero, np.zeros(nonzero.size % 2, np.int8)]).reshape(1, -1)).ravel()

    class _Int4Recommender(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="privrec_int4")
            self.scale = tf.constant(scale.view(np.int16))  # float16 bit patterns (module docstring)
            self.bias = tf.constant(bias.view(np.int16))
            if sparse:
                self.bits = tf.constant(bits)
                self.nonzero = tf.constant(nonzero_packed)
            else:
                self.table = tf.constant(packed)

        @staticmethod
        def unpack(b: Any) -> Any:
            """int32 ``[..., 2 k]`` signed int4 values of the packed bytes ``b`` (int32 ``[..., k]``)."""
            pairs = tf.stack([tf.math.floormod(b, 16), tf.math.floordiv(b, 16)], axis=-1)
            nib = tf.reshape(pairs, tf.concat([tf.shape(b)[:-1], [-1]], axis=0))
            return nib - 16 * tf.cast(nib >= 8, tf.int32)

        def dense_values(self, user: Any) -> Any:
            """Sparse storage: the int4 values as float32 ``[num_items, d]`` (module docstring)."""
            zero = tf.cast(tf.minimum(tf.abs(user[0]), 0.0), tf.int32)  # input-dependent: no folding
            mask_bytes = tf.gather(self.bits, tf.range(int(bits.size) + zero))
            powers = tf.constant([1, 2, 4, 8, 16, 32, 64, 128], tf.int32)
            flags = tf.math.floormod(tf.math.floordiv(tf.expand_dims(tf.cast(mask_bytes, tf.int32), 1), powers), 2)
            flat = tf.reshape(flags, [-1])[: num_items * dim]
            pos = tf.maximum(tf.math.cumsum(flat) - 1, 0)
            nz = tf.gather(self.nonzero, tf.range(int(nonzero_packed.size) + zero))
            values = tf.concat([tf.cast(self.unpack(tf.cast(nz, tf.int32)), tf.float32), tf.zeros([1])], axis=0)
            return tf.reshape(tf.gather(values, pos) * tf.cast(flat, tf.float32), [num_items, dim])

        @staticmethod
        def widen(bits: Any, ids: Any) -> Any:
            """float32 ``[len(ids)]`` of the float16 values whose bit patterns are ``bits`` (int16), at ``ids``."""
            return tf.cast(tf.bitcast(tf.gather(bits, ids), tf.float16), tf.float32)

        def rows(self, ids: Any, user: Any) -> Any:
            """``V[ids]`` as float32 ``[len(ids), d]``: gather packed bytes, unpack, scale per row."""
            if sparse:
                values = tf.gather(self.dense_values(user), ids)
            else:
                values = tf.cast(self.unpack(tf.cast(tf.gather(self.table, ids), tf.int32)), tf.float32)
            return values * tf.expand_dims(self.widen(self.scale, ids), 1)

        def exact(self, user: Any, ids: Any) -> Any:
            return tf.linalg.matvec(self.rows(ids, user), user) + self.widen(self.bias, ids)

        @_tf_signature(
            tf.TensorSpec([dim], tf.float32, name="user"),
            tf.TensorSpec([None], tf.int32, name="item_ids"),
        )
        def score(self, user: Any, item_ids: Any) -> dict[str, Any]:
            return {"scores": self.exact(user, item_ids)}

        @_tf_signature(
            tf.TensorSpec([dim], tf.float32, name="user"),
            tf.TensorSpec([num_items], tf.float32, name="mask"),
        )
        def recommend(self, user: Any, mask: Any) -> dict[str, Any]:
            # 0 for every finite user, but input-dependent: keeps the packed table from being folded.
            zero = tf.cast(tf.minimum(tf.abs(user[0]), 0.0), tf.int32)
            every = tf.range(num_items + zero)
            top_scores, top_ids = tf.math.top_k(self.exact(user, every) + mask, k=top_k, sorted=True)
            return {"top_ids": top_ids, "top_scores": top_scores}

        @_tf_signature(
            tf.TensorSpec([dim], tf.float32, name="user"),
            tf.TensorSpec([None], tf.int32, name="item_ids"),
            tf.TensorSpec([None], tf.float32, name="labels"),
            tf.TensorSpec([1], tf.float32, name="lr"),
            tf.TensorSpec([1], tf.float32, name="l2"),
        )
        def finetune(self, user: Any, item_ids: Any, labels: Any, lr: Any, l2: Any) -> dict[str, Any]:
            # sdk/reconstruct.py `finetune_reference`, unrolled `steps` times (Singhal et al. 2021, §3).
            v = self.rows(item_ids, user)
            b = self.widen(self.bias, item_ids)
            y = labels / tf.maximum(tf.reduce_sum(labels), LABEL_SUM_FLOOR)

            def step(i: Any, u: Any) -> tuple[Any, Any]:
                p = tf.nn.softmax(tf.linalg.matvec(v, u) + b)
                grad = tf.reduce_sum(v * tf.expand_dims(p - y, 1), axis=0) + l2 * u
                return i + 1, u - lr * grad

            # A WHILE loop: one copy of the step in the file (module docstring).
            _, u = tf.while_loop(lambda i, u: i < steps, step, (tf.constant(0), user))
            log_p = tf.nn.log_softmax(tf.linalg.matvec(v, u) + b)
            loss = -tf.reduce_sum(y * log_p) + 0.5 * l2 * tf.reduce_sum(u * u)
            return {"user_out": u, "loss": loss}

    return _Int4Recommender()


def export_int4(model: Int4ItemModel, bundle_dir: Path, config: ExportConfig) -> ArtifactRecord:
    """Write ``bundle_dir/model.tflite`` for an int4 model (module docstring) and describe it."""
    import tensorflow as tf

    if not isinstance(model, Int4ItemModel):
        raise TypeError(f"`model` must be an Int4ItemModel. Found {type(model).__name__}.")
    if config.top_k > model.num_items:
        raise ValueError(f"`top_k` must be <= num_items ({model.num_items}). Found {config.top_k}.")
    sparse = config.sparsity > 0
    module = _build_module(model, config.top_k, config.finetune_steps, sparse)
    functions = [getattr(module, name).get_concrete_function() for name in _SIGNATURE_NAMES]
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    data = _compact(bytes(converter.convert()))
    out_dir = Path(bundle_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TFLITE_FILE).write_bytes(data)
    return ArtifactRecord(
        format="tflite",
        precision="int4",
        files=(TFLITE_FILE,),
        signatures=bundle_signatures(model.dim, model.num_items, config.top_k),
        details={
            "converter": f"tensorflow {tf.__version__} TFLiteConverter.from_concrete_functions",
            "ops": "TFLITE_BUILTINS",
            "table_dtype": "uint8 (two int4 per byte, unpacked in the graph)",
            "table": "sparse bit mask + int4 non-zeros" if sparse else "int4 pairs",
            "top_k": config.top_k,
            "finetune_steps": config.finetune_steps,
            "tie_rule": TIE_RULE,
        },
    )
