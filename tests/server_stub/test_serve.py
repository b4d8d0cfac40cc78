"""``privrec serve`` as a real subprocess on 127.0.0.1: crash recovery (SIGKILL), TLS, and schemathesis over
TLS with an admitted device."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from srvkit import ADMIN, Fleet, db_bytes, small_config

from privrec.testing.servers import ServerProcess
from privrec.testing.tls import make_test_ca


def test_sigkill_mid_round_loses_no_accepted_contribution(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "server.db", small_config(), admin_token=ADMIN)
    proc.start()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            fleet = Fleet(http, 6, seed=9)
            fleet.enroll()
            for _ in range(2):  # Rounds 0 and 1 complete
                for i in range(6):
                    assert fleet.answer(i)[0] == 200
            for i in range(4):  # 4 of 6 masked inputs acknowledged ...
                assert fleet.answer(i)[0] == 200
        proc.kill()  # ... then the server dies without any cleanup
        assert proc.proc is None
        proc.start()  # same database, same port
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            fleet.http = http
            status = fleet.status()
            assert status["phase"] == "masked_input_collection"
            for i in range(4):  # the acknowledged ones are remembered: the server asks them nothing
                r = http.get(f"/v1/rounds/{fleet.round_id}/request", headers=fleet.headers(i)).json()
                assert r["action"] == "wait"
            for i in (4, 5):
                assert fleet.answer(i)[0] == 200
            for i in range(6):
                assert fleet.answer(i)[0] == 200
            status = fleet.status()
    finally:
        proc.stop()
    assert status["phase"] == "completed"
    assert status["survivors"] == {"u1": 6, "u2": 6, "u3": 6, "u4": 6}
    expected = fleet.expected_sum(list(range(6)))
    assert status["outcome"]["aggregate_sha256"] == hashlib.sha256(expected.astype("<u4").tobytes()).hexdigest()
    # The server's log (JSON lines) mentions the resumed round and never a device's vector.
    log = proc.log_path.read_text()
    assert '"event": "round_resumed"' in log
    hay = db_bytes(proc.db) + log.encode()
    for x in fleet.inputs.values():
        assert x.astype("<u4").tobytes()[:64] not in hay


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the schemathesis CLI is not installed in this environment")
    tls = make_test_ca(tmp_path / "tls")
    with ServerProcess(tmp_path / "server.db", small_config(), admin_token=ADMIN, tls=tls) as proc:
        assert proc.url.startswith("https://")
        with httpx.Client(base_url=proc.url, verify=str(tls.ca_cert)) as http:
            (code,) = http.post("/v1/admin/enrolment-codes", json={"count": 1},
                                headers={"Authorization": f"Bearer {ADMIN}"}).json()["codes"]
            token = http.post("/v1/devices", json={"enrolment_code": code}).json()["token"]
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA is refused
            httpx.get(f"{proc.url}/healthz")
        result = subprocess.run(
            [exe, "run", f"{proc.url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "20",
             "--header", f"Authorization: Bearer {token}", "--generation-deterministic", "--no-color",
             "--workers", "1", "--request-timeout", "30", "--tls-verify", str(tls.ca_cert)],
            capture_output=True, text=True, timeout=300,
        )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "14 selected / 14 total" in result.stdout
    assert " generated, " in result.stdout and " failed" not in result.stdout.split("Test cases:")[-1].splitlines()[1]


def test_admin_token_from_env_or_private_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import stat

    from privrec.server_stub.serve import admin_token_for

    monkeypatch.setenv("PRIVREC_ADMIN_TOKEN", "from-env")
    assert admin_token_for(tmp_path / "a.db") == "from-env"
    assert not (tmp_path / "a.db.admin-token").exists()
    monkeypatch.delenv("PRIVREC_ADMIN_TOKEN")
    token = admin_token_for(tmp_path / "b.db")
    path = tmp_path / "b.db.admin-token"
    assert path.read_text().strip() == token and len(token) >= 43
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
