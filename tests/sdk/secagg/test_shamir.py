"""Shamir sharing over GF(2^31 - 1): reconstruction, secrecy, validation."""

from __future__ import annotations

import itertools
import secrets

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.secagg import shamir
from privrec.sdk.secagg.shamir import PRIME, _evaluate


def _secrets(count: int) -> np.ndarray:
    return np.frombuffer(secrets.token_bytes(32 * count), dtype=np.uint8).reshape(count, 32)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, 12), num_secrets=st.integers(1, 4))
def test_any_t_shares_reconstruct(data: st.DataObject, n: int, num_secrets: int) -> None:
    t = data.draw(st.integers(1, n))
    holders = data.draw(st.lists(st.integers(1, PRIME - 1), min_size=n, max_size=n, unique=True))
    subset = data.draw(st.lists(st.sampled_from(range(n)), min_size=t, max_size=t, unique=True))
    values = _secrets(num_secrets)
    shares = shamir.share(values, holders, t)
    assert shares.shape == (num_secrets, n, 16)
    got = shamir.reconstruct(np.asarray(holders)[subset], shares[:, subset])
    np.testing.assert_array_equal(got, values)


def test_each_secret_with_its_own_holder_set() -> None:
    values = _secrets(3)
    holders = np.arange(1, 8)
    shares = shamir.share(values, holders, 4)
    picks = np.array([[0, 1, 2, 3], [6, 5, 4, 3], [0, 2, 4, 6]])
    got = shamir.reconstruct(holders[picks], np.stack([shares[i, picks[i]] for i in range(3)]))
    np.testing.assert_array_equal(got, values)


def test_t_minus_1_shares_do_not_reconstruct() -> None:
    values = _secrets(1)
    shares = shamir.share(values, [1, 2, 3, 4, 5], 4)
    try:
        got = shamir.reconstruct([1, 2, 3], shares[:, :3])
    except ValueError as exc:  # most likely: a chunk >= 2^16 proves inconsistency
        assert "inconsistent" in str(exc)
    else:
        assert not np.array_equal(got, values)


def test_secrecy_exhaustive_small_field() -> None:
    """Over GF(7), t = 3: the pair of shares (x=1, x=2) is uniform on GF(7)^2 whatever the secret."""
    p, xs = 7, np.array([1, 2], dtype=np.uint64)
    histograms = []
    for secret in range(p):
        counts = np.zeros((p, p), dtype=int)
        for a1, a2 in itertools.product(range(p), repeat=2):
            coeffs = np.array([[[secret], [a1], [a2]]], dtype=np.uint64)  # [S=1, t=3, C=1]
            y = _evaluate(coeffs, xs, p)[0, :, 0]
            counts[int(y[0]), int(y[1])] += 1
        histograms.append(counts)
    for counts in histograms:
        np.testing.assert_array_equal(counts, np.ones((p, p), dtype=int))


def _interpolate_coefficients(points: list[tuple[int, int]], p: int) -> list[int]:
    """Coefficients of the unique degree < len(points) polynomial through ``points`` (Gauss-Jordan mod p)."""
    m = len(points)
    rows = [[pow(x, j, p) for j in range(m)] + [y % p] for x, y in points]
    for col in range(m):
        pivot = next(r for r in range(col, m) if rows[r][col])
        rows[col], rows[pivot] = rows[pivot], rows[col]
        inv = pow(rows[col][col], p - 2, p)
        rows[col] = [v * inv % p for v in rows[col]]
        for r in range(m):
            if r != col and rows[r][col]:
                f = rows[r][col]
                rows[r] = [(a - f * b) % p for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[j][m] for j in range(m)]


@settings(max_examples=25, deadline=None)
@given(t=st.integers(2, 6), other=st.binary(min_size=32, max_size=32))
def test_t_minus_1_shares_consistent_with_every_secret(t: int, other: bytes) -> None:
    """For t-1 real shares of secret A and any candidate B, a degree t-1 polynomial with constant term B
    produces exactly those shares: the shares cannot tell A from B (Shamir 1979)."""
    holders = list(range(1, t))
    a = _secrets(1)
    shares = shamir.share(a, [*holders, t], t)[0, : t - 1]  # the first t-1 of t shares: [t-1, 16]
    b = np.frombuffer(other, dtype="<u2").astype(np.uint64)
    for c in range(16):
        points = [(0, int(b[c]))] + [(h, int(shares[i, c])) for i, h in enumerate(holders)]
        coeffs = np.array(_interpolate_coefficients(points, PRIME), dtype=np.uint64)
        assert int(coeffs[0]) == int(b[c])
        y = _evaluate(coeffs[None, :, None], np.array(holders, dtype=np.uint64), PRIME)[0, :, 0]
        np.testing.assert_array_equal(y, shares[:, c])


def test_single_secret_helpers_round_trip() -> None:
    secret = secrets.token_bytes(32)
    shares = shamir.share_secret(secret, [3, 5, 9, 11], 3)
    assert set(shares) == {3, 5, 9, 11}
    assert all(len(s) == 64 for s in shares.values())
    assert shamir.reconstruct_secret({h: shares[h] for h in (5, 9, 11)}) == secret
    assert shamir.reconstruct_secret(shares) == secret  # more than t shares also work (all on one line)


