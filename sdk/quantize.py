"""int8 and int4 item tables with one symmetric scale per row.

``q[i, j] = round(V[i, j] / scale[i])`` clipped to [-127, 127], with ``scale[i] = max_j |V[i, j]| / 127``
(a zero row, or one whose scale would underflow, gets scale 1.0 and dequantizes to exactly zero).
Dequantization is ``q * scale[:, None]``.
The int8 bias stays float32: it is one number per item and dominates nothing next to d int8 weights.

int4 (:func:`quantize_int4`) is the same scheme at 4 bits (values in [-7, 7], two per byte, the scale per
row chosen by least squared error over a few clip ratios): 8x smaller than float32 for the table. At that
size the per-row numbers matter (two float32 per row are 8 bytes next to the row's ``d / 2``), so int4
stores its scales and bias as float16: each scale has at most 8 significant bits and is a normal float16
(>= 2**-14), so every ``q * scale`` (``|q| <= 7``, 3 bits) is exact in float16 as well as in float32 and
any runtime that dequantizes in half precision gets the very values of the float32 reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .model import ItemModel
from .validation import check_finite

__all__ = [
    "INT4_SCALE_BITS",
    "INT4_SCALE_MIN",
    "Int4ItemModel",
    "QuantizedItemModel",
    "pack_int4",
    "quantize_int4",
    "quantize_int8",
    "unpack_int4",
]

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


# float16 per-row numbers of int4 (module docstring): scales with at most INT4_SCALE_BITS significant bits,
# never below the smallest normal float16 (products with |q| <= 7 then need <= 11 bits: exact in float16).
INT4_SCALE_BITS = 8
INT4_SCALE_MIN = float(np.finfo(np.float16).tiny)  # 2**-14
# Largest scale whose products 7 * scale stay finite in float16 (65504 / 7, rounded down to 8 bits).
INT4_SCALE_MAX = 9344.0
FLOAT16_MAX = float(np.finfo(np.float16).max)


def _scale_bits_ok(scale: NDArray[np.float16]) -> NDArray[np.bool_]:
    """Per entry: a normal float16 in [INT4_SCALE_MIN, INT4_SCALE_MAX] with <= INT4_SCALE_BITS significant bits."""
    low_bits = (scale.view(np.uint16) & np.uint16((1 << (11 - INT4_SCALE_BITS)) - 1)) == 0
    s = scale.astype(np.float32)
    return np.asarray(low_bits & (s >= INT4_SCALE_MIN) & (s <= INT4_SCALE_MAX))


def _round_scale(scale: NDArray[np.floating]) -> NDArray[np.float16]:
    """Nearest admissible int4 scale (:data:`INT4_SCALE_BITS` bits, clipped to [min, max]) as float16."""
    s = np.clip(np.asarray(scale, np.float64), INT4_SCALE_MIN, INT4_SCALE_MAX)
    mant, exp = np.frexp(s)  # s = mant * 2**exp, mant in [0.5, 1)
    rounded = np.ldexp(np.rint(mant * 2.0**INT4_SCALE_BITS) / 2.0**INT4_SCALE_BITS, exp)
    return np.clip(rounded, INT4_SCALE_MIN, INT4_SCALE_MAX).astype(np.float16)


@dataclass(frozen=True)
class Int4ItemModel:
    """Global parameters with a 4-bit item table (symmetric, one float16 scale per row, float16 bias).

    ``V[i, j] = q[i, j] * item_scale[i]`` with ``q`` in [-7, 7]; zeros stay exactly zero, so pruned
    entries survive quantization. Each scale has at most :data:`INT4_SCALE_BITS` significant bits and lies
    in [2**-14, 9344], so ``q * scale`` is exact in float16 and in float32.

    Attributes:
        item_embedding: ``uint8[num_items, dim // 2]``, two int4 values per byte (:func:`pack_int4`).
        item_scale: ``float16[num_items]``, one positive scale per row.
        item_bias: ``float16[num_items]``.
    """

    item_embedding: NDArray[np.uint8]
    item_scale: NDArray[np.float16]
    item_bias: NDArray[np.float16]

    def __post_init__(self) -> None:
        q, s, b = self.item_embedding, self.item_scale, self.item_bias
        if not isinstance(q, np.ndarray) or q.dtype != np.uint8 or q.ndim != 2 or q.shape[1] == 0:
            raise TypeError(
                f"`item_embedding` must be a 2-D uint8 array of packed int4 pairs. Found {getattr(q, 'dtype', type(q))} "
                f"{getattr(q, 'shape', None)}."
            )
        n = q.shape[0]
        for name, arr in (("item_scale", s), ("item_bias", b)):
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float16 or arr.shape != (n,):
                raise ValueError(
                    f"`{name}` must be float16 of shape ({n},). Found {getattr(arr, 'dtype', type(arr))} "
                    f"{getattr(arr, 'shape', None)}."
                )
            check_finite(arr, name)
        if (s <= 0).any():
            raise ValueError(f"`item_scale` must be > 0. Found {float(s.min())} at position {int(np.argmin(s))}.")
        bad = ~_scale_bits_ok(s)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"`item_scale` must hold float16 values in [2**-14, {INT4_SCALE_MAX:g}] with at most {INT4_SCALE_BITS} "
                f"significant bits (so q * scale is exact in float16). Found {float(s[i])!r} at position {i}."
            )
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
        """The float32 model these int4 weights stand for: ``q * scale[:, None]`` in float32 (exact), bias widened."""
        v = self.values().astype(np.float32) * self.item_scale.astype(np.float32)[:, None]
        return ItemModel(item_embedding=v, item_bias=self.item_bias.astype(np.float32))

    def tensors(self) -> dict[str, NDArray[np.generic]]:
        """The named tensors as stored in ``weights.safetensors`` (scales and bias float16)."""
        return {"item_embedding": self.item_embedding, "item_scale": self.item_scale, "item_bias": self.item_bias}


def quantize_int4(model: ItemModel) -> Int4ItemModel:
    """Quantize the item table to symmetric int4 with one float16 scale per row (``dim`` must be even).

    Each row's scale is ``ratio * max|row| / 7`` rounded to an admissible float16 (:data:`INT4_SCALE_BITS`
    significant bits, in [2**-14, 9344]) for the ratio in :data:`INT4_CLIP_RATIOS`, or the least-squares
    scale of the best of those grids, whichever has the least squared error (ties: the earlier candidate,
    largest ratio first); ``q = clip(round(v / scale), -7, 7)``. A zero row gets the scale 1 and quantizes
    to zeros; a row below ``7 * 2**-14`` in magnitude uses the smallest scale (error at most half of it).
    Zeros stay exactly zero. The bias is rounded to float16.

    Raises:
        ValueError: ``dim`` is odd, or a weight or bias is beyond what float16 scales can hold
            (``|V| > 7 * 9344``, ``|b| > 65504``).
    """
    v = model.item_embedding
    check_finite(v, "item_embedding")
    if v.shape[1] % 2:
        raise ValueError(f"int4 packs two weights per byte: `dim` must be even. Found {v.shape[1]}.")
    amax = np.abs(v).max(axis=1).astype(np.float32)
    limit = INT4_MAX * INT4_SCALE_MAX
    if amax.size and float(amax.max()) > limit:
        i = int(np.argmax(amax))
        raise ValueError(
            f"int4 stores float16 row scales: `item_embedding` must be within ±{limit:g}. Found {float(amax[i])} in row {i}."
        )
    bias = model.item_bias
    if bias.size and float(np.abs(bias).max()) > FLOAT16_MAX:
        i = int(np.argmax(np.abs(bias)))
        raise ValueError(
            f"int4 stores the bias as float16: `item_bias` must be within ±{FLOAT16_MAX:g}. "
            f"Found {float(bias[i])} at position {i}."
        )
    v64 = v.astype(np.float64)

    def fit(scale16: NDArray[np.float16]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        s = scale16.astype(np.float64)[:, None]
        q = np.clip(np.rint(v64 / s), -INT4_MAX, INT4_MAX)
        return q, ((q * s - v64) ** 2).sum(axis=1)

    best_err = np.full(v.shape[0], np.inf)
    best_scale = np.ones(v.shape[0], np.float16)
    best_q = np.zeros(v.shape, np.float64)

    def keep(scale16: NDArray[np.float16]) -> None:
        nonlocal best_err, best_scale, best_q
        q, err = fit(scale16)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale16, best_scale).astype(np.float16)
        best_q = np.where(better[:, None], q, best_q)

    for ratio in sorted(INT4_CLIP_RATIOS, reverse=True):
        keep(_round_scale(amax.astype(np.float64) * ratio / INT4_MAX))
    # Refit: the least-squares scale of the chosen grid, <q, v> / <q, q>, rounded and requantized.
    qq = (best_q**2).sum(axis=1)
    ls = np.where(qq > 0, (best_q * v64).sum(axis=1) / np.where(qq > 0, qq, 1.0), 1.0)
    keep(_round_scale(np.where(ls > 0, ls, 1.0)))
    zero = amax == 0
    best_scale = np.where(zero, np.float16(1.0), best_scale).astype(np.float16)
    q = np.clip(np.rint(v64 / best_scale.astype(np.float64)[:, None]), -INT4_MAX, INT4_MAX).astype(np.int8)
    return Int4ItemModel(item_embedding=pack_int4(q), item_scale=best_scale, item_bias=bias.astype(np.float16))
