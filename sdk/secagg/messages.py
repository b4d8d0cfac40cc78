"""The protocol messages: frozen dataclasses with a JSON-able ``to_dict()`` / ``from_dict()``.

Wire format: every message is a JSON object with a ``"type"`` field (the class's ``TYPE``), bytes as
standard base64 and vectors as base64 of little-endian uint32. ``message_from_dict`` dispatches on
``"type"``; ``from_dict`` refuses a missing or an unknown field. Each class records the protocol round it
belongs to (``STAGE``, a :class:`.Stage` constant) and its direction (``FROM_CLIENT``).

================================  ==========  ===============  =========================================
message                           round       direction        content
================================  ==========  ===============  =========================================
:class:`AdvertiseKeys`            0           client → server  c_pk (encryption), s_pk (masking)
:class:`KeyRoster`                1 (start)   server → client  public keys of the recipient's neighbours
:class:`ShareKeys`                1           client → server  one :class:`EncryptedShare` per holder
:class:`ShareRouting`             2 (start)   server → client  the shares addressed to the recipient
:class:`MaskedInput`              2           client → server  the masked vector y_u
:class:`UnmaskingRequest`         4 (start)   server → client  survivors and dropped peers
:class:`UnmaskingResponse`        4           client → server  :class:`RevealedShare` openings, b / s_sk
================================  ==========  ===============  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ._wire import b64decode, b64encode, int_list, refuse_unknown, require
from .errors import SecAggMessageError
from .stages import Stage

__all__ = [
    "CLIENT_MESSAGES",
    "SERVER_MESSAGES",
    "AdvertiseKeys",
    "ClientMessage",
    "EncryptedShare",
    "KeyRoster",
    "MaskedInput",
    "Message",
    "PublicKeys",
    "RevealedShare",
    "ServerMessage",
    "ShareKeys",
    "ShareRouting",
    "UnmaskingRequest",
    "UnmaskingResponse",
    "message_from_dict",
]

_KEY_BYTES = 32


def _check_id(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int. Found {type(value).__name__}.")


def _check_round(value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"`round_id` must be a non-empty str. Found {value!r}.")


def _check_bytes(value: object, name: str, length: int | None = None) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"`{name}` must be bytes. Found {type(value).__name__}.")
    if length is not None and len(value) != length:
        raise SecAggMessageError(f"`{name}` must be {length} bytes. Found {len(value)}.")


def _check_tuple(value: object, name: str, kind: type) -> None:
    if not isinstance(value, tuple):
        raise TypeError(f"`{name}` must be a tuple. Found {type(value).__name__}.")
    for item in value:
        if (kind is int and isinstance(item, bool)) or not isinstance(item, kind):
            raise TypeError(f"`{name}` must contain {kind.__name__}. Found {type(item).__name__}.")


def _refuse_unknown(data: Any, cls: type) -> None:
    keys = {f.name for f in fields(cls)} | ({"type"} if hasattr(cls, "TYPE") else set())
    refuse_unknown(data, keys, cls.__name__)


def _check_type(data: Any, expected: str) -> None:
    found = require(data, "type", str)
    if found != expected:
        raise SecAggMessageError(f"`type` must be {expected!r}. Found {found!r}.")


# --------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class PublicKeys:
    """A client's two X25519 public keys (Round 0): ``encryption`` (c_pk) and ``masking`` (s_pk)."""

    client_id: int
    encryption: bytes
    masking: bytes

    def __post_init__(self) -> None:
        _check_id(self.client_id, "client_id")
        _check_bytes(self.encryption, "encryption", _KEY_BYTES)
        _check_bytes(self.masking, "masking", _KEY_BYTES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "encryption": b64encode(self.encryption),
            "masking": b64encode(self.masking),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PublicKeys:
        _refuse_unknown(data, cls)
        return cls(
            client_id=require(data, "client_id", int),
            encryption=b64decode(require(data, "encryption", str), "encryption"),
            masking=b64decode(require(data, "masking", str), "masking"),
        )


@dataclass(frozen=True)
class EncryptedShare:
    """Round 1: ``sender``'s shares of s_sk and b for ``receiver`` (which may be ``sender`` itself), each
    sealed under its own committed one-time key (:mod:`.sealed`; ``ciphertext`` is 224 bytes)."""

    sender: int
    receiver: int
    nonce: bytes
    ciphertext: bytes

    def __post_init__(self) -> None:
        _check_id(self.sender, "sender")
        _check_id(self.receiver, "receiver")
        _check_bytes(self.nonce, "nonce")
        _check_bytes(self.ciphertext, "ciphertext")

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "receiver": self.receiver,
            "nonce": b64encode(self.nonce),
            "ciphertext": b64encode(self.ciphertext),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncryptedShare:
        _refuse_unknown(data, cls)
        return cls(
            sender=require(data, "sender", int),
            receiver=require(data, "receiver", int),
            nonce=b64decode(require(data, "nonce", str), "nonce"),
            ciphertext=b64decode(require(data, "ciphertext", str), "ciphertext"),
        )


@dataclass(frozen=True)
class RevealedShare:
    """Round 4: the opening of the sender's share of ``owner``'s secret — in ``share``, the 32-byte one-time
    key the share was sealed under in Round 1 (:mod:`.sealed`), not the share itself. The server checks it
    against ``owner``'s commitment and decrypts ``owner``'s own ciphertext with it, so a holder cannot
    substitute a share."""

    owner: int
    share: bytes

    def __post_init__(self) -> None:
        _check_id(self.owner, "owner")
        _check_bytes(self.share, "share")

    def to_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "share": b64encode(self.share)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RevealedShare:
        _refuse_unknown(data, cls)
        return cls(owner=require(data, "owner", int), share=b64decode(require(data, "share", str), "share"))


# -------------------------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class AdvertiseKeys:
    """Round 0, client → server: the client's public keys (Bonawitz et al. 2017, Fig. 4, Round 0)."""

    TYPE: ClassVar[str] = "advertise_keys"
    STAGE: ClassVar[str] = Stage.ADVERTISE_KEYS
    FROM_CLIENT: ClassVar[bool] = True

    round_id: str
    sender: int
    keys: PublicKeys

    def __post_init__(self) -> None:
        _check_round(self.round_id)
        _check_id(self.sender, "sender")
        if not isinstance(self.keys, PublicKeys):
            raise TypeError(f"`keys` must be PublicKeys. Found {type(self.keys).__name__}.")
        if self.keys.client_id != self.sender:
            raise SecAggMessageError(f"`keys.client_id` must equal `sender` {self.sender}. Found {self.keys.client_id}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round_id": self.round_id,
            "sender": self.sender,
            "keys": self.keys.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdvertiseKeys:
        _check_type(data, cls.TYPE)
        _refuse_unknown(data, cls)
        return cls(
            round_id=require(data, "round_id", str),
            sender=require(data, "sender", int),
            keys=PublicKeys.from_dict(require(data, "keys", dict)),
        )


@dataclass(frozen=True)
class KeyRoster:
    """Start of Round 1, server → client: public keys of the recipient's neighbours that joined Round 0
    (and the recipient's own, for it to check), sorted by client id."""

    TYPE: ClassVar[str] = "key_roster"
    STAGE: ClassVar[str] = Stage.SHARE_KEYS
    FROM_CLIENT: ClassVar[bool] = False

    round_id: str
    recipient: int
    keys: tuple[PublicKeys, ...]

    def __post_init__(self) -> None:
        _check_round(self.round_id)
        _check_id(self.recipient, "recipient")
        _check_tuple(self.keys, "keys", PublicKeys)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round_id": self.round_id,
            "recipient": self.recipient,
            "keys": [k.to_dict() for k in self.keys],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyRoster:
        _check_type(data, cls.TYPE)
        _refuse_unknown(data, cls)
        return cls(
            round_id=require(data, "round_id", str),
            recipient=require(data, "recipient", int),
            keys=tuple(PublicKeys.from_dict(k) for k in require(data, "keys", list)),
        )


@dataclass(frozen=True)
class ShareKeys:
    """Round 1, client → server: one :class:`EncryptedShare` per holder — every client in the roster,
    the sender included."""

    TYPE: ClassVar[str] = "share_keys"
    STAGE: ClassVar[str] = Stage.SHARE_KEYS
    FROM_CLIENT: ClassVar[bool] = True

    round_id: str
    sender: int
    shares: tuple[EncryptedShare, ...]

    def __post_init__(self) -> None:
        _check_round(self.round_id)
        _check_id(self.sender, "sender")
        _check_tuple(self.shares, "shares", EncryptedShare)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round_id": self.round_id,
            "sender": self.sender,
            "shares": [s.to_dict() for s in self.shares],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShareKeys:
        _check_type(data, cls.TYPE)
        _refuse_unknown(data, cls)
        return cls(
            round_id=require(data, "round_id", str),
            sender=require(data, "sender", int),
            shares=tuple(EncryptedShare.from_dict(s) for s in require(data, "shares", list)),
        )


@dataclass(frozen=True)
class ShareRouting:
    """Start of Round 2, server → client: the encrypted shares addressed to the recipient, one per
    member of its closed neighbourhood that completed Round 1, its own included (its view of U2)."""

    TYPE: ClassVar[str] = "share_routing"
    STAGE: ClassVar[str] = Stage.MASKED_INPUT_COLLECTION
    FROM_CLIENT: ClassVar[bool] = False

    round_id: str
    recipient: int
    shares: tuple[EncryptedShare, ...]

    def __post_init__(self) -> None:
        _check_round(self.round_id)
        _check_id(self.recipient, "recipient")
        _check_tuple(self.shares, "shares", EncryptedShare)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round_id": self.round_id,
            "recipient": self.recipient,
            "shares": [s.to_dict() for s in self.shares],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShareRouting:
        _check_type(data, cls.TYPE)
        _refuse_unknown(data, cls)
        return cls(
            round_id=require(data, "round_id", str),
            recipient=require(data, "recipient", int),
            shares=tuple(EncryptedShare.from_dict(s) for s in require(data, "shares", list)),
        )


@dataclass(frozen=True)
class MaskedInput:
    """Round 2, client → server: y_u as little-endian uint32 bytes (``vector``; see :attr:`values`)."""

    TYPE: ClassVar[str] = "masked_input"
    STAGE: ClassVar[str] = Stage.MASKED_INPUT_COLLECTION
    FROM_CLIENT: ClassVar[bool] = True

    round_id: str
    sender: int
    vector: bytes

    def __post_init__(self) -> None:
        _check_round(self.round_id)
        _check_id(self.sender, "sender")
        _check_bytes(self.vector, "vector")
        if len(self.vector) % 4:
            raise SecAggMessageError(f"`vector` must hold whole uint32 words. Found {len(self.vector)} bytes.")

    @classmethod
    def from_array(cls, *, round_id: str, sender: int, values: NDArray[np.uint32]) -> MaskedInput:
        """Build from a uint32 array."""
        return cls(round_id=round_id, sender=sender, vector=np.ascontiguousarray(values, dtype="<u4").tobytes())

    @property
    def values(self) -> NDArray[np.uint32]:
        """The masked vector as a read-only uint32 array of length D."""
        return np.frombuffer(self.vector, dtype="<u4")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round_id": self.round_id,
            "sender": self.sender,
            "vector": b64encode(self.vector),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaskedInput:
        _check_type(data, cls.TYPE)
        _refuse_unknown(data, cls)
        return cls(
            round_id=require(data, "round_id", str),
            sender=require(data, "sender", int),
            vector=b64decode(require(data, "vector", str), "vector"),
        )


@dataclass(frozen=True)
class UnmaskingRequest:
    """Start of Round 4, server → client: which of the recipient's neighbours (and itself) sent a masked
    input (``survivors``, U3) and which completed Round 1 but not Round 2 (``dropped``, U2 \\ U3)."""

    TYPE: ClassVar[str] = "unmasking_request"
    STAGE: ClassVar[str] = Stage.UNMASKING
    FROM_CLIENT: ClassVar[bool] = False

    round_id: str
    recipient: int
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_round(self.round_id)
        _check_id(self.recipient, "recipient")
        _check_tuple(self.survivors, "survivors", int)
        _check_tuple(self.dropped, "dropped", int)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round_id": self.round_id,
            "recipient": self.recipient,
            "survivors": list(self.survivors),
            "dropped": list(self.dropped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnmaskingRequest:
        _check_type(data, cls.TYPE)
        _refuse_unknown(data, cls)
        return cls(
            round_id=require(data, "round_id", str),
            recipient=require(data, "recipient", int),
            survivors=int_list(data, "survivors"),
            dropped=int_list(data, "dropped"),
        )


@dataclass(frozen=True)
class UnmaskingResponse:
    """Round 4, client → server: openings of its shares of b_v for every survivor v and of s_sk_d for
    every dropped d."""

    TYPE: ClassVar[str] = "unmasking_response"
    STAGE: ClassVar[str] = Stage.UNMASKING
    FROM_CLIENT: ClassVar[bool] = True

    round_id: str
    sender: int
    self_mask_shares: tuple[RevealedShare, ...]
    key_shares: tuple[RevealedShare, ...]

    def __post_init__(self) -> None:
        _check_round(self.round_id)
        _check_id(self.sender, "sender")
        _check_tuple(self.self_mask_shares, "self_mask_shares", RevealedShare)
        _check_tuple(self.key_shares, "key_shares", RevealedShare)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "round_id": self.round_id,
            "sender": self.sender,
            "self_mask_shares": [s.to_dict() for s in self.self_mask_shares],
            "key_shares": [s.to_dict() for s in self.key_shares],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnmaskingResponse:
        _check_type(data, cls.TYPE)
        _refuse_unknown(data, cls)
        return cls(
            round_id=require(data, "round_id", str),
            sender=require(data, "sender", int),
            self_mask_shares=tuple(RevealedShare.from_dict(s) for s in require(data, "self_mask_shares", list)),
            key_shares=tuple(RevealedShare.from_dict(s) for s in require(data, "key_shares", list)),
        )


Message = AdvertiseKeys | KeyRoster | ShareKeys | ShareRouting | MaskedInput | UnmaskingRequest | UnmaskingResponse
ClientMessage = AdvertiseKeys | ShareKeys | MaskedInput | UnmaskingResponse
ServerMessage = KeyRoster | ShareRouting | UnmaskingRequest

#: Client → server message classes, in protocol order.
CLIENT_MESSAGES: tuple[type[ClientMessage], ...] = (AdvertiseKeys, ShareKeys, MaskedInput, UnmaskingResponse)
#: Server → client message classes, in protocol order.
SERVER_MESSAGES: tuple[type[ServerMessage], ...] = (KeyRoster, ShareRouting, UnmaskingRequest)

_BY_TYPE: dict[str, type[Message]] = {cls.TYPE: cls for cls in (*CLIENT_MESSAGES, *SERVER_MESSAGES)}


def message_from_dict(data: dict[str, Any]) -> Message:
    """Parse any message by its ``"type"`` field."""
    kind = require(data, "type", str)
    if kind not in _BY_TYPE:
        raise SecAggMessageError(f"`type` must be one of {sorted(_BY_TYPE)}. Found {kind!r}.")
    return _BY_TYPE[kind].from_dict(data)
