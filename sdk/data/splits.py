"""Leave-one-out and held-out-user splits.

Leave-one-out: per user, interactions are ordered by timestamp; **equal timestamps keep their order in
the source file** (a stable sort), so the split is deterministic. The latest interaction is the test
item and the second latest the validation item; users with fewer than three interactions keep all of
them in training and are not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .interactions import Interactions

__all__ = ["LeaveOneOutSplit", "heldout_users", "leave_one_out", "training_histories"]


@dataclass(frozen=True)
class LeaveOneOutSplit:
    """The leave-one-out split of an :class:`Interactions` log.

    Attributes:
        data: the full log.
        train_users, train_items: ``int64[N_train]`` the training pairs.
        val_item: ``int64[num_users]`` each user's validation item, ``-1`` if none.
        test_item: ``int64[num_users]`` each user's test item, ``-1`` if none.
    """

    data: Interactions
    train_users: NDArray[np.int64]
    train_items: NDArray[np.int64]
    val_item: NDArray[np.int64]
    test_item: NDArray[np.int64]

    @property
    def num_users(self) -> int:
        """Users in the log."""
        return self.data.num_users

    @property
    def num_items(self) -> int:
        """Items in the catalog."""
        return self.data.num_items

    def train_matrix(self) -> sp.csr_matrix:
        """Binary ``[num_users, num_items]`` CSR matrix of the training pairs."""
        m = sp.csr_matrix(
            (np.ones(self.train_users.size, np.float32), (self.train_users, self.train_items)),
            shape=(self.num_users, self.num_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def evaluated_users(self) -> NDArray[np.int64]:
        """Users that have a test item."""
        return np.flatnonzero(self.test_item >= 0).astype(np.int64)


def leave_one_out(data: Interactions) -> LeaveOneOutSplit:
    """Split ``data``: latest interaction per user → test, second latest → validation, rest → train."""
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))  # user, then time, then file row
    users = data.users[order]
    items = data.items[order]
    counts = np.bincount(users, minlength=data.num_users)
    ends = np.cumsum(counts)
    val_item = np.full(data.num_users, -1, np.int64)
    test_item = np.full(data.num_users, -1, np.int64)
    keep = np.ones(users.size, bool)
    for u in np.flatnonzero(counts >= 3):
        end = ends[u]
        test_item[u] = items[end - 1]
        val_item[u] = items[end - 2]
        keep[end - 2 : end] = False
    return LeaveOneOutSplit(
        data=data, train_users=users[keep], train_items=items[keep], val_item=val_item, test_item=test_item
    )


def heldout_users(num_users: int, *, fraction: float = 0.1, seed: int = 0) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Split user indices into (training users, held-out users), holding out ``fraction`` of them.

    Held-out users take no part in (federated) training; at evaluation time their vectors are
    reconstructed from their training items (Federated Reconstruction, Singhal et al. 2021, §4), so
    their numbers show what a brand-new device gets.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`fraction` must be in (0, 1). Found {fraction}.")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(num_users)
    n_out = max(1, round(fraction * num_users))
    return np.sort(perm[n_out:]).astype(np.int64), np.sort(perm[:n_out]).astype(np.int64)


def training_histories(split: LeaveOneOutSplit, users: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Each user's training items, oldest first: the history a device stores (one array per user, in order).

    How a history becomes labels is the bundle's reconstruction recipe (:mod:`privrec.sdk.recipe`), applied on
    the device.
    """
    order = np.argsort(split.train_users, kind="stable")  # grouped by user, time order kept within a user
    users_sorted, items_sorted = split.train_users[order], split.train_items[order]
    wanted = np.asarray(users, np.int64)
    starts = np.searchsorted(users_sorted, wanted, side="left")
    ends = np.searchsorted(users_sorted, wanted, side="right")
    return [items_sorted[a:b].astype(np.int64) for a, b in zip(starts, ends, strict=True)]

