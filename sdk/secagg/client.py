"""The client (device) side of secure aggregation: an explicit state machine over the rounds of
Bonawitz et al. 2017, Fig. 4, with the SecAgg+ neighbourhoods of Bell et al. 2020, §3.

``READY --advertise_keys()--> KEYS_ADVERTISED --share_keys(KeyRoster)--> KEYS_SHARED
--mask_input(ShareRouting, x)--> INPUT_MASKED --unmask(UnmaskingRequest)--> COMPLETED``

Each method is valid in exactly one stage and raises :class:`.SecAggStageError` otherwise (so a
client answers each round at most once — in particular it never reveals both the self-mask share
and the masking-key share of the same peer). A failed survivor check moves the client to ``ABORTED``
and raises :class:`.SecAggAbortedError`; a refused server message (:class:`.SecAggMessageError`,
:class:`.SecAggIntegrityError`, naming the peer at fault in ``culprits``) leaves the state unchanged, and
the device leaves the round. The client checks every public key in the roster (canonical, not low-order,
all different) and, in Round 2, that every sealed share it holds opens under the keys it derives
(:mod:`.sealed`), so what it reveals in Round 4 cannot be blamed on it. The whole state is a
:class:`ClientState` with ``to_dict``/``from_dict``: a device may persist it between stages and resume
after a restart. **The state holds the client's private keys and seed in clear**: store it in the
device's encrypted store, and delete it when the round ends. Persist the state *after* each step and
*before* sending its reply: a device restored from an older state could otherwise answer the unmasking
request twice and, faced with a lying server, reveal both secrets of one peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from . import shamir
from ._wire import b64decode, b64encode, int_list, refuse_unknown, require
from .config import SecAggConfig
from .crypto import agree, generate_key_pair, public_key, public_key_problem, random_seed
from .errors import SecAggAbortedError, SecAggMessageError, SecAggStageError
from .masking import add_pairwise_mask, self_mask
from .messages import (
    AdvertiseKeys,
    EncryptedShare,
    KeyRoster,
    MaskedInput,
    PublicKeys,
    RevealedShare,
    ShareKeys,
    ShareRouting,
    UnmaskingRequest,
    UnmaskingResponse,
)
from .sealed import SECRET_BYTES, opening_key, seal_shares, verify_sealed
from .stages import ClientStage

__all__ = ["ClientState", "SecAggClient"]


@dataclass
class ClientState:
    """Everything a client remembers between rounds (serialisable; contains secrets).

    Attributes:
        config: the round's public parameters.
        client_id: this client's id (its Shamir evaluation point).
        stage: a :class:`.ClientStage` constant.
        encryption_private: c_sk (X25519, 32 bytes), set in Round 0.
        masking_private: s_sk (X25519, 32 bytes), set in Round 0.
        self_mask_seed: b_u (32 bytes), set in Round 1.
        peer_keys: public keys of the neighbours in the roster (U1 ∩ N(u)), set in Round 1.
        dealers: the clients (this one included) whose sealed shares reached this client in Round 2 and
            opened correctly — its view of U2 ∩ N[u]; it masks pairwise with the others. The shares
            themselves are not kept: Round 4 reveals the keys that open them (:mod:`.sealed`).
        abort_reason: why the client aborted (empty otherwise).
    """

    config: SecAggConfig
    client_id: int
    stage: str = ClientStage.READY
    encryption_private: bytes = field(default=b"", repr=False)
    masking_private: bytes = field(default=b"", repr=False)
    self_mask_seed: bytes = field(default=b"", repr=False)
    peer_keys: dict[int, PublicKeys] = field(default_factory=dict)
    dealers: tuple[int, ...] = ()
    abort_reason: str = ""

    _KEYS: ClassVar[tuple[str, ...]] = (
        "config", "client_id", "stage", "encryption_private", "masking_private", "self_mask_seed", "peer_keys",
        "dealers", "abort_reason",
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (bytes as base64)."""
        return {
            "config": self.config.to_dict(),
            "client_id": self.client_id,
            "stage": self.stage,
            "encryption_private": b64encode(self.encryption_private),
            "masking_private": b64encode(self.masking_private),
            "self_mask_seed": b64encode(self.self_mask_seed),
            "peer_keys": [k.to_dict() for k in self.peer_keys.values()],
            "dealers": list(self.dealers),
            "abort_reason": self.abort_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClientState:
        """Inverse of :meth:`to_dict` (unknown or missing keys are refused)."""
        refuse_unknown(data, cls._KEYS, "ClientState")
        stage = require(data, "stage", str)
        if stage not in ClientStage.ALL:
            raise SecAggMessageError(f"`stage` must be one of {ClientStage.ALL}. Found {stage!r}.")
        keys = [PublicKeys.from_dict(k) for k in require(data, "peer_keys", list)]
        return cls(
            config=SecAggConfig.from_dict(require(data, "config", dict)),
            client_id=require(data, "client_id", int),
            stage=stage,
            encryption_private=b64decode(require(data, "encryption_private", str), "encryption_private"),
            masking_private=b64decode(require(data, "masking_private", str), "masking_private"),
            self_mask_seed=b64decode(require(data, "self_mask_seed", str), "self_mask_seed"),
            peer_keys={k.client_id: k for k in keys},
            dealers=int_list(data, "dealers"),
            abort_reason=require(data, "abort_reason", str),
        )


class SecAggClient:
    """One device's side of a secure-aggregation round.

    Args:
        config: the round's public parameters (from the server).
        client_id: this device's id; must be one of ``config.participants``.
    """

    def __init__(self, config: SecAggConfig, client_id: int) -> None:
        if not isinstance(config, SecAggConfig):
            raise TypeError(f"`config` must be a SecAggConfig. Found {type(config).__name__}.")
        if isinstance(client_id, bool) or not isinstance(client_id, int):
            raise TypeError(f"`client_id` must be an int. Found {type(client_id).__name__}.")
        if client_id not in config.graph:
            raise ValueError(f"`client_id` must be one of the round's participants. Found {client_id}.")
        self._state = ClientState(config=config, client_id=client_id)

    # ----------------------------------------------------------------------------------- persistence
    @classmethod
    def from_state(cls, state: ClientState) -> SecAggClient:
        """Resume a client from its state."""
        client = cls(state.config, state.client_id)
        client._state = state
        return client

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SecAggClient:
        """Resume a client from :meth:`to_dict` output."""
        return cls.from_state(ClientState.from_dict(data))

    def to_dict(self) -> dict[str, Any]:
        """The client's full state, JSON-able (contains private keys: store encrypted)."""
        return self._state.to_dict()

    @property
    def state(self) -> ClientState:
        """The live state (mutated by the round methods)."""
        return self._state

    @property
    def stage(self) -> str:
        """The current :class:`.ClientStage`."""
        return self._state.stage

    @property
    def client_id(self) -> int:
        """This client's id."""
        return self._state.client_id

    # ----------------------------------------------------------------------------------- helpers
    def _expect(self, stage: str, operation: str) -> None:
        if self._state.stage != stage:
            raise SecAggStageError(
                f"`{operation}` is only valid in client stage {stage!r}; this client is in stage {self._state.stage!r}."
            )

    def _check_incoming(self, message: KeyRoster | ShareRouting | UnmaskingRequest, kind: type, operation: str) -> None:
        if not isinstance(message, kind):
            raise TypeError(f"`{operation}` takes a {kind.__name__}. Found {type(message).__name__}.")
        round_id = self._state.config.round_id
        if message.round_id != round_id:
            raise SecAggMessageError(f"{kind.__name__} is for round {message.round_id!r}; this client is in round {round_id!r}.")
        if message.recipient != self._state.client_id:
            raise SecAggMessageError(
                f"{kind.__name__} is addressed to client {message.recipient}; this is client {self._state.client_id}."
            )

    def _abort(self, reason: str) -> SecAggAbortedError:
        self._state.stage = ClientStage.ABORTED
        self._state.abort_reason = reason
        return SecAggAbortedError(reason)

    # ----------------------------------------------------------------------------------- Round 0
    def advertise_keys(self) -> AdvertiseKeys:
        """Round 0 (AdvertiseKeys): generate (c_sk, c_pk) and (s_sk, s_pk); send both public keys."""
        self._expect(ClientStage.READY, "advertise_keys")
        c_sk, c_pk = generate_key_pair()
        s_sk, s_pk = generate_key_pair()
        st = self._state
        st.encryption_private, st.masking_private = c_sk, s_sk
        st.stage = ClientStage.KEYS_ADVERTISED
        keys = PublicKeys(client_id=st.client_id, encryption=c_pk, masking=s_pk)
        return AdvertiseKeys(round_id=st.config.round_id, sender=st.client_id, keys=keys)

    # ----------------------------------------------------------------------------------- Round 1
    def share_keys(self, roster: KeyRoster) -> ShareKeys:
        """Round 1 (ShareKeys): check the roster, draw b_u, t-out-of-|N[u] ∩ U1| share s_sk_u and b_u,
        and seal each holder's pair of shares to it (:func:`.sealed.seal_shares`) — this client included,
        so that its own shares can be opened in Round 4 like any other.

        Raises:
            SecAggMessageError: wrong round or recipient, a peer outside the neighbourhood, a duplicate
                peer, a public key that is low-order, non-canonical or equal to another (the peer is named
                in ``culprits``), or the roster's copy of this client's keys differs from its own.
            SecAggAbortedError: fewer than t holders (|N[u] ∩ U1| < t; Fig. 4, Round 1).
        """
        self._expect(ClientStage.KEYS_ADVERTISED, "share_keys")
        self._check_incoming(roster, KeyRoster, "share_keys")
        st = self._state
        u, cfg = st.client_id, st.config
        neighbours = cfg.graph[u]
        peers: dict[int, PublicKeys] = {}
        own: PublicKeys | None = None
        for entry in roster.keys:
            v = entry.client_id
            if v in peers or (v == u and own is not None):
                raise SecAggMessageError(f"KeyRoster lists client {v} twice.")
            if v == u:
                own = entry
            elif v not in neighbours:
                raise SecAggMessageError(f"KeyRoster lists client {v}, which is not a neighbour of client {u}.")
            else:
                peers[v] = entry
        mine = (public_key(st.encryption_private), public_key(st.masking_private))
        if own is None or (own.encryption, own.masking) != mine:
            raise SecAggMessageError(f"KeyRoster must list client {u}'s own public keys unchanged.")
        _check_roster_keys(u, [own, *peers.values()])
        holders = sorted((*peers, u))
        if len(holders) < cfg.threshold:
            raise self._abort(
                f"Client {u}: only {len(holders)} of its neighbourhood advertised keys; the threshold is "
                f"{cfg.threshold} (Bonawitz et al. 2017, Fig. 4, Round 1)."
            )
        st.self_mask_seed = random_seed()
        secret_bytes = np.frombuffer(st.masking_private + st.self_mask_seed, dtype=np.uint8).reshape(2, SECRET_BYTES)
        shares = shamir.share(secret_bytes, holders, cfg.threshold)  # [2, H, C]
        out: list[EncryptedShare] = []
        for h, v in enumerate(holders):
            peer_public = own.encryption if v == u else peers[v].encryption
            nonce, ciphertext = seal_shares(
                agree(st.encryption_private, peer_public), round_id=cfg.round_id, dealer=u, holder=v,
                key_share=shamir.share_bytes(shares[0, h]), seed_share=shamir.share_bytes(shares[1, h]),
            )
            out.append(EncryptedShare(sender=u, receiver=v, nonce=nonce, ciphertext=ciphertext))
        st.peer_keys = peers
        st.stage = ClientStage.KEYS_SHARED
        return ShareKeys(round_id=cfg.round_id, sender=u, shares=tuple(out))

    # ----------------------------------------------------------------------------------- Round 2
    def mask_input(self, routing: ShareRouting, vector: NDArray[np.uint32]) -> MaskedInput:
        """Round 2 (MaskedInputCollection): check that every sealed share addressed to this client opens
        (its own included), then send ``y_u = x_u + PRG(b_u) + Σ_{v} Δ_{u,v} PRG(s_{u,v})`` over the
        neighbours v whose shares arrived.

        Args:
            routing: the server's :class:`ShareRouting` for this client.
            vector: x_u, the encoded input, ``uint32[D]`` (see :class:`.FixedPointEncoder`).

        Raises:
            TypeError / SecAggMessageError: wrong vector dtype or length; wrong round or recipient; a
                share from an unknown peer, a duplicate, one addressed to another client, or this client's
                own share missing.
            SecAggIntegrityError: a sealed share does not open (tampered, or dealt wrongly: its dealer is
                named in ``culprits``).
            SecAggAbortedError: fewer than t clients in N[u] ∩ U2 (Fig. 4, Round 2).
        """
        self._expect(ClientStage.KEYS_SHARED, "mask_input")
        self._check_incoming(routing, ShareRouting, "mask_input")
        st = self._state
        u, cfg = st.client_id, st.config
        if not isinstance(vector, np.ndarray) or vector.dtype != np.uint32:
            raise TypeError(f"`vector` must be a uint32 numpy array. Found {getattr(vector, 'dtype', type(vector))}.")
        if vector.shape != (cfg.vector_length,):
            raise SecAggMessageError(f"`vector` must have shape ({cfg.vector_length},). Found {vector.shape}.")
        own_public = public_key(st.encryption_private)
        dealers: set[int] = set()
        for item in routing.shares:
            v = item.sender
            if item.receiver != u:
                raise SecAggMessageError(f"ShareRouting holds a share for client {item.receiver}; this is client {u}.")
            if v != u and v not in st.peer_keys:
                raise SecAggMessageError(f"ShareRouting holds a share from client {v}, which is not in client {u}'s roster.")
            if v in dealers:
                raise SecAggMessageError(f"ShareRouting holds two shares from client {v}.")
            peer_public = own_public if v == u else st.peer_keys[v].encryption
            verify_sealed(
                agree(st.encryption_private, peer_public), nonce=item.nonce, ciphertext=item.ciphertext,
                round_id=cfg.round_id, dealer=v, holder=u,
            )
            dealers.add(v)
        if u not in dealers:
            raise SecAggMessageError(f"ShareRouting must hold client {u}'s own sealed shares.")
        if len(dealers) < cfg.threshold:
            raise self._abort(
                f"Client {u}: only {len(dealers)} of its neighbourhood completed Round 1; the threshold is "
                f"{cfg.threshold} (Bonawitz et al. 2017, Fig. 4, Round 2)."
            )
        y = vector.copy()
        np.add(
            y,
            self_mask(st.self_mask_seed, round_id=cfg.round_id, client_id=u, length=cfg.vector_length),
            out=y,
        )
        for v in sorted(dealers - {u}):
            add_pairwise_mask(
                y,
                private=st.masking_private,
                peer_public=st.peer_keys[v].masking,
                round_id=cfg.round_id,
                u=u,
                v=v,
            )
        st.dealers = tuple(sorted(dealers))
        st.stage = ClientStage.INPUT_MASKED
        return MaskedInput.from_array(round_id=cfg.round_id, sender=u, values=y)

    # ----------------------------------------------------------------------------------- Round 4
    def unmask(self, request: UnmaskingRequest) -> UnmaskingResponse:
        """Round 4 (Unmasking): open this client's share of b_v for every survivor v and of s_sk_d for
        every dropped d, by revealing the one-time key each is sealed under (:mod:`.sealed`). The two lists
        must partition N[u] ∩ U2 as this client saw it in Round 2, so no peer can be in both (Fig. 4,
        Round 4: "assert U3 ⊆ U2 and |U3| ≥ t").

        Raises:
            SecAggMessageError: wrong round or recipient; overlapping, duplicate or unknown ids; the lists
                do not cover exactly the peers this client masked with; this client not among survivors.
            SecAggAbortedError: fewer than t survivors in N[u] (Fig. 4, Round 4).
        """
        self._expect(ClientStage.INPUT_MASKED, "unmask")
        self._check_incoming(request, UnmaskingRequest, "unmask")
        st = self._state
        u, cfg = st.client_id, st.config
        survivors, dropped = set(request.survivors), set(request.dropped)
        if len(survivors) != len(request.survivors) or len(dropped) != len(request.dropped):
            raise SecAggMessageError("UnmaskingRequest lists a client twice.")
        both = survivors & dropped
        if both:
            raise SecAggMessageError(
                f"UnmaskingRequest lists client {min(both)} as both surviving and dropped: revealing both of "
                "its secrets would unmask its input."
            )
        known = set(st.dealers)
        if u not in survivors:
            raise SecAggMessageError(f"UnmaskingRequest must list client {u} itself among the survivors.")
        if survivors | dropped != known:
            unknown = sorted((survivors | dropped) - known)
            missing = sorted(known - survivors - dropped)
            raise SecAggMessageError(
                f"UnmaskingRequest must partition client {u}'s Round-2 peers {sorted(known)}. "
                f"Unknown: {unknown}; missing: {missing}."
            )
        if len(survivors) < cfg.threshold:
            raise self._abort(
                f"Client {u}: only {len(survivors)} of its neighbourhood sent masked inputs; "
                f"the threshold is "
                f"{cfg.threshold} (Bonawitz et al. 2017, Fig. 4, Round 4)."
            )
        own_public = public_key(st.encryption_private)

        def opening(dealer: int, kind: str) -> RevealedShare:
            peer_public = own_public if dealer == u else st.peer_keys[dealer].encryption
            shared = agree(st.encryption_private, peer_public)
            key = opening_key(shared, round_id=cfg.round_id, kind=kind, dealer=dealer, holder=u)
            return RevealedShare(owner=dealer, share=key)

        seed_shares = tuple(opening(v, "seed") for v in sorted(survivors))
        key_shares = tuple(opening(d, "key") for d in sorted(dropped))
        # The round is over for this client: forget every secret (the state may outlive the round).
        st.encryption_private = st.masking_private = st.self_mask_seed = b""
        st.dealers = ()
        st.stage = ClientStage.COMPLETED
        return UnmaskingResponse(round_id=cfg.round_id, sender=u, self_mask_shares=seed_shares, key_shares=key_shares)


def _check_roster_keys(recipient: int, entries: list[PublicKeys]) -> None:
    """Every key in a roster acceptable (:func:`.crypto.public_key_problem`) and all different (Bonawitz
    et al. 2017, Fig. 4, Round 1: "assert that all the public key pairs are different")."""
    seen: dict[bytes, tuple[int, str]] = {}
    for entry in entries:
        v = entry.client_id
        for name, key in (("encryption", entry.encryption), ("masking", entry.masking)):
            problem = public_key_problem(key)
            if problem is not None:
                culprits = (v,) if v != recipient else ()
                raise SecAggMessageError(f"KeyRoster: client {v}'s {name} key is {problem}.", culprits=culprits)
            if key in seen:
                w, other = seen[key]
                raise SecAggMessageError(
                    f"KeyRoster: client {v}'s {name} key equals client {w}'s {other} key; the public keys must all "
                    "be different (Bonawitz et al. 2017, Fig. 4, Round 1).",
                    culprits={v, w} - {recipient},
                )
            seen[key] = (v, name)
