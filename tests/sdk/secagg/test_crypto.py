"""The crypto wrappers: X25519 + HKDF, AES-GCM with bound associated data, ChaCha20 mask expansion."""

from __future__ import annotations

import numpy as np
import pytest
from Crypto.Cipher import ChaCha20 as PyCryptodomeChaCha20
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.secagg import SecAggIntegrityError, crypto


def test_expand_mask_matches_an_independent_chacha20() -> None:
    """Our PRG is the ChaCha20 keystream (RFC 8439, zero nonce, counter 0): check against pycryptodome."""
    key = bytes(range(32))
    expected = PyCryptodomeChaCha20.new(key=key, nonce=bytes(12)).encrypt(bytes(4 * 1000))
    got = crypto.expand_mask(key, 1000)
    assert got.dtype == np.uint32 and got.shape == (1000,)
    assert got.astype("<u4").tobytes() == expected
    # RFC 8439 §2.3.2 style golden: the first word of the all-zero-key keystream.
    assert int(crypto.expand_mask(bytes(32), 1)[0]) == int.from_bytes(bytes.fromhex("76b8e0ad"), "little")


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), lengths=st.lists(st.integers(0, 5_000), min_size=1, max_size=4))
def test_expand_mask_is_the_chacha20_keystream_at_every_length(key: bytes, lengths: list[int]) -> None:
    """Masks of growing and shrinking lengths (one shared zero plaintext serves them all) are each the
    ChaCha20 keystream of pycryptodome, fresh and writable, and a prefix of the longer ones."""
    for length in lengths:
        got = crypto.expand_mask(key, length)
        expected = PyCryptodomeChaCha20.new(key=key, nonce=bytes(12)).encrypt(bytes(4 * length))
        assert got.dtype == np.uint32 and got.shape == (length,) and got.flags.writeable
        assert got.astype("<u4").tobytes() == expected
        got += np.uint32(1)  # writing to one mask must not change the next one


def test_derive_key_matches_an_independent_hkdf() -> None:
    """HKDF-SHA256 with salt SHA-256(domain || len || round id) and info domain || len || purpose || a || b
    (RFC 5869, computed here with hmac), for two rounds in turn: the per-round salt is not mixed up."""
    import hashlib
    import hmac
    import struct

    def hkdf(secret: bytes, salt: bytes, info: bytes) -> bytes:
        prk = hmac.new(salt, secret, hashlib.sha256).digest()
        return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()

    domain = b"privrec/secagg/v2"
    secret = bytes(range(32))
    for round_id in ("r1", "round-two", "r1"):
        salt = hashlib.sha256(domain + struct.pack(">I", len(round_id)) + round_id.encode()).digest()
        info = domain + struct.pack(">I", 4) + b"mask" + struct.pack(">QQ", 3, 7)
        assert crypto.derive_key(secret, round_id=round_id, purpose="mask", a=3, b=7) == hkdf(secret, salt, info)


def test_expand_mask_is_keyed() -> None:
    a, b = crypto.expand_mask(b"a" * 32, 64), crypto.expand_mask(b"b" * 32, 64)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, crypto.expand_mask(b"a" * 32, 64))
    with pytest.raises(ValueError, match=r"`key` must be 32 bytes. Found 3."):
        crypto.expand_mask(b"abc", 4)


def test_key_agreement_is_symmetric_and_derivation_is_bound() -> None:
    a_sk, a_pk = crypto.generate_key_pair()
    b_sk, b_pk = crypto.generate_key_pair()
    assert crypto.public_key(a_sk) == a_pk
    shared = crypto.agree(a_sk, b_pk)
    assert shared == crypto.agree(b_sk, a_pk)
    base = crypto.derive_key(shared, round_id="r1", purpose="mask", a=1, b=2)
    assert len(base) == 32
    assert base == crypto.derive_key(shared, round_id="r1", purpose="mask", a=1, b=2)
    assert base != crypto.derive_key(shared, round_id="r2", purpose="mask", a=1, b=2)
    assert base != crypto.derive_key(shared, round_id="r1", purpose="encrypt", a=1, b=2)
    assert base != crypto.derive_key(shared, round_id="r1", purpose="mask", a=1, b=3)


