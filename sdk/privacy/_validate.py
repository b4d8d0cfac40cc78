"""Boundary checks shared by the privacy modules (internal).

Messages state the constraint, then the value: "`sample_rate` must be in (0, 1]. Found 1.3."
``TypeError`` for a wrong type, ``ValueError`` for a wrong value.
"""

from __future__ import annotations

import math

import numpy as np

from ..validation import check_positive_int, check_probability

__all__ = [
    "check_clip_norm",
    "check_delta",
    "check_noise_multiplier",
    "check_nonnegative",
    "check_positive",
    "check_rounds",
    "check_sample_rate",
    "check_target_epsilon",
]


def _as_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"`{name}` must be a float. Found {type(value).__name__}.")
    return float(value)


def check_positive(value: object, name: str) -> float:
    """Return ``value`` as a float in (0, inf); raise otherwise."""
    v = _as_float(value, name)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"`{name}` must be in (0, inf). Found {value}.")
    return v


def check_nonnegative(value: object, name: str) -> float:
    """Return ``value`` as a float in [0, inf); raise otherwise."""
    v = _as_float(value, name)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"`{name}` must be in [0, inf). Found {value}.")
    return v


def check_noise_multiplier(value: object, name: str = "noise_multiplier") -> float:
    """Noise multiplier Z (noise std / L2 sensitivity): a float in [0, inf). Z = 0 means no privacy."""
    return check_nonnegative(value, name)


def check_sample_rate(value: object, name: str = "sample_rate") -> float:
    """Poisson sampling rate q in (0, 1]."""
    return check_probability(value, name)


def check_delta(value: object, name: str = "delta") -> float:
    """Target δ in (0, 1)."""
    return check_probability(value, name, high_open=True)


def check_clip_norm(value: object, name: str = "clip_norm") -> float:
    """L2 clipping norm C in (0, inf)."""
    return check_positive(value, name)


#: More rounds than any deployment runs (a round a minute for 19 years); the PLD accountant's memory grows
#: with T, so larger values are refused up front instead of exhausting memory.
MAX_ROUNDS = 10_000_000


def check_rounds(value: object, name: str = "rounds") -> int:
    """A number of rounds T in [1, 10^7]."""
    t = check_positive_int(value, name)
    if t > MAX_ROUNDS:
        raise ValueError(f"`{name}` must be at most {MAX_ROUNDS:,}. Found {t:,}.")
    return t


def check_target_epsilon(value: object, name: str = "target_epsilon") -> float:
    """A target ε in (0, inf)."""
    return check_positive(value, name)
