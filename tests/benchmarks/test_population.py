"""The population benchmark: its training loop's ledger against an independent dp-accounting recomputation,
the curves it hands the planner, and ``privrec bench population --quick`` end to end (the full run's
figures are committed under reports/bench/population/)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from privrec.benchmarks.population import (
    curves_from_result,
    delta_for,
    population_config,
    run_population_bench,
    train_population,
)
from privrec.sdk.data import LeaveOneOutSplit, PopulationModel
from privrec.sdk.privacy.plan import plan


def _event(z: float, q: float, t: int) -> dp_event.DpEvent:
    return dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), t)


def _small_model() -> PopulationModel:
    rng = np.random.default_rng(0)
    return PopulationModel(
        item_embedding=rng.normal(size=(90, 5)).astype(np.float32), item_bias=np.zeros(90, np.float32),
        user_vectors=rng.normal(size=(40, 5)).astype(np.float32), history_lengths=rng.integers(3, 30, 40),
        kernel=0.2 * np.eye(5), temperature=1.0, source="test",
    )


def test_population_ledger_equals_an_independent_dp_accounting_recomputation() -> None:
    n, eps = 3000, 2.0
    cfg = population_config(eps, n_users=n, cohort=60, rounds=7)
    assert cfg.delta == delta_for(n) == pytest.approx(n**-1.1) and cfg.delta < 1 / n
    features = np.random.default_rng(1).random((90, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train_population(_small_model(), n_users=n, config=cfg, features=features)
    ledger, z, q = run["ledger"], run["noise_multiplier"], cfg.sample_rate
    assert q == pytest.approx(60 / n) and len(run["cohorts"]) == ledger.rounds == 7
    rdp = rdp_privacy_accountant.RdpAccountant()
    rdp.compose(_event(z, q, 7))
    pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    pld.compose(_event(z, q, 7))
    assert ledger.epsilon_rdp == pytest.approx(rdp.get_epsilon(cfg.delta), rel=1e-9)
    assert ledger.epsilon_pld == pytest.approx(pld.get_epsilon(cfg.delta), rel=1e-3)
    assert ledger.epsilon_rdp <= eps
    off = train_population(_small_model(), n_users=n, config=population_config(math.inf, n_users=n, cohort=60, rounds=3),
                           features=features)
    assert off["noise_multiplier"] == 0.0 and math.isinf(off["ledger"].epsilon_rdp)


def test_quick_bench_writes_the_report_and_curves_the_planner_reads(tmp_path: Path,
                                                                    ml100k_split: LeaveOneOutSplit) -> None:
    summary = run_population_bench(quick=True, out=tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"report.md", "result.json", "ratio_vs_epsilon.png", "cost_vs_n.png"} <= files
    result = json.loads((tmp_path / "result.json").read_text())
    assert summary["quick"] is True and result["quick"] is True
    synthetic = [r for r in result["rows"] if r["population"] == "synthetic"]
    assert {r["n_users"] for r in synthetic} == {2000, 20_000}
    for r in synthetic:
        assert r["delta"] == pytest.approx(r["n_users"] ** -1.1)
        if r["epsilon_target"] is not None:
            assert r["epsilon_rdp"] <= r["epsilon_target"]
            assert r["secagg"]["sum_error_bound"] < 1e-3 * r["noise_multiplier"] * r["clip_norm"]
        assert 0.0 <= r["full_hr"] <= 1.0 and r["peak_rss_mb"] > 0
    off = [r for r in synthetic if r["epsilon_target"] is None]
    assert all(r["ratio_to_off"] == pytest.approx(1.0) for r in off)
    report = (tmp_path / "report.md").read_text()
    assert "semi-synthetic" in report and "| 20,000 | 1 |" in report
    curves = curves_from_result({**result, "rows": [dict(r, epsilon_target=math.inf if r["epsilon_target"] is None
                                                         else r["epsilon_target"]) for r in result["rows"]]})
    p = plan(users=50_000, epsilon=1.0, curves=curves)
    assert p.epsilon_rdp <= 1.0 and 0.0 <= p.expected_ratio <= 1.0
