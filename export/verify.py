"""``privrec verify``: every artifact × signature of a bundle against the numpy reference (docs/BUNDLE.md).

The reference is built from ``weights.safetensors`` + ``manifest.json`` alone
(:mod:`privrec.export.reference`). Each check runs one signature of one artifact over several users
(including the zero vector), ``N`` and ``M`` of 1, a few, and the full catalog, ``recommend`` with and
without excluded items, plus every case of ``golden.json``. A check passes when the max absolute error
is within the precision's tolerance (float32 ``1e-4``, int8 ``2e-2``) and, for ``recommend`` and the
full-catalog ``score``, the top-K sets are equal up to ties. ``golden.json`` itself is checked against
the reference too (``format: "golden"``). An artifact whose runner cannot load or run here fails its
checks with the error recorded; nothing is skipped.

With the publisher's public key, ``manifest.sig`` is checked first; an unsigned or mis-signed bundle
is reported (``signature.status`` ``"absent"`` or ``"bad"``, ``ok`` false) and none of its files is used.
The work is bounded by the manifest limits :func:`~privrec.export.manifest.load_manifest` checks up front
(steps, items, dim) and by the golden limits of :func:`~privrec.export.golden.load_golden`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import ArtifactRecord, CatalogScorer, SignatureRunner, get_runner_factory
from .errors import SignatureError
from .files import SIGNATURE_NAME
from .golden import TOLERANCE, case_arrays, load_golden, mask_from_exclude
from .manifest import load_manifest
from .reference import Reference, load_reference, topk_stable
from .signing import PublicKeySource, key_id, load_public_key

__all__ = ["SIGNATURES", "max_abs_err", "score_all_err", "topk_equal_up_to_ties", "verify_bundle"]

SIGNATURES = ("score", "recommend", "finetune")
_USER_SCALE = 0.5

Case = dict[str, NDArray[Any]]


def max_abs_err(actual: NDArray[Any], expected: NDArray[Any]) -> float:
    """Max ``|actual - expected|``; equal infinities count as 0, a shape mismatch or NaN as ``inf``."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    if a.shape != e.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    same_inf = np.isinf(a) & np.isinf(e) & (np.sign(a) == np.sign(e))
    with np.errstate(invalid="ignore"):
        diff = np.where(same_inf, 0.0, np.abs(a - e))
    if np.isnan(diff).any():
        return math.inf
    return float(diff.max())


def topk_equal_up_to_ties(ids: NDArray[Any], ref_scores: NDArray[np.floating], k: int, tol: float) -> bool:
    """Whether ``ids`` is a valid top-``k`` of ``ref_scores``: ``k`` distinct in-range ids equal to the
    reference top-``k`` as a set, except for items whose reference score is within ``tol`` of the
    ``k``-th (ties, which any order may break)."""
    got = np.asarray(ids).astype(np.int64).ravel()
    n = ref_scores.shape[0]
    if got.shape != (k,) or np.unique(got).size != k or got.min() < 0 or got.max() >= n:
        return False
    ref_top = topk_stable(ref_scores, k)
    kth = float(ref_scores[ref_top[-1]])
    differ = set(got.tolist()) ^ set(ref_top.tolist())
    return all(float(ref_scores[i]) >= kth - tol for i in differ)


def _spread(n: int, size: int, rng: np.random.Generator) -> NDArray[np.int32]:
    return np.sort(rng.choice(n, size=min(n, size), replace=False)).astype(np.int32)


