"""The SQLite layer: WAL, durability settings, migrations, transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from privrec.server_stub.auth import bearer_token, check_token, hash_token, new_token
from privrec.server_stub.db import SCHEMA_VERSION, Database


def test_wal_and_schema(tmp_path: Path) -> None:
    db = Database(tmp_path / "x" / "s.db")
    with db.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "devices", "models", "rounds", "checkins", "messages", "ledger"} <= tables
    db.close()
    Database(tmp_path / "x" / "s.db").close()  # reopening migrates nothing and fails nothing


def test_transaction_rolls_back(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    with pytest.raises(RuntimeError, match="boom"), db.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
        raise RuntimeError("boom")
    assert db.get_meta("a") is None
    with db.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
    assert db.get_meta("a") == "1"


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
