import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.model import ItemModel
from privrec.sdk.reconstruct import (
    FinetuneConfig,
    finetune_reference,
    finetune_step_torch,
    reconstruct,
    reconstruct_batch,
)


def _model(n: int = 40, d: int = 5, seed: int = 0) -> ItemModel:
    rng = np.random.default_rng(seed)
    return ItemModel(rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=n).astype(np.float32))


def _autograd_loss(u: torch.Tensor, V: torch.Tensor, b: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    return -(y * torch.log_softmax(V @ u + b, dim=0)).sum() + 0.5 * l2 * (u @ u)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    m=st.integers(1, 30),
    l2=st.floats(0.0, 2.0),
)
def test_analytic_gradient_equals_autograd(seed: int, m: int, l2: float) -> None:
    """The exported step's gradient V^T (p - y) + l2 u is exactly the loss's gradient."""
    rng = np.random.default_rng(seed)
    V = torch.from_numpy(rng.normal(size=(m, 6)))
    b = torch.from_numpy(rng.normal(size=m))
    labels = torch.from_numpy(rng.uniform(0.0, 2.0, size=m))
    labels[0] += 0.1  # positive sum
    y = labels / labels.sum()
    u = torch.from_numpy(rng.normal(size=6)).requires_grad_(True)
    _autograd_loss(u, V, b, y, l2).backward()
    assert u.grad is not None
    p = torch.softmax(V @ u.detach() + b, dim=0)
    analytic = V.T @ (p - y) + l2 * u.detach()
    torch.testing.assert_close(analytic, u.grad, rtol=1e-10, atol=1e-12)


def test_reference_matches_batched_torch_on_full_catalog() -> None:
    m = _model()
    ids = np.arange(m.num_items)
    labels = np.zeros(m.num_items, np.float32)
    labels[[3, 7, 11]] = [1.0, 0.5, 1.0]
    u0 = np.zeros(m.dim, np.float32)
    ref, loss = finetune_reference(u0, m.item_embedding, m.item_bias, ids, labels, lr=0.05, l2=0.5, steps=25)
    cfg = FinetuneConfig(steps=5, calls=5, lr=0.05, l2=0.5)
    batched = reconstruct_batch(m, torch.from_numpy(labels[None]), cfg)[0].numpy()
    np.testing.assert_allclose(batched, ref, atol=1e-5)
    # The loss is evaluated at the returned vector.
    V = m.item_embedding.astype(np.float64)
    s = V @ ref + m.item_bias
    y = labels / labels.sum()
    expected = -(y * (s - s.max() - np.log(np.exp(s - s.max()).sum()))).sum() + 0.25 * float(ref @ ref)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_steps_decrease_the_loss() -> None:
    m = _model()
    ids = np.arange(m.num_items)
    labels = (np.arange(m.num_items) % 7 == 0).astype(np.float32)
    u = np.zeros(m.dim, np.float32)
    losses = []
    for _ in range(5):
        u, loss = finetune_reference(u, m.item_embedding, m.item_bias, ids, labels, lr=0.05, l2=0.5, steps=10)
        losses.append(loss)
    assert all(a > b for a, b in itertools.pairwise(losses))


def test_reconstruct_prefers_the_users_items() -> None:
    """A planted user: reconstruction from their items ranks those items above the rest."""
    rng = np.random.default_rng(3)
    V = rng.normal(size=(200, 8)).astype(np.float32)
    true_u = rng.normal(size=8).astype(np.float32)
    mine = np.argsort(-(V @ true_u))[:15]
    m = ItemModel(V, np.zeros(200, np.float32))
    u = reconstruct(m, mine, FinetuneConfig(steps=10, calls=20, lr=0.05, l2=0.1))
    cos = float(u @ true_u / np.linalg.norm(u) / np.linalg.norm(true_u))
    assert cos > 0.9


def test_step_torch_matches_reference_single_step() -> None:
    m = _model()
    y = torch.zeros(1, m.num_items)
    y[0, 2] = 1.0
    u = torch.zeros(1, m.dim)
    out = finetune_step_torch(u, torch.from_numpy(m.item_embedding), torch.from_numpy(m.item_bias), y, lr=0.1, l2=0.0)
    ref, _ = finetune_reference(
        np.zeros(m.dim, np.float32), m.item_embedding, m.item_bias, np.arange(m.num_items),
        y[0].numpy(), lr=0.1, l2=0.0, steps=1,
    )
    np.testing.assert_allclose(out[0].numpy(), ref, atol=1e-6)


def test_bad_inputs() -> None:
    m = _model()
    with pytest.raises(ValueError, match="empty history"):
        reconstruct(m, [])
    with pytest.raises(ValueError, match=r"\[0, 40\)\. Found 40 at position 0"):
        reconstruct(m, [40])
    with pytest.raises(ValueError, match=r"must be in \[0, 40\)\. Found -2"):
        reconstruct(m, [-2])
    with pytest.raises(ValueError, match="non-negative with a positive sum"):
        reconstruct(m, [1, 2], labels=np.array([0.0, 0.0], np.float32))
    with pytest.raises(ValueError, match="finite"):
        reconstruct(m, [1], labels=np.array([np.nan], np.float32))
    with pytest.raises(ValueError, match=r"Row 1 is empty"):
        reconstruct_batch(m, torch.tensor([[1.0] + [0.0] * 39, [0.0] * 40]))
    with pytest.raises(ValueError, match="`steps` must be > 0"):
        FinetuneConfig(steps=0)
    with pytest.raises(ValueError, match="`lr` must be a finite float > 0"):
        FinetuneConfig(lr=float("nan"))
