"""Sealed shares: a holder's Round-2 check, the Round-4 opening, and who is to blame when one fails."""

from __future__ import annotations

import numpy as np
import pytest

from privrec.sdk.secagg import SecAggIntegrityError, crypto, sealed, shamir

ROUND = "r-sealed"


def _pair() -> tuple[bytes, bytes, bytes, bytes]:
    """(dealer c_sk, dealer c_pk, holder c_sk, holder c_pk)."""
    d_sk, d_pk = crypto.generate_key_pair()
    h_sk, h_pk = crypto.generate_key_pair()
    return d_sk, d_pk, h_sk, h_pk


def _shares() -> tuple[bytes, bytes]:
    secret = np.frombuffer(b"s" * 32 + b"b" * 32, np.uint8).reshape(2, 32)
    out = shamir.share(secret, [4, 9], 2)[:, 1]
    return shamir.share_bytes(out[0]), shamir.share_bytes(out[1])


def test_seal_verify_and_open_each_kind_separately() -> None:
    d_sk, d_pk, h_sk, h_pk = _pair()
    key_share, seed_share = _shares()
    nonce, ct = sealed.seal_shares(crypto.agree(d_sk, h_pk), round_id=ROUND, dealer=4, holder=9,
                                   key_share=key_share, seed_share=seed_share)
    assert len(ct) == sealed.SEALED_BYTES == 224
    shared = crypto.agree(h_sk, d_pk)  # the holder derives the same keys
    sealed.verify_sealed(shared, nonce=nonce, ciphertext=ct, round_id=ROUND, dealer=4, holder=9)
    for kind, share in (("key", key_share), ("seed", seed_share)):
        opening = sealed.opening_key(shared, round_id=ROUND, kind=kind, dealer=4, holder=9)
        got = sealed.open_share(opening, nonce=nonce, ciphertext=ct, round_id=ROUND, kind=kind, dealer=4, holder=9)
        np.testing.assert_array_equal(got, shamir.share_from_bytes(share, sealed.CHUNKS))
        other = "seed" if kind == "key" else "key"
        # An opening opens its own kind only, one direction only, one round only.
        assert not sealed.opening_matches(opening, ct, round_id=ROUND, kind=other, dealer=4, holder=9)
        assert not sealed.opening_matches(opening, ct, round_id=ROUND, kind=kind, dealer=9, holder=4)
        assert not sealed.opening_matches(opening, ct, round_id="r-other", kind=kind, dealer=4, holder=9)
    reverse = sealed.opening_key(shared, round_id=ROUND, kind="seed", dealer=9, holder=4)
    assert reverse != sealed.opening_key(shared, round_id=ROUND, kind="seed", dealer=4, holder=9)


def test_a_wrong_opening_blames_the_holder_and_a_bad_ciphertext_blames_the_dealer() -> None:
    d_sk, d_pk, h_sk, h_pk = _pair()
    key_share, seed_share = _shares()
    shared = crypto.agree(d_sk, h_pk)
    nonce, ct = sealed.seal_shares(shared, round_id=ROUND, dealer=4, holder=9, key_share=key_share, seed_share=seed_share)
    opening = sealed.opening_key(shared, round_id=ROUND, kind="seed", dealer=4, holder=9)
    with pytest.raises(SecAggIntegrityError, match="Client 9's opening of its seed share from client 4 does not match") as info:
        sealed.open_share(bytes(32), nonce=nonce, ciphertext=ct, round_id=ROUND, kind="seed", dealer=4, holder=9)
    assert info.value.culprits == (9,)
    garbled = ct[:150] + bytes([ct[150] ^ 1]) + ct[151:]  # inside the seed part, after its commitment
    with pytest.raises(SecAggIntegrityError, match="Client 4's sealed seed share for client 9 does not open") as info:
        sealed.open_share(opening, nonce=nonce, ciphertext=garbled, round_id=ROUND, kind="seed", dealer=4, holder=9)
    assert info.value.culprits == (4,)
    with pytest.raises(SecAggIntegrityError, match="The sealed seed share from client 4 to client 9 is invalid") as info:
        sealed.verify_sealed(crypto.agree(h_sk, d_pk), nonce=nonce, ciphertext=garbled, round_id=ROUND, dealer=4, holder=9)
    assert info.value.culprits == (4,)


def test_a_sealed_value_that_is_not_a_share_blames_the_dealer() -> None:
    """A dealer sealing 64 bytes that are not field elements (>= p) under the right keys."""
    d_sk, d_pk, h_sk, h_pk = _pair()
    shared = crypto.agree(d_sk, h_pk)
    nonce, ct = sealed.seal_shares(shared, round_id=ROUND, dealer=4, holder=9, key_share=b"\xff" * 64, seed_share=b"\xff" * 64)
    with pytest.raises(SecAggIntegrityError, match="must hold field elements") as info:
        sealed.verify_sealed(crypto.agree(h_sk, d_pk), nonce=nonce, ciphertext=ct, round_id=ROUND, dealer=4, holder=9)
    assert info.value.culprits == (4,)
