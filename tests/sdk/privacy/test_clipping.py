"""Tests for privrec.sdk.privacy.clipping: the clip bound (property), untouched rows, adaptive clipping."""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from privrec.sdk.privacy import (
    AdaptiveClipEvent,
    AdaptiveClipper,
    PrivacyWarning,
    SeededGaussianNoise,
    clip_l2,
    effective_noise_multiplier,
    geometric_clip_update,
)


def _updates(dtype: type[np.floating]) -> st.SearchStrategy[np.ndarray]:
    shape = st.tuples(st.integers(min_value=0, max_value=12), st.integers(min_value=1, max_value=40))
    width: Literal[32, 64] = 32 if dtype is np.float32 else 64
    return arrays(dtype, shape, elements=st.floats(-1e6, 1e6, width=width, allow_subnormal=False))


@settings(max_examples=300, deadline=None)
@given(
    updates=st.one_of(_updates(np.float32), _updates(np.float64)),
    clip_norm=st.floats(min_value=1e-3, max_value=1e3),
)
def test_clipped_rows_never_exceed_c_and_inside_rows_are_untouched(updates: np.ndarray, clip_norm: float) -> None:
    before = updates.copy()
    clipped, norms = clip_l2(updates, clip_norm=clip_norm)
    assert np.array_equal(updates, before)  # input not modified
    assert clipped.dtype == updates.dtype and clipped.shape == updates.shape
    assert norms.dtype == np.float64
    np.testing.assert_array_equal(norms, np.linalg.norm(updates.astype(np.float64), axis=1))
    out_norms = np.linalg.norm(clipped.astype(np.float64), axis=1)
    assert np.all(out_norms <= clip_norm)  # exact, no tolerance
    inside = norms <= clip_norm
    assert np.array_equal(clipped[inside], updates[inside])  # bit-for-bit
    # Clipped rows keep their direction and land just at C (float32: within a few ulps).
    tol = 64 * np.finfo(updates.dtype).eps
    for i in np.flatnonzero(~inside):
        assert out_norms[i] >= clip_norm * (1 - tol)
        cos = float(clipped[i].astype(np.float64) @ updates[i].astype(np.float64)) / (out_norms[i] * norms[i])
        assert cos == pytest.approx(1.0, abs=1e-5)


def test_clip_golden() -> None:
    x = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], dtype=np.float64)
    clipped, norms = clip_l2(x, clip_norm=1.0)
    np.testing.assert_allclose(clipped, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]], rtol=1e-15)
    np.testing.assert_array_equal(norms, [5.0, 0.5, 0.0])


def test_clip_torch_matches_numpy() -> None:
    x = np.random.default_rng(0).normal(size=(16, 9)).astype(np.float32) * 2
    t_clipped, t_norms = clip_l2(torch.from_numpy(x), clip_norm=1.5)
    n_clipped, n_norms = clip_l2(x, clip_norm=1.5)
    assert isinstance(t_clipped, torch.Tensor) and t_clipped.dtype == torch.float32
    np.testing.assert_array_equal(t_clipped.numpy(), n_clipped)
    np.testing.assert_array_equal(t_norms, n_norms)


@pytest.mark.parametrize(
    ("updates", "clip_norm", "exc", "message"),
    [
        (np.ones((2, 3)), 0.0, ValueError, "`clip_norm` must be in (0, inf). Found 0.0."),
        (np.ones((2, 3)), -2, ValueError, "`clip_norm` must be in (0, inf). Found -2."),
        (np.ones(3), 1.0, ValueError, "`updates` must be 2-D [devices, dim]. Found shape (3,)."),
        (np.ones((2, 3), dtype=np.int32), 1.0, TypeError, "`updates` must have a float dtype. Found int32."),
        ([[1.0, 2.0]], 1.0, TypeError, "`updates` must be a numpy array or torch tensor. Found list."),
        (
            np.array([[1.0, 0.0], [np.nan, 1.0]]),
            1.0,
            ValueError,
            "`updates` rows must have a finite L2 norm. Found nan at position 1.",
        ),
    ],
)
def test_clip_errors(updates: object, clip_norm: float, exc: type[Exception], message: str) -> None:
    with pytest.raises(exc) as info:
        clip_l2(updates, clip_norm=clip_norm)  # type: ignore[call-overload]
    assert str(info.value) == message


