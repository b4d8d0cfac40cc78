"""Shared synthetic-model fixtures for every export test (ONNX, TFLite, Core ML, bundle, verify).

Fixtures (all function-scoped and cheap, so no test can see another's mutations):

- ``small_model``: :class:`ItemModel` with 200 items × 8 dims, seeded (``make_item_model(200, 8, seed=0)``):
  ``V ~ N(0, 0.3²)``, ``b ~ N(0, 0.1²)``, float32.
- ``small_qmodel``: ``quantize_int8(small_model)``.
- ``make_model``: factory ``make_model(num_items, dim, seed=0) -> ItemModel`` with the same distribution.
- ``make_bundle``: factory
  ``make_bundle(model=None, *, formats=("onnx",), precision="float32", **kw) -> Path``
  writing a full bundle (``export_bundle``) of ``model`` (default ``small_model``) into a fresh tmp dir.
- ``runnable_formats``: the registered formats whose module imports here (a sorted tuple).
- ``signing_keys``: ``(private_key_path, public_key_path)`` of an Ed25519 key pair made once per session
  (``generate_signing_key``); pass ``sign_key=signing_keys[0]`` to ``make_bundle`` for a signed bundle.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from privrec.export import available_formats, export_bundle, generate_signing_key, get_exporter
from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import QuantizedItemModel, quantize_int8


def make_item_model(num_items: int, dim: int, seed: int = 0) -> ItemModel:
    """A seeded synthetic item table: ``V ~ N(0, 0.3²)``, ``b ~ N(0, 0.1²)``."""
    rng = np.random.default_rng(seed)
    return ItemModel(
        item_embedding=rng.normal(0.0, 0.3, (num_items, dim)).astype(np.float32),
        item_bias=rng.normal(0.0, 0.1, num_items).astype(np.float32),
    )


def importable_formats() -> tuple[str, ...]:
    """Registered formats whose exporter module imports in this environment."""
    out = []
    for fmt in available_formats():
        try:
            get_exporter(fmt)
        except (ImportError, ValueError):
            continue
        out.append(fmt)
    return tuple(out)


@pytest.fixture
def small_model() -> ItemModel:
    """200 items × 8 dims, seed 0."""
    return make_item_model(200, 8, seed=0)


@pytest.fixture
def small_qmodel(small_model: ItemModel) -> QuantizedItemModel:
    """``quantize_int8(small_model)``."""
    return quantize_int8(small_model)


@pytest.fixture
def make_model() -> Callable[..., ItemModel]:
    """Factory: ``make_model(num_items, dim, seed=0)``."""
    return make_item_model


@pytest.fixture
def make_bundle(tmp_path: Path, small_model: ItemModel) -> Callable[..., Path]:
    """Factory writing a bundle into a fresh directory under ``tmp_path``; returns its path."""
    counter = itertools.count()

    def make(
        model: ItemModel | QuantizedItemModel | None = None,
        *,
        formats: tuple[str, ...] = ("onnx",),
        precision: str | None = "float32",
        **kwargs: Any,
    ) -> Path:
        m = small_model if model is None else model
        if isinstance(m, QuantizedItemModel) and precision == "float32":
            precision = None
        out = tmp_path / f"bundle{next(counter)}"
        return export_bundle(m, out, formats=formats, precision=precision, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def runnable_formats() -> tuple[str, ...]:
    """Registered formats whose module imports here."""
    return importable_formats()


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(private_key_path, public_key_path)``: one publisher key pair for the session."""
    return generate_signing_key(tmp_path_factory.mktemp("signing_keys"))
