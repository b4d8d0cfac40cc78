"""The masks of Bonawitz et al. 2017, §4 (Fig. 4, Round 2), shared by client and server.

Client u sends ``y_u = x_u + PRG(b_u) + Σ_{v ∈ U2 ∩ N(u)} Δ_{u,v} · PRG(s_{u,v})  (mod 2^32)`` with
``Δ_{u,v} = +1`` if u < v and ``-1`` if u > v, so the pairwise masks of two surviving clients cancel
in the sum. ``s_{u,v}`` is the X25519 agreement of s_sk_u and s_pk_v stretched by HKDF (round-bound);
``PRG`` is ChaCha20 (:func:`.crypto.expand_mask`). The server removes ``PRG(b_u)`` of each survivor
after reconstructing b_u, and the pairwise masks survivors shared with a dropped client d after
reconstructing s_sk_d.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .crypto import agree, derive_key, expand_mask

__all__ = ["add_pairwise_mask", "self_mask"]


def self_mask(seed: bytes, *, round_id: str, client_id: int, length: int) -> NDArray[np.uint32]:
    """PRG(b_u): the self mask of client ``client_id`` expanded from its 32-byte seed."""
    key = derive_key(seed, round_id=round_id, purpose="self_mask", a=client_id, b=client_id)
    return expand_mask(key, length)


def add_pairwise_mask(
    accumulator: NDArray[np.uint32],
    *,
    private: bytes,
    peer_public: bytes,
    round_id: str,
    u: int,
    v: int,
    sign: int = 1,
) -> None:
    """In place: ``accumulator += sign · Δ_{u,v} · PRG(s_{u,v})`` (mod 2^32), the mask u adds for peer v.

    ``private`` is s_sk of ``u`` (or, on the server, the reconstructed s_sk of a dropped peer with the
    roles swapped by the caller); ``sign = -1`` subtracts the mask.
    """
    shared = agree(private, peer_public)
    key = derive_key(shared, round_id=round_id, purpose="mask", a=min(u, v), b=max(u, v))
    mask = expand_mask(key, accumulator.shape[0])
    if (1 if u < v else -1) * sign > 0:
        np.add(accumulator, mask, out=accumulator)
    else:
        np.subtract(accumulator, mask, out=accumulator)
