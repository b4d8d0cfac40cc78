"""The peer baseline: ``implicit``'s alternating least squares (CPU), evaluated by the same code.

Hu, Koren & Volinsky 2008 ("Collaborative Filtering for Implicit Feedback Datasets"): confidence
``1 + alpha`` on observed pairs. Tuned lightly on the validation items (a small grid), then scored on
the test items exactly like privrec's own models, so quality claims are ratios measured in one run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import product

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .data.splits import LeaveOneOutSplit
from .evaluate import EvalProtocol, Metrics, evaluate
from .train import label_matrix

__all__ = ["ALSConfig", "ALSResult", "train_als", "tune_als"]

@dataclass(frozen=True)
class ALSConfig:
    """Hyper-parameters of implicit's ``AlternatingLeastSquares``."""

    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    recency_half_life: float | None = None


@dataclass(frozen=True)
class ALSResult:
    """Factors and the config that produced them; ``score(users) -> float32[B, num_items]``."""

    user_factors: NDArray[np.float32]
    item_factors: NDArray[np.float32]
    config: ALSConfig

    def score(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        """Scores of every item for ``users``."""
        return (self.user_factors[users] @ self.item_factors.T).astype(np.float32)


def train_als(split: LeaveOneOutSplit, config: ALSConfig, *, seed: int = 0) -> ALSResult:
    """Fit ALS on the training pairs of ``split``."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises itself; its guidance is one BLAS thread underneath.
    with threadpool_limits(1, "blas"):
        return _fit(AlternatingLeastSquares, split, config, seed)


def _fit(cls: type, split: LeaveOneOutSplit, config: ALSConfig, seed: int) -> ALSResult:
    model = cls(
        factors=config.factors, regularization=config.regularization, alpha=config.alpha,
        iterations=config.iterations, random_state=seed, num_threads=2,
    )
    # The same recency-weighted labels privrec's models may use, as ALS confidences: a fair peer.
    model.fit(sp.csr_matrix(label_matrix(split, config.recency_half_life)), show_progress=False)
    return ALSResult(np.asarray(model.user_factors, np.float32), np.asarray(model.item_factors, np.float32), config)


def tune_als(
    split: LeaveOneOutSplit,
    *,
    seed: int = 0,
    factors: tuple[int, ...] = (32, 64),
    regularization: tuple[float, ...] = (0.01, 0.1),
    alpha: tuple[float, ...] = (1.0, 5.0, 10.0),
    recency_half_life: tuple[float | None, ...] = (None, 10.0),
) -> tuple[ALSResult, list[dict[str, object]]]:
    """Grid-search ALS on validation full HR@10 (24 fits by default, about 20 s); returns the best model
    and the grid's scores. The grid includes the recency-weighted labels privrec's own model uses."""
    val = EvalProtocol(target="val")
    best: tuple[float, ALSResult | None] = (-1.0, None)
    grid: list[dict[str, object]] = []
    for f, r, a, h in product(factors, regularization, alpha, recency_half_life):
        res = train_als(split, ALSConfig(factors=f, regularization=r, alpha=a, recency_half_life=h), seed=seed)
        m: Metrics = evaluate(res.score, split, protocol=val)
        grid.append(asdict(res.config) | {"val_full_hr@10": m.full_hr})
        if m.full_hr > best[0]:
            best = (m.full_hr, res)
    if best[1] is None:
        raise ValueError("the ALS grid is empty: give at least one value per hyper-parameter.")
    return best[1], grid
