import numpy as np

from privrec.sdk.baselines import ALSConfig, train_als, tune_als
from privrec.sdk.data import LeaveOneOutSplit
from privrec.sdk.evaluate import evaluate


def test_als_learns_structure_and_tuning_picks_best(synthetic_split: LeaveOneOutSplit) -> None:
    res = train_als(synthetic_split, ALSConfig(factors=8, regularization=0.1, alpha=5.0), seed=0)
    assert res.user_factors.shape == (200, 8) and res.item_factors.shape == (300, 8)
    pop = np.bincount(synthetic_split.train_items, minlength=300).astype(np.float32)
    popm = evaluate(lambda us: np.tile(pop, (us.size, 1)), synthetic_split)
    assert evaluate(res.score, synthetic_split).full_hr > popm.full_hr
    best, grid = tune_als(synthetic_split, factors=(4, 8), regularization=(0.1,), alpha=(1.0,), recency_half_life=(None,))
    assert len(grid) == 2
    assert best.config.factors == max(grid, key=lambda g: g["val_full_hr@10"])["factors"]  # type: ignore[arg-type,return-value]