@pytest.mark.parametrize(
    ("holders", "message"),
    [
        ([1, 2, 2], "`holders` must be distinct. Found 2 twice."),
        ([0, 1, 2], "`holders` must be in [1, 2147483646]. Found 0 at position 0."),
        ([1, PRIME, 2], "`holders` must be in [1, 2147483646]. Found 2147483647 at position 1."),
        ([-1, 1, 2], "`holders` must be in [1, 2147483646]. Found -1 at position 0."),
    ],
)
def test_invalid_holders_raise(holders: list[int], message: str) -> None:
    with pytest.raises(ValueError) as info:
        shamir.share(_secrets(1), holders, 2)
    assert str(info.value) == message
    shares = np.zeros((1, 3, 16), dtype=np.uint64)
    with pytest.raises(ValueError) as info:
        shamir.reconstruct(holders, shares)
    assert str(info.value) == message


def test_invalid_threshold_and_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"`threshold` must be in \[1, 3\]"):
        shamir.share(_secrets(1), [1, 2, 3], 4)
    with pytest.raises(ValueError, match=r"`threshold` must be in \[1, 3\]"):
        shamir.share(_secrets(1), [1, 2, 3], 0)
    with pytest.raises(TypeError, match="`threshold` must be an int"):
        shamir.share(_secrets(1), [1, 2, 3], True)
    with pytest.raises(TypeError, match="2-D uint8"):
        shamir.share(np.zeros(32, dtype=np.uint8), [1, 2], 1)
    with pytest.raises(ValueError, match="even number of bytes"):
        shamir.share(np.zeros((1, 31), dtype=np.uint8), [1, 2], 1)
    with pytest.raises(ValueError, match="field elements"):
        shamir.reconstruct([1, 2], np.full((1, 2, 16), PRIME, dtype=np.uint64))
    with pytest.raises(ValueError, match="must have shape"):
        shamir.reconstruct(np.array([[1, 2, 3]]), np.zeros((1, 2, 16), dtype=np.uint64))
    with pytest.raises(ValueError, match=r"A share must be 64 bytes. Found 63."):
        shamir.share_from_bytes(b"\x00" * 63, 16)
    with pytest.raises(ValueError, match="field elements"):
        shamir.share_from_bytes(b"\xff" * 64, 16)


def test_interpolate_passes_through_the_shares_and_gives_the_secret_at_zero() -> None:
    values = _secrets(2)
    holders = np.array([3, 8, 11, 20])
    shares = shamir.share(values, holders, 3)
    base = np.broadcast_to(holders[:3], (2, 3))
    at_fourth = shamir.interpolate(base, shares[:, :3], np.array([20, 20]))
    np.testing.assert_array_equal(at_fourth, shares[:, 3])
    at_zero = shamir.interpolate(base, shares[:, :3], np.zeros(2, np.int64))
    np.testing.assert_array_equal(at_zero.astype("<u2").view(np.uint8), values)
    with pytest.raises(ValueError, match=r"`at` must hold integers in \[0, 2147483647\)"):
        shamir.interpolate(base, shares[:, :3], np.array([-1, 0]))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), m=st.integers(1, 10))
def test_consistent_detects_up_to_m_minus_t_wrong_shares(data: st.DataObject, m: int) -> None:
    """Reed–Solomon error detection: with m shares of a degree t - 1 polynomial, any 1 .. m - t wrong shares
    are detected; exactly t shares are always 'consistent' (no redundancy)."""
    t = data.draw(st.integers(1, m))
    holders = data.draw(st.lists(st.integers(1, PRIME - 1), min_size=m, max_size=m, unique=True))
    shares = shamir.share(_secrets(1), holders, t)[0]
    assert shamir.consistent([holders], [shares], t).tolist() == [True]
    if m == t:
        return
    wrong = data.draw(st.lists(st.sampled_from(range(m)), min_size=1, max_size=m - t, unique=True))
    bad = shares.copy()
    for j in wrong:
        chunk = data.draw(st.integers(0, bad.shape[1] - 1))
        bad[j, chunk] = (bad[j, chunk] + data.draw(st.integers(1, PRIME - 1))) % PRIME
    assert shamir.consistent([holders], [bad], t).tolist() == [False]


def test_consistent_is_batched_over_secrets_with_their_own_holders() -> None:
    values = _secrets(3)
    all_holders = np.arange(1, 9)
    shares = shamir.share(values, all_holders, 4)
    picks = [[0, 1, 2, 3], [0, 2, 4, 6, 7], [1, 2, 3, 4, 5, 6]]  # 4 (= t), 5 and 6 shares
    holders = [all_holders[p].tolist() for p in picks]
    rows = [shares[i, p] for i, p in enumerate(picks)]
    assert shamir.consistent(holders, rows, 4).tolist() == [True, True, True]
    rows[2] = rows[2].copy()
    rows[2][5, 0] = (rows[2][5, 0] + 1) % PRIME
    rows[0] = rows[0].copy()
    rows[0][1, 3] = (rows[0][1, 3] + 1) % PRIME  # undetectable: exactly t shares
    assert shamir.consistent(holders, rows, 4).tolist() == [True, True, False]
    with pytest.raises(ValueError, match=r"Secret 0 must have at least `threshold` = 5 shares. Found 4."):
        shamir.consistent(holders, rows, 5)
    with pytest.raises(ValueError, match=r"`holders\[1\]` must be distinct. Found 1 twice."):
        shamir.consistent([holders[0], [1, 1, 3, 5, 7]], rows[:2], 4)
