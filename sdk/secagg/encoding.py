"""Fixed-point encoding of real vectors into the ring Z_{2^32} used by secure aggregation.

Secure aggregation (Bonawitz et al. 2017, §3) sums vectors in Z_R with R = 2^32 here; real-valued
model updates must be mapped into that ring so that the modular sum decodes to the real sum.

**Encoding.** With clip range ``R`` (``clip_range``) and ``f`` fractional bits (``frac_bits``)::

    q = round_half_even(clip(x, -R, R) * 2^f)        an integer with |q| <= R * 2^f + 1/2
    encode(x) = q mod 2^32                           (two's complement, stored as uint32)

Rounding is deterministic (round half to even, ``numpy.rint``); stochastic rounding is not offered.
For an L2-clipped update (‖x‖₂ ≤ C) every coordinate satisfies |x_i| ≤ C, so ``clip_range = C`` never
clips.

**Choice of f (no wrap-around).** ``f`` is the largest integer with

    max_clients * (R * 2^f + 1/2) <= 2^31 - 1,

so the integer sum of up to ``max_clients`` encodings lies in [-(2^31 - 1), 2^31 - 1] and its residue
mod 2^32, read as a two's-complement int32, *is* that integer sum. ``f`` may be negative for a huge
``R * max_clients`` (the quantisation step is then larger than 1).

**Decoding the sum.** ``decode(s) = int32(s) / 2^f`` where ``int32(s)`` reinterprets the uint32 residue
as two's complement (``s - 2^32`` if ``s >= 2^31``).

**Error bound.** Per coordinate, ``|decode(encode(x)) - clip(x, -R, R)| <= 2^-(f+1)``; for a sum of ``m``
encodings (``m <= max_clients``) the decoded sum is within ``m * 2^-(f+1)`` of the sum of clipped values.
Example: R = 1, 100 clients → f = 24, step 6.0e-8, sum error ≤ 3.0e-6 per coordinate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..validation import check_finite, check_positive_int

__all__ = ["FixedPointEncoder"]

_INT32_MAX = 2**31 - 1


def _frac_bits(clip_range: float, max_clients: int) -> int:
    """The largest f with ``max_clients * (clip_range * 2^f + 1/2) <= 2^31 - 1`` (module docstring)."""
    budget = _INT32_MAX / max_clients - 0.5
    if budget <= 0:
        raise ValueError(f"`max_clients` must be < 2^32. Found {max_clients}.")
    f = math.floor(math.log2(budget / clip_range))
    # Guard against floating-point error in log2 at the boundary: move f until the rule holds exactly.
    while max_clients * (clip_range * 2.0**f + 0.5) > _INT32_MAX:
        f -= 1
    while max_clients * (clip_range * 2.0 ** (f + 1) + 0.5) <= _INT32_MAX:
        f += 1
    return f


@dataclass(frozen=True)
class FixedPointEncoder:
    """Encode float vectors to uint32 (mod 2^32) so that sums of up to ``max_clients`` decode exactly.

    Args:
        clip_range: R > 0; values are clipped to [-R, R] before encoding (the L2 clip norm C works).
        max_clients: the largest number of encodings that will ever be summed (>= 1).

    Attributes:
        frac_bits: f, the number of fractional bits (derived; see the module docstring).
    """

    clip_range: float
    max_clients: int
    frac_bits: int = field(init=False)

    def __post_init__(self) -> None:
        r = self.clip_range
        if isinstance(r, bool) or not isinstance(r, int | float | np.integer | np.floating):
            raise TypeError(f"`clip_range` must be a float. Found {type(r).__name__}.")
        if not (math.isfinite(float(r)) and float(r) > 0):
            raise ValueError(f"`clip_range` must be finite and > 0. Found {r}.")
        object.__setattr__(self, "clip_range", float(r))
        object.__setattr__(self, "max_clients", check_positive_int(self.max_clients, "max_clients"))
        object.__setattr__(self, "frac_bits", _frac_bits(self.clip_range, self.max_clients))

    @property
    def scale(self) -> float:
        """2^f: one unit of the encoding equals ``1 / scale`` in real units."""
        return 2.0**self.frac_bits

    def error_bound(self, num_summands: int = 1) -> float:
        """Max abs error per coordinate of a decoded sum of ``num_summands`` encodings vs the clipped sum."""
        m = check_positive_int(num_summands, "num_summands")
        return m * 2.0 ** -(self.frac_bits + 1)

    def encode(self, values: NDArray[Any]) -> NDArray[np.uint32]:
        """Clip, scale by 2^f, round half to even and reduce mod 2^32. Any shape; returns uint32."""
        if not isinstance(values, np.ndarray):
            raise TypeError(f"`values` must be a numpy array. Found {type(values).__name__}.")
        if values.dtype.kind not in "fiu":
            raise TypeError(f"`values` must have a real dtype. Found {values.dtype}.")
        check_finite(values, "values")
        r = self.clip_range
        q = np.rint(np.clip(values.astype(np.float64), -r, r) * self.scale)
        # |q| <= R*2^f + 1/2 <= 2^31 - 1 by the choice of f, so the int32 cast is exact.
        return q.astype(np.int32).view(np.uint32)

    def decode(self, encoded_sum: NDArray[np.uint32]) -> NDArray[np.float64]:
        """Decode a sum (mod 2^32) of at most ``max_clients`` encodings: two's complement, then / 2^f."""
        if not isinstance(encoded_sum, np.ndarray) or encoded_sum.dtype != np.uint32:
            raise TypeError(
                f"`encoded_sum` must be a uint32 numpy array. Found {getattr(encoded_sum, 'dtype', type(encoded_sum))}."
            )
        return encoded_sum.view(np.int32).astype(np.float64) / self.scale
