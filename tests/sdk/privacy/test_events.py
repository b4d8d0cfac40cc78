"""Tests for privrec.sdk.privacy.events: Andrew et al. 2021 Thm 1 arithmetic, immutability, round trips."""

from __future__ import annotations

import dataclasses
import math

import pytest
from dp_accounting import dp_event
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.privacy import (
    AdaptiveClipEvent,
    DPRoundEvent,
    NonPrivateRoundEvent,
    PrivacyWarning,
    effective_noise_multiplier,
    event_from_dict,
    update_noise_multiplier,
)


def test_effective_noise_multiplier_golden() -> None:
    # z = (z_Δ^-2 + (2σ_b)^-2)^-1/2 with z_Δ = 1.2, σ_b = 2: (1/1.44 + 1/16)^-1/2 = 1.1493915...
    assert effective_noise_multiplier(update_noise_multiplier=1.2, count_noise_std=2.0) == pytest.approx(
        1.1493915422653815, rel=1e-14
    )
    # Andrew et al.'s setting: z = 1, σ_b = m/20 with m = 100 devices -> z_Δ = (1 - 1/100)^-1/2 = 1.00504
    assert update_noise_multiplier(noise_multiplier=1.0, count_noise_std=5.0) == pytest.approx((1 - 0.01) ** -0.5, rel=1e-14)
    assert effective_noise_multiplier(update_noise_multiplier=0.0, count_noise_std=2.0) == 0.0
    assert effective_noise_multiplier(update_noise_multiplier=1.0, count_noise_std=0.0) == 0.0
    assert update_noise_multiplier(noise_multiplier=0.0, count_noise_std=1.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(z=st.floats(min_value=1e-3, max_value=100.0), ratio=st.floats(min_value=0.51, max_value=1e4))
def test_update_noise_multiplier_inverts_effective(z: float, ratio: float) -> None:
    sigma_b = z * ratio  # 2σ_b > z
    z_delta = update_noise_multiplier(noise_multiplier=z, count_noise_std=sigma_b)
    assert z_delta >= z  # the update needs at least as much noise as the total
    back = effective_noise_multiplier(update_noise_multiplier=z_delta, count_noise_std=sigma_b)
    assert back == pytest.approx(z, rel=1e-9)


def test_update_noise_multiplier_refuses_too_little_count_noise() -> None:
    with pytest.raises(ValueError) as info:
        update_noise_multiplier(noise_multiplier=1.0, count_noise_std=0.5)
    assert str(info.value) == (
        "`count_noise_std` must be > noise_multiplier / 2 = 0.5 so that the clipped-count query leaves budget "
        "for the update (Andrew et al. 2021, Theorem 1). Found 0.5."
    )


def test_events_are_frozen_and_keyword_only() -> None:
    e = DPRoundEvent(noise_multiplier=1.0, sample_rate=0.1, clip_norm=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.noise_multiplier = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        DPRoundEvent(1.0, 0.1, 1.0)  # type: ignore[call-arg]


def test_to_dp_event() -> None:
    e = DPRoundEvent(noise_multiplier=1.5, sample_rate=0.1, clip_norm=2.0, rounds=7)
    assert e.to_dp_event() == dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.1, dp_event.GaussianDpEvent(1.5)), 7)
    off = NonPrivateRoundEvent(sample_rate=0.2, rounds=3)
    assert off.to_dp_event() == dp_event.SelfComposedDpEvent(dp_event.NonPrivateDpEvent(), 3)
    assert off.effective_noise_multiplier == 0.0 and off.mechanism == "none"


@pytest.mark.parametrize(
    "event",
    [
        DPRoundEvent(noise_multiplier=1.0, sample_rate=0.01, clip_norm=0.5, rounds=3),
        AdaptiveClipEvent(update_noise_multiplier=1.1, count_noise_std=2.5, sample_rate=0.2, clip_norm=0.7),
        NonPrivateRoundEvent(sample_rate=1.0, rounds=2),
    ],
)
def test_event_dict_round_trip(event: DPRoundEvent | AdaptiveClipEvent | NonPrivateRoundEvent) -> None:
    data = event.to_dict()
    assert data["type"] == event.kind
    assert event_from_dict(data) == event


def test_event_from_dict_errors() -> None:
    with pytest.raises(ValueError) as info:
        event_from_dict({"type": "laplace"})
    assert str(info.value) == ("`type` must be one of ['adaptive_clip_round', 'dp_round', 'non_private_round']. Found 'laplace'.")
    with pytest.raises(ValueError) as info:
        event_from_dict({"type": "non_private_round", "sample_rate": 0.1})
    assert str(info.value) == "`non_private_round` event must have fields ['rounds', 'sample_rate']. Found ['sample_rate']."


def test_same_release_and_with_rounds() -> None:
    a = AdaptiveClipEvent(update_noise_multiplier=1.1, count_noise_std=2.5, sample_rate=0.2, clip_norm=0.7)
    assert a.same_release(a.with_rounds(9))
    assert not a.same_release(dataclasses.replace(a, clip_norm=0.8))
    assert not a.same_release(DPRoundEvent(noise_multiplier=1.1, sample_rate=0.2, clip_norm=0.7))
    with pytest.raises(ValueError, match=r"^`rounds` must be > 0. Found 0.$"):
        a.with_rounds(0)


def test_zero_noise_event_warns() -> None:
    with pytest.warns(PrivacyWarning, match="not private"):
        AdaptiveClipEvent(update_noise_multiplier=1.0, count_noise_std=0.0, sample_rate=0.2, clip_norm=0.7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 1.3}, "`sample_rate` must be in (0, 1]. Found 1.3."),
        ({"clip_norm": 0.0}, "`clip_norm` must be in (0, inf). Found 0.0."),
        ({"clip_norm": -1.0}, "`clip_norm` must be in (0, inf). Found -1.0."),
        ({"clip_norm": math.inf}, "`clip_norm` must be in (0, inf). Found inf."),
        ({"noise_multiplier": -1.0}, "`noise_multiplier` must be in [0, inf). Found -1.0."),
        ({"rounds": 0}, "`rounds` must be > 0. Found 0."),
    ],
)
def test_dp_round_event_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"noise_multiplier": 1.0, "sample_rate": 0.1, "clip_norm": 1.0, **kwargs}
    with pytest.raises(ValueError) as info:
        DPRoundEvent(**args)  # type: ignore[arg-type]
    assert str(info.value) == message
