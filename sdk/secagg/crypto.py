"""Thin wrappers over ``cryptography`` for the primitives of Bonawitz et al. 2017, §3.

* Key agreement (§3.3): X25519, the shared secret stretched by HKDF-SHA256 whose salt is bound to the
  round id and whose info names the purpose (``mask``, ``self_mask``, ``share/key``, ``share/seed``)
  and the two client ids, so a key is never reused across rounds, purposes or pairs.
* Public-key validation (:func:`public_key_problem`): a peer's X25519 key must be canonically encoded
  (bit 255 clear and u < p, so that equal keys have equal bytes) and not one of the five low-order
  u-coordinates (the points of order 2, 4 and 8 of Curve25519 and its twist, whose X25519 output is
  all-zero for every private key; the list of Bernstein's "Curve25519" page and libsodium's
  ``has_small_order``, checked in the tests by x-only doubling). Other points of the twist are accepted:
  Curve25519 is twist-secure (Bernstein 2006, "Curve25519: new Diffie-Hellman speed records", §3).
* Authenticated encryption (§3.5): AES-256-GCM with a 96-bit nonce; the associated data binds the round
  id, the stage, the sender and the receiver. :func:`seal` makes it *key-committing* for keys used once:
  the sealed bytes start with SHA-256 of the key (and the associated data), so a key revealed later can
  be checked and opens exactly one plaintext — the generic fix of Albertini, Duong, Gueron, Kölbl, Luykx
  and Schmieg 2022 ("How to Abuse and Fix Authenticated Encryption Without Key Commitment", USENIX
  Security): send a collision-resistant hash of the key with the ciphertext.
* Pseudorandom generator (§3.4): ChaCha20 keyed by a 32-byte key (zero nonce — every key is used for
  exactly one expansion) producing ``D`` little-endian uint32 words.
* Randomness: ``secrets`` (the OS CSPRNG) for seeds; X25519 keys from ``cryptography``.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import struct

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray

from .errors import SecAggIntegrityError

__all__ = [
    "COMMITMENT_BYTES",
    "KEY_BYTES",
    "LOW_ORDER_POINTS",
    "NONCE_BYTES",
    "TAG_BYTES",
    "X25519_PRIME",
    "agree",
    "associated_data",
    "commitment_matches",
    "decrypt",
    "derive_key",
    "encrypt",
    "expand_mask",
    "generate_key_pair",
    "open_sealed",
    "public_key",
    "public_key_problem",
    "random_seed",
    "seal",
]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
COMMITMENT_BYTES = 32
_DOMAIN = b"privrec/secagg/v2"

#: p = 2^255 - 19, the field of Curve25519 (RFC 7748, §4.1).
X25519_PRIME = 2**255 - 19

#: u-coordinate -> order of the point: every u whose multiples by 8 reach the neutral element, on
#: Curve25519 (orders 2, 4, 8) or its quadratic twist (order 4 at u = p - 1). X25519 clamps private keys
#: to multiples of 8 (RFC 7748, §5), so agreement with any of these yields the all-zero secret.
LOW_ORDER_POINTS: dict[int, int] = {
    0: 2,
    1: 4,
    325606250916557431795983626356110631294008115727848805560023387167927233504: 8,
    39382357235489614581723060781553021112529911719440698176882885853963445705823: 8,
    X25519_PRIME - 1: 4,
}


def random_seed() -> bytes:
    """32 bytes from the OS CSPRNG (the self-mask seed b_u of Round 1)."""
    return secrets.token_bytes(KEY_BYTES)


def generate_key_pair() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as raw bytes ``(private, public)``, 32 bytes each."""
    sk = X25519PrivateKey.generate()
    return sk.private_bytes_raw(), sk.public_key().public_bytes_raw()


def public_key(private: bytes) -> bytes:
    """The raw X25519 public key of a raw private key."""
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def agree(private: bytes, peer_public: bytes) -> bytes:
    """Raw X25519 shared secret; raises ``SecAggIntegrityError`` for a low-order (malicious) peer key."""
    try:
        return X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # cryptography refuses an all-zero shared secret
        raise SecAggIntegrityError(f"X25519 key agreement failed: {exc}") from exc


def public_key_problem(raw: bytes) -> str | None:
    """Why ``raw`` is not an acceptable X25519 public key of a peer, or None when it is.

    Refused: a length other than 32; a non-canonical encoding — bit 255 set (RFC 7748, §5 masks it) or
    u >= p (processed as u - p) — because it names the same key as another byte string and would slip
    past a byte-wise uniqueness check; and the low-order points of :data:`LOW_ORDER_POINTS`. Keys made by
    :func:`generate_key_pair` are always acceptable.
    """
    if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
        return f"{len(raw) if isinstance(raw, bytes) else type(raw).__name__} bytes long, not {KEY_BYTES}"
    if raw[-1] & 0x80:
        return "not canonically encoded: bit 255 is set (X25519 ignores it, so another encoding names the same key)"
    u = int.from_bytes(raw, "little")
    if u >= X25519_PRIME:
        return (
            f"not canonically encoded: u = p + {u - X25519_PRIME} is at least p = 2^255 - 19 (X25519 reads it as "
            f"u = {u - X25519_PRIME})"
        )
    if u in LOW_ORDER_POINTS:
        what = "the zero point (u = 0" if u == 0 else f"a low-order point (u = {'p - 1' if u == X25519_PRIME - 1 else u}"
        return f"{what}, order {LOW_ORDER_POINTS[u]}: every key agreement with it gives the all-zero secret)"
    return None


