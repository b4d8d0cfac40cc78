"""Errors raised by the secure-aggregation protocol.

Every error derives from :class:`privrec.sdk.errors.PrivrecError` and from a builtin, so callers may
catch either. The four kinds map to the four things a transport layer must do differently:

* :class:`SecAggStageError` — the operation is not valid in the current stage (a message that arrives
  too early or too late, a second call of a one-shot step). Refuse the request; the state is unchanged.
* :class:`SecAggMessageError` — the message itself is wrong (another round, unknown or dropped peer,
  duplicate, wrong recipient, wrong vector length, share sets that do not match). Refuse it; the state
  is unchanged.
* :class:`SecAggIntegrityError` — a cryptographic check failed (AES-GCM tag, a reconstructed key that
  does not match its advertised public key). Refuse the message; treat its sender as malicious.
* :class:`SecAggAbortedError` — too few participants survive for the round to finish. The round is
  over (the state moves to ``ABORTED``); the caller leaves the model unchanged.
"""

from __future__ import annotations

from ..errors import PrivrecError

__all__ = [
    "SecAggAbortedError",
    "SecAggError",
    "SecAggIntegrityError",
    "SecAggMessageError",
    "SecAggStageError",
]


class SecAggError(PrivrecError):
    """Base class of every secure-aggregation error."""


class SecAggStageError(SecAggError, RuntimeError):
    """The requested transition is not valid in the current stage of the state machine."""


class SecAggMessageError(SecAggError, ValueError):
    """A protocol message is malformed, addressed to another round or peer, duplicated or unexpected."""


class SecAggIntegrityError(SecAggError, ValueError):
    """A cryptographic integrity check failed (tampered ciphertext, inconsistent reconstructed key)."""


class SecAggAbortedError(SecAggError, RuntimeError):
    """The round cannot complete: fewer survivors than the threshold (Bonawitz et al. 2017, Fig. 4)."""
