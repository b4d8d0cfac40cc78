"""The public parameters of one secure-aggregation round."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from ._wire import b64decode, b64encode, int_list, refuse_unknown, require
from .graph import neighbourhoods
from .shamir import PRIME

__all__ = ["MAX_CLIENT_ID", "SecAggConfig"]

#: Client ids are Shamir evaluation points, so they must be non-zero field elements: [1, 2^31 - 2].
MAX_CLIENT_ID = PRIME - 1


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int. Found {type(value).__name__}.")
    return value


@dataclass(frozen=True)
class SecAggConfig:
    """Public parameters of a round, fixed by the server before Round 0 and sent to every client.

    Args:
        round_id: unique id of this round (bound into every derived key and every ciphertext's AD).
        participants: the sampled client ids (distinct, in [1, 2^31 - 2]); stored sorted.
        threshold: t, the Shamir threshold — the minimum number of survivors at every stage, and (with
            SecAgg+) the minimum number of survivors in each closed neighbourhood whose secrets are needed.
        vector_length: D, the number of uint32 words in every input vector.
        neighbours: k for SecAgg+ (Bell et al. 2020, §3): each client pairs with k neighbours of a public
            Harary graph; ``None`` (the default) or ``n - 1`` is the full mesh of Bonawitz et al. 2017.
        graph_seed: the public seed that places the participants on the graph's ring.

    A threshold at most half the neighbourhood size warns: privrec skips Round 3 (ConsistencyCheck,
    see :mod:`.stages`), so a server that lied about who dropped could then ask two disjoint groups of
    honest clients for b_u and for s_sk_u respectively, get t shares of both and unmask u. With
    t > size / 2 two such groups cannot both reach t (Bonawitz et al. 2017, §4 and §6.2 on why Round 3
    exists). Against an honest-but-curious server any t >= 1 is secure (§6.1, Theorems 6.1-6.2, given
    fewer than t colluding clients).
    """

    round_id: str
    participants: tuple[int, ...]
    threshold: int
    vector_length: int
    neighbours: int | None = None
    graph_seed: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.round_id, str) or not self.round_id:
            raise TypeError(f"`round_id` must be a non-empty str. Found {self.round_id!r}.")
        if not isinstance(self.participants, tuple | list):
            raise TypeError(f"`participants` must be a tuple of ints. Found {type(self.participants).__name__}.")
        ids = [_int(u, "participants") for u in self.participants]
        for pos, u in enumerate(ids):
            if not 1 <= u <= MAX_CLIENT_ID:
                raise ValueError(f"`participants` must be in [1, {MAX_CLIENT_ID}]. Found {u} at position {pos}.")
        if len(set(ids)) != len(ids):
            dup = next(u for u in ids if ids.count(u) > 1)
            raise ValueError(f"`participants` must be distinct. Found {dup} twice.")
        if len(ids) < 2:
            raise ValueError(f"`participants` must hold at least 2 clients. Found {len(ids)}.")
        object.__setattr__(self, "participants", tuple(sorted(ids)))
        n = len(ids)
        if self.neighbours is not None:
            k = _int(self.neighbours, "neighbours")
            if not 1 <= k <= n - 1:
                raise ValueError(f"`neighbours` must be in [1, {n - 1}] for {n} participants. Found {k}.")
        if not isinstance(self.graph_seed, bytes):
            raise TypeError(f"`graph_seed` must be bytes. Found {type(self.graph_seed).__name__}.")
        t = _int(self.threshold, "threshold")
        size = self.neighbourhood_size
        if not 1 <= t <= size:
            raise ValueError(f"`threshold` must be in [1, {size}] (the closed neighbourhood size). Found {t}.")
        if 2 * t <= size:
            warnings.warn(
                f"SecAgg threshold {t} is at most half the neighbourhood size {size}: without Round 3 "
                "(ConsistencyCheck) a server lying about dropouts could collect both secrets of a client; "
                "use t > size / 2 (Bonawitz et al. 2017, §6.2).",
                UserWarning,
                stacklevel=2,
            )
        if _int(self.vector_length, "vector_length") < 1:
            raise ValueError(f"`vector_length` must be >= 1. Found {self.vector_length}.")

    @property
    def neighbourhood_size(self) -> int:
        """Size of a closed neighbourhood (neighbours + self): k + 1, or n for the full mesh."""
        n = len(self.participants)
        return n if self.neighbours is None else self.neighbours + 1

    @cached_property
    def graph(self) -> dict[int, frozenset[int]]:
        """Open neighbourhoods ``{u: N(u)}`` of the public graph (see :mod:`.graph`)."""
        return neighbourhoods(self.participants, neighbours=self.neighbours, seed=self.graph_seed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``graph_seed`` as base64)."""
        return {
            "round_id": self.round_id,
            "participants": list(self.participants),
            "threshold": self.threshold,
            "vector_length": self.vector_length,
            "neighbours": self.neighbours,
            "graph_seed": b64encode(self.graph_seed),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SecAggConfig:
        """Inverse of :meth:`to_dict`; validates every field and refuses unknown ones."""
        refuse_unknown(data, [f.name for f in fields(cls)], "SecAggConfig")
        return cls(
            round_id=require(data, "round_id", str),
            participants=int_list(data, "participants"),
            threshold=require(data, "threshold", int),
            vector_length=require(data, "vector_length", int),
            neighbours=data.get("neighbours"),
            graph_seed=b64decode(require(data, "graph_seed", str), "graph_seed"),
        )
