"""Errors raised while reading a bundle."""

from __future__ import annotations

from privrec.sdk.errors import DataIntegrityError

__all__ = ["BundleError"]


class BundleError(DataIntegrityError):
    """A bundle is missing a file, or a file's size, hash, schema, dtype or shape is not what the
    manifest says. The message names the file and the field (docs/BUNDLE.md)."""
