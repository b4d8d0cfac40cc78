"""Round lifecycle through the real app: exact aggregation under dropout, aborts, restarts, privacy."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from srvkit import ADMIN, Fleet, db_bytes, small_config

from privrec.sdk.privacy import DPConfig
from privrec.server_stub import create_app
from privrec.testing.servers import serve_in_thread


def _app(tmp_path: Path, **overrides: Any) -> Any:
    app = create_app(tmp_path / "server.db", small_config(**overrides), admin_token=ADMIN, tick_seconds=0)
    captured: dict[str, Any] = {}
    app.state.manager.aggregate_observer = lambda rid, total, survivors: captured.update(
        round_id=rid, total=total, survivors=survivors
    )
    app.state.captured = captured
    return app


@pytest.mark.parametrize("dropout", [0.0, 0.1, 0.3])
def test_aggregate_equals_plaintext_sum_of_survivors(tmp_path: Path, dropout: float) -> None:
    app = _app(tmp_path, threshold_fraction=0.15)  # t = 4 of 20: 30% dropout at every stage leaves 5
    with TestClient(app) as http:
        fleet = Fleet(http, 20, seed=1)
        fleet.enroll()
        masked = fleet.run_round(dropout, np.random.default_rng(7))
        status = fleet.status()
    assert status["phase"] == "completed"
    got = app.state.captured
    assert sorted(got["survivors"]) == sorted(fleet.ids[i] for i in masked)
    expected = fleet.expected_sum(masked)
    np.testing.assert_array_equal(got["total"], expected)
    assert status["outcome"]["aggregate_sha256"] == hashlib.sha256(expected.astype("<u4").tobytes()).hexdigest()
    assert status["outcome"]["model_version"] == 1
    if dropout == 0.3:
        assert status["survivors"]["u3"] < 20  # dropouts really happened


def test_aggregate_exact_through_real_http(tmp_path: Path) -> None:
    app = _app(tmp_path)
    import httpx

    with serve_in_thread(app) as url, httpx.Client(base_url=url) as http:
        fleet = Fleet(http, 8, seed=2)
        fleet.enroll()
        masked = fleet.run_round(0.3, np.random.default_rng(3))
        status = fleet.status()
    assert status["phase"] == "completed"
    np.testing.assert_array_equal(app.state.captured["total"], fleet.expected_sum(masked))


def test_below_threshold_aborts_and_leaves_model(tmp_path: Path) -> None:
    app = _app(tmp_path, threshold_fraction=0.5)  # t = 3 of 5
    with TestClient(app) as http:
        fleet = Fleet(http, 5)
        before = http.get("/v1/model/weights", headers=fleet.headers(0)).content
        fleet.enroll()
        for _ in range(2):  # rounds 0 and 1: everyone
            for i in range(5):
                assert fleet.answer(i)[0] == 200
        for i in range(2):  # only 2 masked inputs < t
            assert fleet.answer(i)[0] == 200
        r = fleet.advance()
        assert r.status_code == 200
        status = r.json()
        assert status["phase"] == "aborted"
        assert "fewer than the threshold t = 3" in status["outcome"]["reason"]
        after = http.get("/v1/model/weights", headers=fleet.headers(0))
        assert after.headers["X-Model-Version"] == "0"
        assert after.content == before
        assert http.get("/v1/ledger", headers=fleet.headers(0)).json()["rounds"] == 0
        # The aborted round takes no more messages; the next round opens on demand.
        r = http.post(f"/v1/rounds/{fleet.round_id}/messages", json={"type": "advertise_keys"}, headers=fleet.headers(0))
        assert r.status_code in (409, 422)
        nxt = http.get("/v1/rounds/current", headers=fleet.headers(0)).json()
        assert nxt["round_id"] != fleet.round_id and nxt["phase"] == "enrolling"


def test_enrolment_with_too_few_participants_aborts(tmp_path: Path) -> None:
    app = _app(tmp_path)
    with TestClient(app) as http:
        fleet = Fleet(http, 3)
        rid = http.get("/v1/rounds/current", headers=fleet.headers(0)).json()["round_id"]
        http.post(f"/v1/rounds/{rid}/checkin", json={"participate": True}, headers=fleet.headers(0))
        for i in (1, 2):
            http.post(f"/v1/rounds/{rid}/checkin", json={"participate": False}, headers=fleet.headers(i))
        status = http.get(f"/v1/rounds/{rid}", headers=fleet.headers(0)).json()
    assert status["phase"] == "aborted"
    assert status["outcome"]["reason"] == "Enrolment closed with 1 participants; at least 2 are needed."


def test_deadline_closes_stage_and_counts_silent_devices_as_dropped(tmp_path: Path) -> None:
    clock = [1000.0]
    app = create_app(tmp_path / "s.db", small_config(stage_timeout_seconds=5.0), admin_token=ADMIN, tick_seconds=0)
    app.state.manager.clock = lambda: clock[0]
    with TestClient(app) as http:
        fleet = Fleet(http, 4)
        fleet.enroll()
        for i in range(3):
            fleet.answer(i)
        assert fleet.status()["phase"] == "advertise_keys"
        clock[0] += 6.0
        assert fleet.status()["phase"] == "advertise_keys"  # status does not tick; the next request does
        r = http.get(f"/v1/rounds/{fleet.round_id}/request", headers=fleet.headers(3))
        assert r.json()["action"] == "excluded"
        assert fleet.status()["survivors"]["u1"] == 3


def test_restart_resumes_round_without_losing_contributions(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    app = create_app(db, small_config(), admin_token=ADMIN, tick_seconds=0)
    with TestClient(app) as http:
        fleet = Fleet(http, 6, seed=4)
        fleet.enroll()
        for _ in range(2):
            for i in range(6):
                fleet.answer(i)
        for i in range(3):  # half the masked inputs, then the "crash"
            fleet.answer(i)
    app.state.db.close()
    app2 = create_app(db, small_config(), admin_token=ADMIN, tick_seconds=0)
    captured: dict[str, Any] = {}
    app2.state.manager.aggregate_observer = lambda rid, total, s: captured.update(total=total, survivors=s)
    with TestClient(app2) as http2:
        fleet.http = http2
        assert fleet.status()["phase"] == "masked_input_collection"
        for i in range(3, 6):
            fleet.answer(i)
        for i in range(6):
            fleet.answer(i)
        assert fleet.status()["phase"] == "completed"
    assert len(captured["survivors"]) == 6
    np.testing.assert_array_equal(captured["total"], fleet.expected_sum(list(range(6))))


def test_no_plaintext_in_database_logs_or_responses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "server.db"
    app = create_app(db, small_config(dp=DPConfig(mode="central", noise_multiplier=1.0, clip_norm=1.0)),
                     admin_token=ADMIN, tick_seconds=0)
    with caplog.at_level(logging.DEBUG), TestClient(app) as http:
        fleet = Fleet(http, 4, seed=5)
        fleet.enroll()
        # Check mid-round too, when masked inputs are stored.
        for _ in range(3):
            for i in range(4):
                fleet.answer(i)
        mid = db_bytes(db)
        for i in range(4):
            fleet.answer(i)
        assert fleet.status()["phase"] == "completed"
        fleet.responses.append(http.get("/v1/ledger", headers=fleet.headers(0)).content)
    logs = "\n".join(r.getMessage() + json.dumps(getattr(r, "fields", {}), default=str) for r in caplog.records)
    assert "round_completed" in logs and "message_accepted" in logs  # the logs are really captured
    haystacks = {"db": mid + db_bytes(db), "responses": b"".join(fleet.responses), "logs": logs.encode()}
    for u, x in fleet.inputs.items():
        raw = x.astype("<u4").tobytes()
        needles = [raw, base64.b64encode(raw), raw[:64], raw[100:164], raw.hex().encode()]
        for where, hay in haystacks.items():
            for needle in needles:
                assert needle not in hay, f"device {u}'s encoded plaintext found in {where}"
    # Tokens are stored hashed only.
    assert all(t.encode() not in db_bytes(db) for t in fleet.tokens)
