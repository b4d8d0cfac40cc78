"""Every refused CLI invocation is one line on stderr and exit code 2 — never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BAD_INVOCATIONS = [
    ["bench", "bogus"],
    ["privacy", "--noise-multiplier", "1", "--sample-rate", "0.1", "--rounds", "1000000000000", "--delta", "1e-5"],
    ["privacy", "--noise-multiplier", "-1", "--sample-rate", "0.1", "--rounds", "10", "--delta", "1e-5"],
    ["privacy", "--noise-multiplier", "1", "--sample-rate", "1.5", "--rounds", "10", "--delta", "1e-5"],
    ["serve", "--db", "/proc/nonexistent/s.db"],
    ["serve", "--db", "s.db", "--port", "99999"],
    ["serve", "--db", "s.db", "--tls-cert", "missing.pem"],
    ["device", "simulate", "--server", "not-a-url", "--devices", "2"],
    ["device", "simulate", "--server", "http://127.0.0.1:9", "--devices", "0"],
    ["device", "simulate", "--server", "http://127.0.0.1:9", "--devices", "2", "--dropout", "1.5"],
    ["verify", "/nonexistent-bundle", "--json"],
    ["evaluate", "/nonexistent-run", "--json"],
    ["export", "/nonexistent-run", "--out", "x"],
    ["train", "--mode", "quantum", "--out", "x"],
    ["train", "--mode", "central", "--config", "/nonexistent.json", "--out", "x"],
    ["no-such-command"],
]


@pytest.mark.parametrize("argv", BAD_INVOCATIONS, ids=[" ".join(a)[:40] for a in BAD_INVOCATIONS])
def test_bad_invocation_is_one_line_and_exit_2(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from privrec.cli import main

    monkeypatch.delenv("PRIVREC_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["privrec", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    out, err = capsys.readouterr()
    assert exit_.value.code == 2, (exit_.value.code, out[-500:], err[-2000:])
    assert "Traceback" not in err and out == ""
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) >= 1 and all(len(line) <= 600 for line in errors), err[-2000:]


def test_the_traceback_is_opt_in() -> None:
    env = {**os.environ, "PRIVREC_DEBUG": "1"}
    done = subprocess.run([sys.executable, "-m", "privrec", "bench", "bogus"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 1 and "Traceback" in done.stderr and "unknown bench suite 'bogus'" in done.stderr
