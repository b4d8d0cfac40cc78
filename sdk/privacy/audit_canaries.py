"""The empirical privacy audit of federated training: canary devices in one training run (torch).

:func:`run_canary_audit` follows Steinke, Nasr & Jagielski (NeurIPS 2023, "Privacy Auditing with One (1)
Training Run"), with devices as the unit of privacy (user-level DP, add or remove one device):

1. **Canaries** (:func:`choose_canary_items`, :func:`add_canaries`): m extra devices, each with a history of
   ``items_per_canary`` items of its own, taken from the least popular items among the real training devices
   and never shared between canaries. A device that likes one rare item spends almost all of its clipped
   update on that item's bias and embedding row — the coordinates nobody else moves: the strongest canary a
   device can be (the "Dirac canary" of the paper, in the space of device updates).
2. Each canary joins the training population independently with probability ½ (a seeded draw apart from the
   training seed), and the run trains with the real machinery: :func:`~privrec.sdk.federated.simulate_federated`
   (Poisson sampling, the batched device update with reconstruction and clipping, calibrated noise, the
   end-of-round step and the accountant), from the run's own :class:`~privrec.sdk.federated.FederatedConfig`.
3. **Scores** on the released model, higher = more likely included, each minus the median score of the
   canaries whose items have the same real popularity (a function of the released model and public design only):

   * ``model_delta``: the parameter change ``θ_T − θ_0`` (θ_0 is the public initialisation) projected onto the
     canary's own update at the released model, restricted to its own items' coordinates (bias and item-table
     rows);
   * ``reconstruction``: the canary's negative loss after on-device reconstruction of its user vector.

4. **Bound**: :func:`~privrec.sdk.privacy.audit.audit_guesses` per score, the confidence spent over both scores
   and every guess budget (Bonferroni), the larger bound kept.

The same run also measures classic membership inference on the real users (:mod:`.audit_membership`):
training devices are members, held-out users non-members.

The expected cohort q·N of the run counts the canaries that were included (the simulation's population is the
real training devices plus them), a global rescaling of order 1/N that the per-canary scores do not look at.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from ..data.splits import LeaveOneOutSplit, leave_one_out
from ..federated.config import FederatedConfig
from ..federated.params import ParamLayout
from ..federated.simulate import FederatedResult, simulate_federated
from ..model import ItemModel
from ..reconstruct import reconstruct_batch
from ..train import label_matrix
from ..validation import check_positive_int
from .audit import (
    DEFAULT_GUESS_FRACTIONS,
    EmpiricalLowerBound,
    GuessBound,
    audit_guesses,
    guess_pairs,
    roc_auc,
    tpr_at_fpr,
)
from .audit_membership import loss_scores, reconstruction_scores
from .errors import PrivacyWarning
from .noise import NoiseGenerator

__all__ = [
    "CANARY_SCORES",
    "AuditConfig",
    "CanaryAudit",
    "MembershipResult",
    "add_canaries",
    "audit_run_dir",
    "choose_canary_items",
    "run_canary_audit",
]

#: The canary scores of :func:`run_canary_audit`, by name.
CANARY_SCORES: tuple[str, ...] = ("model_delta", "reconstruction")
METHOD = "one-run canaries (Steinke, Nasr & Jagielski 2023)"
_INCLUSION_STREAM = 0xA0D17  # the canaries' coin flips use their own stream, apart from the training seed


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """The audit's settings.

    Attributes:
        canaries: m ≥ 2 canary devices.
        items_per_canary: items in each canary's history (its own, rare items).
        delta: δ of the lower bound; None = the run's δ.
        confidence: the probability that the reported lower bound is not an overestimate, in (0, 1).
        seed: seeds the canaries' inclusion coin flips and the reconstruction test's split of histories.
        fractions: the guess-budget grid (:func:`~privrec.sdk.privacy.audit.audit_guesses`), fixed in advance.
    """

    canaries: int = 200
    items_per_canary: int = 1
    delta: float | None = None
    confidence: float = 0.95
    seed: int = 0
    fractions: tuple[float, ...] = DEFAULT_GUESS_FRACTIONS

    def __post_init__(self) -> None:
        check_positive_int(self.canaries, "canaries")
        if self.canaries < 2:
            raise ValueError(f"`canaries` must be >= 2. Found {self.canaries}.")
        check_positive_int(self.items_per_canary, "items_per_canary")
        if self.delta is not None and not 0.0 <= float(self.delta) < 1.0:
            raise ValueError(f"`delta` must be in [0, 1) or None. Found {self.delta}.")
        if not 0.0 < float(self.confidence) < 1.0:
            raise ValueError(f"`confidence` must be in (0, 1). Found {self.confidence}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"`seed` must be an int >= 0. Found {self.seed!r}.")


@dataclasses.dataclass(frozen=True)
class MembershipResult:
    """One membership test's outcome: scores per user and their ROC summary.

    Attributes:
        scores: ``float64[U]`` (higher = more likely a member).
        members: ``bool[U]``.
        auc: area under the ROC curve (0.5 = guessing).
        tpr_at_1pct_fpr: true-positive rate at 1% false positives.
    """

    scores: NDArray[np.float64]
    members: NDArray[np.bool_]
    auc: float
    tpr_at_1pct_fpr: float

    @classmethod
    def of(cls, scores: NDArray[np.float64], members: NDArray[np.bool_]) -> MembershipResult:
        """Summarise ``scores`` against ``members``."""
        return cls(scores=scores, members=members, auc=roc_auc(scores, members),
                   tpr_at_1pct_fpr=tpr_at_fpr(scores, members, fpr=0.01))

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (no per-user scores)."""
        return {"auc": self.auc, "tpr_at_1pct_fpr": self.tpr_at_1pct_fpr,
                "members": int(self.members.sum()), "non_members": int((~self.members).sum())}


