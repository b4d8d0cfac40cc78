"""The SQLite layer: WAL, durability settings, migrations, transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from privrec.sdk.federated.params import ParamLayout
from privrec.server_stub.auth import bearer_token, check_token, hash_token, new_token
from privrec.server_stub.db import _MIGRATIONS, SCHEMA_VERSION, Database
from privrec.server_stub.global_model import params_from_bytes
from privrec.server_stub.store import ServerStore


def test_wal_and_schema(tmp_path: Path) -> None:
    db = Database(tmp_path / "x" / "s.db")
    with db.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "devices", "models", "rounds", "checkins", "messages", "ledger", "item_features"} <= tables
    db.close()
    Database(tmp_path / "x" / "s.db").close()  # reopening migrates nothing and fails nothing


def test_transaction_rolls_back(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    store = ServerStore(db)
    with pytest.raises(RuntimeError, match="boom"), db.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
        raise RuntimeError("boom")
    assert store.get_meta("a") is None
    store.put_meta("a", "1")
    assert store.get_meta("a") == "1"


def test_version_1_database_migrates_and_its_model_reads_as_the_plain_layout(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE _schema (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO _schema (version) VALUES (1)")
    for statement in _MIGRATIONS[1].split(";"):
        if statement.strip():
            conn.execute(statement)
    V = np.arange(12, dtype=np.float32).reshape(4, 3)
    b = np.asarray([0.5, -1.0, 2.0, 0.0], np.float32)
    old = bytes(save({"item_embedding": V, "item_bias": b}))
    conn.execute("INSERT INTO models (version, round_id, weights, bundle, optimizer, created) VALUES (0, NULL, ?, ?, NULL, 1.0)",
                 (old, b"tar"))
    conn.close()
    store = ServerStore(Database(path))
    row = store.latest_model()
    assert (row.version, row.published, row.clip_norm) == (0, True, None)
    flat = params_from_bytes(row.weights, ParamLayout(num_items=4, dim=3))
    np.testing.assert_array_equal(flat, np.concatenate([V.ravel(), b]))
    with pytest.raises(ValueError, match="do not match the server's layout"):
        params_from_bytes(row.weights, ParamLayout(num_items=4, dim=3, train_bias=False,
                                                   features=np.ones((4, 2), np.float32)))
    store.db.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Database(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute("UPDATE _schema SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match=f"has schema version {SCHEMA_VERSION + 1}; this server knows up to"):
        Database(tmp_path / "s.db")


def test_tokens() -> None:
    t = new_token()
    assert len(t) >= 43 and t != new_token()
    assert check_token(t, hash_token(t)) and not check_token(t + "x", hash_token(t))
    assert bearer_token(f"Bearer {t}") == t and bearer_token("bearer  x ") == "x"
    for bad in (None, "", "Bearer", "Basic abc", "Bearer " + "a" * 300):
        assert bearer_token(bad) is None
