"""The server's ledger: one event per completed round, ε from dp-accounting, distributed mode accounted at Z."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from srvkit import ADMIN, Fleet, small_config

from privrec.sdk.privacy import DPConfig, DPRoundEvent, PrivacyAccountant, PrivacyLedger
from privrec.server_stub import create_app
from privrec.server_stub.ledger import build_ledger


def test_ledger_epsilon_matches_the_accountant() -> None:
    dp = DPConfig(mode="central", noise_multiplier=1.0, clip_norm=1.0, delta=1e-5)
    ev = DPRoundEvent(noise_multiplier=1.0, sample_rate=0.01, clip_norm=1.0)
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
        assert params["noise_std"] == pytest.approx(0.5 / math.sqrt(t))  # Z·C/sqrt(t)
        assert params["clip_range"] == pytest.approx(0.5 + 9 * params["noise_std"])  # the one headroom rule
        for _ in range(4):
            for i in range(4):
                fleet.answer(i)
        ledger = http.get("/v1/ledger", headers=fleet.headers(0)).json()
    assert ledger["mode"] == "distributed" and ledger["rounds"] == 1, ledger
    (entry,) = PrivacyLedger.from_dict(ledger).entries
    # 4 survivors' shares sized for t = 3 carry Z·sqrt(4/3) ≥ Z; the ledger states Z, never more.
    assert entry.noise_multiplier == pytest.approx(1.0)
