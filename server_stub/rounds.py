"""The round lifecycle: enrolment, the secure-aggregation stages with deadlines, and the model update.

A round moves through these phases (the protocol stages are those of
:class:`privrec.sdk.secagg.ServerStage`, Bonawitz et al. 2017, Fig. 4)::

    enrolling → advertise_keys → share_keys → masked_input_collection → unmasking → completed
                      (enrolment or any stage may end in → aborted)

* **enrolling**: every registered device checks in with its Poisson-sampling outcome (drawn on the
  device with probability q). Enrolment closes when every registered device has checked in, when the
  deadline passes, or on an admin call; fewer than ``min_participants`` participants abort the round.
  Closing enrolment fixes the round's :class:`~privrec.sdk.federated.round.RoundSetup` and the
  :class:`~privrec.sdk.federated.wire.RoundParams` every participant receives.
* **protocol stages**: the participants' messages go to a :class:`~privrec.sdk.secagg.SecAggServer`;
  a stage closes when every expected device answered, when its deadline passes (the silent devices are
  dropouts), or on an admin call. Too few survivors abort the round and leave the model unchanged.
* **completed**: the unmasked sum (mod 2^32) is decoded and handed to
  :func:`~privrec.sdk.federated.round.finish_round` — the end-of-round step the simulation and the facade
  run too (central noise, the cohort denominator q·N, the server optimizer, adaptive clipping, the ledger
  event); the new model and the ledger event are committed with the round's outcome in one transaction.
  The new model's bundle is then exported **outside the request lock** (:meth:`RoundManager.publish_pending`)
  and served once written; a bundle download waits for it.

Durability: each accepted message is committed (``messages`` row; Round-2 vectors only into the running
``masked_sum``) before it is acknowledged. On start the active round is rebuilt from the stage snapshot
plus the current stage's messages, so a restarted server resumes with every accepted contribution, and
any model committed but not yet published is published.

Every SQL statement lives in :mod:`.store`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from privrec.sdk.federated.params import ParamLayout
from privrec.sdk.federated.round import RoundSetup, cohort_denominator, finish_round, split_aggregate
from privrec.sdk.federated.server_opt import ServerOptimizer, make_server_optimizer
from privrec.sdk.federated.wire import ENROLLING, DeviceAction, RoundParams
from privrec.sdk.privacy import AdaptiveClipper, PrivacyEvent, event_from_dict
from privrec.sdk.secagg import (
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
from .global_model import (
    features_from_bytes,
    features_to_bytes,
    optimizer_from_bytes,
    optimizer_to_bytes,
    pack_bundle,
    params_from_bytes,
    params_to_bytes,
)
from .ledger import build_ledger
from .logging_setup import log_event
from .store import AdmissionError, DuplicateError, ServerStore

__all__ = ["ENROLLING", "ApiError", "RoundManager"]

#: How long a bundle download waits for the newest model's bundle to be written.
PUBLISH_WAIT_SECONDS = 120.0


class ApiError(Exception):
    """An error the HTTP layer turns into ``status`` with ``{"detail": detail}`` (and ``Retry-After`` for 429)."""

    def __init__(self, status: int, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class _Live:
    """The active round in memory (the database is the source of truth)."""

    def __init__(self, row: dict[str, Any], server: SecAggServer | None) -> None:
        self.round_id: str = row["round_id"]
        self.seq: int = row["seq"]
        self.model_version: int = row["model_version"]
        self.phase: str = row["phase"]
        self.deadline: float = row["deadline"]
        self.registered: int = row["registered"]
        stored = json.loads(row["params"]) if row["params"] else None
        self.setup: RoundSetup | None = RoundSetup.from_dict(stored["setup"]) if stored else None
        self.params: RoundParams | None = RoundParams.from_dict(stored["round"]) if stored else None
        self.server = server


def _default_features(config: ServerConfig) -> NDArray[np.float32] | None:
    """MovieLens-100K's public genre/decade features for ``item_features="genre"`` (the only built-in set)."""
    if config.item_features == "none":
        return None
    from privrec.sdk.data import load_movielens100k
    from privrec.sdk.federated.side_info import movielens100k_item_features

    features, _ = movielens100k_item_features(load_movielens100k())
    if features.shape[0] != config.num_items:
        raise ValueError(
            f"item_features='genre' uses MovieLens-100K's {features.shape[0]} items; the server has "
            f"num_items={config.num_items}. Pass the catalog's features to the server instead."
        )
    return features


