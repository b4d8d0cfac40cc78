"""``privrec plan``: settings from the measured curves, ε recomputed by dp-accounting for exactly the
recommended (q, T, Z), interpolation of the measured quality, and every bad input refused (exit 2)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

from privrec.sdk.privacy.plan import default_delta, plan

CURVES: dict[str, Any] = {
    "source": "test curves",
    "settings": [
        {"n_users": 1000, "expected_cohort": 200.0, "rounds": 100, "clip_norm": 0.5, "population": "real"},
        {"n_users": 100_000, "expected_cohort": 400.0, "rounds": 40, "clip_norm": 0.5, "layout": "tied+free16",
         "population": "synthetic"},
    ],
    "points": [
        {"n_users": 1000, "epsilon": 1.0, "ratio_to_off": 0.5},
        {"n_users": 1000, "epsilon": 4.0, "ratio_to_off": 0.7},
        {"n_users": 1000, "epsilon": None, "ratio_to_off": 1.0},
        {"n_users": 100_000, "epsilon": 1.0, "ratio_to_off": 0.9},
        {"n_users": 100_000, "epsilon": 4.0, "ratio_to_off": 1.0},
        {"n_users": 1_000_000, "epsilon": 1.0, "ratio_to_off": 0.95},  # one ε only: not interpolated over
    ],
}


def _rdp_epsilon(z: float, q: float, t: int, delta: float) -> float:
    acc = rdp_privacy_accountant.RdpAccountant()
    acc.compose(dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), t))
    return float(acc.get_epsilon(delta))


def test_settings_come_from_the_nearest_measured_n_below_and_epsilon_is_recomputed() -> None:
    p = plan(users=20_000, epsilon=1.0, curves=CURVES)
    assert p.rounds == 100 and p.sample_rate == pytest.approx(200 / 20_000) and p.expected_cohort == pytest.approx(200)
    assert p.delta == default_delta(20_000) == pytest.approx(20_000**-1.1)
    assert p.epsilon_rdp <= 1.0
    assert p.epsilon_rdp == pytest.approx(_rdp_epsilon(p.noise_multiplier, p.sample_rate, p.rounds, p.delta), rel=1e-9)
    assert p.epsilon_pld <= p.epsilon_rdp + 1e-9
    big = plan(users=300_000, epsilon=2.0, delta=1e-7, curves=CURVES)
    assert big.rounds == 40 and big.sample_rate == pytest.approx(400 / 300_000) and big.delta == 1e-7
    assert big.layout == "tied+free16" and p.layout == "tied4"  # settings without a layout: the tied d = 4 table
    small = plan(users=50, epsilon=1.0, curves=CURVES)  # below every measured N: the smallest one's settings
    assert small.sample_rate == 1.0 and small.rounds == 100


def test_quality_is_interpolated_in_log_n_and_log_epsilon() -> None:
    assert plan(users=1000, epsilon=1.0, curves=CURVES).expected_ratio == pytest.approx(0.5)
    assert plan(users=1000, epsilon=2.0, curves=CURVES).expected_ratio == pytest.approx(0.6)  # halfway in log ε
    assert plan(users=10_000, epsilon=1.0, curves=CURVES).expected_ratio == pytest.approx(0.7)  # halfway in log N
    above = plan(users=10**7, epsilon=1.0, curves=CURVES)
    assert above.expected_ratio == pytest.approx(0.9) and "lower bound" in above.basis
    assert "clamped" in plan(users=1000, epsilon=0.25, curves=CURVES).basis


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0, "epsilon": 1.0}, r"`users` must be >= 1. Found 0."),
        ({"users": 10, "epsilon": 0.0}, r"`epsilon` must be finite and > 0. Found 0.0."),
        ({"users": 10, "epsilon": math.inf}, r"`epsilon` must be finite and > 0. Found inf."),
        ({"users": 10, "epsilon": 1.0, "delta": 0.1}, r"`delta` must be in \(0, 1/N\) = \(0, 0.1\) for N = 10. Found 0.1."),
        ({"users": 10, "epsilon": 1.0, "delta": 0.0}, r"`delta` must be in \(0, 1/N\)"),
    ],
)
def test_bad_inputs_name_the_expected_and_the_found(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(**kwargs, curves=CURVES)


def test_wrong_types_are_type_errors() -> None:
    with pytest.raises(TypeError, match=r"`users` must be an int\. Found float"):
        plan(users=10.5, epsilon=1.0, curves=CURVES)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`epsilon` must be a float\. Found str"):
        plan(users=10, epsilon="1", curves=CURVES)  # type: ignore[arg-type]


def _cli(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from privrec.cli import main

    monkeypatch.delenv("PRIVREC_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["privrec", *argv])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_one_json_object_from_the_shipped_curves(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["plan", "--users", "100000", "--epsilon", "1", "--json"], monkeypatch, capsys)
    assert code == 0, err
    got = json.loads(out)
    assert got["users"] == 100_000 and got["epsilon_rdp"] <= 1.0
    assert got["epsilon_rdp"] == pytest.approx(
        _rdp_epsilon(got["noise_multiplier"], got["sample_rate"], got["rounds"], got["delta"]), rel=1e-9)
    assert 0.0 <= got["expected_ratio"] <= 1.0 and got["clip_norm"] > 0
    assert "bench population" in got["basis"]


@pytest.mark.parametrize("argv", [
    ["plan", "--users", "0", "--epsilon", "1"],
    ["plan", "--users", "1000", "--epsilon", "0"],
    ["plan", "--users", "1000", "--epsilon", "-2", "--json"],
    ["plan", "--users", "1000", "--epsilon", "nan"],
    ["plan", "--users", "1000", "--epsilon", "1", "--delta", "0.001"],
    ["plan", "--users", "1000", "--epsilon", "1", "--delta", "-1e-6"],
    ["plan", "--users", "many", "--epsilon", "1"],
    ["plan", "--epsilon", "1"],
])
def test_cli_refuses_each_bad_input_with_one_line_and_exit_2(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(argv, monkeypatch, capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert any("error" in line.lower() for line in err.splitlines()), err