def choose_canary_items(
    split: LeaveOneOutSplit, train_users: NDArray[np.int64], *, canaries: int, items_per_canary: int = 1
) -> NDArray[np.int64]:
    """``int64[m, k]``: disjoint item sets for the canaries, the least popular items among ``train_users``'
    training pairs first (ties in item order).

    Raises:
        ValueError: when the catalog has fewer than ``m·k`` items.
    """
    m = check_positive_int(canaries, "canaries")
    k = check_positive_int(items_per_canary, "items_per_canary")
    if m * k > split.num_items:
        raise ValueError(f"`canaries` × `items_per_canary` must be at most the {split.num_items} items. Found {m * k}.")
    mask = np.isin(split.train_users, np.asarray(train_users, np.int64))
    counts = np.bincount(split.train_items[mask], minlength=split.num_items)
    order = np.argsort(counts, kind="stable")
    return order[: m * k].reshape(m, k).astype(np.int64)


def add_canaries(split: LeaveOneOutSplit, items: NDArray[np.int64]) -> tuple[LeaveOneOutSplit, NDArray[np.int64]]:
    """``split`` with one new user per row of ``items [m, k]`` whose training history is that row (no
    validation or test item); returns the new split and the canaries' user indices ``int64[m]``."""
    it = np.asarray(items, np.int64)
    if it.ndim != 2 or it.size == 0:
        raise ValueError(f"`items` must be a non-empty 2-D array [canaries, items_per_canary]. Found shape {it.shape}.")
    if it.min() < 0 or it.max() >= split.num_items:
        raise ValueError(f"`items` must be in [0, {split.num_items}). Found values in [{it.min()}, {it.max()}].")
    m, k = it.shape
    data = split.data
    first = data.num_users
    canary_users = np.arange(first, first + m, dtype=np.int64)
    users = np.repeat(canary_users, k)
    flat = it.reshape(-1)
    t0 = int(data.timestamps.max()) + 1 if len(data) else 0
    times = t0 + np.tile(np.arange(k, dtype=np.int64), m)
    new = dataclasses.replace(
        data,
        users=np.concatenate([data.users, users]),
        items=np.concatenate([data.items, flat]),
        ratings=np.concatenate([data.ratings, np.full(flat.size, 5.0, np.float32)]),
        timestamps=np.concatenate([data.timestamps, times]),
        user_ids=tuple(data.user_ids) + tuple(f"canary-{i}" for i in range(m)),
    )
    none = np.full(m, -1, np.int64)
    out = LeaveOneOutSplit(
        data=new,
        train_users=np.concatenate([split.train_users, users]),
        train_items=np.concatenate([split.train_items, flat]),
        val_item=np.concatenate([split.val_item, none]),
        test_item=np.concatenate([split.test_item, none]),
    )
    return out, canary_users


def _own_coordinates(layout: ParamLayout, items: NDArray[np.int64]) -> NDArray[np.int64]:
    """Flat indices of the item-table rows and biases of ``items`` (the coordinates only they move directly)."""
    e, w, _ = layout.sizes
    parts: list[NDArray[np.int64]] = []
    if layout.free_embedding:
        parts.append((items[:, None] * layout.dim + np.arange(layout.dim)[None, :]).reshape(-1))
    if layout.train_bias:
        parts.append(e + w + items)
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


