"""Bearer tokens: ``secrets.token_urlsafe(32)`` handed out once, stored only as SHA-256 digests.

A device registers and receives its token; every later request carries ``Authorization: Bearer
<token>``. The server looks the digest up (a token is 256 random bits, so a fast unsalted hash is enough:
nothing to brute-force) and compares with :func:`hmac.compare_digest`. The admin token (deterministic
test control: open a round, close a stage) is given at startup and stored the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["bearer_token", "check_token", "hash_token", "new_token"]

TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh URL-safe token with 256 bits of entropy."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> bytes:
    """SHA-256 of the token's UTF-8 bytes (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def check_token(token: str, digest: bytes) -> bool:
    """True if ``token`` hashes to ``digest`` (constant-time comparison)."""
    return hmac.compare_digest(hash_token(token), digest)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 256:
        return None
    return value
