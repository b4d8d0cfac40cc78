"""``flwr run`` on Flower's simulation runtime trains what privrec's in-process simulation trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flowerkit import in_process_reference, superlink
from safetensors.numpy import load_file

from privrec.sdk.data import heldout_users, leave_one_out, synthetic_interactions
from privrec.sdk.federated.config import FederatedConfig

pytestmark = pytest.mark.xdist_group("flower")

#: 60 synthetic users, 10% held out: 54 devices, one virtual SuperNode each.
USERS, ITEMS = 60, 200


def test_flower_simulation_with_secagg_matches_in_process_simulation(tmp_path: Path) -> None:
    """54 virtual SuperNodes, 2 rounds, SecAgg+, central DP with seeded noise, every device in every round
    (q = 1): the Flower run's global parameters equal simulate_federated's within 1e-4, and so does ε."""
    from privrec.flower.settings import run_config_overrides

    fc = FederatedConfig(
        rounds=2, sample_rate=1.0, clip_norm=0.5, local_lr=1.0, server_lr=1.0, server_momentum=0.0, dp_mode="central",
        noise_multiplier=0.3, target_epsilon=None, secure_noise=False, dim=6, eval_every=100, recency_half_life=10.0,
    )
    sim = in_process_reference({"federated": fc.to_dict(), "users": USERS, "items": ITEMS, "rank": 3, "data_seed": 2,
                                "seed": 0}, tmp_path / "reference")
    split = leave_one_out(synthetic_interactions(USERS, ITEMS, rank=3, seed=2))
    train, held = heldout_users(split.num_users, fraction=fc.heldout_fraction, seed=fc.heldout_seed)
    np.testing.assert_array_equal(sim["train_users"], train)
    devices = int(train.size)
    assert devices >= 50
    out = tmp_path / "run"
    overrides = run_config_overrides(fc, seed=0, out_dir=str(out), bundle_formats="", data_dataset="synthetic",
                                     data_synthetic_users=USERS, data_synthetic_items=ITEMS)
    with superlink(tmp_path / "flwr", simulation=True) as flower:
        done = flower.run_app(overrides, federation_config=(
            f"num-supernodes={devices} init-args-num-cpus=2 client-resources-num-cpus=1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Secure aggregation completed." in done.stdout + done.stderr
    weights = load_file(str(out / "weights.safetensors"))
    np.testing.assert_allclose(weights["item_embedding"], sim["item_embedding"], atol=1e-4)
    np.testing.assert_allclose(weights["item_bias"], sim["item_bias"], atol=1e-4)
    assert np.abs(sim["item_embedding"] - sim["initial_item_embedding"]).max() > 1e-2  # training moved them
    ledger = json.loads((out / "privacy_ledger.json").read_text())
    assert ledger["mode"] == "central"
    assert ledger["epsilon"] == pytest.approx(float(sim["epsilon"]), rel=1e-9)
    history = json.loads((out / "history.json").read_text())
    assert [(h["cohort"], h["survivors"], h["applied"]) for h in history] == [(devices, devices, True)] * 2
    config = json.loads((out / "config.json").read_text())
    assert config["mode"] == "federated" and config["train_devices"] == devices
    assert config["heldout_users"] == [int(u) for u in held]
