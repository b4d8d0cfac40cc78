"""``golden.json``: inputs and expected outputs for every signature, the on-device self-test.

Expected outputs come from the numpy :class:`~privrec.export.reference.Reference` (never from an
artifact), so an app can check at start-up that its runtime computes what the bundle promises. The
cases cover, per signature: a few users (including the zero vector, a brand-new device), ``N`` and
``M`` of 1 and the full catalog (capped at :data:`MAX_GOLDEN_IDS` ids, spread over the catalog, so the
file stays small for large catalogs), and ``recommend`` with excluded items that change the answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Precision
from .errors import BundleError
from .manifest import GOLDEN_NAME, SCHEMA_VERSION
from .reference import Reference

__all__ = [
    "MAX_GOLDEN_IDS",
    "TOLERANCE",
    "case_arrays",
    "golden_cases",
    "load_golden",
    "mask_from_exclude",
    "write_golden",
]

# Max absolute error allowed against the reference (docs/BUNDLE.md).
TOLERANCE: dict[str, float] = {"float32": 1e-4, "int8": 2e-2}
MAX_GOLDEN_IDS = 2048
_USER_SCALE = 0.5


def _spread_ids(num_items: int, cap: int) -> NDArray[np.int64]:
    """All ids if the catalog fits under ``cap``; else ``cap`` ids spread evenly, first and last included."""
    if num_items <= cap:
        return np.arange(num_items, dtype=np.int64)
    return np.unique(np.linspace(0, num_items - 1, cap).round().astype(np.int64))


def mask_from_exclude(exclude: NDArray[np.integer] | list[int], num_items: int) -> NDArray[np.float32]:
    """The ``recommend`` mask: ``-inf`` at the excluded ids, ``0`` elsewhere (``float32[num_items]``)."""
    mask = np.zeros(num_items, np.float32)
    mask[np.asarray(exclude, np.int64)] = -np.inf
    return mask


def _floats(a: NDArray[np.floating] | float) -> list[float] | float:
    arr = np.asarray(a, np.float64)
    return float(arr) if arr.ndim == 0 else [float(x) for x in arr]


def golden_cases(ref: Reference, *, precision: Precision, lr: float, l2: float, seed: int = 0) -> dict[str, Any]:
    """The ``golden.json`` object for a reference (deterministic for a given ``seed``)."""
    rng = np.random.default_rng(seed)
    n, d, k = ref.num_items, ref.dim, ref.top_k
    tol = TOLERANCE[precision]
    lr, l2 = float(np.float32(lr)), float(np.float32(l2))  # the signature takes float32 lr and l2
    users = [
        (rng.normal(size=d) * _USER_SCALE).astype(np.float32),
        (rng.normal(size=d) * _USER_SCALE).astype(np.float32),
        (rng.normal(size=d) * _USER_SCALE).astype(np.float32),
    ]
    zero = np.zeros(d, np.float32)
    cases: list[dict[str, Any]] = []

    def add(signature: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        cases.append({"signature": signature, "inputs": inputs, "outputs": outputs, "tolerance": tol})

    few = np.unique(np.concatenate([[0, n - 1], rng.integers(0, n, size=min(n, 6))]))
    for user, ids in (
        (users[0], np.array([n // 2])),
        (users[1], few),
        (users[2], _spread_ids(n, MAX_GOLDEN_IDS)),
    ):
        add(
            "score",
            {"user": _floats(user), "item_ids": [int(i) for i in ids]},
            {"scores": _floats(ref.score(user, ids))},
        )

    spare = n - k  # items that may be excluded while K stay eligible
    top_u1, _ = ref.recommend(users[1], np.zeros(n, np.float32))
    excludes: list[list[int]] = [[], sorted({int(i) for i in top_u1[: min(3, spare)]}) if spare > 0 else []]
    excludes.append(sorted({int(i) for i in rng.choice(n, size=min(5, spare), replace=False)}) if spare > 0 else [])
    for user, exclude in zip(users, excludes, strict=True):
        top_ids, top_scores = ref.recommend(user, mask_from_exclude(exclude, n))
        add(
            "recommend",
            {"user": _floats(user), "exclude": exclude},
            {"top_ids": [int(i) for i in top_ids], "top_scores": _floats(top_scores)},
        )

    full = _spread_ids(n, MAX_GOLDEN_IDS)
    m = min(n, 8)
    mixed = rng.choice(n, size=m, replace=False)
    mixed_labels = rng.choice(np.array([0.0, 1.0, 2.0], np.float32), size=m)
    mixed_labels[0] = 1.0  # keep the sum positive
    positives = (rng.random(full.size) < 0.05).astype(np.float32)
    positives[0] = 1.0
    for user, ids, labels in (
        (zero, np.array([int(rng.integers(n))]), np.ones(1, np.float32)),
        (users[0], mixed, mixed_labels),
        (zero, full, positives),
    ):
        out, loss = ref.finetune(user, ids, labels, lr, l2)
        add(
            "finetune",
            {
                "user": _floats(user),
                "item_ids": [int(i) for i in ids],
                "labels": _floats(labels),
                "lr": lr,
                "l2": l2,
            },
            {"user_out": _floats(out), "loss": float(loss)},
        )
    return {"schema_version": SCHEMA_VERSION, "precision": precision, "cases": cases}


def write_golden(bundle_dir: Path, golden: dict[str, Any]) -> Path:
    """Write ``golden.json`` into ``bundle_dir``."""
    path = Path(bundle_dir) / GOLDEN_NAME
    path.write_text(json.dumps(golden, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_golden(bundle_dir: Path | str) -> dict[str, Any]:
    """Read ``golden.json`` (call after :func:`~privrec.export.manifest.load_manifest` checked its hash)."""
    path = Path(bundle_dir) / GOLDEN_NAME
    try:
        golden = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{GOLDEN_NAME}: missing from {bundle_dir}.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{GOLDEN_NAME}: not valid JSON ({exc}).") from None
    if not isinstance(golden, dict) or golden.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{GOLDEN_NAME}: field `schema_version` must be {SCHEMA_VERSION}.")
    if not isinstance(golden.get("cases"), list):
        raise BundleError(f"{GOLDEN_NAME}: field `cases` must be a list.")
    return golden


def case_arrays(case: dict[str, Any], num_items: int) -> dict[str, NDArray[Any]]:
    """A golden case's inputs as the arrays a :class:`~privrec.export.base.SignatureRunner` takes."""
    inp = case["inputs"]
    arrays: dict[str, NDArray[Any]] = {"user": np.asarray(inp["user"], np.float32)}
    if case["signature"] == "recommend":
        arrays["mask"] = mask_from_exclude(inp["exclude"], num_items)
        return arrays
    arrays["item_ids"] = np.asarray(inp["item_ids"], np.int32)
    if case["signature"] == "finetune":
        arrays["labels"] = np.asarray(inp["labels"], np.float32)
        arrays["lr"] = np.asarray([inp["lr"]], np.float32)
        arrays["l2"] = np.asarray([inp["l2"]], np.float32)
    return arrays
