"""The CLI pair end to end: ``privrec serve`` over TLS and ``privrec device simulate --json`` (admitted with
enrolment codes) as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from privrec.server_stub import ServerConfig
from privrec.testing.servers import ServerProcess
from privrec.testing.tls import make_test_ca


@pytest.mark.data
def test_cli_serve_and_device_simulate_on_movielens(tmp_path: Path) -> None:
    from privrec.sdk.data import load_movielens100k

    try:
        load_movielens100k()
    except FileNotFoundError as exc:
        pytest.skip(f"MovieLens-100K is not cached ({exc}); run `privrec data fetch`.")
    config = ServerConfig(stage_timeout_seconds=120.0, enroll_timeout_seconds=120.0)  # ML-100K size: 1682 × 32
    tls = make_test_ca(tmp_path / "tls")
    with ServerProcess(tmp_path / "server.db", config, admin_token="cli-admin", tls=tls) as proc:
        result = subprocess.run(
            [sys.executable, "-m", "privrec", "device", "simulate", "--server", proc.url, "--devices", "4",
             "--rounds", "1", "--admin-token", "cli-admin", "--ca-cert", str(tls.ca_cert),
             "--public-key", str(proc.public_key), "--json"],
            capture_output=True, text=True, timeout=600,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["devices"] == 4 and out["model_version"] == 1
    (rnd,) = out["rounds"]
    assert rnd["phase"] == "completed" and rnd["outcomes"] == {"completed": 4}
    assert rnd["survivors"] == {"u1": 4, "u2": 4, "u3": 4, "u4": 4}
    assert out["epsilon"] is not None and out["epsilon"] > 0
