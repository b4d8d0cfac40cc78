"""Shamir t-out-of-n secret sharing over the prime field GF(2^31 - 1), vectorised with numpy.

Shamir 1979 ("How to share a secret"); used in Bonawitz et al. 2017, §3.1 and Round 1 of Fig. 4.

A secret of ``B`` bytes (B even; 32 for the protocol's keys and seeds) is cut into ``B / 2`` chunks of
16 bits (little endian); each chunk is an element of GF(p), p = 2^31 - 1 (a Mersenne prime), and is
shared with its own independent random polynomial of degree ``t - 1``. A share for holder ``x`` is the
vector of the ``B / 2`` polynomial values at ``x``; on the wire it is ``B / 2`` little-endian uint32
(``2 * B`` bytes). Holder indices ``x`` are the protocol's client ids and must be distinct and in
[1, p - 1] (x = 0 would reveal the secret).

All arithmetic is uint64 numpy: operands are < 2^31, so a product is < 2^62 and a product plus an
operand never overflows. Sharing evaluates every polynomial with Horner's rule, vectorised over secrets,
chunks and holders; reconstruction computes the Lagrange coefficients at 0 for every secret's holder
set at once (batched modular inverse by Fermat's little theorem) — O(S·t²) numpy work for S secrets.

Guarantees: any ``t`` shares reconstruct the secret exactly; any ``t - 1`` shares are uniformly
distributed whatever the secret (perfect secrecy; tested exhaustively over a small field).

Integrity: Shamir shares of one secret form a Reed–Solomon codeword of dimension t (McEliece & Sarwate
1981, "On sharing secrets and Reed–Solomon codes"), so ``m > t`` shares carry redundancy ``m - t``:
:func:`consistent` interpolates the polynomial through the first ``t`` and checks that the other ``m - t``
lie on it, which detects any set of up to ``m - t`` wrong shares. With exactly ``t`` shares there is no
redundancy: ``t`` shares off one polynomial reconstruct a wrong value undetected (a reconstructed chunk
>= 2^16 still proves them inconsistent and raises ``ValueError``). Which share is wrong is not
identified; the protocol attributes wrong shares through key commitments (:mod:`.sealed`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CHUNK_BITS",
    "PRIME",
    "consistent",
    "interpolate",
    "reconstruct",
    "reconstruct_secret",
    "share",
    "share_bytes",
    "share_from_bytes",
    "share_secret",
]

PRIME = 2**31 - 1
CHUNK_BITS = 16

U64 = NDArray[np.uint64]


def _random_elements(shape: tuple[int, ...], prime: int) -> U64:
    """Uniform elements of GF(prime) from ``secrets`` (rejection sampling: no modulo bias)."""
    size = int(np.prod(shape))
    bits = max(1, (prime - 1).bit_length())
    mask = np.uint64((1 << bits) - 1)
    out = np.empty(0, dtype=np.uint64)
    while out.size < size:
        need = size - out.size
        draw = np.frombuffer(secrets.token_bytes(8 * (need + need // 2 + 8)), dtype="<u8") & mask
        out = np.concatenate([out, draw[draw < prime]])
    return out[:size].reshape(shape)


def _evaluate(coefficients: U64, xs: U64, prime: int) -> U64:
    """Evaluate polynomials at ``xs`` by Horner's rule.

    ``coefficients[..., j, c]`` is the coefficient of x^j of chunk ``c``'s polynomial, shape
    ``[S, t, C]``; ``xs`` has shape ``[H]``. Returns ``[S, H, C]``.
    """
    p = np.uint64(prime)
    t = coefficients.shape[1]
    x = xs.astype(np.uint64)[None, :, None]
    acc = np.broadcast_to(coefficients[:, None, t - 1, :], (coefficients.shape[0], xs.shape[0], coefficients.shape[2]))
    acc = acc.copy()
    for j in range(t - 2, -1, -1):
        acc = (acc * x + coefficients[:, None, j, :]) % p
    return acc


def _modpow(base: U64, exponent: int, prime: int) -> U64:
    """Elementwise ``base ** exponent mod prime`` (square and multiply)."""
    p = np.uint64(prime)
    result = np.ones_like(base)
    b = base % p
    e = exponent
    while e:
        if e & 1:
            result = (result * b) % p
        b = (b * b) % p
        e >>= 1
    return result


def _lagrange_at(xs: U64, at: U64, prime: int) -> U64:
    """Lagrange basis values ``λ[s, j] = Π_{m≠j} (at_s - x_m) / (x_j - x_m)`` for ``xs`` [S, t], ``at`` [S]."""
    p = np.uint64(prime)
    S, t = xs.shape
    point = (at.astype(np.uint64) % p).reshape(S, 1)
    num = np.ones((S, t), dtype=np.uint64)
    den = np.ones((S, t), dtype=np.uint64)
    for m in range(t):
        xm = xs[:, m : m + 1]
        is_self = np.arange(t)[None, :] == m
        num = (num * np.where(is_self, np.uint64(1), (point + p - xm) % p)) % p
        den = (den * np.where(is_self, np.uint64(1), (xs + p - xm) % p)) % p  # x_j - x_m mod p
    return (num * _modpow(den, prime - 2, prime)) % p


def _check_holders(holders: NDArray[Any], name: str, prime: int) -> None:
    """Holder indices must be distinct per row and in [1, prime - 1]."""
    if holders.dtype.kind not in "iu":
        raise TypeError(f"`{name}` must be integers. Found dtype {holders.dtype}.")
    bad = np.argwhere((holders < 1) | (holders >= prime))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        pos = idx[0] if len(idx) == 1 else idx
        raise ValueError(f"`{name}` must be in [1, {prime - 1}]. Found {int(holders[idx])} at position {pos}.")
    ordered = np.sort(holders, axis=-1)
    dup = np.argwhere(ordered[..., 1:] == ordered[..., :-1])
    if dup.size:
        pos = tuple(int(i) for i in dup[0])
        raise ValueError(f"`{name}` must be distinct. Found {int(ordered[pos])} twice.")


def _secrets_to_elements(secret_bytes: NDArray[np.uint8]) -> U64:
    """[S, B] bytes → [S, B/2] field elements (16-bit little-endian chunks)."""
    if secret_bytes.shape[-1] % 2:
        raise ValueError(f"Secrets must have an even number of bytes. Found {secret_bytes.shape[-1]}.")
    return np.ascontiguousarray(secret_bytes).view("<u2").astype(np.uint64)


def _elements_to_secrets(elements: U64) -> NDArray[np.uint8]:
    """[S, C] field elements → [S, 2C] bytes; raises if an element is not a 16-bit chunk."""
    bad = np.argwhere(elements >= (1 << CHUNK_BITS))
    if bad.size:
        s = int(bad[0][0])
        raise ValueError(
            f"Reconstruction of secret {s} produced a field element >= 2^{CHUNK_BITS}: the shares are "
            "inconsistent (wrong, corrupted or from different secrets)."
        )
    return elements.astype("<u2").view(np.uint8)


def share(secret_bytes: NDArray[np.uint8], holders: Sequence[int] | NDArray[Any], threshold: int) -> U64:
    """Share ``S`` secrets among the same ``H`` holders with threshold ``t``.

    Args:
        secret_bytes: ``uint8[S, B]``, ``B`` even (e.g. 32).
        holders: ``H`` distinct holder indices in [1, p - 1] (the protocol's client ids).
        threshold: t in [1, H]; any t shares reconstruct, t - 1 reveal nothing.

    Returns:
        ``uint64[S, H, B/2]``: ``out[s, h]`` is holder ``holders[h]``'s share of secret ``s``.
    """
    if not isinstance(secret_bytes, np.ndarray) or secret_bytes.dtype != np.uint8 or secret_bytes.ndim != 2:
        raise TypeError("`secret_bytes` must be a 2-D uint8 array [num_secrets, num_bytes].")
    xs = np.asarray(holders)
    if xs.ndim != 1:
        raise ValueError(f"`holders` must be 1-D. Found shape {xs.shape}.")
    _check_holders(xs, "holders", PRIME)
    if isinstance(threshold, bool) or not isinstance(threshold, int | np.integer):
        raise TypeError(f"`threshold` must be an int. Found {type(threshold).__name__}.")
    if not 1 <= threshold <= xs.shape[0]:
        raise ValueError(f"`threshold` must be in [1, {xs.shape[0]}] (the number of holders). Found {threshold}.")
    elements = _secrets_to_elements(secret_bytes)  # [S, C]
    S, C = elements.shape
    coefficients = np.empty((S, int(threshold), C), dtype=np.uint64)
    coefficients[:, 0, :] = elements
    coefficients[:, 1:, :] = _random_elements((S, int(threshold) - 1, C), PRIME)
    return _evaluate(coefficients, xs.astype(np.uint64), PRIME)


def reconstruct(holders: Sequence[int] | NDArray[Any], shares: NDArray[np.uint64]) -> NDArray[np.uint8]:
    """Reconstruct ``S`` secrets, each from its own ``t`` shares (Lagrange interpolation at 0).

    Args:
        holders: ``[S, t]`` (or ``[t]``, the same holders for every secret) distinct indices per row.
        shares: ``uint64[S, t, C]`` with ``shares[s, j]`` the share of holder ``holders[s, j]``.

    Returns:
        ``uint8[S, 2C]`` secrets. Exactly ``t`` shares per secret are used; passing fewer than the
        sharing threshold yields a wrong value (or ``ValueError`` when it is provably inconsistent).
    """
    if not isinstance(shares, np.ndarray) or shares.dtype != np.uint64 or shares.ndim != 3:
        raise TypeError("`shares` must be a 3-D uint64 array [num_secrets, num_shares, num_chunks].")
    xs = np.asarray(holders)
    if xs.ndim in (1, 2):
        _check_holders(xs, "holders", PRIME)
    if xs.ndim == 1:
        xs = np.broadcast_to(xs, shares.shape[:2])
    if xs.shape != shares.shape[:2]:
        raise ValueError(f"`holders` must have shape {shares.shape[:2]} to match `shares`. Found {xs.shape}.")
    if shares.shape[1] == 0:
        raise ValueError("`shares` must hold at least one share per secret. Found 0.")
    if (shares >= PRIME).any():
        raise ValueError(f"`shares` must be field elements in [0, {PRIME}). Found {int(shares.max())}.")
    return _elements_to_secrets(_interpolate(xs.astype(np.uint64), shares, np.zeros(shares.shape[0], np.uint64)))


def _interpolate(xs: U64, ys: U64, at: U64) -> U64:
    """Each secret's polynomial through ``(xs[s, j], ys[s, j])`` evaluated at ``at[s]``: [S, C]."""
    lam = _lagrange_at(xs, at, PRIME)  # [S, t]
    p = np.uint64(PRIME)
    acc = np.zeros((ys.shape[0], ys.shape[2]), dtype=np.uint64)
    for j in range(ys.shape[1]):
        acc = (acc + lam[:, j : j + 1] * ys[:, j, :]) % p
    return acc


def interpolate(holders: NDArray[Any], shares: NDArray[np.uint64], at: NDArray[Any]) -> U64:
    """Evaluate, for each secret ``s``, the polynomial through its ``t`` shares at the point ``at[s]``.

    Args:
        holders: ``[S, t]`` distinct indices per row, in [1, p - 1].
        shares: ``uint64[S, t, C]`` field elements.
        at: ``[S]`` points in [0, p - 1] (0 gives the secret's chunks).

    Returns:
        ``uint64[S, C]``.
    """
    xs, points = np.asarray(holders), np.asarray(at)
    if not isinstance(shares, np.ndarray) or shares.dtype != np.uint64 or shares.ndim != 3:
        raise TypeError("`shares` must be a 3-D uint64 array [num_secrets, num_shares, num_chunks].")
    if xs.shape != shares.shape[:2] or points.shape != shares.shape[:1]:
        raise ValueError(
            f"`holders` and `at` must have shapes {shares.shape[:2]} and {shares.shape[:1]}. Found {xs.shape} and {points.shape}."
        )
    _check_holders(xs, "holders", PRIME)
    if points.dtype.kind not in "iu" or ((points < 0) | (points >= PRIME)).any():
        raise ValueError(f"`at` must hold integers in [0, {PRIME}).")
    if (shares >= PRIME).any():
        raise ValueError(f"`shares` must be field elements in [0, {PRIME}). Found {int(shares.max())}.")
    return _interpolate(xs.astype(np.uint64), shares, points.astype(np.uint64))


def consistent(
    holders: Sequence[Sequence[int]], shares: Sequence[NDArray[np.uint64]], threshold: int
) -> NDArray[np.bool_]:
    """Reed–Solomon error detection: for each secret, whether all its shares lie on one polynomial of
    degree ``threshold - 1``.

    Args:
        holders: per secret, its ``m_s >= threshold`` distinct holder indices.
        shares: per secret, ``uint64[m_s, C]`` with row ``j`` the share of ``holders[s][j]``.
        threshold: t.

    Returns:
        ``bool[S]``. A secret with exactly ``t`` shares is always consistent (no redundancy). Vectorised:
        every extra share of every secret is checked in one batch (O(P·t²) for P extra shares).
    """
    t = int(threshold)
    if len(holders) != len(shares):
        raise ValueError(f"`holders` and `shares` must have the same length. Found {len(holders)} and {len(shares)}.")
    if not shares:
        return np.ones(0, dtype=bool)
    counts = [len(h) for h in holders]
    for s, (h, y) in enumerate(zip(holders, shares, strict=True)):
        if len(h) < t:
            raise ValueError(f"Secret {s} must have at least `threshold` = {t} shares. Found {len(h)}.")
        if y.ndim != 2 or y.shape[0] != len(h):
            raise ValueError(f"`shares[{s}]` must have one row per holder ({len(h)}). Found shape {y.shape}.")
        _check_holders(np.asarray(h), f"holders[{s}]", PRIME)
    base_x = np.array([list(h[:t]) for h in holders], dtype=np.int64)
    base_y = np.stack([np.asarray(y[:t], dtype=np.uint64) for y in shares])
    owner = np.repeat(np.arange(len(holders)), [c - t for c in counts])
    ok = np.ones(len(holders), dtype=bool)
    if owner.size == 0:
        return ok
    extra_x = np.concatenate([np.asarray(h[t:], dtype=np.int64) for h in holders if len(h) > t])
    extra_y = np.concatenate([np.asarray(y[t:], dtype=np.uint64) for y, c in zip(shares, counts, strict=True) if c > t])
    predicted = interpolate(base_x[owner], base_y[owner], extra_x)
    np.logical_and.at(ok, owner, (predicted == extra_y).all(axis=1))
    return ok


def share_bytes(share_elements: NDArray[np.uint64]) -> bytes:
    """Serialise one share (``[C]`` field elements) as ``C`` little-endian uint32."""
    return share_elements.astype("<u4").tobytes()


def share_from_bytes(data: bytes, num_chunks: int) -> NDArray[np.uint64]:
    """Parse a share written by :func:`share_bytes`; raises ``ValueError`` on a wrong length or value."""
    if len(data) != 4 * num_chunks:
        raise ValueError(f"A share must be {4 * num_chunks} bytes. Found {len(data)}.")
    out = np.frombuffer(data, dtype="<u4").astype(np.uint64)
    if (out >= PRIME).any():
        raise ValueError(f"A share must hold field elements in [0, {PRIME}). Found {int(out.max())}.")
    return out


def share_secret(secret: bytes, holders: Sequence[int], threshold: int) -> dict[int, bytes]:
    """Convenience: share one secret; returns ``{holder: share bytes}``."""
    if not isinstance(secret, bytes):
        raise TypeError(f"`secret` must be bytes. Found {type(secret).__name__}.")
    out = share(np.frombuffer(secret, dtype=np.uint8)[None, :], holders, threshold)[0]
    return {int(h): share_bytes(out[i]) for i, h in enumerate(holders)}


def reconstruct_secret(shares: Mapping[int, bytes], secret_length: int = 32) -> bytes:
    """Convenience: reconstruct one secret of ``secret_length`` bytes from ``{holder: share bytes}``."""
    if secret_length <= 0 or secret_length % 2:
        raise ValueError(f"`secret_length` must be even and > 0. Found {secret_length}.")
    holders = sorted(shares)
    ys = np.stack([share_from_bytes(shares[h], secret_length // 2) for h in holders])[None]
    out: bytes = reconstruct(np.asarray(holders), ys)[0].tobytes()
    return out
