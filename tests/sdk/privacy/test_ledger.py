"""Tests for privrec.sdk.privacy.ledger: contents, merging, save/load, strict JSON, manifest shape."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from privrec.sdk.privacy import (
    LEDGER_FILENAME,
    AdaptiveClipEvent,
    AdaptiveClipSummary,
    DPRoundEvent,
    LedgerEntry,
    NonPrivateRoundEvent,
    PrivacyAccountant,
    PrivacyLedger,
    PrivacyWarning,
    compute_epsilon,
    manifest_privacy,
)

COARSE = 1e-3  # PLD discretisation: these tests check bookkeeping, not the last digit of ε_pld


def _central_ledger() -> PrivacyLedger:
    acc = PrivacyAccountant(delta=1e-5, pld_value_discretization_interval=COARSE)
    for _ in range(300):
        acc.compose(DPRoundEvent(noise_multiplier=1.0, sample_rate=0.01, clip_norm=1.0))
    return PrivacyLedger.from_accountant(acc, mode="central", secure_noise=True)


def test_ledger_records_what_ran() -> None:
    ledger = _central_ledger()
    expected = compute_epsilon(
        noise_multiplier=1.0, sample_rate=0.01, rounds=300, delta=1e-5, pld_value_discretization_interval=COARSE
    )
    assert ledger.entries == (
        LedgerEntry(mechanism="poisson_subsampled_gaussian", noise_multiplier=1.0, sample_rate=0.01, rounds=300, clip_norm=1.0),
    )
    assert (ledger.epsilon_rdp, ledger.epsilon_pld) == (expected.epsilon_rdp, expected.epsilon_pld)
    assert ledger.epsilon == expected.epsilon_rdp and ledger.rounds == 300 and ledger.delta == 1e-5
    assert ledger.secure_noise and ledger.warnings == ()
    assert ledger.dp_accounting_version == "0.6.0"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    ledger = _central_ledger()
    path = ledger.save(tmp_path / "run")
    assert path == tmp_path / "run" / LEDGER_FILENAME
    data = json.loads(path.read_text())
    assert data["mechanism"] == "poisson_subsampled_gaussian" and data["mode"] == "central"
    assert data["accountant"]["stated"] == "rdp"
    assert data["accountant"]["pld_value_discretization_interval"] == COARSE
    assert PrivacyLedger.load(tmp_path / "run") == ledger
    assert PrivacyLedger.load(path) == ledger


def test_adaptive_rounds_merge_into_a_schedule_summary() -> None:
    acc = PrivacyAccountant(delta=1e-5, pld_value_discretization_interval=COARSE)
    for c in (1.0, 0.8, 0.6, 0.7):
        acc.compose(AdaptiveClipEvent(update_noise_multiplier=1.2, count_noise_std=2.0, sample_rate=0.05, clip_norm=c))
    acc.compose(DPRoundEvent(noise_multiplier=1.0, sample_rate=0.05, clip_norm=0.7, rounds=2))
    ledger = PrivacyLedger.from_accountant(acc, mode="distributed", secure_noise=True)
    first, second = ledger.entries
    assert first.rounds == 4 and first.clip_norm is None
    assert first.adaptive_clipping == AdaptiveClipSummary(
        update_noise_multiplier=1.2,
        count_noise_std=2.0,
        initial_clip_norm=1.0,
        final_clip_norm=0.7,
        min_clip_norm=0.6,
        max_clip_norm=1.0,
    )
    assert first.noise_multiplier == pytest.approx((1.2**-2 + 4.0**-2) ** -0.5)
    assert second.rounds == 2 and second.clip_norm == 0.7
    assert PrivacyLedger.from_dict(json.loads(json.dumps(ledger.to_dict()))) == ledger


def test_mode_off_is_strict_json_with_null_epsilon(tmp_path: Path) -> None:
    acc = PrivacyAccountant(delta=1e-5).compose(NonPrivateRoundEvent(sample_rate=0.1, rounds=3))
    ledger = PrivacyLedger.from_accountant(acc, mode="off", secure_noise=True)
    text = ledger.save(tmp_path).read_text()
    assert "Infinity" not in text and "NaN" not in text
    data = json.loads(text)
    assert data["epsilon"] is None and data["epsilon_rdp"] is None and data["epsilon_pld"] is None
    assert data["mechanism"] == "none" and data["ledger"][0]["mechanism"] == "none"
    loaded = PrivacyLedger.load(tmp_path)
    assert math.isinf(loaded.epsilon) and loaded == ledger


def test_standard_warnings_are_added() -> None:
    acc = PrivacyAccountant(delta=1e-5, pld_value_discretization_interval=COARSE)
    acc.compose(DPRoundEvent(noise_multiplier=1.0, sample_rate=0.1, clip_norm=1.0))
    with pytest.warns(PrivacyWarning):
        acc.compose(DPRoundEvent(noise_multiplier=0.0, sample_rate=0.1, clip_norm=1.0))
    ledger = PrivacyLedger.from_accountant(acc, mode="central", secure_noise=False, warnings=["3 rounds under-noised"])
    assert ledger.warnings[0] == "3 rounds under-noised"
    assert any("noise multiplier 0" in w for w in ledger.warnings)
    assert any("insecure" in w for w in ledger.warnings)
    assert math.isinf(ledger.epsilon)


def test_manifest_shape_is_the_ledger_file(tmp_path: Path) -> None:
    ledger = _central_ledger()
    m = ledger.to_manifest()
    assert set(m) == {
        "schema_version", "mode", "mechanism", "accountant", "ledger", "epsilon", "delta", "epsilon_rdp",
        "epsilon_pld", "rounds", "secure_noise", "warnings",
    }  # fmt: skip
    assert m["mode"] == "central" and m["epsilon"] == ledger.epsilon and m["delta"] == 1e-5
    assert m["ledger"] == [e.to_dict() for e in ledger.entries]
    assert manifest_privacy(ledger) == m
    # The exporter copies privacy_ledger.json verbatim: the file is the manifest value.
    assert json.loads(ledger.save(tmp_path).read_text()) == json.loads(json.dumps(m, allow_nan=False))
    assert manifest_privacy(None) == {"mode": "none", "ledger": []}


def test_mode_and_events_must_agree() -> None:
    acc = PrivacyAccountant(delta=1e-5).compose(DPRoundEvent(noise_multiplier=1.0, sample_rate=0.1, clip_norm=1.0))
    with pytest.raises(ValueError) as info:
        PrivacyLedger.from_accountant(acc, mode="off", secure_noise=True)
    assert str(info.value) == "mode 'off' records only NonPrivateRoundEvent. Found DPRoundEvent at position 0."
    off = PrivacyAccountant(delta=1e-5).compose(NonPrivateRoundEvent(sample_rate=0.1))
    with pytest.raises(ValueError) as info:
        PrivacyLedger.from_accountant(off, mode="central", secure_noise=True)
    assert str(info.value) == "mode 'central' must not record NonPrivateRoundEvent. Found one at position 0."
    with pytest.raises(ValueError) as info:
        PrivacyLedger.from_accountant(acc, mode="local", secure_noise=True)  # type: ignore[arg-type]
    assert str(info.value) == "`mode` must be one of ['central', 'distributed', 'off']. Found 'local'."


def test_load_refuses_other_schema_and_tampered_totals(tmp_path: Path) -> None:
    data = _central_ledger().to_dict()
    with pytest.raises(ValueError) as info:
        PrivacyLedger.from_dict({**data, "schema_version": 2})
    assert str(info.value) == "`schema_version` must be 1. Found 2."
    with pytest.raises(ValueError) as info:
        PrivacyLedger.from_dict({**data, "rounds": 299})
    assert str(info.value) == "`rounds` must equal the sum over entries (300). Found 299."
    missing = {k: v for k, v in data.items() if k != "delta"}
    with pytest.raises(ValueError, match=r"Missing \['delta'\]\.$"):
        PrivacyLedger.from_dict(missing)
