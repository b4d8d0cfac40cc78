"""``privrec bench audit``: what an attacker learns from federated training on MovieLens-100K, beside what
the accountant promises.

For DP off, ε = 8 and ε = 1 (δ = 1e-4; the privacy benchmark's settings, :func:`privrec.benchmarks.privacy.bench_config`,
with Z calibrated to ε over this benchmark's rounds) one training run per setting with half of the real users
held out (the non-members) and m canary devices, each included with probability ½
(:func:`privrec.sdk.privacy.run_canary_audit`). Reported per setting: the accountant's ε (an upper bound), the
audit's ε lower bound at 95% confidence (Steinke, Nasr & Jagielski 2023), the canaries' ROC AUC, and classic
membership inference on the real users (loss threshold and reconstruction rank: AUC, TPR at 1% FPR).

Writes ``out/audit.md`` (the table), ``out/audit.png`` (ROC curves: canaries, and real users by the loss test)
and ``out/audit.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from privrec.sdk.federated.config import FederatedConfig

__all__ = ["AUDIT_EPSILONS", "audit_bench_config", "run_audit_bench"]

AUDIT_EPSILONS: tuple[float, ...] = (math.inf, 8.0, 1.0)
"""DP off, then ε = 8 and ε = 1."""
CANARIES = 400
QUICK_CANARIES = 100
ROUNDS = 20
QUICK_ROUNDS = 8
MEMBER_FRACTION = 0.5
CONFIDENCE = 0.95


def audit_bench_config(epsilon: float, *, quick: bool = False) -> FederatedConfig:
    """The privacy benchmark's settings at ``epsilon`` (``math.inf`` = DP off) with this benchmark's rounds
    (Z calibrated to ε over them) and half of the users held out as non-members."""
    from privrec.benchmarks.privacy import bench_config

    return dataclasses.replace(bench_config(epsilon, quick=quick), rounds=QUICK_ROUNDS if quick else ROUNDS,
                               heldout_fraction=MEMBER_FRACTION)


def _label(epsilon: float) -> str:
    return "DP off" if math.isinf(epsilon) else f"ε = {epsilon:g}"


def _audit_job(epsilon: float, quick: bool, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One setting's audit: ``(report row, ROC curves)``."""
    from privrec.sdk.data import heldout_users, leave_one_out, load_movielens100k
    from privrec.sdk.federated.side_info import movielens100k_item_features
    from privrec.sdk.privacy.audit import roc_curve
    from privrec.sdk.privacy.audit_canaries import AuditConfig, run_canary_audit

    logging.getLogger("absl").setLevel(logging.ERROR)
    data = load_movielens100k()
    split = leave_one_out(data)
    audit = AuditConfig(canaries=QUICK_CANARIES if quick else CANARIES, confidence=CONFIDENCE, seed=seed)
    cfg = audit_bench_config(epsilon, quick=quick)
    train, held = heldout_users(split.num_users, fraction=cfg.heldout_fraction, seed=cfg.heldout_seed)
    features = movielens100k_item_features(data)[0] if cfg.item_features == "genre" else None
    res = run_canary_audit(split, cfg, audit=audit, train_users=train, heldout_users=held, seed=seed,
                           features=features)
    row = {"setting": _label(epsilon), "target_epsilon": None if math.isinf(epsilon) else epsilon, **res.to_dict()}
    c_fpr, c_tpr = roc_curve(res.scores[res.best], res.included)
    loss = res.membership["loss"]
    m_fpr, m_tpr = roc_curve(loss.scores, loss.members)
    curves = {"label": _label(epsilon), "canary": (c_fpr.tolist(), c_tpr.tolist()),
              "loss": (m_fpr.tolist(), m_tpr.tolist())}
    return row, curves


