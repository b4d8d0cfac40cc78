"""The reconstruction recipe: labels (recency, repeats, weights), the manifest block, and the fit loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.recipe import ReconstructionRecipe, recipe_labels
from privrec.sdk.reconstruct import FinetuneConfig


def test_labels_weight_recency_and_keep_the_largest_of_a_repeat() -> None:
    labels = recipe_labels([3, 7, 3, 1], 10, recency_half_life=1.0)
    # positions back from the latest: 3 → 3 and 1 (kept: 0.5), 7 → 2, 1 → 0
    np.testing.assert_array_equal(labels[[1, 3, 7]], np.float32([1.0, 0.5, 0.25]))
    assert labels.sum() == pytest.approx(1.75)
    flat = recipe_labels([3, 7, 3, 1], 10, recency_half_life=None, weights=[1.0, 2.0, 0.5, 1.0])
    np.testing.assert_array_equal(flat[[1, 3, 7]], np.float32([1.0, 1.0, 2.0]))


@settings(max_examples=60, deadline=None)
@given(history=st.lists(st.integers(0, 19), min_size=1, max_size=40), half_life=st.floats(0.1, 100.0))
def test_labels_are_in_0_1_and_the_latest_item_has_label_1(history: list[int], half_life: float) -> None:
    labels = recipe_labels(history, 20, recency_half_life=half_life)
    assert labels[history[-1]] == 1.0
    assert ((labels >= 0) & (labels <= 1)).all()
    assert set(np.flatnonzero(labels)) <= set(history)


@pytest.mark.parametrize(
    ("history", "weights", "message"),
    [
        ([], None, "`history` must hold at least one item"),
        ([1, 20], None, r"`history` must be in \[0, 20\)\. Found 20 at position 1\."),
        ([1, 2], [1.0], r"`weights` must have one weight per history item \(2\)\. Found 1\."),
        ([1], [-1.0], r"`weights` must be >= 0\. Found -1\.0 at position 0\."),
        ([1], [float("nan")], "`weights` must be finite"),
        ([1, 2], [1.0, 1e308], r"`weights` must fit in float32 \(at most 3\.4e38\)\. Found 1e\+308 at position 1\."),
        ([1], [0.0], "labels are all zero"),
    ],
)
def test_bad_histories_are_named(history: list[int], weights: list[float] | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        recipe_labels(history, 20, recency_half_life=2.0, weights=weights)


def test_manifest_block_round_trip_and_validation() -> None:
    recipe = ReconstructionRecipe(steps=4, lr=0.2, l2=0.1, calls=7, recency_half_life=3.0)
    assert ReconstructionRecipe.from_manifest(recipe.to_manifest()) == recipe
    assert ReconstructionRecipe.from_manifest({"steps": 5, "lr": 0.1, "l2": 0.5}).calls == 1  # older bundles
    assert recipe.finetune == FinetuneConfig(steps=4, lr=0.2, l2=0.1, calls=7)
    assert ReconstructionRecipe.from_finetune(recipe.finetune, recency_half_life=3.0) == recipe
    assert recipe.total_steps == 28
    with pytest.raises(ValueError, match=r"`lr` must be a finite float > 0\. Found inf\."):
        ReconstructionRecipe(lr=float("inf"))
    with pytest.raises(ValueError, match=r"`recency_half_life` must be a finite float > 0\. Found 0\.0\."):
        ReconstructionRecipe(recency_half_life=0.0)
    with pytest.raises(TypeError, match=r"`l2` must be a float\. Found str\."):
        ReconstructionRecipe(l2="0.5")  # type: ignore[arg-type]


def test_fit_calls_finetune_calls_times_over_the_whole_catalog() -> None:
    seen: list[tuple[int, float, float]] = []

    def finetune(u: np.ndarray, ids: np.ndarray, labels: np.ndarray, lr: float, l2: float) -> tuple[np.ndarray, float]:
        seen.append((ids.size, lr, l2))
        np.testing.assert_array_equal(ids, np.arange(12))
        return u + 1.0, 0.0

    recipe = ReconstructionRecipe(steps=2, lr=0.3, l2=0.4, calls=5)
    u = recipe.fit(finetune, recipe.labels([4], 12), dim=3)
    np.testing.assert_array_equal(u, np.full(3, 5.0, np.float32))
    assert seen == [(12, 0.3, 0.4)] * 5
