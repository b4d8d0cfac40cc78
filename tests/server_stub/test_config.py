"""ServerConfig: validation messages, thresholds, JSON round trip, mapping from the federated config."""

from __future__ import annotations

import warnings

import pytest

from privrec.sdk.federated.config import FederatedConfig
from privrec.sdk.privacy import DPConfig, PrivacyWarning
from privrec.server_stub import ServerConfig


def test_defaults_are_movielens_sized_and_private() -> None:
    cfg = ServerConfig()
    assert (cfg.num_items, cfg.dim, cfg.free_embedding, cfg.train_bias, cfg.item_features) == (1682, 32, True, True, "none")
    assert cfg.dp.mode == "central" and cfg.dp.noise_multiplier == 1.0
    assert cfg.recipe.to_manifest() == {"steps": 10, "lr": 0.05, "l2": 0.5, "calls": 10, "recency_half_life": 10.0}


@pytest.mark.parametrize(
    ("n", "fraction", "t"), [(2, 0.5, 2), (5, 0.5, 3), (10, 0.5, 6), (20, 0.15, 4), (100, 0.2, 21), (3, 0.0, 2)]
)
def test_threshold(n: int, fraction: float, t: int) -> None:
    assert ServerConfig(threshold_fraction=fraction).threshold(n) == t


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sample_rate": 1.5}, ValueError, "`sample_rate` must be in (0, 1]. Found 1.5."),
        ({"threshold_fraction": 1.0}, ValueError, "`threshold_fraction` must be in [0, 1). Found 1.0."),
        ({"min_participants": 1}, ValueError, "`min_participants` must be >= 2. Found 1."),
        ({"stage_timeout_seconds": 0}, ValueError, "`stage_timeout_seconds` must be finite and > 0. Found 0."),
        ({"dim": "8"}, TypeError, "`dim` must be an int. Found str."),
        ({"max_body_bytes": 10}, ValueError, "`max_body_bytes` must be >= 1024. Found 10."),
        ({"server_optimizer": "sgd"}, ValueError, "`server_optimizer` must be 'fedavg' or 'fedadam'. Found 'sgd'."),
    ],
)
def test_invalid_values_are_named(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as exc:
        ServerConfig(**kwargs)  # type: ignore[arg-type]
    assert str(exc.value) == message


def test_json_round_trip_and_unknown_keys() -> None:
    cfg = ServerConfig(dp=DPConfig(mode="distributed", noise_multiplier=0.7, clip_norm=0.2), neighbours=4)
    assert ServerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown server config keys \['colour'\]"):
        ServerConfig.from_dict({**cfg.to_dict(), "colour": "red"})


def test_from_federated_copies_the_run() -> None:
    fc = FederatedConfig(rounds=7, sample_rate=0.3, clip_norm=0.25, dp_mode="central", noise_multiplier=1.1,
                         target_epsilon=None, dim=16, server_optimizer="fedadam", server_lr=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        cfg = ServerConfig.from_federated(fc, num_items=300, num_devices=50, seed=3, stage_timeout_seconds=9.0)
    assert (cfg.num_items, cfg.dim, cfg.sample_rate, cfg.max_rounds, cfg.init_seed) == (300, 16, 0.3, 7, 3)
    assert (cfg.dp.clip_norm, cfg.dp.noise_multiplier, cfg.server_optimizer, cfg.server_lr) == (0.25, 1.1, "fedadam", 0.02)
    assert cfg.stage_timeout_seconds == 9.0 and cfg.finetune == fc.finetune


def test_from_federated_carries_what_the_simulation_trains() -> None:
    fc = FederatedConfig(rounds=5, sample_rate=0.5, clip_norm=0.5, dp_mode="central", noise_multiplier=0.8,
                         target_epsilon=None, bias_scale=3.0, adaptive_clipping=True, item_features="genre",
                         count_noise_std=2.0, free_embedding=False, dim=4, recency_half_life=7.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        cfg = ServerConfig.from_federated(fc, num_items=30, num_devices=40)
    assert (cfg.bias_scale, cfg.item_features, cfg.free_embedding, cfg.population) == (3.0, "genre", False, 40)
    assert cfg.dp.adaptive_clipping and cfg.dp.count_noise_std == 2.0
    assert cfg.recipe.recency_half_life == 7.0 and cfg.recipe.calls == fc.finetune.calls
    assert ServerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="`free_embedding=False` needs `item_features='genre'`"):
        ServerConfig(free_embedding=False)
