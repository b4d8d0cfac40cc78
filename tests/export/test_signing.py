"""Signed bundles (export/signing.py, ``sign_bundle``): keys, the signature over manifest.json, and the
attacks it stops: a manifest edited without re-hashing (privacy ledger, titles, fine-tune recipe), every
artifact swapped with consistent new hashes, a stripped signature, and a bundle re-signed by another key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from bundle_edits import edit_manifest, rehash_all
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privrec.export import (
    BundleError,
    SignatureError,
    export_bundle,
    generate_signing_key,
    key_id,
    load_manifest,
    load_private_key,
    load_public_key,
    sign_bundle,
    verify_signature,
)
from privrec.export.files import MANIFEST_NAME, SIGNATURE_NAME
from privrec.export.signing import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME, signature_record
from privrec.sdk.model import ItemModel

# RFC 8032, section 7.1, TEST 1: the secret key, its public key, and the signature of the empty message.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC_B64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
RFC8032_SIGNATURE_B64 = "5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv18FlbviRlUUFDjnoQCw=="
RFC8032_KEY_ID = "21fe31dfa154a261"  # first 16 hex of sha256(raw public key)

Keys = tuple[Path, Path]


def test_signature_record_matches_rfc8032() -> None:
    """Golden values: ``manifest.sig`` over the empty message with the RFC's key (what Kotlin and Swift check too)."""
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    assert signature_record(b"", key) == {"algorithm": "ed25519", "key_id": RFC8032_KEY_ID, "signature": RFC8032_SIGNATURE_B64}
    assert key_id(RFC8032_PUBLIC_B64.encode()) == RFC8032_KEY_ID
    raw = base64.b64decode(RFC8032_PUBLIC_B64)
    assert hashlib.sha256(raw).hexdigest()[:16] == RFC8032_KEY_ID


def test_generate_signing_key_writes_a_private_pem_0600_and_a_base64_public_key(tmp_path: Path) -> None:
    private_path, public_path = generate_signing_key(tmp_path / "keys")
    assert (private_path.name, public_path.name) == (PRIVATE_KEY_NAME, PUBLIC_KEY_NAME)
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    text = public_path.read_text()
    assert text.endswith("\n") and len(base64.b64decode(text.strip(), validate=True)) == 32
    private = load_private_key(private_path)
    public = load_public_key(public_path)
    assert public.public_bytes_raw() == private.public_key().public_bytes_raw()
    assert re.fullmatch(r"[0-9a-f]{16}", key_id(public_path))
    with pytest.raises(FileExistsError, match=r"exists: move it away first \(a key is never overwritten\)"):
        generate_signing_key(tmp_path / "keys")


def test_keys_load_from_paths_bytes_and_objects(signing_keys: Keys) -> None:
    private_path, public_path = signing_keys
    private = load_private_key(private_path)
    assert load_private_key(str(private_path)).private_bytes_raw() == private.private_bytes_raw()
    assert load_private_key(private_path.read_bytes()).private_bytes_raw() == private.private_bytes_raw()
    assert load_private_key(private) is private
    raw = private.public_key().public_bytes_raw()
    for source in (public_path, str(public_path), public_path.read_bytes(), raw, private.public_key()):
        assert load_public_key(source).public_bytes_raw() == raw


@pytest.mark.parametrize(
    ("loader", "source", "error", "message"),
    [
        (load_private_key, 42, TypeError, r"`private_key` must be a path, PEM bytes or an Ed25519PrivateKey\. Found int\."),
        (load_private_key, b"not a pem", ValueError, r"must be an unencrypted PKCS#8 PEM Ed25519 private key"),
        (load_public_key, 4.2, TypeError, r"`public_key` must be a path, base64 bytes, raw bytes or an Ed25519PublicKey"),
        (load_public_key, b"@@@ not base64 @@@", ValueError, r"Found text that is not base64"),
        (load_public_key, base64.b64encode(bytes(31)), ValueError, r"raw 32-byte Ed25519 public key\. Found 31 bytes\."),
    ],
)
def test_bad_keys_are_refused(loader: Callable[[object], object], source: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        loader(source)


def test_a_non_ed25519_private_key_is_refused() -> None:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match=r"`private_key` must be an Ed25519 key\. Found a .*RSAPrivateKey"):
        load_private_key(pem)


