"""Structured JSON logs: one object per line on stderr, ``{"ts", "level", "logger", "event", ...}``.

What is logged: events (registrations, stage changes, accepted / refused messages, round outcomes) with
ids, stages, counts and sizes. What is never logged: request bodies, tokens, vectors, keys or shares —
:func:`log_event` takes only scalar fields, and the round code passes it nothing derived from a
device's data except the survivor counts.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["LOGGER_NAME", "JsonFormatter", "configure_logging", "log_event"]

LOGGER_NAME = "privrec.server"
_SCALARS = (str, int, float, bool, type(None))


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; the structured fields come from ``record.fields``."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        return json.dumps(payload, sort_keys=True, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the call (it may be replaced after setup)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: int = logging.INFO) -> logging.Logger:
    """Attach one JSON handler on stderr to the server's logger (idempotent) and return the logger."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = _StderrHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.propagate = True
    return logger


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with scalar ``fields`` (a non-scalar value is refused: it could carry data)."""
    for name, value in fields.items():
        if not isinstance(value, _SCALARS):
            raise TypeError(f"log field `{name}` must be a scalar. Found {type(value).__name__}.")
    logger.log(level, event, extra={"fields": fields})
