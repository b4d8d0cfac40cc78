"""The compact recommender: global item parameters shared by all devices, a user vector kept on one.

Score: ``s(u, i) = u · V[i] + b[i]`` with ``V`` the item table ``[num_items, dim]`` and ``b``
the item bias ``[num_items]``. The user vector ``u`` ``[dim]`` never leaves the device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file, save_file

from .validation import check_finite, check_item_ids, check_user_vector

__all__ = ["ItemModel", "TrainedModel"]


def _as_f32(array: NDArray[np.floating], name: str, ndim: int) -> NDArray[np.float32]:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy array. Found {type(array).__name__}.")
    if array.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-D. Found shape {array.shape}.")
    if array.dtype.kind != "f":
        raise TypeError(f"`{name}` must have a float dtype. Found {array.dtype}.")
    check_finite(array, name)
    return np.ascontiguousarray(array, dtype=np.float32)


@dataclass(frozen=True)
class ItemModel:
    """The global (federated) parameters in float32.

    Attributes:
        item_embedding: ``float32[num_items, dim]``, the item table ``V``.
        item_bias: ``float32[num_items]``, the item bias ``b``.

    Construction validates shapes, dtypes and finiteness, so an ``ItemModel`` always holds usable
    weights.
    """

    item_embedding: NDArray[np.float32]
    item_bias: NDArray[np.float32]

    def __post_init__(self) -> None:
        emb = _as_f32(self.item_embedding, "item_embedding", 2)
        bias = _as_f32(self.item_bias, "item_bias", 1)
        if emb.shape[0] == 0 or emb.shape[1] == 0:
            raise ValueError(f"`item_embedding` must have at least one item and one dimension. Found {emb.shape}.")
        if bias.shape[0] != emb.shape[0]:
            raise ValueError(
                f"`item_bias` must have one entry per item ({emb.shape[0]}). Found {bias.shape[0]}."
            )
        object.__setattr__(self, "item_embedding", emb)
        object.__setattr__(self, "item_bias", bias)

    @property
    def num_items(self) -> int:
        """Number of items in the catalog."""
        return int(self.item_embedding.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        return int(self.item_embedding.shape[1])

    def score(self, user: NDArray[np.floating], item_ids: object | None = None) -> NDArray[np.float32]:
        """Scores ``float32[N]`` of ``item_ids`` (all items when ``None``) for one user vector ``[dim]``."""
        u = check_user_vector(user, self.dim)
        if item_ids is None:
            return (self.item_embedding @ u + self.item_bias).astype(np.float32)
        ids = check_item_ids(item_ids, self.num_items)
        return (self.item_embedding[ids] @ u + self.item_bias[ids]).astype(np.float32)

    def recommend(
        self, user: NDArray[np.floating], k: int = 10, exclude: object | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Top-``k`` item indices and scores for one user, highest first, skipping ``exclude``.

        Ties are broken by the lower item index (stable), the rule every exporter's reference uses.
        """
        scores = self.score(user)
        if exclude is not None:
            ex = check_item_ids(exclude, self.num_items, "exclude")
            scores = scores.copy()
            scores[ex] = -np.inf
        k = min(k, self.num_items)
        order = np.argsort(-scores, kind="stable")[:k]
        return order.astype(np.int64), scores[order]

    def tensors(self) -> dict[str, NDArray[np.float32]]:
        """The named tensors as stored in ``weights.safetensors``."""
        return {"item_embedding": self.item_embedding, "item_bias": self.item_bias}


@dataclass(frozen=True)
class TrainedModel:
    """A centrally trained model: the global :class:`ItemModel` plus every training user's vector.

    ``user_embedding`` is ``float32[num_users, dim]``; it exists only in central training and in
    evaluation (in federated training each vector stays on its device).
    """

    items: ItemModel
    user_embedding: NDArray[np.float32]

    def __post_init__(self) -> None:
        users = _as_f32(self.user_embedding, "user_embedding", 2)
        if users.shape[1] != self.items.dim:
            raise ValueError(f"`user_embedding` must have {self.items.dim} columns. Found {users.shape[1]}.")
        object.__setattr__(self, "user_embedding", users)

    def save(self, run_dir: Path, config: dict[str, object]) -> None:
        """Write ``weights.safetensors`` and ``config.json`` into ``run_dir``."""
        run_dir.mkdir(parents=True, exist_ok=True)
        tensors = dict(self.items.tensors())
        tensors["user_embedding"] = self.user_embedding
        save_file(tensors, str(run_dir / "weights.safetensors"))
        (run_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> TrainedModel:
        """Read a model written by :meth:`save`; raises ``FileNotFoundError`` naming the missing file."""
        path = Path(run_dir) / "weights.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"No weights at {path}: is {run_dir} a RUN_DIR written by `privrec train`?")
        t = load_file(str(path))
        items = ItemModel(item_embedding=t["item_embedding"], item_bias=t["item_bias"])
        users = t.get("user_embedding", np.zeros((0, items.dim), np.float32))
        return cls(items=items, user_embedding=users)
