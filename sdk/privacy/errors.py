"""Warnings of the privacy package.

Unsafe privacy settings are allowed (simulations need them) but never silent: they raise a
:class:`PrivacyWarning` when chosen and are recorded in the ledger. Errors reuse the SDK
hierarchy: :class:`privrec.sdk.errors.PrivacyBudgetExceededError` for a spent budget, builtin
``TypeError`` / ``ValueError`` for bad arguments.
"""

from __future__ import annotations

__all__ = ["PrivacyWarning"]


class PrivacyWarning(UserWarning):
    """An unsafe privacy setting was chosen: DP mode ``"off"``, zero noise, or a seeded (insecure) noise
    source.

    Filter it deliberately (``warnings.simplefilter("error", PrivacyWarning)`` in production, for instance);
    it is a :class:`UserWarning`, so it is shown by default.
    """
