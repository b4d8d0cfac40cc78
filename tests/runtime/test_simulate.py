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

from privrec.runtime.device import Device, RoundReport
from privrec.sdk.data import LeaveOneOutSplit, heldout_users, leave_one_out, synthetic_interactions
from privrec.sdk.federated.config import FederatedConfig
from privrec.sdk.federated.params import ParamLayout
from privrec.sdk.federated.simulate import simulate_federated
from privrec.sdk.privacy import DPConfig, DPRoundEvent, PrivacyAccountant, PrivacyWarning
from privrec.sdk.reconstruct import FinetuneConfig
from privrec.sdk.run import evaluate_reconstructed
from privrec.server_stub import ServerConfig, create_app
from privrec.server_stub.global_model import params_from_bytes
from privrec.testing.devices import device_histories, simulate_devices
from privrec.testing.servers import serve_in_thread


def test_devices_with_dropout_at_every_stage(tmp_path: Path) -> None:
    split = leave_one_out(synthetic_interactions(12, 20, rank=2, seed=1, per_user=(3, 8)))
    cfg = small_config(
        dp=DPConfig(mode="central", noise_multiplier=1.0, clip_norm=0.5),
        threshold_fraction=0.15, stage_timeout_seconds=2.0, enroll_timeout_seconds=30.0,
    )
    app = create_app(tmp_path / "server.db", cfg, admin_token=ADMIN, tick_seconds=0.05)
    with serve_in_thread(app) as url:
        out = simulate_devices(url, 12, 0.3, 2, split=split, workdir=tmp_path / "dev", seed=3, progress=False,
                               admin_token=ADMIN, public_key=app.state.public_key)
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


