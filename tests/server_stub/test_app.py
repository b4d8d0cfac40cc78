"""The HTTP layer: authentication, and every kind of bad request refused with a 4xx and a message."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from srvkit import ADMIN, Fleet, small_config

from privrec.sdk.secagg import EncryptedShare, ShareKeys
from privrec.server_stub import create_app


@pytest.fixture()
def http(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(tmp_path / "server.db", small_config(max_body_bytes=64 * 1024), admin_token=ADMIN, tick_seconds=0)
    with TestClient(app) as client:
        yield client


def test_openapi_lists_every_endpoint(http: TestClient) -> None:
    spec = http.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/healthz", "/v1/devices", "/v1/model", "/v1/model/bundle", "/v1/model/weights", "/v1/rounds/current",
        "/v1/rounds/{round_id}/checkin", "/v1/rounds/{round_id}/request", "/v1/rounds/{round_id}/messages",
        "/v1/rounds/{round_id}", "/v1/ledger", "/v1/admin/rounds", "/v1/admin/rounds/{round_id}/advance",
        "/v1/admin/enrolment-codes",
    }
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "A device's token from `POST /v1/devices`, or the admin token.",
    }
    assert spec["paths"]["/v1/model"]["get"]["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer not-a-token"])
def test_unauthenticated_or_wrong_token_is_401(http: TestClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, url in (("GET", "/v1/model"), ("GET", "/v1/rounds/current"), ("POST", "/v1/rounds/x/messages")):
        r = http.request(method, url, headers=headers, json={})
        assert r.status_code == 401, (url, r.text)
        assert "token" in r.json()["detail"].lower()


def test_admin_endpoints_need_the_admin_token(http: TestClient) -> None:
    fleet = Fleet(http, 2)
    r = http.post("/v1/admin/rounds", headers=fleet.headers(0))
    assert r.status_code == 401 and r.json()["detail"] == "A valid admin bearer token is required."
    r = http.post("/v1/admin/rounds", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201
    r = http.post("/v1/admin/rounds", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 409 and "still running" in r.json()["detail"]


def test_admin_disabled_without_token(tmp_path: Path) -> None:
    app = create_app(tmp_path / "s.db", small_config(), tick_seconds=0)
    with TestClient(app) as client:
        r = client.post("/v1/admin/rounds", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 403 and "disabled" in r.json()["detail"]


def test_replays_out_of_stage_and_other_rounds_are_refused(http: TestClient) -> None:
    fleet = Fleet(http, 3)
    rid = fleet.enroll()
    code, first = fleet.answer(0)
    assert code == 200
    r = http.post(f"/v1/rounds/{rid}/messages", json=first, headers=fleet.headers(0))
    assert r.status_code == 409 and r.json()["detail"].startswith("Replay: device")
    r = http.post(f"/v1/rounds/{rid}/checkin", json={"participate": True}, headers=fleet.headers(0))
    assert r.status_code == 409 and "enrolment has closed" in r.json()["detail"]
    # A ShareKeys message while the round is in Round 0.
    early = ShareKeys(round_id=rid, sender=fleet.ids[1], shares=()).to_dict()
    r = http.post(f"/v1/rounds/{rid}/messages", json=early, headers=fleet.headers(1))
    assert r.status_code == 409 and "belongs to stage 'share_keys'" in r.json()["detail"]
    # A message for another round, posted to this round's URL, and a message to an unknown round.
    other = {**first, "round_id": "r99-deadbeef", "sender": fleet.ids[1],
             "keys": {**first["keys"], "client_id": fleet.ids[1]}}
    r = http.post(f"/v1/rounds/{rid}/messages", json=other, headers=fleet.headers(1))
    assert r.status_code == 409 and "is for round 'r99-deadbeef'" in r.json()["detail"]
    r = http.post("/v1/rounds/r99-deadbeef/messages", json=other, headers=fleet.headers(1))
    assert r.status_code == 404 and r.json()["detail"] == "Unknown round 'r99-deadbeef'."
    # Another device's identity.
    r = http.post(f"/v1/rounds/{rid}/messages", json=first, headers=fleet.headers(2))
    assert r.status_code == 403 and "must be the authenticated device" in r.json()["detail"]
    r = http.post(f"/v1/rounds/{rid}/messages", json={**other, "round_id": rid}, headers=fleet.headers(2))
    assert r.status_code == 403 and "must be the authenticated device" in r.json()["detail"]


def test_malformed_and_oversized_bodies(http: TestClient) -> None:
    fleet = Fleet(http, 2)
    rid = fleet.enroll()
    url, h = f"/v1/rounds/{rid}/messages", fleet.headers(0)
    r = http.post(url, content=b"{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("Invalid request")
    r = http.post(url, json={"type": "advertise_keys", "round_id": rid}, headers=h)
    assert r.status_code == 422 and "Field required" in r.json()["detail"]
    r = http.post(url, json={"type": "nonsense"}, headers=h)
    assert r.status_code == 422
    bad_key = {"type": "advertise_keys", "round_id": rid, "sender": fleet.ids[0],
               "keys": {"client_id": fleet.ids[0], "encryption": "!!!", "masking": "AAAA"}}
    r = http.post(url, json=bad_key, headers=h)
    assert r.status_code == 422 and r.json()["detail"].startswith("Malformed message")
    r = http.post(url, content=b"x" * (64 * 1024 + 1), headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["detail"] == "Request body must be at most 65536 bytes."


def test_wrong_vector_length_and_unknown_peers(http: TestClient) -> None:
    fleet = Fleet(http, 3)
    rid = fleet.enroll()
    for i in range(3):
        fleet.answer(i)
    # Round 1: a share addressed to a device that is not in the round.
    r = http.get(f"/v1/rounds/{rid}/request", headers=fleet.headers(0)).json()
    assert r["stage"] == "share_keys"
    bogus = ShareKeys(
        round_id=rid, sender=fleet.ids[0],
        shares=tuple(EncryptedShare(sender=fleet.ids[0], receiver=v, nonce=b"\0" * 12, ciphertext=b"\1" * 48)
                     for v in (fleet.ids[1], 999)),
    ).to_dict()
    r2 = http.post(f"/v1/rounds/{rid}/messages", json=bogus, headers=fleet.headers(0))
    assert r2.status_code == 422 and "must hold one share for each of" in r2.json()["detail"]
    for i in range(3):
        fleet.answer(i)
    # Round 2: a vector of the wrong length.
    u = fleet.ids[0]
    req = http.get(f"/v1/rounds/{rid}/request", headers=fleet.headers(0)).json()
    assert req["stage"] == "masked_input_collection"
    short = {"type": "masked_input", "round_id": rid, "sender": u, "vector": "AAAAAA=="}
    r3 = http.post(f"/v1/rounds/{rid}/messages", json=short, headers=fleet.headers(0))
    assert r3.status_code == 422 and "must hold 80 uint32 words. Found 1." in r3.json()["detail"]
    # The refused messages changed nothing: the real answers are still accepted.
    assert fleet.answer(0)[0] == 200


def test_logs_are_json_lines_without_bodies(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    app = create_app(tmp_path / "server.db", small_config(), admin_token=ADMIN, tick_seconds=0)
    with TestClient(app) as client:
        fleet = Fleet(client, 2)
        fleet.enroll()
        fleet.answer(0)
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert {"device_registered", "round_opened", "enrolment_closed", "message_accepted"} <= events
    assert all(set(line) >= {"ts", "level", "logger", "event"} for line in lines)
    assert fleet.tokens[0] not in err


def test_registration_without_an_operator_code_is_refused(http: TestClient) -> None:
    """The attack: self-register devices (a Sybil flood). Without a valid one-time code nothing is stored."""
    for body in (None, {"enrolment_code": "x" * 43}, {}):
        r = http.post("/v1/devices", json=body)
        assert r.status_code == 403, r.text
    admin = {"Authorization": f"Bearer {ADMIN}"}
    (code,) = http.post("/v1/admin/enrolment-codes", json={"count": 1}, headers=admin).json()["codes"]
    assert http.post("/v1/devices", json={"enrolment_code": code}).status_code == 201
    again = http.post("/v1/devices", json={"enrolment_code": code})
    assert again.status_code == 403 and again.json()["detail"] == "Registration refused: this enrolment code was already used."
    assert http.app.state.manager.store.count_devices() == 1  # type: ignore[attr-defined]
    assert http.post("/v1/admin/enrolment-codes", json={"count": 1}).status_code == 401  # codes need the admin token


def test_expired_code_is_refused(tmp_path: Path) -> None:
    app = create_app(tmp_path / "s.db", small_config(enrolment_code_ttl_seconds=1.0), admin_token=ADMIN, tick_seconds=0)
    with TestClient(app) as http:
        (code,) = http.post("/v1/admin/enrolment-codes", json={"count": 1},
                            headers={"Authorization": f"Bearer {ADMIN}"}).json()["codes"]
        app.state.manager.clock = lambda: time.time() + 5.0
        r = http.post("/v1/devices", json={"enrolment_code": code})
    assert r.status_code == 403 and "expired" in r.json()["detail"]


def test_a_device_flooding_requests_gets_429_with_retry_after(tmp_path: Path) -> None:
    app = create_app(tmp_path / "s.db", small_config(rate_limit_per_second=1.0, rate_limit_burst=5), admin_token=ADMIN,
                     tick_seconds=0)
    with TestClient(app) as http:
        fleet = Fleet(http, 2)
        codes = [http.get("/v1/model", headers=fleet.headers(0)).status_code for _ in range(8)]
        assert codes[:4] == [200] * 4 and codes[-1] == 429
        limited = http.get("/v1/model", headers=fleet.headers(0))
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert http.get("/v1/model", headers=fleet.headers(1)).status_code == 200  # other devices are not affected


def test_one_silent_device_does_not_stall_enrolment(tmp_path: Path) -> None:
    """The attack: a registered device never checks in. Enrolment closes 2 s after 90% have checked in, not at the
    enrolment deadline (600 s here)."""
    app = create_app(tmp_path / "s.db", small_config(enroll_close_fraction=0.9), admin_token=ADMIN, tick_seconds=0)
    with TestClient(app) as http:
        fleet = Fleet(http, 10)
        rid = http.get("/v1/rounds/current", headers=fleet.headers(0)).json()["round_id"]
        for i in range(9):  # device 9 stays silent
            assert http.post(f"/v1/rounds/{rid}/checkin", json={"participate": True}, headers=fleet.headers(i)).status_code == 200
        assert http.get(f"/v1/rounds/{rid}", headers=fleet.headers(0)).json()["phase"] == "enrolling"  # a 2 s grace
        app.state.manager.clock = lambda: time.time() + 2.5
        app.state.manager.tick()
        assert http.get(f"/v1/rounds/{rid}", headers=fleet.headers(0)).json()["phase"] == "advertise_keys"


def test_database_is_owner_only(tmp_path: Path) -> None:
    app = create_app(tmp_path / "s.db", small_config(), admin_token=ADMIN, tick_seconds=0)
    with TestClient(app) as http:
        Fleet(http, 2)
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{tmp_path / 's.db'}{suffix}")
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
