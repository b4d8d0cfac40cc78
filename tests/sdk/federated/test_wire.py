"""The device↔server round contract: RoundParams refuses unknown, missing and mistyped fields."""

from __future__ import annotations

import numpy as np
import pytest

from privrec.sdk.federated import ParamLayout, RoundParams, RoundSetup
from privrec.sdk.federated.wire import DeviceAction, WireError


def _params(**layout: object) -> RoundParams:
    setup = RoundSetup(dp_mode="distributed", noise_multiplier=1.0, clip_norm=0.5, sample_rate=0.5, denominator=8.0,
                       local_lr=2.0, bias_scale=3.0, min_survivors=4, count_noise_std=2.0)
    lay = ParamLayout(num_items=10, dim=3, **layout)  # type: ignore[arg-type]
    return RoundParams.from_setup(setup, round_id="r1-ab", model_version=7, max_clients=9, layout=lay)


def test_round_trip_and_what_the_device_derives() -> None:
    p = _params(features=np.ones((10, 2), np.float32))
    assert RoundParams.from_dict(p.to_dict()) == p
    assert (p.noise_std, p.count_noise_std, p.adaptive, p.num_features) == (0.25, 1.0, True, 2)
    cfg = p.round_config()
    assert (cfg.clip_norm, cfg.local_lr, cfg.bias_scale) == (0.5, 2.0, 3.0)
    layout = p.layout(num_items=10, dim=3, features=np.ones((10, 2), np.float32))
    assert p.vector_length(layout) == 10 * 3 + 2 * 3 + 10 + 1
    assert p.encoder().max_clients == 9
    with pytest.raises(WireError, match="the round updates 2 item-feature columns; the bundle carries 0"):
        p.layout(num_items=10, dim=3, features=None)
    assert DeviceAction.FINAL == ("done", "aborted", "excluded")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, r"unknown keys \['colour'\], missing keys \[\]"),
        ({"clip_norm": None}, "`clip_norm` must be a number. Found NoneType"),
        ({"clip_norm": float("nan")}, "`clip_norm` must be finite"),
        ({"clip_norm": -1.0}, r"`clip_norm` must be in \(0, inf\)"),
        ({"max_clients": 2.5}, "`max_clients` must be an int. Found float"),
        ({"adaptive": 1}, "`adaptive` must be a bool. Found int"),
        ({"round_id": 5}, "`round_id` must be a string. Found int"),
        ({"round_id": ""}, "`round_id` must be a string of 1 to 64 characters"),
        ({"free_embedding": False, "num_features": 0}, "needs `free_embedding` or `num_features > 0`"),
    ],
)
def test_bad_params_are_refused_by_name(change: dict[str, object], message: str) -> None:
    raw = {**_params().to_dict(), **change}
    with pytest.raises(WireError, match=message):
        RoundParams.from_dict(raw)


def test_missing_keys_are_named() -> None:
    raw = _params().to_dict()
    del raw["clip_range"]
    with pytest.raises(WireError, match=r"missing keys \['clip_range'\]"):
        RoundParams.from_dict(raw)
    with pytest.raises(WireError, match=r"must be a JSON object\. Found list"):
        RoundParams.from_dict([])
