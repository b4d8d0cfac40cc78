"""TFLite int4 artifact: the packed int4 table as a ``uint8`` constant, unpacked by the graph.

LiteRT's builtin kernels take int4 only as the weights of a few ops (``FULLY_CONNECTED``/``CONV`` with
int4 per-channel quantization), and the converter produces those only from its own quantizer (with its
own scales and rounding), not from a table we quantized. So ``model.tflite`` stores the bytes of
``weights.safetensors``' ``item_embedding`` (``uint8[num_items, d / 2]``, two int4 values per byte, low
nibble first: :func:`privrec.sdk.quantize.pack_int4`) as a ``uint8`` constant, and every signature
unpacks the rows it needs with builtin integer ops (``GATHER``, ``CAST``, ``FLOOR_MOD``, ``FLOOR_DIV``,
``PACK``, ``RESHAPE``): ``lo = byte mod 16``, ``hi = byte div 16``, ``v = n - 16 (n >= 8)``, then
``V[ids] = v * item_scale[ids]``. ``recommend`` does the same over all rows, gathered with indices
that depend on an input (``range(num_items) + 0``, the zero computed from ``user``): a constant table
would otherwise be unpacked once by the converter's constant folding and shipped as float32.

Signatures and the runner are those of :mod:`privrec.export.tflite`; the same bookkeeping compaction
applies. Pruned tables are stored dense here (zeros cost half a byte each): LiteRT has no sparse
constant that a gather can read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privrec.sdk.quantize import Int4ItemModel
from privrec.sdk.reconstruct import LABEL_SUM_FLOOR

from .base import ArtifactRecord, ExportConfig
from .manifest import bundle_signatures
from .tflite import _SIGNATURE_NAMES, TFLITE_FILE, TIE_RULE, _compact, _tf_signature

__all__ = ["export_int4"]


def _build_module(
    packed: NDArray[np.uint8], scale: NDArray[np.float32], bias: NDArray[np.float32], top_k: int, steps: int
) -> Any:
    """The ``tf.Module`` of the three signatures over the packed table (TensorFlow imported lazily)."""
    import tensorflow as tf

    num_items, half = (int(s) for s in packed.shape)
    dim = 2 * half

    class _Int4Recommender(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="privrec_int4")
            self.table = tf.constant(packed)
            self.scale = tf.constant(scale)
            self.bias = tf.constant(bias)

        def rows(self, ids: Any) -> Any:
            """``V[ids]`` as float32 ``[len(ids), d]``: gather packed bytes, unpack, scale per row."""
            b = tf.cast(tf.gather(self.table, ids), tf.int32)  # [M, d/2]
            pairs = tf.stack([tf.math.floormod(b, 16), tf.math.floordiv(b, 16)], axis=2)  # [M, d/2, 2]
            nib = tf.reshape(pairs, [-1, dim])
            signed = nib - 16 * tf.cast(nib >= 8, tf.int32)
            return tf.cast(signed, tf.float32) * tf.expand_dims(tf.gather(self.scale, ids), 1)

        def exact(self, user: Any, ids: Any) -> Any:
            return tf.linalg.matvec(self.rows(ids), user) + tf.gather(self.bias, ids)

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
            every = tf.range(num_items, dtype=tf.int32) + zero
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

    return _Int4Recommender()


def export_int4(model: Int4ItemModel, bundle_dir: Path, config: ExportConfig) -> ArtifactRecord:
    """Write ``bundle_dir/model.tflite`` for an int4 model (module docstring) and describe it."""
    import tensorflow as tf

    if not isinstance(model, Int4ItemModel):
        raise TypeError(f"`model` must be an Int4ItemModel. Found {type(model).__name__}.")
    if config.top_k > model.num_items:
        raise ValueError(f"`top_k` must be <= num_items ({model.num_items}). Found {config.top_k}.")
    module = _build_module(model.item_embedding, model.item_scale, model.item_bias, config.top_k, config.finetune_steps)
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
            "top_k": config.top_k,
            "finetune_steps": config.finetune_steps,
            "tie_rule": TIE_RULE,
        },
    )