def _generated_cases(ref: Reference, lr: float, l2: float, seed: int) -> dict[str, list[Case]]:
    """Cases beyond golden.json: 3 random users + the zero user; N, M in {1, a few, the full catalog}."""
    rng = np.random.default_rng(seed)
    n, d, k = ref.num_items, ref.dim, ref.top_k
    users = [np.zeros(d, np.float32)] + [(rng.normal(size=d) * _USER_SCALE).astype(np.float32) for _ in range(3)]
    full = np.arange(n, dtype=np.int32)
    sizes = [np.array([rng.integers(n)], np.int32), _spread(n, 17, rng), full]
    cases: dict[str, list[Case]] = {s: [] for s in SIGNATURES}
    for ui, user in enumerate(users):
        for ids in sizes:
            cases["score"].append({"user": user, "item_ids": ids})
        spare = n - k
        top, _ = ref.recommend(user, np.zeros(n, np.float32))
        excludes: list[list[int]] = [
            [],
            top[: min(2, spare)].tolist(),
            _spread(n, min(7, spare), rng).tolist(),
        ]
        for exclude in excludes:
            cases["recommend"].append({"user": user, "mask": mask_from_exclude(exclude, n)})
        for ids in sizes:
            labels = rng.choice(np.array([0.0, 1.0, 3.0], np.float32), size=ids.size)
            labels[ui % ids.size] = 1.0
            cases["finetune"].append(
                {
                    "user": user,
                    "item_ids": ids,
                    "labels": labels,
                    "lr": np.array([lr], np.float32),
                    "l2": np.array([l2], np.float32),
                }
            )
    return cases


def score_all_err(
    runner: SignatureRunner, user: NDArray[np.float32], item_ids: NDArray[Any], expected: NDArray[Any], num_items: int
) -> float | None:
    """Max abs error of the runner's whole-catalog ``score_all`` at ``item_ids`` against ``expected`` (``inf`` when
    its output is not ``f32[num_items]``), or None where the runner has no ``score_all`` signature."""
    whole = runner.score_all(user) if isinstance(runner, CatalogScorer) else None
    if whole is None:
        return None
    return max_abs_err(np.asarray(whole)[item_ids], expected) if np.shape(whole) == (num_items,) else float("inf")


def _score_check(runner: SignatureRunner, ref: Reference, cases: list[Case], tol: float) -> tuple[float, bool | None]:
    err, topk = 0.0, True
    for c in cases:
        got = runner.score(c["user"], c["item_ids"])
        want = ref.score(c["user"], c["item_ids"])
        err = max(err, max_abs_err(got, want))
        if c["item_ids"].size == ref.num_items and np.array_equal(c["item_ids"], np.arange(ref.num_items)):
            k = min(ref.top_k, ref.num_items)
            got_top = topk_stable(np.asarray(got, np.float64), k) if got.shape == want.shape else np.array([])
            topk = topk and topk_equal_up_to_ties(got_top, want, k, tol)
        whole = score_all_err(runner, c["user"], c["item_ids"], want, ref.num_items)
        if whole is not None:  # the whole-catalog signature, checked at the same ids
            err = max(err, whole)
    return err, topk


def _recommend_check(runner: SignatureRunner, ref: Reference, cases: list[Case], tol: float) -> tuple[float, bool | None]:
    err, topk = 0.0, True
    for c in cases:
        ids, scores = runner.recommend(c["user"], c["mask"])
        ids = np.asarray(ids)
        if ids.dtype != np.int32:
            raise TypeError(f"`top_ids` must be int32. Found {ids.dtype}.")
        full = ref.masked_scores(c["user"], c["mask"])
        ref_ids = topk_stable(full, ref.top_k)
        ref_scores = full[ref_ids]
        err = max(err, max_abs_err(scores, ref_scores))
        if ids.shape == ref_ids.shape and ids.min() >= 0 and ids.max() < ref.num_items:
            err = max(err, max_abs_err(scores, full[ids.astype(np.int64)]))  # each score belongs to its id
        topk = topk and topk_equal_up_to_ties(ids, full, ref.top_k, tol)
    return err, topk


def _finetune_check(runner: SignatureRunner, ref: Reference, cases: list[Case], tol: float) -> tuple[float, bool | None]:
    err = 0.0
    for c in cases:
        out, loss = runner.finetune(c["user"], c["item_ids"], c["labels"], c["lr"], c["l2"])
        ref_out, ref_loss = ref.finetune(c["user"], c["item_ids"], c["labels"], float(c["lr"][0]), float(c["l2"][0]))
        err = max(err, max_abs_err(out, ref_out), max_abs_err(np.asarray(loss).reshape(1), np.array([ref_loss])))
    return err, None


