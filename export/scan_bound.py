"""Constants of the int8 ``recommend`` threshold, shared by the ONNX and TFLite exporters (numpy only).

Both int8 ``recommend`` graphs scan the catalog approximately, bound the scan's error per item by
``max|u| · L1MAX · (relative terms) + max|b| · (rounding)``, and rescore exactly the items a threshold leaves
(:func:`privrec.export.onnx_int8.add_int8_recommend`, :mod:`privrec.export.tflite`). The constants are
computed at export in float64 and stored as float32 rounded **up**, so the stored bound is never smaller
than the one proven.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["bias_max", "round_up_f32", "row_l1_max"]


def round_up_f32(value: float) -> float:
    """The smallest float32 ≥ ``value``, as a Python float."""
    top = np.float32(value)
    return float(np.nextafter(top, np.float32(np.inf)) if float(top) < value else top)


def row_l1_max(table: NDArray[np.integer], scale: NDArray[np.floating]) -> float:
    """``max_i |scale_i| · sum_k |q_ik|``: the largest L1 norm of a dequantized row (0 for an empty table)."""
    rows = np.abs(table.astype(np.float64)).sum(axis=1) * np.abs(scale.astype(np.float64))
    return float(rows.max(initial=0.0))


def bias_max(bias: NDArray[np.floating]) -> float:
    """``max_i |b_i|`` (0 for an empty catalog)."""
    return float(np.abs(bias.astype(np.float64)).max(initial=0.0))
