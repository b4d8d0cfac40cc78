"""The audit benchmark's settings and report writers (the full benchmark runs under `privrec bench audit`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from privrec.bench import SUITES
from privrec.benchmarks.audit import AUDIT_EPSILONS, audit_bench_config, plot_roc, write_markdown
from privrec.benchmarks.privacy import bench_config


def test_settings_per_epsilon() -> None:
    assert "audit" in SUITES
    assert AUDIT_EPSILONS[0] == math.inf and set(AUDIT_EPSILONS[1:]) == {8.0, 1.0}
    for eps in AUDIT_EPSILONS:
        cfg = audit_bench_config(eps)
        quick = audit_bench_config(eps, quick=True)
        assert cfg.heldout_fraction == 0.5  # half of the users are non-members
        assert quick.rounds < cfg.rounds
        reference = bench_config(eps)  # the privacy benchmark's settings, apart from rounds and members
        assert (cfg.dp_mode, cfg.target_epsilon, cfg.clip_norm, cfg.item_features, cfg.delta) == (
            reference.dp_mode, reference.target_epsilon, reference.clip_norm, reference.item_features, reference.delta)


def _row(setting: str, eps_upper: float | None, lower: float, auc: float) -> dict[str, Any]:
    scores = {name: {"epsilon_lower": lower, "k_plus": 100, "k_minus": 100, "guesses": 200, "correct": 150,
                     "canaries": 400, "delta": 1e-4, "confidence": 0.95, "hypotheses": 30, "auc": auc}
              for name in ("model_delta", "reconstruction")}
    return {
        "setting": setting, "epsilon_upper": eps_upper, "best_score": "model_delta", "canary_scores": scores,
        "empirical_lower_bound": {"epsilon_lower": lower, "delta": 1e-4, "confidence": 0.95, "canaries": 400,
                                  "method": "one-run canaries (Steinke, Nasr & Jagielski 2023): model_delta"},
        "membership": {"loss": {"auc": 0.6, "tpr_at_1pct_fpr": 0.03, "members": 470, "non_members": 470},
                       "reconstruction": {"auc": 0.55, "tpr_at_1pct_fpr": 0.02, "members": 470, "non_members": 470}},
    }


def test_report_files(tmp_path: Path) -> None:
    result = {"quick": False, "canaries": 400, "confidence": 0.95, "rounds": 80, "seconds": 61.0,
              "rows": [_row("DP off", None, 2.5, 0.99), _row("ε = 8", 7.9999, 0.4, 0.7), _row("ε = 1", 1.0, 0.0, 0.55)]}
    write_markdown(tmp_path / "audit.md", result)
    text = (tmp_path / "audit.md").read_text()
    assert "| DP off | ∞ | 2.500 | model_delta | 150 / 200 | 0.990 / 0.990 | 0.600 | 0.030 | 0.550 | 0.020 |" in text
    assert "| ε = 8 | 8.000 | 0.400 |" in text
    assert "| ε = 1 | 1.000 | 0.000 |" in text
    assert "400 canary devices" in text and "(quick run)" not in text
    rng = np.random.default_rng(0)
    curves = []
    for label in ("DP off", "ε = 8"):
        fpr = np.r_[0.0, np.sort(rng.random(20)), 1.0]
        curves.append({"label": label, "canary": (fpr.tolist(), np.sqrt(fpr).tolist()),
                       "loss": (fpr.tolist(), fpr.tolist())})
    plot_roc(tmp_path / "audit.png", curves)
    assert (tmp_path / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