_CHECKS: dict[str, Callable[[SignatureRunner, Reference, list[Case], float], tuple[float, bool | None]]] = {
    "score": _score_check,
    "recommend": _recommend_check,
    "finetune": _finetune_check,
}


def _golden_checks(golden: dict[str, Any], ref: Reference, precision: str) -> list[dict[str, Any]]:
    """golden.json's expected outputs against the reference (catches a stale or edited golden file)."""
    errs: dict[str, float] = {s: 0.0 for s in SIGNATURES}
    counts: dict[str, int] = {s: 0 for s in SIGNATURES}
    topk: dict[str, bool] = {s: True for s in SIGNATURES}
    for case in golden["cases"]:
        sig = case["signature"]
        a = case_arrays(case, ref.num_items)
        out = case["outputs"]
        if sig == "score":
            e = max_abs_err(np.asarray(out["scores"]), ref.score(a["user"], a["item_ids"]))
        elif sig == "recommend":
            ids, scores = ref.recommend(a["user"], a["mask"])
            e = max_abs_err(np.asarray(out["top_scores"]), scores)
            topk["recommend"] &= np.asarray(out["top_ids"]).tolist() == ids.tolist()
        else:
            u, loss = ref.finetune(a["user"], a["item_ids"], a["labels"], float(a["lr"][0]), float(a["l2"][0]))
            e = max(max_abs_err(np.asarray(out["user_out"]), u), abs(float(out["loss"]) - loss))
        errs[sig] = max(errs[sig], e)
        counts[sig] += 1
    tol = TOLERANCE[precision]
    return [
        {
            "format": "golden",
            "signature": s,
            "precision": precision,
            "max_abs_err": errs[s],
            "tolerance": tol,
            "topk_equal": topk[s] if s == "recommend" else None,
            "cases": counts[s],
            "ok": counts[s] > 0 and errs[s] <= tol and topk[s],
        }
        for s in SIGNATURES
    ]


def _runner_makers(
    fmt: str, root: Path, record: ArtifactRecord
) -> list[tuple[str | None, Callable[[], SignatureRunner]]]:
    """One runner per variant: Core ML bundles may hold an iOS16 and an iOS18 variant, both checked."""
    if fmt == "coreml":
        from .coreml import CoreMLRunner

        variants = record.details.get("variants")
        if isinstance(variants, dict) and variants:
            return [(str(v), partial(CoreMLRunner, root, record, variant=str(v))) for v in sorted(variants)]
    return [(None, partial(get_runner_factory(fmt), root, record))]


def _structure_problems(fmt: str, root: Path, record: ArtifactRecord) -> list[str]:
    if fmt != "coreml":
        return []
    from .coreml import coreml_structure_problems

    try:
        return list(coreml_structure_problems(root, record))
    except Exception as exc:  # a malformed package fails its checks with the reason, never crashes verify
        return [f"cannot be read: {type(exc).__name__}: {exc}"]


