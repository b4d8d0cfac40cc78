"""SecAggConfig: validation, the low-threshold warning, the JSON round trip."""

from __future__ import annotations

import warnings

import pytest

from privrec.sdk.secagg import SecAggConfig


def _cfg(**kw: object) -> SecAggConfig:
    args: dict[str, object] = {"round_id": "r", "participants": (3, 1, 2), "threshold": 2, "vector_length": 5}
    args.update(kw)
    return SecAggConfig(**args)  # type: ignore[arg-type]


def test_round_trip_and_sorting() -> None:
    cfg = _cfg(participants=(5, 1, 9, 2, 7), neighbours=2, threshold=2, graph_seed=b"\x00\xff")
    assert cfg.participants == (1, 2, 5, 7, 9)
    assert SecAggConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.neighbourhood_size == 3
    assert _cfg().neighbourhood_size == 3


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"round_id": ""}, TypeError, "`round_id` must be a non-empty str"),
        ({"participants": (1, 1, 2)}, ValueError, "`participants` must be distinct. Found 1 twice."),
        ({"participants": (0, 1)}, ValueError, r"`participants` must be in \[1, 2147483646\]. Found 0 at position 0."),
        ({"participants": (1,)}, ValueError, "at least 2 clients. Found 1."),
        ({"participants": (1, True)}, TypeError, "`participants` must be an int. Found bool."),
        ({"threshold": 4}, ValueError, r"`threshold` must be in \[1, 3\] \(the closed neighbourhood size\). Found 4."),
        ({"threshold": 0}, ValueError, r"`threshold` must be in \[1, 3\]"),
        ({"neighbours": 3}, ValueError, r"`neighbours` must be in \[1, 2\] for 3 participants. Found 3."),
        ({"vector_length": 0}, ValueError, "`vector_length` must be >= 1. Found 0."),
        ({"graph_seed": "x"}, TypeError, "`graph_seed` must be bytes"),
    ],
)
def test_invalid_config_raises(kw: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        _cfg(**kw)


def test_low_threshold_warns() -> None:
    with pytest.warns(UserWarning, match="at most half the neighbourhood size 4"):
        _cfg(participants=(1, 2, 3, 4), threshold=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _cfg(participants=(1, 2, 3, 4), threshold=3)
