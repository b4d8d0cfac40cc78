"""Tests for privrec.sdk.privacy.config.DPConfig: modes, exactly-one rule, calibration, loud unsafe modes."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest

from privrec.sdk.privacy import (
    DPConfig,
    NonPrivateRoundEvent,
    PrivacyAccountant,
    PrivacyLedger,
    PrivacyWarning,
    SecureGaussianNoise,
    SeededGaussianNoise,
    compute_epsilon_rdp,
    effective_noise_multiplier,
)


def test_defaults_are_central_and_secure() -> None:
    cfg = DPConfig(noise_multiplier=1.0)
    assert cfg.mode == "central" and cfg.secure_noise and cfg.delta == 1e-5 and cfg.clip_norm == 1.0
    assert cfg.target_unclipped_quantile == 0.5 and cfg.clip_learning_rate == 0.2
    assert cfg.resolved_noise_multiplier == 1.0 == cfg.resolved_update_noise_multiplier
    assert isinstance(cfg.make_noise(), SecureGaussianNoise)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.mode = "off"  # type: ignore[misc]
    with pytest.raises(TypeError):
        DPConfig("central")  # type: ignore[call-arg]


def test_target_epsilon_is_calibrated_within_target() -> None:
    cfg = DPConfig(mode="distributed", target_epsilon=3.0, rounds=500, sample_rate=0.02, delta=1e-6)
    z = cfg.resolved_noise_multiplier
    assert compute_epsilon_rdp(noise_multiplier=z, sample_rate=0.02, rounds=500, delta=1e-6) <= 3.0
    assert compute_epsilon_rdp(noise_multiplier=z * 0.99, sample_rate=0.02, rounds=500, delta=1e-6) > 3.0


def test_adaptive_clipping_splits_the_budget() -> None:
    cfg = DPConfig(noise_multiplier=1.0, adaptive_clipping=True, count_noise_std=5.0)
    z_delta = cfg.resolved_update_noise_multiplier
    assert z_delta > 1.0
    assert effective_noise_multiplier(update_noise_multiplier=z_delta, count_noise_std=5.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="count_noise_std` must be > noise_multiplier / 2"):
        DPConfig(noise_multiplier=1.0, adaptive_clipping=True, count_noise_std=0.4)


def test_mode_off_warns_and_is_recorded() -> None:
    with pytest.warns(PrivacyWarning, match="NO differential privacy"):
        cfg = DPConfig(mode="off")
    assert cfg.resolved_noise_multiplier == 0.0
    acc = PrivacyAccountant(delta=cfg.delta).compose(NonPrivateRoundEvent(sample_rate=0.1, rounds=5))
    ledger = PrivacyLedger.from_accountant(acc, mode=cfg.mode, secure_noise=cfg.secure_noise)
    assert ledger.mode == "off" and math.isinf(ledger.epsilon) and ledger.rounds == 5
    assert any("mode 'off'" in w for w in ledger.warnings)
    assert ledger.to_manifest()["epsilon"] is None


def test_insecure_noise_warns_and_needs_a_seed() -> None:
    with pytest.warns(PrivacyWarning, match="secure_noise=False"):
        cfg = DPConfig(noise_multiplier=1.0, secure_noise=False, noise_seed=4)
    with pytest.warns(PrivacyWarning):
        assert isinstance(cfg.make_noise(), SeededGaussianNoise)


def test_zero_noise_warns() -> None:
    with pytest.warns(PrivacyWarning, match="not noised"):
        DPConfig(noise_multiplier=0.0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        (
            {"mode": "local", "noise_multiplier": 1.0},
            ValueError,
            "`mode` must be one of ['central', 'distributed', 'off']. Found 'local'.",
        ),
        (
            {},
            ValueError,
            "Exactly one of `noise_multiplier` and `target_epsilon` must be given when mode='central'. "
            "Found noise_multiplier=None, target_epsilon=None.",
        ),
        (
            {"noise_multiplier": 1.0, "target_epsilon": 1.0},
            ValueError,
            "Exactly one of `noise_multiplier` and `target_epsilon` must be given when mode='central'. "
            "Found noise_multiplier=1.0, target_epsilon=1.0.",
        ),
        (
            {"target_epsilon": 1.0, "sample_rate": 0.1},
            ValueError,
            "`rounds` must be given with `target_epsilon` (to calibrate Z). Found None.",
        ),
        (
            {"target_epsilon": 0.0, "rounds": 3, "sample_rate": 0.1},
            ValueError,
            "`target_epsilon` must be in (0, inf). Found 0.0.",
        ),
        ({"noise_multiplier": -1.0}, ValueError, "`noise_multiplier` must be in [0, inf). Found -1.0."),
        ({"noise_multiplier": 1.0, "clip_norm": 0}, ValueError, "`clip_norm` must be in (0, inf). Found 0."),
        ({"noise_multiplier": 1.0, "delta": 1.0}, ValueError, "`delta` must be in (0, 1). Found 1.0."),
        ({"noise_multiplier": 1.0, "sample_rate": 1.3}, ValueError, "`sample_rate` must be in (0, 1]. Found 1.3."),
        ({"noise_multiplier": 1.0, "rounds": 0}, ValueError, "`rounds` must be > 0. Found 0."),
        (
            {"noise_multiplier": 1.0, "adaptive_clipping": True},
            ValueError,
            "`count_noise_std` must be given when adaptive_clipping=True. Found None.",
        ),
        ({"noise_multiplier": 1.0, "adaptive_clipping": 1}, TypeError, "`adaptive_clipping` must be a bool. Found int."),
        ({"noise_multiplier": 1.0, "noise_seed": 3}, ValueError, "`noise_seed` must be None when secure_noise=True. Found 3."),
        (
            {"noise_multiplier": 1.0, "secure_noise": False},
            ValueError,
            "`noise_seed` must be an int when secure_noise=False. Found None.",
        ),
        (
            {"noise_multiplier": 1.0, "target_unclipped_quantile": 1.2},
            ValueError,
            "`target_unclipped_quantile` must be in [0, 1]. Found 1.2.",
        ),
        (
            {"noise_multiplier": 1.0, "clip_learning_rate": -0.1},
            ValueError,
            "`clip_learning_rate` must be in [0, inf). Found -0.1.",
        ),
    ],
)
def test_config_errors(kwargs: dict[str, object], exc: type[Exception], message: str) -> None:
    with pytest.raises(exc) as info:
        DPConfig(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_mode_off_refuses_noise_settings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        with pytest.raises(ValueError) as info:
            DPConfig(mode="off", noise_multiplier=1.0)
    assert str(info.value) == "`noise_multiplier` must be None when mode='off'. Found 1.0."


def test_dict_round_trip_and_unknown_keys() -> None:
    cfg = DPConfig(noise_multiplier=1.3, clip_norm=0.5, adaptive_clipping=True, count_noise_std=2.0)
    assert DPConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"^unknown DP config keys \['epsilon'\]\. Known: \["):
        DPConfig.from_dict({"epsilon": 1.0})
