"""Tests for privrec.sdk.privacy.report and the real `privrec privacy` command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from privrec.cli import app
from privrec.sdk.privacy import compute_epsilon, compute_epsilon_rdp, privacy_report

GOLDEN_RDP = 2.101366525420273  # Z=1, q=0.01, T=1000, δ=1e-5 (see test_accountant.GOLDEN)
GOLDEN_PLD = 1.8282436455855091  # same, PLD at the default interval 1e-4


def test_report_with_noise_multiplier() -> None:
    got = privacy_report(noise_multiplier=1.0, sample_rate=0.01, rounds=1000, delta=1e-5)
    assert got == {
        "epsilon": pytest.approx(GOLDEN_RDP, rel=1e-9),
        "epsilon_rdp": pytest.approx(GOLDEN_RDP, rel=1e-9),
        "epsilon_pld": pytest.approx(GOLDEN_PLD, rel=1e-9),
        "delta": 1e-5,
        "noise_multiplier": 1.0,
        "sample_rate": 0.01,
        "rounds": 1000,
    }


def test_report_with_target_epsilon_returns_calibrated_z() -> None:
    got = privacy_report(target_epsilon=2.0, sample_rate=0.01, rounds=1000, delta=1e-5, pld_value_discretization_interval=1e-3)
    z = got["noise_multiplier"]
    assert got["target_epsilon"] == 2.0
    assert got["epsilon"] == got["epsilon_rdp"] <= 2.0
    assert got["epsilon_rdp"] == compute_epsilon_rdp(noise_multiplier=z, sample_rate=0.01, rounds=1000, delta=1e-5)
    assert (
        got["epsilon_pld"]
        == compute_epsilon(
            noise_multiplier=z, sample_rate=0.01, rounds=1000, delta=1e-5, pld_value_discretization_interval=1e-3
        ).epsilon_pld
    )


def test_report_zero_noise_is_null() -> None:
    got = privacy_report(noise_multiplier=0.0, sample_rate=0.5, rounds=2, delta=1e-5)
    assert got["epsilon"] is None and got["epsilon_rdp"] is None and got["epsilon_pld"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {},
            "Exactly one of `noise_multiplier` and `target_epsilon` must be given. "
            "Found noise_multiplier=None, target_epsilon=None.",
        ),
        (
            {"noise_multiplier": 1.0, "target_epsilon": 1.0},
            "Exactly one of `noise_multiplier` and `target_epsilon` must be given. "
            "Found noise_multiplier=1.0, target_epsilon=1.0.",
        ),
        ({"noise_multiplier": 1.0, "sample_rate": 1.3}, "`sample_rate` must be in (0, 1]. Found 1.3."),
        ({"target_epsilon": -2.0}, "`target_epsilon` must be in (0, inf). Found -2.0."),
    ],
)
def test_report_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"sample_rate": 0.1, "rounds": 10, "delta": 1e-5, **kwargs}
    with pytest.raises(ValueError) as info:
        privacy_report(**args)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_cli_subprocess_prints_one_json_object() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "privrec",
            "privacy",
            "--noise-multiplier",
            "1.0",
            "--sample-rate",
            "0.01",
            "--rounds",
            "1000",
            "--delta",
            "1e-5",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    payload = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert isinstance(payload, dict)
    assert payload["epsilon_rdp"] == pytest.approx(GOLDEN_RDP, rel=1e-9)
    assert payload["epsilon_pld"] == pytest.approx(GOLDEN_PLD, rel=1e-9)
    assert (payload["noise_multiplier"], payload["sample_rate"], payload["rounds"], payload["delta"]) == (1.0, 0.01, 1000, 1e-5)


def test_cli_target_epsilon_and_errors() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["privacy", "--target-epsilon", "2", "--sample-rate", "0.01", "--rounds", "1000", "--delta", "1e-5", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["epsilon"] <= 2.0 and payload["noise_multiplier"] == pytest.approx(1.02233, rel=2e-4)
    bad = runner.invoke(
        app, ["privacy", "--noise-multiplier", "1", "--sample-rate", "1.3", "--rounds", "10", "--delta", "1e-5", "--json"]
    )
    assert bad.exit_code == 2
    assert bad.stdout == ""
    assert "`sample_rate` must be in (0, 1]. Found 1.3." in bad.stderr
