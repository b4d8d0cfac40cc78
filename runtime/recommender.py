"""The on-device reference runtime: load a bundle, then score, recommend and fine-tune with its artifacts.

:class:`Recommender` runs the exported artifacts (onnxruntime or LiteRT), never the training code. It
loads only bundles signed by the publisher's pinned Ed25519 key (``manifest.sig``, checked before any
other file is read; ``allow_unsigned=True`` skips that, loudly) that pass every integrity check of the
files it reads (:func:`~privrec.export.manifest.load_manifest`: schema version, limits; then, for the
files :func:`backend_files` names — the backend's artifact and ``golden.json`` — paths inside the bundle
and no symbolic links, size and sha256; ``weights.safetensors`` and the other formats' artifacts are never
opened here, so they are left to ``privrec verify``, which checks every listed file and the weights' dtypes,
shapes and data offsets). It validates every
input at the boundary and every output of the artifact (a non-finite result is refused, never returned),
with messages that say what was expected and what was found.

**Rows and item ids.** Everywhere an item is an input, an ``int`` is a row of this bundle's item table and
a ``str`` is the app's own item id, mapped through the manifest's item map (:attr:`Recommender.item_map`;
row ``r`` holds id ``str(r)`` in a bundle without one). Store histories by id: ids survive a catalog update
(items added, removed, re-ordered in a new bundle version), rows do not. Ids the bundle does not hold are
left out of a reconstruction (and logged); :meth:`Recommender.map_history` reports them.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from privrec.export.base import CatalogScorer, SignatureRunner, get_runner_factory, score_catalog
from privrec.export.errors import BundleWarning
from privrec.export.golden import case_arrays, load_golden, parse_golden
from privrec.export.item_map import ItemMap, MappedHistory, holds_item_ids
from privrec.export.manifest import (
    GOLDEN_NAME,
    Manifest,
    load_item_features,
    load_manifest,
    read_listed_file,
    verify_files,
)
from privrec.export.signing import PublicKeySource, load_public_key
from privrec.export.verify import max_abs_err, score_all_err
from privrec.sdk.recipe import ReconstructionRecipe
from privrec.sdk.validation import check_finite, check_item_ids, check_user_vector

__all__ = ["BACKENDS", "Backend", "Recommender", "backend_files"]

Backend = Literal["onnxruntime", "litert"]
BACKENDS: dict[str, str] = {"onnxruntime": "onnx", "litert": "tflite"}  # backend -> artifact format


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_log = logging.getLogger(__name__)


def _check_rate(value: object, name: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"`{name}` must be a float. Found {type(value).__name__}.")
    v = float(value)
    ok = math.isfinite(v) and (v > 0 if positive else v >= 0)
    if not ok:
        raise ValueError(f"`{name}` must be a finite float {'> 0' if positive else '>= 0'}. Found {value}.")
    if v > _FLOAT32_MAX:  # the signature takes float32: a larger value would reach the model as inf
        raise ValueError(f"`{name}` must be at most {_FLOAT32_MAX:.6g} (the largest float32). Found {value}.")
    return v


def _check_output(values: NDArray[Any], signature: str, name: str, hint: str, *, allow_neg_inf: bool = False) -> None:
    """Refuse a non-finite output of a signature (``-inf`` allowed where the contract allows it)."""
    a = np.asarray(values, np.float64).reshape(-1)
    bad = np.isnan(a) | (np.isinf(a) if not allow_neg_inf else np.isposinf(a))
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(f"`{signature}` output `{name}` must be finite. Found {a[pos]} at position {pos}{hint}.")


def backend_files(manifest: Manifest, backend: Backend) -> tuple[str, ...]:
    """The listed files :meth:`Recommender.load` checks (size and sha256) for ``backend``: its artifact's
    files and ``golden.json`` (the self-test's cases): every file this runtime reads.

    ``weights.safetensors`` (the training-side weights; the artifact holds its own copy) and other formats'
    artifacts are never read by this runtime, so they are not hashed at load (4 MB of weights cost about
    4 ms of sha256 at 100k x 32); :func:`privrec.export.verify_bundle` (``privrec verify``) checks every
    listed file.
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {sorted(BACKENDS)}. Found {backend!r}.")
    record = manifest.artifact_record(BACKENDS[backend])
    return tuple(dict.fromkeys((*record.files, GOLDEN_NAME)))


@dataclass(frozen=True)
class Recommender:
    """One loaded bundle and the runner of one of its artifacts.

    Attributes:
        manifest: the validated manifest.
        backend: ``"onnxruntime"`` (the ONNX artifact) or ``"litert"`` (the TFLite artifact).
        bundle_dir: where the bundle was loaded from.
    """

    manifest: Manifest
    backend: Backend
    bundle_dir: Path
    _runner: SignatureRunner
    _golden: bytes | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        bundle_dir: Path | str,
        backend: Backend = "onnxruntime",
        *,
        public_key: PublicKeySource | None = None,
        allow_unsigned: bool = False,
    ) -> Recommender:
        """Load a bundle after checking its signature, the schema version and the limits, then the paths,
        sizes and sha256 of the files this backend reads (:func:`backend_files`: its artifact and
        ``golden.json``).

        Files this process never opens are not hashed: other formats' artifacts (e.g. the TFLite model when
        loading for onnxruntime, or the Core ML package) and ``weights.safetensors`` (the artifact carries its
        own weights). ``privrec verify`` checks every listed file and the weights' header. A tampered file this
        backend reads is refused with the same ``BundleError`` as before.
        ``golden.json``'s checked bytes are kept for :meth:`self_test`.

        Args:
            bundle_dir: the bundle directory.
            backend: ``"onnxruntime"`` (the ONNX artifact) or ``"litert"`` (the TFLite artifact).
            public_key: the publisher's Ed25519 public key, pinned by the app (a path to the base64 file
                ``privrec keys generate`` writes, its bytes, or the key object). ``manifest.sig`` must be a
                valid signature of ``manifest.json`` by this key; it is checked before any other file is
                read, and the manifest parsed is the one verified.
            allow_unsigned: load without checking any signature (development and tests only). Emits a
                :class:`~privrec.export.errors.BundleWarning`: anyone who can write to the bundle can then
                change the model, the titles and the privacy ledger it reports. Cannot be combined with
                ``public_key``.

        Raises :class:`~privrec.export.errors.SignatureError` (a ``BundleError``) naming ``manifest.sig``
        when the bundle is unsigned or not signed by ``public_key``; :class:`~privrec.export.errors.BundleError`
        (a ``ValueError``) naming the file and field when it is corrupt, tampered or of an unknown schema;
        ``ValueError`` when neither a key nor ``allow_unsigned=True`` is given, or the bundle holds no
        artifact for ``backend``.
        """
        if backend not in BACKENDS:
            raise ValueError(f"`backend` must be one of {sorted(BACKENDS)}. Found {backend!r}.")
        if not isinstance(allow_unsigned, bool):
            raise TypeError(f"`allow_unsigned` must be a bool. Found {type(allow_unsigned).__name__}.")
        root = Path(bundle_dir)
        if public_key is not None:
            if allow_unsigned:
                raise ValueError(
                    "`allow_unsigned=True` cannot be combined with `public_key`: a pinned key means the bundle must be signed."
                )
            key = load_public_key(public_key)
        elif allow_unsigned:
            key = None
            warnings.warn(
                f"loading bundle {root} without checking its signature (allow_unsigned=True): anyone who can write "
                "to it can change the model, the item titles and the privacy ledger. Pass public_key= in an app.",
                BundleWarning,
                stacklevel=2,
            )
        else:
            raise ValueError(
                "`public_key` is required: pass the publisher's pinned Ed25519 public key (the file `privrec keys "
                "generate` writes) to authenticate the bundle, or allow_unsigned=True to load it without (tests only)."
            )
        manifest = load_manifest(root, public_key=key, check_files=False)
        fmt = BACKENDS[backend]
        if fmt not in manifest.artifacts:
            raise ValueError(
                f"backend {backend!r} needs a {fmt!r} artifact; this bundle holds {list(manifest.formats)}. "
                f"Export with --formats {fmt} or pick another backend."
            )
        # Only the files this backend reads are hashed (the other formats' artifacts and weights.safetensors are
        # never opened by this process; `privrec verify` checks every listed file). golden.json's checked bytes are kept
        # for self_test, so it is neither read nor hashed twice.
        verify_files(root, manifest, only=[f for f in backend_files(manifest, backend) if f != GOLDEN_NAME])
        golden = read_listed_file(root, manifest, GOLDEN_NAME)
        runner = get_runner_factory(fmt)(root, manifest.artifact_record(fmt))
        return cls(manifest=manifest, backend=backend, bundle_dir=root, _runner=runner, _golden=golden)

    @property
    def num_items(self) -> int:
        """Number of items in the catalog."""
        return self.manifest.num_items

    @property
    def dim(self) -> int:
        """Dimension of the user vector."""
        return self.manifest.dim

    @property
    def top_k(self) -> int:
        """The largest ``k`` :meth:`recommend` returns (``K`` fixed at export)."""
        return self.manifest.top_k

    @cached_property
    def recipe(self) -> ReconstructionRecipe:
        """How this bundle's devices rebuild their user vector (the manifest's ``finetune`` block)."""
        return ReconstructionRecipe.from_manifest(self.manifest.finetune)

    @cached_property
    def item_features(self) -> NDArray[np.float32] | None:
        """The bundle's public item features ``float32[num_items, f]``, or None (a table not tied to features)."""
        return load_item_features(self.bundle_dir, self.manifest)

    @cached_property
    def _all_ids(self) -> NDArray[np.int32]:
        ids = np.arange(self.num_items, dtype=np.int32)
        ids.setflags(write=False)
        return ids

    @property
    def items(self) -> list[dict[str, Any]]:
        """Item metadata, one ``{"index", "id", "title", …}`` per model row (empty if none was exported)."""
        return self.manifest.items

    @property
    def item_map(self) -> ItemMap:
        """Row ↔ the app's item id for this bundle (the implicit ``str(row)`` map when it has none)."""
        return self.manifest.item_map

    def map_history(self, item_ids: object, weights: object | None = None) -> MappedHistory:
        """Map a history of app item ids (oldest first) onto this bundle's rows.

        Returns the rows and weights of the ids this catalog holds, in order, and the ids it does not hold
        (``dropped``: items removed by a catalog update, or never in it). Raises ``TypeError`` naming the
        first entry that is not a string.
        """
        return self.item_map.map_history(item_ids, weights)

    def _rows(self, values: object) -> object:
        """Rows for an input that may hold app item ids (ids this bundle lacks are left out)."""
        if not holds_item_ids(values):
            return values
        return self.item_map.map_history(values).rows

    def score(self, user: NDArray[np.floating], item_ids: object | None = None) -> NDArray[np.float32]:
        """Scores ``float32[N]`` of ``item_ids`` (1-D ints in ``[0, num_items)``) for ``user`` ``[dim]``.

        ``item_ids=None`` scores the whole catalog (``N = num_items``, in item order) through the
        artifact's whole-catalog signature where it has one (``score_all``, TFLite files of catalogs of
        4,096 items or more), else ``score`` over every id; pick the best with :func:`privrec.runtime.top_k`,
        or call :meth:`recommend`, which fuses the scan and the top-K in one graph.
        """
        u = check_user_vector(user, self.dim)
        if item_ids is None:
            self._check_score_all()
            scores, n = score_catalog(self._runner, u, self._all_ids), self.num_items
        else:
            ids = check_item_ids(item_ids, self.num_items)
            if ids.size == 0:
                return np.zeros(0, np.float32)
            scores, n = self._runner.score(u, ids.astype(np.int32)), ids.size
        if np.shape(scores) != (n,):
            raise ValueError(f"`score` output `scores` must have shape ({n},). Found {np.shape(scores)}: a damaged artifact?")
        _check_output(scores, "score", "scores", " (a user vector too large for float32?)")
        return scores

    def recommend(
        self, user: NDArray[np.floating], exclude: object | None = None, k: int | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The ``k`` best items for ``user`` (highest first) and their scores, never any of ``exclude``.

        ``k`` defaults to, and must not exceed, the exported ``top_k``. Fewer than ``k`` items come back
        only when fewer than ``k`` are not excluded. Ties go to the lower item index. Returns rows
        (``int64[k]``); ``exclude`` holds rows or app item ids. :meth:`recommend_ids` returns app item ids.
        """
        u = check_user_vector(user, self.dim)
        if k is None:
            k = self.top_k
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise TypeError(f"`k` must be an int. Found {type(k).__name__}.")
        if not 1 <= k <= self.top_k:
            raise ValueError(f"`k` must be in [1, {self.top_k}] (the K this bundle was exported with). Found {k}.")
        mask = np.zeros(self.num_items, np.float32)
        if exclude is not None:
            mask[check_item_ids(self._rows(exclude), self.num_items, "exclude")] = -np.inf
        ids, scores = self._runner.recommend(u, mask)
        _check_output(scores, "recommend", "top_scores", " (a user vector too large for float32?)", allow_neg_inf=True)
        ids, scores = np.asarray(ids)[:k], np.asarray(scores, np.float32)[:k]
        keep = np.isfinite(scores)
        return ids[keep].astype(np.int64), scores[keep]

    def recommend_ids(
        self, user: NDArray[np.floating], exclude: object | None = None, k: int | None = None
    ) -> tuple[list[str], NDArray[np.float32]]:
        """:meth:`recommend`, with the app's item ids (through :attr:`item_map`) instead of rows."""
        rows, scores = self.recommend(user, exclude=exclude, k=k)
        return self.item_map.ids_of(rows.tolist()), scores

    def finetune(
        self,
        user: NDArray[np.floating],
        item_ids: object,
        labels: NDArray[np.floating] | None = None,
        lr: float | None = None,
        l2: float | None = None,
    ) -> tuple[NDArray[np.float32], float]:
        """Fit ``user`` to the candidates ``item_ids`` with the exported number of gradient steps.

        Args:
            user: starting vector ``[dim]`` (zeros for a new device).
            item_ids: candidate items, 1-D ints in ``[0, num_items)``, at least one.
            labels: non-negative weights, one per candidate, with a positive sum; default all ones.
            lr: step size; default the manifest's ``finetune.lr``.
            l2: L2 coefficient; default the manifest's ``finetune.l2``.

        Returns ``(user_out float32[dim], loss)``, the loss evaluated at ``user_out``.
        """
        u = check_user_vector(user, self.dim)
        ids = check_item_ids(item_ids, self.num_items)
        if ids.size == 0:
            raise ValueError("`item_ids` must hold at least one item. Found an empty array.")
        if labels is None:
            lab = np.ones(ids.size, np.float32)
        else:
            if not isinstance(labels, np.ndarray):
                raise TypeError(f"`labels` must be a numpy array of shape ({ids.size},). Found {type(labels).__name__}.")
            if labels.dtype.kind not in "fiu" or labels.dtype == np.bool_:
                raise TypeError(f"`labels` must have a numeric dtype. Found {labels.dtype}.")
            if labels.shape != ids.shape:
                raise ValueError(f"`labels` must have shape {ids.shape} (one per item id). Found {labels.shape}.")
            check_finite(labels, "labels")
            lab = labels.astype(np.float32)
            if (lab < 0).any():
                pos = int(np.flatnonzero(lab < 0)[0])
                raise ValueError(f"`labels` must be >= 0. Found {float(lab[pos])} at position {pos}.")
            if float(lab.sum()) <= 0:
                raise ValueError(f"`labels` must have a positive sum. Found {float(lab.sum())}.")
        rate = _check_rate(self.manifest.finetune["lr"] if lr is None else lr, "lr", positive=True)
        decay = _check_rate(self.manifest.finetune["l2"] if l2 is None else l2, "l2", positive=False)
        out, loss = self._runner.finetune(
            u, ids.astype(np.int32), lab, np.array([rate], np.float32), np.array([decay], np.float32)
        )
        hint = f": the steps diverged; lower `lr` (found {rate:g}) or raise `l2` (found {decay:g})"
        _check_output(out, "finetune", "user_out", hint)
        _check_output(loss, "finetune", "loss", hint)
        return np.asarray(out, np.float32), float(np.asarray(loss).reshape(-1)[0])

    def reconstruct(
        self,
        history: object,
        *,
        weights: object | None = None,
        init: NDArray[np.floating] | None = None,
    ) -> NDArray[np.float32]:
        """Fit this device's user vector to its ``history`` (oldest first) — the on-device Federated
        Reconstruction step, run entirely through the exported ``finetune`` signature.

        ``history`` holds rows of this bundle (ints) or the app's item ids (strings, mapped through
        :attr:`item_map`: ids this catalog does not hold — removed by a catalog update — are left out with
        their weights, and logged; :meth:`map_history` reports them). The surviving history then gives the
        vector a device that started on this bundle with it would get.

        Follows the bundle's :attr:`recipe` (:mod:`privrec.sdk.recipe`): the item ``r`` interactions
        before the latest is labelled ``w · 0.5 ** (r / recency_half_life)`` (optional ``weights`` w, default
        1), a repeated item keeps its largest label; ``finetune`` runs ``calls`` times over the whole catalog
        from ``init`` (default zeros). Returns ``float32[dim]``.
        """
        if holds_item_ids(history):
            mapped = self.map_history(history, weights)
            if mapped.dropped:
                _log.info(
                    "reconstruct: %d of %d history entries name items bundle %s does not hold; left out",
                    len(mapped.dropped), len(mapped.dropped) + mapped.rows.size, self.manifest.model_version,
                )
            if mapped.rows.size == 0:
                raise ValueError(
                    f"`history` must name at least one item of this catalog. Found {len(mapped.dropped)} item id(s), "
                    "none in this bundle's item map."
                )
            history, weights = mapped.rows, mapped.weights
        recipe = self.recipe
        labels = recipe.labels(history, self.num_items, weights=weights)
        return recipe.fit(self.finetune, labels, dim=self.dim, init=init)

    def _golden_cases(self) -> dict[str, Any]:
        """``golden.json`` parsed and validated: the bytes :meth:`load` checked, or (a Recommender built without
        it) the file read and hashed now."""
        if self._golden is None:
            return load_golden(self.bundle_dir, self.manifest)
        return parse_golden(self._golden, self.manifest)

    @cached_property
    def _score_all_error(self) -> tuple[float, float] | None:
        """``(max abs error, tolerance)`` of the artifact's ``score_all`` at the golden ``score`` cases' ids, or None
        where the runner has no ``score_all``.

        Computed once, on the first whole-catalog :meth:`score` (not in :meth:`self_test`, so an app that never
        scores the whole catalog does not pay for the signature's first run at start-up)."""
        if not isinstance(self._runner, CatalogScorer):
            return None
        golden = self._golden_cases()
        err, tol = 0.0, float("inf")
        for case in golden["cases"]:
            if case["signature"] != "score":
                continue
            a = case_arrays(case, self.num_items)
            whole = score_all_err(self._runner, a["user"], a["item_ids"], np.asarray(case["outputs"]["scores"]), self.num_items)
            if whole is None:
                return None
            err = max(err, whole)
            tol = min(tol, float(case["tolerance"]))
        return err, tol

    def _check_score_all(self) -> None:
        """Refuse a ``score_all`` that disagrees with ``golden.json`` (checked once; see :attr:`_score_all_error`)."""
        checked = self._score_all_error
        if checked is not None and not checked[0] <= checked[1]:
            raise ValueError(
                f"`score_all` of the {self.backend} artifact disagrees with golden.json's `score` cases (max abs error "
                f"{checked[0]:.3g} > tolerance {checked[1]:.3g}): the artifact or the runtime is broken; "
                "`score(user, item_ids)` still works."
            )

    def self_test(self) -> dict[str, Any]:
        """Run every ``golden.json`` case through this backend (what an app does at start-up).

        ``golden.json``'s bytes were read and checked against the manifest's sha256 by :meth:`load` (and
        kept); here every case is validated (:func:`~privrec.export.golden.parse_golden`) before any runs.

        The three contract signatures; an artifact's optional ``score_all`` is checked against the same
        ``score`` cases on the first whole-catalog :meth:`score` instead (its first run costs start-up time).

        Returns ``{"ok": bool, "tolerance": float, "max_abs_err": {signature: float}, "cases": int}``;
        ``recommend`` also needs its ``top_ids`` to match the golden ones up to ties (ids whose golden
        or returned score is within the tolerance of the K-th golden score may differ).
        """
        golden = self._golden_cases()
        errs = {"score": 0.0, "recommend": 0.0, "finetune": 0.0}
        ids_ok = True
        tol = 0.0
        for case in golden["cases"]:
            a, out, sig = case_arrays(case, self.num_items), case["outputs"], case["signature"]
            tol = max(tol, float(case["tolerance"]))
            if sig == "score":
                err = max_abs_err(self._runner.score(a["user"], a["item_ids"]), np.asarray(out["scores"]))
            elif sig == "recommend":
                ids, scores = self._runner.recommend(a["user"], a["mask"])
                want = np.asarray(out["top_scores"], np.float64)
                err = max_abs_err(scores, want)
                kth = float(want[-1]) - float(case["tolerance"])
                got = dict(zip(np.asarray(ids).tolist(), np.asarray(scores, np.float64).tolist(), strict=True))
                golden_top = dict(zip(out["top_ids"], want.tolist(), strict=True))
                ids_ok &= all(s >= kth for i, s in got.items() if i not in golden_top)
                ids_ok &= all(s >= kth for i, s in golden_top.items() if i not in got)
            else:
                user_out, loss = self._runner.finetune(a["user"], a["item_ids"], a["labels"], a["lr"], a["l2"])
                err = max(
                    max_abs_err(user_out, np.asarray(out["user_out"])),
                    max_abs_err(np.asarray(loss).reshape(1), np.asarray([out["loss"]])),
                )
            errs[sig] = max(errs[sig], err)
        ok = ids_ok and bool(golden["cases"]) and all(e <= tol for e in errs.values())
        return {"ok": ok, "tolerance": tol, "max_abs_err": errs, "cases": len(golden["cases"])}
