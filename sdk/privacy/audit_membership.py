"""Membership scores of users against a released item model (the attacker's side of an audit; torch).

An attacker who holds a user's history and the released model asks: was this user one of the training
devices? Two classic tests, both computed the way a device would, by reconstructing the user vector with the
model frozen (:func:`privrec.sdk.reconstruct.reconstruct_batch`):

* **loss** (Yeom et al. 2018, "Privacy Risk in Machine Learning", the loss-threshold attack): reconstruct ``u``
  from the whole history and score ``−CE = Σ_i y_i log softmax(V u + b)_i`` — members' items were pushed up by
  their own updates, so their loss is lower;
* **reconstruction**: reconstruct ``u`` from a seeded half of the history and score ``−mean log rank`` of the
  other half among the items outside the fitted half — the rank an app would show them at.

Higher scores mean "more likely a member". :mod:`.audit` turns scores into ROC curves and ε lower bounds.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from ..model import ItemModel
from ..reconstruct import FinetuneConfig, reconstruct_batch

__all__ = ["MEMBERSHIP_SCORES", "loss_scores", "reconstruction_scores"]

#: The membership tests of this module, by name.
MEMBERSHIP_SCORES: tuple[str, ...] = ("loss", "reconstruction")

_BATCH = 512


def _check_labels(model: ItemModel, labels: NDArray[np.floating]) -> NDArray[np.float32]:
    y = np.asarray(labels, np.float32)
    if y.ndim != 2 or y.shape[1] != model.num_items:
        raise ValueError(f"`labels` must have shape (B, {model.num_items}). Found {y.shape}.")
    if (y < 0).any() or not np.isfinite(y).all():
        raise ValueError("`labels` must be finite and non-negative.")
    empty = np.flatnonzero(y.sum(axis=1) <= 0)
    if empty.size:
        raise ValueError(f"every user needs at least one labelled item. Row {int(empty[0])} has none.")
    return y


@torch.no_grad()
def _log_softmax_at(model: ItemModel, fit: NDArray[np.float32], finetune: FinetuneConfig) -> torch.Tensor:
    U = reconstruct_batch(model, torch.from_numpy(fit), finetune)
    logits = U @ torch.from_numpy(model.item_embedding).T + torch.from_numpy(model.item_bias)
    return torch.log_softmax(logits.double(), dim=1)


def loss_scores(model: ItemModel, labels: NDArray[np.floating], finetune: FinetuneConfig) -> NDArray[np.float64]:
    """``float64[B]``: ``Σ_i y_i log softmax(V u + b)_i`` with ``y`` each row of ``labels [B, n]`` normalised and
    ``u`` reconstructed from it (the negative loss: higher = more likely a member)."""
    y = _check_labels(model, labels)
    out = np.empty(y.shape[0], np.float64)
    for start in range(0, y.shape[0], _BATCH):
        rows = y[start : start + _BATCH]
        log_p = _log_softmax_at(model, rows, finetune)
        t = torch.from_numpy(rows / rows.sum(axis=1, keepdims=True)).double()
        out[start : start + rows.shape[0]] = (t * log_p).sum(dim=1).numpy()
    return out


def reconstruction_scores(
    model: ItemModel, labels: NDArray[np.floating], finetune: FinetuneConfig, *, seed: int = 0
) -> NDArray[np.float64]:
    """``float64[B]``: reconstruct ``u`` from a seeded random half of each row's items (at least one), then
    ``−mean log rank`` of the other half among the items outside the fitted half (rank 1 = top).

    Rows with a single item fit on it and are scored by its own rank (there is no other half).
    """
    y = _check_labels(model, labels)
    rng = np.random.default_rng(seed)
    fit = np.zeros_like(y)
    held = np.zeros(y.shape, bool)
    for row in range(y.shape[0]):
        items = np.flatnonzero(y[row] > 0)
        perm = rng.permutation(items)
        k = max(1, items.size // 2)
        fit[row, perm[:k]] = y[row, perm[:k]]
        held[row, perm[k:] if items.size > 1 else perm] = True
    out = np.empty(y.shape[0], np.float64)
    for start in range(0, y.shape[0], _BATCH):
        stop = start + _BATCH
        log_p = _log_softmax_at(model, fit[start:stop], finetune)
        others = torch.from_numpy(held[start:stop])
        fitted = torch.from_numpy((fit[start:stop] > 0) & ~held[start:stop])
        scores = log_p.masked_fill(fitted, -torch.inf)
        # rank 1 = the highest-scored candidate (ties in catalog order); fitted items rank last
        order = torch.argsort(scores, dim=1, descending=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(1, scores.shape[1] + 1).expand_as(order))
        log_rank = torch.log(rank.double())
        out[start : start + log_p.shape[0]] = -(
            (log_rank * others).sum(dim=1) / others.sum(dim=1).clamp_min(1)
        ).numpy()
    return out
