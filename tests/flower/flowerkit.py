"""Processes for the Flower tests: a SuperLink (simulation or deployment), SuperNodes, ``flwr run``.

Every process is started in its own session and ended by its process group id (it spawns the ServerApp,
the simulation runtime and Ray, or the ClientApps): nothing else on the machine is touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privrec.benchmarks.flower_app import REFERENCE_PYTHON, free_port, toml_value, wait_for_port

__all__ = ["APP", "BIN", "Flower", "free_port", "in_process_reference", "reference_python", "stop", "superlink"]

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "flower_app"
BIN = Path(sys.executable).parent


def reference_python() -> Path:
    """The Python of ``privrec[train]`` (torch) that computes the in-process reference: the Flower bench's
    :data:`~privrec.benchmarks.flower_app.REFERENCE_PYTHON`. Flower's environment has no torch, by design."""
    if not REFERENCE_PYTHON.is_file():
        raise FileNotFoundError(f"no reference Python at {REFERENCE_PYTHON}: build .venv (make test does) or set "
                                "PRIVREC_REFERENCE_PYTHON.")
    return REFERENCE_PYTHON


def in_process_reference(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """``simulate_federated`` for ``spec`` (see ``inprocess_reference.py``), run by :func:`reference_python`."""
    import json

    import numpy as np

    work.mkdir(parents=True, exist_ok=True)
    (work / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run([str(reference_python()), str(Path(__file__).with_name("inprocess_reference.py")),
                           str(work / "spec.json"), str(work / "reference.npz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the in-process reference failed:\n{done.stderr[-3000:]}")
    with np.load(work / "reference.npz") as ref:
        return {k: ref[k] for k in ref.files}


def stop(*procs: subprocess.Popen[Any]) -> None:
    """End each process group of ``procs``: SIGTERM to all at once (a SuperNode takes seconds to leave), then
    SIGKILL to any group still alive 20 s later."""
    alive = [p for p in procs if p.poll() is None or _group_alive(p.pid)]
    for proc in alive:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    give_up = time.monotonic() + 20
    for proc in alive:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, give_up - time.monotonic()))
        if _group_alive(proc.pid):
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass
class Flower:
    """A FLWR_HOME with one SuperLink connection and the environment to run ``flwr`` against it."""

    home: Path
    port: int
    connection: str = "test"
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, FLWR_HOME=str(self.home), PATH=f"{BIN}:{os.environ['PATH']}",
                    FLWR_DISABLE_UPDATE_CHECK="1")

    def spawn(self, args: list[str], log: Path) -> subprocess.Popen[Any]:
        with open(log, "w") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(args, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=self.home)
        self.procs.append(proc)
        return proc

    def flwr(self, *args: str, timeout: float = 110.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "flwr"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False, cwd=self.home)

    def flwr_all(self, *commands: list[str], timeout: float = 110.0) -> list[subprocess.CompletedProcess[str]]:
        """Several ``flwr`` commands at once (each a process importing flwr: started together, they overlap)."""
        procs = [subprocess.Popen([str(BIN / "flwr"), *args], env=self.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=self.home) for args in commands]
        done = []
        for args, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
        return done

    def run_app(self, overrides: dict[str, Any], *, federation_config: str | None = None,
                timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        """``flwr run flower_app <connection> --run-config overrides.toml --stream`` (blocks until the run ends)."""
        path = self.home / "overrides.toml"
        path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in overrides.items()))
        args = ["run", str(APP), self.connection, "--run-config", str(path), "--stream"]
        if federation_config:
            args += ["--federation-config", federation_config]
        return self.flwr(*args, timeout=timeout)


@contextmanager
def superlink(home: Path, *, simulation: bool, tls: Any = None, node_auth: bool = False) -> Iterator[Flower]:
    """A SuperLink on 127.0.0.1 (simulation runtime, or deployment with TLS and SuperNode authentication)."""
    home.mkdir(parents=True, exist_ok=True)
    flower = Flower(home=home, port=free_port())
    lines = ['[superlink]', 'default = "test"', '', '[superlink.test]', f'address = "127.0.0.1:{flower.port}"']
    lines.append("insecure = true" if tls is None else f'root-certificates = "{tls.ca_cert}"')
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    args = [str(BIN / "flower-superlink"), "--isolation", "subprocess", "--host", "127.0.0.1", "--port",
            str(flower.port), "--disable-runtime-dependency-installation"]
    args += ["--simulation"] if simulation else []
    if tls is None:
        args.append("--insecure")
    else:
        args += ["--ssl-ca-certfile", str(tls.ca_cert), "--ssl-certfile", str(tls.server_cert),
                 "--ssl-keyfile", str(tls.server_key)]
    args += ["--enable-supernode-auth"] if node_auth else []
    log = home / "superlink.log"
    proc = flower.spawn(args, log)
    try:
        wait_for_port(flower.port, proc, log, seconds=120)
        yield flower
    finally:
        stop(*reversed(flower.procs))
