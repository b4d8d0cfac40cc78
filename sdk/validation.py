"""Validation at the boundary: one place for the checks every public entry point makes.

Messages follow one form: what was expected, then what was found, e.g.
"`item_ids` must be in [0, 1682). Found 1700 at position 3."
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "check_config_keys",
    "check_finite",
    "check_item_ids",
    "check_positive_int",
    "check_probability",
    "check_user_vector",
]


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an ``int`` if it is an integer > 0; raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be an int. Found {type(value).__name__}.")
    if value <= 0:
        raise ValueError(f"`{name}` must be > 0. Found {value}.")
    return int(value)


def check_probability(value: object, name: str, *, low_open: bool = True, high_open: bool = False) -> float:
    """Return ``value`` as a float in the interval (0, 1] (ends configurable); raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"`{name}` must be a float. Found {type(value).__name__}.")
    v = float(value)
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    ok_lo = v > 0.0 if low_open else v >= 0.0
    ok_hi = v < 1.0 if high_open else v <= 1.0
    if not (np.isfinite(v) and ok_lo and ok_hi):
        raise ValueError(f"`{name}` must be in {lo}0, 1{hi}. Found {value}.")
    return v


def check_finite(array: NDArray[Any], name: str) -> None:
    """Raise ``ValueError`` naming the first NaN or infinite entry of ``array``."""
    if array.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(array)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = idx[0] if len(idx) == 1 else idx
        raise ValueError(f"`{name}` must be finite. Found {array[idx]} at position {where}.")


def check_item_ids(item_ids: object, num_items: int, name: str = "item_ids") -> NDArray[np.int64]:
    """Validate a 1-D collection of item indices and return it as ``int64``.

    Accepts any integer numpy array or a sequence of Python ints. Raises ``TypeError`` for a float or
    non-numeric dtype, ``ValueError`` for a wrong rank or an id outside ``[0, num_items)``.
    """
    if isinstance(item_ids, np.ndarray):
        arr = item_ids
    elif isinstance(item_ids, Sequence) and not isinstance(item_ids, str | bytes):
        if not all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in item_ids):
            raise TypeError(f"`{name}` must contain integers. Found {item_ids!r:.80}.")
        arr = np.asarray(item_ids, dtype=np.int64)
    else:
        raise TypeError(f"`{name}` must be a 1-D integer array. Found {type(item_ids).__name__}.")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"`{name}` must have an integer dtype. Found {arr.dtype}.")
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D. Found shape {arr.shape}.")
    if arr.size:
        bad = np.flatnonzero((arr < 0) | (arr >= num_items))
        if bad.size:
            pos = int(bad[0])
            raise ValueError(f"`{name}` must be in [0, {num_items}). Found {int(arr[pos])} at position {pos}.")
    return arr.astype(np.int64, copy=False)


def check_user_vector(user: object, dim: int, name: str = "user") -> NDArray[np.float32]:
    """Validate a user vector of shape ``[dim]`` (finite floats) and return it as ``float32``."""
    if not isinstance(user, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy array of shape ({dim},). Found {type(user).__name__}.")
    if user.dtype.kind != "f":
        raise TypeError(f"`{name}` must have a float dtype. Found {user.dtype}.")
    if user.shape != (dim,):
        raise ValueError(f"`{name}` must have shape ({dim},). Found {user.shape}.")
    check_finite(user, name)
    return user.astype(np.float32, copy=False)


def check_config_keys(raw: object, cls: type, what: str) -> dict[str, Any]:
    """Return ``raw`` as a new dict if it is a dict whose keys are all fields of the dataclass ``cls``.

    Raises ``TypeError`` for a non-dict and ``ValueError`` naming the unknown keys and the known ones:
    "unknown training config keys ['epoch']. Known: [...]." — the one check every config's
    ``from_dict`` makes.
    """
    if not isinstance(raw, dict):
        raise TypeError(f"the {what} config must be a dict. Found {type(raw).__name__}.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}. Known: {sorted(known)}.")
    return dict(raw)
