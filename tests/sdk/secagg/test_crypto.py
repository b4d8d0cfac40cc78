"""The crypto wrappers: X25519 + HKDF, AES-GCM with bound associated data, ChaCha20 mask expansion."""

from __future__ import annotations

import numpy as np
import pytest
from Crypto.Cipher import ChaCha20 as PyCryptodomeChaCha20

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
