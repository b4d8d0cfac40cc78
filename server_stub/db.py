"""SQLite state of the aggregation server: schema, migrations, and one-transaction helpers.

The database runs in WAL mode with ``synchronous=FULL`` (a committed transaction survives a power
loss) and ``secure_delete=ON`` (deleted rows are overwritten with zeros, so a finished round's protocol
messages do not linger in free pages). Every accepted message is committed before it is acknowledged.

Schema (version 2)::

    meta(key PRIMARY KEY, value)                          schema_version, config, admin_token_hash
    devices(device_id INTEGER PRIMARY KEY, token_hash UNIQUE, created)
    models(version PRIMARY KEY, round_id, weights, bundle, optimizer, clip_norm, created)
                                         safetensors {"params"}, tar (NULL until published), safetensors
    item_features(id = 1, data)                           the public item features F (safetensors), if any
    enrolment_codes(code_hash PRIMARY KEY, created, expires, device_id)   operator-issued, one use each
    rounds(round_id PRIMARY KEY, seq UNIQUE, model_version, phase, deadline, opened, registered,
           secagg_config, params, snapshot, masked_sum, outcome)
    checkins(round_id, device_id, participate, PRIMARY KEY(round_id, device_id))
    messages(round_id, device_id, stage, body, received, PRIMARY KEY(round_id, device_id, stage))
    ledger(round_id PRIMARY KEY, event, created)

``snapshot`` is the secure-aggregation server state (:meth:`SecAggServer.to_dict`) at the start of the
current stage; the stage's accepted messages are in ``messages`` (Round-2 rows carry no body: the masked
vector is added to ``masked_sum`` in the same transaction, so no single masked vector is stored).
``clip_norm`` is adaptive clipping's C for the next round. A model's ``bundle`` is written after the round
that made it has committed (the export runs outside the request lock); until then it is NULL.

Every statement that reads or writes these tables lives in :mod:`.store`; this module owns the connection
and the schema.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "Database"]

SCHEMA_VERSION = 3

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE devices (
        device_id INTEGER PRIMARY KEY AUTOINCREMENT,
        token_hash BLOB NOT NULL UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE models (
        version INTEGER PRIMARY KEY,
        round_id TEXT,
        weights BLOB NOT NULL,
        bundle BLOB NOT NULL,
        optimizer BLOB,
        created REAL NOT NULL
    );
    CREATE TABLE rounds (
        round_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        model_version INTEGER NOT NULL,
        phase TEXT NOT NULL,
        deadline REAL NOT NULL,
        opened REAL NOT NULL,
        registered INTEGER NOT NULL,
        secagg_config TEXT,
        params TEXT,
        snapshot TEXT,
        masked_sum BLOB,
        outcome TEXT
    );
    CREATE TABLE checkins (
        round_id TEXT NOT NULL REFERENCES rounds(round_id),
        device_id INTEGER NOT NULL REFERENCES devices(device_id),
        participate INTEGER NOT NULL,
        PRIMARY KEY (round_id, device_id)
    );
    CREATE TABLE messages (
        round_id TEXT NOT NULL REFERENCES rounds(round_id),
        device_id INTEGER NOT NULL REFERENCES devices(device_id),
        stage TEXT NOT NULL,
        body TEXT,
        received REAL NOT NULL,
        PRIMARY KEY (round_id, device_id, stage)
    );
    CREATE TABLE ledger (round_id TEXT PRIMARY KEY, event TEXT NOT NULL, created REAL NOT NULL);
    """,
    # Version 2: bundles are published after the round commits (NULL until then), adaptive clipping's C is
    # kept with each model, and the public item features of a tied table are stored once.
    2: """
    CREATE TABLE models_v2 (
        version INTEGER PRIMARY KEY,
        round_id TEXT,
        weights BLOB NOT NULL,
        bundle BLOB,
        optimizer BLOB,
        clip_norm REAL,
        created REAL NOT NULL
    );
    INSERT INTO models_v2 (version, round_id, weights, bundle, optimizer, created)
        SELECT version, round_id, weights, bundle, optimizer, created FROM models;
    DROP TABLE models;
    ALTER TABLE models_v2 RENAME TO models;
    CREATE TABLE item_features (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL);
    """,
    # Version 3: devices are admitted with a one-time enrolment code the operator issued (stored hashed).
    3: """
    CREATE TABLE enrolment_codes (
        code_hash BLOB PRIMARY KEY,
        created REAL NOT NULL,
        expires REAL NOT NULL,
        device_id INTEGER REFERENCES devices(device_id)
    );
    """,
}


class Database:
    """One SQLite connection shared by the server's threads, serialised by a lock.

    Args:
        path: the database file (created with its parent directory if missing).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only from the first byte: SQLite gives the -wal and -shm files the database file's mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS _schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM _schema").fetchone()
            current = 0 if row is None else int(row[0])
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {current}; this server knows up to {SCHEMA_VERSION}. "
                    "Upgrade privrec."
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            if row is None:
                conn.execute("INSERT INTO _schema (version) VALUES (?)", (SCHEMA_VERSION,))
            else:
                conn.execute("UPDATE _schema SET version = ?", (SCHEMA_VERSION,))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception), holding the lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads (autocommit), holding the lock."""
        with self._lock:
            yield self._conn

    def checkpoint(self) -> None:
        """Fold the WAL into the main file and truncate it (after a round's messages were deleted)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