class RoundManager:
    """All server state transitions, each persisted in one SQLite transaction, serialised by one lock.

    Args:
        store: the server's persistent state.
        config: the server settings.
        logger: where structured events go.
        clock: wall-clock seconds (injectable for tests).
        features: public item features ``[num_items, f]`` for ``item_features="genre"``, stored when the
            database is created (default: MovieLens-100K's); ignored once stored.
        signing_key: the Ed25519 key every published bundle is signed with (devices pin its public key);
            None publishes unsigned bundles (devices must then be told ``allow_unsigned=True``).
    """

    def __init__(
        self,
        store: ServerStore,
        config: ServerConfig,
        logger: logging.Logger,
        clock: Callable[[], float] = time.time,
        *,
        features: NDArray[np.float32] | None = None,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> None:
        self.store, self.config, self.log, self.clock = store, config, logger, clock
        self._signing_key = signing_key
        self._lock = threading.RLock()
        self._published = threading.Condition()
        self._publish_lock = threading.Lock()
        self._noise = config.dp.make_noise()
        self._ledger_cache: tuple[int, dict[str, Any]] | None = None
        #: Called with ``(round_id, encoded_sum uint32[D], survivors)`` when a round completes (tests, audits).
        self.aggregate_observer: Callable[[str, NDArray[np.uint32], tuple[int, ...]], None] | None = None
        self.layout = self._ensure_layout(features)
        self._ensure_model()
        self.publish_pending()
        self._live = self._load_live()
        live = self._live
        if live is not None and live.server is not None and not live.server.pending():
            with self._lock:
                self._advance(live)  # every answer arrived before the restart: close the stage now
            self.publish_pending()

    # ------------------------------------------------------------------------------------- startup
    def _ensure_layout(self, features: NDArray[np.float32] | None) -> ParamLayout:
        cfg = self.config
        stored = self.store.item_features()
        if cfg.item_features == "none":
            feats = None
        elif stored is not None:
            feats = features_from_bytes(stored)
        else:
            feats = features if features is not None else _default_features(cfg)
        layout = ParamLayout(num_items=cfg.num_items, dim=cfg.dim, free_embedding=cfg.free_embedding,
                             features=feats, train_bias=cfg.train_bias)
        if feats is not None and stored is None:
            self.store.put_item_features(features_to_bytes(feats))
        return layout

    def _ensure_model(self) -> None:
        if self.store.has_model():
            return
        cfg = self.config
        params = self.layout.init(init_std=cfg.init_std, seed=cfg.init_seed)
        clip = cfg.dp.clip_norm if cfg.dp.adaptive_clipping else None
        self.store.add_initial_model(params_to_bytes(params), clip, self.clock())
        log_event(self.log, "model_initialised", version=0, num_items=cfg.num_items, dim=cfg.dim,
                  parameters=self.layout.size)

    def _load_live(self) -> _Live | None:
        row = self.store.active_round()
        if row is None:
            return None
        server: SecAggServer | None = None
        if row["phase"] != ENROLLING:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # the threshold warning was logged at enrolment
                    server = SecAggServer.from_dict(json.loads(row["snapshot"]))
                    _Live(row, None)  # the round's parameters must parse too
            except (ValueError, TypeError, KeyError) as exc:
                # A round saved by another privrec version cannot be resumed: end it, releasing nothing.
                reason = f"the saved round state could not be read ({type(exc).__name__}: {exc}); aborted on restart"
                self.store.abort_round(row["round_id"], {"reason": reason[:500]})
                log_event(self.log, "round_aborted", level=logging.WARNING, round_id=row["round_id"], reason=reason[:500])
                return None
            stage = server.stage
            msgs = self.store.stage_messages(row["round_id"], stage)
            if stage == ServerStage.MASKED_INPUT_COLLECTION:
                if row["masked_sum"] is not None:
                    server.state.masked_sum = np.frombuffer(row["masked_sum"], dtype="<u4").astype(np.uint32)
                server.state.masked_senders = {d for d, _ in msgs}
            else:
                for _, body in msgs:
                    server.receive(message_from_dict(json.loads(body or "null")))  # type: ignore[arg-type]
        live = _Live(row, server)
        # Give devices a full window to retry after a restart.
        timeout = self.config.enroll_timeout_seconds if live.phase == ENROLLING else self.config.stage_timeout_seconds
        live.deadline = max(live.deadline, self.clock() + timeout)
        log_event(self.log, "round_resumed", round_id=live.round_id, phase=live.phase)
        return live

    # ------------------------------------------------------------------------------------- devices
    def register(self, enrolment_code: str | None) -> tuple[int, str]:
        """Admit a device with an operator-issued enrolment code (or without, under ``admission="open"``);
        returns ``(device_id, token)`` (the token is stored only hashed). 403 for a missing, unknown, used or
        expired code."""
        token = new_token()
        if self.config.admission == "open" and enrolment_code is None:
            device_id = self.store.add_device(hash_token(token), self.clock())
        else:
            if enrolment_code is None:
                raise ApiError(403, "Registration needs an `enrolment_code` issued by the server's operator.")
            try:
                device_id = self.store.admit_device(hash_token(enrolment_code), hash_token(token), self.clock())
            except AdmissionError as exc:
                log_event(self.log, "registration_refused", level=logging.WARNING, reason=str(exc))
                raise ApiError(403, f"Registration refused: {exc}.") from None
        log_event(self.log, "device_registered", device_id=device_id)
        return device_id, token

    def issue_enrolment_codes(self, count: int) -> list[str]:
        """Admin: ``count`` new one-time enrolment codes (returned once; stored only hashed)."""
        now = self.clock()
        codes = [new_token() for _ in range(count)]
        self.store.add_enrolment_codes([hash_token(c) for c in codes], created=now,
                                       expires=now + self.config.enrolment_code_ttl_seconds)
        log_event(self.log, "enrolment_codes_issued", count=count)
        return codes

    def authenticate(self, token: str | None) -> int:
        """The device id of a bearer token, or :class:`ApiError` 401."""
        if token is None:
            raise ApiError(401, "Missing or malformed `Authorization: Bearer <token>` header.")
        device_id = self.store.device_for_token(hash_token(token))
        if device_id is None:
            raise ApiError(401, "Unknown bearer token: register with POST /v1/devices.")
        return device_id

    # ------------------------------------------------------------------------------------- model
    def _optimizer(self, state: bytes | None) -> ServerOptimizer:
        """The server optimizer with ``state`` (stored beside the latest model) restored."""
        cfg = self.config
        opt = make_server_optimizer(
            cfg.server_optimizer, lr=cfg.server_lr, momentum=cfg.server_momentum,
            beta1=cfg.beta1, beta2=cfg.beta2, tau=cfg.tau,
        )
        return optimizer_from_bytes(opt, state)

    @property
    def vector_length(self) -> int:
        """D of one device's secure-aggregation input (+1 for the count report with adaptive clipping)."""
        return self.layout.size + (1 if self.config.dp.adaptive_clipping else 0)

    def model_info(self) -> dict[str, Any]:
        """Version, shape and bundle digest of the newest published model."""
        version, bundle = self._published_bundle()
        return {
            "version": version,
            "num_items": self.config.num_items,
            "dim": self.config.dim,
            "vector_length": self.vector_length,
            "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
            "bundle_bytes": len(bundle),
        }

    def _published_bundle(self) -> tuple[int, bytes]:
        """The newest model's bundle, waiting (up to :data:`PUBLISH_WAIT_SECONDS`) while it is being written."""
        give_up = time.monotonic() + PUBLISH_WAIT_SECONDS
        with self._published:
            while True:
                latest = self.store.latest_model()
                published = self.store.latest_published()
                if published is not None and published[0] == latest.version:
                    return published
                left = give_up - time.monotonic()
                if left <= 0:
                    raise ApiError(503, f"Model {latest.version}'s bundle is still being written; retry shortly.")
                self._published.wait(timeout=min(left, 1.0))

    def model_bytes(self, what: str) -> tuple[int, bytes]:
        """``(version, bytes)`` of the newest model's ``"weights"`` (safetensors of the item model) or ``"bundle"`` (tar)."""
        if what == "bundle":
            return self._published_bundle()
        latest = self.store.latest_model()
        model = self.layout.item_model(params_from_bytes(latest.weights, self.layout))
        from safetensors.numpy import save

        return latest.version, bytes(save(model.tensors()))

    def publish_pending(self) -> None:
        """Export and store the bundle of every committed model that has none yet (never under the request lock)."""
        with self._publish_lock:
            for version in self.store.unpublished_versions():
                start = time.perf_counter()
                params = params_from_bytes(self.store.model_weights(version), self.layout)
                events = self._events(up_to_version=version)
                privacy = build_ledger(self.config.dp, events).to_manifest()
                bundle = pack_bundle(self.layout, params, recipe=self.config.recipe, privacy=privacy,
                                     sign_key=self._signing_key)
                self.store.publish_bundle(version, bundle)
                with self._published:
                    self._published.notify_all()
                log_event(self.log, "model_published", version=version, bundle_bytes=len(bundle),
                          seconds=round(time.perf_counter() - start, 3))

    # ------------------------------------------------------------------------------------- rounds
    def tick(self) -> None:
        """Close the live round's enrolment or stage if its deadline has passed."""
        with self._lock:
            live = self._live
            if live is not None and self.clock() >= live.deadline:
                log_event(self.log, "deadline_passed", round_id=live.round_id, phase=live.phase)
                self._advance(live)
        self.publish_pending()

    def open_round(self) -> str:
        """Open a new round (enrolment) on the current model; 409 if one is running."""
        with self._lock:
            if self._live is not None:
                raise ApiError(409, f"Round {self._live.round_id!r} is still running ({self._live.phase}).")
            now = self.clock()
            row = self.store.open_round(
                make_id=lambda seq: f"r{seq}-{secrets.token_hex(4)}", model_version=self.store.latest_model().version,
                phase=ENROLLING, deadline=now + self.config.enroll_timeout_seconds, opened=now,
            )
            self._live = _Live(row, None)
            log_event(self.log, "round_opened", round_id=row["round_id"], seq=row["seq"],
                      model_version=row["model_version"], registered=row["registered"])
            return str(row["round_id"])

    def current_round(self, device_id: int) -> dict[str, Any]:
        """The live round (opened on demand when ``auto_rounds``), else the latest one; 404 if none."""
        self.tick()
        with self._lock:
            cfg = self.config
            if (
                self._live is None
                and cfg.auto_rounds
                and (cfg.max_rounds is None or self.store.completed_rounds() < cfg.max_rounds)
            ):
                self.open_round()
            round_id = self._live.round_id if self._live is not None else self.store.latest_round_id()
            if round_id is None:
                raise ApiError(404, "No round has been opened yet.")
            row = self.store.round_row(round_id)
            if row is None:  # pragma: no cover - just selected
                raise ApiError(404, f"Unknown round {round_id!r}.")
            checkin = self.store.checkin_of(round_id, device_id)
            deadline = self._live.deadline if self._live is not None else row["deadline"]
            return {
                "round_id": round_id,
                "seq": row["seq"],
                "phase": self._live.phase if self._live is not None else row["phase"],
                "model_version": row["model_version"],
                "sample_rate": cfg.sample_rate,
                "deadline_seconds": max(0.0, deadline - self.clock()),
                "checked_in": checkin is not None,
                "participant": bool(checkin),
            }

    def _require_live(self, round_id: str) -> _Live:
        live = self._live
        if live is not None and live.round_id == round_id:
            return live
        phase = self.store.round_phase(round_id)
        if phase is None:
            raise ApiError(404, f"Unknown round {round_id!r}.")
        raise ApiError(409, f"Round {round_id!r} is {phase}; it accepts no more messages.")

    def checkin(self, device_id: int, round_id: str, participate: bool) -> dict[str, Any]:
        """Record a device's sampling outcome (once per round, only while enrolling)."""
        self.tick()
        with self._lock:
            live = self._require_live(round_id)
            if live.phase != ENROLLING:
                raise ApiError(409, f"Round {round_id!r} is in stage {live.phase!r}; enrolment has closed.")
            try:
                checked, joined, registered = self.store.check_in(round_id, device_id, participate)
            except DuplicateError:
                raise ApiError(409, f"Device {device_id} already checked in to round {round_id!r} (replay).") from None
            log_event(self.log, "checked_in", round_id=round_id, device_id=device_id, participate=participate)
            quorum = checked >= math.ceil(self.config.enroll_close_fraction * registered)
            if checked >= registered:
                self._advance(live)
            elif quorum and joined >= self.config.min_participants:
                # Enough have checked in: the rest get a short grace period, then the deadline tick closes it.
                live.deadline = min(live.deadline, self.clock() + self.config.enroll_grace_seconds)
            answer = {"round_id": round_id, "participate": participate, "phase": self._phase(round_id)}
        self.publish_pending()
        return answer

    def _phase(self, round_id: str) -> str:
        if self._live is not None and self._live.round_id == round_id:
            return self._live.phase
        return self.store.round_phase(round_id) or "unknown"

    def request(self, device_id: int, round_id: str) -> dict[str, Any]:
        """What ``device_id`` should do next in ``round_id`` (see :class:`.models.ServerRequest`)."""
        self.tick()
        with self._lock:
            live = self._live
            if live is None or live.round_id != round_id:
                phase = self._phase(round_id)
                if phase == "unknown":
                    raise ApiError(404, f"Unknown round {round_id!r}.")
                action = DeviceAction.DONE if phase == ServerStage.COMPLETED else DeviceAction.ABORTED
                return {"round_id": round_id, "phase": phase, "action": action}
            base = {"round_id": round_id, "phase": live.phase}
            if live.phase == ENROLLING or live.server is None:
                return {**base, "action": DeviceAction.WAIT}
            server = live.server
            stage = server.stage
            if device_id not in server.recipients():
                return {**base, "action": DeviceAction.EXCLUDED, "stage": stage}
            if device_id not in server.pending():
                return {**base, "action": DeviceAction.WAIT, "stage": stage}
            message: dict[str, Any]
            if stage == ServerStage.ADVERTISE_KEYS:
                if live.params is None:  # pragma: no cover - set when enrolment closed
                    raise RuntimeError("protocol phase without round parameters")
                message = {"type": "round_config", "config": server.config.to_dict(), "params": live.params.to_dict()}
            elif stage == ServerStage.SHARE_KEYS:
                message = server.key_roster(device_id).to_dict()
            elif stage == ServerStage.MASKED_INPUT_COLLECTION:
                message = server.share_routing(device_id).to_dict()
            else:
                message = server.unmasking_request(device_id).to_dict()
            return {**base, "action": DeviceAction.RESPOND, "stage": stage, "message": message}

    def submit(self, device_id: int, round_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate one protocol message, make it durable, then acknowledge it."""
        self.tick()
        with self._lock:
            ack = self._submit(device_id, round_id, body)
        self.publish_pending()
        return ack

    def _submit(self, device_id: int, round_id: str, body: dict[str, Any]) -> dict[str, Any]:
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
            raise ApiError(409, f"The message is for round {message.round_id!r}; the URL names round {round_id!r}.")
        sender = message.sender  # type: ignore[union-attr]
        if sender != device_id:
            raise ApiError(403, f"`sender` must be the authenticated device {device_id}. Found {sender}.")
        if server.stage != message.STAGE:
            raise ApiError(
                409, f"{type(message).__name__} belongs to stage {message.STAGE!r}; round {round_id!r} is in "
                f"stage {server.stage!r}.",
            )
        if self.store.has_message(round_id, device_id, message.STAGE):
            raise ApiError(409, f"Replay: device {device_id} already sent its {message.STAGE!r} message.")
        try:
            server.receive(message)  # type: ignore[arg-type]
        except SecAggStageError as exc:
            raise ApiError(409, str(exc)) from None
        except (SecAggMessageError, SecAggIntegrityError) as exc:
            # Refused and not stored (the SDK leaves its state unchanged); the text names the device.
            log_event(self.log, "message_refused", level=logging.WARNING, round_id=round_id, device_id=device_id,
                      stage=message.STAGE, culprits=",".join(map(str, exc.culprits)), reason=str(exc))
            raise ApiError(422, str(exc)) from None
        masked = isinstance(message, MaskedInput)
        running = server.state.masked_sum
        try:
            self.store.accept_message(
                round_id, device_id, message.STAGE, None if masked else message.to_dict(),
                running.astype("<u4").tobytes() if masked and running is not None else None, self.clock(),
            )
        except BaseException:
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
        self.publish_pending()
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
        except SecAggAbortedError as exc:  # too few survivors, or a device proven to have misbehaved
            self._abort(live, str(exc))
            return
        if stage == ServerStage.COMPLETED:
            self._finalize(live)
            return
        live.phase = stage
        live.deadline = self.clock() + self.config.stage_timeout_seconds
        self.store.next_stage(live.round_id, phase=stage, deadline=live.deadline, snapshot=server.to_dict())
        summary = server.summary()
        log_event(
            self.log, "stage_opened", round_id=live.round_id, stage=stage,
            u1=summary["u1"], u2=summary["u2"], u3=summary["u3"],
        )

    def _round_setup(self, *, threshold: int, registered: int) -> RoundSetup:
        """The settings of a round whose enrolment closes now (C from adaptive clipping's state)."""
        cfg, dp = self.config, self.config.dp
        private = dp.mode != "off"
        latest = self.store.latest_model()
        clip = latest.clip_norm if dp.adaptive_clipping and latest.clip_norm is not None else dp.clip_norm
        population = cfg.population if cfg.population is not None else max(registered, 1)
        return RoundSetup(
            dp_mode=dp.mode, noise_multiplier=dp.resolved_update_noise_multiplier if private else 0.0,
            clip_norm=clip, sample_rate=cfg.sample_rate,
            denominator=cohort_denominator(sample_rate=cfg.sample_rate, population=population),
            local_lr=cfg.local_lr, bias_scale=cfg.bias_scale,
            min_survivors=threshold if dp.mode == "distributed" else 1,
            count_noise_std=dp.count_noise_std if dp.adaptive_clipping and private else None,
        )

    def _close_enrollment(self, live: _Live) -> None:
        cfg = self.config
        ids = self.store.participants(live.round_id)
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
                vector_length=self.vector_length, neighbours=neighbours, graph_seed=secrets.token_bytes(16),
            )
        for w in caught:
            log_event(self.log, "secagg_warning", level=logging.WARNING, round_id=live.round_id, warning=str(w.message))
        setup = self._round_setup(threshold=t, registered=self.store.count_devices())
        params = RoundParams.from_setup(setup, round_id=live.round_id, model_version=live.model_version,
                                        max_clients=n, layout=self.layout)
        server = SecAggServer(secagg)
        live.server, live.setup, live.params, live.phase = server, setup, params, server.stage
        live.deadline = self.clock() + cfg.stage_timeout_seconds
        self.store.start_protocol(
            live.round_id, phase=live.phase, deadline=live.deadline, secagg_config=secagg.to_dict(),
            params={"setup": setup.to_dict(), "round": params.to_dict()}, snapshot=server.to_dict(),
        )
        log_event(self.log, "enrolment_closed", round_id=live.round_id, participants=n, threshold=t)

    def _abort(self, live: _Live, reason: str) -> None:
        summary = live.server.summary() if live.server is not None else {}
        # ``flagged``: the devices the round proved misbehaving (named in ``reason`` too), with why.
        outcome = {"reason": reason, **{k: summary.get(k, 0) for k in ("participants", "u1", "u2", "u3", "u4")},
                   "flagged": summary.get("flagged", [])}
        self.store.abort_round(live.round_id, outcome)
        self._live = None
        self.store.checkpoint()
        log_event(self.log, "round_aborted", level=logging.WARNING, round_id=live.round_id, reason=reason,
                  flagged=",".join(str(f["client_id"]) for f in outcome["flagged"]))

    def _events(self, up_to_version: int | None = None) -> list[PrivacyEvent]:
        """The ledger's events in round order (up to the round that made ``up_to_version``, when given)."""
        return [event_from_dict(r) for r in self.store.ledger_events(up_to_version)]

    def _finalize(self, live: _Live) -> None:
        cfg, setup, params, server = self.config, live.setup, live.params, live.server
        if setup is None or params is None or server is None:  # pragma: no cover - set when enrolment closed
            raise RuntimeError("completed round without parameters")
        encoded = server.result()
        if self.aggregate_observer is not None:
            self.aggregate_observer(live.round_id, encoded.copy(), tuple(server.survivors))
        total, count_sum = split_aggregate(params.encoder().decode(encoded), adaptive=setup.adaptive)
        survivors = len(server.survivors)
        latest = self.store.latest_model()
        flat = params_from_bytes(latest.weights, self.layout)
        optimizer = self._optimizer(latest.optimizer)
        dp = cfg.dp
        clipper = None
        if setup.count_noise_std is not None:
            clipper = AdaptiveClipper(
                initial_clip_norm=setup.clip_norm, count_noise_std=setup.count_noise_std,
                expected_devices=setup.denominator, target_unclipped_quantile=dp.target_unclipped_quantile,
                clip_learning_rate=dp.clip_learning_rate,
            )
        outcome_ = finish_round(flat, total, setup=setup, survivors=survivors, optimizer=optimizer,
                                noise=self._noise, clipper=clipper, count_sum=count_sum)
        events = self._events()
        if outcome_.event is not None:
            events.append(outcome_.event)
        epsilon = build_ledger(dp, events).to_dict()["epsilon"]
        version = latest.version + 1
        outcome = {
            "survivors": survivors,
            "model_version": version,
            "applied": outcome_.applied,
            "epsilon": epsilon,
            # Lets an auditor check the aggregate against the survivors' encodings without storing it.
            "aggregate_sha256": hashlib.sha256(encoded.astype("<u4").tobytes()).hexdigest(),
            # ``flagged``: devices whose Round-4 openings were discarded (the sum is exact without them).
            **{k: v for k, v in server.summary().items() if k in ("participants", "u1", "u2", "u3", "u4", "flagged")},
        }
        self.store.complete_round(
            live.round_id, outcome=outcome, version=version, weights=params_to_bytes(flat),
            optimizer=optimizer_to_bytes(optimizer), clip_norm=outcome_.next_clip_norm if clipper is not None else None,
            event=None if outcome_.event is None else outcome_.event.to_dict(), now=self.clock(),
        )
        self._live = None
        self.store.checkpoint()
        log_event(
            self.log, "round_completed", round_id=live.round_id, survivors=survivors,
            model_version=version, epsilon=epsilon,
        )

    # ------------------------------------------------------------------------------------- reports
    def status(self, round_id: str) -> dict[str, Any]:
        """Counts and outcome of one round."""
        with self._lock:
            row = self.store.round_row(round_id)
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
