import numpy as np
import pytest

from privrec.sdk.data import LeaveOneOutSplit
from privrec.sdk.evaluate import evaluate
from privrec.sdk.model import ItemModel
from privrec.sdk.prune import check_sparsity, magnitude_prune, prune_and_finetune
from privrec.sdk.quantize import quantize_int8
from privrec.sdk.train import TrainConfig, train_central


def test_magnitude_prune_zeroes_smallest_exactly() -> None:
    v = np.array([[0.1, -3.0], [2.0, -0.2], [0.05, 1.0]], np.float32)
    pruned, mask = magnitude_prune(ItemModel(v, np.zeros(3, np.float32)), 0.5)
    assert mask.tolist() == [[False, True], [True, False], [False, True]]
    assert (pruned.item_embedding == 0).sum() == 3
    # sparsity survives int8 quantization
    assert quantize_int8(pruned).sparsity == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_sparsity_outside_unit_interval_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match=r"`sparsity` must be in \[0, 1\)\. Found"):
        check_sparsity(bad)


def test_sparsity_type() -> None:
    with pytest.raises(TypeError, match=r"`sparsity` must be a float\. Found str"):
        check_sparsity("0.5")


def test_finetune_after_pruning_keeps_mask_and_recovers(synthetic_split: LeaveOneOutSplit) -> None:
    cfg = TrainConfig(dim=8, epochs=30, patience=30, l2=0.1, init_std=0.1)
    trained = train_central(synthetic_split, cfg, seed=0, progress=False).model

    def hr(items: ItemModel, users: np.ndarray) -> float:
        return evaluate(lambda us: users[us] @ items.item_embedding.T + items.item_bias, synthetic_split).full_hr

    pruned_only, mask = magnitude_prune(trained.items, 0.75)
    tuned = prune_and_finetune(trained, synthetic_split, 0.75, cfg, epochs=15, seed=0)
    assert np.all(tuned.items.item_embedding[~mask] == 0.0)
    assert hr(tuned.items, tuned.user_embedding) >= hr(pruned_only, trained.user_embedding)
