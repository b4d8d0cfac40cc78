"""The round lifecycle: enrolment, the secure-aggregation stages with deadlines, and the model update.

A round moves through these phases (the protocol stages are those of
:class:`privrec.sdk.secagg.ServerStage`, Bonawitz et al. 2017, Fig. 4)::

    enrolling → advertise_keys → share_keys → masked_input_collection → unmasking → completed
                      (enrolment or any stage may end in → aborted)

* **enrolling**: every registered device checks in with its Poisson-sampling outcome (drawn on the
  device with probability q). Enrolment closes when every registered device has checked in, when the
  deadline passes, or on an admin call; fewer than ``min_participants`` participants abort the round.
* **protocol stages**: the participants' messages go to a :class:`~privrec.sdk.secagg.SecAggServer`;
  a stage closes when every expected device answered, when its deadline passes (the silent devices are
  dropouts), or on an admin call. Too few survivors abort the round and leave the model unchanged.
* **completed**: the unmasked sum (mod 2^32) is decoded, central DP noise N(0, (Z·C)²) is added in mode
  ``central``, the sum is divided by the expected cohort q·N (DP-FedAvg, McMahan et al. 2018, Alg. 1),
  applied with the server step, the model version is bumped and the ledger extended — in one transaction.

Durability: each accepted message is committed (``messages`` row; Round-2 vectors only into the running
``masked_sum``) before it is acknowledged. On start the active round is rebuilt from the stage snapshot
plus the current stage's messages, so a restarted server resumes with every accepted contribution.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import secrets
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privrec.sdk.federated.server_opt import ServerOptimizer, make_server_optimizer
from privrec.sdk.privacy import PrivacyEvent, central_noise_std, distributed_noise_std, event_from_dict
from privrec.sdk.secagg import (
    FixedPointEncoder,
    MaskedInput,
    SecAggAbortedError,
    SecAggConfig,
    SecAggIntegrityError,
    SecAggMessageError,
    SecAggServer,
    SecAggStageError,
    ServerStage,
    message_from_dict,
)

from .auth import hash_token, new_token
from .config import ServerConfig
from .db import Database
from .global_model import (
    flatten,
    initial_model,
    model_from_bytes,
    model_to_bytes,
    optimizer_from_bytes,
    optimizer_to_bytes,
    pack_bundle,
    unflatten,
)
from .ledger import build_ledger, round_event
from .logging_setup import log_event

__all__ = ["ENROLLING", "ApiError", "RoundManager"]

ENROLLING = "enrolling"
_FINAL = (ServerStage.COMPLETED, ServerStage.ABORTED)
#: Extra clip range of the fixed-point encoding per unit of a device's noise std (distributed mode): the
#: encoding clips coordinates to ±(C + 8σ), which a Gaussian share exceeds with probability < 1e-15.
_NOISE_SIGMAS = 8.0


class ApiError(Exception):
    """An error the HTTP layer turns into ``status`` with ``{"detail": detail}``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Live:
    """The active round in memory (the database is the source of truth)."""

    def __init__(self, row: dict[str, Any], server: SecAggServer | None) -> None:
        self.round_id: str = row["round_id"]
        self.seq: int = row["seq"]
        self.model_version: int = row["model_version"]
        self.phase: str = row["phase"]
        self.deadline: float = row["deadline"]
        self.registered: int = row["registered"]
        self.params: dict[str, Any] | None = json.loads(row["params"]) if row["params"] else None
        self.server = server


