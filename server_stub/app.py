"""The HTTP API (FastAPI): thin handlers that authenticate, validate, call :class:`.RoundManager` (which
persists in one SQLite transaction) and only then acknowledge.

Endpoints (all bodies JSON unless noted; errors are ``{"detail": "..."}`` with a 4xx status):

=====================================  ======  ===========================================================
``POST /v1/devices``                   code    register with ``{"enrolment_code"}``: ``{"device_id", "token"}`` (once)
``GET  /v1/model``                     device  current version, shape, bundle digest
``GET  /v1/model/bundle``              device  the bundle as a tar (``X-Model-Version`` header)
``GET  /v1/model/weights``             device  ``weights`` as safetensors bytes
``GET  /v1/rounds/current``            device  the round to take part in (opened on demand)
``POST /v1/rounds/{id}/checkin``       device  ``{"participate": bool}`` (Poisson sampling on the device)
``GET  /v1/rounds/{id}/request``       device  what to do next (the stage's server message)
``POST /v1/rounds/{id}/messages``      device  one protocol message (durable before the 200)
``GET  /v1/rounds/{id}``               device  counts and outcome
``GET  /v1/ledger``                    device  the privacy ledger
``POST /v1/admin/enrolment-codes``     admin   ``{"count"}`` → one-time enrolment codes for new devices
``POST /v1/admin/rounds``              admin   open a round now
``POST /v1/admin/rounds/{id}/advance`` admin   close enrolment or the current stage now
``GET  /healthz``                      —       liveness
=====================================  ======  ===========================================================

Bodies larger than ``max_body_bytes`` are refused with 413 before they are read in full. Every device (by its
bearer token) and every client address (for registration) is rate-limited: past the limit the answer is 429
with ``Retry-After``. The OpenAPI document declares the bearer scheme. With a certificate
(``privrec serve --tls-cert/--tls-key``) the API is served over TLS only.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from numpy.typing import NDArray

from privrec.export.signing import PRIVATE_KEY_NAME, generate_signing_key, load_private_key

from .auth import bearer_token, hash_token
from .config import ServerConfig
from .db import Database
from .logging_setup import configure_logging, log_event
from .models import (
    Ack,
    CheckinRequest,
    ClientMessageBody,
    EnrolmentCodesRequest,
    EnrolmentCodesResponse,
    ErrorResponse,
    ModelInfo,
    RegisterRequest,
    RegisterResponse,
    RoundInfo,
    RoundStatus,
    ServerRequest,
)
from .ratelimit import RateLimiter
from .rounds import ApiError, RoundManager
from .store import ServerStore

__all__ = ["create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
TICK_SECONDS = 0.2


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes (by ``Content-Length`` or while streaming)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(send, self.limit)
            return
        seen = 0
        rejected = False

        async def limited() -> Message:
            nonlocal seen, rejected
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    rejected = True
                    raise _BodyTooLargeError()
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLargeError:
            if rejected:
                await _too_large(send, self.limit)


class _BodyTooLargeError(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    response = JSONResponse({"detail": f"Request body must be at most {limit} bytes."}, status_code=413)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - JSONResponse never reads
    return {"type": "http.disconnect"}


_BEARER = HTTPBearer(auto_error=False, description="A device's token from `POST /v1/devices`, or the admin token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def _header(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return None if credentials is None else f"{credentials.scheme} {credentials.credentials}"


def _limit(request: Request, key: bytes | str) -> None:
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.check(key)
    if wait > 0:
        raise ApiError(429, f"Too many requests: retry in {wait:.2f} s.", retry_after=wait)


def _device(request: Request, credentials: Credentials) -> int:
    """The authenticated device id (401 otherwise); rate-limited per token (429)."""
    manager: RoundManager = request.app.state.manager
    token = bearer_token(_header(credentials))
    if token is not None:
        _limit(request, hash_token(token))
    return manager.authenticate(token)


Device = Annotated[int, Depends(_device)]


def _signing_key(db_path: Path, source: Path | str | bytes | None) -> tuple[Ed25519PrivateKey, bytes]:
    """The bundle-signing key and its raw public key: ``source``, or the one in ``<db>.keys/`` (made once)."""
    if source is None:
        keys = db_path.with_name(db_path.name + ".keys")
        private = keys / PRIVATE_KEY_NAME
        if not private.exists():
            private, _ = generate_signing_key(keys)
        source = private
    key = load_private_key(source)
    return key, key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def create_app(
    db_path: Path | str,
    config: ServerConfig | None = None,
    *,
    admin_token: str | None = None,
    tick_seconds: float = TICK_SECONDS,
    features: NDArray[np.float32] | None = None,
    signing_key: Path | str | bytes | None = None,
) -> FastAPI:
    """Build the app over the SQLite file ``db_path`` (created if missing).

    Args:
        db_path: the server's state.
        config: server settings; default: the ones stored in the database, else :class:`ServerConfig()`.
        admin_token: enables the ``/v1/admin`` endpoints for this bearer token (None disables them).
        tick_seconds: how often a background thread checks deadlines (0 disables it; requests still check).
        features: public item features ``[num_items, f]`` for ``config.item_features="genre"``, stored when
            the database is created (default: MovieLens-100K's genre/decade features).
        signing_key: the Ed25519 private key (PEM path or bytes) the published bundles are signed with; None
            uses ``<db>.keys/`` (a new key pair is created there, mode 0600, on first start). Devices pin the
            public key (``<db>.keys/privrec_signing_key.pub``, also ``app.state.public_key``).
    """
    logger = configure_logging()
    db = Database(db_path)
    store = ServerStore(db)
    stored = store.get_meta("config")
    if config is None:
        config = ServerConfig.from_dict(json.loads(stored)) if stored else ServerConfig()
    store.put_meta("config", json.dumps(config.to_dict()))
    key_source, public_key = _signing_key(Path(db_path), signing_key)
    manager = RoundManager(store, config, logger, features=features, signing_key=key_source)
    admin_digest = hash_token(admin_token) if admin_token else None
    stop = threading.Event()

    def ticker() -> None:
        while not stop.wait(tick_seconds):
            try:
                manager.tick()
            except Exception as exc:  # keep ticking; the error is logged without data
                log_event(logger, "tick_failed", level=logging.ERROR, error=type(exc).__name__)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        thread = threading.Thread(target=ticker, name="privrec-deadlines", daemon=True) if tick_seconds > 0 else None
        if thread is not None:
            thread.start()
        log_event(logger, "server_started", db=str(db_path))
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=5)

    app = FastAPI(
        title="privrec aggregation server",
        version="1",
        description="Secure aggregation (Bonawitz et al. 2017) of DP-clipped model updates; SQLite state.",
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.db = db
    app.state.public_key = public_key
    app.state.limiter = RateLimiter(per_second=config.rate_limit_per_second, burst=config.rate_limit_burst)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        log_event(logger, "request_refused", level=logging.INFO, status=exc.status, detail=exc.detail[:200])
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))} if exc.retry_after is not None else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"Invalid request: `{where}`: {first.get('msg', 'invalid')} ({len(errors)} error(s))."
        log_event(logger, "request_invalid", level=logging.INFO, where=where[:120])
        return JSONResponse({"detail": detail}, status_code=422)

    def admin(credentials: Credentials) -> None:
        token = bearer_token(_header(credentials))
        if admin_digest is None:
            raise ApiError(403, "Admin endpoints are disabled: start the server with an admin token.")
        if token is None or not hmac.compare_digest(hash_token(token), admin_digest):
            raise ApiError(401, "A valid admin bearer token is required.")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/devices", status_code=201, response_model=RegisterResponse, responses=_ERRORS)
    def register(request: Request, body: Annotated[RegisterRequest | None, Body()] = None) -> RegisterResponse:
        _limit(request, f"register:{request.client.host if request.client else '?'}")
        device_id, token = manager.register(None if body is None else body.enrolment_code)
        return RegisterResponse(device_id=device_id, token=token)

    @app.get("/v1/model", response_model=ModelInfo, responses=_ERRORS)
    def model(_: Device) -> ModelInfo:
        return ModelInfo(**manager.model_info())

    @app.get(
        "/v1/model/bundle",
        responses={**_ERRORS, 200: {"content": {"application/x-tar": {}}}},
        response_class=Response,
    )
    def model_bundle(_: Device) -> Response:
        version, data = manager.model_bytes("bundle")
        return Response(data, media_type="application/x-tar", headers={"X-Model-Version": str(version)})

    @app.get(
        "/v1/model/weights",
        responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
        response_class=Response,
    )
    def model_weights(_: Device) -> Response:
        version, data = manager.model_bytes("weights")
        return Response(data, media_type="application/octet-stream", headers={"X-Model-Version": str(version)})

    @app.get("/v1/rounds/current", response_model=RoundInfo, responses=_ERRORS)
    def current_round(device_id: Device) -> RoundInfo:
        return RoundInfo(**manager.current_round(device_id))

    @app.post("/v1/rounds/{round_id}/checkin", responses=_ERRORS)
    def checkin(round_id: str, body: CheckinRequest, device_id: Device) -> dict[str, Any]:
        return manager.checkin(device_id, round_id, body.participate)

    @app.get("/v1/rounds/{round_id}/request", response_model=ServerRequest, responses=_ERRORS)
    def round_request(round_id: str, device_id: Device) -> ServerRequest:
        return ServerRequest(**manager.request(device_id, round_id))

    @app.post("/v1/rounds/{round_id}/messages", response_model=Ack, responses=_ERRORS)
    def submit(
        round_id: str, body: Annotated[ClientMessageBody, Body()], device_id: Device
    ) -> Ack:
        return Ack(**manager.submit(device_id, round_id, body.model_dump()))

    @app.get("/v1/rounds/{round_id}", response_model=RoundStatus, responses=_ERRORS)
    def round_status(round_id: str, _: Device) -> RoundStatus:
        return RoundStatus(**manager.status(round_id))

    @app.get("/v1/ledger", responses=_ERRORS)
    def ledger(_: Device) -> dict[str, Any]:
        return manager.ledger()

    @app.post("/v1/admin/enrolment-codes", status_code=201, response_model=EnrolmentCodesResponse, responses=_ERRORS,
              dependencies=[Depends(admin)])
    def admin_enrolment_codes(body: EnrolmentCodesRequest) -> EnrolmentCodesResponse:
        return EnrolmentCodesResponse(codes=manager.issue_enrolment_codes(body.count))

    @app.post("/v1/admin/rounds", status_code=201, responses=_ERRORS, dependencies=[Depends(admin)])
    def admin_open() -> dict[str, str]:
        return {"round_id": manager.open_round()}

    @app.post(
        "/v1/admin/rounds/{round_id}/advance",
        response_model=RoundStatus,
        responses=_ERRORS,
        dependencies=[Depends(admin)],
    )
    def admin_advance(round_id: str) -> RoundStatus:
        return RoundStatus(**manager.advance(round_id))

    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    return app
