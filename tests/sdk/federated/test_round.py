"""The one end-of-round step: setup rules (denominator, noise shares, headroom, events) and finish_round."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.federated import (
    DeviceStats,
    DeviceUpdate,
    FedAvgM,
    RoundSetup,
    aggregation_input,
    cohort_denominator,
    finish_round,
    split_aggregate,
)
from privrec.sdk.privacy import (
    AdaptiveClipEvent,
    AdaptiveClipper,
    DPRoundEvent,
    NonPrivateRoundEvent,
    PrivacyWarning,
    SeededGaussianNoise,
)


def _noise(seed: int = 0) -> SeededGaussianNoise:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        return SeededGaussianNoise(seed=seed)


def _setup(**kw: object) -> RoundSetup:
    values: dict[str, object] = {"dp_mode": "central", "noise_multiplier": 1.0, "clip_norm": 0.5, "sample_rate": 0.2,
                                 "denominator": 10.0, "local_lr": 1.0}
    values.update(kw)
    return RoundSetup(**values)  # type: ignore[arg-type]


def test_denominator_is_the_expected_cohort() -> None:
    assert cohort_denominator(sample_rate=0.2, population=50) == 10.0
    assert cohort_denominator(sample_rate=0.01, population=3) == 1.0  # never below one device
    with pytest.raises(ValueError, match="`population` must be"):
        cohort_denominator(sample_rate=0.2, population=0)


def test_noise_shares_headroom_and_events_per_mode() -> None:
    central = _setup()
    assert (central.device_noise_std, central.clip_range) == (0.0, 0.5)
    assert central.event() == DPRoundEvent(noise_multiplier=1.0, sample_rate=0.2, clip_norm=0.5)
    dist = _setup(dp_mode="distributed", min_survivors=4)
    assert dist.device_noise_std == pytest.approx(0.5 / 2)  # Z·C/sqrt(n)
    assert dist.clip_range == pytest.approx(0.5 + 9 * 0.25)  # C + 9σ
    assert dist.event() == DPRoundEvent(noise_multiplier=1.0, sample_rate=0.2, clip_norm=0.5)  # states Z
    adaptive = _setup(dp_mode="distributed", min_survivors=4, count_noise_std=2.0)
    assert adaptive.device_count_noise_std == pytest.approx(1.0)
    assert adaptive.clip_range == pytest.approx(max(0.5 + 9 * 0.25, 0.5 + 9 * 1.0))
    assert isinstance(adaptive.event(), AdaptiveClipEvent)
    off = _setup(dp_mode="off", noise_multiplier=0.0)
    assert off.event() == NonPrivateRoundEvent(sample_rate=0.2)
    assert RoundSetup.from_dict(adaptive.to_dict()) == adaptive
    with pytest.raises(ValueError, match="`noise_multiplier` must be 0 when dp_mode='off'"):
        _setup(dp_mode="off")
    with pytest.raises(ValueError, match=r"round setup: missing key\(s\) \['denominator'\]"):
        RoundSetup.from_dict({k: v for k, v in central.to_dict().items() if k != "denominator"})
    with pytest.raises(ValueError, match=r"unknown round setup config keys \['z'\]"):
        RoundSetup.from_dict({**central.to_dict(), "z": 1})


def test_finish_round_central_divides_the_noised_sum_by_the_denominator() -> None:
    setup = _setup()
    params = np.zeros(5, np.float32)
    total = np.arange(5, dtype=np.float64)
    out = finish_round(params, total, setup=setup, survivors=3, optimizer=FedAvgM(lr=1.0), noise=_noise(1))
    expected_noise = _noise(1).normal(5, std=0.5)
    np.testing.assert_allclose(params, (total + expected_noise) / 10.0, rtol=1e-6)
    assert out.applied and out.event == setup.event() and out.next_clip_norm == 0.5


def test_distributed_round_below_min_survivors_releases_nothing() -> None:
    setup = _setup(dp_mode="distributed", min_survivors=5)
    params = np.ones(3, np.float32)
    out = finish_round(params, np.ones(3), setup=setup, survivors=4, optimizer=FedAvgM(lr=1.0), noise=_noise())
    assert (out.applied, out.event) == (False, None)
    np.testing.assert_array_equal(params, np.ones(3, np.float32))


def test_finish_round_refuses_a_corrupt_aggregate_and_a_mismatched_clipper() -> None:
    params = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"`total` must have shape \(3,\)\. Found \(4,\)\."):
        finish_round(params, np.zeros(4), setup=_setup(), survivors=2, optimizer=FedAvgM(lr=1.0), noise=_noise())
    with pytest.raises(ValueError, match="`total` must be finite"):
        finish_round(params, np.full(3, np.inf), setup=_setup(), survivors=2, optimizer=FedAvgM(lr=1.0), noise=_noise())
    with pytest.raises(ValueError, match="`clipper` must be given exactly when"):
        finish_round(params, np.zeros(3), setup=_setup(count_noise_std=2.0), survivors=2, optimizer=FedAvgM(lr=1.0),
                     noise=_noise())
    clipper = AdaptiveClipper(initial_clip_norm=0.7, count_noise_std=2.0, expected_devices=10.0)
    with pytest.raises(ValueError, match=r"the clipper's C \(0.7\) is not the round's C \(0.5\)"):
        finish_round(params, np.zeros(3), setup=_setup(count_noise_std=2.0), survivors=2,
                     optimizer=FedAvgM(lr=1.0), noise=_noise(), clipper=clipper)


def test_adaptive_round_moves_the_clip_norm() -> None:
    setup = _setup(count_noise_std=0.0)
    clipper = AdaptiveClipper(initial_clip_norm=0.5, count_noise_std=0.0, expected_devices=10.0,
                              target_unclipped_quantile=0.5, clip_learning_rate=0.2)
    out = finish_round(np.zeros(2, np.float32), np.zeros(2), setup=setup, survivors=10, optimizer=FedAvgM(lr=1.0),
                       noise=_noise(), clipper=clipper, count_sum=5.0)  # every device unclipped: b̃ = 1
    assert out.next_clip_norm == pytest.approx(0.5 * math.exp(-0.2 * (1.0 - 0.5)))


@settings(max_examples=30, deadline=None)
@given(adaptive=st.booleans(), count=st.floats(-0.5, 0.5))
def test_aggregation_input_and_split_are_inverse(adaptive: bool, count: float) -> None:
    update = DeviceUpdate(vector=np.float32([1.0, -2.0]), count_report=count, stats=DeviceStats(1.0, False, 0.0))
    x = aggregation_input(update, adaptive=adaptive)
    assert x.shape == ((3,) if adaptive else (2,))
    total, c = split_aggregate(x.astype(np.float64), adaptive=adaptive)
    np.testing.assert_array_equal(total, [1.0, -2.0])
    assert c == (pytest.approx(count) if adaptive else 0.0)
