"""Public item side information: genre and release-period features from ``ml-100k.item``.

The item file is public catalog metadata, so features built from it cost no privacy. Tying
the item table to them (``V = E + F W``, :mod:`.params`) gives DP training far fewer coordinates to
learn (the noise is per coordinate, the clipped signal is not), and gives a cold catalog a sensible
starting point.

Feature columns: one per genre (a movie's genres share weight ``1/sqrt(#genres)``), and a one-hot
release period (``<1970``, 1970s, 1980s, 1990–94, 1995, 1996, 1997, ``≥1998``, unknown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..data import Interactions, movielens100k_dir

__all__ = ["PERIODS", "movielens100k_item_features"]

#: Release-period buckets: (label, first year, last year).
PERIODS: tuple[tuple[str, int, int], ...] = (
    ("<1970", 0, 1969),
    ("1970s", 1970, 1979),
    ("1980s", 1980, 1989),
    ("1990-94", 1990, 1994),
    ("1995", 1995, 1995),
    ("1996", 1996, 1996),
    ("1997", 1997, 1997),
    (">=1998", 1998, 9999),
)


def movielens100k_item_features(data: Interactions, cache_dir: Path | None = None) -> tuple[NDArray[np.float32], list[str]]:
    """``(F float32[num_items, f], column names)`` for the items of ``data`` (MovieLens-100K indices).

    Raises ``ValueError`` if ``data`` holds an item id the item file does not describe.
    """
    path = movielens100k_dir(cache_dir) / "ml-100k.item"
    rows: dict[str, tuple[str, list[str]]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        f.readline()
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                parts += [""] * (4 - len(parts))
            rows[parts[0]] = (parts[2].strip(), parts[3].split())
    genres = sorted({g for _, gs in rows.values() for g in gs})
    cols = [f"genre:{g}" for g in genres] + [f"period:{p[0]}" for p in PERIODS] + ["period:unknown"]
    gidx = {g: i for i, g in enumerate(genres)}
    F = np.zeros((data.num_items, len(cols)), np.float32)
    for i, iid in enumerate(data.item_ids):
        if iid not in rows:
            raise ValueError(f"item id {iid!r} (index {i}) is not described in {path}.")
        year, gs = rows[iid]
        for g in gs:
            F[i, gidx[g]] = 1.0 / np.sqrt(len(gs))
        col = len(genres) + len(PERIODS)  # unknown
        if year.isdigit():
            y = int(year)
            col = len(genres) + next(k for k, (_, lo, hi) in enumerate(PERIODS) if lo <= y <= hi)
        F[i, col] = 1.0
    return F, cols
