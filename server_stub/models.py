"""Request and response schemas (pydantic), with size limits on every string and list.

Protocol messages mirror :mod:`privrec.sdk.secagg.messages` field for field (bytes as standard base64,
vectors as base64 of little-endian uint32); the handler turns a validated body into the SDK's frozen
dataclass with ``message_from_dict``, which checks the rest (key lengths, base64, word counts).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Ack",
    "AdvertiseKeysBody",
    "CheckinRequest",
    "ClientMessageBody",
    "EncryptedShareBody",
    "EnrolmentCodesRequest",
    "EnrolmentCodesResponse",
    "ErrorResponse",
    "MaskedInputBody",
    "ModelInfo",
    "PublicKeysBody",
    "RegisterRequest",
    "RegisterResponse",
    "RevealedShareBody",
    "RoundInfo",
    "RoundStatus",
    "ServerRequest",
    "ShareKeysBody",
    "UnmaskingResponseBody",
]

#: Client ids are Shamir evaluation points in [1, 2^31 - 2] (privrec.sdk.secagg.config.MAX_CLIENT_ID).
ClientId = Annotated[int, Field(ge=1, le=2**31 - 2)]
RoundId = Annotated[str, Field(min_length=1, max_length=64)]
Key64 = Annotated[str, Field(min_length=1, max_length=64)]  # base64 of 32 bytes is 44 characters
MAX_PEERS = 10_000
#: Base64 of a uint32 vector; the exact length (4·D bytes) is checked against the round.
MAX_VECTOR_B64 = 64 * 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorResponse(_Strict):
    """Every 4xx body: what was wrong."""

    detail: str


class RegisterRequest(_Strict):
    """A device's admission credential: the one-time enrolment code the operator issued it."""

    enrolment_code: Annotated[str | None, Field(default=None, min_length=16, max_length=128)] = None


class EnrolmentCodesRequest(_Strict):
    """Admin: how many one-time enrolment codes to issue."""

    count: Annotated[int, Field(ge=1, le=100_000)]


class EnrolmentCodesResponse(_Strict):
    """The new enrolment codes (shown once; the server keeps only their hashes)."""

    codes: list[str]


class RegisterResponse(_Strict):
    """A new device's id (its secure-aggregation client id) and bearer token (shown once)."""

    device_id: int
    token: str


class ModelInfo(_Strict):
    """The current global model."""

    version: int
    num_items: int
    dim: int
    vector_length: int
    bundle_sha256: str
    bundle_bytes: int


class RoundInfo(_Strict):
    """The round a device should look at (the latest one)."""

    round_id: str
    seq: int
    phase: str
    model_version: int
    sample_rate: float
    deadline_seconds: float
    checked_in: bool
    participant: bool


class CheckinRequest(_Strict):
    """A device's Poisson-sampling outcome for a round (drawn on the device with ``secrets``)."""

    participate: bool


class ServerRequest(_Strict):
    """What a device should do next in a round.

    ``action``: ``"respond"`` (answer ``message`` for ``stage``), ``"wait"`` (poll again),
    ``"done"`` (the round completed), ``"aborted"``, or ``"excluded"`` (not or no longer in the round).
    ``message`` is the SDK's server message (``KeyRoster``, ``ShareRouting``, ``UnmaskingRequest``) as
    ``to_dict()``, or ``{"type": "round_config", "config": SecAggConfig.to_dict(), "params": {...}}``
    for Round 0.
    """

    round_id: str
    phase: str
    action: Literal["respond", "wait", "done", "aborted", "excluded"]
    stage: str | None = None
    message: dict[str, Any] | None = None


class Ack(_Strict):
    """A message was accepted and is durable."""

    accepted: bool
    round_id: str
    stage: str
    phase: str


class RoundStatus(_Strict):
    """Public progress of one round (counts only; ``pending``: devices yet to answer the current stage)."""

    round_id: str
    seq: int
    phase: str
    model_version: int
    participants: int
    survivors: dict[str, int]
    pending: int
    outcome: dict[str, Any] | None


# --------------------------------------------------------------------------- protocol message bodies
class PublicKeysBody(_Strict):
    client_id: ClientId
    encryption: Key64
    masking: Key64


class EncryptedShareBody(_Strict):
    sender: ClientId
    receiver: ClientId
    nonce: Annotated[str, Field(min_length=1, max_length=64)]
    ciphertext: Annotated[str, Field(min_length=1, max_length=2048)]


class RevealedShareBody(_Strict):
    owner: ClientId
    share: Annotated[str, Field(min_length=1, max_length=512)]


class AdvertiseKeysBody(_Strict):
    """Round 0 (Bonawitz et al. 2017, Fig. 4)."""

    type: Literal["advertise_keys"]
    round_id: RoundId
    sender: ClientId
    keys: PublicKeysBody


class ShareKeysBody(_Strict):
    """Round 1."""

    type: Literal["share_keys"]
    round_id: RoundId
    sender: ClientId
    shares: Annotated[list[EncryptedShareBody], Field(max_length=MAX_PEERS)]


class MaskedInputBody(_Strict):
    """Round 2."""

    type: Literal["masked_input"]
    round_id: RoundId
    sender: ClientId
    vector: Annotated[str, Field(min_length=1, max_length=MAX_VECTOR_B64)]


class UnmaskingResponseBody(_Strict):
    """Round 4."""

    type: Literal["unmasking_response"]
    round_id: RoundId
    sender: ClientId
    self_mask_shares: Annotated[list[RevealedShareBody], Field(max_length=MAX_PEERS)]
    key_shares: Annotated[list[RevealedShareBody], Field(max_length=MAX_PEERS)]


ClientMessageBody = Annotated[
    AdvertiseKeysBody | ShareKeysBody | MaskedInputBody | UnmaskingResponseBody,
    Field(discriminator="type"),
]
