"""``privrec device simulate``: devices over HTTP with dropouts, and parity with the in-process simulation."""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server_stub"))
from srvkit import ADMIN, small_config

from privrec.runtime.simulate import device_histories, simulate_devices
from privrec.sdk.data import heldout_users, leave_one_out, synthetic_interactions
from privrec.sdk.federated.config import FederatedConfig
from privrec.sdk.federated.simulate import simulate_federated
from privrec.sdk.privacy import DPConfig, DPRoundEvent, PrivacyAccountant, PrivacyWarning
from privrec.sdk.run import evaluate_reconstructed
from privrec.server_stub import ServerConfig, create_app
from privrec.server_stub.global_model import flatten, model_from_bytes
from privrec.server_stub.serve import serve_in_thread


def test_devices_with_dropout_at_every_stage(tmp_path: Path) -> None:
    split = leave_one_out(synthetic_interactions(12, 20, rank=2, seed=1, per_user=(3, 8)))
    cfg = small_config(
        dp=DPConfig(mode="central", noise_multiplier=1.0, clip_norm=0.5),
        threshold_fraction=0.15, stage_timeout_seconds=2.0, enroll_timeout_seconds=30.0,
    )
    app = create_app(tmp_path / "server.db", cfg, admin_token=ADMIN, tick_seconds=0.05)
    with serve_in_thread(app) as url:
        out = simulate_devices(url, 12, 0.3, 2, split=split, workdir=tmp_path / "dev", seed=3, progress=False)
    assert [r["phase"] for r in out["rounds"]] == ["completed", "completed"]
    for r in out["rounds"]:
        assert sum(r["outcomes"].values()) == 12
        assert r["outcomes"].get("dropped", 0) == sum(r["dropped_at"].values()) > 0
        s = r["survivors"]
        assert 12 >= s["u1"] >= s["u2"] >= s["u3"] >= s["u4"] >= 2
        assert r["outcomes"]["completed"] == s["u4"]  # everyone who answered Round 4 saw the round complete
        assert r["bytes_received_median"] > 0 and r["bytes_sent_median"] > 0
    assert out["model_version"] == 2
    acc = PrivacyAccountant(delta=cfg.dp.delta)
    acc.compose(DPRoundEvent(noise_multiplier=1.0, sample_rate=1.0, clip_norm=0.5, rounds=2))
    assert out["epsilon"] == pytest.approx(acc.epsilon_rdp(), rel=1e-12)


def test_http_run_matches_in_process_simulation(tmp_path: Path) -> None:
    split = leave_one_out(synthetic_interactions(30, 200, rank=3, seed=2))
    train, held = heldout_users(split.num_users, fraction=0.1, seed=0)
    fc = FederatedConfig(
        rounds=3, sample_rate=1.0, clip_norm=0.5, local_lr=1.0, server_optimizer="fedavg", server_lr=1.0,
        server_momentum=0.0, dp_mode="central", noise_multiplier=0.3, target_epsilon=None, secure_noise=False,
        dim=6, eval_every=100, recency_half_life=10.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        sim = simulate_federated(split, fc, train_users=train, heldout_users=held, seed=0, progress=False)
        devices = [u for u, (ids, _) in zip(train, device_histories(split, train), strict=True) if ids.size]
        config = ServerConfig.from_federated(
            fc, num_items=split.num_items, num_devices=len(devices), seed=0, threshold_fraction=0.5,
            stage_timeout_seconds=120.0, enroll_timeout_seconds=120.0,
        )
    app = create_app(tmp_path / "server.db", config, admin_token=ADMIN, tick_seconds=0.05)
    with serve_in_thread(app) as url:
        out = simulate_devices(
            url, len(devices), 0.0, fc.rounds, split=split, users=np.asarray(devices), workdir=tmp_path / "dev",
            recency_half_life=fc.recency_half_life, progress=False,
        )
        _, weights = app.state.manager.model_bytes("weights")
    model = model_from_bytes(weights)
    # Same seed, same cohort (q = 1), same seeded noise: the parameters agree up to fixed-point rounding.
    np.testing.assert_allclose(flatten(model), sim.params, atol=1e-4)
    hr_http = evaluate_reconstructed(model, split, fc.finetune, recency_half_life=fc.recency_half_life, users=held).full_hr
    hr_sim = evaluate_reconstructed(sim.items, split, fc.finetune, recency_half_life=fc.recency_half_life, users=held).full_hr
    assert hr_http == pytest.approx(hr_sim, abs=1e-9)
    assert out["epsilon"] == pytest.approx(sim.ledger.epsilon, rel=1e-9)
    assert out["ledger"]["rounds"] == sim.rounds_run == fc.rounds


def test_simulate_validates_arguments() -> None:
    with pytest.raises(ValueError, match=re.escape("`dropout` must be in [0, 1). Found 1.0.")):
        simulate_devices("http://127.0.0.1:1", 2, 1.0)
    with pytest.raises(ValueError, match=re.escape("`devices` must be an int >= 1. Found 0.")):
        simulate_devices("http://127.0.0.1:1", 0)
