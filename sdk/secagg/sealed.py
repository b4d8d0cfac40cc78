"""Sealed Shamir shares: how a dealer's two shares for one holder travel in Round 1 and are opened in Round 4.

In Bonawitz et al. 2017 (Fig. 4, Round 1) dealer u encrypts its shares of s_sk_u and b_u for holder v
under a key agreed with v, and in Round 4 v sends the server one of the two shares *in clear*. The
server cannot check a share it never saw, so one lying holder can shift the reconstructed secret (and
with it the sum) at will — e.g. by adding a multiple of the inverse of its Lagrange coefficient.

privrec seals each share on its own, under a one-time key the holder can later reveal::

    k^kind_{u→v} = HKDF(KA(c_sk_u, c_pk_v); round, "share/<kind>", u, v)     kind ∈ {key, seed}
    sealed^kind  = SHA-256(domain, AD^kind_{u→v}, k) || AES-GCM_k(nonce, share^kind_{u→v}, AD^kind_{u→v})
    EncryptedShare.ciphertext = sealed^key || sealed^seed                     (2 × 112 bytes)

(:func:`.crypto.seal`: AES-GCM made key-committing by a hash of the key, after Albertini et al. 2022.)
The keys are directional (``u, v`` in HKDF's info are ordered dealer, holder) and per kind, so revealing
``k^seed_{u→v}`` discloses exactly v's share of b_u — the same information as revealing that share —
and nothing about v's shares of s_sk_u or about what v dealt to u.

In Round 4 v reveals the key (the *opening*, :class:`.RevealedShare`) instead of the share. The server
checks it against the commitment it stored in Round 1 and decrypts the dealer's own ciphertext, so the
shares it interpolates are exactly those the dealer dealt:

* an opening that does not match its commitment proves the **holder** lied — the server discards that
  holder's whole response and names it (it cannot substitute a share: there is none to shift);
* an opening that matches but a ciphertext that does not open, or a share outside the field, proves the
  **dealer** cheated (only the dealer chose those bytes);
* so do shares that do not lie on one polynomial of degree t - 1 when more than t of them are opened
  (:func:`.shamir.consistent`).

An honest holder re-derives both keys in Round 2 and checks the commitments and ciphertexts of every share
it receives (:func:`verify_sealed`); it refuses a dealer that fails, so an honest holder is never blamed
for its dealer. Limits: with exactly t openings of a secret, t shares that a dealer dealt off one
polynomial reconstruct a wrong secret undetected (for s_sk the advertised public key still catches it; for
b_u nothing can — which is no worse than the dealer sending a wrong masked input, see :mod:`.server`).
A dealer whose sealed share fails a holder's Round-2 check makes that holder leave the round: a malicious
dealer can push its neighbours out (denial of service), not corrupt the sum.
"""

from __future__ import annotations

import secrets

import numpy as np
from numpy.typing import NDArray

from . import shamir
from .crypto import (
    COMMITMENT_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    associated_data,
    commitment_matches,
    derive_key,
    open_sealed,
    seal,
)
from .errors import SecAggIntegrityError
from .stages import Stage

__all__ = [
    "CHUNKS",
    "KINDS",
    "SEALED_BYTES",
    "SECRET_BYTES",
    "SHARE_BYTES",
    "open_share",
    "opening_key",
    "opening_matches",
    "seal_shares",
    "verify_sealed",
]

#: Bytes of each shared secret (s_sk_u and b_u).
SECRET_BYTES = 32
#: Field elements per share (16-bit chunks of a secret, :mod:`.shamir`).
CHUNKS = SECRET_BYTES * 8 // shamir.CHUNK_BITS
#: Bytes of one serialised share (``CHUNKS`` little-endian uint32).
SHARE_BYTES = 4 * CHUNKS
#: The two kinds of share, in sealed order: of the masking key s_sk and of the self-mask seed b.
KINDS: tuple[str, str] = ("key", "seed")
_PART_BYTES = COMMITMENT_BYTES + SHARE_BYTES + TAG_BYTES
#: Length of :attr:`.EncryptedShare.ciphertext`.
SEALED_BYTES = len(KINDS) * _PART_BYTES


def _check_kind(kind: str) -> int:
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Found {kind!r}.")
    return KINDS.index(kind)


def _ad(round_id: str, kind: str, dealer: int, holder: int) -> bytes:
    return associated_data(round_id=round_id, stage=f"{Stage.SHARE_KEYS}/{kind}", sender=dealer, receiver=holder)


