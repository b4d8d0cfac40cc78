"""The item map: which of the app's own item ids each row of a bundle's item table holds.

A bundle's rows are an export detail: a new catalog version adds, removes and re-orders items, and the
row of an item moves. The app's item ids do not. The manifest's ``items`` field (docs/BUNDLE.md, "Item
map") ties the two: one ``{"index": row, "id": "<the app's id>", "title": …}`` per row. A device stores
its history by these ids and maps it through the map of whichever bundle it holds, so a catalog update
never scrambles a stored history.

A bundle whose ``items`` is empty has the **implicit map**: row ``r`` holds the item with id ``str(r)``.

:func:`check_item_map` is the validation every reader (and the writer) runs; :class:`ItemMap` is the
lookup in both directions; :class:`MappedHistory` is a history of ids mapped onto one bundle's rows,
with the ids that bundle no longer holds set apart and reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import BundleError
from .files import MANIFEST_NAME

__all__ = ["ItemMap", "MappedHistory", "check_history_ids", "check_item_map", "holds_item_ids"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _where(pos: int) -> str:
    return f"{MANIFEST_NAME}: field `items[{pos}]`"


def check_item_map(raw: object, num_items: int) -> list[dict[str, Any]]:
    """Validate the manifest's ``items`` field and return its entries sorted by ``index``.

    ``raw`` must be empty (the implicit map) or hold exactly ``num_items`` objects, each with an int
    ``index``, a non-empty string ``id`` and, when present, a string ``title`` (other keys are kept);
    the indices must be a permutation of ``0 … num_items − 1`` (any order) and the ids unique. Raises
    :class:`BundleError` naming the entry, the rule and what was found: the first problem found.
    """
    if not isinstance(raw, list):
        raise BundleError(f"{MANIFEST_NAME}: field `items` must be a list. Found {type(raw).__name__}.")
    if not raw:
        return []
    if len(raw) != num_items:
        raise BundleError(
            f"{MANIFEST_NAME}: field `items` must be empty or hold one entry per item ({num_items}). Found {len(raw)}."
        )
    at_index: dict[int, int] = {}
    at_id: dict[str, int] = {}
    for pos, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BundleError(f"{_where(pos)} must be an object {{'index', 'id', …}}. Found {item!r:.80}.")
        index, ident = item.get("index"), item.get("id")
        if type(index) is not int:  # exactly int: a bool (an int subclass) is refused too
            raise BundleError(f"{_where(pos)}.index must be an int. Found {index!r:.80}.")
        if not 0 <= index < num_items:
            raise BundleError(f"{_where(pos)}.index must be in [0, {num_items}). Found {index}.")
        other = at_index.setdefault(index, pos)
        if other != pos:
            present = {it.get("index") for it in raw if isinstance(it, dict)}
            missing = next(i for i in range(num_items) if i not in present)
            raise BundleError(
                f"{_where(pos)}.index repeats index {index} of items[{other}]: the indices must be a "
                f"permutation of 0..{num_items - 1}, and index {missing} has no entry."
            )
        if type(ident) is not str or not ident:
            raise BundleError(f"{_where(pos)}.id must be a non-empty string (the app's item id). Found {ident!r:.80}.")
        other = at_id.setdefault(ident, pos)
        if other != pos:
            raise BundleError(f"{_where(pos)}.id repeats id {ident!r:.80} of items[{other}]: item ids must be unique.")
        if "title" in item and not isinstance(item["title"], str):
            raise BundleError(f"{_where(pos)}.title must be a string. Found {item['title']!r:.80}.")
    return sorted(raw, key=lambda item: int(item["index"]))


def holds_item_ids(values: object) -> bool:
    """Whether ``values`` is a history of app item ids (strings) rather than rows (ints): a numpy string
    array, or a numpy object array or non-empty sequence whose first entry is a ``str``."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "U":
            return True
        return values.dtype.kind == "O" and values.size > 0 and isinstance(values.reshape(-1)[0], str)
    if isinstance(values, Sequence) and not isinstance(values, str | bytes):
        return len(values) > 0 and isinstance(values[0], str)
    return False


