"""Servers for tests, demos and benchmarks: ``privrec serve`` in a subprocess or uvicorn in a thread.

Not part of the server product: :mod:`privrec.server_stub` holds the server itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from privrec.server_stub.config import ServerConfig

from .tls import TLSFiles

__all__ = ["ServerProcess", "free_port", "serve_in_thread"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, timeout: float, alive: object = None, verify: str | bool = True) -> None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if callable(alive) and not alive():
            raise RuntimeError(f"The server at {url} exited before it became healthy.")
        time.sleep(0.05)
    raise TimeoutError(f"The server at {url} did not become healthy within {timeout} s.")


@contextmanager
def serve_in_thread(app: FastAPI, *, port: int | None = None, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a background thread; yields the base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="privrec-uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, timeout, thread.is_alive)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class ServerProcess:
    """``privrec serve`` in a subprocess on 127.0.0.1 (tests, benchmarks): start, SIGKILL, restart.

    Args:
        db: the SQLite file.
        config: settings written to a JSON file passed as ``PRIVREC_SERVER_CONFIG``.
        admin_token: passed as ``PRIVREC_ADMIN_TOKEN``.
        port: default: a free port.
        log_path: where the server's stderr (JSON logs) goes; default ``<db>.log``.
        tls: serve over TLS with these files (:func:`privrec.testing.tls.make_test_ca`); ``url`` is then https.
    """

    def __init__(
        self,
        db: Path,
        config: ServerConfig,
        *,
        admin_token: str,
        port: int | None = None,
        log_path: Path | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        self.db = Path(db)
        self.port = port or free_port()
        self.tls = tls
        self.url = f"{'https' if tls is not None else 'http'}://127.0.0.1:{self.port}"
        #: What a client passes as ``verify=`` to trust this server.
        self.verify: str | bool = str(tls.ca_cert) if tls is not None else True
        self.admin_token = admin_token
        self.log_path = log_path or Path(f"{self.db}.log")
        self.config_path = Path(f"{self.db}.config.json")
        self.config_path.write_text(json.dumps(config.to_dict()))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def public_key(self) -> Path:
        """The server's bundle-signing public key (base64 file), made on its first start: pin it on devices."""
        return Path(f"{self.db}.keys") / "privrec_signing_key.pub"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start the server and wait until ``/healthz`` answers."""
        env = {**os.environ, "PRIVREC_SERVER_CONFIG": str(self.config_path), "PRIVREC_ADMIN_TOKEN": self.admin_token}
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "privrec", "serve", "--db", str(self.db), "--host", "127.0.0.1",
             "--port", str(self.port),
             *(["--tls-cert", str(self.tls.server_cert), "--tls-key", str(self.tls.server_key)] if self.tls else [])],
            stdout=log, stderr=log, env=env,
        )
        log.close()
        proc = self.proc
        _wait_healthy(self.url, timeout, lambda: proc.poll() is None, self.verify)
        return self

    def kill(self) -> None:
        """SIGKILL the server (no cleanup: what a crash does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
