"""``privrec tutorial``: its steps refuse to run out of order, its offline step really is offline, and the
quick tutorial runs end to end from the command line (the documentation build executes the same steps as a
notebook)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from privrec import tutorial


def test_steps_are_the_eight_of_the_docs() -> None:
    assert list(tutorial.STEPS) == ["data", "central", "reconstruct", "compress", "export", "federated", "server", "offline"]


def test_a_step_run_out_of_order_names_what_it_needs(tmp_path: Path) -> None:
    ctx = tutorial.TutorialContext.create(tmp_path)
    with pytest.raises(RuntimeError, match=r"^step 'central' needs 'split': run the steps in order \(data, central, "):
        tutorial.run_step(ctx, "central")
    with pytest.raises(ValueError, match=r"^`key` must be one of \['data', "):
        tutorial.run_step(ctx, "nope")


def test_offline_means_no_connection_can_open() -> None:
    with tutorial._offline(), pytest.raises(OSError, match="networking is switched off"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with socket.socket() as s, tutorial._offline(), pytest.raises(OSError, match="networking is switched off"):
        s.connect(("127.0.0.1", 9))
    assert socket.create_connection is not None and socket.socket.connect.__name__ == "connect"  # restored


def test_show_renders_a_step_in_a_terminal() -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="t")
    table.add_column("a")
    table.add_row("1")
    console = Console(record=True, width=80)
    tutorial.show(tutorial.StepResult("k", "Title", "Some *text*.", (table,), (Path("/x.png"),), {}, 1.5), console)
    out = console.export_text()
    assert "Title" in out and "Some text." in out and "figure: /x.png" in out and "(1.5 s)" in out


def test_pauses_between_steps_and_carries_on_without_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    ran: list[str] = []

    def fake(key: str) -> object:
        def step(ctx: tutorial.TutorialContext) -> tutorial.StepResult:
            ran.append(key)
            return tutorial.StepResult(key, key.title(), "text")

        return step

    monkeypatch.setattr(tutorial, "STEPS", {k: fake(k) for k in ("a", "b", "c")})
    console = Console(file=io.StringIO(), width=80)
    asked: list[str] = []

    def no_terminal(prompt: str = "", **_: object) -> str:
        asked.append(prompt)
        raise EOFError

    monkeypatch.setattr(console, "input", no_terminal)
    results = tutorial.run_tutorial(out=tmp_path, pause=True, console=console)
    assert ran == ["a", "b", "c"] and [r.key for r in results] == ran
    assert len(asked) == 1  # asked once; on end of input it stops asking and runs to the end
    monkeypatch.setattr(console, "input", lambda prompt="", **_: asked.append(prompt) or "")
    tutorial.run_tutorial(out=tmp_path, pause=True, console=console)
    assert len(asked) == 3  # between steps only, never after the last one


def test_module_entry_point_has_the_same_options() -> None:
    run = subprocess.run([sys.executable, "-m", "privrec.tutorial", "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    assert all(flag in run.stdout for flag in ("--no-pause", "--quick", "--out"))


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.xdist_group("ml100k")
def test_quick_tutorial_runs_end_to_end_from_the_command_line(tmp_path: Path) -> None:
    from privrec.sdk.data import movielens100k_dir

    try:
        movielens100k_dir()
    except FileNotFoundError:
        pytest.skip("MovieLens-100K is not cached; run `make data`.")
    out = tmp_path / "tutorial"
    env = dict(os.environ, COLUMNS="120")
    run = subprocess.run([sys.executable, "-m", "privrec", "tutorial", "--no-pause", "--quick", "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=900, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-3000:]
    for title in ("1. The data", "2. The model, trained centrally", "3. Rebuilding the user vector on the device",
                  "4. int8 and pruning", "5. One signed bundle, three formats, verified",
                  "6. A federated round: DP and secure aggregation", "7. What the server saw, kept and spent",
                  "8. A recommendation, offline"):
        assert title in run.stdout
    assert "sha256 mismatch" in run.stdout and "does not verify manifest.json" in run.stdout  # both tamperings refused
    assert "this must not happen" not in run.stdout
    for plot in ("02_training.png", "04_size_quality.png", "07_epsilon_rounds.png"):
        assert (out / "plots" / plot).stat().st_size > 1000
    verify = subprocess.run([sys.executable, "-m", "privrec", "verify", str(out / "bundle"), "--json", "--public-key",
                             str(out / "keys" / "privrec_signing_key.pub")], capture_output=True, text=True, timeout=300)
    report = json.loads(verify.stdout)
    assert verify.returncode == 0 and report["ok"] and report["signature"]["status"] == "ok"
