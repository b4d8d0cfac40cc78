"""``golden.json``: inputs and expected outputs for every signature, the on-device self-test.

Expected outputs come from the numpy :class:`~privrec.export.reference.Reference` (never from an
artifact), so an app can check at start-up that its runtime computes what the bundle promises. The
cases cover, per signature: a few users (including the zero vector, a brand-new device), ``N`` and
``M`` of 1 and the full catalog (capped at :data:`MAX_GOLDEN_IDS` ids, spread over the catalog, so the
file stays small for large catalogs), and ``recommend`` with excluded items that change the answer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Precision
from .errors import BundleError
from .files import parse_json
from .manifest import GOLDEN_NAME, SCHEMA_VERSION, Manifest, read_listed_file
from .reference import Reference

__all__ = [
    "MAX_GOLDEN_CASES",
    "MAX_GOLDEN_IDS",
    "TOLERANCE",
    "case_arrays",
    "golden_cases",
    "load_golden",
    "mask_from_exclude",
    "parse_golden",
    "write_golden",
]

# Max absolute error allowed against the reference (docs/BUNDLE.md).
# int4: every runtime dequantizes the exact stored int4 values and computes in float32 (no user-vector
# quantization as in the int8 integer kernels), so the error is float32 rounding over larger sums.
TOLERANCE: dict[str, float] = {"float32": 1e-4, "int8": 2e-2, "int4": 1e-3}
MAX_GOLDEN_IDS = 2048
# The writer emits 9 cases (three per signature); the cap bounds what a self-test or `privrec verify` runs.
MAX_GOLDEN_CASES = 64
_INPUTS = {
    "score": ("user", "item_ids"),
    "recommend": ("user", "exclude"),
    "finetune": ("user", "item_ids", "labels", "lr", "l2"),
}
_OUTPUTS = {"score": ("scores",), "recommend": ("top_ids", "top_scores"), "finetune": ("user_out", "loss")}
_CASE_KEYS = frozenset({"signature", "inputs", "outputs", "tolerance"})
_USER_SCALE = 0.5
_NUMBER_TYPES: frozenset[type] = frozenset({int, float})
_INT_TYPES: frozenset[type] = frozenset({int})


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


def load_golden(bundle_dir: Path | str, manifest: Manifest) -> dict[str, Any]:
    """Read and validate ``golden.json`` against ``manifest`` (its sha256 is checked on the bytes parsed).

    Every case is checked before any is run: at most :data:`MAX_GOLDEN_CASES` cases, each with exactly
    the keys of its signature, ``user`` of ``dim`` finite numbers, ids in ``[0, num_items)`` (at most
    :data:`MAX_GOLDEN_IDS` per case), labels finite, ``>= 0`` with a positive sum, ``lr > 0`` and
    ``l2 >= 0`` finite, outputs of the signature's shapes, finite, and a tolerance in ``(0, contract]``.
    Raises :class:`BundleError` naming ``golden.json`` and the field.
    """
    return parse_golden(read_listed_file(bundle_dir, manifest, GOLDEN_NAME), manifest)


def parse_golden(data: bytes, manifest: Manifest) -> dict[str, Any]:
    """Parse and validate ``golden.json`` bytes already checked against ``manifest``'s sha256 (what
    :meth:`privrec.runtime.Recommender.load` keeps), with every check of :func:`load_golden`."""
    golden = parse_json(data, f"{GOLDEN_NAME}:")
    if not isinstance(golden, dict) or set(golden) != {"schema_version", "precision", "cases"}:
        found = sorted(golden) if isinstance(golden, dict) else type(golden).__name__
        raise BundleError(f"{GOLDEN_NAME}: must be an object with keys ['cases', 'precision', 'schema_version']. Found {found}.")
    if golden["schema_version"] != SCHEMA_VERSION:
        raise _fail("schema_version", str(SCHEMA_VERSION), golden["schema_version"])
    if golden["precision"] != manifest.precision:
        raise _fail("precision", f"{manifest.precision!r} (the manifest's precision)", golden["precision"])
    cases = golden["cases"]
    if not isinstance(cases, list) or not 0 < len(cases) <= MAX_GOLDEN_CASES:
        n = len(cases) if isinstance(cases, list) else type(cases).__name__
        raise BundleError(f"{GOLDEN_NAME}: field `cases` must be a list of 1 to {MAX_GOLDEN_CASES} cases. Found {n}.")
    for i, case in enumerate(cases):
        _check_case(case, f"cases[{i}]", manifest)
    return golden


def _fail(where: str, what: str, value: object) -> BundleError:
    return BundleError(f"{GOLDEN_NAME}: field `{where}` must be {what}. Found {value!r:.80}.")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _as_array(value: list[Any], types: frozenset[type], dtype: type[np.float64] | type[np.int64]) -> NDArray[Any] | None:
    """``value`` as one array when every entry's exact type is in ``types`` (``bool`` never is), else None.

    One pass in C instead of a Python check per entry: golden lists hold up to :data:`MAX_GOLDEN_IDS` values.
    """
    if not set(map(type, value)) <= types:
        return None
    try:
        return np.asarray(value, dtype)
    except OverflowError:  # an int beyond the dtype's range
        return None


def _numbers(value: object, where: str, size: int) -> NDArray[np.float64]:
    """A list of ``size`` finite JSON numbers (not booleans), as float64."""
    arr = _as_array(value, _NUMBER_TYPES, np.float64) if isinstance(value, list) and len(value) == size else None
    if arr is None or not np.isfinite(arr).all():
        raise _fail(where, f"a list of {size} finite numbers", value)
    return arr


def _ids(value: object, where: str, num_items: int, *, low: int, high: int) -> NDArray[np.int64]:
    """A list of ``low`` to ``high`` ints (not booleans) in ``[0, num_items)``, as int64."""
    arr = _as_array(value, _INT_TYPES, np.int64) if isinstance(value, list) and low <= len(value) <= high else None
    if arr is None or (arr.size and (int(arr.min()) < 0 or int(arr.max()) >= num_items)):
        raise _fail(where, f"a list of {low} to {high} item ids in [0, {num_items})", value)
    return arr


def _check_case(case: object, where: str, m: Manifest) -> None:
    if not isinstance(case, dict) or set(case) != _CASE_KEYS:
        raise _fail(where, f"an object with keys {sorted(_CASE_KEYS)}", sorted(case) if isinstance(case, dict) else case)
    sig = case["signature"]
    if sig not in _INPUTS:
        raise _fail(f"{where}.signature", f"one of {sorted(_INPUTS)}", sig)
    inputs, outputs, tol = case["inputs"], case["outputs"], case["tolerance"]
    for kind, value, keys in (("inputs", inputs, _INPUTS[sig]), ("outputs", outputs, _OUTPUTS[sig])):
        if not isinstance(value, dict) or set(value) != set(keys):
            found = sorted(value) if isinstance(value, dict) else value
            raise _fail(f"{where}.{kind}", f"an object with keys {sorted(keys)}", found)
    if not _number(tol) or not 0 < tol <= TOLERANCE[m.precision]:
        raise _fail(f"{where}.tolerance", f"a number in (0, {TOLERANCE[m.precision]}] for {m.precision}", tol)
    _numbers(inputs["user"], f"{where}.inputs.user", m.dim)
    if sig == "recommend":
        exclude = _ids(inputs["exclude"], f"{where}.inputs.exclude", m.num_items, low=0, high=m.num_items - m.top_k)
        if np.unique(exclude).size != exclude.size:
            raise _fail(f"{where}.inputs.exclude", "a list of distinct item ids", inputs["exclude"])
        top_ids = _ids(outputs["top_ids"], f"{where}.outputs.top_ids", m.num_items, low=m.top_k, high=m.top_k)
        if np.unique(top_ids).size != m.top_k:
            raise _fail(f"{where}.outputs.top_ids", f"{m.top_k} distinct item ids", outputs["top_ids"])
        _numbers(outputs["top_scores"], f"{where}.outputs.top_scores", m.top_k)
        return
    ids = _ids(inputs["item_ids"], f"{where}.inputs.item_ids", m.num_items, low=1, high=MAX_GOLDEN_IDS)
    if sig == "score":
        _numbers(outputs["scores"], f"{where}.outputs.scores", len(ids))
        return
    labels = _numbers(inputs["labels"], f"{where}.inputs.labels", len(ids))
    if float(labels.min()) < 0 or float(labels.sum()) <= 0:
        raise _fail(f"{where}.inputs.labels", "numbers >= 0 with a positive sum", inputs["labels"])
    if not _number(inputs["lr"]) or inputs["lr"] <= 0:
        raise _fail(f"{where}.inputs.lr", "a finite number > 0", inputs["lr"])
    if not _number(inputs["l2"]) or inputs["l2"] < 0:
        raise _fail(f"{where}.inputs.l2", "a finite number >= 0", inputs["l2"])
    _numbers(outputs["user_out"], f"{where}.outputs.user_out", m.dim)
    if not _number(outputs["loss"]):
        raise _fail(f"{where}.outputs.loss", "a finite number", outputs["loss"])


def case_arrays(case: dict[str, Any], num_items: int) -> dict[str, NDArray[Any]]:
    """A golden case's inputs as the arrays a :class:`~privrec.export.base.SignatureRunner` takes
    (``case`` as :func:`load_golden` returns it, already validated)."""
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
