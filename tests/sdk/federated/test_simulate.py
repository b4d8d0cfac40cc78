"""The vectorised DP-FedAvg simulation on synthetic data: learning, accounting, budget, modes."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from privrec.sdk.data import LeaveOneOutSplit, heldout_users, leave_one_out, synthetic_interactions
from privrec.sdk.errors import PrivacyBudgetExceededError
from privrec.sdk.evaluate import EvalProtocol
from privrec.sdk.federated import FederatedConfig, simulate_federated
from privrec.sdk.privacy import PrivacyWarning, compute_epsilon_rdp, effective_noise_multiplier
from privrec.sdk.reconstruct import FinetuneConfig
from privrec.sdk.run import evaluate_reconstructed

FT = FinetuneConfig(steps=10, lr=0.1, l2=0.1, calls=5)
BASE = dict(
    sample_rate=0.3, clip_norm=1.0, local_lr=10.0, server_optimizer="fedavg", server_lr=1.0,
    dim=8, init_std=0.1, recency_half_life=None, finetune=FT, eval_every=10, delta=1e-3,
)


def _run(split: LeaveOneOutSplit, seed: int = 0, **changes: object):  # type: ignore[no-untyped-def]
    cfg = FederatedConfig(**(BASE | changes))  # type: ignore[arg-type]
    train, held = heldout_users(split.num_users, fraction=0.1, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        return simulate_federated(split, cfg, train_users=train, heldout_users=held, seed=seed, progress=False)


def _rdp(z: float, q: float, t: int, delta: float) -> float:
    acc = rdp_privacy_accountant.RdpAccountant()
    acc.compose(dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), t))
    return float(acc.get_epsilon(delta))


def _pld(z: float, q: float, t: int, delta: float) -> float:
    acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    acc.compose(dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), t))
    return float(acc.get_epsilon(delta))


@pytest.fixture(scope="module")
def wide_split() -> LeaveOneOutSplit:
    """800 users × 200 items (rank 3): 80 held-out users, so HR differences of 0.1 are well above noise."""
    return leave_one_out(synthetic_interactions(800, 200, rank=3, per_user=(10, 25), seed=3))


def test_training_improves_heldout_hr_over_the_untrained_model(wide_split: LeaveOneOutSplit) -> None:
    res = _run(wide_split, rounds=30, dp_mode="off", target_epsilon=None, sample_rate=0.2)
    untrained = res.layout.item_model(res.layout.init(init_std=0.1, seed=0))
    proto = EvalProtocol(target="val")
    before = evaluate_reconstructed(untrained, wide_split, FT, recency_half_life=None,
                                    users=res.heldout_users, protocol=proto)
    after = evaluate_reconstructed(res.items, wide_split, FT, recency_half_life=None,
                                   users=res.heldout_users, protocol=proto)
    assert after.full_hr > before.full_hr + 0.1
    assert after.sampled_hr > before.sampled_hr + 0.1
    assert res.history[-1]["val_full_hr@10"] == pytest.approx(after.full_hr)
    assert res.ledger.mode == "off"
    assert math.isinf(res.ledger.epsilon)
    assert any("NO differential" in w or "no differential" in w.lower() for w in res.ledger.warnings)


def test_mode_off_warns(synthetic_split: LeaveOneOutSplit) -> None:
    cfg = FederatedConfig(**(BASE | {"rounds": 1, "dp_mode": "off", "target_epsilon": None}))  # type: ignore[arg-type]
    train, held = heldout_users(synthetic_split.num_users, seed=0)
    with pytest.warns(PrivacyWarning, match="NO differential privacy"):
        simulate_federated(synthetic_split, cfg, train_users=train, heldout_users=held, progress=False)


def test_ledger_epsilon_equals_an_independent_dp_accounting_recomputation(synthetic_split: LeaveOneOutSplit) -> None:
    res = _run(synthetic_split, rounds=12, noise_multiplier=1.3, target_epsilon=None)
    assert res.rounds_run == 12
    assert res.ledger.rounds == 12
    assert [e.sample_rate for e in res.ledger.entries] == [0.3]
    assert res.ledger.epsilon_rdp == pytest.approx(_rdp(1.3, 0.3, 12, 1e-3), rel=1e-9)
    assert res.ledger.epsilon_pld == pytest.approx(_pld(1.3, 0.3, 12, 1e-3), rel=1e-6)
    assert res.history[-1]["epsilon"] == pytest.approx(res.ledger.epsilon_rdp, rel=1e-9)
    assert res.ledger.secure_noise is False
    assert any("insecure" in w for w in res.ledger.warnings)


def test_budget_stops_training_before_it_would_be_exceeded(synthetic_split: LeaveOneOutSplit,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    z, q, budget = 2.0, 0.3, 2.0
    res = _run(synthetic_split, rounds=200, noise_multiplier=z, target_epsilon=budget)
    t = res.rounds_run
    assert 0 < t < 200
    assert compute_epsilon_rdp(noise_multiplier=z, sample_rate=q, rounds=t, delta=1e-3) <= budget
    assert compute_epsilon_rdp(noise_multiplier=z, sample_rate=q, rounds=t + 1, delta=1e-3) > budget
    assert res.ledger.epsilon_rdp <= budget
    assert res.stop_reason is not None and f"round {t + 1}" in res.stop_reason
    assert "stopping federated training" in capsys.readouterr().err
    with pytest.raises(PrivacyBudgetExceededError, match=re.escape(f"round {t + 1} would take ε past 2.0")):
        _run(synthetic_split, rounds=200, noise_multiplier=z, target_epsilon=budget, on_budget_exceeded="raise")


def test_target_epsilon_runs_every_planned_round_within_budget(synthetic_split: LeaveOneOutSplit) -> None:
    res = _run(synthetic_split, rounds=15, target_epsilon=3.0)
    assert res.rounds_run == 15
    assert res.stop_reason is None
    assert 2.9 < res.ledger.epsilon_rdp <= 3.0


def test_distributed_mode_and_adaptive_clipping_are_accounted(synthetic_split: LeaveOneOutSplit) -> None:
    res = _run(synthetic_split, rounds=10, dp_mode="distributed", noise_multiplier=1.5, target_epsilon=None,
               adaptive_clipping=True, count_noise_std=4.0)
    assert res.ledger.mode == "distributed"
    (entry,) = res.ledger.entries
    assert entry.adaptive_clipping is not None
    assert entry.adaptive_clipping.initial_clip_norm == 1.0
    clips = [h["clip_norm"] for h in res.history]
    assert len(set(clips)) > 1  # C moved towards the median norm
    # Z = 1.5 is the multiplier of the whole (update, count) release; the update carries z_Δ > Z so that
    # the two releases together compose to Z (Andrew et al. 2021, Thm 1).
    z_update = res.noise_multiplier
    assert z_update > 1.5
    assert effective_noise_multiplier(update_noise_multiplier=z_update, count_noise_std=4.0) == pytest.approx(1.5)
    assert res.ledger.epsilon_rdp == pytest.approx(_rdp(1.5, 0.3, 10, 1e-3), rel=1e-9)
    assert any("noise shares" in w for w in res.ledger.warnings)


def test_same_seed_same_result(synthetic_split: LeaveOneOutSplit) -> None:
    a = _run(synthetic_split, rounds=3, noise_multiplier=1.0, target_epsilon=None)
    b = _run(synthetic_split, rounds=3, noise_multiplier=1.0, target_epsilon=None)
    np.testing.assert_array_equal(a.params, b.params)
