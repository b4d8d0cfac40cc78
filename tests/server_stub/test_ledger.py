"""The server's ledger: one event per completed round, ε from dp-accounting, distributed-mode effective Z."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from srvkit import ADMIN, Fleet, small_config

from privrec.sdk.privacy import DPConfig, DPRoundEvent, NonPrivateRoundEvent, PrivacyAccountant, PrivacyLedger, PrivacyWarning
from privrec.server_stub import create_app
from privrec.server_stub.ledger import build_ledger, round_event


def test_round_events_per_mode() -> None:
    central = DPConfig(mode="central", noise_multiplier=1.2, clip_norm=0.3)
    assert round_event(central, sample_rate=0.1, expected_devices=5, survivors=9) == DPRoundEvent(
        noise_multiplier=1.2, sample_rate=0.1, clip_norm=0.3
    )
    dist = DPConfig(mode="distributed", noise_multiplier=1.0, clip_norm=0.3)
    ev = round_event(dist, sample_rate=0.1, expected_devices=4, survivors=9)
    assert isinstance(ev, DPRoundEvent) and ev.noise_multiplier == pytest.approx(1.5)  # Z·sqrt(9/4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        off = DPConfig(mode="off")
    assert isinstance(round_event(off, sample_rate=0.5, expected_devices=2, survivors=2), NonPrivateRoundEvent)


def test_ledger_epsilon_matches_the_accountant() -> None:
    dp = DPConfig(mode="central", noise_multiplier=1.0, clip_norm=1.0, delta=1e-5)
    ev = round_event(dp, sample_rate=0.01, expected_devices=2, survivors=2)
    ledger = build_ledger(dp, [ev] * 1000)
    acc = PrivacyAccountant(delta=1e-5).compose(DPRoundEvent(noise_multiplier=1.0, sample_rate=0.01, clip_norm=1.0, rounds=1000))
    assert ledger.rounds == 1000
    assert ledger.epsilon == pytest.approx(acc.epsilon_rdp(), rel=1e-12)
    assert ledger.epsilon == pytest.approx(2.1014, abs=1e-4)  # the golden value of the privacy package
    assert build_ledger(dp, []).epsilon == 0.0


def test_distributed_round_publishes_noise_share_and_wider_encoding(tmp_path: Path) -> None:
    dp = DPConfig(mode="distributed", noise_multiplier=1.0, clip_norm=0.5)
    app = create_app(tmp_path / "s.db", small_config(dp=dp, threshold_fraction=0.5), admin_token=ADMIN, tick_seconds=0)
    with TestClient(app) as http:
        fleet = Fleet(http, 4)
        rid = fleet.enroll()
        req = http.get(f"/v1/rounds/{rid}/request", headers=fleet.headers(0)).json()
        params = req["message"]["params"]
        t = req["message"]["config"]["threshold"]
        assert t == 3
        assert params["device_noise_std"] == pytest.approx(0.5 / math.sqrt(t))  # Z·C/sqrt(t)
        assert params["clip_range"] == pytest.approx(0.5 + 8 * params["device_noise_std"])
        for _ in range(4):
            for i in range(4):
                fleet.answer(i)
        ledger = http.get("/v1/ledger", headers=fleet.headers(0)).json()
    assert ledger["mode"] == "distributed" and ledger["rounds"] == 1, ledger
    (entry,) = PrivacyLedger.from_dict(ledger).entries
    assert entry.noise_multiplier == pytest.approx(math.sqrt(4 / 3))  # 4 survivors, n = t = 3
