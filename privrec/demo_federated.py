"""Stage 2 of ``privrec demo``: the federated system end to end on one machine.

1. **Federated training with DP** (Federated Reconstruction, DP-FedAvg, ε = 8 at δ = 1e-4) and the
   same run without DP, simulated in process: the device code of :mod:`privrec.sdk.federated` run for
   every sampled device, vectorised. Held-out users (10%, never trained on) are evaluated by
   reconstruction only, against a central model and the ALS peer on the same users.
2. **The real system over HTTP**: ``privrec serve`` on 127.0.0.1 (SQLite, secure aggregation, central
   DP noise, ledger) and devices that each hold one MovieLens user's data in an encrypted store,
   download the bundle, reconstruct, clip and take part in secure-aggregation rounds.
3. **Ship it**: the DP model exported as an int8 bundle (ONNX, TFLite, Core ML), verified, sized,
   and timed on ONNX Runtime and LiteRT.

Writes ``federated.md``, ``federated.json`` and ``federated_hr_per_round.png`` into the output folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["federated_stage"]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _latency_ms(fn: Any, calls: int = 200, warmup: int = 20) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}


def _plot(out: Path, runs: dict[str, list[dict[str, Any]]], refs: dict[str, float]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, history in runs.items():
        pts = [(h["round"], h["val_full_hr@10"]) for h in history if "val_full_hr@10" in h]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o", label=label)
    for i, (label, value) in enumerate(refs.items()):
        ax.axhline(value, linestyle="--", color=f"C{i + 3}", label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("held-out users: full-catalog HR@10 (validation item)")
    ax.set_title("Federated training on MovieLens-100K")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path = out / "federated_hr_per_round.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _overrides(cfg: Any) -> dict[str, Any]:
    """A FederatedConfig as ``train_federated_run`` overrides (the privacy benchmark's tuned settings)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def federated_stage(out: Path, *, seed: int = 0, http_devices: int = 120, http_rounds: int = 3) -> dict[str, Any]:
    """Run stage 2 (module docstring); returns the measured summary."""
    import torch

    from privrec.benchmarks.privacy import bench_config
    from privrec.export.bundle import export_run
    from privrec.export.manifest import load_manifest
    from privrec.export.signing import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME, generate_signing_key
    from privrec.export.verify import verify_bundle
    from privrec.runtime import Recommender, top_k
    from privrec.sdk.baselines import ALSConfig, train_als
    from privrec.sdk.data import leave_one_out, load_movielens100k
    from privrec.sdk.evaluate import evaluate
    from privrec.sdk.federated.config import FederatedConfig
    from privrec.sdk.federated.run import train_federated_run
    from privrec.sdk.run import evaluate_reconstructed, tune_finetune
    from privrec.sdk.train import TrainConfig, train_central
    from privrec.server_stub.config import ServerConfig
    from privrec.testing.devices import simulate_devices
    from privrec.testing.servers import ServerProcess
    from privrec.testing.tls import make_test_ca

    torch.set_num_threads(2)
    out = Path(out)
    split = leave_one_out(load_movielens100k())
    summary: dict[str, Any] = {}

    # 1. Federated training, in process (the same device code, vectorised), with and without DP.
    t0 = time.perf_counter()
    _say("[demo] federated training with DP (ε = 8, δ = 1e-4), in process")
    run_dp = train_federated_run(out / "federated-eps8", overrides=_overrides(bench_config(8.0)), seed=seed)
    _say("[demo] federated training without DP (reference), in process")
    run_off = train_federated_run(out / "federated-nodp", overrides=_overrides(bench_config(math.inf)), seed=seed)
    cfg_dp = json.loads((run_dp / "config.json").read_text())
    heldout = np.asarray(cfg_dp["heldout_users"], np.int64)
    fed_dp = json.loads((run_dp / "metrics.json").read_text())
    fed_off = json.loads((run_off / "metrics.json").read_text())
    ledger = json.loads((run_dp / "privacy_ledger.json").read_text())

    # Central and ALS references on the same held-out users (central: trained on every user's training
    # items, held-out users rebuilt by reconstruction like a new device; same dimension as federated).
    dim = int(cfg_dp["train"]["dim"]) if "dim" in cfg_dp.get("train", {}) else 32
    ccfg = TrainConfig(dim=dim)
    central = train_central(split, ccfg, seed=seed, progress=False).model
    ft = tune_finetune(central.items, split, ccfg)
    central_m = evaluate_reconstructed(central.items, split, ft, recency_half_life=ccfg.recency_half_life, users=heldout)
    als = train_als(split, ALSConfig(factors=32, regularization=0.1, alpha=5.0, recency_half_life=10.0), seed=seed)
    als_m = evaluate(als.score, split, users=heldout)
    quality = {
        "central (reconstructed)": central_m.to_dict(),
        "als": als_m.to_dict(),
        "federated, DP off": fed_off,
        f"federated, ε = {ledger.get('epsilon', float('nan')):.2f}": fed_dp,
    }
    summary["quality_heldout"] = quality
    summary["ledger"] = ledger
    summary["simulation_seconds"] = time.perf_counter() - t0

    # 2. The real system over HTTP: server on 127.0.0.1, devices with encrypted stores, secure aggregation.
    _say(f"[demo] HTTP: privrec serve on 127.0.0.1 + {http_devices} devices × {http_rounds} rounds (secure aggregation)")
    # The HTTP stage runs the plain layout (free item table + bias, FederatedConfig's defaults): its 55,506
    # coordinates per device are the heaviest secure-aggregation load. The server trains the genre-tied
    # layout of the in-process run too (ServerConfig.from_federated(bench_config(8.0), ...)).
    fcfg = FederatedConfig()
    server_cfg = ServerConfig.from_federated(
        fcfg, num_items=split.num_items, num_devices=http_devices, seed=seed,
        sample_rate=1.0, enroll_timeout_seconds=60.0, stage_timeout_seconds=60.0,
    )
    db = out / "server.sqlite"
    # A new server each run: the database, its WAL files and signing-key folder, and the devices enrolled in
    # the last run's server (their stores and keys) all go.
    for stale in [*out.glob("server.sqlite*"), out / "devices"]:
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    tls = make_test_ca(out / "tls")  # the demo serves over TLS with a throwaway CA (127.0.0.1 only)
    proc = ServerProcess(db, server_cfg, admin_token=secrets.token_urlsafe(24), tls=tls).start()
    try:
        train_users = np.setdiff1d(np.arange(split.num_users), heldout)
        http = simulate_devices(
            server=proc.url, devices=http_devices, rounds=http_rounds, split=split, users=train_users[:http_devices],
            seed=seed, workdir=out / "devices", progress=True, admin_token=proc.admin_token, verify=proc.verify,
            public_key=proc.public_key,
        )
    finally:
        proc.stop()
    summary["http"] = http

    # 3. Ship it: int8 bundle of the DP model, verified, sized and timed.
    _say("[demo] export int8 and float32 bundles (ONNX, TFLite, Core ML) and verify")
    keys = out / "keys"  # the publisher's Ed25519 key pair: bundles are signed, the app pins the public key
    private, public = (keys / PRIVATE_KEY_NAME, keys / PUBLIC_KEY_NAME) if (keys / PRIVATE_KEY_NAME).exists() \
        else generate_signing_key(keys)
    b8 = export_run(run_dp, out / "bundle-int8", precision="int8", overwrite=True, sign_key=private)
    b32 = export_run(run_dp, out / "bundle-float32", precision="float32", overwrite=True, sign_key=private)
    report = verify_bundle(b8)
    m8, m32 = load_manifest(b8), load_manifest(b32)
    sizes = {}
    for fmt in m8.formats:
        s8 = sum(m8.files[f]["size"] for f in m8.artifact_record(fmt).files)
        s32 = sum(m32.files[f]["size"] for f in m32.artifact_record(fmt).files)
        sizes[fmt] = {"int8_bytes": s8, "float32_bytes": s32, "ratio": s8 / s32}
    latencies: dict[str, dict[str, dict[str, float]]] = {}
    rng = np.random.default_rng(seed)
    for backend in ("onnxruntime", "litert"):
        rec = Recommender.load(b8, backend=backend, public_key=public)
        user = rec.reconstruct(rng.choice(rec.num_items, 30, replace=False))
        ft_ids = rng.choice(rec.num_items, 50, replace=False)
        latencies[backend] = {
            "score (catalog) + top-10": _latency_ms(lambda r=rec, u=user: top_k(r.score(u), 10)),
            "recommend": _latency_ms(lambda r=rec, u=user: r.recommend(u)),
            "finetune (M=50)": _latency_ms(lambda r=rec, u=user, ids=ft_ids: r.finetune(u, ids)),
        }
    summary["bundle"] = {"verify_ok": report["ok"], "checks": len(report["checks"]), "sizes": sizes, "latency_ms": latencies,
                         "num_items": m8.num_items, "dim": m8.dim}

    png = _plot(
        out,
        {"federated, DP off": json.loads((run_off / "history.json").read_text()),
         "federated, ε = 8": json.loads((run_dp / "history.json").read_text())},
        {},
    )
    md = _markdown(summary, png.name)
    (out / "federated.md").write_text(md)
    (out / "federated.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print("\n" + md, flush=True)
    return summary


def _markdown(s: dict[str, Any], png: str) -> str:
    q = s["quality_heldout"]
    central_hr = q["central (reconstructed)"]["full"]["hr@10"]
    lines = [
        f"Held-out users (10%, never trained on; vectors rebuilt on the device), test items, "
        f"{q['als']['users']} users. Ledger: mode {s['ledger'].get('mode')}, ε = {s['ledger'].get('epsilon')} "
        f"(RDP; PLD {s['ledger'].get('epsilon_pld')}), δ = {s['ledger'].get('delta')}, "
        f"{s['ledger'].get('rounds')} rounds.",
        "",
        "| model | full HR@10 | full NDCG@10 | sampled HR@10 | sampled NDCG@10 | full HR@10 / central |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in q.items():
        lines.append(
            f"| {name} | {m['full']['hr@10']:.4f} | {m['full']['ndcg@10']:.4f} | {m['sampled']['hr@10']:.4f} | "
            f"{m['sampled']['ndcg@10']:.4f} | {m['full']['hr@10'] / central_hr:.3f} |"
        )
    http = s["http"]
    lines += [
        "",
        f"Rounds over HTTP through `privrec serve` on 127.0.0.1 ({http['devices']} devices, secure aggregation, "
        f"central DP, the plain layout: free item table d = 32 + bias; the server's ledger after them: "
        f"ε = {http['epsilon']}):",
        "",
        "| round | outcome | seconds | survivors per stage | sent / received per device (median bytes) |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(http["rounds"], 1):
        lines.append(
            f"| {i} | {r['phase']} | {r['seconds']:.1f} | {r['survivors']} | "
            f"{r['bytes_sent_median']:,.0f} / {r['bytes_received_median']:,.0f} |"
        )
    lines.append("")
    b = s["bundle"]
    lines += [f"int8 bundle of the ε = 8 model ({b['num_items']} items × d = {b['dim']}: at such a small d the per-row "
              f"scale and bias and the graphs weigh as much as the table): verify ok = {b['verify_ok']} "
              f"({b['checks']} checks).", "",
              "| format | int8 bytes | float32 bytes | int8 / float32 |", "|---|---|---|---|"]
    for fmt, z in b["sizes"].items():
        lines.append(f"| {fmt} | {z['int8_bytes']:,} | {z['float32_bytes']:,} | {z['ratio']:.3f} |")
    lines += ["", "| backend | call | p50 ms | p95 ms |", "|---|---|---|---|"]
    for backend, calls in b["latency_ms"].items():
        for call, t in calls.items():
            lines.append(f"| {backend} | {call} | {t['p50']:.3f} | {t['p95']:.3f} |")
    lines += ["", f"![held-out HR@10 per round]({png})", ""]
    return "\n".join(lines)