@torch.no_grad()
def _model_delta_scores(result: FederatedResult, labels: NDArray[np.float32], items: NDArray[np.int64],
                        seed: int) -> NDArray[np.float64]:
    """Per canary: ``⟨(θ_T − θ_0)_own, Δ_own⟩ / ‖Δ_own‖`` with Δ the canary's unclipped update at θ_T."""
    cfg, layout = result.config, result.layout
    model = result.items
    theta0 = layout.init(init_std=cfg.init_std, seed=seed).astype(np.float64)
    moved = result.params.astype(np.float64) - theta0
    U = reconstruct_batch(model, torch.from_numpy(labels), cfg.finetune).double().numpy()
    logits = U @ model.item_embedding.astype(np.float64).T + model.item_bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    G = p - labels / labels.sum(axis=1, keepdims=True)  # [m, n]
    out = np.empty(labels.shape[0], np.float64)
    for i in range(labels.shape[0]):
        own = items[i]
        parts: list[NDArray[np.float64]] = []
        if layout.free_embedding:
            parts.append((-cfg.local_lr * np.outer(G[i, own], U[i])).reshape(-1))
        if layout.train_bias:
            parts.append(-cfg.local_lr * cfg.bias_scale * G[i, own])
        direction = np.concatenate(parts)
        norm = float(np.linalg.norm(direction))
        coords = _own_coordinates(layout, own)
        out[i] = float(moved[coords] @ direction) / norm if norm > 0 else 0.0
    return out


def _residual(scores: NDArray[np.float64], groups: NDArray[np.int64]) -> NDArray[np.float64]:
    """``scores`` minus the median score of their group (canaries whose items are equally popular)."""
    out = scores.copy()
    for g in np.unique(groups):
        sel = groups == g
        out[sel] -= np.median(scores[sel])
    return out


