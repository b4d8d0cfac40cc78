"""Tests for privrec.sdk.privacy.noise: calibrated std (statistical tests), generator selection, noise shares.

Statistical tests use a false-alarm rate of ALPHA = 1e-6 per test on N = 200,000 samples: a correct generator
fails one of them about once in a million runs. The sample variance's relative std is sqrt(2/N) ≈ 0.32% and the
two-sided 1e-6 band is ±4.9 of those ≈ ±1.55% of σ² (≈ ±0.8% of σ): a std 2% too large (σ² +4.04%, 7.9 of those
standard errors outside the band) is rejected except with probability < 1e-14.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from privrec.sdk.privacy import (
    NoiseGenerator,
    PrivacyWarning,
    SecureGaussianNoise,
    SeededGaussianNoise,
    central_noise_std,
    distributed_effective_noise_multiplier,
    distributed_noise_std,
    make_noise_generator,
)

ALPHA = 1e-6
N = 200_000


def _seeded(seed: int = 0) -> SeededGaussianNoise:
    with pytest.warns(PrivacyWarning, match="NOT secure"):
        return SeededGaussianNoise(seed=seed)


def assert_gaussian(sample: NDArray[np.float64], std: float) -> None:
    """Two-sided tests at ALPHA: variance (χ²), mean (z), shape (Kolmogorov–Smirnov)."""
    n = sample.size
    chi2 = (n - 1) * float(np.var(sample, ddof=1)) / std**2
    lo, hi = stats.chi2.ppf(ALPHA / 2, n - 1), stats.chi2.ppf(1 - ALPHA / 2, n - 1)
    assert lo <= chi2 <= hi, f"sample std {np.std(sample):.6g} vs calibrated {std:.6g}"
    z = float(np.mean(sample)) / (std / math.sqrt(n))
    assert abs(z) <= stats.norm.ppf(1 - ALPHA / 2)
    assert stats.kstest(sample / std, "norm").pvalue > ALPHA


@pytest.mark.parametrize("secure", [True, False])
@pytest.mark.parametrize("std", [0.37, 2.5])
def test_noise_has_the_calibrated_std(secure: bool, std: float) -> None:
    gen: NoiseGenerator = SecureGaussianNoise() if secure else _seeded(3)
    sample = gen.normal((N // 4, 4), std=std)
    assert sample.shape == (N // 4, 4) and sample.dtype == np.float64
    assert_gaussian(sample.ravel(), std)


def test_statistical_test_rejects_a_wrong_std() -> None:
    # The test above can fail: 2% too much noise is rejected (module docstring).
    sample = SecureGaussianNoise().normal(N, std=1.02)
    with pytest.raises(AssertionError):
        assert_gaussian(sample, 1.0)


def test_odd_sizes_and_zero_std() -> None:
    gen = SecureGaussianNoise()
    assert gen.normal(7, std=1.0).shape == (7,)
    assert gen.normal((0, 3), std=1.0).shape == (0, 3)
    np.testing.assert_array_equal(gen.normal((2, 2), std=0.0), np.zeros((2, 2)))
    u = gen.uniform(N)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > ALPHA


def test_secure_generators_are_independent_and_seeded_are_reproducible() -> None:
    a, b = SecureGaussianNoise().normal(64, std=1.0), SecureGaussianNoise().normal(64, std=1.0)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(_seeded(5).normal(64, std=1.0), _seeded(5).normal(64, std=1.0))
    assert SecureGaussianNoise().secure is True and _seeded().secure is False


def test_make_noise_generator_selection() -> None:
    assert isinstance(make_noise_generator(), SecureGaussianNoise)
    with pytest.warns(PrivacyWarning):
        gen = make_noise_generator(secure=False, seed=11)
    assert isinstance(gen, SeededGaussianNoise) and gen.seed == 11
    with pytest.raises(ValueError) as info:
        make_noise_generator(secure=True, seed=3)
    assert str(info.value) == (
        "`seed` must be None when secure=True (a seeded source is not secure; pass secure=False for "
        "reproducible simulations). Found 3."
    )
    with pytest.raises(ValueError) as info:
        make_noise_generator(secure=False)
    assert str(info.value) == "`seed` must be an int when secure=False (the insecure generator is the seeded one). Found None."


def test_noise_argument_errors() -> None:
    gen = SecureGaussianNoise()
    with pytest.raises(ValueError) as info:
        gen.normal(3, std=-1.0)
    assert str(info.value) == "`std` must be in [0, inf). Found -1.0."
    with pytest.raises(ValueError) as info:
        gen.normal((2, -1), std=1.0)
    assert str(info.value) == "`shape` must contain sizes >= 0. Found -1 at position 1."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        with pytest.raises(ValueError) as info:
            SeededGaussianNoise(seed=-1)
    assert str(info.value) == "`seed` must be >= 0. Found -1."


def test_central_and_distributed_std_golden() -> None:
    assert central_noise_std(noise_multiplier=1.2, clip_norm=0.5) == pytest.approx(0.6)
    assert distributed_noise_std(noise_multiplier=1.2, clip_norm=0.5, expected_devices=9) == pytest.approx(0.2)
    assert distributed_effective_noise_multiplier(noise_multiplier=1.2, expected_devices=9, surviving_devices=4) == (
        pytest.approx(0.8)
    )
    with pytest.raises(ValueError) as info:
        distributed_noise_std(noise_multiplier=1.0, clip_norm=1.0, expected_devices=0)
    assert str(info.value) == "`expected_devices` must be > 0. Found 0."


def test_distributed_shares_sum_to_the_central_std_and_dropouts_under_noise() -> None:
    z, c, n = 1.1, 0.8, 10
    share = distributed_noise_std(noise_multiplier=z, clip_norm=c, expected_devices=n)
    gen = SecureGaussianNoise()
    shares = gen.normal((n, N), std=share)  # one row per device, N coordinates
    assert_gaussian(shares.sum(axis=0), central_noise_std(noise_multiplier=z, clip_norm=c))
    # 3 devices drop after adding noise: the sum of the 7 survivors carries only Z·sqrt(7/10)·C.
    z_eff = distributed_effective_noise_multiplier(noise_multiplier=z, expected_devices=n, surviving_devices=7)
    assert z_eff < z
    assert_gaussian(shares[:7].sum(axis=0), z_eff * c)


def test_chacha20_nonce_layout_matches_rfc7539() -> None:
    # SecureGaussianNoise builds cryptography's 16-byte ChaCha20 nonce as 4-byte LE block counter + 96-bit nonce.
    # RFC 7539 §2.4.2 test vector (key 00..1f, nonce 00000000 0000004a 00000000, counter 1).
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    nonce = (1).to_bytes(4, "little") + bytes.fromhex("000000000000004a00000000")
    enc = Cipher(algorithms.ChaCha20(bytes(range(32)), nonce), mode=None).encryptor()
    plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
    assert enc.update(plaintext)[:16].hex() == "6e2e359a2568f98041ba0728dd0d6981"
