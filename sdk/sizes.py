"""What the item parameters cost to ship: bytes raw and gzip-compressed (an app download's cost)."""

from __future__ import annotations

import gzip

import numpy as np

from .model import ItemModel
from .quantize import Int4ItemModel, QuantizedItemModel

__all__ = ["parameter_bytes"]


def parameter_bytes(model: ItemModel | QuantizedItemModel | Int4ItemModel) -> dict[str, int]:
    """``{"raw": bytes, "gzip": bytes}`` of the item table, scales (int8, int4) and bias, dense (zeros stored).

    ``gzip`` compresses the concatenated little-endian tensors at level 9: sparsity shows here, since a
    dense-with-zeros table compresses in proportion to its zeros.
    """
    blob = b"".join(np.ascontiguousarray(t).astype(t.dtype.newbyteorder("<")).tobytes() for t in model.tensors().values())
    return {"raw": len(blob), "gzip": len(gzip.compress(blob, compresslevel=9, mtime=0))}
