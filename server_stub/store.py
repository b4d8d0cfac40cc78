"""Every SQL statement of the aggregation server, each method one transaction (or one consistent read).

:class:`ServerStore` is the only code that talks SQL to the :class:`~.db.Database` (which owns the
connection and the schema). The round state machine (:mod:`.rounds`) and the HTTP layer (:mod:`.app`) call
these methods; a method that changes several tables does so in one ``BEGIN IMMEDIATE`` transaction, so a
crash leaves either all of it or none.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from privrec.sdk.secagg import ServerStage

from .db import Database

__all__ = ["AdmissionError", "DuplicateError", "ModelRow", "ServerStore"]

_FINAL = (ServerStage.COMPLETED, ServerStage.ABORTED)


class AdmissionError(Exception):
    """An enrolment code that is unknown, already used or expired."""


class DuplicateError(Exception):
    """A row that must be unique already exists (a replayed check-in or message)."""


@dataclass(frozen=True)
class ModelRow:
    """One stored model version.

    Attributes:
        version: the model version (0 = initial).
        weights: the flat parameters as safetensors bytes.
        optimizer: the server optimizer's state (safetensors bytes, empty/None before the first step).
        clip_norm: adaptive clipping's C for the next round, or None (fixed C).
        published: whether its bundle has been written.
    """

    version: int
    weights: bytes
    optimizer: bytes | None
    clip_norm: float | None
    published: bool


class ServerStore:
    """The server's persistent state, behind methods named for what they do.

    Args:
        db: the open database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------------------------- meta
    def get_meta(self, key: str) -> str | None:
        """The value stored under ``key`` in ``meta``, or None."""
        with self.db.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (replacing any earlier value)."""
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------------------------- devices
    def add_device(self, token_hash: bytes, created: float) -> int:
        """Insert a device with its hashed token; returns its id."""
        with self.db.transaction() as conn:
            cur = conn.execute("INSERT INTO devices (token_hash, created) VALUES (?, ?)", (token_hash, created))
            return int(cur.lastrowid or 0)

    def add_enrolment_codes(self, code_hashes: list[bytes], *, created: float, expires: float) -> None:
        """Store operator-issued enrolment codes (hashed), each good for one device until ``expires``."""
        with self.db.transaction() as conn:
            conn.executemany("INSERT INTO enrolment_codes (code_hash, created, expires, device_id) VALUES (?, ?, ?, NULL)",
                             [(h, created, expires) for h in code_hashes])

    def admit_device(self, code_hash: bytes, token_hash: bytes, now: float) -> int:
        """In one transaction: consume an unused, unexpired enrolment code and insert the device; its id.

        Raises :class:`AdmissionError` for an unknown, used or expired code (nothing is written).
        """
        with self.db.transaction() as conn:
            row = conn.execute("SELECT expires, device_id FROM enrolment_codes WHERE code_hash = ?", (code_hash,)).fetchone()
            if row is None:
                raise AdmissionError("unknown enrolment code")
            if row[1] is not None:
                raise AdmissionError("this enrolment code was already used")
            if float(row[0]) < now:
                raise AdmissionError("this enrolment code has expired")
            cur = conn.execute("INSERT INTO devices (token_hash, created) VALUES (?, ?)", (token_hash, now))
            device_id = int(cur.lastrowid or 0)
            conn.execute("UPDATE enrolment_codes SET device_id = ? WHERE code_hash = ?", (device_id, code_hash))
        return device_id

    def device_for_token(self, token_hash: bytes) -> int | None:
        """The id of the device with this hashed token, or None."""
        with self.db.read() as conn:
            row = conn.execute("SELECT device_id FROM devices WHERE token_hash = ?", (token_hash,)).fetchone()
        return None if row is None else int(row[0])

    def count_devices(self) -> int:
        """How many devices are registered."""
        with self.db.read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM devices").fetchone()[0])

    # ------------------------------------------------------------------------------------- models
    def has_model(self) -> bool:
        """Whether any model version is stored."""
        with self.db.read() as conn:
            return bool(conn.execute("SELECT COUNT(*) FROM models").fetchone()[0])

    def add_initial_model(self, weights: bytes, clip_norm: float | None, created: float) -> None:
        """Store model version 0 (unpublished)."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO models (version, round_id, weights, bundle, optimizer, clip_norm, created) "
                "VALUES (0, NULL, ?, NULL, NULL, ?, ?)",
                (weights, clip_norm, created),
            )

    def latest_model(self) -> ModelRow:
        """The newest model version (one always exists once the server has started)."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT version, weights, optimizer, clip_norm, bundle IS NOT NULL FROM models "
                "ORDER BY version DESC LIMIT 1"
            ).fetchone()
        if row is None:
            raise LookupError("the server holds no model yet")
        return ModelRow(int(row[0]), bytes(row[1]), None if row[2] is None else bytes(row[2]),
                        None if row[3] is None else float(row[3]), bool(row[4]))

    def model_weights(self, version: int) -> bytes:
        """The flat parameters of ``version``."""
        with self.db.read() as conn:
            row = conn.execute("SELECT weights FROM models WHERE version = ?", (version,)).fetchone()
        if row is None:
            raise LookupError(f"no model version {version}")
        return bytes(row[0])

    def latest_published(self) -> tuple[int, bytes] | None:
        """``(version, bundle tar)`` of the newest published model, or None before the first publication."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT version, bundle FROM models WHERE bundle IS NOT NULL ORDER BY version DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def unpublished_versions(self) -> list[int]:
        """Model versions whose bundle has not been written yet (oldest first)."""
        with self.db.read() as conn:
            return [int(r[0]) for r in conn.execute("SELECT version FROM models WHERE bundle IS NULL ORDER BY version")]

    def publish_bundle(self, version: int, bundle: bytes) -> None:
        """Store the bundle of ``version`` (once; a second publication of the same version is ignored)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE models SET bundle = ? WHERE version = ? AND bundle IS NULL", (bundle, version))

    def item_features(self) -> bytes | None:
        """The stored public item features (safetensors bytes), or None."""
        with self.db.read() as conn:
            row = conn.execute("SELECT data FROM item_features WHERE id = 1").fetchone()
        return None if row is None else bytes(row[0])

    def put_item_features(self, data: bytes) -> None:
        """Store the public item features (once, when the database is created)."""
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO item_features (id, data) VALUES (1, ?)", (data,))

    # ------------------------------------------------------------------------------------- rounds
    @staticmethod
    def _row(cur: sqlite3.Cursor) -> dict[str, Any] | None:
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cur.description], row, strict=True))

    def round_row(self, round_id: str) -> dict[str, Any] | None:
        """Every column of one round, or None."""
        with self.db.read() as conn:
            return self._row(conn.execute("SELECT * FROM rounds WHERE round_id = ?", (round_id,)))

    def active_round(self) -> dict[str, Any] | None:
        """The newest round that has neither completed nor aborted, or None."""
        with self.db.read() as conn:
            return self._row(conn.execute(
                "SELECT * FROM rounds WHERE phase NOT IN (?, ?) ORDER BY seq DESC LIMIT 1", _FINAL))

    def latest_round_id(self) -> str | None:
        """The id of the newest round, or None."""
        with self.db.read() as conn:
            row = conn.execute("SELECT round_id FROM rounds ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def round_phase(self, round_id: str) -> str | None:
        """The stored phase of a round, or None for an unknown round."""
        with self.db.read() as conn:
            row = conn.execute("SELECT phase FROM rounds WHERE round_id = ?", (round_id,)).fetchone()
        return None if row is None else str(row[0])

    def completed_rounds(self) -> int:
        """How many rounds completed."""
        with self.db.read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM rounds WHERE phase = ?", (ServerStage.COMPLETED,)).fetchone()[0])

    def open_round(self, *, make_id: Any, model_version: int, phase: str, deadline: float, opened: float) -> dict[str, Any]:
        """Insert a new round (``make_id(seq)`` names it); returns its row values."""
        with self.db.transaction() as conn:
            seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM rounds").fetchone()[0]) + 1
            registered = int(conn.execute("SELECT COUNT(*) FROM devices").fetchone()[0])
            round_id = str(make_id(seq))
            conn.execute(
                "INSERT INTO rounds (round_id, seq, model_version, phase, deadline, opened, registered) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (round_id, seq, model_version, phase, deadline, opened, registered),
            )
        return {"round_id": round_id, "seq": seq, "model_version": model_version, "phase": phase,
                "deadline": deadline, "registered": registered, "params": None}

    def start_protocol(self, round_id: str, *, phase: str, deadline: float, secagg_config: dict[str, Any],
                       params: dict[str, Any], snapshot: dict[str, Any]) -> None:
        """Enrolment closed: store the secure-aggregation config, the round's parameters and the first snapshot."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE rounds SET phase = ?, deadline = ?, secagg_config = ?, params = ?, snapshot = ? WHERE round_id = ?",
                (phase, deadline, json.dumps(secagg_config), json.dumps(params), json.dumps(snapshot), round_id),
            )

    def next_stage(self, round_id: str, *, phase: str, deadline: float, snapshot: dict[str, Any]) -> None:
        """A protocol stage closed: store the next stage's snapshot (the running masked sum is cleared)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE rounds SET phase = ?, deadline = ?, snapshot = ?, masked_sum = NULL WHERE round_id = ?",
                (phase, deadline, json.dumps(snapshot), round_id),
            )

    @staticmethod
    def _close(conn: sqlite3.Connection, round_id: str, phase: str, outcome: dict[str, Any]) -> None:
        conn.execute(
            "UPDATE rounds SET phase = ?, snapshot = NULL, masked_sum = NULL, outcome = ? WHERE round_id = ?",
            (phase, json.dumps(outcome), round_id),
        )
        conn.execute("DELETE FROM messages WHERE round_id = ?", (round_id,))

    def abort_round(self, round_id: str, outcome: dict[str, Any]) -> None:
        """Close a round as aborted and delete its protocol messages."""
        with self.db.transaction() as conn:
            self._close(conn, round_id, ServerStage.ABORTED, outcome)

    def complete_round(
        self, round_id: str, *, outcome: dict[str, Any], version: int, weights: bytes, optimizer: bytes,
        clip_norm: float | None, event: dict[str, Any] | None, now: float,
    ) -> None:
        """In one transaction: store the new model (unpublished), the round's ledger event, and close the round."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO models (version, round_id, weights, bundle, optimizer, clip_norm, created) "
                "VALUES (?, ?, ?, NULL, ?, ?, ?)",
                (version, round_id, weights, optimizer, clip_norm, now),
            )
            if event is not None:
                conn.execute("INSERT INTO ledger (round_id, event, created) VALUES (?, ?, ?)",
                             (round_id, json.dumps(event), now))
            self._close(conn, round_id, ServerStage.COMPLETED, outcome)

    # ------------------------------------------------------------------------------------- check-ins
    def check_in(self, round_id: str, device_id: int, participate: bool) -> tuple[int, int, int]:
        """Record a device's sampling outcome; returns ``(checked in so far, of them participating, registered
        devices)``.

        Raises :class:`DuplicateError` when the device already checked in to this round.
        """
        try:
            with self.db.transaction() as conn:
                conn.execute("INSERT INTO checkins (round_id, device_id, participate) VALUES (?, ?, ?)",
                             (round_id, device_id, int(participate)))
                checked, joined = conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(participate), 0) FROM checkins WHERE round_id = ?", (round_id,)
                ).fetchone()
                registered = int(conn.execute("SELECT COUNT(*) FROM devices").fetchone()[0])
        except sqlite3.IntegrityError:
            raise DuplicateError(f"device {device_id} already checked in to round {round_id!r}") from None
        return int(checked), int(joined), registered

    def checkin_of(self, round_id: str, device_id: int) -> bool | None:
        """A device's recorded sampling outcome for a round, or None if it has not checked in."""
        with self.db.read() as conn:
            row = conn.execute("SELECT participate FROM checkins WHERE round_id = ? AND device_id = ?",
                               (round_id, device_id)).fetchone()
        return None if row is None else bool(row[0])

    def participants(self, round_id: str) -> list[int]:
        """The devices that checked in to take part, by id."""
        with self.db.read() as conn:
            return [int(r[0]) for r in conn.execute(
                "SELECT device_id FROM checkins WHERE round_id = ? AND participate = 1 ORDER BY device_id", (round_id,))]

    # ------------------------------------------------------------------------------------- messages
    def has_message(self, round_id: str, device_id: int, stage: str) -> bool:
        """Whether the device's message for this stage was already accepted."""
        with self.db.read() as conn:
            return conn.execute("SELECT 1 FROM messages WHERE round_id = ? AND device_id = ? AND stage = ?",
                                (round_id, device_id, stage)).fetchone() is not None

    def stage_messages(self, round_id: str, stage: str) -> list[tuple[int, str | None]]:
        """``(device_id, body)`` of a stage's accepted messages in arrival order (Round-2 bodies are None)."""
        with self.db.read() as conn:
            return [(int(d), None if b is None else str(b)) for d, b in conn.execute(
                "SELECT device_id, body FROM messages WHERE round_id = ? AND stage = ? ORDER BY received",
                (round_id, stage))]

    def accept_message(self, round_id: str, device_id: int, stage: str, body: dict[str, Any] | None,
                       masked_sum: bytes | None, now: float) -> None:
        """Make one accepted message durable; a Round-2 message updates the running masked sum instead of
        storing its vector. Raises :class:`DuplicateError` for a second message of the same stage."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO messages (round_id, device_id, stage, body, received) VALUES (?, ?, ?, ?, ?)",
                    (round_id, device_id, stage, None if body is None else json.dumps(body), now),
                )
                if masked_sum is not None:
                    conn.execute("UPDATE rounds SET masked_sum = ? WHERE round_id = ?", (masked_sum, round_id))
        except sqlite3.IntegrityError:
            raise DuplicateError(f"device {device_id} already sent its {stage!r} message") from None

    # ------------------------------------------------------------------------------------- ledger
    def ledger_events(self, up_to_version: int | None = None) -> list[dict[str, Any]]:
        """The completed rounds' privacy events in round order; with ``up_to_version``, only those of the
        rounds up to the one that made that model version (none for version 0)."""
        query = "SELECT l.event FROM ledger l JOIN rounds r ON r.round_id = l.round_id"
        args: tuple[Any, ...] = ()
        if up_to_version is not None:
            query += (" WHERE r.seq <= COALESCE((SELECT r2.seq FROM models m JOIN rounds r2 ON r2.round_id = m.round_id"
                      " WHERE m.version = ?), 0)")
            args = (up_to_version,)
        with self.db.read() as conn:
            rows = conn.execute(query + " ORDER BY r.seq", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def checkpoint(self) -> None:
        """Fold the WAL into the database file (after a round's messages were deleted)."""
        self.db.checkpoint()
