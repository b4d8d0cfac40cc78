"""privrec.server_stub: the aggregation server (HTTP API, SQLite state, secure aggregation, DP noise and ledger).

``privrec serve --db FILE`` runs :func:`serve`; tests build the app with :func:`create_app`.
"""

from .app import create_app
from .config import ServerConfig
from .db import Database
from .rounds import ApiError, RoundManager
from .serve import serve

__all__ = ["ApiError", "Database", "RoundManager", "ServerConfig", "create_app", "serve"]
