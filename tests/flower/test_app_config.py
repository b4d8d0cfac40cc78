"""The Flower App's configuration and its typed messages (no Flower processes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from privrec.sdk.federated import ParamLayout, RoundParams, RoundSetup
from privrec.sdk.federated.config import FederatedConfig
from privrec.sdk.federated.wire import WireError
from privrec.sdk.recipe import ReconstructionRecipe

APP = Path(__file__).resolve().parents[2] / "flower_app"


def _app_run_config() -> dict[str, object]:
    from flwr.common.config import get_fused_config_from_dir

    return dict(get_fused_config_from_dir(APP, {}))


def test_app_config_defaults_are_privrec_train_defaults() -> None:
    """``[tool.flwr.app.config.federated]`` is FederatedConfig() key for key: `flwr run` and `privrec train
    --mode federated` start from the same settings."""
    from privrec.flower.settings import FlowerSettings, run_config_overrides

    raw = _app_run_config()
    assert FlowerSettings.from_run_config(raw).federated == FederatedConfig()
    assert {k: v for k, v in raw.items() if k.startswith("federated.")} == run_config_overrides(FederatedConfig())


def test_app_components_name_privrec_flower() -> None:
    import tomllib

    components = tomllib.loads((APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "privrec.flower.server_app:app", "clientapp": "privrec.flower.client_app:app"}


def test_run_config_round_trips_a_dp_off_config() -> None:
    from privrec.flower.settings import FlowerSettings, run_config_overrides

    fc = FederatedConfig(dp_mode="off", noise_multiplier=None, target_epsilon=None, rounds=3, recency_half_life=None)
    raw = _app_run_config() | run_config_overrides(fc, out_dir="runs/x", secagg_enabled=False, data_population=10)
    settings = FlowerSettings.from_run_config(raw)
    assert settings.federated == fc
    assert (settings.out_dir, settings.secagg.enabled, settings.data.population) == ("runs/x", False, 10)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed-typo": 1}, "run config: unknown keys ['seed-typo']"),
        ({"federated.rounds": 0}, "run config: federated: `rounds` must be"),
        ({"federated.sample-rte": 0.1}, "run config: federated: unknown federated config keys ['sample_rte']"),
        ({"secagg.enabled": 1}, "run config: `secagg.enabled` must be bool. Found int 1."),
        ({"data.population": True}, "run config: `data.population` must be int. Found bool True."),
        ({"secagg.reconstruction-threshold": 11}, "run config: `secagg.reconstruction-threshold` must be in [2, "),
        ({"data.dataset": "ml-1m"}, "run config: `data.dataset` must be 'ml-100k' or 'synthetic'. Found 'ml-1m'."),
    ],
)
def test_run_config_is_checked_key_by_key(change: dict[str, object], message: str) -> None:
    from privrec.flower.settings import FlowerSettings

    with pytest.raises(ValueError, match=re.escape(message)):
        FlowerSettings.from_run_config(_app_run_config() | change)


def test_missing_key_is_named() -> None:
    from privrec.flower.settings import FlowerSettings

    raw = _app_run_config()
    del raw["min-nodes"]
    with pytest.raises(ValueError, match=re.escape("run config: missing key `min-nodes`.")):
        FlowerSettings.from_run_config(raw)


def _instruction(features: bool = False) -> object:
    from privrec.flower.wire import TrainInstruction

    F = np.random.default_rng(0).random((7, 2)).astype(np.float32) if features else None
    layout = ParamLayout(num_items=7, dim=3, features=F)
    setup = RoundSetup(dp_mode="central", noise_multiplier=1.0, clip_norm=0.5, sample_rate=0.5, denominator=2.0,
                       local_lr=1.0)
    return TrainInstruction(
        round=RoundParams.from_setup(setup, round_id="r1", model_version=0, max_clients=4, layout=layout),
        recipe=ReconstructionRecipe(steps=2, lr=0.1, l2=0.5, calls=3, recency_half_life=None), num_items=7, dim=3,
        params=layout.init(init_std=0.1, seed=0), features=F,
    )


@pytest.mark.parametrize("features", [False, True])
def test_train_instruction_round_trips_through_fitins(features: bool) -> None:
    from flwr.compat.common import recorddict_compat as compat

    from privrec.flower.wire import TrainInstruction

    sent = _instruction(features)
    # through Flower's records, as SecAggPlusWorkflow sends it and the ClientApp reads it
    record = compat.fitins_to_recorddict(sent.to_fitins(), keep_input=True)  # type: ignore[attr-defined]
    got = TrainInstruction.from_fitins(compat.recorddict_to_fitins(record, keep_input=True))
    assert (got.round, got.recipe, got.num_items, got.dim) == (sent.round, sent.recipe, 7, 3)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got.params, sent.params)  # type: ignore[attr-defined]
    if features:
        np.testing.assert_array_equal(got.features, sent.features)  # type: ignore[attr-defined]


def test_train_instruction_refuses_what_the_contract_does_not_say() -> None:
    from flwr.common import FitIns

    from privrec.flower.wire import TrainInstruction

    good = _instruction().to_fitins()  # type: ignore[attr-defined]
    expected = "config keys must be ['recipe', 'round', 'shape']. Found ['recipe', 'round', 'shape', 'x']"
    with pytest.raises(WireError, match=re.escape(expected)):
        TrainInstruction.from_fitins(FitIns(good.parameters, dict(good.config) | {"x": 1}))
    bad_recipe = dict(good.config) | {"recipe": '{"steps": 2}'}
    with pytest.raises(WireError, match=re.escape("recipe keys must be")):
        TrainInstruction.from_fitins(FitIns(good.parameters, bad_recipe))
    bad_shape = dict(good.config) | {"shape": "[7, 4]"}
    with pytest.raises(WireError, match=re.escape("parameters must have shape (35,). Found (28,).")):
        TrainInstruction.from_fitins(FitIns(good.parameters, bad_shape))


def test_importing_privrec_flower_loads_neither_flwr_nor_torch() -> None:
    code = "import sys, privrec.flower; print(any(m == 'flwr' or m == 'torch' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_client_app_does_not_load_torch_or_the_accountant() -> None:
    code = ("import sys, privrec.flower.client_app; "
            "print(sorted(m for m in ('torch', 'dp_accounting', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_quantization_range_never_lets_a_cohort_sum_wrap() -> None:
    from privrec.flower.aggregation import quantization_range

    for k in (2, 50, 1024, 1025, 2000, 10_000):
        q = quantization_range(k)
        assert k * q < 2**32 and q <= 2**24
    assert quantization_range(50) == 2**24 and quantization_range(2000) == (2**32 - 1) // 2000


def test_flower_environment_runs_the_apps_without_torch() -> None:
    """The ServerApp, the ClientApp and the exporter they call import neither torch nor TensorFlow nor coremltools:
    Flower's environment is privrec's device and server path (``make test`` builds it without torch)."""
    import importlib.util
    import os

    code = ("import sys, privrec.flower.server_app, privrec.flower.client_app, privrec.export.bundle, "
            "privrec.sdk.federated.run; print(sorted(m for m in ('torch', 'tensorflow', 'coremltools') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
    if os.environ.get("PRIVREC_REQUIRE_FLOWER") == "1":  # make test's Flower environment: torch not installed at all
        assert importlib.util.find_spec("torch") is None
