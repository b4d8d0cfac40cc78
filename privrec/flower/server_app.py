"""The Flower ServerApp: privrec's rounds (:func:`.server.server_main`) behind Flower's ``ServerApp``.

Named by the Flower App's ``[tool.flwr.app.components] serverapp = "privrec.flower.server_app:app"``.
"""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from .server import server_main

__all__ = ["app"]

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the rounds and write the RUN_DIR (the run config says where)."""
    server_main(grid, context)
