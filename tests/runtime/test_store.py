"""The encrypted local store: round trips, tamper detection, binding to record and device, atomic writes."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.runtime.store import EncryptedStore, StoreIntegrityError


def test_round_trip_and_ciphertext_on_disk(tmp_path: Path) -> None:
    store = EncryptedStore(tmp_path / "s", "device-1")
    secret = b"item 242 rated 5 by this user"
    store.put("interactions", secret)
    assert store.get("interactions") == secret
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "s").iterdir())
    assert secret not in on_disk and b"interactions" not in on_disk
    assert "interactions" in store and "other" not in store
    with pytest.raises(KeyError):
        store.get("other")
    store.put_json("j", {"a": [1, 2.5]})
    assert store.get_json("j") == {"a": [1, 2.5]}
    assert store.get_json("missing", "dflt") == "dflt"
    store.delete("j")
    assert "j" not in store


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=4096), record=st.text(min_size=1, max_size=50))
def test_any_bytes_round_trip(tmp_path_factory: pytest.TempPathFactory, data: bytes, record: str) -> None:
    store = EncryptedStore(tmp_path_factory.mktemp("h"), "d")
    store.put(record, data)
    assert store.get(record) == data


def test_key_is_per_device_and_private(tmp_path: Path) -> None:
    a = EncryptedStore(tmp_path / "a", "a")
    b = EncryptedStore(tmp_path / "b", "b")
    key_a, key_b = (tmp_path / "a.keystore" / "store.key").read_bytes(), (tmp_path / "b.keystore" / "store.key").read_bytes()
    assert len(key_a) == 32 and key_a != key_b
    assert stat.S_IMODE(os.stat(tmp_path / "a.keystore" / "store.key").st_mode) == 0o600
    assert not (tmp_path / "a" / "store.key").exists()  # the key is not beside the records
    a.put("x", b"1")
    assert EncryptedStore(tmp_path / "a", "a").get("x") == b"1"  # reopened with the stored key
    assert b.device_id == "b"


@pytest.mark.parametrize("offset", [0, 4, 10, 20, -1])
def test_tampering_is_detected(tmp_path: Path, offset: int) -> None:
    store = EncryptedStore(tmp_path, "dev")
    store.put("user_vector", b"\x00" * 64)
    (path,) = [p for p in tmp_path.iterdir() if p.suffix == ".rec"]
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(StoreIntegrityError, match=r"Record 'user_vector' .*(failed authentication|truncated)"):
        store.get("user_vector")


def test_truncated_record(tmp_path: Path) -> None:
    store = EncryptedStore(tmp_path, "dev")
    store.put("r", b"abc")
    (path,) = [p for p in tmp_path.iterdir() if p.suffix == ".rec"]
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(StoreIntegrityError, match="is truncated or not a privrec store record"):
        store.get("r")


def test_record_moved_between_ids_or_devices_fails(tmp_path: Path) -> None:
    key = os.urandom(32)
    store = EncryptedStore(tmp_path / "one", "alice", key=key)
    store.put("a", b"alice's data")
    store.put("b", b"other")
    src, dst = store._path("a"), store._path("b")
    dst.write_bytes(src.read_bytes())  # swap the ciphertext of "a" into "b"
    with pytest.raises(StoreIntegrityError, match="moved from another record or device"):
        store.get("b")
    other = EncryptedStore(tmp_path / "two", "bob", key=key)  # same key, other device id
    other._path("a").write_bytes(src.read_bytes())
    with pytest.raises(StoreIntegrityError):
        other.get("a")
    with pytest.raises(StoreIntegrityError, match=r"version ledger .* failed authentication"):
        EncryptedStore(tmp_path / "one", "alice", key=os.urandom(32))


def test_failed_write_keeps_the_previous_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = EncryptedStore(tmp_path, "dev")
    store.put("r", b"version 1")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put("r", b"version 2")
    monkeypatch.undo()
    assert store.get("r") == b"version 1"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="`device_id` must be a non-empty str"):
        EncryptedStore(tmp_path, "")
    with pytest.raises(ValueError, match=re.escape("`key` must be 32 bytes. Found 3.")):
        EncryptedStore(tmp_path, "d", key=b"abc")
    store = EncryptedStore(tmp_path, "d")
    with pytest.raises(TypeError, match="`data` must be bytes"):
        store.put("r", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`record_id` must be a non-empty str"):
        store.get("")


def test_rollback_to_an_older_record_is_refused(tmp_path: Path) -> None:
    """The attack: copy an old encrypted record back over the current one."""
    store = EncryptedStore(tmp_path / "s", "dev")
    store.put("interactions", b"v1: liked 3")
    old = store._path("interactions").read_bytes()
    store.put("interactions", b"v2: liked 3, 7")
    store._path("interactions").write_bytes(old)
    with pytest.raises(StoreIntegrityError, match=r"is version 1, older than the latest written \(2\): .*rollback"):
        store.get("interactions")
    with pytest.raises(StoreIntegrityError, match="rollback"):  # a restarted app sees the same
        EncryptedStore(tmp_path / "s", "dev").get("interactions")


def test_a_record_deleted_behind_the_store_is_refused_and_a_real_delete_is_not(tmp_path: Path) -> None:
    store = EncryptedStore(tmp_path / "s", "dev")
    store.put("credentials", b"token")
    store._path("credentials").unlink()  # the attack: delete the file to reset the device's state
    with pytest.raises(StoreIntegrityError, match="is missing, but version 1 was written"):
        EncryptedStore(tmp_path / "s", "dev").get_json("credentials", {})
    store.put("round", b"state")
    copy = store._path("round").read_bytes()
    store.delete("round")
    assert "round" not in store
    with pytest.raises(KeyError):
        store.get("round")
    store._path("round").write_bytes(copy)  # restoring a deleted record does not bring it back
    with pytest.raises(KeyError):
        store.get("round")
    store.put("round", b"new")  # and a new write continues the version sequence
    assert store.get("round") == b"new"


def test_a_crash_between_record_and_ledger_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = EncryptedStore(tmp_path / "s", "dev")
    store.put("r", b"one")

    def crash() -> None:
        raise OSError("power loss")

    monkeypatch.setattr(store, "_write_ledger", crash)
    with pytest.raises(OSError, match="power loss"):
        store.put("r", b"two")  # the record is written, the ledger is not
    monkeypatch.undo()
    reopened = EncryptedStore(tmp_path / "s", "dev")
    assert reopened.get("r") == b"two"
    reopened.put("r", b"three")
    assert EncryptedStore(tmp_path / "s", "dev").get("r") == b"three"


def test_a_store_written_before_versions_is_read_and_its_key_moves_out(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    root = tmp_path / "old"
    root.mkdir()
    key = os.urandom(32)
    (root / "store.key").write_bytes(key)
    store_path = root / (__import__("hashlib").sha256(b"r").hexdigest() + ".rec")
    nonce = os.urandom(12)
    store_path.write_bytes(b"PRS1" + nonce + AESGCM(key).encrypt(nonce, b"legacy", b"privrec-store-v1\x00dev\x00r"))
    store = EncryptedStore(root, "dev")
    assert store.get("r") == b"legacy"
    assert (tmp_path / "old.keystore" / "store.key").read_bytes() == key and not (root / "store.key").exists()
