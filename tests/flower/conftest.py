"""The Flower tests need flwr, whose pins exclude privrec's own: they run in Flower's virtualenv
(``.venv-flower``, built by ``make flower-venv`` from ``flower_app/constraints.txt``), where ``make test``
runs them with ``PRIVREC_REQUIRE_FLOWER=1``.

Without flwr (in ``.venv``) each test skips with the reason, unless ``PRIVREC_REQUIRE_FLOWER=1`` (then it
fails). The test modules import flwr-dependent code inside their tests, so collection never needs flwr.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

FLOWER_MISSING = "flwr is not importable here: `make test` runs tests/flower in .venv-flower (make flower-venv)"


@pytest.fixture(autouse=True)
def _flower_available() -> None:
    if importlib.util.find_spec("flwr") is not None:
        return
    if os.environ.get("PRIVREC_REQUIRE_FLOWER") == "1":
        pytest.fail(f"PRIVREC_REQUIRE_FLOWER=1 but {FLOWER_MISSING}")
    pytest.skip(FLOWER_MISSING)
