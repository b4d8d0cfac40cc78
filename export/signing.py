"""Signed bundles: an Ed25519 signature (``cryptography``) over the exact bytes of ``manifest.json``.

The manifest lists every other file with its sha256 and size, so one signature over it covers the whole
bundle: the model, the golden self-test, the item titles and the privacy ledger an app shows its users.
The signature lives beside the manifest in ``manifest.sig``::

    {"algorithm": "ed25519", "key_id": "<first 16 hex of sha256(raw public key)>", "signature": "<base64, 64 bytes>"}

It signs the bytes as written, not a canonical re-encoding: the verifier checks the bytes it then parses,
so no reader (Python, Kotlin, Swift) has to reproduce a canonical JSON encoder, and no difference between
JSON parsers can make a signed manifest mean two things (docs/BUNDLE.md, "Signed bundles").

Key files, as ``privrec keys generate`` writes them:

- the private key: PKCS#8 PEM, unencrypted, file mode 0600 (keep it on the publishing machine);
- the public key: the raw 32-byte Ed25519 public key in base64, one line (what an app pins).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import BundleError, SignatureError
from .files import MANIFEST_NAME, SIGNATURE_NAME, parse_json, read_bundle_file, read_manifest_bytes

__all__ = [
    "ALGORITHM",
    "PRIVATE_KEY_NAME",
    "PUBLIC_KEY_NAME",
    "PrivateKeySource",
    "PublicKeySource",
    "check_manifest_signature",
    "generate_signing_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "signature_record",
    "verify_signature",
    "write_signature",
]

ALGORITHM = "ed25519"
PRIVATE_KEY_NAME = "privrec_signing_key.pem"
PUBLIC_KEY_NAME = "privrec_signing_key.pub"
_SIGNATURE_KEYS = frozenset({"algorithm", "key_id", "signature"})
_MAX_SIGNATURE_BYTES = 4096
_MAX_KEY_FILE_BYTES = 64 * 1024
_RAW_PUBLIC_KEY_BYTES = 32
_SIGNATURE_BYTES = 64

PrivateKeySource = Ed25519PrivateKey | Path | str | bytes
"""A private key object, a path to its PEM file, or the PEM bytes."""
PublicKeySource = Ed25519PublicKey | Path | str | bytes
"""A public key object, a path to its base64 file, its base64 text as bytes, or the raw 32 bytes."""


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: PublicKeySource) -> str:
    """The first 16 hex digits of the sha256 of the raw 32-byte public key (what ``manifest.sig`` names)."""
    return hashlib.sha256(_raw(load_public_key(public_key))).hexdigest()[:16]


def _read_key_file(path: Path, what: str) -> bytes:
    size = path.stat().st_size
    if size > _MAX_KEY_FILE_BYTES:
        raise ValueError(f"{what} file {path} holds {size} bytes: not a key file (at most {_MAX_KEY_FILE_BYTES}).")
    return path.read_bytes()


def load_private_key(source: PrivateKeySource) -> Ed25519PrivateKey:
    """An Ed25519 private key from an object, a path to its PKCS#8 PEM file, or the PEM bytes.

    Raises ``TypeError`` for another type and ``ValueError`` when the content is not an unencrypted
    Ed25519 private key.
    """
    if isinstance(source, Ed25519PrivateKey):
        return source
    if isinstance(source, str | Path):
        data = _read_key_file(Path(source), "private key")
    elif isinstance(source, bytes):
        data = source
    else:
        raise TypeError(f"`private_key` must be a path, PEM bytes or an Ed25519PrivateKey. Found {type(source).__name__}.")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError(
            "`private_key` must be an unencrypted PKCS#8 PEM Ed25519 private key, as `privrec keys generate` writes. "
            f"Found one that does not load ({exc})."
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"`private_key` must be an Ed25519 key. Found a {type(key).__name__}.")
    return key


def load_public_key(source: PublicKeySource) -> Ed25519PublicKey:
    """An Ed25519 public key from an object, a path to its base64 file, base64 bytes, or the raw 32 bytes.

    Raises ``TypeError`` for another type and ``ValueError`` when the content is not a 32-byte key.
    """
    if isinstance(source, Ed25519PublicKey):
        return source
    if isinstance(source, str | Path):
        data = _read_key_file(Path(source), "public key")
    elif isinstance(source, bytes):
        data = source
    else:
        raise TypeError(
            f"`public_key` must be a path, base64 bytes, raw bytes or an Ed25519PublicKey. Found {type(source).__name__}."
        )
    if len(data) != _RAW_PUBLIC_KEY_BYTES:
        try:
            data = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "`public_key` must be the base64 of a raw 32-byte Ed25519 public key, as `privrec keys generate` "
                "writes it. Found text that is not base64."
            ) from None
    if len(data) != _RAW_PUBLIC_KEY_BYTES:
        raise ValueError(f"`public_key` must be a raw 32-byte Ed25519 public key. Found {len(data)} bytes.")
    return Ed25519PublicKey.from_public_bytes(data)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (never replacing a file, never wider than ``mode``) and write ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
    finally:
        if fd >= 0:
            os.close(fd)


def generate_signing_key(out_dir: Path | str) -> tuple[Path, Path]:
    """Create a new Ed25519 key pair in ``out_dir``; returns ``(private_key_path, public_key_path)``.

    The private key is PKCS#8 PEM, unencrypted, created with mode 0600: keep it off devices and out of
    version control. The public key is the raw 32 bytes in base64 on one line: pin it in the app.
    Refuses (``FileExistsError``) to replace an existing key.
    """
    out = Path(out_dir)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path, public_path = out / PRIVATE_KEY_NAME, out / PUBLIC_KEY_NAME
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise FileExistsError(f"{path} exists: move it away first (a key is never overwritten).")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_new(private_path, pem, 0o600)
    try:
        _write_new(public_path, base64.b64encode(_raw(key.public_key())) + b"\n", 0o644)
    except BaseException:
        private_path.unlink()
        raise
    return private_path, public_path


def signature_record(manifest_bytes: bytes, private_key: PrivateKeySource) -> dict[str, str]:
    """The ``manifest.sig`` object for these exact manifest bytes."""
    key = load_private_key(private_key)
    return {
        "algorithm": ALGORITHM,
        "key_id": key_id(key.public_key()),
        "signature": base64.b64encode(key.sign(manifest_bytes)).decode("ascii"),
    }


def write_signature(root: Path, manifest_bytes: bytes, private_key: PrivateKeySource) -> Path:
    """Write ``root/manifest.sig`` for ``manifest_bytes`` (atomically: a reader never sees half a file)."""
    record = signature_record(manifest_bytes, private_key)
    path = Path(root) / SIGNATURE_NAME
    tmp = path.with_name(f".{SIGNATURE_NAME}.partial")
    tmp.unlink(missing_ok=True)
    _write_new(tmp, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("ascii"), 0o644)
    os.replace(tmp, path)
    return path


def _bad(message: str) -> SignatureError:
    return SignatureError(f"{SIGNATURE_NAME}: {message}", status="bad")


def check_manifest_signature(root: Path, manifest_bytes: bytes, public_key: Ed25519PublicKey) -> str:
    """Check that ``root/manifest.sig`` is a valid signature of ``manifest_bytes`` by ``public_key``.

    Returns the key id. Raises :class:`SignatureError` (a :class:`BundleError`) naming ``manifest.sig``:
    status ``"absent"`` when there is no signature, ``"bad"`` when it is malformed, names another key, or
    does not verify.
    """
    pinned = key_id(public_key)
    if not os.path.lexists(Path(root) / SIGNATURE_NAME):
        raise SignatureError(
            f"{SIGNATURE_NAME}: missing: the bundle is unsigned, and the reader pins public key {pinned}. "
            "Sign it with `privrec export --sign-key` (or privrec.export.sign_bundle).",
            status="absent",
        )
    try:
        raw = parse_json(read_bundle_file(Path(root), SIGNATURE_NAME, max_bytes=_MAX_SIGNATURE_BYTES), f"{SIGNATURE_NAME}:")
    except SignatureError:
        raise
    except BundleError as exc:
        raise SignatureError(str(exc), status="bad") from None
    if not isinstance(raw, dict) or set(raw) != _SIGNATURE_KEYS:
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise _bad(f"must be a JSON object with keys {sorted(_SIGNATURE_KEYS)}. Found {found}.")
    if raw["algorithm"] != ALGORITHM:
        raise _bad(f"field `algorithm` must be {ALGORITHM!r}. Found {raw['algorithm']!r}.")
    if raw["key_id"] != pinned:
        raise _bad(
            f"field `key_id` is {raw['key_id']!r}, not the pinned public key {pinned!r}: the bundle was signed by "
            "another key (or the app pins the wrong one)."
        )
    try:
        signature = base64.b64decode(str(raw["signature"]), validate=True) if isinstance(raw["signature"], str) else b""
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != _SIGNATURE_BYTES:
        raise _bad(f"field `signature` must be the base64 of a {_SIGNATURE_BYTES}-byte Ed25519 signature.")
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise _bad(
            f"the signature does not verify {MANIFEST_NAME} under public key {pinned}: {MANIFEST_NAME} was changed "
            "after it was signed, or the bundle is corrupt."
        ) from None
    return pinned


def verify_signature(bundle_dir: Path | str, public_key: PublicKeySource) -> bytes:
    """Check a bundle's ``manifest.sig`` against a pinned public key; return the verified ``manifest.json`` bytes.

    Parse these bytes, never the file again: what was verified is what is used. Raises
    :class:`SignatureError` naming ``manifest.sig`` (unsigned, malformed, another key, or manifest changed
    after signing) and :class:`BundleError` when ``manifest.json`` itself cannot be read.
    """
    root = Path(bundle_dir)
    key = load_public_key(public_key)
    data = read_manifest_bytes(root)
    check_manifest_signature(root, data, key)
    return data