def _lp(data: bytes) -> bytes:
    """Length-prefixed field, so concatenations are unambiguous."""
    return struct.pack(">I", len(data)) + data


@functools.lru_cache(maxsize=64)
def _round_salt(round_id: str) -> bytes:
    """HKDF salt of a round: SHA-256 of the domain and the round id (cached: a round derives many keys)."""
    return hashlib.sha256(_DOMAIN + _lp(round_id.encode())).digest()


def derive_key(shared_secret: bytes, *, round_id: str, purpose: str, a: int, b: int) -> bytes:
    """HKDF-SHA256 of a shared secret into a 32-byte key bound to the round, the purpose and the pair.

    The salt is SHA-256 of the domain and round id; the info is the purpose and the ids ``a``, ``b``
    (callers pass them sorted for symmetric keys).
    """
    salt = _round_salt(round_id)
    info = _DOMAIN + _lp(purpose.encode()) + struct.pack(">QQ", a, b)
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(shared_secret)


def associated_data(*, round_id: str, stage: str, sender: int, receiver: int) -> bytes:
    """AES-GCM associated data binding round, stage, sender and receiver (Bonawitz et al. 2017, Round 1)."""
    return _DOMAIN + _lp(round_id.encode()) + _lp(stage.encode()) + struct.pack(">QQ", sender, receiver)


def encrypt(key: bytes, plaintext: bytes, ad: bytes) -> tuple[bytes, bytes]:
    """AES-256-GCM; returns ``(nonce, ciphertext_with_tag)`` with a fresh random 12-byte nonce."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, ad)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """AES-256-GCM decryption; raises ``SecAggIntegrityError`` if the ciphertext, nonce or AD was altered."""
    if len(nonce) != NONCE_BYTES:
        raise SecAggIntegrityError(f"AES-GCM nonce must be {NONCE_BYTES} bytes. Found {len(nonce)}.")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, ad)
    except InvalidTag as exc:
        raise SecAggIntegrityError(
            "AES-GCM authentication failed: the encrypted share was tampered with, or sent for another "
            "round, stage, sender or receiver."
        ) from exc


def _key_commitment(key: bytes, ad: bytes) -> bytes:
    return hashlib.sha256(_DOMAIN + _lp(b"key-commitment") + _lp(ad) + key).digest()


def seal(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """Key-committing AES-256-GCM for a key used once: ``SHA-256(domain, ad, key) || AES-GCM(plaintext)``.

    The commitment binds the key (SHA-256 collision resistance), and AES-GCM decryption under a fixed key
    is a function of the sealed bytes, so whoever later reveals ``key`` can open these bytes to exactly
    one plaintext. The commitment hides nothing it should not: ``key`` is a fresh 256-bit HKDF output.
    ``len(result) == COMMITMENT_BYTES + len(plaintext) + TAG_BYTES``.
    """
    if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError(f"`key` and `nonce` must be {KEY_BYTES} and {NONCE_BYTES} bytes. Found {len(key)}, {len(nonce)}.")
    return _key_commitment(key, ad) + AESGCM(key).encrypt(nonce, plaintext, ad)


def commitment_matches(key: bytes, sealed: bytes, ad: bytes) -> bool:
    """Whether ``key`` is the key ``sealed`` (from :func:`seal`) committed to."""
    return len(key) == KEY_BYTES and secrets.compare_digest(_key_commitment(key, ad), sealed[:COMMITMENT_BYTES])


def open_sealed(key: bytes, nonce: bytes, sealed: bytes, ad: bytes) -> bytes:
    """Inverse of :func:`seal`. Raises ``SecAggIntegrityError`` if ``key`` is not the committed key, or if
    the ciphertext does not authenticate under it (then the sealer made it so: the key is the committed one)."""
    if not commitment_matches(key, sealed, ad):
        raise SecAggIntegrityError("The key does not match the sealed ciphertext's key commitment.")
    return decrypt(key, nonce, sealed[COMMITMENT_BYTES:], ad)


_ZERO_NONCE = bytes(16)
_zeros = bytes(0)  # shared all-zero plaintext for expand_mask, grown to the longest mask asked for; read only


def _zero_plaintext(size: int) -> memoryview:
    """A read-only view of ``size`` zero bytes (one buffer reused, not one allocation per mask)."""
    global _zeros
    if len(_zeros) < size:
        _zeros = bytes(size)
    return memoryview(_zeros)[:size]


def expand_mask(key: bytes, length: int) -> NDArray[np.uint32]:
    """PRG(key): ``length`` uint32 words of the ChaCha20 keystream (little endian). Uniform mod 2^32.

    The keystream is ChaCha20 applied to ``4 * length`` zero bytes, written straight into the returned
    (fresh, writable) array."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"`key` must be {KEY_BYTES} bytes. Found {len(key)}.")
    out = np.empty(length, dtype="<u4")
    encryptor = Cipher(algorithms.ChaCha20(key, _ZERO_NONCE), mode=None).encryptor()
    encryptor.update_into(_zero_plaintext(4 * length), out.view(np.uint8).data)
    return out.astype(np.uint32, copy=False)