def test_low_order_public_key_is_rejected() -> None:
    sk, _ = crypto.generate_key_pair()
    with pytest.raises(SecAggIntegrityError, match="X25519 key agreement failed"):
        crypto.agree(sk, bytes(32))


def test_aes_gcm_round_trip_and_tampering() -> None:
    key = crypto.derive_key(b"s" * 32, round_id="r", purpose="encrypt", a=1, b=2)
    ad = crypto.associated_data(round_id="r", stage="share_keys", sender=1, receiver=2)
    nonce, ct = crypto.encrypt(key, b"secret shares", ad)
    assert len(nonce) == 12
    assert crypto.decrypt(key, nonce, ct, ad) == b"secret shares"
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    other_ad = [
        crypto.associated_data(round_id="r2", stage="share_keys", sender=1, receiver=2),
        crypto.associated_data(round_id="r", stage="unmasking", sender=1, receiver=2),
        crypto.associated_data(round_id="r", stage="share_keys", sender=2, receiver=1),
        crypto.associated_data(round_id="r", stage="share_keys", sender=1, receiver=3),
    ]
    for args in [(key, nonce, flipped, ad), (key, bytes(12), ct, ad), *((key, nonce, ct, a) for a in other_ad)]:
        with pytest.raises(SecAggIntegrityError, match="AES-GCM authentication failed"):
            crypto.decrypt(*args)
    with pytest.raises(SecAggIntegrityError, match="nonce must be 12 bytes"):
        crypto.decrypt(key, b"123", ct, ad)


def test_associated_data_is_unambiguous() -> None:
    assert crypto.associated_data(round_id="a|b", stage="c", sender=1, receiver=2) != crypto.associated_data(
        round_id="a", stage="b|c", sender=1, receiver=2
    )


# ------------------------------------------------------------------------------ public-key validation
_P = crypto.X25519_PRIME
_A = 486662  # Curve25519: v^2 = u^3 + A u^2 + u (RFC 7748, §4.1)


def _polymod(a: list[int], f: list[int]) -> list[int]:
    """``a mod f`` over GF(p); polynomials as coefficient lists, lowest degree first."""
    a = [c % _P for c in a]
    inv = pow(f[-1], _P - 2, _P)
    while len(a) >= len(f):
        q = a[-1] * inv % _P
        shift = len(a) - len(f)
        for i, c in enumerate(f):
            a[shift + i] = (a[shift + i] - q * c) % _P
        while a and a[-1] == 0:
            a.pop()
    return a


def _polymul(a: list[int], b: list[int]) -> list[int]:
    out = [0] * (len(a) + len(b) - 1) if a and b else []
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] = (out[i + j] + x * y) % _P
    return out


def _roots_in_field(f: list[int]) -> int:
    """The number of distinct roots of ``f`` in GF(p): deg gcd(f, x^p - x)."""
    power, base, e = [1], [0, 1], _P
    while e:
        if e & 1:
            power = _polymod(_polymul(power, base), f)
        base = _polymod(_polymul(base, base), f)
        e >>= 1
    g = power + [0] * max(0, 2 - len(power))
    g[1] = (g[1] - 1) % _P  # x^p - x  (mod f)
    while g and g[-1] == 0:
        g.pop()
    a, b = f, g
    while b:
        a, b = b, _polymod(a, b)
    return len(a) - 1


def _double(u: int) -> int | None:
    """x-only doubling on Curve25519 (None: the neutral element)."""
    den = 4 * u * (u * u + _A * u + 1) % _P
    return None if den == 0 else (u * u - 1) ** 2 * pow(den, _P - 2, _P) % _P