class RoundManager:
    """All server state transitions, each in one SQLite transaction, serialised by one lock.

    Args:
        db: the open database.
        config: the server settings.
        logger: where structured events go.
        clock: wall-clock seconds (injectable for tests).
    """

    def __init__(
        self,
        db: Database,
        config: ServerConfig,
        logger: logging.Logger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db, self.config, self.log, self.clock = db, config, logger, clock
        self._lock = threading.RLock()
        self._noise = config.dp.make_noise()
        self._ledger_cache: tuple[int, dict[str, Any]] | None = None
        #: Called with ``(round_id, encoded_sum uint32[D], survivors)`` when a round completes (tests, audits).
        self.aggregate_observer: Callable[[str, NDArray[np.uint32], tuple[int, ...]], None] | None = None
        self._ensure_model()
        self._live = self._load_live()
        live = self._live
        if live is not None and live.server is not None and not live.server.pending():
            with self._lock:
                self._advance(live)  # every answer arrived before the restart: close the stage now

    # ------------------------------------------------------------------------------------- startup
    def _ensure_model(self) -> None:
        with self.db.read() as conn:
            row = conn.execute("SELECT COUNT(*) FROM models").fetchone()
        if row[0]:
            return
        cfg = self.config
        model = initial_model(num_items=cfg.num_items, dim=cfg.dim, seed=cfg.init_seed, std=cfg.init_std)
        privacy = build_ledger(cfg.dp, []).to_manifest()
        bundle = pack_bundle(model, privacy=privacy)
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO models (version, round_id, weights, bundle, created) VALUES (0, NULL, ?, ?, ?)",
                (model_to_bytes(model), bundle, self.clock()),
            )
        log_event(self.log, "model_initialised", version=0, num_items=cfg.num_items, dim=cfg.dim)

    def _round_row(self, conn: Any, round_id: str) -> dict[str, Any] | None:
        cur = conn.execute("SELECT * FROM rounds WHERE round_id = ?", (round_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cur.description], row, strict=True))

    def _load_live(self) -> _Live | None:
        with self.db.read() as conn:
            cur = conn.execute(
                "SELECT round_id FROM rounds WHERE phase NOT IN (?, ?) ORDER BY seq DESC LIMIT 1", _FINAL
            )
            found = cur.fetchone()
            if found is None:
                return None
            row = self._round_row(conn, found[0])
            if row is None:  # pragma: no cover - just selected
                return None
            server: SecAggServer | None = None
            if row["phase"] != ENROLLING:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # the threshold warning was logged at enrolment
                    server = SecAggServer.from_dict(json.loads(row["snapshot"]))
                stage = server.stage
                msgs = conn.execute(
                    "SELECT device_id, body FROM messages WHERE round_id = ? AND stage = ? ORDER BY received",
                    (row["round_id"], stage),
                ).fetchall()
                if stage == ServerStage.MASKED_INPUT_COLLECTION:
                    if row["masked_sum"] is not None:
                        server.state.masked_sum = np.frombuffer(row["masked_sum"], dtype="<u4").astype(np.uint32)
                    server.state.masked_senders = {int(d) for d, _ in msgs}
                else:
                    for _, body in msgs:
                        server.receive(message_from_dict(json.loads(body)))  # type: ignore[arg-type]
        live = _Live(row, server)
        # Give devices a full window to retry after a restart.
        timeout = self.config.enroll_timeout_seconds if live.phase == ENROLLING else self.config.stage_timeout_seconds
        live.deadline = max(live.deadline, self.clock() + timeout)
        log_event(self.log, "round_resumed", round_id=live.round_id, phase=live.phase)
        return live

    # ------------------------------------------------------------------------------------- devices
    def register(self) -> tuple[int, str]:
        """Create a device; returns ``(device_id, token)`` (the token is stored only hashed)."""
        token = new_token()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO devices (token_hash, created) VALUES (?, ?)", (hash_token(token), self.clock())
            )
            device_id = int(cur.lastrowid or 0)
        log_event(self.log, "device_registered", device_id=device_id)
        return device_id, token

    def authenticate(self, token: str | None) -> int:
        """The device id of a bearer token, or :class:`ApiError` 401."""
        if token is None:
            raise ApiError(401, "Missing or malformed `Authorization: Bearer <token>` header.")
        with self.db.read() as conn:
            row = conn.execute("SELECT device_id FROM devices WHERE token_hash = ?", (hash_token(token),)).fetchone()
        if row is None:
            raise ApiError(401, "Unknown bearer token: register with POST /v1/devices.")
        return int(row[0])

    # ------------------------------------------------------------------------------------- model
    def _latest_model(self) -> tuple[int, bytes, bytes]:
        with self.db.read() as conn:
            row = conn.execute("SELECT version, weights, bundle FROM models ORDER BY version DESC LIMIT 1").fetchone()
        return int(row[0]), bytes(row[1]), bytes(row[2])

    def _optimizer(self) -> ServerOptimizer:
        """The server optimizer with the state stored beside the latest model."""
        cfg = self.config
        opt = make_server_optimizer(
            cfg.server_optimizer, lr=cfg.server_lr, momentum=cfg.server_momentum,
            beta1=cfg.beta1, beta2=cfg.beta2, tau=cfg.tau,
        )
        with self.db.read() as conn:
            row = conn.execute("SELECT optimizer FROM models ORDER BY version DESC LIMIT 1").fetchone()
        return optimizer_from_bytes(opt, None if row is None or row[0] is None else bytes(row[0]))

    def model_info(self) -> dict[str, Any]:
        """Version, shape and bundle digest of the current model."""
        version, _, bundle = self._latest_model()
        return {
            "version": version,
            "num_items": self.config.num_items,
            "dim": self.config.dim,
            "vector_length": self.config.vector_length,
            "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
            "bundle_bytes": len(bundle),
        }

    def model_bytes(self, what: str) -> tuple[int, bytes]:
        """``(version, bytes)`` of the current model's ``"weights"`` (safetensors) or ``"bundle"`` (tar)."""
        version, weights, bundle = self._latest_model()
        return version, weights if what == "weights" else bundle

    # ------------------------------------------------------------------------------------- rounds
    def tick(self) -> None:
        """Close the live round's enrolment or stage if its deadline has passed."""
        with self._lock:
            live = self._live
            if live is not None and self.clock() >= live.deadline:
                log_event(self.log, "deadline_passed", round_id=live.round_id, phase=live.phase)
                self._advance(live)

    def open_round(self) -> str:
        """Open a new round (enrolment) on the current model; 409 if one is running."""
        with self._lock:
            if self._live is not None:
                raise ApiError(409, f"Round {self._live.round_id!r} is still running ({self._live.phase}).")
            now = self.clock()
            version, _, _ = self._latest_model()
            with self.db.transaction() as conn:
                seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM rounds").fetchone()[0]) + 1
                registered = int(conn.execute("SELECT COUNT(*) FROM devices").fetchone()[0])
                round_id = f"r{seq}-{secrets.token_hex(4)}"
                row = {
                    "round_id": round_id,
                    "seq": seq,
                    "model_version": version,
                    "phase": ENROLLING,
                    "deadline": now + self.config.enroll_timeout_seconds,
                    "registered": registered,
                    "params": None,
                }
                conn.execute(
                    "INSERT INTO rounds (round_id, seq, model_version, phase, deadline, opened, registered) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (round_id, seq, version, ENROLLING, row["deadline"], now, registered),
                )
            self._live = _Live(row, None)
            log_event(self.log, "round_opened", round_id=round_id, seq=seq, model_version=version, registered=registered)
            return round_id

    def _completed_rounds(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM rounds WHERE phase = ?", (ServerStage.COMPLETED,)).fetchone()[0])

    def current_round(self, device_id: int) -> dict[str, Any]:
        """The live round (opened on demand when ``auto_rounds``), else the latest one; 404 if none."""
        self.tick()
        with self._lock:
            cfg = self.config
            if (
                self._live is None
                and cfg.auto_rounds
                and (cfg.max_rounds is None or self._completed_rounds() < cfg.max_rounds)
            ):
                self.open_round()
            with self.db.read() as conn:
                if self._live is not None:
                    round_id = self._live.round_id
                else:
                    last = conn.execute("SELECT round_id FROM rounds ORDER BY seq DESC LIMIT 1").fetchone()
                    if last is None:
                        raise ApiError(404, "No round has been opened yet.")
                    round_id = str(last[0])
                row = self._round_row(conn, round_id)
                checkin = conn.execute(
                    "SELECT participate FROM checkins WHERE round_id = ? AND device_id = ?", (round_id, device_id)
                ).fetchone()
            if row is None:  # pragma: no cover - just selected
                raise ApiError(404, f"Unknown round {round_id!r}.")
            deadline = self._live.deadline if self._live is not None else row["deadline"]
            return {
                "round_id": round_id,
                "seq": row["seq"],
                "phase": self._live.phase if self._live is not None else row["phase"],
                "model_version": row["model_version"],
                "sample_rate": cfg.sample_rate,
                "deadline_seconds": max(0.0, deadline - self.clock()),
                "checked_in": checkin is not None,
                "participant": bool(checkin[0]) if checkin is not None else False,
            }

    def _require_live(self, round_id: str) -> _Live:
        live = self._live
        if live is not None and live.round_id == round_id:
            return live
        with self.db.read() as conn:
            row = conn.execute("SELECT phase FROM rounds WHERE round_id = ?", (round_id,)).fetchone()
        if row is None:
            raise ApiError(404, f"Unknown round {round_id!r}.")
        raise ApiError(409, f"Round {round_id!r} is {row[0]}; it accepts no more messages.")

    def checkin(self, device_id: int, round_id: str, participate: bool) -> dict[str, Any]:
        """Record a device's sampling outcome (once per round, only while enrolling)."""
        self.tick()
        with self._lock:
            live = self._require_live(round_id)
            if live.phase != ENROLLING:
                raise ApiError(409, f"Round {round_id!r} is in stage {live.phase!r}; enrolment has closed.")
            try:
                with self.db.transaction() as conn:
                    conn.execute(
                        "INSERT INTO checkins (round_id, device_id, participate) VALUES (?, ?, ?)",
                        (round_id, device_id, int(participate)),
                    )
                    checked = int(conn.execute("SELECT COUNT(*) FROM checkins WHERE round_id = ?", (round_id,)).fetchone()[0])
                    registered = int(conn.execute("SELECT COUNT(*) FROM devices").fetchone()[0])
            except Exception as exc:
                if "UNIQUE" in str(exc):
                    raise ApiError(409, f"Device {device_id} already checked in to round {round_id!r} (replay).") from None
                raise
            log_event(self.log, "checked_in", round_id=round_id, device_id=device_id, participate=participate)
            if checked >= registered:
                self._advance(live)
            return {"round_id": round_id, "participate": participate, "phase": self._phase(round_id)}

    def _phase(self, round_id: str) -> str:
        if self._live is not None and self._live.round_id == round_id:
            return self._live.phase
        with self.db.read() as conn:
            row = conn.execute("SELECT phase FROM rounds WHERE round_id = ?", (round_id,)).fetchone()
        return str(row[0]) if row else "unknown"

    def request(self, device_id: int, round_id: str) -> dict[str, Any]:
        """What ``device_id`` should do next in ``round_id`` (see :class:`.models.ServerRequest`)."""
        self.tick()
        with self._lock:
            live = self._live
            if live is None or live.round_id != round_id:
                phase = self._phase(round_id)
                if phase == "unknown":
                    raise ApiError(404, f"Unknown round {round_id!r}.")
                action = "done" if phase == ServerStage.COMPLETED else "aborted"
                return {"round_id": round_id, "phase": phase, "action": action}
            base = {"round_id": round_id, "phase": live.phase}
            if live.phase == ENROLLING or live.server is None:
                return {**base, "action": "wait"}
            server = live.server
            stage = server.stage
            if device_id not in server.recipients():
                return {**base, "action": "excluded", "stage": stage}
            if device_id not in server.pending():
                return {**base, "action": "wait", "stage": stage}
            message: dict[str, Any]
            if stage == ServerStage.ADVERTISE_KEYS:
                message = {"type": "round_config", "config": server.config.to_dict(), "params": live.params}
            elif stage == ServerStage.SHARE_KEYS:
                message = server.key_roster(device_id).to_dict()
            elif stage == ServerStage.MASKED_INPUT_COLLECTION:
                message = server.share_routing(device_id).to_dict()
            else:
                message = server.unmasking_request(device_id).to_dict()
            return {**base, "action": "respond", "stage": stage, "message": message}

    def submit(self, device_id: int, round_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate one protocol message, make it durable, then acknowledge it."""
        self.tick()
        with self._lock:
            live = self._require_live(round_id)
            if live.phase == ENROLLING or live.server is None:
                raise ApiError(409, f"Round {round_id!r} is enrolling; protocol messages are not accepted yet.")
            server = live.server
            try:
                message = message_from_dict(body)
            except (TypeError, SecAggMessageError) as exc:
                raise ApiError(422, f"Malformed message: {exc}") from None
            if not message.FROM_CLIENT:
                raise ApiError(422, f"{type(message).__name__} is a server message.")
            if message.round_id != round_id:
                raise ApiError(
                    409, f"The message is for round {message.round_id!r}; the URL names round {round_id!r}."
                )
            sender = message.sender  # type: ignore[union-attr]
            if sender != device_id:
                raise ApiError(403, f"`sender` must be the authenticated device {device_id}. Found {sender}.")
            if server.stage != message.STAGE:
                raise ApiError(
                    409, f"{type(message).__name__} belongs to stage {message.STAGE!r}; round {round_id!r} is in "
                    f"stage {server.stage!r}.",
                )
            with self.db.read() as conn:
                dup = conn.execute(
                    "SELECT 1 FROM messages WHERE round_id = ? AND device_id = ? AND stage = ?",
                    (round_id, device_id, message.STAGE),
                ).fetchone()
            if dup is not None:
                raise ApiError(409, f"Replay: device {device_id} already sent its {message.STAGE!r} message.")
            try:
                server.receive(message)  # type: ignore[arg-type]
            except SecAggStageError as exc:
                raise ApiError(409, str(exc)) from None
            except (SecAggMessageError, SecAggIntegrityError) as exc:
                raise ApiError(422, str(exc)) from None
            try:
                with self.db.transaction() as conn:
                    stored = None if isinstance(message, MaskedInput) else json.dumps(message.to_dict())
                    conn.execute(
                        "INSERT INTO messages (round_id, device_id, stage, body, received) VALUES (?, ?, ?, ?, ?)",
                        (round_id, device_id, message.STAGE, stored, self.clock()),
                    )
                    if isinstance(message, MaskedInput) and server.state.masked_sum is not None:
                        conn.execute(
                            "UPDATE rounds SET masked_sum = ? WHERE round_id = ?",
                            (server.state.masked_sum.astype("<u4").tobytes(), round_id),
                        )
            except Exception:
                self._live = self._load_live()  # memory ran ahead of the database: rebuild
                raise
            log_event(self.log, "message_accepted", round_id=round_id, device_id=device_id, stage=message.STAGE)
            ack = {"accepted": True, "round_id": round_id, "stage": message.STAGE, "phase": live.phase}
            if not server.pending():
                self._advance(live)
            return ack

    def advance(self, round_id: str) -> dict[str, Any]:
        """Admin: close the live round's enrolment or current stage now."""
        with self._lock:
            live = self._require_live(round_id)
            self._advance(live)
            return self.status(round_id)

    # ------------------------------------------------------------------------------------- transitions
    def _advance(self, live: _Live) -> None:
        if live.phase == ENROLLING:
            self._close_enrollment(live)
            return
        server = live.server
        if server is None:  # pragma: no cover - a protocol phase always has a server
            raise RuntimeError("protocol phase without a secure-aggregation server")
        try:
            stage = server.advance()
        except SecAggAbortedError as exc:
            self._abort(live, str(exc))
            return
        if stage == ServerStage.COMPLETED:
            self._finalize(live)
            return
        live.phase = stage
        live.deadline = self.clock() + self.config.stage_timeout_seconds
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE rounds SET phase = ?, deadline = ?, snapshot = ?, masked_sum = NULL WHERE round_id = ?",
                (stage, live.deadline, json.dumps(server.to_dict()), live.round_id),
            )
        summary = server.summary()
        log_event(
            self.log, "stage_opened", round_id=live.round_id, stage=stage,
            u1=summary["u1"], u2=summary["u2"], u3=summary["u3"],
        )

    def _close_enrollment(self, live: _Live) -> None:
        cfg = self.config
        with self.db.read() as conn:
            ids = [int(r[0]) for r in conn.execute(
                "SELECT device_id FROM checkins WHERE round_id = ? AND participate = 1 ORDER BY device_id",
                (live.round_id,),
            )]
            registered = int(conn.execute("SELECT COUNT(*) FROM devices").fetchone()[0])
        n = len(ids)
        if n < cfg.min_participants:
            self._abort(live, f"Enrolment closed with {n} participants; at least {cfg.min_participants} are needed.")
            return
        t = cfg.threshold(n)
        neighbours = cfg.neighbours if cfg.neighbours is not None and cfg.neighbours < n - 1 else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            secagg = SecAggConfig(
                round_id=live.round_id, participants=tuple(ids), threshold=t,
                vector_length=cfg.vector_length, neighbours=neighbours, graph_seed=secrets.token_bytes(16),
            )
        for w in caught:
            log_event(self.log, "secagg_warning", level=logging.WARNING, round_id=live.round_id, warning=str(w.message))
        dp = cfg.dp
        z = dp.resolved_update_noise_multiplier
        device_std = (
            distributed_noise_std(noise_multiplier=z, clip_norm=dp.clip_norm, expected_devices=t)
            if dp.mode == "distributed" else 0.0
        )
        encoder = FixedPointEncoder(clip_range=dp.clip_norm + _NOISE_SIGMAS * device_std, max_clients=n)
        params = {
            "clip_norm": dp.clip_norm,
            "clip_range": encoder.clip_range,
            "max_clients": n,
            "frac_bits": encoder.frac_bits,
            "dp_mode": dp.mode,
            "device_noise_std": device_std,
            "local_lr": cfg.local_lr,
            "finetune": dataclasses.asdict(cfg.finetune),
            "model_version": live.model_version,
            "expected_devices": max(cfg.sample_rate * max(registered, 1), 1.0),
            "threshold": t,
        }
        server = SecAggServer(secagg)
        live.server, live.params, live.phase = server, params, server.stage
        live.deadline = self.clock() + cfg.stage_timeout_seconds
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE rounds SET phase = ?, deadline = ?, secagg_config = ?, params = ?, snapshot = ? WHERE round_id = ?",
                (live.phase, live.deadline, json.dumps(secagg.to_dict()), json.dumps(params),
                 json.dumps(server.to_dict()), live.round_id),
            )
        log_event(self.log, "enrolment_closed", round_id=live.round_id, participants=n, threshold=t)

    def _close(self, conn: Any, live: _Live, phase: str, outcome: dict[str, Any]) -> None:
        conn.execute(
            "UPDATE rounds SET phase = ?, snapshot = NULL, masked_sum = NULL, outcome = ? WHERE round_id = ?",
            (phase, json.dumps(outcome), live.round_id),
        )
        conn.execute("DELETE FROM messages WHERE round_id = ?", (live.round_id,))

    def _abort(self, live: _Live, reason: str) -> None:
        summary = live.server.summary() if live.server is not None else {}
        outcome = {"reason": reason, **{k: summary.get(k, 0) for k in ("participants", "u1", "u2", "u3", "u4")}}
        with self.db.transaction() as conn:
            self._close(conn, live, ServerStage.ABORTED, outcome)
        self._live = None
        self.db.checkpoint()
        log_event(self.log, "round_aborted", level=logging.WARNING, round_id=live.round_id, reason=reason)

    def _events(self) -> list[PrivacyEvent]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT l.event FROM ledger l JOIN rounds r ON r.round_id = l.round_id ORDER BY r.seq"
            ).fetchall()
        return [event_from_dict(json.loads(r[0])) for r in rows]

    def _finalize(self, live: _Live) -> None:
        cfg, params, server = self.config, live.params, live.server
        if params is None or server is None:  # pragma: no cover - set when enrolment closed
            raise RuntimeError("completed round without parameters")
        encoder = FixedPointEncoder(clip_range=params["clip_range"], max_clients=params["max_clients"])
        encoded = server.result()
        if self.aggregate_observer is not None:
            self.aggregate_observer(live.round_id, encoded.copy(), tuple(server.survivors))
        total = encoder.decode(encoded)
        survivors = len(server.survivors)
        if cfg.dp.mode == "central":
            std = central_noise_std(noise_multiplier=cfg.dp.resolved_update_noise_multiplier, clip_norm=cfg.dp.clip_norm)
            total = total + self._noise.normal(total.shape[0], std=std)
        average = total / float(params["expected_devices"])
        version, weights, _ = self._latest_model()
        optimizer = self._optimizer()
        params_vec = flatten(model_from_bytes(weights)).astype(np.float32)
        optimizer.step(params_vec, average)
        new_model = unflatten(params_vec, cfg.num_items, cfg.dim)
        event = round_event(
            cfg.dp, sample_rate=cfg.sample_rate, expected_devices=int(params["threshold"]), survivors=survivors
        )
        ledger = build_ledger(cfg.dp, [*self._events(), event])
        bundle = pack_bundle(new_model, privacy=ledger.to_manifest())
        outcome = {
            "survivors": survivors,
            "model_version": version + 1,
            "epsilon": ledger.to_dict()["epsilon"],
            # Lets an auditor check the aggregate against the survivors' encodings without storing it.
            "aggregate_sha256": hashlib.sha256(encoded.astype("<u4").tobytes()).hexdigest(),
            **{k: v for k, v in server.summary().items() if k in ("participants", "u1", "u2", "u3", "u4")},
        }
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO models (version, round_id, weights, bundle, optimizer, created) VALUES (?, ?, ?, ?, ?, ?)",
                (version + 1, live.round_id, model_to_bytes(new_model), bundle, optimizer_to_bytes(optimizer),
                 self.clock()),
            )
            conn.execute(
                "INSERT INTO ledger (round_id, event, created) VALUES (?, ?, ?)",
                (live.round_id, json.dumps(event.to_dict()), self.clock()),
            )
            self._close(conn, live, ServerStage.COMPLETED, outcome)
        self._live = None
        self.db.checkpoint()
        log_event(
            self.log, "round_completed", round_id=live.round_id, survivors=survivors,
            model_version=version + 1, epsilon=outcome["epsilon"],
        )

    # ------------------------------------------------------------------------------------- reports
    def status(self, round_id: str) -> dict[str, Any]:
        """Counts and outcome of one round."""
        with self._lock:
            with self.db.read() as conn:
                row = self._round_row(conn, round_id)
            if row is None:
                raise ApiError(404, f"Unknown round {round_id!r}.")
            live = self._live if self._live is not None and self._live.round_id == round_id else None
            outcome = json.loads(row["outcome"]) if row["outcome"] else None
            pending = 0
            if live is not None and live.server is not None:
                s = live.server.summary()
                participants, survivors = s["participants"], {k: s[k] for k in ("u1", "u2", "u3", "u4")}
                pending = len(live.server.pending())
            elif outcome is not None:
                participants = int(outcome.get("participants", 0))
                survivors = {k: int(outcome.get(k, 0)) for k in ("u1", "u2", "u3", "u4")}
            else:
                participants, survivors = 0, {k: 0 for k in ("u1", "u2", "u3", "u4")}
            return {
                "round_id": round_id,
                "seq": row["seq"],
                "phase": live.phase if live is not None else row["phase"],
                "model_version": row["model_version"],
                "participants": participants,
                "survivors": survivors,
                "pending": pending,
                "outcome": outcome,
            }

    def ledger(self) -> dict[str, Any]:
        """The privacy ledger over the completed rounds (``privacy_ledger.json`` shape); cached per round."""
        with self._lock:
            events = self._events()
            if self._ledger_cache is None or self._ledger_cache[0] != len(events):
                self._ledger_cache = (len(events), build_ledger(self.config.dp, events).to_dict())
            return self._ledger_cache[1]


