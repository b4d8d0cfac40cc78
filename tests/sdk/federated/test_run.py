"""``privrec train --mode federated`` on MovieLens-100K: the RUN_DIR it writes (kept to a few rounds)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from privrec.sdk.data import LeaveOneOutSplit, heldout_users
from privrec.sdk.privacy import PrivacyLedger, PrivacyWarning, compute_epsilon_rdp
from privrec.sdk.run import evaluate_run

pytestmark = pytest.mark.data


def test_federated_run_dir(tmp_path: Path, ml100k_split: LeaveOneOutSplit) -> None:
    from privrec.sdk.federated.run import train_federated_run

    out = tmp_path / "run"
    overrides = {"rounds": 3, "sample_rate": 0.05, "noise_multiplier": 1.2, "target_epsilon": None,
                 "eval_every": 3, "dim": 8, "item_features": "genre",
                 "finetune": {"steps": 5, "lr": 0.05, "l2": 0.5, "calls": 2}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        train_federated_run(out, overrides=overrides, seed=1, progress=False)
    names = {p.name for p in out.iterdir()}
    assert {"weights.safetensors", "config.json", "items.json", "history.json", "metrics.json",
            "privacy_ledger.json"} <= names
    tensors = load_file(str(out / "weights.safetensors"))
    assert set(tensors) == {"item_embedding", "item_bias"}  # no user vectors leave the devices
    assert tensors["item_embedding"].shape == (1682, 8)
    config = json.loads((out / "config.json").read_text())
    assert config["mode"] == "federated" and config["dataset"] == "ml-100k"
    assert config["train"]["recency_half_life"] == 10.0
    _, held = heldout_users(943, fraction=0.1, seed=0)
    assert config["heldout_users"] == held.tolist()
    assert len(json.loads((out / "history.json").read_text())) == 3
    ledger = PrivacyLedger.load(out)
    assert ledger.rounds == 3
    assert ledger.epsilon == pytest.approx(
        compute_epsilon_rdp(noise_multiplier=1.2, sample_rate=0.05, rounds=3, delta=1e-4), rel=1e-9)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(evaluate_run(out, split=ml100k_split) | {"privacy": metrics["privacy"]}))
    assert metrics["users"] == int(np.sum(ml100k_split.test_item[held] >= 0))
