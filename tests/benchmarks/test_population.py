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
    OFF_GRID,
    Shape,
    _intermediate_ns,
    assemble_cells,
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


def test_population_config_layouts_and_shapes_refuse_unknown_names() -> None:
    tied = population_config(1.0, n_users=10_000, cohort=150, rounds=80)
    assert (tied.item_features, tied.free_embedding, tied.dim, tied.clip_norm) == ("genre", False, 4, 0.5)
    both = population_config(1.0, n_users=10_000, cohort=400, rounds=100, layout="tied+free16")
    assert (both.item_features, both.free_embedding, both.dim) == ("genre", True, 16)
    free = population_config(math.inf, n_users=10_000, cohort=400, rounds=100, layout="free32-adam")
    assert (free.item_features, free.dim, free.server_optimizer, free.dp_mode) == ("none", 32, "fedadam", "off")
    assert free.sample_rate == pytest.approx(0.04)
    with pytest.raises(ValueError, match=r"`layout` must be one of .*Found 'free64'"):
        population_config(1.0, n_users=10_000, cohort=150, rounds=80, layout="free64")
    with pytest.raises(ValueError, match=r"`layout` must be one of"):
        Shape("free64", 150, 80)
    assert Shape("tied+free16", 400, 100).key == "tied_free16-c400-t100"


def test_intermediate_n_sit_where_epsilon_1_crosses_0_82() -> None:
    assert _intermediate_ns({943: 0.70, 10_000: 0.90, 100_000: 0.95}) == (2000, 3000, 5000)
    assert _intermediate_ns({943: 0.70, 10_000: 0.75, 100_000: 0.85}) == (20_000, 30_000, 50_000)
    assert all(n > 100_000 for n in _intermediate_ns({943: 0.5, 10_000: 0.6, 100_000: 0.7}))


def _cell(n: int, eps: float, shape: Shape, val: float, hits: list[int]) -> dict[str, object]:
    return {"n_users": n, "epsilon_target": eps, "layout": shape.layout, "expected_cohort": float(shape.cohort),
            "planned_rounds": shape.rounds, "rounds": shape.rounds, "sample_rate": shape.cohort / n, "clip_norm": 0.5,
            "delta": n**-1.1, "noise_multiplier": 0.0 if math.isinf(eps) else 1.0, "epsilon_rdp": eps,
            "epsilon_pld": eps, "val_full_hr": val, "full_hr": float(np.mean(hits)), "sampled_hr": 0.5,
            "full_hits": hits, "users": len(hits), "mean_cohort": float(shape.cohort), "round_seconds_mean": 1.0,
            "round_seconds_median": 1.0, "train_seconds": 1.0, "seconds": 2.0, "peak_rss_mb": 100.0, "secagg": None}


def test_the_reference_and_the_epsilon_1_shape_are_chosen_on_validation_never_on_test() -> None:
    a, b, c = Shape("tied4", 150, 80), Shape("free32-adam", 400, 100), Shape("tied+free16", 150, 200)
    n = 10_000
    hits = {k: [1] * k + [0] * (20 - k) for k in range(21)}
    runs = [
        _cell(n, math.inf, a, 0.10, hits[8]),   # best on test, second on validation
        _cell(n, math.inf, b, 0.12, hits[6]),   # best on validation: the reference
        _cell(n, 1.0, a, 0.09, hits[7]),        # best on test, second on validation
        _cell(n, 1.0, c, 0.11, hits[3]),        # best on validation: ε = 1's shape
        _cell(n, 4.0, c, 0.0, hits[5]),         # another ε at the chosen shape
        _cell(n, 4.0, a, 0.0, hits[9]),         # another ε at a shape not chosen: not reported
    ]
    central = {"full_hr": 0.5, "full_hits": hits[10]}
    result = assemble_cells(runs, central, [], None, quick=False, heldout=20, off_grid=OFF_GRID,
                            eps1_grid=(a, c), seconds=0.0)
    rows = {r["epsilon_target"]: r for r in result["rows"]}
    assert set(rows) == {1.0, 4.0, math.inf}
    assert rows[math.inf]["layout"] == "free32-adam" and rows[math.inf]["ratio_to_off"] == pytest.approx(1.0)
    assert rows[1.0]["layout"] == "tied+free16" and rows[1.0]["ratio_to_off"] == pytest.approx(3 / 6)
    assert rows[4.0]["layout"] == "tied+free16" and rows[4.0]["ratio_to_off"] == pytest.approx(5 / 6)
    assert "ratio_to_same_off" not in rows[1.0]  # DP off was not measured at that shape
    assert result["chosen"][str(n)]["off"]["layout"] == "free32-adam"
    assert result["goals"]["eps1_ratios"] == {str(n): pytest.approx(0.5)}
    lo, hi = rows[1.0]["ratio_to_off_ci"]
    assert lo <= 0.5 <= hi
