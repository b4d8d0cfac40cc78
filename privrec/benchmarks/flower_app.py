"""Flower simulation vs privrec's in-process simulation on MovieLens-100K: quality, s/round, peak memory, bytes.

Run from the repository root in the environment that holds privrec and Flower::

    python -m privrec.benchmarks.flower_app quality          # DP off, all 849 training users, 150 rounds
    python -m privrec.benchmarks.flower_app scale --population 943 --rounds 2
    python -m privrec.benchmarks.flower_app scale --population 10000 --rounds 2
    python -m privrec.benchmarks.flower_app report           # results/*.json -> report.md

Each Flower run starts its own ``flower-superlink --simulation`` (127.0.0.1, a fresh port, a temporary
FLWR_HOME) and runs ``flwr run flower_app`` against it with ``--federation-config num-supernodes=N`` (Ray
backend, 2 CPUs, 1 CPU per ClientApp actor); the in-process side runs
:func:`privrec.sdk.federated.simulate.simulate_federated` (or ``privrec train --mode federated``) in a
subprocess. Peak memory is the largest sum of VmRSS over the measured process tree, sampled every 0.25 s
(shared pages, e.g. Ray's object store, count once per process that maps them). s/round is the ServerApp's
per-round wall time (history.json ``seconds``; round 1 included) and the in-process simulation's wall
time over its rounds. Bytes per device are Flower's serialised protobuf messages to and from each sampled
device in a round (median), recorded by the ServerApp with ``meter-bytes = true``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository (a checkout: flower_app/ lives there)
HERE = ROOT / "reports" / "bench" / "flower"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent

#: The federated settings of both sides: ``privrec train --mode federated``'s defaults with DP off.
DP_OFF = {"dp_mode": "off", "noise_multiplier": None, "target_epsilon": None}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree_rss_kb(root: int) -> int:
    """Sum of VmRSS (kB) over ``root`` and its descendants."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier += kids
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class PeakMemory:
    """Samples the RSS of a process tree in a thread; ``peak_mb`` after :meth:`stop`."""

    def __init__(self, root: int) -> None:
        self.root, self.peak_kb, self._stop = root, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _tree_rss_kb(self.root))
            time.sleep(0.25)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024.0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def flower_run(name: str, federated: dict[str, Any], *, population: int, out: Path, **top: Any) -> dict[str, Any]:
    """One ``flwr run`` of the Flower App in simulation; returns wall time, peak memory and the RUN_DIR's history."""
    from privrec.flower.settings import run_config_overrides

    work = Path(tempfile.mkdtemp(prefix=f"flower-bench-{name}-"))
    port = _free_port()
    (work / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    overrides = run_config_overrides(federated, out_dir=str(out), **top)
    (work / "overrides.toml").write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in overrides.items()))
    env = dict(os.environ, FLWR_HOME=str(work), PATH=f"{BIN}:{os.environ['PATH']}")
    with open(work / "superlink.log", "w") as log:  # the child keeps its own descriptor
        link = subprocess.Popen(
            [str(BIN / "flower-superlink"), "--insecure", "--simulation", "--isolation", "subprocess", "--host",
             "127.0.0.1", "--port", str(port), "--disable-runtime-dependency-installation"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    memory = PeakMemory(link.pid)
    try:
        time.sleep(5)
        start = time.perf_counter()
        fed = f"num-supernodes={population} init-args-num-cpus=2 client-resources-num-cpus=1"
        proc = subprocess.run(
            [str(BIN / "flwr"), "run", str(ROOT / "flower_app"), "bench", "--federation-config", fed,
             "--run-config", str(work / "overrides.toml"), "--stream"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=6 * 3600, check=False,
        )
        wall = time.perf_counter() - start
    finally:
        peak = memory.stop()
        os.killpg(link.pid, signal.SIGTERM)
        try:
            link.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(link.pid, signal.SIGKILL)
    (work / "flwr-run.log").write_text(proc.stdout + proc.stderr)
    if not (out / "history.json").is_file():
        raise RuntimeError(f"flwr run wrote no RUN_DIR (logs in {work}): {(proc.stdout + proc.stderr)[-2000:]}")
    history = json.loads((out / "history.json").read_text())
    shutil.rmtree(work / "apps", ignore_errors=True)
    return {"wall_s": wall, "peak_rss_mb": peak, "history": history, "logs": str(work)}


def inprocess_run(name: str, federated: dict[str, Any], *, population: int, rounds_out: Path) -> dict[str, Any]:
    """privrec's vectorised simulation over ``population`` devices (training users replicated), in a subprocess."""
    code = f"""
import json, sys, time, warnings
import numpy as np
from privrec.flower.partition import load_population
from privrec.flower.settings import DataSettings
from privrec.sdk.federated.config import FederatedConfig
from privrec.sdk.federated.simulate import simulate_federated
warnings.simplefilter("ignore")
cfg = FederatedConfig.from_dict({federated!r})
pop = load_population(DataSettings(population={population}, heldout_fraction=cfg.heldout_fraction,
                                   heldout_seed=cfg.heldout_seed))
users = pop.devices[np.arange(pop.size) % pop.devices.size]
t = time.perf_counter()
res = simulate_federated(pop.split, cfg, train_users=users, heldout_users=pop.heldout, seed=0, progress=False)
json.dump({{"seconds": time.perf_counter() - t, "rounds": res.rounds_run, "devices": int(users.size),
           "cohorts": [h["cohort"] for h in res.history]}}, open({str(rounds_out)!r}, "w"))
"""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True)
    memory = PeakMemory(proc.pid)
    start = time.perf_counter()
    proc.wait()
    wall = time.perf_counter() - start
    peak = memory.stop()
    if proc.returncode:
        raise RuntimeError(f"in-process simulation failed with exit code {proc.returncode}")
    out = json.loads(rounds_out.read_text())
    return {"wall_s": wall, "peak_rss_mb": peak, **out}


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """DP off, every training user a device: Flower's held-out full HR@10 vs ``privrec train --mode federated``'s."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs = Path(args.runs)
    federated = dict(DP_OFF, rounds=args.rounds)
    cfg_file = runs / "quality-config.json"
    runs.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(json.dumps(federated))
    ref_dir = runs / "privrec-train"
    start = time.perf_counter()
    subprocess.run([str(BIN / "privrec"), "train", "--mode", "federated", "--config", str(cfg_file), "--out", str(ref_dir)],
                   cwd=ROOT, check=True)
    ref_wall = time.perf_counter() - start
    flower_dir = runs / "flower-quality"
    flower = flower_run("quality", federated, population=0, out=flower_dir, bundle_formats="")
    ref_metrics = json.loads((ref_dir / "metrics.json").read_text())
    fl_metrics = json.loads((flower_dir / "metrics.json").read_text())
    row = {
        "config": federated,
        "devices": json.loads((flower_dir / "config.json").read_text())["train_devices"],
        "privrec_full_hr10": ref_metrics["full"]["hr@10"],
        "flower_full_hr10": fl_metrics["full"]["hr@10"],
        "privrec_metrics": ref_metrics,
        "flower_metrics": fl_metrics,
        "privrec_wall_s": ref_wall,
        "flower_wall_s": flower["wall_s"],
        "flower_seconds_per_round_median": statistics.median(h["seconds"] for h in flower["history"]),
        "flower_peak_rss_mb": flower["peak_rss_mb"],
    }
    row["hr_ratio"] = row["flower_full_hr10"] / row["privrec_full_hr10"]
    (RESULTS / "quality.json").write_text(json.dumps(row, indent=1) + "\n")
    return row


def scale(args: argparse.Namespace) -> dict[str, Any]:
    """s/round, peak memory and bytes per device for ``--population`` devices, Flower vs in-process."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    federated = dict(DP_OFF, rounds=args.rounds)
    mine = inprocess_run("scale", federated, population=args.population, rounds_out=runs / f"inprocess-{args.population}.json")
    flower = flower_run(f"scale{args.population}", federated, population=args.population,
                        out=runs / f"flower-scale-{args.population}", data_population=args.population,
                        bundle_formats="", meter_bytes=True)
    hist = flower["history"]
    row = {
        "population": args.population,
        "rounds": args.rounds,
        "cohorts": [h["cohort"] for h in hist],
        "flower_seconds_per_round": [h["seconds"] for h in hist],
        "flower_s_per_round": statistics.mean(h["seconds"] for h in hist),
        "flower_wall_s": flower["wall_s"],
        "flower_peak_rss_mb": flower["peak_rss_mb"],
        "flower_bytes_received_per_device": statistics.median(h["bytes_received_per_device_median"] for h in hist),
        "flower_bytes_sent_per_device": statistics.median(h["bytes_sent_per_device_median"] for h in hist),
        "inprocess_s_per_round": mine["seconds"] / max(mine["rounds"], 1),
        "inprocess_wall_s": mine["wall_s"],
        "inprocess_peak_rss_mb": mine["peak_rss_mb"],
        "inprocess_cohorts": mine["cohorts"],
    }
    row["s_per_round_ratio"] = row["flower_s_per_round"] / row["inprocess_s_per_round"]
    row["peak_memory_ratio"] = row["flower_peak_rss_mb"] / row["inprocess_peak_rss_mb"]
    (RESULTS / f"scale-{args.population}.json").write_text(json.dumps(row, indent=1) + "\n")
    return row


def report(_: argparse.Namespace) -> dict[str, Any]:
    """results/*.json -> report.md (what was measured; a missing result is said to be missing)."""
    lines = ["# privrec on Flower (flwr 1.42.0) vs privrec's in-process simulation", "",
             "Regenerated by `python -m privrec.benchmarks.flower_app report` from `results/*.json`; "
             "methods in the script's docstring. 2 shared CPU cores, Ray backend with 2 CPUs, 1 per ClientApp.", ""]
    quality_file = RESULTS / "quality.json"
    lines += ["## Quality (DP off, every MovieLens-100K training user a device)", ""]
    if quality_file.is_file():
        q = json.loads(quality_file.read_text())
        lines += [
            f"Config: `{json.dumps(q['config'])}` (the rest `privrec train --mode federated`'s defaults), seed 0, "
            f"{q['devices']} devices, SecAgg+ on. Held-out users' test items, vectors reconstructed on the device.", "",
            "| run | full HR@10 | full NDCG@10 | wall s |", "|---|---|---|---|",
            f"| `privrec train --mode federated` | {q['privrec_full_hr10']:.4f} | "
            f"{q['privrec_metrics']['full']['ndcg@10']:.4f} | {q['privrec_wall_s']:.0f} |",
            f"| Flower simulation (`flwr run`) | {q['flower_full_hr10']:.4f} | "
            f"{q['flower_metrics']['full']['ndcg@10']:.4f} | {q['flower_wall_s']:.0f} |", "",
            f"Flower / privrec full HR@10: **{q['hr_ratio']:.3f}** (goal ≥ 0.97).", "",
        ]
    else:
        lines += ["Not measured in this run (results/quality.json missing).", ""]
    lines += ["## Scale: s/round, peak memory, bytes per device", "",
              "| devices | cohort (q = 0.2) | Flower s/round | in-process s/round | ratio | Flower peak MB | "
              "in-process peak MB | ratio | Flower B received / device | Flower B sent / device |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("scale-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        r = json.loads(path.read_text())
        lines.append(
            f"| {r['population']:,} | {r['cohorts']} | {r['flower_s_per_round']:.1f} | {r['inprocess_s_per_round']:.2f} | "
            f"{r['s_per_round_ratio']:.0f}× | {r['flower_peak_rss_mb']:,.0f} | {r['inprocess_peak_rss_mb']:,.0f} | "
            f"{r['peak_memory_ratio']:.1f}× | {r['flower_bytes_received_per_device']:,.0f} | "
            f"{r['flower_bytes_sent_per_device']:,.0f} |")
    (HERE / "report.md").write_text("\n".join(lines) + "\n")
    return {"report": str(HERE / "report.md")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--rounds", type=int, default=150)
    q.add_argument("--runs", default=str(ROOT / "runs" / "flower-bench"))
    s = sub.add_parser("scale")
    s.add_argument("--population", type=int, required=True)
    s.add_argument("--rounds", type=int, default=2)
    s.add_argument("--runs", default=str(ROOT / "runs" / "flower-bench"))
    sub.add_parser("report")
    args = parser.parse_args()
    row = {"quality": quality, "scale": scale, "report": report}[args.what](args)
    print(json.dumps({k: v for k, v in row.items() if not k.endswith("_metrics")}, indent=1))


if __name__ == "__main__":
    main()
