"""int8 item table with one symmetric scale per row.

``q[i, j] = round(V[i, j] / scale[i])`` clipped to [-127, 127], with ``scale[i] = max_j |V[i, j]| / 127``
(a zero row, or one whose scale would underflow, gets scale 1.0 and dequantizes to exactly zero).
Dequantization is ``q * scale[:, None]``.
The bias stays float32: it is one number per item and dominates nothing in size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .model import ItemModel
from .validation import check_finite

__all__ = ["QuantizedItemModel", "quantize_int8"]

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