def verify_bundle(bundle_dir: Path | str, *, seed: int = 0, public_key: PublicKeySource | None = None) -> dict[str, Any]:
    """Check every artifact × signature of a bundle against its numpy reference.

    Returns ``{"ok": bool, "model_version": str | None, "signature": {...}, "checks": [{"format",
    "signature", "precision", "max_abs_err", "tolerance", "topk_equal", "cases", "ok"} (+ "variant",
    "error")…]}``; ``topk_equal`` is ``None`` for ``finetune``; ``max_abs_err`` is ``None`` when it could
    not be measured (the check fails). Core ML bundles are checked per variant (iOS18, and the iOS16
    fallback when present) and structurally.

    ``signature`` is ``{"status", "key_id", "detail"}``: with ``public_key``, ``"ok"``, ``"absent"`` or
    ``"bad"`` (then ``ok`` is false, ``checks`` is empty and ``model_version`` is None: nothing of an
    unauthenticated bundle is used); without it, ``"not_checked"``, with ``key_id`` naming the key that
    ``manifest.sig`` claims (None when there is none).

    Raises :class:`~privrec.export.errors.BundleError` when the bundle itself fails its integrity
    checks (hashes, schema, paths, limits, weight shapes, golden cases).
    """
    root = Path(bundle_dir)
    if public_key is None:
        signature = _unchecked_signature(root)
        manifest = load_manifest(root)
    else:
        key = load_public_key(public_key)
        try:
            manifest = load_manifest(root, public_key=key)
        except SignatureError as exc:
            signature = {"status": exc.status, "key_id": key_id(key), "detail": str(exc)}
            return {"ok": False, "model_version": None, "signature": signature, "checks": []}
        signature = {"status": "ok", "key_id": key_id(key), "detail": f"{SIGNATURE_NAME} verifies manifest.json"}
    ref = load_reference(root, manifest)
    golden = load_golden(root, manifest)
    lr, l2 = float(manifest.finetune["lr"]), float(manifest.finetune["l2"])
    cases = _generated_cases(ref, lr, l2, seed)
    for case in golden["cases"]:
        if case.get("signature") in cases:
            cases[case["signature"]].append(case_arrays(case, ref.num_items))
    checks = _golden_checks(golden, ref, manifest.precision)
    for fmt in manifest.formats:
        record = manifest.artifact_record(fmt)
        tol = TOLERANCE[record.precision]
        structure = _structure_problems(fmt, root, record)
        for variant, make_runner in _runner_makers(fmt, root, record):
            base: dict[str, Any] = {"format": fmt, "precision": record.precision, "tolerance": tol}
            if variant is not None:
                base["variant"] = variant
            try:
                runner = make_runner()
            except Exception as exc:  # a format that cannot run here fails loudly, never skips
                for sig in SIGNATURES:
                    checks.append(
                        {
                            **base,
                            "signature": sig,
                            "max_abs_err": math.inf,
                            "topk_equal": None,
                            "cases": 0,
                            "ok": False,
                            "error": f"runner failed to load: {type(exc).__name__}: {exc}",
                        }
                    )
                continue
            for sig in SIGNATURES:
                check: dict[str, Any] = {**base, "signature": sig, "cases": len(cases[sig])}
                try:
                    err, topk = _CHECKS[sig](runner, ref, cases[sig], tol)
                except Exception as exc:
                    check.update(max_abs_err=math.inf, topk_equal=None, ok=False, error=f"{type(exc).__name__}: {exc}")
                else:
                    check.update(max_abs_err=err, topk_equal=topk, ok=err <= tol and topk is not False)
                if structure:
                    check.update(ok=False, error="structure: " + "; ".join(structure))
                checks.append(check)
    # Strict JSON: an error that could not be measured is null, never Infinity.
    for c in checks:
        if not math.isfinite(c["max_abs_err"]):
            c["max_abs_err"] = None
    return {
        "ok": all(c["ok"] for c in checks),
        "model_version": manifest.model_version,
        "signature": signature,
        "checks": checks,
    }


def _unchecked_signature(root: Path) -> dict[str, Any]:
    """What ``manifest.sig`` claims, without a key to check it against (nothing here is trusted)."""
    path = root / SIGNATURE_NAME
    claimed: object = None
    if path.is_file() and not path.is_symlink() and path.stat().st_size <= 4096:
        try:
            raw = json.loads(path.read_bytes())
        except (ValueError, RecursionError):
            raw = None
        claimed = raw.get("key_id") if isinstance(raw, dict) else None
    present = path.exists() or path.is_symlink()
    detail = (
        f"not checked: no public key given ({SIGNATURE_NAME} {'present' if present else 'absent'}); pass the "
        "publisher's key (--public-key) to authenticate the bundle"
    )
    return {"status": "not_checked", "key_id": claimed if isinstance(claimed, str) else None, "detail": detail}