def test_geometric_update_golden() -> None:
    # Andrew et al. 2021 §3: C·exp(−η (b̃ − γ)). All unclipped (b̃ = 1), γ = 0.5, η = 0.2 -> C·e^-0.1.
    assert geometric_clip_update(
        clip_norm=2.0, unclipped_fraction=1.0, target_unclipped_quantile=0.5, clip_learning_rate=0.2
    ) == pytest.approx(2.0 * math.exp(-0.1), rel=1e-15)
    assert (
        geometric_clip_update(clip_norm=2.0, unclipped_fraction=0.5, target_unclipped_quantile=0.5, clip_learning_rate=0.2) == 2.0
    )
    with pytest.raises(ValueError) as info:
        geometric_clip_update(clip_norm=1.0, unclipped_fraction=0.5, target_unclipped_quantile=1.5, clip_learning_rate=0.2)
    assert str(info.value) == "`target_unclipped_quantile` must be in [0, 1]. Found 1.5."


def test_count_contributions_have_sensitivity_half() -> None:
    clipper = AdaptiveClipper(initial_clip_norm=1.0, count_noise_std=0.0, expected_devices=4)
    np.testing.assert_array_equal(clipper.count_contributions(np.array([0.5, 1.0, 1.5, 3.0])), [0.5, 0.5, -0.5, -0.5])


@pytest.mark.parametrize(("gamma", "count_noise_std"), [(0.5, 0.0), (0.8, 0.0), (0.5, 2.5)])
def test_adaptive_clipper_tracks_the_target_quantile(gamma: float, count_noise_std: float) -> None:
    # Update norms ~ lognormal(0, 0.5) (the true γ-quantile is exp(0.5·Φ⁻¹(γ))); m = 50 devices per round.
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        noise = SeededGaussianNoise(seed=7)
    clipper = AdaptiveClipper(
        initial_clip_norm=10.0,
        count_noise_std=count_noise_std,
        expected_devices=50,
        target_unclipped_quantile=gamma,
        clip_learning_rate=0.2,
    )
    for _ in range(400):
        updates = rng.normal(size=(50, 8))
        updates *= (rng.lognormal(0.0, 0.5, size=50) / np.linalg.norm(updates, axis=1))[:, None]
        _, norms = clipper.clip(updates)
        clipper.update(clipper.add_count_noise(float(clipper.count_contributions(norms).sum()), noise=noise))
    from scipy.stats import norm as normal

    true_quantile = math.exp(0.5 * normal.ppf(gamma))
    recent = np.array(clipper.history[-100:])
    assert np.median(recent) == pytest.approx(true_quantile, rel=0.1)
    assert len(clipper.history) == 401 and len(clipper.unclipped_fractions) == 400
    summary = clipper.summary()
    assert summary["initial_clip_norm"] == 10.0 and summary["rounds"] == 400
    assert summary["min_clip_norm"] <= summary["final_clip_norm"] <= summary["max_clip_norm"]


def test_adaptive_clipper_event_uses_current_clip_norm() -> None:
    clipper = AdaptiveClipper(initial_clip_norm=0.7, count_noise_std=2.5, expected_devices=50)
    event = clipper.event(update_noise_multiplier=1.1, sample_rate=0.2)
    assert event == AdaptiveClipEvent(update_noise_multiplier=1.1, count_noise_std=2.5, sample_rate=0.2, clip_norm=0.7)
    assert event.effective_noise_multiplier == effective_noise_multiplier(update_noise_multiplier=1.1, count_noise_std=2.5)
    clipper.update(-25.0)  # every device clipped: b̃ = -25/50 + ½ = 0 -> C grows by e^{0.1}
    assert clipper.clip_norm == pytest.approx(0.7 * math.exp(0.1))


def test_adaptive_clipper_errors() -> None:
    with pytest.raises(ValueError) as info:
        AdaptiveClipper(initial_clip_norm=0.0, count_noise_std=1.0, expected_devices=10)
    assert str(info.value) == "`initial_clip_norm` must be in (0, inf). Found 0.0."
    with pytest.raises(ValueError) as info:
        AdaptiveClipper(initial_clip_norm=1.0, count_noise_std=-1.0, expected_devices=10)
    assert str(info.value) == "`count_noise_std` must be in [0, inf). Found -1.0."
    with pytest.raises(ValueError) as info:
        AdaptiveClipper(initial_clip_norm=1.0, count_noise_std=1.0, expected_devices=0)
    assert str(info.value) == "`expected_devices` must be in (0, inf). Found 0."
