"""A device or a server needs neither torch nor TensorFlow: import checks, a source-level check, and
``pip install 'privrec[runtime]'`` into a clean virtualenv that then runs a bundle on both backends."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from privrec.export import export_bundle, generate_signing_key
from privrec.runtime import Recommender
from privrec.sdk.model import ItemModel
from privrec.sdk.reconstruct import FinetuneConfig

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "tensorflow", "coremltools")
#: Modules a device or server must never reach: the training and simulation side of the SDK and the benchmarks.
TRAINING_SIDE = (
    "privrec.sdk.federated.simulate", "privrec.sdk.federated.batched", "privrec.benchmarks", "privrec.sdk.train",
    "privrec.sdk.run", "privrec.testing",
)


def _loaded_after(statement: str) -> dict[str, list[str]]:
    code = (
        f"import sys, json; {statement}; "
        f"mods = sorted(sys.modules); print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in mods], "
        f"'training': [m for m in mods if m.startswith({TRAINING_SIDE!r})], "
        "'accountant': [m for m in ('dp_accounting', 'scipy', 'fastapi', 'onnx') if m in mods]}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    result: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_runtime_imports_no_framework_and_no_accountant() -> None:
    got = _loaded_after("import privrec.runtime, privrec.runtime.device")
    assert got == {"heavy": [], "training": [], "accountant": []}


def test_server_imports_no_framework() -> None:
    got = _loaded_after("import privrec.server_stub, privrec.server_stub.app")
    assert got["heavy"] == [] and got["training"] == []


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", ["runtime", "server_stub"])
def test_no_module_of_the_device_or_server_imports_torch_or_the_simulation(package: str) -> None:
    """Source-level: not even a function-local import of torch, TensorFlow, Core ML or the simulation."""
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in HEAVY or name.startswith(TRAINING_SIDE):
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_the_check_above_would_see_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch\n    from privrec.sdk.federated.simulate import simulate_federated\n")
    assert _imports(bad) == ["torch", "privrec.sdk.federated.simulate"]


_DEVICE_SCRIPT = r"""
import importlib.util, json, sys
import numpy as np
from privrec.runtime import Recommender
out = {"missing": [m for m in ("torch", "tensorflow", "coremltools", "dp_accounting", "fastapi")
                   if importlib.util.find_spec(m) is None]}
for backend in ("onnxruntime", "litert"):
    rec = Recommender.load(sys.argv[1], backend=backend, public_key=sys.argv[2])
    out[backend] = {"self_test": rec.self_test()["ok"], "user": rec.reconstruct([3, 7, 3, 1]).tolist(),
                    "top": rec.recommend(rec.reconstruct([3, 7, 3, 1]), exclude=[1, 3, 7])[0].tolist()}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_pip_install_runtime_extra_in_a_clean_venv_runs_a_bundle(tmp_path: Path) -> None:
    """``pip install 'privrec[runtime]'`` (pinned by constraints.txt) into a fresh virtualenv installs no torch,
    TensorFlow, Core ML, accountant or server, and runs a bundle on both backends exactly as the full install."""
    rng = np.random.default_rng(0)
    model = ItemModel(item_embedding=rng.normal(0, 0.3, (40, 6)).astype(np.float32),
                      item_bias=rng.normal(0, 0.1, 40).astype(np.float32))
    private, public = generate_signing_key(tmp_path / "keys")
    bundle = export_bundle(model, tmp_path / "bundle", formats=("onnx", "tflite"),
                           finetune=FinetuneConfig(steps=5, lr=0.1, l2=0.5, calls=3), recency_half_life=2.0,
                           sign_key=private)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c",
         str(ROOT / "constraints.txt"), f"{ROOT}[runtime]"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    run = subprocess.run([str(python), "-c", _DEVICE_SCRIPT, str(bundle), str(public)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["missing"] == ["torch", "tensorflow", "coremltools", "dp_accounting", "fastapi"]
    for backend in ("onnxruntime", "litert"):
        here = Recommender.load(bundle, backend=backend, public_key=public)  # type: ignore[arg-type]
        user = here.reconstruct([3, 7, 3, 1])
        assert got[backend]["self_test"] is True
        np.testing.assert_allclose(got[backend]["user"], user, atol=1e-6)
        assert got[backend]["top"] == here.recommend(user, exclude=[1, 3, 7])[0].tolist()
