"""RUN_DIR workflows behind ``privrec train --mode central`` and ``privrec evaluate``.

A RUN_DIR holds ``weights.safetensors`` (item table, bias and — central runs only — user vectors),
``config.json`` (mode, data set, training and fine-tune settings; for an app's own data also ``"data"``:
the file, its sha256 and how it was read, :class:`~privrec.sdk.data.DataSource`), ``items.json`` (the item
map with the app's item ids and titles), ``history.json`` (per-epoch or per-round log) and ``metrics.json``
(test metrics).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .baselines import tune_als
from .data import DataSource, Interactions, LeaveOneOutSplit, leave_one_out, load_movielens100k
from .evaluate import EvalProtocol, Metrics, evaluate
from .model import ItemModel, TrainedModel
from .reconstruct import FinetuneConfig, reconstruct_batch, tune_calls
from .train import TrainConfig, label_matrix, train_central, write_run

__all__ = [
    "apply_item_cold_start",
    "evaluate_baseline",
    "evaluate_reconstructed",
    "evaluate_run",
    "load_run_data",
    "train_central_run",
    "tune_finetune",
]


#: ``train_central_run`` warns when one dense users × items float32 matrix exceeds this many GB.
DENSE_WARN_GB = 1.0


def load_run_data(source: DataSource | None, *, progress: bool = True) -> Interactions:
    """The data a run trains on: MovieLens-100K when ``source`` is None, otherwise the app's file (hash-checked)."""
    return load_movielens100k() if source is None else source.load(progress=progress)


def apply_item_cold_start(model: TrainedModel, split: LeaveOneOutSplit, mode: str) -> tuple[TrainedModel, int]:
    """``(model, number of rows rebuilt)``: with ``mode="features"`` and item features in ``split.data``, items
    with no training interaction get their row from the feature-tied table
    (:func:`~privrec.sdk.federated.side_info.feature_tied_items`, each trained item weighted by its training
    interactions); otherwise the model is returned unchanged."""
    feats = split.data.item_features
    if mode != "features" or feats is None:
        return model, 0
    from .federated.side_info import feature_tied_items

    counts = np.bincount(split.train_items, minlength=split.num_items).astype(np.float64)
    cold = counts == 0
    if not cold.any() or cold.all():
        return model, 0
    # each trained item weighs its interactions in the fit: on MovieLens-100K this ranked held-out items far
    # higher than an unweighted fit (median rank 140 vs 378 of 1,682; the quality report's cold-start part)
    items = feature_tied_items(model.items, feats, cold, weights=counts)
    return TrainedModel(items=items, user_embedding=model.user_embedding), int(cold.sum())


def train_central_run(out: Path, *, overrides: dict[str, Any] | None = None, seed: int = 0, progress: bool = True,
                      data_source: DataSource | None = None, data: Interactions | None = None) -> Path:
    """Train centrally and write a RUN_DIR (see module docstring): on MovieLens-100K, or on an app's own
    file when ``data_source`` is given (the same leave-one-out split and protocol; ``data`` is that file
    already loaded, to skip a second read)."""
    cfg = TrainConfig.from_dict(dict(overrides or {}))
    data = data if data is not None else load_run_data(data_source, progress=progress)
    dense_gb = data.num_users * data.num_items * 4 / 2**30
    if dense_gb > DENSE_WARN_GB:
        warnings.warn(f"central training holds dense users × items label matrices: {data.num_users:,} × "
                      f"{data.num_items:,} float32 is {dense_gb:.1f} GB each (a few copies are alive at once).",
                      UserWarning, stacklevel=2)
    split = leave_one_out(data)
    result = train_central(split, cfg, seed=seed, progress=progress)
    model, n_cold = apply_item_cold_start(result.model, split, cfg.item_cold_start)
    result = replace(result, model=model)
    finetune = tune_finetune(result.model.items, split, cfg)
    result = replace(result, config=replace(cfg, finetune=finetune))
    out = Path(out)
    extra: dict[str, Any] = {"dataset": data.name, "seed": seed, "best_epoch": result.best_epoch,
                             "cold_start_items": n_cold}
    if data_source is not None:
        extra["data"] = data_source.to_dict()
    write_run(out, result, extra)
    (out / "items.json").write_text(json.dumps(data.item_catalog(), indent=0, ensure_ascii=False) + "\n")
    metrics = evaluate_run(out, split=split)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return out


