"""The device round (numpy, through the signatures): batched == per device, clipping bound, noise shares."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from privrec.sdk.federated import (
    DeviceUpdate,
    NumpySignatures,
    ParamLayout,
    RoundConfig,
    cohort_update_sum,
    device_update,
    update_from_scores,
)
from privrec.sdk.privacy import NoiseGenerator, SeededGaussianNoise, distributed_noise_std
from privrec.sdk.recipe import ReconstructionRecipe, recipe_labels
from privrec.sdk.reconstruct import FinetuneConfig

N_ITEMS, DIM = 200, 8
FT = FinetuneConfig(steps=5, lr=0.1, l2=0.5, calls=2)
RECIPE = ReconstructionRecipe.from_finetune(FT, recency_half_life=None)


def device_labels(ids: object, weights: object | None, num_items: int) -> np.ndarray:
    return recipe_labels(ids, num_items, recency_half_life=None, weights=weights)


def _update(layout: ParamLayout, params: np.ndarray, y: np.ndarray, cfg: RoundConfig,
            noise: NoiseGenerator | None = None) -> DeviceUpdate:
    """One device's update through the numpy reference of the exported signatures."""
    model = NumpySignatures(layout.item_model(params), FT.steps)
    return device_update(model, y, recipe=RECIPE, layout=layout, config=cfg, noise=noise)


def _labels(rng: np.random.Generator, n_devices: int) -> np.ndarray:
    Y = np.zeros((n_devices, N_ITEMS), np.float32)
    for j in range(n_devices):
        ids = rng.choice(N_ITEMS, size=int(rng.integers(3, 30)), replace=False)
        Y[j] = device_labels(ids, rng.uniform(0.1, 1.0, ids.size), N_ITEMS)
    return Y


def _layouts() -> list[ParamLayout]:
    F = np.random.default_rng(7).random((N_ITEMS, 5)).astype(np.float32)
    return [
        ParamLayout(num_items=N_ITEMS, dim=DIM),
        ParamLayout(num_items=N_ITEMS, dim=DIM, features=F),
        ParamLayout(num_items=N_ITEMS, dim=DIM, free_embedding=False, features=F),
        ParamLayout(num_items=N_ITEMS, dim=DIM, train_bias=False),
    ]


@pytest.mark.parametrize("layout", _layouts(), ids=["free", "free+features", "features", "no-bias"])
@pytest.mark.parametrize("clip_norm", [1e-3, 0.05, 100.0], ids=["all-clipped", "some-clipped", "none-clipped"])
def test_batched_sum_equals_sum_of_per_device_updates(layout: ParamLayout, clip_norm: float) -> None:
    rng = np.random.default_rng(0)
    params = layout.init(init_std=0.3, seed=1)
    Y = _labels(rng, 6)
    cfg = RoundConfig(clip_norm=clip_norm, local_lr=2.0)
    per_device = [_update(layout, params, Y[j], cfg) for j in range(6)]
    batched = cohort_update_sum(layout, params, torch.from_numpy(Y), clip_norm=clip_norm, local_lr=2.0, finetune=FT)
    expected = np.sum([d.vector.astype(np.float64) for d in per_device], axis=0)
    np.testing.assert_allclose(batched.total, expected, rtol=2e-4, atol=1e-7 * max(1.0, np.abs(expected).max()))
    np.testing.assert_allclose(batched.norms, [d.stats.norm for d in per_device], rtol=1e-4)
    np.testing.assert_allclose(batched.losses, [d.stats.loss for d in per_device], rtol=1e-5)
    assert batched.unclipped == sum(not d.stats.clipped for d in per_device)


def test_update_norm_matches_the_closed_form_of_the_rank_one_gradient() -> None:
    layout = ParamLayout(num_items=N_ITEMS, dim=DIM)
    params = layout.init(init_std=0.3, seed=2)
    y = _labels(np.random.default_rng(3), 1)[0]
    out = _update(layout, params, y, RoundConfig(clip_norm=1e9, local_lr=1.0))
    E, _, b = layout.split(out.vector)
    assert E is not None and b is not None
    # Δb = −g and ΔE = −outer(g, u): every row of ΔE is parallel to u, ‖Δ‖² = ‖g‖²(‖u‖² + 1).
    g = -b.astype(np.float64)
    u = E[np.argmax(np.abs(g))] / g[np.argmax(np.abs(g))] * -1.0
    np.testing.assert_allclose(E, -np.outer(g, u), rtol=1e-4, atol=1e-7)
    assert out.stats.norm == pytest.approx(np.linalg.norm(g) * math.sqrt(u @ u + 1.0), rel=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    clip=st.floats(1e-4, 10.0),
    lr=st.floats(0.01, 100.0),
    init_std=st.floats(0.01, 3.0),
    seed=st.integers(0, 2**16),
)
def test_no_clipped_update_exceeds_the_clip_norm(clip: float, lr: float, init_std: float, seed: int) -> None:
    layout = ParamLayout(num_items=50, dim=4, features=np.eye(50, 3, dtype=np.float32))
    params = layout.init(init_std=init_std, seed=seed)
    rng = np.random.default_rng(seed)
    ids = rng.choice(50, size=int(rng.integers(1, 20)), replace=False)
    y = device_labels(ids, None, 50)
    out = _update(layout, params, y, RoundConfig(clip_norm=clip, local_lr=lr))
    assert float(np.linalg.norm(out.vector.astype(np.float64))) <= clip
    assert out.count_report == (0.5 if out.stats.norm <= clip else -0.5)
    Y = torch.from_numpy(np.stack([y, y]))
    batched = cohort_update_sum(layout, params, Y, clip_norm=clip, local_lr=lr, finetune=FT)
    assert float(np.linalg.norm(batched.total)) <= 2 * clip


