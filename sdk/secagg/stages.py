"""Stage constants of the secure-aggregation state machines.

The protocol stages are the rounds of Bonawitz et al. 2017 ("Practical Secure Aggregation for
Privacy-Preserving Machine Learning", CCS'17), §4 and Fig. 4:

====================  =======  =======================================================================
stage                 round    what happens
====================  =======  =======================================================================
``ADVERTISE_KEYS``    0        every client sends two X25519 public keys (c for encryption, s for masking)
``SHARE_KEYS``        1        every client Shamir-shares its masking key s_sk and self-mask seed b and
                               seals each holder's pair of shares to it (its own included) under
                               committed one-time keys (:mod:`.sealed`), through the server
``MASKED_INPUT_COLLECTION`` 2  every client checks the sealed shares it holds, then sends
                               y_u = x_u + PRG(b_u) + Σ_v ±PRG(s_{u,v}) mod 2^32
``CONSISTENCY_CHECK`` 3        **not run**: it only defends against a server that lies about who dropped
                               (the active-adversary model, §6.2). privrec trusts the server's dropout
                               reports (§6.1); :class:`.SecAggConfig` warns unless t > n/2, which
                               covers that case. The constant keeps the paper's numbering.
``UNMASKING``         4        each surviving client opens (reveals the one-time keys of) its shares of
                               b_v for survivors v and of s_sk_d for dropped d — never both for one peer
====================  =======  =======================================================================
"""

from __future__ import annotations

__all__ = ["ClientStage", "ServerStage", "Stage"]


class Stage:
    """The protocol rounds of Bonawitz et al. 2017, Fig. 4 (the ``stage`` of every message)."""

    ADVERTISE_KEYS = "advertise_keys"
    SHARE_KEYS = "share_keys"
    MASKED_INPUT_COLLECTION = "masked_input_collection"
    CONSISTENCY_CHECK = "consistency_check"
    UNMASKING = "unmasking"

    #: The rounds privrec runs, in order (Round 3 is skipped, see the module docstring).
    RUN: tuple[str, ...] = (ADVERTISE_KEYS, SHARE_KEYS, MASKED_INPUT_COLLECTION, UNMASKING)


class ServerStage:
    """States of :class:`~privrec.sdk.secagg.SecAggServer`.

    In a protocol stage the server collects that stage's client messages; ``advance()`` closes the
    stage and moves to the next one (or to ``ABORTED``). ``COMPLETED`` and ``ABORTED`` are final.
    """

    ADVERTISE_KEYS = Stage.ADVERTISE_KEYS
    SHARE_KEYS = Stage.SHARE_KEYS
    MASKED_INPUT_COLLECTION = Stage.MASKED_INPUT_COLLECTION
    UNMASKING = Stage.UNMASKING
    COMPLETED = "completed"
    ABORTED = "aborted"

    ALL: tuple[str, ...] = (
        ADVERTISE_KEYS,
        SHARE_KEYS,
        MASKED_INPUT_COLLECTION,
        UNMASKING,
        COMPLETED,
        ABORTED,
    )


class ClientStage:
    """States of :class:`~privrec.sdk.secagg.SecAggClient`: the last step the client completed.

    ``READY`` → (Round 0) ``KEYS_ADVERTISED`` → (Round 1) ``KEYS_SHARED`` → (Round 2) ``INPUT_MASKED`` →
    (Round 4) ``COMPLETED``. Any check that fails for lack of survivors moves the client to ``ABORTED``.
    """

    READY = "ready"
    KEYS_ADVERTISED = "keys_advertised"
    KEYS_SHARED = "keys_shared"
    INPUT_MASKED = "input_masked"
    COMPLETED = "completed"
    ABORTED = "aborted"

    ALL: tuple[str, ...] = (READY, KEYS_ADVERTISED, KEYS_SHARED, INPUT_MASKED, COMPLETED, ABORTED)
