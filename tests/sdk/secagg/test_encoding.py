"""Fixed-point encoding mod 2^32: the choice of f, exact sums without wrap-around, the error bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.secagg import FixedPointEncoder


def test_golden_frac_bits() -> None:
    assert FixedPointEncoder(clip_range=1.0, max_clients=100).frac_bits == 24
    assert FixedPointEncoder(clip_range=1.0, max_clients=1).frac_bits == 30
    assert FixedPointEncoder(clip_range=0.1, max_clients=1000).frac_bits == 24
    assert FixedPointEncoder(clip_range=1e6, max_clients=10_000).frac_bits == -3


@settings(max_examples=200, deadline=None)
@given(r=st.floats(1e-6, 1e9), n=st.integers(1, 1_000_000))
def test_frac_bits_is_the_largest_that_cannot_wrap(r: float, n: int) -> None:
    f = FixedPointEncoder(clip_range=r, max_clients=n).frac_bits
    assert n * (r * 2.0**f + 0.5) <= 2**31 - 1
    assert n * (r * 2.0 ** (f + 1) + 0.5) > 2**31 - 1


@pytest.mark.parametrize("n", [1, 7, 100])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_extreme_sums_do_not_wrap(n: int, sign: float) -> None:
    enc = FixedPointEncoder(clip_range=0.5, max_clients=n)
    x = np.full((n, 4), sign * 10.0)  # clipped to ±0.5
    total = enc.encode(x).sum(axis=0, dtype=np.uint32)
    np.testing.assert_allclose(enc.decode(total), sign * 0.5 * n, atol=enc.error_bound(n))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), r=st.floats(1e-3, 1e3))
def test_decoded_sum_within_error_bound(seed: int, n: int, r: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5 * r, 1.5 * r, size=(n, 16))
    enc = FixedPointEncoder(clip_range=r, max_clients=n)
    total = np.zeros(16, dtype=np.uint32)
    for row in x:
        total += enc.encode(row)  # uint32 arithmetic wraps mod 2^32
    err = np.abs(enc.decode(total) - np.clip(x, -r, r).sum(axis=0))
    assert err.max() <= enc.error_bound(n) * (1 + 1e-9)


def test_encoding_is_twos_complement() -> None:
    enc = FixedPointEncoder(clip_range=1.0, max_clients=100)
    step = 2.0**-24
    np.testing.assert_array_equal(
        enc.encode(np.array([0.0, step, -step, 1.0, -1.0])),
        np.array([0, 1, 2**32 - 1, 2**24, 2**32 - 2**24], dtype=np.uint32),
    )
    assert enc.error_bound() == 2.0**-25


def test_invalid_input_raises() -> None:
    with pytest.raises(ValueError, match=r"`clip_range` must be finite and > 0. Found 0.0."):
        FixedPointEncoder(clip_range=0.0, max_clients=3)
    with pytest.raises(TypeError, match="`clip_range` must be a float"):
        FixedPointEncoder(clip_range="1", max_clients=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`max_clients` must be > 0. Found 0."):
        FixedPointEncoder(clip_range=1.0, max_clients=0)
    enc = FixedPointEncoder(clip_range=1.0, max_clients=3)
    with pytest.raises(ValueError, match=r"`values` must be finite. Found nan at position 1."):
        enc.encode(np.array([0.0, np.nan]))
    with pytest.raises(TypeError, match="`values` must be a numpy array"):
        enc.encode([0.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`encoded_sum` must be a uint32"):
        enc.decode(np.zeros(3, dtype=np.int32))  # type: ignore[arg-type]
