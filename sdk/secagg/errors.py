"""Errors raised by the secure-aggregation protocol.

Every error derives from :class:`privrec.sdk.errors.PrivrecError` and from a builtin, so callers may
catch either. The four kinds map to the four things a transport layer must do differently:

* :class:`SecAggStageError` — the operation is not valid in the current stage (a message that arrives
  too early or too late, a second call of a one-shot step). Refuse the request; the state is unchanged.
* :class:`SecAggMessageError` — the message itself is wrong (another round, unknown or dropped peer,
  duplicate, wrong recipient, wrong vector length, share sets that do not match, an advertised public key
  that is low-order, non-canonical or not unique). Refuse it; the state is unchanged.
* :class:`SecAggIntegrityError` — a cryptographic check failed (AES-GCM tag, a key commitment, a sealed
  share that does not open). Refuse the message; treat the device named in ``culprits`` as malicious.
* :class:`SecAggAbortedError` — the round cannot finish: too few participants survive, or a device
  misbehaved in a way that leaves no correct sum to output (``culprits`` names it). The round is over
  (the state moves to ``ABORTED``); the caller leaves the model unchanged.

``culprits`` (sorted client ids, possibly empty) names the devices the error proves misbehaved; every
message that sets it also names them in its text.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import PrivrecError

__all__ = [
    "SecAggAbortedError",
    "SecAggError",
    "SecAggIntegrityError",
    "SecAggMessageError",
    "SecAggStageError",
]


class SecAggError(PrivrecError):
    """Base class of every secure-aggregation error.

    Args:
        message: what went wrong (names every culprit).
        culprits: ids of the devices proven to have misbehaved (default: none).
    """

    def __init__(self, message: str = "", *, culprits: Iterable[int] = ()) -> None:
        super().__init__(message)
        self.culprits: tuple[int, ...] = tuple(sorted(set(culprits)))


class SecAggStageError(SecAggError, RuntimeError):
    """The requested transition is not valid in the current stage of the state machine."""


class SecAggMessageError(SecAggError, ValueError):
    """A protocol message is malformed, addressed to another round or peer, duplicated or unexpected."""


class SecAggIntegrityError(SecAggError, ValueError):
    """A cryptographic integrity check failed (tampered ciphertext, a share that does not open)."""


class SecAggAbortedError(SecAggError, RuntimeError):
    """The round cannot complete: fewer survivors than the threshold (Bonawitz et al. 2017, Fig. 4), or
    a misbehaving device (named in ``culprits``) left no correct sum."""
