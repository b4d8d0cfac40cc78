"""FederatedConfig validation: bad input is refused with the parameter and the value named."""

from __future__ import annotations

import warnings

import pytest

from privrec.sdk.federated import FederatedConfig
from privrec.sdk.privacy import PrivacyWarning
from privrec.sdk.reconstruct import FinetuneConfig


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"sample_rate": 0.0}, ValueError, r"`sample_rate` must be in (0, 1]. Found 0.0."),
        ({"sample_rate": 1.3}, ValueError, r"`sample_rate` must be in (0, 1]. Found 1.3."),
        ({"noise_multiplier": -1.0, "target_epsilon": None}, ValueError,
         r"`noise_multiplier` must be in [0, inf). Found -1.0."),
        ({"delta": 0.0}, ValueError, r"`delta` must be in (0, 1). Found 0.0."),
        ({"delta": 1.0}, ValueError, r"`delta` must be in (0, 1). Found 1.0."),
        ({"clip_norm": 0.0}, ValueError, r"`clip_norm` must be in (0, inf). Found 0.0."),
        ({"clip_norm": -2.0}, ValueError, r"`clip_norm` must be in (0, inf). Found -2.0."),
        ({"rounds": 0}, ValueError, r"`rounds` must be > 0. Found 0."),
        ({"rounds": 2.5}, TypeError, r"`rounds` must be an int. Found float."),
        ({"target_epsilon": -1.0}, ValueError, r"`target_epsilon` must be in (0, inf). Found -1.0."),
        ({"server_optimizer": "sgd"}, ValueError, r"`server_optimizer` must be 'fedavg' or 'fedadam'. Found 'sgd'."),
        ({"dp_mode": "local"}, ValueError, r"`dp_mode` must be 'central', 'distributed' or 'off'. Found 'local'."),
        ({"dp_mode": "off"}, ValueError, r"`noise_multiplier` and `target_epsilon` must be None when dp_mode='off'."),
        ({"target_epsilon": None}, ValueError, r"dp_mode='central' needs `noise_multiplier` or `target_epsilon`."),
        ({"server_momentum": 1.0}, ValueError, r"`server_momentum` must be in [0, 1). Found 1.0."),
        ({"free_embedding": False}, ValueError, r"`free_embedding=False` needs `item_features='genre'`"),
        ({"secure_noise": 1}, TypeError, r"`secure_noise` must be a bool. Found int."),
    ],
)
def test_bad_input_is_refused(changes: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        FederatedConfig(**changes)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_mode_off_warns_loudly_when_the_run_starts() -> None:
    cfg = FederatedConfig(dp_mode="off", target_epsilon=None)
    with pytest.warns(PrivacyWarning, match="NO differential"):
        dp = cfg.dp_config(expected_devices=10.0)
    assert dp.mode == "off"
    assert dp.resolved_noise_multiplier == 0.0


def test_round_trip_through_dict() -> None:
    cfg = FederatedConfig(rounds=7, sample_rate=0.3, finetune=FinetuneConfig(steps=3, lr=0.1, l2=0.2, calls=2))
    again = FederatedConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ValueError, match=r"unknown federated config keys \['bogus'\]"):
        FederatedConfig.from_dict({"bogus": 1})


def test_target_epsilon_calibrates_z_within_the_budget() -> None:
    from privrec.sdk.privacy import compute_epsilon_rdp

    cfg = FederatedConfig(rounds=50, sample_rate=0.2, target_epsilon=2.0, delta=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        z = cfg.dp_config(expected_devices=20.0).resolved_noise_multiplier
    eps = compute_epsilon_rdp(noise_multiplier=z, sample_rate=0.2, rounds=50, delta=1e-4)
    assert 1.99 < eps <= 2.0