def check_history_ids(item_ids: object, name: str = "item_ids") -> list[str]:
    """A history's item ids as a list of non-empty strings (a list, tuple or 1-D numpy string array).

    Raises ``TypeError`` naming the first entry that is not a string, ``ValueError`` for an empty one.
    """
    if isinstance(item_ids, np.ndarray):
        if item_ids.ndim != 1:
            raise ValueError(f"`{name}` must be 1-D. Found shape {item_ids.shape}.")
        values: Sequence[object] = item_ids.tolist()
    elif isinstance(item_ids, Sequence) and not isinstance(item_ids, str | bytes):
        values = item_ids
    else:
        raise TypeError(f"`{name}` must be a sequence of item id strings. Found {type(item_ids).__name__}.")
    for pos, value in enumerate(values):
        if not isinstance(value, str):
            kind = type(value).__name__
            raise TypeError(f"`{name}` must hold item id strings. Found {value!r:.80} ({kind}) at position {pos}.")
        if not value:
            raise ValueError(f"`{name}` must hold non-empty item ids. Found '' at position {pos}.")
    return [str(v) for v in values]


@dataclass(frozen=True)
class MappedHistory:
    """A history of item ids mapped onto one bundle's rows.

    Attributes:
        rows: ``int64[M']`` the rows of the ids the bundle holds, in history order (oldest first).
        weights: ``float32[M']`` their weights.
        dropped: the ids of the history the bundle does not hold (removed from the catalog, or never in
            it), in history order; they are left out of ``rows``.
    """

    rows: NDArray[np.int64]
    weights: NDArray[np.float32]
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class ItemMap:
    """Row ↔ app item id for one bundle.

    Attributes:
        ids: ``ids[row]`` is the app's id of the item in that row (``num_items`` non-empty unique strings).
        explicit: False for the implicit map of a bundle without ``items`` (``ids[r] == str(r)``).
    """

    ids: tuple[str, ...]
    explicit: bool = True
    _rows: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rows = {ident: row for row, ident in enumerate(self.ids)}
        if len(rows) != len(self.ids):
            dupes = sorted(i for i, n in Counter(self.ids).items() if n > 1)[:5]
            raise ValueError(f"`ids` must be unique. Found {dupes} more than once.")
        object.__setattr__(self, "_rows", rows)

    @classmethod
    def from_items(cls, items: Sequence[dict[str, Any]], num_items: int) -> ItemMap:
        """The map of a manifest's validated ``items`` (:func:`check_item_map`); the implicit one when empty."""
        if not items:
            return cls.implicit(num_items)
        ids = [""] * num_items
        for item in items:
            ids[int(item["index"])] = str(item["id"])
        return cls(tuple(ids))

    @classmethod
    def implicit(cls, num_items: int) -> ItemMap:
        """The map of a bundle without an item map: row ``r`` holds id ``str(r)``."""
        return cls(tuple(str(r) for r in range(num_items)), explicit=False)

    @property
    def num_items(self) -> int:
        """Rows in the table."""
        return len(self.ids)

    def row(self, item_id: str) -> int | None:
        """The row holding ``item_id``, or None when this catalog does not hold it."""
        return self._rows.get(item_id)

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and item_id in self._rows

    def ids_of(self, rows: Iterable[int] | NDArray[np.integer]) -> list[str]:
        """The app's ids of ``rows`` (ints in ``[0, num_items)``), in order."""
        out: list[str] = []
        for pos, row in enumerate(np.asarray(rows).reshape(-1).tolist() if isinstance(rows, np.ndarray) else rows):
            if not _is_int(row) or not 0 <= row < len(self.ids):
                raise ValueError(f"`rows` must be ints in [0, {len(self.ids)}). Found {row!r} at position {pos}.")
            out.append(self.ids[row])
        return out

    def map_history(self, item_ids: object, weights: object | None = None) -> MappedHistory:
        """Map a history of app ids (oldest first, optional non-negative weights) onto this map's rows.

        Ids this catalog does not hold go to :attr:`MappedHistory.dropped` and are left out; the order of
        the others is kept, so the reconstruction recipe's recency labels are those of a device whose
        history held only the surviving items.
        """
        ids = check_history_ids(item_ids)
        if weights is None:
            w = np.ones(len(ids), np.float32)
        else:
            given = np.asarray(weights, np.float64).reshape(-1)
            if given.shape != (len(ids),):
                raise ValueError(f"`weights` must have one value per item id ({len(ids)}). Found {given.size}.")
            if not np.isfinite(given).all() or (given < 0).any():
                raise ValueError("`weights` must be finite and >= 0.")
            w = given.astype(np.float32)
        rows: list[int] = []
        keep: list[int] = []
        dropped: list[str] = []
        for pos, ident in enumerate(ids):
            row = self._rows.get(ident)
            if row is None:
                dropped.append(ident)
            else:
                rows.append(row)
                keep.append(pos)
        return MappedHistory(np.asarray(rows, np.int64), w[np.asarray(keep, np.int64)], tuple(dropped))
