"""A typed interaction log with contiguous index maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Interactions"]


@dataclass(frozen=True)
class Interactions:
    """Implicit-feedback interactions: every rating counts as one positive.

    Attributes:
        users: ``int64[N]`` user index in ``[0, num_users)``.
        items: ``int64[N]`` item index in ``[0, num_items)``.
        ratings: ``float32[N]`` the explicit rating (kept for reference; not used as a label).
        timestamps: ``int64[N]`` seconds since the epoch.
        user_ids: original user id of each index (``len == num_users``).
        item_ids: original item id of each index (``len == num_items``).
        item_titles: title of each item index (``None`` when the data set has none).
        name: data set name, recorded in run configs.
        item_features: ``float32[num_items, F]`` multi-hot of the items' public categorical features
            (genres, categories...; ``None`` when the data set has none). Each entry is 0 or 1.
        item_feature_names: name of each of the ``F`` feature columns (``"genre=Comedy"``-style);
            set exactly when ``item_features`` is.
    """

    users: NDArray[np.int64]
    items: NDArray[np.int64]
    ratings: NDArray[np.float32]
    timestamps: NDArray[np.int64]
    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    item_titles: tuple[str, ...] | None = None
    name: str = "interactions"
    item_features: NDArray[np.float32] | None = None
    item_feature_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = self.users.shape[0]
        for field_name in ("items", "ratings", "timestamps"):
            arr = getattr(self, field_name)
            if arr.shape != (n,):
                raise ValueError(f"`{field_name}` must have shape ({n},) like `users`. Found {arr.shape}.")
        if n and (self.users.min() < 0 or self.users.max() >= len(self.user_ids)):
            raise ValueError(f"`users` must be in [0, {len(self.user_ids)}).")
        if n and (self.items.min() < 0 or self.items.max() >= len(self.item_ids)):
            raise ValueError(f"`items` must be in [0, {len(self.item_ids)}).")
        if self.item_titles is not None and len(self.item_titles) != len(self.item_ids):
            raise ValueError(
                f"`item_titles` must have one title per item ({len(self.item_ids)}). Found {len(self.item_titles)}."
            )
        if (self.item_features is None) != (self.item_feature_names is None):
            raise ValueError("`item_features` and `item_feature_names` must be given together (or both None).")
        if self.item_features is not None and self.item_feature_names is not None:
            feats = self.item_features
            if feats.dtype != np.float32:
                raise ValueError(f"`item_features` must be float32. Found {feats.dtype}.")
            if feats.ndim != 2 or feats.shape[0] != len(self.item_ids):
                raise ValueError(
                    f"`item_features` must have shape ({len(self.item_ids)}, F). Found {feats.shape}."
                )
            if feats.shape[1] != len(self.item_feature_names):
                raise ValueError(
                    f"`item_feature_names` must name each of the {feats.shape[1]} feature columns. "
                    f"Found {len(self.item_feature_names)} names."
                )
            if feats.size and not np.isin(feats, (0.0, 1.0)).all():
                raise ValueError("`item_features` must be a multi-hot matrix (every entry 0 or 1).")

    @property
    def num_users(self) -> int:
        """Number of distinct users."""
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        """Number of distinct items."""
        return len(self.item_ids)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @classmethod
    def from_raw(
        cls,
        raw_users: list[str] | NDArray[np.str_],
        raw_items: list[str] | NDArray[np.str_],
        ratings: NDArray[np.floating],
        timestamps: NDArray[np.integer],
        *,
        titles: dict[str, str] | None = None,
        name: str = "interactions",
    ) -> Interactions:
        """Build contiguous indices from raw ids; users and items are numbered in sorted-id order
        (numeric ids sort numerically), so the map is deterministic."""
        def _index(raw: list[str] | NDArray[np.str_]) -> tuple[tuple[str, ...], NDArray[np.int64]]:
            arr = np.asarray(raw).astype(str)
            uniq = np.unique(arr)
            if all(u.isdigit() for u in uniq):
                uniq = np.array(sorted(uniq, key=int))
            lookup = {u: i for i, u in enumerate(uniq.tolist())}
            return tuple(uniq.tolist()), np.fromiter((lookup[x] for x in arr.tolist()), np.int64, arr.size)

        user_ids, users = _index(raw_users)
        item_ids, items = _index(raw_items)
        item_titles = tuple(titles.get(i, "") for i in item_ids) if titles is not None else None
        return cls(
            users=users, items=items,
            ratings=np.asarray(ratings, np.float32), timestamps=np.asarray(timestamps, np.int64),
            user_ids=user_ids, item_ids=item_ids, item_titles=item_titles, name=name,
        )

    def item_catalog(self) -> list[dict[str, object]]:
        """``[{"index", "id", "title"}]`` per item: the item map a bundle's manifest carries."""
        titles = self.item_titles or ("",) * self.num_items
        return [{"index": i, "id": iid, "title": titles[i]} for i, iid in enumerate(self.item_ids)]
