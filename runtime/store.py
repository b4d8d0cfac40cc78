"""The device's encrypted local store: interactions, the user vector and round state never touch disk
in clear.

Each record is one file ``<root>/<sha256(record_id)>.rec`` holding ``MAGIC || nonce (12) || AES-256-GCM
ciphertext+tag``. The associated data binds the store format, the device id and the record id, so a
record copied to another name or another device's store fails authentication like a tampered one.

* **Key**: 256 random bits per device (``AESGCM.generate_key``), kept in ``<root>/store.key`` with mode
  0600 (on a phone this key lives in the Android Keystore / iOS Keychain instead).
* **Nonces**: 96 random bits per write (``os.urandom``); at 2^32 writes per key the collision probability
  stays below 2^-32 (NIST SP 800-38D, §8.3).
* **Writes are atomic**: temp file in the same directory → ``fsync`` → ``os.replace`` → ``fsync`` of the
  directory. A failed or interrupted write leaves the previous version intact.
* **Tamper detection**: any change to a record (or the wrong key, or a record moved between ids or
  devices) raises :class:`StoreIntegrityError` naming the record; nothing is returned.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privrec.sdk.errors import PrivrecError

__all__ = ["EncryptedStore", "StoreIntegrityError"]

MAGIC = b"PRS1"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_FILE = "store.key"


class StoreIntegrityError(PrivrecError, ValueError):
    """A record failed AES-GCM authentication: tampered, truncated, moved, or the wrong key."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename + directory fsync)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class EncryptedStore:
    """A directory of AES-GCM-encrypted records for one device.

    Args:
        root: the store's directory (created with mode 0700 if missing).
        device_id: the owner's id (any non-empty string), bound into every record.
        key: a 32-byte key; default: the one in ``root/store.key``, generated on first use.
    """

    def __init__(self, root: Path | str, device_id: str, *, key: bytes | None = None) -> None:
        if not isinstance(device_id, str) or not device_id:
            raise TypeError(f"`device_id` must be a non-empty str. Found {device_id!r}.")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.device_id = device_id
        if key is None:
            key = self._load_or_create_key()
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ValueError(f"`key` must be {KEY_BYTES} bytes. Found {len(key) if isinstance(key, bytes) else key!r}.")
        self._aead = AESGCM(key)

    def _load_or_create_key(self) -> bytes:
        path = self.root / KEY_FILE
        if path.exists():
            key = path.read_bytes()
            if len(key) != KEY_BYTES:
                raise StoreIntegrityError(f"{path} must hold a {KEY_BYTES}-byte key. Found {len(key)} bytes.")
            return key
        key = AESGCM.generate_key(bit_length=8 * KEY_BYTES)
        _atomic_write(path, key, 0o600)
        return key

    @staticmethod
    def _check_id(record_id: object) -> str:
        if not isinstance(record_id, str) or not record_id or len(record_id) > 200:
            raise TypeError(f"`record_id` must be a non-empty str of at most 200 characters. Found {record_id!r}.")
        return record_id

    def _path(self, record_id: str) -> Path:
        return self.root / (hashlib.sha256(record_id.encode("utf-8")).hexdigest() + ".rec")

    def _ad(self, record_id: str) -> bytes:
        return b"privrec-store-v1\x00" + self.device_id.encode("utf-8") + b"\x00" + record_id.encode("utf-8")

    def put(self, record_id: str, data: bytes) -> None:
        """Encrypt and atomically write ``data`` under ``record_id`` (replacing any previous value)."""
        rid = self._check_id(record_id)
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"`data` must be bytes. Found {type(data).__name__}.")
        nonce = os.urandom(NONCE_BYTES)
        blob = MAGIC + nonce + self._aead.encrypt(nonce, bytes(data), self._ad(rid))
        _atomic_write(self._path(rid), blob)

    def get(self, record_id: str) -> bytes:
        """Decrypt ``record_id``; ``KeyError`` if absent, :class:`StoreIntegrityError` if tampered."""
        rid = self._check_id(record_id)
        path = self._path(rid)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise KeyError(record_id) from None
        if len(blob) < len(MAGIC) + NONCE_BYTES + 16 or not blob.startswith(MAGIC):
            raise StoreIntegrityError(f"Record {rid!r} ({path.name}) is truncated or not a privrec store record.")
        nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], self._ad(rid))
        except InvalidTag:
            raise StoreIntegrityError(
                f"Record {rid!r} ({path.name}) failed authentication: it was modified, moved from another "
                "record or device, or the key is wrong."
            ) from None

    def __contains__(self, record_id: object) -> bool:
        return isinstance(record_id, str) and bool(record_id) and self._path(record_id).exists()

    def delete(self, record_id: str) -> None:
        """Remove ``record_id`` if present."""
        path = self._path(self._check_id(record_id))
        if path.exists():
            path.unlink()
            _fsync_dir(self.root)

    def put_json(self, record_id: str, value: Any) -> None:
        """:meth:`put` of the JSON encoding of ``value``."""
        self.put(record_id, json.dumps(value, sort_keys=True, allow_nan=False).encode("utf-8"))

    def get_json(self, record_id: str, default: Any = None) -> Any:
        """:meth:`get` decoded as JSON; ``default`` if the record does not exist."""
        try:
            return json.loads(self.get(record_id))
        except KeyError:
            return default