def _http_params(tmp_path: Path, split: LeaveOneOutSplit, fc: FederatedConfig, devices: list[int],
                 features: np.ndarray | None) -> tuple[np.ndarray, dict[str, object], ParamLayout]:
    """Run ``fc`` over HTTP with one real device per user; returns the server's flat parameters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        config = ServerConfig.from_federated(
            fc, num_items=split.num_items, num_devices=len(devices), seed=0, threshold_fraction=0.5, enroll_close_fraction=1.0,
            stage_timeout_seconds=120.0, enroll_timeout_seconds=120.0,
        )
    app = create_app(tmp_path / "server.db", config, admin_token=ADMIN, tick_seconds=0.05, features=features)
    with serve_in_thread(app) as url:
        out = simulate_devices(url, len(devices), 0.0, fc.rounds, split=split, users=np.asarray(devices),
                               workdir=tmp_path / "dev", progress=False, admin_token=ADMIN,
                               public_key=app.state.public_key)
        manager = app.state.manager
        params = params_from_bytes(manager.store.latest_model().weights, manager.layout)
    return params, out, manager.layout


PARITY = {
    "plain": {},
    "tied+bias_scale+adaptive": {"item_features": "genre", "bias_scale": 3.0, "adaptive_clipping": True,
                                 "count_noise_std": 2.0, "free_embedding": True},
}


@pytest.mark.parametrize("variant", list(PARITY))
def test_http_run_matches_in_process_simulation(tmp_path: Path, variant: str) -> None:
    """The same config trains the same parameters in process and over HTTP (real devices, secure aggregation,
    central DP with seeded noise), for the plain layout and for a table tied to public features with a bias
    scale and adaptive clipping."""
    split = leave_one_out(synthetic_interactions(30, 200, rank=3, seed=2))
    train, held = heldout_users(split.num_users, fraction=0.1, seed=0)
    fc = FederatedConfig(
        rounds=3, sample_rate=1.0, clip_norm=0.5, local_lr=1.0, server_optimizer="fedavg", server_lr=1.0,
        server_momentum=0.0, dp_mode="central", noise_multiplier=0.3, target_epsilon=None, secure_noise=False,
        dim=6, eval_every=100, recency_half_life=10.0, **PARITY[variant],  # type: ignore[arg-type]
    )
    features = np.random.default_rng(5).random((split.num_items, 4)).astype(np.float32) if fc.item_features != "none" else None
    devices = [int(u) for u, ids in zip(train, device_histories(split, train), strict=True) if ids.size]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        sim = simulate_federated(split, fc, train_users=np.asarray(devices), heldout_users=held, seed=0,
                                 features=features, progress=False)
    http, out, layout = _http_params(tmp_path, split, fc, devices, features)
    assert layout.size == sim.layout.size
    # Same seed, same cohort (q = 1), same seeded noise: the parameters agree up to fixed-point rounding.
    np.testing.assert_allclose(http, sim.params, atol=1e-4)
    assert np.abs(sim.params - sim.layout.init(init_std=fc.init_std, seed=0)).max() > 1e-2  # training moved them
    model = layout.item_model(http)
    hr_http = evaluate_reconstructed(model, split, fc.finetune, recency_half_life=fc.recency_half_life, users=held).full_hr
    hr_sim = evaluate_reconstructed(sim.items, split, fc.finetune, recency_half_life=fc.recency_half_life, users=held).full_hr
    assert hr_http == pytest.approx(hr_sim, abs=1e-9)
    assert out["epsilon"] == pytest.approx(sim.ledger.epsilon, rel=1e-9)
    assert out["ledger"]["rounds"] == sim.rounds_run == fc.rounds


def test_facade_simulation_and_http_train_the_same_parameters(tmp_path: Path) -> None:
    """The founding-document facade, the vectorised simulation and HTTP rounds share one device path and one
    end-of-round step: the same config (every device in every round, central DP with seeded noise, secure
    aggregation) gives the same parameters after 3 rounds."""
    from privrec import FederatedRecommendationSystem

    split = leave_one_out(synthetic_interactions(24, 200, rank=3, seed=4))
    train = np.arange(split.num_users)
    histories = device_histories(split, train)
    devices = [int(u) for u, ids in zip(train, histories, strict=True) if ids.size]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        fed = FederatedRecommendationSystem(
            num_items=split.num_items, embedding_dim=5, epsilon=20.0, num_clients=len(devices), max_rounds=3,
            clip_norm=0.5, local_lr=1.0, server_lr=1.0, dp_mode="central", secure_noise=False, seed=0,
            finetune=FinetuneConfig(steps=10, lr=0.05, l2=0.5, calls=4),
        )
    for u in devices:
        client = fed.register_client(f"user-{u}")
        for item in histories[u]:
            client.add_interaction(int(item), 1.0)
    fc = FederatedConfig(
        rounds=3, sample_rate=1.0, clip_norm=0.5, local_lr=1.0, server_optimizer="fedavg", server_lr=1.0,
        server_momentum=0.0, dp_mode="central", noise_multiplier=fed.noise_multiplier, target_epsilon=None,
        secure_noise=False, dim=5, eval_every=100, recency_half_life=None, finetune=fed.finetune, delta=fed.delta,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        for _ in range(3):
            fed.federated_round([f"user-{u}" for u in devices])
        sim = simulate_federated(split, fc, train_users=np.asarray(devices), heldout_users=np.asarray(devices[:4]),
                                 seed=0, progress=False)
    http, _, _ = _http_params(tmp_path, split, fc, devices, None)
    assert fed.noise_multiplier > 0
    np.testing.assert_allclose(fed.item_model.item_embedding, sim.items.item_embedding, atol=1e-4)
    np.testing.assert_allclose(fed.item_model.item_bias, sim.items.item_bias, atol=1e-4)
    np.testing.assert_allclose(http, sim.params, atol=1e-4)
    assert fed.privacy_spent().epsilon == pytest.approx(sim.ledger.epsilon, rel=1e-9)


def test_simulate_validates_arguments() -> None:
    with pytest.raises(ValueError, match=re.escape("`dropout` must be in [0, 1). Found 1.0.")):
        simulate_devices("http://127.0.0.1:1", 2, 1.0)
    with pytest.raises(ValueError, match=re.escape("`devices` must be an int >= 1. Found 0.")):
        simulate_devices("http://127.0.0.1:1", 0)


def test_one_malicious_device_cannot_corrupt_a_round_over_http(tmp_path: Path) -> None:
    """20 real devices over HTTP, 30% dropout at every stage, one of them revealing wrong share openings in
    Round 4: the round completes with the exact sum of the survivors' encoded updates and names the
    attacker, and no device raises (every honest one completes or is a planned dropout)."""
    split = leave_one_out(synthetic_interactions(20, 20, rank=2, seed=1, per_user=(3, 8)))
    cfg = small_config(threshold_fraction=0.1, stage_timeout_seconds=8.0, enroll_timeout_seconds=60.0)  # t = 3
    app = create_app(tmp_path / "server.db", cfg, admin_token=ADMIN, tick_seconds=0.05)
    captured: dict[str, object] = {}
    app.state.manager.aggregate_observer = lambda rid, total, survivors: captured.update(total=total, survivors=survivors)
    updates: dict[int, np.ndarray] = {}

    def keep_updates(fleet: list[Device], reports: list[RoundReport]) -> None:
        updates.update({d.device_id: d.last_encoded_update.copy() for d in fleet if d.last_encoded_update is not None})

    with serve_in_thread(app) as url:
        out = simulate_devices(url, 20, 0.3, 1, split=split, workdir=tmp_path / "dev", seed=3, progress=False,
                               admin_token=ADMIN, malicious={4: "bad_openings"}, on_round=keep_updates)
    (r,) = out["rounds"]
    (attacker,) = r["malicious"]
    assert attacker["attack"] == "bad_openings" and attacker["outcome"] == "completed"
    assert set(r["outcomes"]) <= {"completed", "dropped", "excluded"}  # nobody raised, nobody aborted on its own
    assert r["outcomes"].get("dropped", 0) == sum(r["dropped_at"].values()) > 0
    assert r["phase"] == "completed"
    assert [f["client_id"] for f in r["outcome"]["flagged"]] == [attacker["device_id"]]
    survivors = captured["survivors"]
    assert attacker["device_id"] in survivors and r["survivors"]["u4"] < r["survivors"]["u3"] == len(survivors)
    expected = np.zeros(80, np.uint32)
    for u in survivors:  # type: ignore[attr-defined]
        np.add(expected, updates[u], out=expected)
    np.testing.assert_array_equal(captured["total"], expected)


@pytest.mark.parametrize("attack", ["same_keys", "zero_key"])
def test_a_device_advertising_bad_keys_is_refused_and_the_round_completes(tmp_path: Path, attack: str) -> None:
    split = leave_one_out(synthetic_interactions(6, 20, rank=2, seed=2, per_user=(3, 8)))
    cfg = small_config(stage_timeout_seconds=3.0, enroll_timeout_seconds=60.0)
    app = create_app(tmp_path / "server.db", cfg, admin_token=ADMIN, tick_seconds=0.05)
    with serve_in_thread(app) as url:
        out = simulate_devices(url, 6, 0.0, 1, split=split, workdir=tmp_path / "dev", progress=False,
                               admin_token=ADMIN, malicious={0: attack})
    (r,) = out["rounds"]
    (attacker,) = r["malicious"]
    assert attacker["outcome"] == "refused"
    assert attacker["detail"].startswith(f"HTTP 422: AdvertiseKeys from client {attacker['device_id']}: its masking key ")
    assert r["outcomes"] == {"refused": 1, "completed": 5}
    assert r["phase"] == "completed" and r["survivors"]["u1"] == r["survivors"]["u3"] == 5


def test_simulate_validates_malicious_devices() -> None:
    with pytest.raises(ValueError, match=re.escape("`malicious` keys must be device indices in [0, 2). Found 2.")):
        simulate_devices("http://127.0.0.1:1", 2, malicious={2: "bad_openings"})
    with pytest.raises(ValueError, match=re.escape("`malicious[0]` must be one of ['bad_dealing', 'bad_openings', 'same_keys'")):
        simulate_devices("http://127.0.0.1:1", 2, malicious={0: "nope"})


def test_honest_devices_leave_a_round_cleanly_naming_a_dealer_that_sealed_bad_shares(tmp_path: Path) -> None:
    """A dealer's corrupted sealed shares cannot be checked by the server (it cannot read them); each honest
    holder refuses them in Round 2 and leaves the round with outcome "aborted" and the dealer named, without
    raising. With every holder gone the round aborts for lack of survivors — a denial of service, not a
    wrong sum (the limit documented in privrec.sdk.secagg.sealed)."""
    split = leave_one_out(synthetic_interactions(5, 20, rank=2, seed=2, per_user=(3, 8)))
    cfg = small_config(stage_timeout_seconds=3.0, enroll_timeout_seconds=60.0)
    app = create_app(tmp_path / "server.db", cfg, admin_token=ADMIN, tick_seconds=0.05)
    reports: list[RoundReport] = []
    with serve_in_thread(app) as url:
        out = simulate_devices(url, 5, 0.0, 1, split=split, workdir=tmp_path / "dev", progress=False, admin_token=ADMIN,
                               malicious={0: "bad_dealing"}, on_round=lambda fleet, reps: reports.extend(reps))
    (r,) = out["rounds"]
    dealer = r["malicious"][0]["device_id"]
    assert r["phase"] == "aborted" and "fewer than the threshold" in r["outcome"]["reason"]
    honest = reports[1:]
    assert [rep.outcome for rep in honest] == ["aborted"] * 4
    for rep in honest:
        assert rep.stage == "masked_input_collection"
        assert rep.detail is not None
        assert rep.detail.startswith(f"SecAggIntegrityError: The sealed seed share from client {dealer} ")
