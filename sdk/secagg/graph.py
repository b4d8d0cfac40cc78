"""The public neighbour graph of SecAgg+ (Bell et al. 2020, "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead", CCS'20, §3).

SecAgg+ replaces the complete graph of Bonawitz et al. 2017 by a sparse k-regular graph: each client
agrees pairwise masks only with its ``k`` neighbours and Shamir-shares its secrets only among its
closed neighbourhood (its neighbours and itself), with the threshold applied per neighbourhood. The cost
per client drops from O(n) to O(k) key agreements, mask expansions and shares.

Construction (deterministic, public, portable to the Swift/Kotlin clients):

1. Order the participants on a ring by ``SHA-256(graph_seed || uint32_be(id))`` (ties impossible in
   practice; broken by id). The seed is public and fixed by the server before Round 0, so the server
   cannot adapt the graph to the dropouts it later sees (Bell et al. §3 use a random graph for the
   same reason).
2. Build the Harary graph H_{k,n} on the ring positions (Harary 1962): position ``i`` is adjacent to
   ``i ± 1, …, i ± ⌊k/2⌋`` (mod n); if ``k`` is odd, also to ``i + n/2`` for even ``n``, and for odd
   ``n`` the positions ``i`` and ``i + (n+1)/2`` are joined for ``0 ≤ i ≤ (n-1)/2`` (so one node has
   degree k + 1 — an odd-degree regular graph on an odd number of nodes does not exist). H_{k,n} is
   k-connected, the most robust a k-regular graph can be against dropouts.

``neighbours=None`` (or ``k = n - 1``) gives the complete graph: the original protocol.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

__all__ = ["neighbourhoods", "ring_order"]


def ring_order(participants: Sequence[int], seed: bytes) -> list[int]:
    """Participants sorted by ``SHA-256(seed || uint32_be(id))``: the public ring of the Harary graph."""
    return sorted(participants, key=lambda u: (hashlib.sha256(seed + struct.pack(">I", u)).digest(), u))


def neighbourhoods(participants: Sequence[int], *, neighbours: int | None, seed: bytes) -> dict[int, frozenset[int]]:
    """Open neighbourhoods ``{u: N(u)}`` (``u ∉ N(u)``) of the SecAgg+ graph over ``participants``.

    Args:
        participants: distinct client ids.
        neighbours: k in [1, n - 1], or ``None`` for the complete graph.
        seed: the public graph seed.
    """
    ids = list(participants)
    n = len(ids)
    if neighbours is None or neighbours == n - 1:
        everyone = frozenset(ids)
        return {u: everyone - {u} for u in ids}
    k = neighbours
    if not 1 <= k <= n - 1:
        raise ValueError(f"`neighbours` must be in [1, {n - 1}] for {n} participants. Found {k}.")
    ring = ring_order(ids, seed)
    adjacent: list[set[int]] = [set() for _ in range(n)]

    def join(i: int, j: int) -> None:
        i, j = i % n, j % n
        if i != j:
            adjacent[i].add(j)
            adjacent[j].add(i)

    for i in range(n):
        for step in range(1, k // 2 + 1):
            join(i, i + step)
    if k % 2:
        if n % 2 == 0:
            for i in range(n // 2):
                join(i, i + n // 2)
        else:
            for i in range((n - 1) // 2 + 1):
                join(i, i + (n + 1) // 2)
    return {ring[i]: frozenset(ring[j] for j in adjacent[i]) for i in range(n)}