def test_export_signs_the_exact_manifest_bytes(make_bundle: Callable[..., Path], signing_keys: Keys) -> None:
    bundle = make_bundle(sign_key=signing_keys[0])
    sig = json.loads((bundle / SIGNATURE_NAME).read_text())
    assert set(sig) == {"algorithm", "key_id", "signature"}
    assert sig["algorithm"] == "ed25519" and sig["key_id"] == key_id(signing_keys[1])
    data = (bundle / MANIFEST_NAME).read_bytes()
    load_public_key(signing_keys[1]).verify(base64.b64decode(sig["signature"]), data)  # raises if invalid
    assert verify_signature(bundle, signing_keys[1]) == data
    assert load_manifest(bundle, public_key=signing_keys[1]).files == json.loads(data)["files"]
    assert SIGNATURE_NAME not in json.loads(data)["files"]  # the signature is beside the manifest, never listed


def test_sign_bundle_signs_an_existing_bundle_and_refuses_a_tampered_one(
    make_bundle: Callable[..., Path], signing_keys: Keys
) -> None:
    bundle = make_bundle()
    assert not (bundle / SIGNATURE_NAME).exists()
    with pytest.raises(SignatureError, match=r"^manifest\.sig: missing: the bundle is unsigned") as info:
        load_manifest(bundle, public_key=signing_keys[1])
    assert info.value.status == "absent"
    assert sign_bundle(bundle, signing_keys[0]) == bundle / SIGNATURE_NAME
    load_manifest(bundle, public_key=signing_keys[1])

    other = make_bundle()
    (other / "golden.json").write_text("{}")
    with pytest.raises(BundleError, match=r"^golden\.json: size mismatch"):
        sign_bundle(other, signing_keys[0])
    assert not (other / SIGNATURE_NAME).exists()


def test_a_bad_sign_key_fails_before_anything_is_written(tmp_path: Path, small_model: ItemModel) -> None:
    with pytest.raises(ValueError, match=r"`private_key` must be an unencrypted PKCS#8 PEM"):
        export_bundle(small_model, tmp_path / "b", formats=("onnx",), sign_key=b"garbage")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------- the attacks
@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("the privacy ledger's epsilon", lambda d: d["privacy"].update(mode="central", epsilon=0.1, delta=1e-6)),
        ("an item title", lambda d: d["items"][0].update(title="Buy now at evil.example")),
        ("finetune.calls", lambda d: d["finetune"].update(calls=1)),
        ("one byte of whitespace", lambda d: None),
    ],
)
def test_editing_the_manifest_without_rehashing_is_refused(
    make_bundle: Callable[..., Path], signing_keys: Keys, what: str, edit: Callable[[dict[str, object]], None]
) -> None:
    """None of these touch a listed file, so every sha256 still matches: only the signature can tell."""
    items = [{"index": i, "id": str(i), "title": f"t{i}"} for i in range(200)]
    bundle = make_bundle(items=items, sign_key=signing_keys[0])
    edit_manifest(bundle, edit)  # rewrites the file (json.dumps changes the whitespace even for a no-op edit)
    load_manifest(bundle)  # still self-consistent: the hashes alone accept it
    message = r"^manifest\.sig: the signature does not verify manifest\.json under public key"
    with pytest.raises(SignatureError, match=message) as info:
        load_manifest(bundle, public_key=signing_keys[1])
    assert info.value.status == "bad", what


def test_swapping_every_artifact_with_consistent_hashes_is_refused(
    make_bundle: Callable[..., Path], make_model: Callable[..., ItemModel], signing_keys: Keys
) -> None:
    bundle = make_bundle(make_model(200, 8, seed=0), sign_key=signing_keys[0])
    evil = make_bundle(make_model(200, 8, seed=9))
    for rel in json.loads((bundle / MANIFEST_NAME).read_text())["files"]:
        shutil.copy(evil / rel, bundle / rel)
    rehash_all(bundle)
    load_manifest(bundle)  # every hash and size agrees with the swapped files
    with pytest.raises(SignatureError, match=r"^manifest\.sig: the signature does not verify manifest\.json"):
        load_manifest(bundle, public_key=signing_keys[1])