def test_low_order_points_are_exactly_the_8_torsion() -> None:
    """The list is complete and each entry has the stated order, derived from the curve equation rather
    than copied: u has order dividing 8 iff doubling reaches u = 0 (order 2) within two steps. Order 2:
    u = 0 or a root of u^2 + A u + 1 (none in GF(p)); order 4: doubling gives 0, i.e. u = ±1; order 8:
    doubling gives ±1, i.e. a root of (u^2 - 1)^2 ∓ 4u(u^2 + A u + 1)."""
    assert _roots_in_field([1, _A, 1]) == 0
    plus = [1, -4, -2 - 4 * _A, -4, 1]  # (u^2 - 1)^2 - 4u(u^2 + Au + 1): doubling gives +1
    minus = [1, 4, -2 + 4 * _A, 4, 1]  # doubling gives -1
    assert _roots_in_field(plus) == 2 and _roots_in_field(minus) == 0
    order8 = [u for u, order in crypto.LOW_ORDER_POINTS.items() if order == 8]
    assert len(order8) == 2 and all(_double(u) == 1 for u in order8)
    assert set(crypto.LOW_ORDER_POINTS) == {0, 1, _P - 1, *order8}
    for u, order in crypto.LOW_ORDER_POINTS.items():
        chain, x = 1, u
        while x != 0:
            x, chain = _double(x), chain * 2  # type: ignore[assignment]
        assert 2 * chain == order, u


@pytest.mark.parametrize("u", [*crypto.LOW_ORDER_POINTS, _P, _P + 1])
def test_low_order_and_aliased_keys_give_the_zero_secret_and_are_refused(u: int) -> None:
    raw = u.to_bytes(32, "little")
    sk, _ = crypto.generate_key_pair()
    with pytest.raises(SecAggIntegrityError, match="X25519 key agreement failed"):
        crypto.agree(sk, raw)
    assert crypto.public_key_problem(raw) is not None
    # The same point with bit 255 set (RFC 7748 masks it): refused as non-canonical.
    high = raw[:31] + bytes([raw[31] | 0x80])
    assert "bit 255 is set" in (crypto.public_key_problem(high) or "")


def test_generated_keys_are_acceptable_and_problems_are_explained() -> None:
    for _ in range(200):
        assert crypto.public_key_problem(crypto.generate_key_pair()[1]) is None
    assert crypto.public_key_problem(bytes(31)) == "31 bytes long, not 32"
    assert crypto.public_key_problem(bytes(32)) == (
        "the zero point (u = 0, order 2: every key agreement with it gives the all-zero secret)"
    )
    assert crypto.public_key_problem((_P + 5).to_bytes(32, "little")) == (
        "not canonically encoded: u = p + 5 is at least p = 2^255 - 19 (X25519 reads it as u = 5)"
    )


def test_seal_is_key_committing() -> None:
    key, other = b"k" * 32, b"o" * 32
    ad = crypto.associated_data(round_id="r", stage="share_keys/seed", sender=1, receiver=2)
    nonce = bytes(range(12))
    sealed = crypto.seal(key, nonce, b"share bytes", ad)
    assert len(sealed) == crypto.COMMITMENT_BYTES + len(b"share bytes") + crypto.TAG_BYTES
    assert crypto.open_sealed(key, nonce, sealed, ad) == b"share bytes"
    assert crypto.commitment_matches(key, sealed, ad)
    assert not crypto.commitment_matches(other, sealed, ad)
    other_ad = crypto.associated_data(round_id="r", stage="share_keys/key", sender=1, receiver=2)
    assert not crypto.commitment_matches(key, sealed, other_ad)
    with pytest.raises(SecAggIntegrityError, match="does not match the sealed ciphertext's key commitment"):
        crypto.open_sealed(other, nonce, sealed, ad)
    body = sealed[:40] + bytes([sealed[40] ^ 1]) + sealed[41:]
    with pytest.raises(SecAggIntegrityError, match="AES-GCM authentication failed"):
        crypto.open_sealed(key, nonce, body, ad)
