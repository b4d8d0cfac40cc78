"""Shared fixtures. ``ml100k_run_dir`` trains a small central model on MovieLens-100K once per worker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from privrec.sdk.data import Interactions, LeaveOneOutSplit, leave_one_out, synthetic_interactions


@pytest.fixture(scope="session")
def synthetic_data() -> Interactions:
    """200 users × 300 items with planted rank-4 structure (seeded)."""
    return synthetic_interactions(200, 300, rank=4, seed=0)


@pytest.fixture(scope="session")
def synthetic_split(synthetic_data: Interactions) -> LeaveOneOutSplit:
    """Leave-one-out split of :func:`synthetic_data`."""
    return leave_one_out(synthetic_data)


@pytest.fixture(scope="session")
def ml100k_split() -> LeaveOneOutSplit:
    """MovieLens-100K, leave-one-out (needs `privrec data fetch`; `make test` runs it)."""
    from privrec.sdk.data import load_movielens100k

    try:
        data = load_movielens100k()
    except FileNotFoundError as exc:
        pytest.skip(f"MovieLens-100K is not cached ({exc}); run `make data`.")
    return leave_one_out(data)


@pytest.fixture(scope="session")
def ml100k_run_dir(tmp_path_factory: pytest.TempPathFactory, ml100k_split: LeaveOneOutSplit) -> Path:
    """A RUN_DIR of a central model trained briefly on MovieLens-100K (quality is not the point)."""
    from privrec.sdk.run import train_central_run

    out = tmp_path_factory.mktemp("ml100k_run")
    train_central_run(out, overrides={"epochs": 6, "patience": 6}, seed=0, progress=False)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset"] == "ml-100k"
    return out


@pytest.fixture()
def rng() -> np.random.Generator:
    """A seeded generator for test inputs."""
    return np.random.default_rng(1234)
