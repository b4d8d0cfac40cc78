"""Round lifecycle through the real app: exact aggregation under dropout, aborts, restarts, privacy."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from srvkit import ADMIN, Fleet, db_bytes, small_config

from privrec.sdk.privacy import DPConfig
from privrec.sdk.secagg import (
    AdvertiseKeys,
    SecAggClient,
    SecAggConfig,
    UnmaskingRequest,
    UnmaskingResponse,
    crypto,
)
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


# ----------------------------------------------------------------------- attacks by one registered device
def _post(http: Any, fleet: Fleet, i: int, message: dict[str, Any]) -> Any:
    return http.post(f"/v1/rounds/{fleet.round_id}/messages", json=message, headers=fleet.headers(i))


def _request(http: Any, fleet: Fleet, i: int) -> dict[str, Any]:
    r = http.get(f"/v1/rounds/{fleet.round_id}/request", headers=fleet.headers(i))
    assert r.status_code == 200, r.text
    return dict(r.json())


_ORDER_8 = next(u for u, order in crypto.LOW_ORDER_POINTS.items() if order == 8).to_bytes(32, "little")
BAD_KEYS: dict[str, tuple[Any, str]] = {
    "masking key = encryption key": (lambda keys, other: replace(keys, masking=keys.encryption),
                                     "its masking key equals its encryption key"),
    "zero point": (lambda keys, other: replace(keys, masking=bytes(32)), "its masking key is the zero point"),
    "low-order point": (lambda keys, other: replace(keys, encryption=_ORDER_8),
                        "its encryption key is a low-order point"),
    "another device's key": (lambda keys, other: replace(keys, masking=other.masking),
                             "its masking key is client {other}'s masking key"),
}


@pytest.mark.parametrize("attack", list(BAD_KEYS))
def test_bad_advertised_keys_get_422_naming_the_device_and_the_round_continues(tmp_path: Path, attack: str) -> None:
    """The attack that stopped every round (honest clients then refused the roster): now refused at the
    door, nothing stored, and the honest devices complete the round with the exact sum."""
    forge, text = BAD_KEYS[attack]
    app = _app(tmp_path)
    with TestClient(app) as http:
        fleet = Fleet(http, 5, seed=6)
        fleet.enroll()
        code, first = fleet.answer(0)
        assert code == 200
        attacker = fleet.ids[1]
        config = SecAggConfig.from_dict(_request(http, fleet, 1)["message"]["config"])
        honest = SecAggClient(config, attacker).advertise_keys()
        bad = replace(honest, keys=forge(honest.keys, AdvertiseKeys.from_dict(first).keys))
        r = _post(http, fleet, 1, bad.to_dict())
        assert r.status_code == 422
        assert r.json()["detail"].startswith(f"AdvertiseKeys from client {attacker}: {text.format(other=fleet.ids[0])}")
        assert not app.state.manager.store.has_message(fleet.round_id, attacker, "advertise_keys")
        for i in (2, 3, 4):
            assert fleet.answer(i)[0] == 200
        assert fleet.advance().status_code == 200  # the attacker never answered validly: Round 0 closes without it
        assert fleet.status()["survivors"]["u1"] == 4
        for _ in range(3):
            for i in (0, 2, 3, 4):
                assert fleet.answer(i)[0] == 200
        status = fleet.status()
    assert status["phase"] == "completed" and status["outcome"]["flagged"] == []
    assert sorted(app.state.captured["survivors"]) == sorted(fleet.ids[i] for i in (0, 2, 3, 4))
    np.testing.assert_array_equal(app.state.captured["total"], fleet.expected_sum([0, 2, 3, 4]))


def _lie(response: UnmaskingResponse) -> UnmaskingResponse:
    flip = lambda items: tuple(replace(s, share=bytes([s.share[0] ^ 1]) + s.share[1:]) for s in items)  # noqa: E731
    return replace(response, self_mask_shares=flip(response.self_mask_shares), key_shares=flip(response.key_shares))


@pytest.mark.parametrize("silent_in_round_4", [False, True])
def test_a_revealer_with_wrong_openings_is_named_and_the_sum_stays_exact_or_the_round_aborts(
    tmp_path: Path, silent_in_round_4: bool
) -> None:
    """Device 2 reveals wrong share openings in Round 4 (accepted: openings are checked when the stage
    closes). t = 5 of 6: with the five others answering, their openings suffice and the round completes with
    the exact sum of all six inputs, device 2 flagged; with device 5 silent too, four valid openings are
    fewer than t and the round aborts naming device 2, leaving the model and the ledger untouched."""
    app = _app(tmp_path, threshold_fraction=0.7)  # t = floor(0.7 * 6) + 1 = 5
    with TestClient(app) as http:
        fleet = Fleet(http, 6, seed=8)
        before = http.get("/v1/model/weights", headers=fleet.headers(0)).content
        fleet.enroll()
        for _ in range(3):
            for i in range(6):
                assert fleet.answer(i)[0] == 200
        liar = fleet.ids[2]
        request = UnmaskingRequest.from_dict(_request(http, fleet, 2)["message"])
        assert _post(http, fleet, 2, _lie(fleet.clients[liar].unmask(request)).to_dict()).status_code == 200
        for i in (0, 1, 3, 4) if silent_in_round_4 else (0, 1, 3, 4, 5):
            assert fleet.answer(i)[0] == 200
        if silent_in_round_4:
            assert fleet.advance().status_code == 200
        status = fleet.status()
        after = http.get("/v1/model/weights", headers=fleet.headers(0))
        rounds_in_ledger = http.get("/v1/ledger", headers=fleet.headers(0)).json()["rounds"]
    flagged = status["outcome"]["flagged"]
    assert [f["client_id"] for f in flagged] == [liar]
    assert flagged[0]["reason"].startswith(f"Client {liar} revealed an opening of its ")
    if silent_in_round_4:
        assert status["phase"] == "aborted"
        assert f"The openings of client(s) [{liar}] were discarded" in status["outcome"]["reason"]
        assert after.headers["X-Model-Version"] == "0" and after.content == before and rounds_in_ledger == 0
        assert "total" not in app.state.captured
    else:
        assert status["phase"] == "completed" and status["survivors"]["u4"] == 5
        assert sorted(app.state.captured["survivors"]) == sorted(fleet.ids)
        np.testing.assert_array_equal(app.state.captured["total"], fleet.expected_sum(list(range(6))))


def test_a_round_saved_in_an_unreadable_format_is_aborted_on_restart(tmp_path: Path) -> None:
    """A server restarted on a database whose in-flight round snapshot it cannot read (another version, or a
    corrupted row) ends that round releasing nothing, and serves the next one."""


    app = create_app(tmp_path / "s.db", small_config(), admin_token=ADMIN, tick_seconds=0)
    with TestClient(app) as http:
        fleet = Fleet(http, 3)
        rid = fleet.enroll()
    app.state.db.close()
    from privrec.server_stub.db import Database

    db = Database(tmp_path / "s.db")
    with db.transaction() as conn:
        snapshot = json.loads(conn.execute("SELECT snapshot FROM rounds WHERE round_id = ?", (rid,)).fetchone()[0])
        snapshot["unknown_field"] = 1
        conn.execute("UPDATE rounds SET snapshot = ? WHERE round_id = ?", (json.dumps(snapshot), rid))
    db.close()
    app2 = create_app(tmp_path / "s.db", small_config(), admin_token=ADMIN, tick_seconds=0)
    with TestClient(app2) as http:
        status = http.get(f"/v1/rounds/{rid}", headers=fleet.headers(0)).json()
        assert status["phase"] == "aborted" and "could not be read" in status["outcome"]["reason"]
        assert http.get("/v1/model", headers=fleet.headers(0)).json()["version"] == 0
    app2.state.db.close()
