"""HR@K and NDCG@K under the leave-one-out protocol, sampled and full-catalog.

- **sampled**: the target item is ranked against 99 items the user never interacted with, drawn
  uniformly without replacement from a generator seeded by ``protocol.seed`` (the same negatives for
  every model evaluated with the same seed, so numbers compare);
- **full**: the target is ranked against the whole catalog minus the user's history. For the test
  item the history is the training items plus the validation item (everything the device saw before
  the test interaction); for the validation item it is the training items.

A target's rank is the number of candidates scoring strictly higher; HR@K = mean(rank < K),
NDCG@K = mean(1 / log2(rank + 2) for rank < K).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from .data.splits import LeaveOneOutSplit

__all__ = ["EvalProtocol", "Metrics", "ScoreFn", "bootstrap_ratio_ci", "evaluate", "sampled_negatives"]

ScoreFn = Callable[[NDArray[np.int64]], NDArray[np.float32]]
"""Maps user indices ``[B]`` to scores ``float32[B, num_items]``."""


@dataclass(frozen=True)
class EvalProtocol:
    """Evaluation settings; recorded next to every reported number."""

    k: int = 10
    num_negatives: int = 99
    seed: int = 2024
    target: Literal["test", "val"] = "test"
    batch_size: int = 256


@dataclass(frozen=True)
class Metrics:
    """HR@K and NDCG@K, sampled and full, over ``users`` evaluated users.

    ``user_ids`` and ``full_hits`` (``bool[users]``, the full-catalog hit of each evaluated user, in the
    same order) let a caller bootstrap over users; they are empty when not recorded.
    """

    sampled_hr: float
    sampled_ndcg: float
    full_hr: float
    full_ndcg: float
    users: int
    protocol: EvalProtocol
    user_ids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64), compare=False, repr=False)
    full_hits: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_), compare=False, repr=False)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape printed by ``privrec evaluate --json``."""
        k = self.protocol.k
        return {
            "sampled": {f"hr@{k}": self.sampled_hr, f"ndcg@{k}": self.sampled_ndcg},
            "full": {f"hr@{k}": self.full_hr, f"ndcg@{k}": self.full_ndcg},
            "users": self.users,
            "protocol": asdict(self.protocol)
            | {"candidates_sampled": self.protocol.num_negatives + 1, "split": "leave-one-out (latest = test)"},
        }


def sampled_negatives(split: LeaveOneOutSplit, num_negatives: int, seed: int) -> NDArray[np.int64]:
    """``int64[num_users, num_negatives]``: per user, items never interacted with (fixed by ``seed``)."""
    data = split.data
    seen = np.zeros((data.num_users, data.num_items), bool)
    seen[data.users, data.items] = True
    rng = np.random.default_rng(seed)
    out = np.empty((data.num_users, num_negatives), np.int64)
    for u in range(data.num_users):
        pool = np.flatnonzero(~seen[u])
        if pool.size < num_negatives:
            raise ValueError(f"user {u} has only {pool.size} non-interacted items; need {num_negatives} negatives.")
        out[u] = rng.choice(pool, size=num_negatives, replace=False)
    return out


def evaluate(
    score_fn: ScoreFn,
    split: LeaveOneOutSplit,
    *,
    users: NDArray[np.int64] | None = None,
    protocol: EvalProtocol | None = None,
    negatives: NDArray[np.int64] | None = None,
) -> Metrics:
    """Evaluate a scorer on ``users`` (default: every user with a target) under ``protocol``."""
    proto = protocol or EvalProtocol()
    targets = split.test_item if proto.target == "test" else split.val_item
    eval_users = np.flatnonzero(targets >= 0) if users is None else np.asarray(users, np.int64)
    eval_users = eval_users[targets[eval_users] >= 0]
    if eval_users.size == 0:
        raise ValueError("no user to evaluate: every selected user lacks a target item.")
    negs = sampled_negatives(split, proto.num_negatives, proto.seed) if negatives is None else negatives
    history = split.train_matrix().tolil()
    if proto.target == "test":
        for u in np.flatnonzero(split.val_item >= 0):
            history[u, split.val_item[u]] = 1.0
    hist = history.tocsr()
    s_hr = s_ndcg = f_hr = f_ndcg = 0.0
    full_hits: list[NDArray[np.bool_]] = []
    for start in range(0, eval_users.size, proto.batch_size):
        batch = eval_users[start : start + proto.batch_size]
        scores = np.asarray(score_fn(batch), np.float64)
        if scores.shape != (batch.size, split.num_items):
            raise ValueError(f"score_fn must return shape ({batch.size}, {split.num_items}). Found {scores.shape}.")
        rows = np.arange(batch.size)
        tgt = targets[batch]
        tscore = scores[rows, tgt]
        s_rank = (scores[rows[:, None], negs[batch]] > tscore[:, None]).sum(axis=1)
        masked = scores.copy()
        sub = hist[batch]
        masked[sub.nonzero()] = -np.inf
        masked[rows, tgt] = tscore  # the target is never part of the history
        f_rank = (masked > tscore[:, None]).sum(axis=1)
        for rank, acc in ((s_rank, "s"), (f_rank, "f")):
            hit = rank < proto.k
            ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
            if acc == "s":
                s_hr += float(hit.sum())
                s_ndcg += float(ndcg.sum())
            else:
                f_hr += float(hit.sum())
                f_ndcg += float(ndcg.sum())
                full_hits.append(hit)
    n = float(eval_users.size)
    return Metrics(s_hr / n, s_ndcg / n, f_hr / n, f_ndcg / n, int(eval_users.size), proto,
                   user_ids=eval_users, full_hits=np.concatenate(full_hits))


def bootstrap_ratio_ci(
    numerator: NDArray[np.bool_] | NDArray[np.floating],
    denominator: NDArray[np.bool_] | NDArray[np.floating],
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``mean(numerator) / mean(denominator)``, resampling **users**, paired.

    Args:
        numerator, denominator: per-user outcomes ``[runs, users]`` (or ``[users]``), e.g. full-catalog hits
            of several seeds; column ``j`` of both must be the same user. Each resample draws users with
            replacement, takes the same columns of both (paired: the users' shared difficulty cancels) and
            averages over runs and users.
        resamples: bootstrap draws. level: coverage in (0, 1). seed: seeds the draws (reproducible).

    Returns ``(low, high)``. Captures the sampling noise of the evaluated users given these runs, not
    the run-to-run noise beyond the runs given. Resamples whose denominator mean is 0 are dropped.
    """
    num = np.atleast_2d(np.asarray(numerator, np.float64))
    den = np.atleast_2d(np.asarray(denominator, np.float64))
    if num.shape[1] != den.shape[1] or num.shape[1] == 0:
        raise ValueError(
            f"`numerator` and `denominator` must hold the same users (last axis > 0). Found {num.shape} and {den.shape}."
        )
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must be in (0, 1). Found {level}.")
    users = num.shape[1]
    idx = np.random.default_rng(seed).integers(0, users, (resamples, users))
    a = num[:, idx].mean(axis=(0, 2))
    b = den[:, idx].mean(axis=(0, 2))
    ratios = a[b > 0] / b[b > 0]
    if ratios.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(ratios, [(1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0])
    return float(low), float(high)
