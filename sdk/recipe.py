"""The reconstruction recipe: how every device rebuilds its user vector from its history.

One recipe, written once, followed everywhere a user vector is made: training and evaluation (batched in
torch by :func:`privrec.sdk.reconstruct.reconstruct_batch`), the on-device runtime
(:meth:`privrec.runtime.Recommender.reconstruct`), a device's federated update, the server's published
bundle, the founding-document facade, and the Swift, Kotlin and web samples. The bundle's manifest
carries it as its ``finetune`` block, so a device always rebuilds its vector the way the model it holds
was trained and evaluated.

The recipe, for a history ``h_0 … h_{M-1}`` of item ids, oldest first, with optional weights ``w_j ≥ 0``
(default 1):

1. **labels** ``y [num_items]``: the item at position ``j`` was ``r = M − 1 − j`` interactions before the
   latest; its label is ``w_j · 0.5 ** (r / recency_half_life)`` (``w_j`` without a half-life). A repeated
   item keeps its largest label. Items outside the history are 0.
2. **fit**: from ``u = 0`` (or a given start), call the exported ``finetune`` signature ``calls`` times with
   every catalog item as a candidate, the labels ``y``, and the recipe's ``lr`` and ``l2``; each call runs
   the ``steps`` gradient steps baked into the artifact (Singhal et al. 2021, "Federated
   Reconstruction", §3: the global parameters are frozen while the local vector is fitted).

This module is numpy-only: a phone has no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .reconstruct import FinetuneConfig
from .validation import check_finite, check_item_ids, check_positive_int, check_user_vector

__all__ = ["FinetuneFn", "ReconstructionRecipe", "recipe_labels"]

#: ``finetune(user f32[d], item_ids int[M], labels f32[M], lr, l2) -> (user_out f32[d], loss)``: one call of
#: the exported signature (or of a reference implementation of it).
FinetuneFn = Callable[[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], float, float],
                      tuple[NDArray[np.float32], float]]


def _finite_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"`{name}` must be a float. Found {type(value).__name__}.")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"`{name}` must be a finite float {'>= 0' if allow_zero else '> 0'}. Found {value}.")
    return v


def recipe_labels(
    history: object,
    num_items: int,
    *,
    recency_half_life: float | None,
    weights: object | None = None,
) -> NDArray[np.float32]:
    """Step 1 of the recipe: the label vector ``float32[num_items]`` of a history (item ids, oldest first).

    Raises ``ValueError`` for an empty history, ids outside ``[0, num_items)``, weights of another length,
    negative, non-finite or float32-overflowing weights, or labels that are all zero.
    """
    ids = check_item_ids(history, num_items, "history")
    if ids.size == 0:
        raise ValueError("`history` must hold at least one item: a device with no interactions has no user vector.")
    if weights is None:
        w = np.ones(ids.size, np.float64)
    else:
        w = np.asarray(weights, np.float64).reshape(-1)
        if w.shape != ids.shape:
            raise ValueError(f"`weights` must have one weight per history item ({ids.size}). Found {w.size}.")
        check_finite(w, "weights")
        if (w < 0).any():
            pos = int(np.flatnonzero(w < 0)[0])
            raise ValueError(f"`weights` must be >= 0. Found {float(w[pos])} at position {pos}.")
    if recency_half_life is not None:
        back = np.arange(ids.size - 1, -1, -1, dtype=np.float64)
        w = w * 0.5 ** (back / float(recency_half_life))
    if (w > np.finfo(np.float32).max).any():
        pos = int(np.flatnonzero(w > np.finfo(np.float32).max)[0])
        raise ValueError(f"`weights` must fit in float32 (at most 3.4e38). Found {float(w[pos])} at position {pos}.")
    labels = np.zeros(num_items, np.float32)
    np.maximum.at(labels, ids, w.astype(np.float32))
    if not np.isfinite(float(labels.sum(dtype=np.float64))) or float(labels.sum(dtype=np.float64)) <= 0:
        raise ValueError("the history's labels are all zero: at least one item needs a positive weight.")
    return labels


@dataclass(frozen=True, kw_only=True)
class ReconstructionRecipe:
    """How a device rebuilds its user vector (the manifest's ``finetune`` block).

    Attributes:
        steps: gradient steps per ``finetune`` call (baked into the exported artifacts).
        lr: step size of every step.
        l2: L2 coefficient on the user vector.
        calls: ``finetune`` calls per reconstruction (``steps × calls`` steps in all).
        recency_half_life: the label of an item halves every this many interactions back in the history;
            None gives every item the same label.
    """

    steps: int = 5
    lr: float = 0.1
    l2: float = 0.5
    calls: int = 20
    recency_half_life: float | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        check_positive_int(self.calls, "calls")
        object.__setattr__(self, "lr", _finite_positive(self.lr, "lr"))
        object.__setattr__(self, "l2", _finite_positive(self.l2, "l2", allow_zero=True))
        if self.recency_half_life is not None:
            object.__setattr__(self, "recency_half_life", _finite_positive(self.recency_half_life, "recency_half_life"))

    @classmethod
    def from_finetune(cls, finetune: FinetuneConfig, *, recency_half_life: float | None) -> ReconstructionRecipe:
        """The recipe of a training config's ``finetune`` and label half-life."""
        return cls(steps=finetune.steps, lr=finetune.lr, l2=finetune.l2, calls=finetune.calls,
                   recency_half_life=recency_half_life)

    @property
    def finetune(self) -> FinetuneConfig:
        """The steps, lr, l2 and calls as the exporter's and the batched training's :class:`FinetuneConfig`."""
        return FinetuneConfig(steps=self.steps, lr=self.lr, l2=self.l2, calls=self.calls)

    @property
    def total_steps(self) -> int:
        """``steps × calls``, the gradient steps of one reconstruction."""
        return self.steps * self.calls

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's ``finetune`` block."""
        return {"steps": self.steps, "lr": self.lr, "l2": self.l2, "calls": self.calls,
                "recency_half_life": self.recency_half_life}

    @classmethod
    def from_manifest(cls, block: Mapping[str, Any]) -> ReconstructionRecipe:
        """The recipe of a manifest's ``finetune`` block (``calls`` defaults to 1, the half-life to None)."""
        half_life = block.get("recency_half_life")
        return cls(steps=int(block["steps"]), lr=float(block["lr"]), l2=float(block["l2"]),
                   calls=int(block.get("calls", 1)), recency_half_life=None if half_life is None else float(half_life))

    def labels(self, history: object, num_items: int, *, weights: object | None = None) -> NDArray[np.float32]:
        """Step 1: :func:`recipe_labels` with this recipe's half-life."""
        return recipe_labels(history, num_items, recency_half_life=self.recency_half_life, weights=weights)

    def fit(
        self,
        finetune: FinetuneFn,
        labels: NDArray[np.float32],
        *,
        dim: int,
        init: NDArray[np.floating] | None = None,
    ) -> NDArray[np.float32]:
        """Step 2: ``calls`` calls of ``finetune`` over the whole catalog from ``init`` (default zeros).

        Args:
            finetune: one call of the ``finetune`` signature whose artifact runs ``steps`` steps.
            labels: ``float32[num_items]`` from :meth:`labels`.
            dim: d, the user vector's length.
            init: starting vector ``[d]``; default zeros.

        Returns the user vector ``float32[d]``.
        """
        candidates = np.arange(labels.shape[0], dtype=np.int64)
        u = np.zeros(dim, np.float32) if init is None else check_user_vector(init, dim, "init")
        for _ in range(self.calls):
            u, _ = finetune(u, candidates, labels, self.lr, self.l2)
        return np.asarray(u, np.float32)
