"""Gaussian noise for the DP mechanism, and how much of it each party adds.

Generators
----------
:class:`SecureGaussianNoise` (the default) draws its uniform bits from a **ChaCha20 keystream** produced by
the ``cryptography`` package (OpenSSL), keyed with 32 bytes from :func:`secrets.token_bytes` (the OS
CSPRNG) and a random 96-bit nonce; it re-keys from ``secrets`` every 2**30 bytes (far below ChaCha20's
2**38-byte limit per key and nonce). We use a vetted stream cipher as a fast deterministic random bit
generator — we do not invent a cipher. Uniforms are 53-bit floats ``u = k·2⁻⁵³`` and Gaussians come from the
Box–Muller transform in float64: ``r = sqrt(−2 ln u₁)``, ``(r cos 2πu₂, r sin 2πu₂)`` with ``u₁ ∈ (0, 1]``.

Limits (stated, not solved):

* **Floating-point leakage** (Mironov 2012, "On Significance of the Least Significant Bits for Differential
  Privacy"): the set of floats that ``x + noise`` can take depends on ``x``, so an observer of exact
  float64 outputs can in principle distinguish neighbours; the ε from the accountant assumes real-valued
  noise. The standard fixes — snapping, or the discrete Gaussian on an integer grid (Canonne, Kamath &
  Steinke 2020) — are not implemented here. Rounding the noised sum to float32 (as the model update is)
  blurs but does not remove the effect.
* **Tail truncation**: with 53-bit uniforms, ``|z| ≤ sqrt(−2 ln 2⁻⁵³) ≈ 8.57`` standard deviations; the
  mass beyond (≈ 1e-17) is far below any δ we use.
* Not thread-safe: give each thread its own generator.

:class:`SeededGaussianNoise` (numpy PCG64 with a seed) is reproducible, for simulations and tests. It is
**not** secure — an attacker who learns the seed removes the noise — so it must be chosen explicitly, warns
with :class:`~privrec.sdk.privacy.errors.PrivacyWarning`, and is recorded as ``secure_noise: false`` in the
ledger.

How much noise
--------------
``central`` mode: the trusted server adds ``N(0, (Z·C)²)`` to the *sum* of the clipped updates
(:func:`central_noise_std`).

``distributed`` mode: each of ``n`` devices adds ``N(0, (Z·C)²/n)`` to its clipped update before secure
aggregation, so the sum of n shares carries ``Z·C`` (:func:`distributed_noise_std`). **Dropouts
under-noise the sum**: secure aggregation removes a dropped device's update *and its noise share*, so
with k < n survivors the sum carries only ``Z·C·sqrt(k/n)`` — effective multiplier ``Z·sqrt(k/n)``
(:func:`distributed_effective_noise_multiplier`). The conservative choice, which we recommend: set
``n`` to the **smallest number of contributions the round will accept** (the secure-aggregation threshold t),
abort rounds with fewer survivors, and record the effective multiplier ``Z·sqrt(k/t) ≥ Z`` of each round
that ran. The price is over-noising by ``sqrt(k/t)`` when more than t devices survive. Devices that
collude with the server can subtract their own shares (c colluders leave ``Z·sqrt((k−c)/t)``); budget for
them by raising t. Continuous noise added before fixed-point secure aggregation is also subject to the
floating-point caveat above (the distributed discrete Gaussian of Kairouz, Liu & Steinke 2021 is the fix).
"""

from __future__ import annotations

import math
import secrets
import warnings
from typing import Protocol, runtime_checkable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from numpy.typing import NDArray

from ..validation import check_positive_int
from ._validate import check_clip_norm, check_noise_multiplier, check_nonnegative
from .errors import PrivacyWarning

__all__ = [
    "NoiseGenerator",
    "SecureGaussianNoise",
    "SeededGaussianNoise",
    "central_noise_std",
    "distributed_effective_noise_multiplier",
    "distributed_noise_std",
    "make_noise_generator",
]

_REKEY_BYTES = 2**30
_TWO_POW_M53 = 2.0**-53


def _check_shape(shape: int | tuple[int, ...]) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    for i, d in enumerate(dims):
        if isinstance(d, bool) or not isinstance(d, int | np.integer):
            raise TypeError(f"`shape` must contain ints. Found {type(d).__name__} at position {i}.")
        if d < 0:
            raise ValueError(f"`shape` must contain sizes >= 0. Found {d} at position {i}.")
    return tuple(int(d) for d in dims)


@runtime_checkable
class NoiseGenerator(Protocol):
    """A source of Gaussian noise. ``secure`` says whether it is fit to protect users (goes to the ledger)."""

    @property
    def secure(self) -> bool:
        """True for a cryptographically secure source."""
        ...

    def normal(self, shape: int | tuple[int, ...], *, std: float) -> NDArray[np.float64]:
        """``float64`` array of the given shape with i.i.d. ``N(0, std²)`` entries (``std ≥ 0``)."""
        ...


