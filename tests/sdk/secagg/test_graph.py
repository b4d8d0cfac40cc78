"""The SecAgg+ public graph: Harary graphs H_{k,n} on a seeded ring (Bell et al. 2020, §3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.secagg.graph import neighbourhoods, ring_order


def _connected(graph: dict[int, frozenset[int]]) -> bool:
    start = next(iter(graph))
    seen, todo = {start}, [start]
    while todo:
        for v in graph[todo.pop()]:
            if v not in seen:
                seen.add(v)
                todo.append(v)
    return len(seen) == len(graph)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 60), data=st.data(), seed=st.binary(max_size=8))
def test_harary_degrees_symmetry_connectivity(n: int, data: st.DataObject, seed: bytes) -> None:
    k = data.draw(st.integers(1, n - 1))
    ids = list(range(10, 10 + n))
    graph = neighbourhoods(ids, neighbours=k, seed=seed)
    assert set(graph) == set(ids)
    for u, nbrs in graph.items():
        assert u not in nbrs
        assert all(u in graph[v] for v in nbrs)
    degrees = sorted(len(nbrs) for nbrs in graph.values())
    if k % 2 == 1 and n % 2 == 1:
        assert degrees == [k] * (n - 1) + [k + 1]  # an odd-degree regular graph on odd n cannot exist
    else:
        assert degrees == [k] * n
    if k >= 2 or n == 2:
        assert _connected(graph)


def test_full_mesh() -> None:
    ids = [3, 1, 2, 7]
    for k in (None, 3):
        graph = neighbourhoods(ids, neighbours=k, seed=b"x")
        assert graph == {u: frozenset(set(ids) - {u}) for u in ids}


def test_graph_is_determined_by_the_public_seed() -> None:
    ids = list(range(1, 41))
    a = neighbourhoods(ids, neighbours=6, seed=b"seed-a")
    assert a == neighbourhoods(list(reversed(ids)), neighbours=6, seed=b"seed-a")
    assert a != neighbourhoods(ids, neighbours=6, seed=b"seed-b")
    assert ring_order(ids, b"seed-a") != ids  # the ring is shuffled, not the id order


def test_golden_small_graph() -> None:
    """Pin the construction so that Swift/Kotlin clients can reproduce it."""
    ring = ring_order([1, 2, 3, 4, 5, 6], b"golden")
    graph = neighbourhoods([1, 2, 3, 4, 5, 6], neighbours=2, seed=b"golden")
    for i, u in enumerate(ring):
        assert graph[u] == {ring[(i - 1) % 6], ring[(i + 1) % 6]}


def test_invalid_k_raises() -> None:
    with pytest.raises(ValueError, match=r"`neighbours` must be in \[1, 4\] for 5 participants. Found 0."):
        neighbourhoods([1, 2, 3, 4, 5], neighbours=0, seed=b"")
    with pytest.raises(ValueError, match=r"Found 5\."):
        neighbourhoods([1, 2, 3, 4, 5], neighbours=5, seed=b"")
