"""Tests for privrec.sdk.privacy.calibrate: the calibrated Z never exceeds the target ε, and is near-minimal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.privacy import calibrate_noise_multiplier, compute_epsilon_rdp

RTOL = 1e-3


# Each calibration makes ~10 RDP evaluations of 0.1-0.4 s (dp_accounting's fractional orders), so few examples;
# q up to 0.3 (federated rates) here, q = 1 in the golden test below.
@settings(max_examples=6, deadline=None)
@given(
    target=st.floats(min_value=0.2, max_value=20.0),
    q=st.floats(min_value=1e-3, max_value=0.3),
    t=st.integers(min_value=1, max_value=3000),
    delta=st.sampled_from([1e-7, 1e-5, 1e-3]),
)
def test_calibrated_noise_never_exceeds_target_and_is_near_minimal(target: float, q: float, t: int, delta: float) -> None:
    z = calibrate_noise_multiplier(target_epsilon=target, sample_rate=q, rounds=t, delta=delta, rtol=RTOL)
    assert compute_epsilon_rdp(noise_multiplier=z, sample_rate=q, rounds=t, delta=delta) <= target
    # Near-minimal: a little less noise would exceed the target (unless Z hit the search floor).
    if z > 2.0**-19:
        smaller = z / (1.0 + 2.0 * RTOL)
        assert compute_epsilon_rdp(noise_multiplier=smaller, sample_rate=q, rounds=t, delta=delta) > target


def test_calibration_golden() -> None:
    # Z for ε = 2 at q = 0.01, T = 1000, δ = 1e-5 (stated RDP ε 1.99982 at this Z; ε(1.0) = 2.1014 > 2).
    z = calibrate_noise_multiplier(target_epsilon=2.0, sample_rate=0.01, rounds=1000, delta=1e-5)
    assert z == pytest.approx(1.02233, rel=2e-4)
    assert compute_epsilon_rdp(noise_multiplier=z, sample_rate=0.01, rounds=1000, delta=1e-5) <= 2.0
    # Full participation (q = 1): 10 rounds of the plain Gaussian mechanism within ε = 15.
    z1 = calibrate_noise_multiplier(target_epsilon=15.0, sample_rate=1.0, rounds=10, delta=1e-5)
    assert compute_epsilon_rdp(noise_multiplier=z1, sample_rate=1.0, rounds=10, delta=1e-5) <= 15.0
    assert compute_epsilon_rdp(noise_multiplier=z1 * (1 - 1e-3), sample_rate=1.0, rounds=10, delta=1e-5) > 15.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_epsilon": 0.0}, "`target_epsilon` must be in (0, inf). Found 0.0."),
        ({"target_epsilon": -1}, "`target_epsilon` must be in (0, inf). Found -1."),
        ({"sample_rate": 1.3}, "`sample_rate` must be in (0, 1]. Found 1.3."),
        ({"rounds": -3}, "`rounds` must be > 0. Found -3."),
        ({"delta": 2.0}, "`delta` must be in (0, 1). Found 2.0."),
        ({"rtol": 0.0}, "`rtol` must be in (0, inf). Found 0.0."),
    ],
)
def test_calibration_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"target_epsilon": 1.0, "sample_rate": 0.1, "rounds": 10, "delta": 1e-5, **kwargs}
    with pytest.raises(ValueError) as info:
        calibrate_noise_multiplier(**args)  # type: ignore[arg-type]
    assert str(info.value) == message