def _part(ciphertext: bytes, kind: str) -> bytes:
    i = _check_kind(kind)
    return ciphertext[i * _PART_BYTES : (i + 1) * _PART_BYTES]


def opening_key(shared_secret: bytes, *, round_id: str, kind: str, dealer: int, holder: int) -> bytes:
    """k^kind_{dealer→holder}: the one-time key of one sealed share, from KA(c_sk, c_pk) of the pair."""
    _check_kind(kind)
    return derive_key(shared_secret, round_id=round_id, purpose=f"share/{kind}", a=dealer, b=holder)


def seal_shares(
    shared_secret: bytes, *, round_id: str, dealer: int, holder: int, key_share: bytes, seed_share: bytes
) -> tuple[bytes, bytes]:
    """Round 1 (dealer): ``(nonce, ciphertext)`` of an :class:`.EncryptedShare` carrying both shares.

    One random nonce serves both parts (each part has its own key).
    """
    nonce = secrets.token_bytes(NONCE_BYTES)
    parts = []
    for kind, share in zip(KINDS, (key_share, seed_share), strict=True):
        if len(share) != SHARE_BYTES:
            raise ValueError(f"A {kind} share must be {SHARE_BYTES} bytes. Found {len(share)}.")
        key = opening_key(shared_secret, round_id=round_id, kind=kind, dealer=dealer, holder=holder)
        parts.append(seal(key, nonce, share, _ad(round_id, kind, dealer, holder)))
    return nonce, b"".join(parts)


def opening_matches(opening: bytes, ciphertext: bytes, *, round_id: str, kind: str, dealer: int, holder: int) -> bool:
    """Round 4 (server): whether a revealed key is the one the dealer committed to for this share."""
    return commitment_matches(opening, _part(ciphertext, kind), _ad(round_id, kind, dealer, holder))


def open_share(
    opening: bytes, *, nonce: bytes, ciphertext: bytes, round_id: str, kind: str, dealer: int, holder: int
) -> NDArray[np.uint64]:
    """Round 4 (server): the share sealed under ``opening`` as ``CHUNKS`` field elements.

    Raises:
        SecAggIntegrityError: ``opening`` is not the committed key (``culprits``: the holder), or it is but
            the ciphertext does not open to a share (``culprits``: the dealer).
    """
    if not opening_matches(opening, ciphertext, round_id=round_id, kind=kind, dealer=dealer, holder=holder):
        raise SecAggIntegrityError(
            f"Client {holder}'s opening of its {kind} share from client {dealer} does not match the dealer's "
            "commitment.",
            culprits=(holder,),
        )
    try:
        plain = open_sealed(opening, nonce, _part(ciphertext, kind), _ad(round_id, kind, dealer, holder))
        return shamir.share_from_bytes(plain, CHUNKS)
    except (SecAggIntegrityError, ValueError) as exc:
        raise SecAggIntegrityError(
            f"Client {dealer}'s sealed {kind} share for client {holder} does not open to a share under the key "
            f"it committed to: client {dealer} dealt an invalid share ({exc}).",
            culprits=(dealer,),
        ) from exc


def verify_sealed(shared_secret: bytes, *, nonce: bytes, ciphertext: bytes, round_id: str, dealer: int, holder: int) -> None:
    """Round 2 (holder): check that both sealed shares from ``dealer`` open under the keys this holder
    derives, so that revealing either key in Round 4 opens a valid share.

    Raises:
        SecAggIntegrityError: a wrong length, commitment, tag or share (``culprits``: the dealer).
    """
    if len(ciphertext) != SEALED_BYTES or len(nonce) != NONCE_BYTES:
        raise SecAggIntegrityError(
            f"The sealed shares from client {dealer} must be {SEALED_BYTES} bytes with a {NONCE_BYTES}-byte nonce. "
            f"Found {len(ciphertext)} and {len(nonce)}.",
            culprits=(dealer,),
        )
    for kind in KINDS:
        key = opening_key(shared_secret, round_id=round_id, kind=kind, dealer=dealer, holder=holder)
        try:
            plain = open_sealed(key, nonce, _part(ciphertext, kind), _ad(round_id, kind, dealer, holder))
            shamir.share_from_bytes(plain, CHUNKS)
        except (SecAggIntegrityError, ValueError) as exc:
            raise SecAggIntegrityError(
                f"The sealed {kind} share from client {dealer} to client {holder} is invalid: {exc} It was "
                "tampered with, or client "
                f"{dealer} dealt it wrongly.",
                culprits=(dealer,),
            ) from exc
