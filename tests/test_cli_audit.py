"""``privrec audit RUN_DIR``: refused inputs are one line and exit code 2; an audited run's ledger and its
exported bundle carry the empirical lower bound beside the accountant's ε."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from privrec.sdk.data import LeaveOneOutSplit


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from privrec.cli import main

    monkeypatch.delenv("PRIVREC_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["privrec", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    code = info.value.code
    return 0 if code is None else int(code)


def test_a_missing_run_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["audit", str(tmp_path / "nope"), "--json"], monkeypatch) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: RUN_DIR {tmp_path / 'nope'} does not exist or is not a directory.\n"


def test_a_central_run_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"mode": "central", "dataset": "ml-100k"}))
    (tmp_path / "privacy_ledger.json").write_text("{}")
    assert _run(["audit", str(tmp_path)], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'config.json'}: `mode` must be 'federated' (a federated run). Found 'central'.\n"


def test_a_run_without_ledger_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"mode": "federated", "dataset": "ml-100k"}))
    assert _run(["audit", str(tmp_path)], monkeypatch) == 2
    assert "privacy_ledger.json is missing: audit a RUN_DIR written by `privrec train --mode federated`." in (
        capsys.readouterr().err)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--canaries", "1", "error: `canaries` must be >= 2. Found 1.\n"),
    ("--confidence", "1.5", "error: `confidence` must be in (0, 1). Found 1.5.\n"),
])
def test_bad_audit_flags_are_refused(flag: str, value: str, message: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["audit", str(tmp_path), flag, value], monkeypatch) == 2
    assert capsys.readouterr().err == message


def test_audit_writes_the_lower_bound_into_the_ledger_and_the_bundle(
    ml100k_split: LeaveOneOutSplit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from privrec.sdk.federated.run import train_federated_run

    run = tmp_path / "run"
    train_federated_run(run, overrides={"rounds": 2, "sample_rate": 0.05, "dim": 4, "target_epsilon": 4.0,
                                        "finetune": {"steps": 2, "lr": 0.1, "l2": 0.5, "calls": 2}},
                        seed=0, progress=False)
    before = json.loads((run / "privacy_ledger.json").read_text())
    weights = (run / "weights.safetensors").read_bytes()
    assert _run(["audit", str(run), "--canaries", "20", "--json"], monkeypatch) == 0
    payload = json.loads(capsys.readouterr().out)
    bound = payload["empirical_lower_bound"]
    assert bound["canaries"] == 20 and bound["delta"] == before["delta"] and bound["confidence"] == 0.95
    assert 0.0 <= bound["epsilon_lower"] <= payload["epsilon_upper"]
    after = json.loads((run / "privacy_ledger.json").read_text())
    assert after == before | {"empirical_lower_bound": bound}  # the accountant's fields are unchanged
    assert (run / "weights.safetensors").read_bytes() == weights  # the audited model is not retrained in place

    from privrec.export.bundle import export_run

    bundle = export_run(run, tmp_path / "bundle", formats=("onnx",))
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    assert manifest["privacy"]["empirical_lower_bound"] == bound
    assert manifest["privacy"]["epsilon"] == before["epsilon"]
