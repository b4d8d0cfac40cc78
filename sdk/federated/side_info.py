"""Public item side information: genre and release-period features from ``ml-100k.item``.

The item file is public catalog metadata, so features built from it cost no privacy. Tying
the item table to them (``V = E + F W``, :mod:`.params`) gives DP training far fewer coordinates to
learn (the noise is per coordinate, the clipped signal is not), and gives a cold catalog a sensible
starting point: :func:`feature_tied_items` gives items with no interactions (cold start) the
rows that the trained items sharing their features predict.

Feature columns: one per genre (a movie's genres share weight ``1/sqrt(#genres)``), and a one-hot
release period (``<1970``, 1970s, 1980s, 1990–94, 1995, 1996, 1997, ``≥1998``, unknown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..data import Interactions, movielens100k_dir
from ..model import ItemModel

__all__ = ["PERIODS", "feature_tied_items", "movielens100k_item_features"]

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


def feature_tied_items(
    items: ItemModel, features: NDArray[np.floating], cold: NDArray[np.bool_], *, l2: float = 1.0,
    weights: NDArray[np.floating] | None = None,
) -> ItemModel:
    """Item cold start: the rows of ``cold`` items rebuilt from their public features.

    A feature-tied table ``[W; w0]`` ``[f + 1, d + 1]`` is fitted by ridge regression on the *warm* items
    (those with training interactions): ``[V_i, b_i] ≈ F_i W + w0`` minimising the squared error plus
    ``l2 · ||W||²`` (the intercept ``w0`` is not penalised). Each cold item then gets
    ``V_i = F_i W + w0[:d]`` and ``b_i = F_i W_b + w0[d]``: an item nobody has interacted with yet scores like
    the trained items that share its features, so it can be recommended on day one. A cold item without
    any feature gets the intercept: the average warm item.

    Args:
        items: the trained item model ``V`` ``[n, d]``, ``b`` ``[n]``.
        features: ``float[n, f]`` public item features (multi-hot or weighted), the same rows as ``items``.
        cold: ``bool[n]``, True for the items whose rows are replaced.
        l2: ridge coefficient (≥ 0) on ``W``.
        weights: optional ``float[n]`` ≥ 0 weight of each warm item in the fit (e.g. its interaction count: the
            table then predicts the row of an item as users meet items, which favours popular items' rows);
            ``None`` weighs every warm item the same.

    Returns the new :class:`ItemModel`; warm rows are unchanged. Raises ``ValueError`` on shape mismatches
    or when no item is warm.
    """
    F = np.asarray(features, np.float64)
    cold = np.asarray(cold, bool)
    n = items.num_items
    if F.ndim != 2 or F.shape[0] != n:
        raise ValueError(f"`features` must have shape ({n}, f). Found {F.shape}.")
    if cold.shape != (n,):
        raise ValueError(f"`cold` must have shape ({n},). Found {cold.shape}.")
    if not (np.isfinite(l2) and l2 >= 0):
        raise ValueError(f"`l2` must be a finite float >= 0. Found {l2}.")
    warm = ~cold
    if not warm.any():
        raise ValueError("every item is cold: the feature-tied table needs at least one item with interactions.")
    if not cold.any():
        return items
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or not (w[warm] > 0).any():
        raise ValueError(f"`weights` must be {n} finite values >= 0, positive for some warm item. Found shape {w.shape}.")
    X = np.hstack([F, np.ones((n, 1))])
    Y = np.hstack([items.item_embedding, items.item_bias[:, None]]).astype(np.float64)
    reg = l2 * np.eye(X.shape[1])
    reg[-1, -1] = 0.0  # no penalty on the intercept
    Xw = X[warm]
    Xww = Xw * w[warm][:, None]
    W = np.linalg.lstsq(Xw.T @ Xww + reg, Xww.T @ Y[warm], rcond=None)[0]
    pred = X[cold] @ W
    V = items.item_embedding.copy()
    b = items.item_bias.copy()
    V[cold] = pred[:, :-1]
    b[cold] = pred[:, -1]
    return ItemModel(item_embedding=V, item_bias=b)
