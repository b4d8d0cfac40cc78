"""The device's encrypted local store: interactions, the user vector and round state never touch disk
in clear.

Each record is one file ``<root>/<sha256(record_id)>.rec`` holding ``MAGIC || version (8, big-endian) ||
nonce (12) || AES-256-GCM ciphertext+tag``. The associated data binds the store format, the device id, the
record id and the record's version, so a record copied to another name or another device's store fails
authentication like a tampered one.

* **Key and version ledger, apart from the records**: 256 random bits per device (``AESGCM.generate_key``)
  in ``<keystore>/store.key`` (mode 0600), and the latest version of every record in
  ``<keystore>/versions.rec`` (AES-GCM too). The keystore directory defaults to ``<root>.keystore`` beside
  the store. On a phone both belong in the platform's protected storage — the iOS Keychain or the Android
  Keystore (a version counter in hardware-backed storage), which an attacker who can copy app files
  cannot roll back; on a desktop an attacker who can replace both directories together can.
* **Rollback and deletion are refused**: every write bumps the record's version and the ledger; reading a
  record older than the ledger's version (an old copy put back) or finding a record missing that the
  ledger says exists (a deleted file) raises :class:`StoreIntegrityError`. A crash between writing a
  record and the ledger leaves the record one version ahead, which is accepted and recorded.
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

MAGIC = b"PRS2"
LEGACY_MAGIC = b"PRS1"  # before versions: read as version 0
NONCE_BYTES = 12
VERSION_BYTES = 8
KEY_BYTES = 32
KEY_FILE = "store.key"
LEDGER_FILE = "versions.rec"


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
        key: a 32-byte key; default: the one in the keystore's ``store.key``, generated on first use.
        keystore: where the key and the version ledger live, apart from the records (created with mode
            0700); default ``<root>.keystore``.
    """

    def __init__(
        self, root: Path | str, device_id: str, *, key: bytes | None = None, keystore: Path | str | None = None
    ) -> None:
        if not isinstance(device_id, str) or not device_id:
            raise TypeError(f"`device_id` must be a non-empty str. Found {device_id!r}.")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.keystore = Path(keystore) if keystore is not None else self.root.with_name(self.root.name + ".keystore")
        self.keystore.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.device_id = device_id
        if key is None:
            key = self._load_or_create_key()
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ValueError(f"`key` must be {KEY_BYTES} bytes. Found {len(key) if isinstance(key, bytes) else key!r}.")
        self._aead = AESGCM(key)
        self._versions = self._read_ledger()

    def _load_or_create_key(self) -> bytes:
        path = self.keystore / KEY_FILE
        legacy = self.root / KEY_FILE
        if not path.exists() and legacy.exists():  # stores written before the keystore moved out
            os.replace(legacy, path)
            _fsync_dir(self.root)
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

    def _ad(self, record_id: str, version: int) -> bytes:
        return (b"privrec-store-v2\x00" + self.device_id.encode("utf-8") + b"\x00" + record_id.encode("utf-8")
                + b"\x00" + version.to_bytes(VERSION_BYTES, "big"))

    # ---------------------------------------------------------------------------- version ledger
    def _ledger_ad(self) -> bytes:
        return b"privrec-store-versions-v1\x00" + self.device_id.encode("utf-8")

    def _read_ledger(self) -> dict[str, int]:
        """``{sha256(record_id): version}``; a negative version marks a record deleted at that version."""
        path = self.keystore / LEDGER_FILE
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return {}
        nonce, body = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        try:
            raw = json.loads(self._aead.decrypt(nonce, body, self._ledger_ad()))
        except (InvalidTag, ValueError):
            raise StoreIntegrityError(
                f"The version ledger ({path}) failed authentication: it was modified or the key is wrong."
            ) from None
        if not isinstance(raw, dict) or not all(isinstance(v, int) for v in raw.values()):
            raise StoreIntegrityError(f"The version ledger ({path}) is malformed.")
        return {str(k): int(v) for k, v in raw.items()}

    def _write_ledger(self) -> None:
        nonce = os.urandom(NONCE_BYTES)
        data = json.dumps(self._versions, sort_keys=True).encode("utf-8")
        _atomic_write(self.keystore / LEDGER_FILE, nonce + self._aead.encrypt(nonce, data, self._ledger_ad()))

    def _set_version(self, record_id: str, version: int) -> None:
        self._versions[self._path(record_id).stem] = version
        self._write_ledger()

    def _latest(self, record_id: str) -> int:
        """The ledger's version of a record: > 0 present, < 0 deleted at |v|, 0 never written."""
        return self._versions.get(self._path(record_id).stem, 0)

    # ---------------------------------------------------------------------------- records
    def put(self, record_id: str, data: bytes) -> None:
        """Encrypt and atomically write ``data`` under ``record_id`` (replacing any previous value); the
        record's version and the ledger move one up."""
        rid = self._check_id(record_id)
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"`data` must be bytes. Found {type(data).__name__}.")
        version = abs(self._latest(rid)) + 1
        nonce = os.urandom(NONCE_BYTES)
        header = MAGIC + version.to_bytes(VERSION_BYTES, "big") + nonce
        _atomic_write(self._path(rid), header + self._aead.encrypt(nonce, bytes(data), self._ad(rid, version)))
        self._set_version(rid, version)

    def _decrypt(self, rid: str, path: Path, blob: bytes) -> tuple[int, bytes]:
        legacy = blob.startswith(LEGACY_MAGIC)
        head = len(MAGIC) + (0 if legacy else VERSION_BYTES) + NONCE_BYTES
        if len(blob) < head + 16 or not (legacy or blob.startswith(MAGIC)):
            raise StoreIntegrityError(f"Record {rid!r} ({path.name}) is truncated or not a privrec store record.")
        version = 0 if legacy else int.from_bytes(blob[len(MAGIC) : len(MAGIC) + VERSION_BYTES], "big")
        nonce = blob[head - NONCE_BYTES : head]
        ad = (b"privrec-store-v1\x00" + self.device_id.encode("utf-8") + b"\x00" + rid.encode("utf-8")) if legacy \
            else self._ad(rid, version)
        try:
            return version, self._aead.decrypt(nonce, blob[head:], ad)
        except InvalidTag:
            raise StoreIntegrityError(
                f"Record {rid!r} ({path.name}) failed authentication: it was modified, moved from another "
                "record or device, or the key is wrong."
            ) from None

    def get(self, record_id: str) -> bytes:
        """Decrypt ``record_id``; ``KeyError`` if absent (never written, or deleted through :meth:`delete`),
        :class:`StoreIntegrityError` if tampered with, rolled back to an older version, or deleted behind
        the store's back."""
        rid = self._check_id(record_id)
        path = self._path(rid)
        latest = self._latest(rid)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            if latest > 0:
                raise StoreIntegrityError(
                    f"Record {rid!r} ({path.name}) is missing, but version {latest} was written: it was deleted "
                    "outside the store."
                ) from None
            raise KeyError(record_id) from None
        version, data = self._decrypt(rid, path, blob)
        if latest < 0 and version <= -latest:  # deleted through delete(); the unlink did not finish
            path.unlink(missing_ok=True)
            raise KeyError(record_id)
        if version < latest:
            raise StoreIntegrityError(
                f"Record {rid!r} ({path.name}) is version {version}, older than the latest written ({latest}): "
                "an old copy was put back (rollback)."
            )
        if version > abs(latest):  # a crash between the record write and the ledger write
            self._set_version(rid, version)
        return data

    def __contains__(self, record_id: object) -> bool:
        if not isinstance(record_id, str) or not record_id:
            return False
        return self._latest(record_id) >= 0 and self._path(record_id).exists()

    def delete(self, record_id: str) -> None:
        """Remove ``record_id`` if present (recorded in the ledger, so a restored copy is refused)."""
        rid = self._check_id(record_id)
        path = self._path(rid)
        latest = self._latest(rid)
        if latest > 0:
            self._set_version(rid, -latest)
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
