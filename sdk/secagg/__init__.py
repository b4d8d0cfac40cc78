"""privrec.sdk.secagg: secure aggregation (Bonawitz et al. 2017) with the SecAgg+ neighbour graph of
Bell et al. 2020, transport-independent.

Typical use (one round; the transport carries ``to_dict()`` JSON between the two sides)::

    config = SecAggConfig(round_id="r1", participants=(1, 2, 3), threshold=2, vector_length=D)
    server = SecAggServer(config)
    clients = {u: SecAggClient(config, u) for u in config.participants}
    for u, c in clients.items(): server.receive(c.advertise_keys())                        # Round 0
    server.advance()
    for u, c in clients.items(): server.receive(c.share_keys(server.key_roster(u)))        # Round 1
    server.advance()
    for u, c in clients.items(): server.receive(c.mask_input(server.share_routing(u), x[u]))  # Round 2
    server.advance()
    for u, c in clients.items(): server.receive(c.unmask(server.unmasking_request(u)))     # Round 4
    server.advance()
    total = server.result()                 # Σ x[u] mod 2^32 over server.survivors

Against misbehaving devices: the server refuses bad public keys naming the device, and every Round-4
share is opened from its dealer's own committed ciphertext (:mod:`.sealed`), so a round yields the exact
sum of its survivors or aborts with :class:`SecAggAbortedError` whose ``culprits`` name the device at fault.
"""

from .client import ClientState, SecAggClient
from .config import SecAggConfig
from .encoding import FixedPointEncoder
from .errors import (
    SecAggAbortedError,
    SecAggError,
    SecAggIntegrityError,
    SecAggMessageError,
    SecAggStageError,
)
from .messages import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    AdvertiseKeys,
    ClientMessage,
    EncryptedShare,
    KeyRoster,
    MaskedInput,
    Message,
    PublicKeys,
    RevealedShare,
    ServerMessage,
    ShareKeys,
    ShareRouting,
    UnmaskingRequest,
    UnmaskingResponse,
    message_from_dict,
)
from .server import SecAggServer, ServerState
from .stages import ClientStage, ServerStage, Stage

__all__ = [
    "CLIENT_MESSAGES",
    "SERVER_MESSAGES",
    "AdvertiseKeys",
    "ClientMessage",
    "ClientStage",
    "ClientState",
    "EncryptedShare",
    "FixedPointEncoder",
    "KeyRoster",
    "MaskedInput",
    "Message",
    "PublicKeys",
    "RevealedShare",
    "SecAggAbortedError",
    "SecAggClient",
    "SecAggConfig",
    "SecAggError",
    "SecAggIntegrityError",
    "SecAggMessageError",
    "SecAggServer",
    "SecAggStageError",
    "ServerMessage",
    "ServerStage",
    "ServerState",
    "ShareKeys",
    "ShareRouting",
    "Stage",
    "UnmaskingRequest",
    "UnmaskingResponse",
    "message_from_dict",
]
