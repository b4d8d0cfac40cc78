"""JSON helpers shared by the message and state classes: base64 bytes, uint32 vectors, typed fields."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from .errors import SecAggMessageError

T = TypeVar("T")


def b64encode(data: bytes) -> str:
    """Standard base64 (with padding) as ASCII text."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, name: str) -> bytes:
    """Strict base64 decoding; ``SecAggMessageError`` names the field on bad input."""
    if not isinstance(text, str):
        raise TypeError(f"`{name}` must be a base64 str. Found {type(text).__name__}.")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SecAggMessageError(f"`{name}` must be valid base64. Found {text[:40]!r}.") from exc


def vector_to_b64(vector: NDArray[np.uint32]) -> str:
    """A uint32 vector as base64 of its little-endian bytes."""
    return b64encode(np.ascontiguousarray(vector, dtype="<u4").tobytes())


def vector_from_b64(text: str, name: str) -> NDArray[np.uint32]:
    """Inverse of :func:`vector_to_b64` (a fresh, writable uint32 array)."""
    raw = b64decode(text, name)
    if len(raw) % 4:
        raise SecAggMessageError(f"`{name}` must hold a whole number of uint32 words. Found {len(raw)} bytes.")
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


def require(data: Any, key: str, kind: type[T]) -> T:
    """``data[key]`` checked to be of type ``kind`` (bool is not an int)."""
    if not isinstance(data, dict):
        raise TypeError(f"Expected a JSON object. Found {type(data).__name__}.")
    if key not in data:
        raise SecAggMessageError(f"Missing field `{key}`.")
    value = data[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise TypeError(f"`{key}` must be {kind.__name__}. Found {type(value).__name__}.")
    return value


def refuse_unknown(data: Any, keys: Iterable[str], name: str) -> None:
    """Refuse a JSON object with a key outside ``keys`` (missing keys are refused by :func:`require`): a
    contract between processes accepts exactly its own fields."""
    if not isinstance(data, dict):
        raise TypeError(f"Expected a JSON object for {name}. Found {type(data).__name__}.")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise SecAggMessageError(f"{name} has an unknown field `{unknown[0]}`.")


def int_list(data: Any, key: str) -> tuple[int, ...]:
    """``data[key]`` as a tuple of ints."""
    values = require(data, key, list)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"`{key}` must contain ints. Found {type(v).__name__}.")
    return tuple(values)