def test_distributed_noise_shares_sum_to_the_calibrated_std() -> None:
    """n devices' shares N(0, (Z·C)²/n) sum to N(0, (Z·C)²) per coordinate.

    Test: over D coordinates, (D − 1)·s²/(Z·C)² ~ χ²(D − 1); we accept inside the two-sided 1 − 1e-6
    interval, so the false-alarm rate is 1e-6. A share std off by 5% (e.g. dividing by n instead of
    sqrt(n) would be off by sqrt(n)) falls outside with probability > 0.999 at D = 1800.
    """
    layout = ParamLayout(num_items=N_ITEMS, dim=DIM)
    params = layout.init(init_std=0.3, seed=4)
    n, Z, C = 12, 1.7, 0.05
    share = distributed_noise_std(noise_multiplier=Z, clip_norm=C, expected_devices=n)
    Y = _labels(np.random.default_rng(5), n)
    with pytest.warns(UserWarning):
        noise = SeededGaussianNoise(seed=11)
    noisy = RoundConfig(clip_norm=C, local_lr=1.0, noise_std=share)
    clean = RoundConfig(clip_norm=C, local_lr=1.0)
    total_noise = np.zeros(layout.size)
    for j in range(n):
        with_noise = _update(layout, params, Y[j], noisy, noise=noise).vector.astype(np.float64)
        without = _update(layout, params, Y[j], clean).vector.astype(np.float64)
        total_noise += with_noise - without
    D = layout.size
    stat = (D - 1) * total_noise.var(ddof=1) / (Z * C) ** 2
    lo, hi = chi2.ppf(0.5e-6, D - 1), chi2.ppf(1 - 0.5e-6, D - 1)
    assert lo < stat < hi
    assert abs(total_noise.mean()) < 6 * Z * C / math.sqrt(D)


def test_device_update_refuses_bad_input() -> None:
    layout = ParamLayout(num_items=N_ITEMS, dim=DIM)
    params = layout.init(init_std=0.1, seed=0)
    cfg = RoundConfig(clip_norm=1.0, local_lr=1.0)
    with pytest.raises(ValueError, match=r"`labels` must have shape \(200,\). Found \(3,\)."):
        _update(layout, params, np.ones(3, np.float32), cfg)
    with pytest.raises(ValueError, match="non-negative with a positive sum"):
        _update(layout, params, np.zeros(N_ITEMS, np.float32), cfg)
    with pytest.raises(ValueError, match="`noise` must be given"):
        _update(layout, params, np.ones(N_ITEMS, np.float32), RoundConfig(clip_norm=1.0, local_lr=1.0, noise_std=0.1))
    with pytest.raises(ValueError, match=r"`history` must be in \[0, 200\). Found 200 at position 1."):
        device_labels([3, 200], None, N_ITEMS)
    with pytest.raises(ValueError, match=r"`weights` must be >= 0. Found -1.0 at position 0."):
        device_labels([3], [-1.0], N_ITEMS)
    with pytest.raises(ValueError, match=r"`clip_norm` must be in \(0, inf\). Found 0."):
        RoundConfig(clip_norm=0, local_lr=1.0)
    small = NumpySignatures(ParamLayout(num_items=10, dim=DIM).item_model(np.zeros(10 * (DIM + 1), np.float32)), 5)
    with pytest.raises(ValueError, match=r"the model \(10 items × 8\) does not match the round's layout \(200 items × 8\)"):
        device_update(small, np.ones(N_ITEMS, np.float32), recipe=RECIPE, layout=layout, config=cfg)
    with pytest.raises(ValueError, match=r"`scores` must have shape \(200,\) \(the whole catalog\). Found \(5,\)."):
        update_from_scores(layout, np.zeros(DIM), np.zeros(5), np.ones(N_ITEMS), cfg)
    with pytest.raises(ValueError, match="`scores` must be finite"):
        update_from_scores(layout, np.zeros(DIM), np.full(N_ITEMS, np.nan), np.ones(N_ITEMS), cfg)
