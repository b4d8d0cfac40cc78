"""The global (federated) parameters as one flat vector, and how they map to the item model.

The item table is parameterised as ``V = E + F @ W``: ``E`` ``[num_items, d]`` is a free
embedding per item, ``F`` ``[num_items, f]`` is a fixed matrix of **public** item features (e.g. the
genres of ``ml-100k.item``, which cost no privacy) and ``W`` ``[f, d]`` their learned weights; ``b``
``[num_items]`` is the item bias. Either ``E`` or ``W`` may be absent. Fewer trained coordinates means
less DP noise in the averaged update (the noise is added per coordinate, the signal is clipped in total).

A device's update is a flat ``float32[D]`` vector in the order ``[E.ravel(), W.ravel(), b]`` (only the
trained blocks); :class:`ParamLayout` packs and unpacks it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..model import ItemModel
from ..validation import check_finite, check_positive_int

__all__ = ["ParamLayout"]

_Block = NDArray[np.float32] | None


@dataclass(frozen=True, eq=False)
class ParamLayout:
    """Which global blocks exist and where each lives in the flat vector.

    Args:
        num_items: catalog size n.
        dim: embedding dimension d.
        free_embedding: train a free item table ``E`` (n × d).
        features: public item features ``F`` ``float32[n, f]``, or None (no ``W`` block).
        train_bias: train the item bias ``b`` (otherwise it stays at its initial value, 0).
    """

    num_items: int
    dim: int
    free_embedding: bool = True
    features: NDArray[np.float32] | None = None
    train_bias: bool = True

    def __post_init__(self) -> None:
        check_positive_int(self.num_items, "num_items")
        check_positive_int(self.dim, "dim")
        if self.features is not None:
            f = self.features
            if not isinstance(f, np.ndarray) or f.ndim != 2 or f.shape[0] != self.num_items or f.shape[1] == 0:
                shape = getattr(f, "shape", type(f).__name__)
                raise ValueError(f"`features` must be a float array of shape ({self.num_items}, f>0). Found {shape}.")
            check_finite(f, "features")
            object.__setattr__(self, "features", np.ascontiguousarray(f, np.float32))
        if not self.free_embedding and self.features is None:
            raise ValueError("the item table needs `free_embedding=True` or `features`: found neither.")

    @property
    def num_features(self) -> int:
        """f, the number of public feature columns (0 without features)."""
        return 0 if self.features is None else int(self.features.shape[1])

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Lengths of the (E, W, b) blocks in the flat vector (0 for an absent block)."""
        e = self.num_items * self.dim if self.free_embedding else 0
        w = self.num_features * self.dim
        b = self.num_items if self.train_bias else 0
        return e, w, b

    @property
    def size(self) -> int:
        """D, the length of the flat parameter (and update) vector."""
        return sum(self.sizes)

    def split(self, flat: NDArray[np.float32]) -> tuple[_Block, _Block, _Block]:
        """Views ``(E [n, d] | None, W [f, d] | None, b [n] | None)`` of a flat vector of length :attr:`size`."""
        if flat.shape != (self.size,):
            raise ValueError(f"the flat parameter vector must have shape ({self.size},). Found {flat.shape}.")
        e, w, _ = self.sizes
        E = flat[:e].reshape(self.num_items, self.dim) if self.free_embedding else None
        W = flat[e : e + w].reshape(self.num_features, self.dim) if self.features is not None else None
        b = flat[e + w :] if self.train_bias else None
        return E, W, b

    def init(self, *, init_std: float, seed: int) -> NDArray[np.float32]:
        """Initial flat parameters: ``E`` and ``W`` ~ N(0, init_std²) (seeded), ``b`` = 0."""
        rng = np.random.default_rng(seed)
        flat = np.zeros(self.size, np.float32)
        e, w, _ = self.sizes
        flat[: e + w] = rng.normal(scale=init_std, size=e + w).astype(np.float32)
        return flat

    def item_model(self, flat: NDArray[np.float32]) -> ItemModel:
        """The :class:`ItemModel` (``V = E + F W``, ``b``) the flat parameters stand for."""
        E, W, b = self.split(flat)
        V = np.zeros((self.num_items, self.dim), np.float32)
        if E is not None:
            V += E
        if W is not None and self.features is not None:
            V += self.features @ W
        bias = np.zeros(self.num_items, np.float32) if b is None else b.copy()
        return ItemModel(item_embedding=V, item_bias=bias)

    def to_dict(self) -> dict[str, object]:
        """A JSON-able description (the features themselves are not included, only their width)."""
        return {
            "num_items": self.num_items,
            "dim": self.dim,
            "free_embedding": self.free_embedding,
            "num_features": self.num_features,
            "train_bias": self.train_bias,
            "size": self.size,
        }