@dataclasses.dataclass(frozen=True)
class CanaryAudit:
    """The outcome of :func:`run_canary_audit`.

    Attributes:
        run: the audit's training run (its ledger is the accountant's ε for the mechanism that ran).
        canary_items: ``int64[m, k]`` each canary's items.
        included: ``bool[m]`` which canaries were in the training population.
        scores: per canary score name (:data:`CANARY_SCORES`), ``float64[m]``.
        bounds: per canary score name, the best guesses and their ε lower bound.
        best: the score name whose bound is reported.
        lower_bound: the reported bound, as the ledger records it.
        membership: per membership test (``"loss"``, ``"reconstruction"``), real users' ROC summary.
    """

    run: FederatedResult
    canary_items: NDArray[np.int64]
    included: NDArray[np.bool_]
    scores: dict[str, NDArray[np.float64]]
    bounds: dict[str, GuessBound]
    best: str
    lower_bound: EmpiricalLowerBound
    membership: dict[str, MembershipResult]

    @property
    def epsilon_upper(self) -> float:
        """The accountant's ε for the audit run (``math.inf`` without DP)."""
        return self.run.ledger.epsilon

    def canary_auc(self, score: str) -> float:
        """ROC AUC of canary ``score`` against inclusion."""
        return roc_auc(self.scores[score], self.included)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no per-user scores; ε = inf as None)."""
        eps = self.epsilon_upper
        return {
            "empirical_lower_bound": self.lower_bound.to_dict(),
            "epsilon_upper": None if math.isinf(eps) else eps,
            "delta": self.run.ledger.delta,
            "mode": self.run.ledger.mode,
            "noise_multiplier": self.run.noise_multiplier,
            "rounds_run": self.run.rounds_run,
            "canaries": int(self.included.size),
            "canaries_included": int(self.included.sum()),
            "items_per_canary": int(self.canary_items.shape[1]),
            "canary_scores": {name: {**self.bounds[name].to_dict(), "auc": self.canary_auc(name)}
                              for name in self.scores},
            "best_score": self.best,
            "membership": {name: res.summary() for name, res in self.membership.items()},
        }


def run_canary_audit(
    split: LeaveOneOutSplit,
    config: FederatedConfig,
    *,
    audit: AuditConfig,
    train_users: NDArray[np.int64],
    heldout_users: NDArray[np.int64],
    seed: int = 0,
    features: NDArray[np.float32] | None = None,
    noise: NoiseGenerator | None = None,
    progress: bool = True,
) -> CanaryAudit:
    """Train once with canaries and bound ε from below (module docstring).

    Args:
        split: the real data.
        config: the federated run to audit (its evaluation schedule is reduced to the last round).
        audit: the canaries, δ and confidence.
        train_users, heldout_users: the real users that train (members) and that do not (non-members).
        seed: the training seed (sampling, initialisation, seeded noise), as in the audited run.
        features: public item features, when ``config.item_features != "none"``.
        noise: the DP noise source (None: chosen from ``config``, as in any run). Tests pass a deliberately
            weakened source to check that the audit catches it.
        progress: tqdm bar on stderr.
    """
    if not isinstance(audit, AuditConfig):
        raise TypeError(f"`audit` must be an AuditConfig. Found {type(audit).__name__}.")
    train = np.asarray(train_users, np.int64)
    items = choose_canary_items(split, train, canaries=audit.canaries, items_per_canary=audit.items_per_canary)
    aug, canary_users = add_canaries(split, items)
    coin = np.random.default_rng([audit.seed, _INCLUSION_STREAM])
    included = coin.random(audit.canaries) < 0.5
    cfg = dataclasses.replace(config, eval_every=config.rounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)  # the audited config's own choices were warned about
        run = simulate_federated(aug, cfg, train_users=np.concatenate([train, canary_users[included]]),
                                 heldout_users=np.asarray(heldout_users, np.int64), seed=seed, features=features,
                                 progress=progress, noise=noise)
    Y = label_matrix(aug, cfg.recency_half_life)
    canary_labels = Y[canary_users]
    mask = np.isin(split.train_users, train)
    popularity = np.bincount(split.train_items[mask], minlength=split.num_items)[items].sum(axis=1)
    model: ItemModel = run.items
    raw = {
        "model_delta": _model_delta_scores(run, canary_labels, items, seed),
        "reconstruction": loss_scores(model, canary_labels, cfg.finetune),
    }
    scores = {name: _residual(s, popularity) for name, s in raw.items()}
    delta = run.ledger.delta if audit.delta is None else float(audit.delta)
    pairs = len(guess_pairs(audit.canaries, audit.fractions))
    bounds = {name: audit_guesses(s, included, delta=delta, confidence=audit.confidence, fractions=audit.fractions,
                                  hypotheses=len(scores) * pairs)
              for name, s in scores.items()}
    best = max(CANARY_SCORES, key=lambda name: bounds[name].epsilon_lower)
    lower = EmpiricalLowerBound(epsilon_lower=bounds[best].epsilon_lower, delta=delta, confidence=audit.confidence,
                                canaries=audit.canaries, method=f"{METHOD}: {best}")
    real = np.concatenate([run.train_users[run.train_users < split.num_users], np.asarray(heldout_users, np.int64)])
    real = real[Y[real].sum(axis=1) > 0]
    members = np.isin(real, train)
    membership = {
        "loss": MembershipResult.of(loss_scores(model, Y[real], cfg.finetune), members),
        "reconstruction": MembershipResult.of(
            reconstruction_scores(model, Y[real], cfg.finetune, seed=audit.seed), members),
    }
    return CanaryAudit(run=run, canary_items=items, included=included, scores=scores, bounds=bounds, best=best,
                       lower_bound=lower, membership=membership)


def audit_run_dir(
    run_dir: str | Path,
    *,
    audit: AuditConfig,
    progress: bool = True,
) -> tuple[CanaryAudit, Path]:
    """``privrec audit RUN_DIR``: re-train a federated MovieLens-100K run (``privrec train --mode federated``)
    with canaries, from its own config, seed and held-out users, and record the lower bound in the run's
    ``privacy_ledger.json`` (its ``empirical_lower_bound``; ``privrec export`` then copies it into the bundle
    manifest's ``privacy`` block). The run's weights are not touched.

    Returns:
        the audit and the ledger's path.

    Raises:
        FileNotFoundError: RUN_DIR or one of its files is missing.
        ValueError: RUN_DIR is not a federated run on MovieLens-100K.
    """
    from ..data import load_movielens100k
    from ..federated.side_info import movielens100k_item_features
    from .ledger import LEDGER_FILENAME, PrivacyLedger

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"RUN_DIR {run} does not exist or is not a directory.")
    for name in ("config.json", LEDGER_FILENAME):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run / name} is missing: audit a RUN_DIR written by `privrec train --mode federated`.")
    raw = json.loads((run / "config.json").read_text())
    if not isinstance(raw, dict) or raw.get("mode") != "federated":
        found = raw.get("mode") if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{run / 'config.json'}: `mode` must be 'federated' (a federated run). Found {found!r}.")
    if raw.get("dataset") != "ml-100k":
        raise ValueError(f"{run / 'config.json'}: `dataset` must be 'ml-100k'. Found {raw.get('dataset')!r}.")
    config = FederatedConfig.from_dict(raw["federated"])
    seed = int(raw["seed"])
    ledger = PrivacyLedger.load(run)
    data = load_movielens100k()
    split = leave_one_out(data)
    held = np.asarray(raw["heldout_users"], np.int64)
    train = np.setdiff1d(np.arange(split.num_users, dtype=np.int64), held)
    features = movielens100k_item_features(data)[0] if config.item_features == "genre" else None
    result = run_canary_audit(split, config, audit=audit, train_users=train, heldout_users=held, seed=seed,
                              features=features, progress=progress)
    path = dataclasses.replace(ledger, empirical_lower_bound=result.lower_bound).save(run)
    return result, path
