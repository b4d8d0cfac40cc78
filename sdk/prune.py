"""Magnitude pruning of the item table, with fine-tuning under the fixed mask.

Pruning a trained table alone loses much accuracy; so the pruned model is fine-tuned for a few epochs
with the mask fixed (pruned entries stay exactly zero), then re-quantized. Zeros survive int8
quantization exactly (``round(0 / s) = 0``), so sparsity carries into the int8 table and compresses
well (gzip, Core ML's sparse formats).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file, save_file

from .data.splits import LeaveOneOutSplit
from .model import ItemModel, TrainedModel
from .train import TrainConfig, train_central

__all__ = ["check_sparsity", "magnitude_prune", "prune_and_finetune", "prune_run"]


def check_sparsity(sparsity: object) -> float:
    """Return ``sparsity`` as a float in [0, 1); raise a precise error otherwise."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float | np.floating):
        raise TypeError(f"`sparsity` must be a float. Found {type(sparsity).__name__}.")
    s = float(sparsity)
    if not (np.isfinite(s) and 0.0 <= s < 1.0):
        raise ValueError(f"`sparsity` must be in [0, 1). Found {sparsity}.")
    return s


def magnitude_prune(model: ItemModel, sparsity: float) -> tuple[ItemModel, NDArray[np.bool_]]:
    """Zero the ``sparsity`` fraction of item-table entries with the smallest magnitude (global threshold).

    Returns the pruned model and the keep-mask ``bool[num_items, dim]``. Exactly
    ``floor(sparsity * size)`` entries are zeroed (ties broken by position, stable).
    """
    s = check_sparsity(sparsity)
    v = model.item_embedding
    n_prune = int(np.floor(s * v.size))
    keep = np.ones(v.size, bool)
    if n_prune:
        order = np.argsort(np.abs(v).ravel(), kind="stable")
        keep[order[:n_prune]] = False
    mask = keep.reshape(v.shape)
    return ItemModel(item_embedding=np.where(mask, v, 0.0).astype(np.float32), item_bias=model.item_bias), mask


def prune_and_finetune(
    trained: TrainedModel,
    split: LeaveOneOutSplit,
    sparsity: float,
    config: TrainConfig,
    *,
    epochs: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> TrainedModel:
    """Magnitude-prune the item table, then fine-tune users, table and bias with the mask fixed."""
    pruned, mask = magnitude_prune(trained.items, sparsity)
    start = TrainedModel(items=pruned, user_embedding=trained.user_embedding)
    if sparsity == 0.0:
        return start
    cfg = replace(config, epochs=epochs, patience=epochs, lr=config.lr * 0.5)
    return train_central(split, cfg, seed=seed, progress=progress, init=start, item_mask=mask).model


def prune_run(run_dir: Path, sparsity: float, *, epochs: int = 10, seed: int = 0) -> ItemModel:
    """Pruned-and-fine-tuned item model of a RUN_DIR, cached as ``RUN_DIR/pruned-<sparsity>.safetensors``.

    Fine-tuning needs the training data named in ``config.json`` (MovieLens-100K); a run without it
    (e.g. a synthetic or federated run) is pruned without fine-tuning, which ``privrec export`` reports.
    """
    s = check_sparsity(sparsity)
    run_dir = Path(run_dir)
    trained = TrainedModel.load(run_dir)
    if s == 0.0:
        return trained.items
    cache = run_dir / f"pruned-{s:.3f}.safetensors"
    if cache.is_file():
        t = load_file(str(cache))
        return ItemModel(item_embedding=t["item_embedding"], item_bias=t["item_bias"])
    config = json.loads((run_dir / "config.json").read_text())
    if config.get("dataset") == "ml-100k" and config.get("mode") == "central" and trained.user_embedding.shape[0]:
        from .data import leave_one_out, load_movielens100k

        split = leave_one_out(load_movielens100k())
        cfg = TrainConfig.from_dict(config["train"])
        items = prune_and_finetune(trained, split, s, cfg, epochs=epochs, seed=seed).items
    else:
        items, _ = magnitude_prune(trained.items, s)
    save_file(items.tensors(), str(cache))
    return items
