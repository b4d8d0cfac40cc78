"""Item cold start: the feature-tied table recommends items no one has interacted with yet."""

from __future__ import annotations

import numpy as np
import pytest

from privrec.benchmarks.quality import cold_start_experiment, cold_start_split
from privrec.sdk.data import Interactions, leave_one_out
from privrec.sdk.federated.side_info import feature_tied_items
from privrec.sdk.model import ItemModel
from privrec.sdk.train import TrainConfig


def _categorised(num_users: int = 200, num_items: int = 150, categories: int = 8, seed: int = 0) -> Interactions:
    """Users pick items by taste for item *categories* (the public feature): a planted case where an item's
    category says much about who will pick it."""
    rng = np.random.default_rng(seed)
    cat = rng.integers(0, categories, num_items)
    centroids = rng.normal(size=(categories, 6)) * 1.5
    V = centroids[cat] + 0.3 * rng.normal(size=(num_items, 6))
    U = rng.normal(size=(num_users, 6))
    users, items, times = [], [], []
    for u in range(num_users):
        logits = V @ U[u]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        k = int(rng.integers(10, 25))
        chosen = rng.choice(num_items, size=k, replace=False, p=p)
        users.append(np.full(k, u))
        items.append(chosen)
        times.append(np.sort(rng.integers(0, 10**6, k)))
    feats = np.zeros((num_items, categories), np.float32)
    feats[np.arange(num_items), cat] = 1.0
    n = sum(len(x) for x in users)
    return Interactions(
        users=np.concatenate(users).astype(np.int64), items=np.concatenate(items).astype(np.int64),
        ratings=np.ones(n, np.float32), timestamps=np.concatenate(times).astype(np.int64),
        user_ids=tuple(str(i) for i in range(num_users)), item_ids=tuple(str(i) for i in range(num_items)),
        item_features=feats, item_feature_names=tuple(f"category=c{c}" for c in range(categories)),
    )


def test_features_beat_random_and_popularity_on_cold_items() -> None:
    data = _categorised()
    split = leave_one_out(data)
    assert data.item_features is not None
    cfg = TrainConfig(dim=8, epochs=10, patience=10, lr=0.03)
    result = cold_start_experiment(split, data.item_features, config=cfg, fraction=0.2, seeds=(0,), progress=False)
    hr = {r["method"]: r["full_hr"] for r in result["rows"]}
    assert result["cases"] >= 20
    assert hr["features"] > 3 * result["random_hr"]
    assert hr["features"] > hr["popularity"]
    assert hr["features"] > hr["mean item (no features)"]
    assert hr["features"] > hr["as trained (none)"]


def test_cold_start_split_removes_every_training_interaction_of_held_items() -> None:
    split = leave_one_out(_categorised(num_users=60, num_items=80))
    cold, held = cold_start_split(split, fraction=0.1, seed=3)
    assert held.sum() == 8
    assert not held[cold.train_items].any()
    assert not (held[np.maximum(cold.val_item, 0)] & (cold.val_item >= 0)).any()
    np.testing.assert_array_equal(cold.test_item, split.test_item)
    kept = ~held[split.train_items]
    assert cold.train_items.size == int(kept.sum())


def test_feature_tied_items_golden() -> None:
    """Two warm items with features [1,0] and [0,1]; a cold item [1,1] gets, with l2=0, the exact least-squares
    prediction (here the sum of the two minus the intercept, which is 0 for this symmetric fit)."""
    V = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [9.0, 9.0]], np.float32)
    b = np.array([1.0, 3.0, 2.0, -5.0], np.float32)
    F = np.array([[1, 0], [0, 1], [0, 0], [1, 1]], np.float32)
    cold = np.array([False, False, False, True])
    out = feature_tied_items(ItemModel(V, b), F, cold, l2=0.0)
    # warm rows fit exactly: intercept = row 2 ([0, 0], bias 2); W = rows 0 and 1 minus the intercept
    np.testing.assert_allclose(out.item_embedding[3], [1.0, 2.0], atol=1e-5)
    np.testing.assert_allclose(out.item_bias[3], 1.0 + 3.0 - 2.0, atol=1e-5)
    np.testing.assert_array_equal(out.item_embedding[:3], V[:3])


def test_feature_tied_items_refuses_bad_input() -> None:
    items = ItemModel(np.ones((3, 2), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"`features` must have shape \(3, f\)\. Found \(2, 1\)"):
        feature_tied_items(items, np.ones((2, 1)), np.array([True, False, False]))
    with pytest.raises(ValueError, match="every item is cold"):
        feature_tied_items(items, np.ones((3, 1)), np.ones(3, bool))
    with pytest.raises(ValueError, match=r"`cold` must have shape \(3,\)"):
        feature_tied_items(items, np.ones((3, 1)), np.ones(2, bool))


def test_item_cold_start_option_is_validated() -> None:
    assert TrainConfig().item_cold_start == "features"
    assert TrainConfig.from_dict({"item_cold_start": "none"}).item_cold_start == "none"
    with pytest.raises(ValueError, match=r"`item_cold_start` must be 'features' or 'none'. Found 'genre'."):
        TrainConfig(item_cold_start="genre")  # type: ignore[arg-type]