def tune_finetune(items: ItemModel, split: LeaveOneOutSplit, cfg: TrainConfig) -> FinetuneConfig:
    """The on-device reconstruction settings for a trained model, chosen on the validation items.

    Step size from ``cfg.finetune``; the L2 coefficient among ½×, 1× and 2× the training L2 and the
    number of ``finetune`` calls (up to 100 steps in all) that maximise validation full-catalog NDCG@10 (smoother
    than HR@10 on 943 users, so the choice is less noisy).
    """
    labels = torch.from_numpy(label_matrix(split, cfg.recency_half_life))
    val_users = np.flatnonzero(split.val_item >= 0)
    proto = EvalProtocol(target="val")

    def val_ndcg(U: np.ndarray) -> float:
        return evaluate(lambda us: U[us] @ items.item_embedding.T + items.item_bias, split, users=val_users,
                        protocol=proto).full_ndcg

    best: tuple[float, FinetuneConfig] = (-1.0, cfg.finetune)
    for l2 in (cfg.l2 / 2, cfg.l2, cfg.l2 * 2):
        max_calls = max(1, 100 // cfg.finetune.steps)
        tuned, scores = tune_calls(items, labels, val_ndcg, replace(cfg.finetune, l2=l2), max_calls=max_calls)
        if max(scores) > best[0]:
            best = (max(scores), tuned)
    return best[1]


def evaluate_reconstructed(
    items: ItemModel,
    split: LeaveOneOutSplit,
    finetune: FinetuneConfig,
    *,
    recency_half_life: float | None,
    users: np.ndarray | None = None,
    protocol: EvalProtocol | None = None,
) -> Metrics:
    """Metrics when every evaluated user's vector is rebuilt on the device from their training items
    with the global parameters frozen (Federated Reconstruction, Singhal et al. 2021)."""
    Y = torch.from_numpy(label_matrix(split, recency_half_life))
    eval_users = split.evaluated_users() if users is None else np.asarray(users, np.int64)
    U = np.zeros((split.num_users, items.dim), np.float32)
    has = eval_users[Y[eval_users].sum(dim=1).numpy() > 0]
    U[has] = reconstruct_batch(items, Y[has], finetune).numpy()
    V, b = items.item_embedding, items.item_bias
    return evaluate(lambda us: U[us] @ V.T + b, split, users=eval_users, protocol=protocol)


def evaluate_run(run_dir: Path, *, split: LeaveOneOutSplit | None = None, data: Path | str | None = None,
                 items: Path | str | None = None) -> dict[str, Any]:
    """Test metrics of a RUN_DIR in the ``privrec evaluate --json`` shape.

    Central runs are scored with their jointly trained user vectors, and additionally with vectors
    rebuilt by reconstruction (``"reconstructed"``). Runs without user vectors (federated) are scored
    by reconstruction only — on their held-out users when the run lists them.

    A run trained on an app's file re-reads the file recorded in its ``config.json`` with the recorded
    settings, and refuses it if its sha256 changed. ``data`` (and ``items``) point at the same files moved
    elsewhere: their sha256 must still be the recorded ones.
    """
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    model = TrainedModel.load(run_dir)
    if split is None and (data is not None or items is not None):
        if not isinstance(config.get("data"), dict):
            raise ValueError(f"{run_dir}/config.json: the run was trained on {config.get('dataset')!r}, not on an "
                             f"app's data file: evaluate it without --data.")
        recorded = DataSource.from_dict(config["data"])
        if items is not None and recorded.items_path is None:
            raise ValueError(f"{run_dir}/config.json: the run was trained without an item file: evaluate it without --items.")
        moved = replace(recorded, path=str(Path(data).resolve()) if data is not None else recorded.path,
                        items_path=str(Path(items).resolve()) if items is not None else recorded.items_path)
        split = leave_one_out(moved.load(progress=False))  # refuses files whose sha256 is not the recorded one
    if split is None:
        if "data" in config:
            split = leave_one_out(DataSource.from_dict(config["data"]).load(progress=False))
        elif config.get("dataset") != "ml-100k":
            raise ValueError(f"{run_dir}/config.json: dataset {config.get('dataset')!r} is not one `privrec evaluate` loads.")
        else:
            split = leave_one_out(load_movielens100k())
    finetune = FinetuneConfig(**config["finetune"])
    half_life = config.get("train", {}).get("recency_half_life")
    heldout = np.asarray(config["heldout_users"], np.int64) if "heldout_users" in config else None
    rec = evaluate_reconstructed(model.items, split, finetune, recency_half_life=half_life, users=heldout)
    if model.user_embedding.shape[0] == split.num_users:
        U, V, b = model.user_embedding, model.items.item_embedding, model.items.item_bias
        main = evaluate(lambda us: U[us] @ V.T + b, split)
        out = main.to_dict()
        out["reconstructed"] = rec.to_dict()
    else:
        out = rec.to_dict()
        out["reconstructed"] = rec.to_dict()
    out["run"] = {"mode": config.get("mode"), "dataset": config.get("dataset"), "seed": config.get("seed")}
    return out


def evaluate_baseline(name: str, *, seed: int = 0) -> dict[str, Any]:
    """Tune the named baseline on validation, then evaluate it on the test items (same protocol)."""
    if name != "als":
        raise ValueError(f"unknown baseline {name!r}. Expected 'als'.")
    split = leave_one_out(load_movielens100k())
    best, grid = tune_als(split, seed=seed)
    out = evaluate(best.score, split).to_dict()
    out["baseline"] = {"name": "als (implicit)", "config": best.config.__dict__, "grid": grid}
    return out
