"""Flower's deployment engine: a SuperLink with TLS and SuperNode authentication, five registered SuperNodes
on 127.0.0.1, two rounds with SecAgg+; an unregistered SuperNode is refused; the run's bundle verifies."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flowerkit import BIN, Flower, free_port, superlink

from privrec.sdk.federated.config import FederatedConfig
from privrec.testing.tls import make_test_ca

pytestmark = pytest.mark.xdist_group("flower")

NODES = 5


def _node_key(folder: Path, name: str) -> tuple[Path, Path]:
    """A SuperNode's P-384 key pair in OpenSSH format (what ``flwr supernode register`` and
    ``flower-supernode --auth-supernode-private-key`` read)."""
    key = ec.generate_private_key(ec.SECP384R1())
    private, public = folder / name, folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
    return private, public


def _supernode(flower: Flower, ca: Path, key: Path, partition: int, log: Path, *retries: str) -> subprocess.Popen[str]:
    return flower.spawn(
        [str(BIN / "flower-supernode"), "--root-certificates", str(ca), "--superlink", f"127.0.0.1:{flower.port}",
         "--auth-supernode-private-key", str(key), "--node-config", f"partition-id={partition}",
         "--port", str(free_port()), *retries],
        log,
    )


def test_deployment_with_tls_and_node_auth_trains_and_exports_a_verified_bundle(tmp_path: Path) -> None:
    from privrec.flower.settings import run_config_overrides

    tls = make_test_ca(tmp_path / "tls")
    keys = tmp_path / "keys"
    keys.mkdir()
    pairs = [_node_key(keys, f"node{i}") for i in range(NODES)]
    stranger, _ = _node_key(keys, "stranger")
    fc = FederatedConfig(rounds=2, sample_rate=1.0, clip_norm=0.5, local_lr=1.0, server_lr=1.0, server_momentum=0.0,
                         dp_mode="central", noise_multiplier=0.5, target_epsilon=None, dim=4, eval_every=100)
    out = tmp_path / "run"
    overrides = run_config_overrides(fc, seed=0, out_dir=str(out), bundle_formats="onnx", min_nodes=NODES,
                                     node_wait_seconds=120.0, data_dataset="synthetic", data_population=NODES,
                                     secagg_timeout=120.0)
    with superlink(tmp_path / "flwr", simulation=False, tls=tls, node_auth=True) as flower:
        registered = []
        for done in flower.flwr_all(*(["supernode", "register", str(public), flower.connection, "--format", "json"]
                                      for _, public in pairs), timeout=60):
            assert done.returncode == 0, done.stdout + done.stderr
            registered.append(int(json.loads(done.stdout)["node-id"]))
        assert len(set(registered)) == NODES
        for i, (private, _) in enumerate(pairs):
            _supernode(flower, tls.ca_cert, private, i, tmp_path / f"supernode{i}.log")
        refused_log = tmp_path / "stranger.log"
        refused = _supernode(flower, tls.ca_cert, stranger, 0, refused_log, "--max-retries", "2", "--max-wait-time", "20")
        run = flower.run_app(overrides, timeout=900)  # a hang guard: the machine may be loaded
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        refused.wait(timeout=30)
        listed = flower.flwr("supernode", "list", flower.connection, "--format", "json", timeout=60)
    # The unregistered SuperNode never joined: it gave up, and the federation lists only the registered ones.
    assert refused.returncode != 0, refused_log.read_text()[-2000:]
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert sorted(int(n["node-id"]) for n in json.loads(listed.stdout)["nodes"]) == sorted(registered)
    history = json.loads((out / "history.json").read_text())
    assert [(h["cohort"], h["survivors"], h["applied"]) for h in history] == [(NODES, NODES, True)] * 2
    ledger = json.loads((out / "privacy_ledger.json").read_text())
    assert ledger["mode"] == "central" and ledger["rounds"] == 2 and 0 < ledger["epsilon"] < float("inf")
    verify = subprocess.run([str(BIN / "privrec"), "verify", str(out / "bundle"), "--json"], capture_output=True, text=True,
                            timeout=110, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"] and report["checks"]
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["privacy"]["epsilon"] == pytest.approx(ledger["epsilon"])
