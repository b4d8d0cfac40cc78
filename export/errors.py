"""Errors and warnings raised while reading or signing a bundle."""

from __future__ import annotations

from typing import Literal

from privrec.sdk.errors import DataIntegrityError

__all__ = ["BundleError", "BundleWarning", "SignatureError"]


class BundleError(DataIntegrityError):
    """A bundle is missing a file, or a file's size, hash, schema, dtype, shape or path is not what the
    manifest says. The message names the file and the field (docs/BUNDLE.md)."""


class SignatureError(BundleError):
    """``manifest.sig`` is absent, malformed, or does not verify ``manifest.json`` under the pinned key.

    Attributes:
        status: ``"absent"`` (no ``manifest.sig``) or ``"bad"`` (present but not a valid signature of
            ``manifest.json`` by the pinned key).
    """

    def __init__(self, message: str, *, status: Literal["absent", "bad"]) -> None:
        super().__init__(message)
        self.status = status


class BundleWarning(UserWarning):
    """A bundle was loaded without checking its signature (``allow_unsigned=True``): anyone who can write
    to the bundle directory can change the model, the item titles and the privacy ledger it shows."""
