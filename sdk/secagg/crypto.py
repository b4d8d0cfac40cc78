"""Thin wrappers over ``cryptography`` for the primitives of Bonawitz et al. 2017, §3.

* Key agreement (§3.3): X25519, the shared secret stretched by HKDF-SHA256 whose salt is bound to the
  round id and whose info names the purpose (``mask`` / ``encrypt`` / ``self_mask``) and the two
  client ids, so a key is never reused across rounds, purposes or pairs.
* Authenticated encryption (§3.5): AES-256-GCM with a fresh 96-bit random nonce per message; the
  associated data binds the round id, the stage, the sender and the receiver.
* Pseudorandom generator (§3.4): ChaCha20 keyed by a 32-byte key (zero nonce — every key is used for
  exactly one expansion) producing ``D`` little-endian uint32 words.
* Randomness: ``secrets`` (the OS CSPRNG) for seeds; X25519 keys from ``cryptography``.
"""

from __future__ import annotations

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
    "KEY_BYTES",
    "NONCE_BYTES",
    "agree",
    "associated_data",
    "decrypt",
    "derive_key",
    "encrypt",
    "expand_mask",
    "generate_key_pair",
    "public_key",
    "random_seed",
]

KEY_BYTES = 32
NONCE_BYTES = 12
_DOMAIN = b"privrec/secagg/v1"


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


def _lp(data: bytes) -> bytes:
    """Length-prefixed field, so concatenations are unambiguous."""
    return struct.pack(">I", len(data)) + data


def derive_key(shared_secret: bytes, *, round_id: str, purpose: str, a: int, b: int) -> bytes:
    """HKDF-SHA256 of a shared secret into a 32-byte key bound to the round, the purpose and the pair.

    The salt is SHA-256 of the domain and round id; the info is the purpose and the ids ``a``, ``b``
    (callers pass them sorted for symmetric keys).
    """
    salt = hashlib.sha256(_DOMAIN + _lp(round_id.encode())).digest()
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


_ZERO_NONCE = bytes(16)


def expand_mask(key: bytes, length: int) -> NDArray[np.uint32]:
    """PRG(key): ``length`` uint32 words of the ChaCha20 keystream (little endian). Uniform mod 2^32."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"`key` must be {KEY_BYTES} bytes. Found {len(key)}.")
    out = bytearray(4 * length)
    encryptor = Cipher(algorithms.ChaCha20(key, _ZERO_NONCE), mode=None).encryptor()
    encryptor.update_into(bytes(4 * length), out)
    return np.frombuffer(out, dtype="<u4").astype(np.uint32, copy=False)
