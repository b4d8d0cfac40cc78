"""The Flower tests need flwr, which runs in its own environment for now (``flower_app/constraints.txt``;
``flower_app/README.md`` says how to build it); ``make test``'s environment does not hold it yet.

Without it each test skips with the reason, unless ``PRIVREC_REQUIRE_FLOWER=1`` (then it fails). The test
modules import flwr-dependent code inside their tests, so collection never needs flwr.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

FLOWER_MISSING = "flwr is not importable: the Flower tests run in the environment of flower_app/constraints.txt"


@pytest.fixture(autouse=True)
def _flower_available() -> None:
    if importlib.util.find_spec("flwr") is not None:
        return
    if os.environ.get("PRIVREC_REQUIRE_FLOWER") == "1":
        pytest.fail(f"PRIVREC_REQUIRE_FLOWER=1 but {FLOWER_MISSING}")
    pytest.skip(FLOWER_MISSING)
