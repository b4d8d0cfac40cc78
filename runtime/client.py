"""An httpx client for the aggregation server's API (``privrec serve``), used by :class:`.device.Device`.

Every call returns parsed JSON (or bytes for the bundle) and raises :class:`ServerError` with the
server's ``detail`` for a 4xx/5xx. Connection failures (a server restarting) are retried with backoff
for up to ``retry_seconds``, and so are 429 (rate limit, after its ``Retry-After``) and 503 (the newest
bundle is still being written); a retried POST that the server had already committed comes back as a 409
"Replay", which :meth:`ServerClient.submit` reports as accepted. With an ``https://`` URL the server's
certificate is checked against ``verify`` (a CA bundle path, or True for the system store).
"""

from __future__ import annotations

import ssl
import time
from typing import Any

import httpx

from privrec.sdk.errors import PrivrecError

__all__ = ["ServerClient", "ServerError"]


class ServerError(PrivrecError, RuntimeError):
    """The server refused a request (``status`` 4xx/5xx, ``detail`` its message)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class ServerClient:
    """The device side of the HTTP API.

    Args:
        base_url: e.g. ``http://127.0.0.1:8080``.
        token: the device's bearer token (None until :meth:`register`).
        timeout: seconds per request.
        retry_seconds: how long to keep retrying when the server cannot be reached or asks to retry.
        verify: TLS certificate check: a CA bundle path, True (system store) or an ``ssl.SSLContext``.

    Attributes:
        bytes_sent, bytes_received: body bytes of every request and response (for benchmarks).
    """

    def __init__(
        self, base_url: str, token: str | None = None, *, timeout: float = 60.0, retry_seconds: float = 30.0,
        verify: str | bool | ssl.SSLContext = True,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"`base_url` must be an http(s) URL. Found {base_url!r}.")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retry_seconds = retry_seconds
        self.bytes_sent = 0
        self.bytes_received = 0
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, verify=verify)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- transport
    def _call(
        self, method: str, path: str, *, json: Any = None, token: str | None = None, auth: bool = True
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        bearer = token if token is not None else self.token
        if auth and bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        give_up = time.monotonic() + self.retry_seconds
        delay = 0.05
        while True:
            try:
                request = self._http.build_request(method, path, json=json, headers=headers)
                response = self._http.send(request)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                if time.monotonic() >= give_up:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if response.status_code in (429, 503) and time.monotonic() < give_up:
                try:
                    wait = float(response.headers.get("Retry-After", delay))
                except ValueError:
                    wait = delay
                time.sleep(min(max(wait, 0.01), 5.0, max(give_up - time.monotonic(), 0.0)))
                continue
            break
        self.bytes_sent += len(request.content)
        self.bytes_received += len(response.content)
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", response.text))
            except ValueError:
                detail = response.text
            raise ServerError(response.status_code, detail)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    # ----------------------------------------------------------------------------------- API
    def register(self, enrolment_code: str | None = None) -> int:
        """Register a new device with the operator's one-time ``enrolment_code``; stores the token and returns
        the device id."""
        body = None if enrolment_code is None else {"enrolment_code": enrolment_code}
        data = self._json("POST", "/v1/devices", json=body, auth=False)
        self.token = str(data["token"])
        return int(data["device_id"])

    def model_info(self) -> dict[str, Any]:
        """``GET /v1/model``."""
        return dict(self._json("GET", "/v1/model"))

    def download_bundle(self) -> tuple[int, bytes]:
        """``GET /v1/model/bundle``: ``(version, tar bytes)``."""
        response = self._call("GET", "/v1/model/bundle")
        return int(response.headers["X-Model-Version"]), response.content

    def current_round(self) -> dict[str, Any]:
        """``GET /v1/rounds/current``."""
        return dict(self._json("GET", "/v1/rounds/current"))

    def checkin(self, round_id: str, participate: bool) -> dict[str, Any]:
        """``POST /v1/rounds/{id}/checkin``."""
        return dict(self._json("POST", f"/v1/rounds/{round_id}/checkin", json={"participate": participate}))

    def request(self, round_id: str) -> dict[str, Any]:
        """``GET /v1/rounds/{id}/request``: what to do next."""
        return dict(self._json("GET", f"/v1/rounds/{round_id}/request"))

    def submit(self, round_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/rounds/{id}/messages``; a 409 "Replay" (accepted before a lost response) counts as accepted."""
        try:
            return dict(self._json("POST", f"/v1/rounds/{round_id}/messages", json=message))
        except ServerError as exc:
            if exc.status == 409 and exc.detail.startswith("Replay"):
                return {"accepted": True, "round_id": round_id, "stage": message.get("type", ""), "phase": "unknown"}
            raise

    def status(self, round_id: str) -> dict[str, Any]:
        """``GET /v1/rounds/{id}``."""
        return dict(self._json("GET", f"/v1/rounds/{round_id}"))

    def ledger(self) -> dict[str, Any]:
        """``GET /v1/ledger``."""
        return dict(self._json("GET", "/v1/ledger"))

    def admin_enrolment_codes(self, count: int, admin_token: str) -> list[str]:
        """``POST /v1/admin/enrolment-codes`` (admin token): ``count`` one-time codes for new devices."""
        data = self._json("POST", "/v1/admin/enrolment-codes", json={"count": count}, token=admin_token)
        return [str(c) for c in data["codes"]]

    def admin_open_round(self, admin_token: str) -> str:
        """``POST /v1/admin/rounds`` (admin token)."""
        return str(self._json("POST", "/v1/admin/rounds", token=admin_token)["round_id"])

    def admin_advance(self, round_id: str, admin_token: str) -> dict[str, Any]:
        """``POST /v1/admin/rounds/{id}/advance`` (admin token)."""
        return dict(self._json("POST", f"/v1/admin/rounds/{round_id}/advance", token=admin_token))
