"""The privrec error hierarchy.

Every error derives from a builtin (``ValueError`` or ``TypeError``) so callers that already catch
those keep working, and from :class:`PrivrecError` so callers can catch everything privrec raises.
"""

from __future__ import annotations

__all__ = [
    "DataIntegrityError",
    "PrivacyBudgetExceededError",
    "PrivrecError",
]


class PrivrecError(Exception):
    """Base class of every error privrec raises on purpose."""


class DataIntegrityError(PrivrecError, ValueError):
    """A file's hash, size or schema is not what was expected (missing, corrupt or tampered)."""


class PrivacyBudgetExceededError(PrivrecError, ValueError):
    """Running the requested step would spend more privacy budget than was granted."""