class SecureGaussianNoise:
    """Gaussian noise from a ChaCha20 keystream keyed by the OS CSPRNG (see the module docstring).

    Example:
        >>> noise = SecureGaussianNoise()
        >>> noise.normal((2, 3), std=0.5).shape
        (2, 3)
    """

    def __init__(self) -> None:
        self._rekey()

    def _rekey(self) -> None:
        key = secrets.token_bytes(32)
        # cryptography's 16-byte ChaCha20 nonce = 32-bit little-endian block counter (0) + 96-bit nonce.
        nonce = bytes(4) + secrets.token_bytes(12)
        self._stream = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()
        self._used = 0

    @property
    def secure(self) -> bool:
        """Always True."""
        return True

    def _uint53(self, count: int) -> NDArray[np.uint64]:
        nbytes = 8 * count
        if self._used + nbytes > _REKEY_BYTES:
            self._rekey()
        self._used += nbytes
        raw = self._stream.update(bytes(nbytes))
        return np.frombuffer(raw, dtype="<u8") >> np.uint64(11)

    def uniform(self, count: int) -> NDArray[np.float64]:
        """``count`` uniforms in [0, 1) with 53 random bits each."""
        (n,) = _check_shape(count)
        return self._uint53(n).astype(np.float64) * _TWO_POW_M53

    def normal(self, shape: int | tuple[int, ...], *, std: float) -> NDArray[np.float64]:
        """``float64`` array with i.i.d. ``N(0, std²)`` entries, by Box–Muller from 53-bit uniforms."""
        dims = _check_shape(shape)
        s = check_nonnegative(std, "std")
        n = math.prod(dims)
        pairs = (n + 1) // 2
        bits = self._uint53(2 * pairs)
        u1 = (bits[:pairs].astype(np.float64) + 1.0) * _TWO_POW_M53  # (0, 1]: log is finite
        u2 = bits[pairs:].astype(np.float64) * _TWO_POW_M53  # [0, 1)
        r = np.sqrt(-2.0 * np.log(u1))
        theta = 2.0 * np.pi * u2
        z = np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:n]
        return (z * s).reshape(dims)


class SeededGaussianNoise:
    """Reproducible Gaussian noise (numpy PCG64) for simulations and tests. **Not secure**: warns on creation.

    Args:
        seed: the seed (an int ≥ 0).
    """

    def __init__(self, *, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"`seed` must be an int. Found {type(seed).__name__}.")
        if seed < 0:
            raise ValueError(f"`seed` must be >= 0. Found {seed}.")
        warnings.warn(
            "SeededGaussianNoise is reproducible and NOT secure: anyone who learns the seed can remove the "
            "noise. Use it for simulations and tests only; the ledger records secure_noise=false.",
            PrivacyWarning,
            stacklevel=2,
        )
        self._seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    @property
    def secure(self) -> bool:
        """Always False."""
        return False

    @property
    def seed(self) -> int:
        """The seed this generator was created with."""
        return self._seed

    def normal(self, shape: int | tuple[int, ...], *, std: float) -> NDArray[np.float64]:
        """``float64`` array with i.i.d. ``N(0, std²)`` entries from the seeded PCG64 stream."""
        dims = _check_shape(shape)
        s = check_nonnegative(std, "std")
        return self._rng.standard_normal(dims) * s


def make_noise_generator(*, secure: bool = True, seed: int | None = None) -> NoiseGenerator:
    """The secure generator (default), or — only with ``secure=False`` and a ``seed`` — the seeded one.

    Raises:
        ValueError: if ``secure=True`` with a seed (a seeded source is never secure), or ``secure=False``
            without one.
    """
    if not isinstance(secure, bool):
        raise TypeError(f"`secure` must be a bool. Found {type(secure).__name__}.")
    if secure:
        if seed is not None:
            raise ValueError(
                f"`seed` must be None when secure=True (a seeded source is not secure; pass secure=False for "
                f"reproducible simulations). Found {seed}."
            )
        return SecureGaussianNoise()
    if seed is None:
        raise ValueError("`seed` must be an int when secure=False (the insecure generator is the seeded one). Found None.")
    return SeededGaussianNoise(seed=seed)


def central_noise_std(*, noise_multiplier: float, clip_norm: float) -> float:
    """Std of the noise the trusted server adds to the sum in ``central`` mode: ``Z·C``."""
    return check_noise_multiplier(noise_multiplier) * check_clip_norm(clip_norm)


def distributed_noise_std(*, noise_multiplier: float, clip_norm: float, expected_devices: int) -> float:
    """Std of one device's noise share in ``distributed`` mode: ``Z·C / sqrt(n)``.

    ``n`` devices' shares sum to std ``Z·C``. Choose ``expected_devices`` = the smallest number of
    contributions a round accepts (the secure-aggregation threshold), so that dropouts never leave the
    sum with less than ``Z·C`` (module docstring, "How much noise").
    """
    n = check_positive_int(expected_devices, "expected_devices")
    return central_noise_std(noise_multiplier=noise_multiplier, clip_norm=clip_norm) / math.sqrt(n)


def distributed_effective_noise_multiplier(*, noise_multiplier: float, expected_devices: int, surviving_devices: int) -> float:
    """The multiplier the sum carries when ``surviving_devices`` of the shares made it: ``Z·sqrt(k/n)``.

    Record this (not the planned Z) in the round's
    :class:`~privrec.sdk.privacy.events.DPRoundEvent`. It is below Z exactly when k < n (under-noised).
    """
    z = check_noise_multiplier(noise_multiplier)
    n = check_positive_int(expected_devices, "expected_devices")
    k = check_positive_int(surviving_devices, "surviving_devices")
    return z * math.sqrt(k / n)