def run_audit_bench(*, quick: bool, out: Path, seed: int = 0, workers: int | None = None) -> dict[str, Any]:
    """Run the audit for every setting of :data:`AUDIT_EPSILONS` and write the report (module docstring).

    The settings are independent training runs: ``workers`` processes (default: one per setting) run them
    side by side.
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    canaries = QUICK_CANARIES if quick else CANARIES
    n = workers or len(AUDIT_EPSILONS)
    if n == 1:
        done = [_audit_job(eps, quick, seed) for eps in AUDIT_EPSILONS]
    else:
        with ProcessPoolExecutor(max_workers=n) as pool:
            done = list(pool.map(_audit_job, AUDIT_EPSILONS, [quick] * len(AUDIT_EPSILONS),
                                 [seed] * len(AUDIT_EPSILONS)))
    rows = [row for row, _ in done]
    curves = [curve for _, curve in done]
    result = {"quick": quick, "seed": seed, "canaries": canaries, "confidence": CONFIDENCE,
              "rounds": QUICK_ROUNDS if quick else ROUNDS, "rows": rows, "seconds": time.perf_counter() - t0}
    (out / "audit.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    write_markdown(out / "audit.md", result)
    plot_roc(out / "audit.png", curves)
    return result


def _eps(value: float | None) -> str:
    return "∞" if value is None else f"{value:.3f}"


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    """The report table: one row per setting (``result["rows"]`` as :func:`run_audit_bench` builds them)."""
    lines = [
        "# Privacy audit: accountant (upper bound) vs attack (lower bound)",
        "",
        f"MovieLens-100K, one federated training run per setting ({result['rounds']} rounds, δ = 1e-4), half of "
        f"the users held out as non-members, {result['canaries']} canary devices each included with probability "
        f"½; lower bounds at {result['confidence']:.0%} confidence (Steinke, Nasr & Jagielski 2023). "
        "`privrec bench audit` regenerates this report" + (" (quick run)." if result["quick"] else "."),
        "",
        "| setting | ε accountant (upper) | ε audit (lower) | canary score | correct / guesses | canary AUC "
        "(delta / reconstruction) | loss MIA AUC | loss TPR @1% FPR | reconstruction MIA AUC | reconstruction "
        "TPR @1% FPR |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        best = row["canary_scores"][row["best_score"]]
        cs = row["canary_scores"]
        loss, rec = row["membership"]["loss"], row["membership"]["reconstruction"]
        lines.append(
            f"| {row['setting']} | {_eps(row['epsilon_upper'])} | {row['empirical_lower_bound']['epsilon_lower']:.3f} "
            f"| {row['best_score']} | {best['correct']} / {best['guesses']} "
            f"| {cs['model_delta']['auc']:.3f} / {cs['reconstruction']['auc']:.3f} "
            f"| {loss['auc']:.3f} | {loss['tpr_at_1pct_fpr']:.3f} | {rec['auc']:.3f} | {rec['tpr_at_1pct_fpr']:.3f} |"
        )
    lines += [
        "",
        "How to read it: the accountant's ε is a proof that no attacker can learn more; the audit's ε is what "
        "this attacker demonstrably learned. The lower bound must stay below the upper bound — if it ever "
        "exceeds it, the mechanism or its accounting is broken. A DP-off run has no upper bound, and the "
        "audit shows how much leaks without it. Real users are far harder to detect than canaries: canaries "
        "are the worst case a device could be (one rare item of its own).",
        "",
        f"Measured in {result['seconds']:.0f} s.",
        "",
    ]
    path.write_text("\n".join(lines))


def plot_roc(path: Path, curves: list[dict[str, Any]]) -> None:
    """Two ROC panels (log-log, with the chance line): canaries by the reported score, real users by loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, title in ((axes[0], "canary", "canary devices (reported score)"),
                           (axes[1], "loss", "real users: loss-threshold attack")):
        for curve in curves:
            fpr, tpr = (np.asarray(v, np.float64) for v in curve[key])
            ax.plot(np.maximum(fpr, 1e-3), np.maximum(tpr, 1e-3), label=curve["label"])
        grid = np.logspace(-3, 0, 50)
        ax.plot(grid, grid, color="grey", linestyle=":", label="chance")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(1e-3, 1.05)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
