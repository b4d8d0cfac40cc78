"""Vectorised simulation of federated training with user-level DP, one device per user.

Each round (DP-FedAvg, McMahan et al. 2018, "Learning Differentially Private Recurrent Language Models",
Alg. 1, with Federated Reconstruction, Singhal et al. 2021):

1. every training device joins independently with probability q (Poisson sampling — what the
   accountant's amplification by subsampling assumes);
2. the cohort's devices run :func:`~privrec.sdk.federated.device.device_update` — simulated as one batch
   by :func:`~privrec.sdk.federated.batched.cohort_update_sum`, which returns exactly the sum secure
   aggregation would reveal;
3. noise: ``central`` — the server adds ``N(0, (Z·C)²)`` per coordinate to the sum; ``distributed`` —
   each of the k devices adds ``N(0, (Z·C)²/n)`` with n = ⌊min_cohort_fraction·q·N⌋, simulated as the
   single draw ``N(0, (Z·C)²·k/n)`` their sum is distributed as (rounds with k < n are aborted: nothing is
   released or accounted); ``off`` — none (warned, recorded);
4. :func:`~privrec.sdk.federated.round.finish_round` — the end-of-round step the HTTP server and the facade
   run too — adds central noise, divides by the **expected** cohort size q·N (the fixed denominator of
   DP-FedAvg, so one device's influence on the average is bounded by C/(qN)), applies the result with a
   server optimizer (:mod:`.server_opt`) and returns the round's privacy event;
5. the event is composed into a :class:`~privrec.sdk.privacy.PrivacyAccountant`; before each round the
   training stops (or raises :class:`~privrec.sdk.errors.PrivacyBudgetExceededError`) if the round would
   take the stated ε past the budget.

With adaptive clipping (Andrew et al. 2021, Alg. 1) the devices also report ``b − ½``; the noised count
sum moves C towards the target quantile and the round is accounted as an
:class:`~privrec.sdk.privacy.AdaptiveClipEvent`.

Randomness: cohort sampling and initialisation use ``numpy.random.default_rng(seed)``; the DP noise
comes from :class:`~privrec.sdk.privacy.SeededGaussianNoise` unless ``secure_noise=True`` — an explicit,
recorded choice (``secure_noise: false`` and a warning in the ledger): reproducible simulations need
seeded noise, deployments must not use it.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm import tqdm

from ..data.splits import LeaveOneOutSplit
from ..errors import PrivacyBudgetExceededError
from ..evaluate import EvalProtocol, Metrics
from ..privacy import (
    AdaptiveClipper,
    NoiseGenerator,
    PrivacyAccountant,
    PrivacyLedger,
    PrivacyWarning,
    SecureGaussianNoise,
    SeededGaussianNoise,
)
from ..run import evaluate_reconstructed
from ..train import label_matrix
from .batched import cohort_update_sum
from .config import FederatedConfig
from .params import ParamLayout
from .result import FederatedResult
from .round import RoundSetup, finish_round
from .server_opt import make_server_optimizer

__all__ = ["FederatedResult", "simulate_federated"]


def _evaluate_heldout(layout: ParamLayout, params: NDArray[np.float32], split: LeaveOneOutSplit,
                      cfg: FederatedConfig, heldout: NDArray[np.int64], target: str) -> Metrics:
    proto = EvalProtocol(target="val" if target == "val" else "test")
    return evaluate_reconstructed(layout.item_model(params), split, cfg.finetune,
                                  recency_half_life=cfg.recency_half_life, users=heldout, protocol=proto)


def simulate_federated(
    split: LeaveOneOutSplit,
    config: FederatedConfig,
    *,
    train_users: NDArray[np.int64],
    heldout_users: NDArray[np.int64],
    seed: int = 0,
    features: NDArray[np.float32] | None = None,
    progress: bool = True,
    noise: NoiseGenerator | None = None,
) -> FederatedResult:
    """Train the global parameters by simulated federated rounds over ``train_users`` (one device each).

    Args:
        split: the data; each training device holds its user's training pairs (recency-weighted labels).
        config: the run's settings.
        train_users: user indices that take part (users without training items never join).
        heldout_users: users evaluated every ``config.eval_every`` rounds, by reconstruction only, on
            their validation items.
        seed: seeds sampling, initialisation and (with ``secure_noise=False``) the noise.
        features: public item features ``[num_items, f]``; required when ``config.item_features != "none"``.
        progress: show a tqdm bar on stderr (loss, held-out HR@10, ε spent).
        noise: the DP noise source; None (the default) chooses it from ``config`` as described above. The
            privacy audit passes a deliberately weakened source here to check that it is detected.

    Raises:
        PrivacyBudgetExceededError: if ``on_budget_exceeded="raise"`` and the next round would exceed the
            budget.
    """
    t0 = time.perf_counter()
    cfg = config
    if cfg.item_features != "none" and features is None:
        raise ValueError(f"`features` must be given when item_features={cfg.item_features!r}. Found None.")
    layout = ParamLayout(
        num_items=split.num_items, dim=cfg.dim, free_embedding=cfg.free_embedding,
        features=features if cfg.item_features != "none" else None, train_bias=cfg.train_bias,
    )
    Y_all = torch.from_numpy(label_matrix(split, cfg.recency_half_life))
    users = np.asarray(train_users, np.int64)
    users = users[Y_all[users].sum(dim=1).numpy() > 0]
    N = int(users.size)
    if N == 0:
        raise ValueError("no training device has any interaction.")
    Y = Y_all[users].contiguous()
    heldout = np.asarray(heldout_users, np.int64)
    m = cfg.expected_cohort(N)
    rng = np.random.default_rng(seed)
    params = layout.init(init_std=cfg.init_std, seed=seed)
    opt = make_server_optimizer(cfg.server_optimizer, lr=cfg.server_lr, momentum=cfg.server_momentum,
                                beta1=cfg.beta1, beta2=cfg.beta2, tau=cfg.tau)
    dp = cfg.dp_config(expected_devices=m, noise_seed=seed)  # warns (PrivacyWarning) in mode "off"
    private = dp.mode != "off"
    z_update = dp.resolved_update_noise_multiplier
    if noise is None and (cfg.secure_noise or not private):
        noise = SecureGaussianNoise()
    elif noise is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrivacyWarning)  # DPConfig already warned about this choice
            noise = SeededGaussianNoise(seed=seed)
    clipper = None
    if dp.adaptive_clipping and dp.count_noise_std is not None:
        clipper = AdaptiveClipper(initial_clip_norm=cfg.clip_norm, count_noise_std=dp.count_noise_std,
                                  expected_devices=m, target_unclipped_quantile=cfg.target_unclipped_quantile,
                                  clip_learning_rate=cfg.clip_learning_rate)
    n_min = max(1, math.floor(cfg.min_cohort_fraction * m))
    acc = PrivacyAccountant(delta=cfg.delta)
    budget = cfg.epsilon_budget
    ledger_warnings: list[str] = []
    history: list[dict[str, Any]] = []
    stop_reason: str | None = None
    aborted = 0
    last_hr = float("nan")
    bar = tqdm(range(1, cfg.rounds + 1), desc=f"federated ({dp.mode})", file=sys.stderr, disable=not progress)
    for r in bar:
        clip = clipper.clip_norm if clipper is not None else cfg.clip_norm
        setup = RoundSetup(
            dp_mode=dp.mode, noise_multiplier=z_update if private else 0.0, clip_norm=clip,
            sample_rate=cfg.sample_rate, denominator=m, local_lr=cfg.local_lr, bias_scale=cfg.bias_scale,
            min_survivors=n_min if dp.mode == "distributed" else 1,
            count_noise_std=clipper.count_noise_std if clipper is not None else None,
        )
        event = setup.event()
        if budget is not None and acc.would_exceed(budget=budget, next_event=event):
            spent = acc.epsilon_rdp()
            stop_reason = (f"privacy budget reached: round {r} would take ε past {budget} "
                           f"(spent {spent:.4f} after {r - 1} rounds at δ={cfg.delta}).")
            if cfg.on_budget_exceeded == "raise":
                raise PrivacyBudgetExceededError(stop_reason)
            print(f"privrec: stopping federated training: {stop_reason}", file=sys.stderr)
            break
        cohort = np.flatnonzero(rng.random(N) < cfg.sample_rate)  # Poisson sampling
        k = int(cohort.size)
        summed = cohort_update_sum(layout, params, Y[torch.from_numpy(cohort)], clip_norm=clip,
                                   local_lr=cfg.local_lr, finetune=cfg.finetune, bias_scale=cfg.bias_scale)
        total = summed.total
        count_sum = summed.unclipped - 0.5 * k
        if dp.mode == "distributed" and k >= n_min:
            # The k devices' shares N(0, σ²) each, drawn as their sum N(0, k·σ²): identical in distribution.
            total = total + noise.normal(layout.size, std=setup.device_noise_std * math.sqrt(k))
            if clipper is not None:
                count_sum += float(noise.normal((1,), std=setup.device_count_noise_std * math.sqrt(k))[0])
        outcome = finish_round(params, total, setup=setup, survivors=k, optimizer=opt, noise=noise,
                               clipper=clipper, count_sum=count_sum)
        applied = outcome.applied
        if outcome.event is not None:
            acc.compose(outcome.event)
        else:
            aborted += 1
        loss = float(summed.losses.mean()) if k else float("nan")
        row: dict[str, Any] = {
            "round": r, "cohort": k, "applied": applied, "loss": loss, "clip_norm": clip,
            "unclipped_fraction": summed.unclipped / k if k else float("nan"),
            "median_update_norm": float(np.median(summed.norms)) if k else float("nan"),
            "epsilon": acc.epsilon_rdp() if private else None,
        }
        if r % cfg.eval_every == 0 or r == cfg.rounds:
            met = _evaluate_heldout(layout, params, split, cfg, heldout, "val")
            last_hr = met.full_hr
            row |= {"val_full_hr@10": met.full_hr, "val_full_ndcg@10": met.full_ndcg,
                    "val_sampled_hr@10": met.sampled_hr, "val_sampled_ndcg@10": met.sampled_ndcg}
        history.append(row)
        eps_text = f"{row['epsilon']:.3f}" if private else "inf"
        bar.set_postfix(loss=f"{loss:.4f}", heldout_hr=f"{last_hr:.4f}", eps=eps_text)
    bar.close()
    if history and "val_full_hr@10" not in history[-1]:
        met = _evaluate_heldout(layout, params, split, cfg, heldout, "val")
        history[-1] |= {"val_full_hr@10": met.full_hr, "val_full_ndcg@10": met.full_ndcg,
                        "val_sampled_hr@10": met.sampled_hr, "val_sampled_ndcg@10": met.sampled_ndcg}
    if aborted:
        ledger_warnings.append(
            f"{aborted} distributed-DP round(s) had fewer than {n_min} devices and were aborted (nothing released)."
        )
    if dp.mode == "distributed":
        ledger_warnings.append(
            "Simulation: the k devices' noise shares were drawn as their sum N(0, (Z·C)²·k/n), identical in "
            "distribution; secure aggregation was not run in this simulation."
        )
    ledger = PrivacyLedger.from_accountant(acc, mode=dp.mode, secure_noise=noise.secure,
                                           warnings=tuple(ledger_warnings))
    rounds_run = len(history)
    return FederatedResult(
        layout=layout, params=params, config=cfg, history=history, ledger=ledger,
        noise_multiplier=z_update if private else 0.0, rounds_run=rounds_run, stop_reason=stop_reason,
        train_users=users, heldout_users=heldout, seconds=time.perf_counter() - t0,
    )