def test_a_stripped_or_foreign_signature_is_refused(make_bundle: Callable[..., Path], signing_keys: Keys, tmp_path: Path) -> None:
    bundle = make_bundle(sign_key=signing_keys[0])
    attacker = Ed25519PrivateKey.generate()
    # Re-signed by the attacker's key: manifest.sig names that key.
    sign_bundle(bundle, attacker)
    message = r"^manifest\.sig: field `key_id` is '[0-9a-f]{16}', not the pinned public key"
    with pytest.raises(SignatureError, match=message) as info:
        load_manifest(bundle, public_key=signing_keys[1])
    assert info.value.status == "bad"
    # ... claiming the pinned key's id: the signature itself does not verify.
    record = json.loads((bundle / SIGNATURE_NAME).read_text())
    record["key_id"] = key_id(signing_keys[1])
    (bundle / SIGNATURE_NAME).write_text(json.dumps(record))
    with pytest.raises(SignatureError, match=r"the signature does not verify manifest\.json"):
        load_manifest(bundle, public_key=signing_keys[1])
    # Stripped.
    (bundle / SIGNATURE_NAME).unlink()
    with pytest.raises(SignatureError, match=r"^manifest\.sig: missing: the bundle is unsigned") as info:
        load_manifest(bundle, public_key=signing_keys[1])
    assert info.value.status == "absent"
    # A link to a valid signature elsewhere is not a file of the bundle.
    good = make_bundle(sign_key=signing_keys[0])
    os.symlink(good / SIGNATURE_NAME, bundle / SIGNATURE_NAME)
    with pytest.raises(SignatureError, match=r"^manifest\.sig: 'manifest\.sig' is a symbolic link"):
        load_manifest(bundle, public_key=signing_keys[1])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", r"^manifest\.sig: not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, r"^manifest\.sig: more than the 4096 bytes|^manifest\.sig: \d+ bytes is more than"),
        (b"[]", r"must be a JSON object with keys \['algorithm', 'key_id', 'signature'\]\. Found list\."),
        (b'{"algorithm": "rsa", "key_id": "x", "signature": "x"}', r"field `algorithm` must be 'ed25519'\. Found 'rsa'\."),
        (b'{"algorithm": "ed25519", "key_id": "KEY", "signature": "AAAA", "extra": 1}', r"Found \['algorithm', 'extra'"),
        (b'{"algorithm": "ed25519", "key_id": "KEY", "signature": "AAAA"}', r"field `signature` must be the base64 of a 64-byte"),
        (b'{"algorithm": "ed25519", "key_id": "KEY", "signature": 5}', r"field `signature` must be the base64 of a 64-byte"),
    ],
)
def test_a_malformed_signature_file_is_refused(
    make_bundle: Callable[..., Path], signing_keys: Keys, content: bytes, message: str
) -> None:
    bundle = make_bundle(sign_key=signing_keys[0])
    (bundle / SIGNATURE_NAME).write_bytes(content.replace(b"KEY", key_id(signing_keys[1]).encode()))
    with pytest.raises(SignatureError, match=message) as info:
        verify_signature(bundle, signing_keys[1])
    assert info.value.status == "bad"


def test_the_signature_is_checked_before_the_manifest_is_parsed(make_bundle: Callable[..., Path], signing_keys: Keys) -> None:
    """A manifest an attacker made unparseable (or hostile) is refused by the signature, never parsed."""
    bundle = make_bundle(sign_key=signing_keys[0])
    (bundle / MANIFEST_NAME).write_bytes(b"[" * 200_000)
    with pytest.raises(SignatureError, match=r"^manifest\.sig: the signature does not verify"):
        load_manifest(bundle, public_key=signing_keys[1])


def test_verify_signature_needs_a_key_object_of_the_right_kind(make_bundle: Callable[..., Path], signing_keys: Keys) -> None:
    bundle = make_bundle(sign_key=signing_keys[0])
    public = load_public_key(signing_keys[1])
    assert isinstance(public, Ed25519PublicKey)
    assert verify_signature(bundle, public) == (bundle / MANIFEST_NAME).read_bytes()
    with pytest.raises(TypeError, match=r"`public_key` must be a path"):
        verify_signature(bundle, 123)  # type: ignore[arg-type]
