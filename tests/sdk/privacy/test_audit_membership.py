"""Membership scores: the loss after on-device reconstruction against a numpy reference, the reconstruction
rank test's direction, and refused inputs."""

from __future__ import annotations

import numpy as np
import pytest

from privrec.sdk.model import ItemModel
from privrec.sdk.privacy import loss_scores, reconstruction_scores
from privrec.sdk.reconstruct import FinetuneConfig

FT = FinetuneConfig(steps=3, lr=0.2, l2=0.5, calls=4)


def _model(rng: np.random.Generator, bias: np.ndarray | None = None) -> ItemModel:
    V = rng.normal(scale=0.5, size=(30, 4)).astype(np.float32)
    b = (rng.normal(size=30) if bias is None else bias).astype(np.float32)
    return ItemModel(item_embedding=V, item_bias=b)


def _reference_loss(model: ItemModel, y: np.ndarray) -> float:
    """The device's reconstruction (plain gradient steps on the softmax loss + L2) and its loss, in float64."""
    V, b = model.item_embedding.astype(np.float64), model.item_bias.astype(np.float64)
    t = y / y.sum()
    u = np.zeros(V.shape[1])
    for _ in range(FT.steps * FT.calls):
        s = V @ u + b
        p = np.exp(s - s.max())
        p /= p.sum()
        u = u - FT.lr * ((p - t) @ V + FT.l2 * u)
    s = V @ u + b
    log_p = s - s.max() - np.log(np.exp(s - s.max()).sum())
    return float(t @ log_p)


def test_loss_scores_match_a_numpy_reference(rng: np.random.Generator) -> None:
    model = _model(rng)
    y = np.zeros((3, 30), np.float32)
    y[0, [1, 5, 9]] = 1.0
    y[1, [2]] = 1.0
    y[2, [3, 4, 20, 21]] = [1.0, 0.5, 0.25, 1.0]
    got = loss_scores(model, y, FT)
    want = [_reference_loss(model, row) for row in y]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_reconstruction_scores_rise_when_the_model_ranks_the_users_items_higher(rng: np.random.Generator) -> None:
    y = np.zeros((2, 30), np.float32)
    y[0, [0, 1, 2, 3, 4, 5]] = 1.0
    y[1, [10, 11, 12, 13]] = 1.0
    favour = np.zeros(30)
    favour[[0, 1, 2, 3, 4, 5, 10, 11, 12, 13]] = 3.0
    base = _model(np.random.default_rng(7), bias=np.zeros(30))
    liked = ItemModel(item_embedding=base.item_embedding, item_bias=favour.astype(np.float32))
    disliked = ItemModel(item_embedding=base.item_embedding, item_bias=(-favour).astype(np.float32))
    high = reconstruction_scores(liked, y, FT, seed=3)
    low = reconstruction_scores(disliked, y, FT, seed=3)
    assert (high > low).all()
    # under `liked` the held-out half ranks among the 10 favoured items (the fitted half is excluded)
    assert (high >= -np.log(10.0) - 1e-9).all()
    assert (low <= -np.log(20.0)).all()  # and below the 20 others under `disliked`
    np.testing.assert_array_equal(high, reconstruction_scores(liked, y, FT, seed=3))  # seeded


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.ones((2, 29), np.float32), "`labels` must have shape (B, 30). Found (2, 29)."),
        (np.zeros((2, 30), np.float32), "every user needs at least one labelled item. Row 0 has none."),
        (-np.ones((1, 30), np.float32), "`labels` must be finite and non-negative."),
    ],
)
def test_bad_labels_are_refused(labels: np.ndarray, message: str, rng: np.random.Generator) -> None:
    model = _model(rng)
    for score in (loss_scores, reconstruction_scores):
        with pytest.raises(ValueError) as info:
            score(model, labels, FT)
        assert str(info.value) == message
