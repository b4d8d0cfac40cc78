"""The server side of secure aggregation: an explicit state machine over the rounds of Bonawitz et
al. 2017, Fig. 4 (Round 3 ConsistencyCheck is not run: the server is trusted to report dropouts
honestly, §6.1), with the SecAgg+ neighbourhoods of Bell et al. 2020, §3.

The server collects one stage's client messages with :meth:`SecAggServer.receive`; the caller decides
when the stage closes (everyone answered, or a timeout) and calls :meth:`SecAggServer.advance`, which
fixes the survivor set of that stage and either moves on or aborts::

    ADVERTISE_KEYS --advance()--> SHARE_KEYS --advance()--> MASKED_INPUT_COLLECTION
        --advance()--> UNMASKING --advance()--> COMPLETED        (any advance() may go to ABORTED)

Survivor sets (the paper's notation): U1 ⊆ participants advertised keys, U2 ⊆ U1 shared keys,
U3 ⊆ U2 sent masked inputs, U4 ⊆ U3 answered the unmasking request. With SecAgg+, ``N[u]`` is u's
closed neighbourhood in the public graph (the full set of participants for the full mesh).

Survivor rules (the round aborts with :class:`.SecAggAbortedError` when one fails):

* closing Rounds 0 and 1 drops, repeatedly, every client with fewer than t members of its closed
  neighbourhood in U1 (resp. U2) — its secrets could never be reconstructed — then needs |U_i| >= t;
* closing Round 2 needs |U3| >= t and, for every survivor v and every dropped d with a surviving
  neighbour, at least t members of N[·] in U3;
* closing Round 4 needs at least t valid openings for each of those secrets among U4's responses.

Misbehaving clients. The server refuses, naming the client (:class:`.SecAggMessageError`), an advertised
public key that is non-canonical or low-order, a masking key equal to the encryption key, and a key
another client already advertised — so no honest client ever receives a roster it must refuse. In
Round 4 it checks every opening against its dealer's key commitment (:mod:`.sealed`): a client with a
wrong opening is discarded whole and recorded in ``flagged``; the round then completes with the exact
sum of U3 from the remaining openings, or aborts naming the discarded clients if some secret is left
with fewer than t. Openings that match but open to invalid shares, shares of one secret not on one
polynomial (more than t opened, :func:`.shamir.consistent`), or a reconstructed masking key that does not
match its public key abort the round naming the *dealer*. Every abort lists its culprits in
:attr:`.SecAggAbortedError.culprits` and in ``flagged``. Not detectable here: t shares dealt off one
polynomial when exactly t are opened (see :mod:`.sealed`), and a masked input that encodes an out-of-range
or arbitrary vector (input validity needs zero-knowledge proofs; a client controls its y_u entirely).

What the server holds: public keys, ciphertexts it cannot read, the running *sum* of masked inputs
(never one client's vector alone, which is in any case uniformly masked) and, in Round 4, either b_v or
s_sk_v of each client — never both, because every honest client reveals only one per peer.
The whole state is a :class:`ServerState` with ``to_dict``/``from_dict`` for persistence (SQLite).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from . import shamir
from ._wire import int_list, refuse_unknown, require, vector_from_b64, vector_to_b64
from .config import SecAggConfig
from .crypto import KEY_BYTES, NONCE_BYTES, public_key, public_key_problem
from .errors import SecAggAbortedError, SecAggIntegrityError, SecAggMessageError, SecAggStageError
from .masking import add_pairwise_mask, self_mask
from .messages import (
    CLIENT_MESSAGES,
    AdvertiseKeys,
    ClientMessage,
    EncryptedShare,
    KeyRoster,
    MaskedInput,
    PublicKeys,
    ShareKeys,
    ShareRouting,
    UnmaskingRequest,
    UnmaskingResponse,
)
from .sealed import SEALED_BYTES, SECRET_BYTES, open_share, opening_matches
from .stages import ServerStage

__all__ = ["SecAggServer", "ServerState"]

_FINAL = (ServerStage.COMPLETED, ServerStage.ABORTED)


@dataclass
class ServerState:
    """Everything the server remembers (serialisable, no client secret in it).

    Attributes:
        config: the round's public parameters.
        stage: a :class:`.ServerStage` constant.
        public_keys: Round-0 messages' keys by client id.
        u1, u2, u3, u4: survivor sets fixed when Rounds 0, 1, 2 and 4 closed (sorted ids).
        shares: Round-1 ciphertexts, ``{sender: {receiver: EncryptedShare}}``.
        masked_sum: running sum (mod 2^32) of the Round-2 masked inputs received, or ``None``.
        masked_senders: the clients whose masked input is in ``masked_sum``.
        responses: Round-4 messages by sender.
        result: the unmasked sum of the inputs of U3 (``uint32[D]``) once ``COMPLETED``.
        abort_reason: why the round aborted (empty otherwise).
        flagged: ``{client id: reason}`` for every client proven to have misbehaved in Round 4 (a
            discarded opening, or a dealing that aborted the round).
    """

    config: SecAggConfig
    stage: str = ServerStage.ADVERTISE_KEYS
    public_keys: dict[int, PublicKeys] = field(default_factory=dict)
    u1: tuple[int, ...] = ()
    shares: dict[int, dict[int, EncryptedShare]] = field(default_factory=dict)
    u2: tuple[int, ...] = ()
    masked_sum: NDArray[np.uint32] | None = None
    masked_senders: set[int] = field(default_factory=set)
    u3: tuple[int, ...] = ()
    responses: dict[int, UnmaskingResponse] = field(default_factory=dict)
    u4: tuple[int, ...] = ()
    result: NDArray[np.uint32] | None = None
    abort_reason: str = ""
    flagged: dict[int, str] = field(default_factory=dict)

    _KEYS: ClassVar[tuple[str, ...]] = (
        "config", "stage", "public_keys", "u1", "shares", "share_senders", "u2", "masked_sum", "masked_senders",
        "u3", "responses", "u4", "result", "abort_reason", "flagged",
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (bytes and vectors as base64)."""
        return {
            "config": self.config.to_dict(),
            "stage": self.stage,
            "public_keys": [k.to_dict() for k in self.public_keys.values()],
            "u1": list(self.u1),
            "shares": [s.to_dict() for by_receiver in self.shares.values() for s in by_receiver.values()],
            "share_senders": sorted(self.shares),
            "u2": list(self.u2),
            "masked_sum": None if self.masked_sum is None else vector_to_b64(self.masked_sum),
            "masked_senders": sorted(self.masked_senders),
            "u3": list(self.u3),
            "responses": [r.to_dict() for r in self.responses.values()],
            "u4": list(self.u4),
            "result": None if self.result is None else vector_to_b64(self.result),
            "abort_reason": self.abort_reason,
            "flagged": [{"client_id": u, "reason": r} for u, r in sorted(self.flagged.items())],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerState:
        """Inverse of :meth:`to_dict` (unknown or missing keys are refused)."""
        refuse_unknown(data, cls._KEYS, "ServerState")
        stage = require(data, "stage", str)
        if stage not in ServerStage.ALL:
            raise SecAggMessageError(f"`stage` must be one of {ServerStage.ALL}. Found {stage!r}.")
        shares: dict[int, dict[int, EncryptedShare]] = {s: {} for s in int_list(data, "share_senders")}
        for item in require(data, "shares", list):
            share = EncryptedShare.from_dict(item)
            shares.setdefault(share.sender, {})[share.receiver] = share
        keys = [PublicKeys.from_dict(k) for k in require(data, "public_keys", list)]
        responses = [UnmaskingResponse.from_dict(r) for r in require(data, "responses", list)]
        masked_sum, result = data.get("masked_sum"), data.get("result")
        return cls(
            config=SecAggConfig.from_dict(require(data, "config", dict)),
            stage=stage,
            public_keys={k.client_id: k for k in keys},
            u1=int_list(data, "u1"),
            shares=shares,
            u2=int_list(data, "u2"),
            masked_sum=None if masked_sum is None else vector_from_b64(masked_sum, "masked_sum"),
            masked_senders=set(int_list(data, "masked_senders")),
            u3=int_list(data, "u3"),
            responses={r.sender: r for r in responses},
            u4=int_list(data, "u4"),
            result=None if result is None else vector_from_b64(result, "result"),
            abort_reason=require(data, "abort_reason", str),
            flagged={require(f, "client_id", int): require(f, "reason", str) for f in require(data, "flagged", list)},
        )


class SecAggServer:
    """The aggregation server's side of one secure-aggregation round.

    Args:
        config: the round's public parameters (also sent to every participant).
    """

    def __init__(self, config: SecAggConfig) -> None:
        if not isinstance(config, SecAggConfig):
            raise TypeError(f"`config` must be a SecAggConfig. Found {type(config).__name__}.")
        self._state = ServerState(config=config)
        self._key_owners: dict[bytes, tuple[int, str]] = {}
        self._sets: dict[int, tuple[tuple[int, ...], frozenset[int]]] = {}

    def _as_set(self, members: tuple[int, ...]) -> frozenset[int]:
        """``frozenset(members)``, cached per tuple object. U1-U4 are replaced, never mutated, when a stage
        closes, so every per-message membership test is O(1) instead of an n-element rebuild (O(n²) a round)."""
        cached = self._sets.get(id(members))
        if cached is None or cached[0] is not members:  # the tuple is kept alive by the cache: no id reuse
            cached = (members, frozenset(members))
            self._sets[id(members)] = cached
        return cached[1]

    # ----------------------------------------------------------------------------------- persistence
    @classmethod
    def from_state(cls, state: ServerState) -> SecAggServer:
        """Resume a server from its state."""
        server = cls(state.config)
        server._state = state
        return server

    def _owners_of_keys(self) -> dict[bytes, tuple[int, str]]:
        """``{public key: (client, "encryption" | "masking")}`` over Round 0's keys (rebuilt if stale)."""
        keys = self._state.public_keys
        if len(self._key_owners) != 2 * len(keys):
            self._key_owners = {}
            for v, k in keys.items():
                self._key_owners[k.encryption] = (v, "encryption")
                self._key_owners[k.masking] = (v, "masking")
        return self._key_owners

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SecAggServer:
        """Resume a server from :meth:`to_dict` output (e.g. after a restart)."""
        return cls.from_state(ServerState.from_dict(data))

    def to_dict(self) -> dict[str, Any]:
        """The server's full state, JSON-able."""
        return self._state.to_dict()

    @property
    def state(self) -> ServerState:
        """The live state."""
        return self._state

    @property
    def stage(self) -> str:
        """The current :class:`.ServerStage`."""
        return self._state.stage

    @property
    def config(self) -> SecAggConfig:
        """The round's public parameters."""
        return self._state.config

    def _closed(self, u: int) -> frozenset[int]:
        """N[u]: u and its neighbours."""
        return self.config.graph[u] | {u}

    # ----------------------------------------------------------------------------------- who is asked
    def recipients(self) -> tuple[int, ...]:
        """The clients expected to answer in the current stage (participants, U1, U2 or U3)."""
        st = self._state
        by_stage = {
            ServerStage.ADVERTISE_KEYS: self.config.participants,
            ServerStage.SHARE_KEYS: st.u1,
            ServerStage.MASKED_INPUT_COLLECTION: st.u2,
            ServerStage.UNMASKING: st.u3,
        }
        return by_stage.get(st.stage, ())

    def _answered(self) -> Collection[int]:
        st = self._state
        by_stage: dict[str, Collection[int]] = {
            ServerStage.ADVERTISE_KEYS: st.public_keys,
            ServerStage.SHARE_KEYS: st.shares,
            ServerStage.MASKED_INPUT_COLLECTION: st.masked_senders,
            ServerStage.UNMASKING: st.responses,
        }
        return by_stage.get(st.stage, ())

    def pending(self) -> tuple[int, ...]:
        """Recipients of the current stage that have not answered yet."""
        answered = set(self._answered())
        return tuple(u for u in self.recipients() if u not in answered)

    # ----------------------------------------------------------------------------------- receiving
    def receive(self, message: ClientMessage) -> None:
        """Accept one client message of the current stage.

        Raises:
            TypeError: not a client message.
            SecAggStageError: the message belongs to another stage, or the round is over.
            SecAggMessageError: another round; a sender that is not expected in this stage (unknown or
                dropped); a duplicate; content that does not match what the stage requires.
        A refused message leaves the state unchanged.
        """
        if not isinstance(message, CLIENT_MESSAGES):
            raise TypeError(f"`message` must be one of {[c.__name__ for c in CLIENT_MESSAGES]}. Found {type(message).__name__}.")
        st = self._state
        if st.stage in _FINAL:
            raise SecAggStageError(f"Round {self.config.round_id!r} is {st.stage}; it accepts no more messages.")
        if message.round_id != self.config.round_id:
            raise SecAggMessageError(
                f"{type(message).__name__} is for round {message.round_id!r}; this server runs round {self.config.round_id!r}."
            )
        if st.stage != message.STAGE:
            raise SecAggStageError(
                f"{type(message).__name__} belongs to stage {message.STAGE!r}; the server is in stage {st.stage!r}."
            )
        u = message.sender
        if u not in self._as_set(self.recipients()):
            why = "not a participant" if u not in self.config.graph else "dropped in an earlier stage"
            raise SecAggMessageError(f"{type(message).__name__} from client {u}, which is {why}.")
        if u in self._answered():
            raise SecAggMessageError(f"Duplicate {type(message).__name__} from client {u}.")
        if isinstance(message, AdvertiseKeys):
            self._receive_keys(message)
        elif isinstance(message, ShareKeys):
            self._receive_shares(message)
        elif isinstance(message, MaskedInput):
            self._receive_masked_input(message)
        else:
            self._receive_unmasking(message)

    def _receive_keys(self, message: AdvertiseKeys) -> None:
        """Round 0: accept a client's two public keys only if each is a valid X25519 key and both differ from
        each other and from every key already advertised (Bonawitz et al. 2017, Fig. 4, Round 1 has every
        client "assert that all the public key pairs are different"; checking here first means an honest
        client never receives a roster it must refuse)."""
        u, keys = message.sender, message.keys
        pairs = (("encryption", keys.encryption), ("masking", keys.masking))
        for name, key in pairs:
            problem = public_key_problem(key)
            if problem is not None:
                raise SecAggMessageError(f"AdvertiseKeys from client {u}: its {name} key is {problem}.", culprits=(u,))
        if keys.encryption == keys.masking:
            raise SecAggMessageError(
                f"AdvertiseKeys from client {u}: its masking key equals its encryption key; every advertised key "
                "must be different (Bonawitz et al. 2017, Fig. 4, Round 1).",
                culprits=(u,),
            )
        owners = self._owners_of_keys()
        for name, key in pairs:
            if key in owners:
                v, other = owners[key]
                raise SecAggMessageError(
                    f"AdvertiseKeys from client {u}: its {name} key is client {v}'s {other} key; every advertised "
                    "key must be different (Bonawitz et al. 2017, Fig. 4, Round 1).",
                    culprits=(u,),
                )
        self._state.public_keys[u] = keys
        owners[keys.encryption], owners[keys.masking] = (u, "encryption"), (u, "masking")

    def _receive_shares(self, message: ShareKeys) -> None:
        """Round 1: one sealed pair of shares for each member of N[u] ∩ U1, u included (:mod:`.sealed`)."""
        u = message.sender
        expected = sorted(self._closed(u) & self._as_set(self._state.u1))
        by_receiver: dict[int, EncryptedShare] = {}
        for share in message.shares:
            if share.sender != u:
                raise SecAggMessageError(f"ShareKeys from client {u} holds a share sent by client {share.sender}.")
            if share.receiver in by_receiver:
                raise SecAggMessageError(f"ShareKeys from client {u} holds two shares for client {share.receiver}.")
            by_receiver[share.receiver] = share
        if sorted(by_receiver) != expected:
            raise SecAggMessageError(
                f"ShareKeys from client {u} must hold one share for each of {expected}. Found {sorted(by_receiver)}."
            )
        for v, share in by_receiver.items():
            if len(share.ciphertext) != SEALED_BYTES or len(share.nonce) != NONCE_BYTES:
                raise SecAggMessageError(
                    f"ShareKeys from client {u}: the share for client {v} must be {SEALED_BYTES} bytes with a "
                    f"{NONCE_BYTES}-byte nonce. Found {len(share.ciphertext)} and {len(share.nonce)}."
                )
        self._state.shares[u] = by_receiver

    def _receive_masked_input(self, message: MaskedInput) -> None:
        st, d = self._state, self.config.vector_length
        if len(message.vector) != 4 * d:
            raise SecAggMessageError(
                f"MaskedInput from client {message.sender} must hold {d} uint32 words. Found {len(message.vector) // 4}."
            )
        if st.masked_sum is None:
            st.masked_sum = np.zeros(d, dtype=np.uint32)
        np.add(st.masked_sum, message.values, out=st.masked_sum)
        st.masked_senders.add(message.sender)

    def _receive_unmasking(self, message: UnmaskingResponse) -> None:
        st, u = self._state, message.sender
        survivors = sorted(self._closed(u) & self._as_set(st.u3))
        dropped = sorted((self.config.graph[u] & self._as_set(st.u2)) - self._as_set(st.u3))
        for name, revealed, expected in (
            ("self_mask_shares", message.self_mask_shares, survivors),
            ("key_shares", message.key_shares, dropped),
        ):
            owners = [r.owner for r in revealed]
            if sorted(owners) != expected or len(set(owners)) != len(owners):
                raise SecAggMessageError(
                    f"UnmaskingResponse from client {u}: `{name}` must hold one share for each of {expected}. Found {owners}."
                )
            for r in revealed:
                if len(r.share) != KEY_BYTES:
                    raise SecAggMessageError(
                        f"UnmaskingResponse from client {u}: `{name}`: an opening must be {KEY_BYTES} bytes. "
                        f"Found {len(r.share)}."
                    )
        st.responses[u] = message

    # ----------------------------------------------------------------------------------- requests
    def _expect(self, stage: str, operation: str) -> None:
        if self._state.stage != stage:
            raise SecAggStageError(
                f"`{operation}` is only valid in server stage {stage!r}; the server is in stage {self._state.stage!r}."
            )

    def _check_recipient(self, client_id: int, members: tuple[int, ...], name: str) -> None:
        if client_id not in self._as_set(members):
            raise SecAggMessageError(f"Client {client_id} is not in {name}; it takes no further part in the round.")

    def key_roster(self, client_id: int) -> KeyRoster:
        """Start of Round 1: the public keys of ``client_id``'s closed neighbourhood within U1."""
        self._expect(ServerStage.SHARE_KEYS, "key_roster")
        st = self._state
        self._check_recipient(client_id, st.u1, "U1")
        members = sorted(self._closed(client_id) & self._as_set(st.u1))
        keys = tuple(st.public_keys[v] for v in members)
        return KeyRoster(round_id=self.config.round_id, recipient=client_id, keys=keys)

    def share_routing(self, client_id: int) -> ShareRouting:
        """Start of Round 2: the sealed shares addressed to ``client_id`` by N[client_id] ∩ U2 (itself
        included)."""
        self._expect(ServerStage.MASKED_INPUT_COLLECTION, "share_routing")
        st = self._state
        self._check_recipient(client_id, st.u2, "U2")
        senders = sorted(self._closed(client_id) & self._as_set(st.u2))
        shares = tuple(st.shares[v][client_id] for v in senders)
        return ShareRouting(round_id=self.config.round_id, recipient=client_id, shares=shares)

    def unmasking_request(self, client_id: int) -> UnmaskingRequest:
        """Start of Round 4: ``client_id``'s closed neighbourhood split into survivors (U3) and dropped
        (U2 \\ U3)."""
        self._expect(ServerStage.UNMASKING, "unmasking_request")
        st = self._state
        self._check_recipient(client_id, st.u3, "U3")
        u3 = self._as_set(st.u3)
        survivors = tuple(sorted(self._closed(client_id) & u3))
        dropped = tuple(sorted((self.config.graph[client_id] & self._as_set(st.u2)) - u3))
        return UnmaskingRequest(round_id=self.config.round_id, recipient=client_id, survivors=survivors, dropped=dropped)

    # ----------------------------------------------------------------------------------- transitions
    def abort(self, reason: str, *, culprits: Iterable[int] = ()) -> SecAggAbortedError:
        """Abort the round (final), recording ``culprits`` (proven misbehaving clients, named in
        ``reason``) in ``flagged``. Returns the error for the caller to raise."""
        st = self._state
        if st.stage in _FINAL:
            raise SecAggStageError(f"Round {self.config.round_id!r} is already {st.stage}.")
        error = SecAggAbortedError(reason, culprits=culprits)
        for u in error.culprits:
            st.flagged.setdefault(u, reason)
        st.stage = ServerStage.ABORTED
        st.abort_reason = reason
        return error

    def _prune(self, candidates: Iterable[int], round_name: str) -> tuple[int, ...]:
        """Drop, to a fixed point, clients with fewer than t of their closed neighbourhood in the set;
        abort if fewer than t clients remain."""
        t = self.config.threshold
        answered = set(candidates)
        alive = set(answered)
        changed = True
        while changed:
            weak = {u for u in alive if len(self._closed(u) & alive) < t}
            alive -= weak
            changed = bool(weak)
        if len(alive) < t:
            raise self.abort(
                f"Round {self.config.round_id!r} aborted after {round_name}: {len(answered)} clients answered, "
                f"{len(alive)} usable (each needs t of its closed neighbourhood among them), fewer than the "
                f"threshold t = {t} (Bonawitz et al. 2017, Fig. 4)."
            )
        return tuple(sorted(alive))

    def advance(self) -> str:
        """Close the current stage, fix its survivor set and move on; returns the new stage.

        Raises:
            SecAggStageError: the round is already over.
            SecAggAbortedError: too few survivors, or a device proven to have misbehaved in Round 4 (named in
                ``culprits`` and ``flagged``); the stage becomes ``ABORTED`` (see the module docstring).
        """
        st = self._state
        if st.stage == ServerStage.ADVERTISE_KEYS:
            st.u1 = self._prune(st.public_keys, "Round 0 (AdvertiseKeys)")
            st.stage = ServerStage.SHARE_KEYS
        elif st.stage == ServerStage.SHARE_KEYS:
            st.u2 = self._prune(st.shares, "Round 1 (ShareKeys)")
            st.stage = ServerStage.MASKED_INPUT_COLLECTION
        elif st.stage == ServerStage.MASKED_INPUT_COLLECTION:
            st.u3 = tuple(sorted(st.masked_senders))
            self._check_reconstructable(set(st.u3), "Round 2 (MaskedInputCollection)")
            st.stage = ServerStage.UNMASKING
        elif st.stage == ServerStage.UNMASKING:
            st.flagged.update(self._wrong_openings())
            st.u4 = tuple(u for u in sorted(st.responses) if u not in st.flagged)
            self._check_reconstructable(set(st.u4), "Round 4 (Unmasking)")
            st.result = self._unmask()
            st.stage = ServerStage.COMPLETED
        else:
            raise SecAggStageError(f"Round {self.config.round_id!r} is {st.stage}; it cannot advance.")
        return st.stage

    def _needed_dropped(self) -> list[int]:
        """Dropped clients (U2 \\ U3) with a surviving neighbour: their s_sk must be reconstructed."""
        u3 = set(self._state.u3)
        return [d for d in self._state.u2 if d not in u3 and self.config.graph[d] & u3]

    def _check_reconstructable(self, holders: set[int], round_name: str) -> None:
        """Every needed secret has >= t holders in ``holders`` (which are U3 or U4), and |holders| >= t.

        In Round 4, ``holders`` excludes the clients whose openings were discarded; an abort then names
        them (they caused it)."""
        t, st = self.config.threshold, self._state
        liars = sorted(st.flagged)
        blame = (
            f" The openings of client(s) {liars} were discarded: they do not match their dealers' commitments."
            if liars
            else ""
        )
        if len(holders) < t:
            raise self.abort(
                f"Round {self.config.round_id!r} aborted after {round_name}: {len(holders)} survivors, fewer "
                f"than the threshold t = {t} (Bonawitz et al. 2017, Fig. 4).{blame}",
                culprits=liars,
            )
        for owners, what in ((st.u3, "self-mask seed"), (self._needed_dropped(), "masking key")):
            for v in owners:
                have = len(self._closed(v) & holders)
                if have < t:
                    raise self.abort(
                        f"Round {self.config.round_id!r} aborted after {round_name}: only {have} holders of "
                        f"client {v}'s {what} shares survive, fewer than the threshold t = {t}.{blame}",
                        culprits=liars,
                    )

    def _openings(self) -> dict[tuple[int, str], dict[int, bytes]]:
        """``{(owner, kind): {holder: opening}}`` over the Round-4 responses."""
        out: dict[tuple[int, str], dict[int, bytes]] = {}
        for h, r in self._state.responses.items():
            for kind, revealed in (("seed", r.self_mask_shares), ("key", r.key_shares)):
                for item in revealed:
                    out.setdefault((item.owner, kind), {})[h] = item.share
        return out

    def _wrong_openings(self) -> dict[int, str]:
        """Round 4: holders with an opening that is not the key its dealer committed to (:mod:`.sealed`).
        Only the holder can have made it so: its whole response is discarded."""
        st, round_id = self._state, self.config.round_id
        wrong: dict[int, str] = {}
        for (v, kind), by_holder in sorted(self._openings().items()):
            for h, opening in sorted(by_holder.items()):
                sealed = st.shares[v][h]
                if h not in wrong and not opening_matches(
                    opening, sealed.ciphertext, round_id=round_id, kind=kind, dealer=v, holder=h
                ):
                    wrong[h] = (
                        f"Client {h} revealed an opening of its {kind} share from client {v} that does not match "
                        f"client {v}'s commitment; its Round-4 response was discarded."
                    )
        return wrong

    def _unmask(self) -> NDArray[np.uint32]:
        """Round 4: open every valid holder's share of b_v (v ∈ U3) and of s_sk_d (dropped d), check that
        each secret's shares lie on one polynomial, reconstruct, check s_sk_d against s_pk_d, and remove the
        masks from the sum. Any failure here is the dealer's: the round aborts naming it."""
        st, cfg, t = self._state, self.config, self.config.threshold
        if st.masked_sum is None:  # unreachable: |U3| >= t >= 1 masked inputs arrived
            raise SecAggStageError("No masked input was received.")
        u4 = set(st.u4)
        openings = self._openings()
        dropped = self._needed_dropped()
        owners = [(v, "seed") for v in st.u3] + [(d, "key") for d in dropped]
        holders: list[list[int]] = []
        shares: list[NDArray[np.uint64]] = []
        bad: dict[int, str] = {}
        for v, kind in owners:
            hs = sorted(self._closed(v) & u4)
            try:
                ys = [
                    open_share(
                        openings[(v, kind)][h], nonce=st.shares[v][h].nonce, ciphertext=st.shares[v][h].ciphertext,
                        round_id=cfg.round_id, kind=kind, dealer=v, holder=h,
                    )
                    for h in hs
                ]
            except SecAggIntegrityError as exc:  # every opening matched its commitment: the dealer's fault
                bad.setdefault(v, str(exc))
                continue
            holders.append(hs)
            shares.append(np.stack(ys))
        if bad:
            raise self._abort_dealers(bad, "dealt a share that does not open")
        # Reed–Solomon check: more than t shares of a secret must lie on one polynomial of degree t - 1.
        ok = shamir.consistent(holders, shares, t)
        if not ok.all():
            bad = {
                v: f"Client {v}'s {'self-mask seed' if kind == 'seed' else 'masking key'} shares do not lie on one "
                f"polynomial of degree {t - 1}: client {v} dealt inconsistent shares."
                for (v, kind), good in zip(owners, ok, strict=True)
                if not good
            }
            raise self._abort_dealers(bad, "dealt inconsistent shares")
        base_x = np.array([h[:t] for h in holders], dtype=np.int64)
        base_y = np.stack([y[:t] for y in shares])
        elements = shamir.interpolate(base_x, base_y, np.zeros(len(owners), np.int64))
        chunk_limit = np.uint64(1 << shamir.CHUNK_BITS)
        bad = {
            v: f"Client {v}'s shares reconstruct to a value that is not a secret: client {v} dealt inconsistent shares."
            for (v, _), row in zip(owners, elements, strict=True)
            if (row >= chunk_limit).any()
        }
        if bad:
            raise self._abort_dealers(bad, "dealt inconsistent shares")
        secrets_ = elements.astype("<u2").view(np.uint8).reshape(len(owners), SECRET_BYTES)
        bad = {
            d: f"The reconstructed masking key of client {d} does not match its advertised public key: client {d} "
            "dealt shares of another key."
            for j, d in enumerate(dropped)
            if public_key(secrets_[len(st.u3) + j].tobytes()) != st.public_keys[d].masking
        }
        if bad:
            raise self._abort_dealers(bad, "dealt shares of another masking key")
        result = st.masked_sum.copy()
        for i, v in enumerate(st.u3):
            seed = secrets_[i].tobytes()
            np.subtract(
                result,
                self_mask(seed, round_id=cfg.round_id, client_id=v, length=cfg.vector_length),
                out=result,
            )
        u3 = set(st.u3)
        for j, d in enumerate(dropped):
            sk = secrets_[len(st.u3) + j].tobytes()
            for w in sorted(cfg.graph[d] & u3):
                # w added Δ_{w,d}·PRG(s_{w,d}); KA(s_sk_d, s_pk_w) = KA(s_sk_w, s_pk_d). Subtract it.
                add_pairwise_mask(
                    result,
                    private=sk,
                    peer_public=st.public_keys[w].masking,
                    round_id=cfg.round_id,
                    u=w,
                    v=d,
                    sign=-1,
                )
        return result

    def _abort_dealers(self, reasons: dict[int, str], what: str) -> SecAggAbortedError:
        """Abort naming the dealers in ``reasons`` (each reason recorded in ``flagged``)."""
        dealers = sorted(reasons)
        for d in dealers:
            self._state.flagged.setdefault(d, reasons[d])
        return self.abort(
            f"Round {self.config.round_id!r} aborted in Round 4: client(s) {dealers} {what}. "
            + " ".join(reasons[d] for d in dealers),
            culprits=dealers,
        )

    # ----------------------------------------------------------------------------------- output
    def result(self) -> NDArray[np.uint32]:
        """The sum (mod 2^32) of the inputs of the survivors U3; only once ``COMPLETED``."""
        self._expect(ServerStage.COMPLETED, "result")
        if self._state.result is None:  # unreachable: set with the COMPLETED transition
            raise SecAggStageError("The round completed without a result.")
        return self._state.result.copy()

    @property
    def survivors(self) -> tuple[int, ...]:
        """U3: the clients whose inputs are in the sum (known once Round 2 has closed)."""
        return self._state.u3

    def summary(self) -> dict[str, Any]:
        """Sizes of the survivor sets, the stage and the flagged clients (``[{"client_id", "reason"}]``):
        JSON-able, for logs and a round's outcome."""
        st = self._state
        return {
            "round_id": self.config.round_id,
            "stage": st.stage,
            "participants": len(self.config.participants),
            "u1": len(st.u1),
            "u2": len(st.u2),
            "u3": len(st.u3),
            "u4": len(st.u4),
            "abort_reason": st.abort_reason,
            "flagged": [{"client_id": u, "reason": r} for u, r in sorted(st.flagged.items())],
        }
