"""int8 and int4 item tables with one symmetric scale per row.

``q[i, j] = round(V[i, j] / scale[i])`` clipped to [-127, 127], with ``scale[i] = max_j |V[i, j]| / 127``
(a zero row, or one whose scale would underflow, gets scale 1.0 and dequantizes to exactly zero).
Dequantization is ``q * scale[:, None]``.
The bias stays float32: it is one number per item and dominates nothing in size.

int4 (:func:`quantize_int4`) is the same scheme at 4 bits (values in [-7, 7], two per byte, the scale per
row chosen by least squared error over a few clip ratios): 8x smaller than float32 for the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .model import ItemModel
from .validation import check_finite

__all__ = ["Int4ItemModel", "QuantizedItemModel", "pack_int4", "quantize_int4", "quantize_int8", "unpack_int4"]

INT8_MAX = 127


@dataclass(frozen=True)
class QuantizedItemModel:
    """Global parameters with an int8 item table.

    Attributes:
        item_embedding: ``int8[num_items, dim]``, values in [-127, 127].
        item_scale: ``float32[num_items]``, one positive scale per row.
        item_bias: ``float32[num_items]``.
    """

    item_embedding: NDArray[np.int8]
    item_scale: NDArray[np.float32]
    item_bias: NDArray[np.float32]

    def __post_init__(self) -> None:
        q, s, b = self.item_embedding, self.item_scale, self.item_bias
        if not isinstance(q, np.ndarray) or q.dtype != np.int8 or q.ndim != 2:
            raise TypeError(f"`item_embedding` must be a 2-D int8 array. Found {getattr(q, 'dtype', type(q))}.")
        n = q.shape[0]
        for name, arr in (("item_scale", s), ("item_bias", b)):
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.shape != (n,):
                raise ValueError(
                    f"`{name}` must be float32 of shape ({n},). Found {getattr(arr, 'dtype', type(arr))} "
                    f"{getattr(arr, 'shape', None)}."
                )
            check_finite(arr, name)
        if (s <= 0).any():
            raise ValueError(f"`item_scale` must be > 0. Found {float(s.min())} at position {int(np.argmin(s))}.")
        if (q == -128).any():
            raise ValueError("`item_embedding` must be in [-127, 127] (symmetric int8). Found -128.")

    @property
    def num_items(self) -> int:
        """Number of items."""
        return int(self.item_embedding.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.item_embedding.shape[1])

    @property
    def sparsity(self) -> float:
        """Fraction of exactly-zero entries in the int8 table."""
        return float((self.item_embedding == 0).mean())

    def dequantize(self) -> ItemModel:
        """The float32 model these int8 weights stand for."""
        v = self.item_embedding.astype(np.float32) * self.item_scale[:, None]
        return ItemModel(item_embedding=v, item_bias=self.item_bias.copy())

    def tensors(self) -> dict[str, NDArray[np.generic]]:
        """The named tensors as stored in ``weights.safetensors``."""
        return {"item_embedding": self.item_embedding, "item_scale": self.item_scale, "item_bias": self.item_bias}


def quantize_int8(model: ItemModel) -> QuantizedItemModel:
    """Quantize the item table to int8 with one symmetric scale per row; zeros stay exactly zero."""
    v = model.item_embedding
    check_finite(v, "item_embedding")
    amax = np.abs(v).max(axis=1)
    scale = (amax / INT8_MAX).astype(np.float32)
    # A zero row — or one so tiny (subnormal) that amax / 127 underflows to 0 — gets scale 1: it
    # quantizes to zeros, within half a step of the original.
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(v / scale[:, None]), -INT8_MAX, INT8_MAX).astype(np.int8)
    return QuantizedItemModel(item_embedding=q, item_scale=scale, item_bias=model.item_bias.copy())


# --------------------------------------------------------------------------------------------------
# int4: two weights per byte, one symmetric scale per row
# --------------------------------------------------------------------------------------------------
INT4_MAX = 7
# Clip ratios tried per row: the scale is ``ratio * max|row| / 7`` with the ratio of least squared error.
# Clipping the few largest weights of a row buys finer steps for all the others (at 4 bits the step is
# 1/7 of the range, so this matters far more than at int8, where ``ratio = 1`` is kept).
INT4_CLIP_RATIOS: tuple[float, ...] = tuple(float(r) for r in np.linspace(0.6, 1.0, 9))


def pack_int4(values: NDArray[np.integer]) -> NDArray[np.uint8]:
    """Pack ``int[rows, d]`` values in [-8, 7] (d even) into ``uint8[rows, d // 2]``.

    Byte ``j`` of a row holds column ``2j`` in its low nibble and column ``2j + 1`` in its high nibble,
    each as 4-bit two's complement: the layout of ONNX ``INT4`` tensors (first element in the low
    nibble) and of Core ML's ``int4`` blobs.
    """
    v = np.asarray(values)
    if v.ndim != 2 or v.shape[1] % 2:
        raise ValueError(f"`values` must be 2-D with an even number of columns. Found shape {v.shape}.")
    if v.size and (int(v.min()) < -8 or int(v.max()) > 7):
        raise ValueError(f"`values` must be in [-8, 7] (int4). Found [{int(v.min())}, {int(v.max())}].")
    nib = (v.astype(np.int16) & 0xF).astype(np.uint8)
    return np.ascontiguousarray(nib[:, 0::2] | (nib[:, 1::2] << 4))


def unpack_int4(packed: NDArray[Any]) -> NDArray[np.int8]:
    """Inverse of :func:`pack_int4`: ``uint8[rows, d // 2]`` -> ``int8[rows, d]`` in [-8, 7]."""
    p = np.asarray(packed)
    if p.dtype != np.uint8 or p.ndim != 2:
        raise TypeError(f"`packed` must be a 2-D uint8 array. Found {p.dtype} with shape {p.shape}.")
    out = np.empty((p.shape[0], 2 * p.shape[1]), np.int8)
    out[:, 0::2] = (p & 0xF).astype(np.int8)
    out[:, 1::2] = (p >> 4).astype(np.int8)
    out[out > 7] -= 16
    return out


@dataclass(frozen=True)
class Int4ItemModel:
    """Global parameters with a 4-bit item table (symmetric, one float32 scale per row).

    ``V[i, j] = q[i, j] * item_scale[i]`` with ``q`` in [-7, 7]; zeros stay exactly zero, so pruned
    entries survive quantization.

    Attributes:
        item_embedding: ``uint8[num_items, dim // 2]``, two int4 values per byte (:func:`pack_int4`).
        item_scale: ``float32[num_items]``, one positive scale per row.
        item_bias: ``float32[num_items]``.
    """

    item_embedding: NDArray[np.uint8]
    item_scale: NDArray[np.float32]
    item_bias: NDArray[np.float32]

    def __post_init__(self) -> None:
        q, s, b = self.item_embedding, self.item_scale, self.item_bias
        if not isinstance(q, np.ndarray) or q.dtype != np.uint8 or q.ndim != 2 or q.shape[1] == 0:
            raise TypeError(
                f"`item_embedding` must be a 2-D uint8 array of packed int4 pairs. Found {getattr(q, 'dtype', type(q))} "
                f"{getattr(q, 'shape', None)}."
            )
        n = q.shape[0]
        for name, arr in (("item_scale", s), ("item_bias", b)):
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.shape != (n,):
                raise ValueError(
                    f"`{name}` must be float32 of shape ({n},). Found {getattr(arr, 'dtype', type(arr))} "
                    f"{getattr(arr, 'shape', None)}."
                )
            check_finite(arr, name)
        if (s <= 0).any():
            raise ValueError(f"`item_scale` must be > 0. Found {float(s.min())} at position {int(np.argmin(s))}.")
        if ((q & 0xF) == 8).any() or ((q >> 4) == 8).any():
            raise ValueError("`item_embedding` must hold int4 values in [-7, 7] (symmetric). Found -8.")

    @property
    def num_items(self) -> int:
        """Number of items."""
        return int(self.item_embedding.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension (two per stored byte)."""
        return int(self.item_embedding.shape[1]) * 2

    def values(self) -> NDArray[np.int8]:
        """The int4 values unpacked, ``int8[num_items, dim]`` in [-7, 7]."""
        return unpack_int4(self.item_embedding)

    @property
    def sparsity(self) -> float:
        """Fraction of exactly-zero entries in the int4 table."""
        return float((self.values() == 0).mean())

    def dequantize(self) -> ItemModel:
        """The float32 model these int4 weights stand for: ``q * scale[:, None]`` in float32."""
        v = self.values().astype(np.float32) * self.item_scale[:, None]
        return ItemModel(item_embedding=v, item_bias=self.item_bias.copy())

    def tensors(self) -> dict[str, NDArray[np.generic]]:
        """The named tensors as stored in ``weights.safetensors``."""
        return {"item_embedding": self.item_embedding, "item_scale": self.item_scale, "item_bias": self.item_bias}


def quantize_int4(model: ItemModel) -> Int4ItemModel:
    """Quantize the item table to symmetric int4 with one scale per row (``dim`` must be even).

    Each row's scale is ``ratio * max|row| / 7`` for the ratio in :data:`INT4_CLIP_RATIOS` with the least
    squared error (ties: the largest ratio); ``q = clip(round(v / scale), -7, 7)``. A zero (or
    underflowing) row gets scale 1 and quantizes to zeros. Zeros stay exactly zero.
    """
    v = model.item_embedding
    check_finite(v, "item_embedding")
    if v.shape[1] % 2:
        raise ValueError(f"int4 packs two weights per byte: `dim` must be even. Found {v.shape[1]}.")
    amax = np.abs(v).max(axis=1).astype(np.float32)
    best_err = np.full(v.shape[0], np.inf)
    best_scale = np.ones(v.shape[0], np.float32)
    for ratio in sorted(INT4_CLIP_RATIOS, reverse=True):
        scale = (amax * np.float32(ratio) / INT4_MAX).astype(np.float32)
        scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
        q = np.clip(np.rint(v / scale[:, None]), -INT4_MAX, INT4_MAX)
        err = ((q * scale[:, None] - v).astype(np.float64) ** 2).sum(axis=1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale).astype(np.float32)
    q = np.clip(np.rint(v / best_scale[:, None]), -INT4_MAX, INT4_MAX).astype(np.int8)
    return Int4ItemModel(item_embedding=pack_int4(q), item_scale=best_scale, item_bias=model.item_bias.copy())
