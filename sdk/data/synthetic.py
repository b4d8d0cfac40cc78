"""A seeded synthetic data set with planted low-rank structure, for fast tests that need no real data."""

from __future__ import annotations

import numpy as np

from .interactions import Interactions

__all__ = ["synthetic_interactions"]


def synthetic_interactions(
    num_users: int = 200,
    num_items: int = 300,
    *,
    rank: int = 4,
    per_user: tuple[int, int] = (12, 40),
    temperature: float = 0.5,
    seed: int = 0,
) -> Interactions:
    """Users pick items from ``softmax(U V^T / temperature + popularity)`` with ``U, V`` Gaussian of rank
    ``rank``: a planted structure that a low-rank model recovers and a popularity model does not.

    Each user interacts with ``per_user`` (inclusive range) distinct items at increasing timestamps.
    """
    if num_users <= 0 or num_items <= 0 or rank <= 0:
        raise ValueError(f"num_users, num_items and rank must be > 0. Found {num_users}, {num_items}, {rank}.")
    lo, hi = per_user
    if not 1 <= lo <= hi <= num_items:
        raise ValueError(f"`per_user` must satisfy 1 <= low <= high <= num_items. Found {per_user}.")
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(num_users, rank)) / np.sqrt(rank)
    V = rng.normal(size=(num_items, rank))
    pop = rng.normal(scale=0.5, size=num_items)
    users, items, times = [], [], []
    for u in range(num_users):
        logits = U[u] @ V.T / temperature + pop
        p = np.exp(logits - logits.max())
        p /= p.sum()
        k = int(rng.integers(lo, hi + 1))
        chosen = rng.choice(num_items, size=k, replace=False, p=p)
        users.append(np.full(k, u))
        items.append(chosen)
        times.append(1_000_000 + np.sort(rng.integers(0, 10_000_000, size=k)))
    n = sum(len(x) for x in users)
    return Interactions(
        users=np.concatenate(users).astype(np.int64),
        items=np.concatenate(items).astype(np.int64),
        ratings=np.full(n, 5.0, np.float32),
        timestamps=np.concatenate(times).astype(np.int64),
        user_ids=tuple(str(i) for i in range(num_users)),
        item_ids=tuple(str(i) for i in range(num_items)),
        item_titles=tuple(f"Item {i}" for i in range(num_items)),
        name=f"synthetic-{num_users}x{num_items}-r{rank}-s{seed}",
    )
