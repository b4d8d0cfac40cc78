"""``privrec serve``: run the aggregation server with uvicorn.

Settings come from the database (stored on first start) or, when set, from the JSON file named by
``PRIVREC_SERVER_CONFIG`` (a :meth:`ServerConfig.to_dict` object, partial keys allowed). The admin token
is ``PRIVREC_ADMIN_TOKEN`` if set; otherwise a fresh one is written to ``<db>.admin-token`` (mode 0600)
and never logged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import uvicorn

from .app import create_app
from .auth import new_token
from .config import ServerConfig

__all__ = ["admin_token_for", "serve"]


def admin_token_for(db: Path) -> str:
    """``PRIVREC_ADMIN_TOKEN``, or a new token written to ``<db>.admin-token`` with mode 0600."""
    token = os.environ.get("PRIVREC_ADMIN_TOKEN")
    if token:
        return token
    path = Path(f"{db}.admin-token")
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def _config_from_env() -> ServerConfig | None:
    path = os.environ.get("PRIVREC_SERVER_CONFIG")
    if not path:
        return None
    raw = json.loads(Path(path).read_text())
    base = ServerConfig().to_dict()
    base.update(raw)
    return ServerConfig.from_dict(base)


def serve(
    db: Path, host: str = "127.0.0.1", port: int = 8080, *, tls_cert: Path | None = None, tls_key: Path | None = None
) -> None:
    """Serve the API on ``host:port`` with state in the SQLite file ``db`` (blocks until stopped); over TLS
    only when given a certificate chain and its private key (PEM files)."""
    db = Path(db)
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("TLS needs both --tls-cert and --tls-key (PEM files). Found only one.")
    for path in (tls_cert, tls_key):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"TLS file {path} does not exist.")
    app = create_app(db, _config_from_env(), admin_token=admin_token_for(db))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                ssl_certfile=None if tls_cert is None else str(tls_cert),
                ssl_keyfile=None if tls_key is None else str(tls_key))
