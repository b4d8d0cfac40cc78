"""The founding document's component names, running as it showed them, over privrec's real machinery.

The project was announced with a document that named seven components and four snippets. None of them
is privrec's own API, but every snippet runs here with only its import changed::

    from privrec.compat import CoreMLExporter, MobileOptimizedRecommender, TensorFlowLiteExporter

    model = MobileOptimizedRecommender(num_items=1000, embedding_dim=32)
    CoreMLExporter.export_to_coreml(model, 1000, 32, "Recommender.mlmodel")
    TensorFlowLiteExporter.export_to_tflite(model, 1000, 32, "recommender.tflite")

Each name is a thin wrapper; nothing here is a second implementation:

=============================  ==============================================================================
founding name                  what runs
=============================  ==============================================================================
``PrivateRecommenderModel``    :class:`~privrec.sdk.model.ItemModel` (item table + bias) and a user vector
                               rebuilt on the device by :class:`~privrec.sdk.recipe.ReconstructionRecipe`
``MobileOptimizedRecommender`` the same model quantized by :func:`~privrec.sdk.quantize.quantize_int8`
                               (optionally magnitude-pruned first)
``DifferentialPrivacy``        :func:`~privrec.sdk.privacy.clip_l2`, the central noise of
                               :func:`~privrec.sdk.federated.round.finish_round` and the
                               :class:`~privrec.sdk.privacy.PrivacyAccountant`
``SecureAggregator``           :func:`privrec.sdk.secagg.local.simulate_round` (real key agreement, masks and
                               Shamir shares, every party in this process)
``FederatedClient``            :class:`privrec.sdk.federated.facade.FederatedClient`
``CoreMLExporter``             :func:`privrec.export.export_format` with ``"coreml"``
``TensorFlowLiteExporter``     :func:`privrec.export.export_format` with ``"tflite"``
=============================  ==============================================================================

Deliberate deviations, each explained on the docs page "Coming from the founding document": the model is
matrix factorisation with a local user vector, not "item embeddings + user network + prediction head";
secure aggregation is by secret sharing and masking, not homomorphic encryption; Core ML is written as
ML-program packages (``.mlpackage``), not a single ``.mlmodel`` file.

Heavy dependencies load on first use: Core ML export needs ``privrec[export]``, accounting needs
dp-accounting (``privrec[server]`` or ``privrec[train]``); importing this module needs neither.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from privrec._lazy import lazy_exports
from privrec.sdk.errors import PrivacyBudgetExceededError
from privrec.sdk.federated.device import NumpySignatures
from privrec.sdk.federated.round import RoundSetup, finish_round
from privrec.sdk.model import ItemModel
from privrec.sdk.privacy.clipping import clip_l2
from privrec.sdk.privacy.noise import make_noise_generator
from privrec.sdk.quantize import QuantizedItemModel, quantize_int8
from privrec.sdk.recipe import ReconstructionRecipe
from privrec.sdk.validation import check_positive_int

if TYPE_CHECKING:
    from privrec.export.base import ArtifactRecord
    from privrec.sdk.federated.facade import FederatedClient, FederatedRecommendationSystem
    from privrec.sdk.privacy.accountant import EpsilonReport, PrivacyAccountant
    from privrec.sdk.secagg.local import SimulationStats

__all__ = [
    "CoreMLExporter",
    "DifferentialPrivacy",
    "FederatedClient",
    "FederatedRecommendationSystem",
    "MobileOptimizedRecommender",
    "PrivateRecommenderModel",
    "SecureAggregator",
    "TensorFlowLiteExporter",
]

# The facade loads the accountant (dp-accounting) on import, so it is imported on first use (PEP 562).
_LAZY = {
    "FederatedClient": "privrec.sdk.federated.facade",
    "FederatedRecommendationSystem": "privrec.sdk.federated.facade",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


class PrivateRecommenderModel:
    """The founding document's ``PrivateRecommenderModel``: privrec's compact recommender.

    Score ``s(u, i) = u · V[i] + b[i]``: the founding document's "item embeddings" are the item table ``V``,
    its "prediction head" is the dot product plus the item bias ``b``, and its "user network" is replaced
    by a user vector ``u`` that the device fits to its own history (:meth:`user_vector`) with the global
    parameters frozen. Only ``V`` and ``b`` are shared and trained federated; ``u`` never leaves the device.

    Args:
        num_items: catalog size (items are ``0 … num_items − 1``).
        embedding_dim: d.
        seed: seeds the initial item table.
        init_std: std of the initial item table (the bias starts at 0).
        recipe: how a device rebuilds its user vector; default :class:`ReconstructionRecipe()`.
    """

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 32,
        *,
        seed: int = 0,
        init_std: float = 0.1,
        recipe: ReconstructionRecipe | None = None,
    ) -> None:
        n = check_positive_int(num_items, "num_items")
        d = check_positive_int(embedding_dim, "embedding_dim")
        if isinstance(init_std, bool) or not isinstance(init_std, int | float) or not (
            math.isfinite(init_std) and init_std > 0
        ):
            raise ValueError(f"`init_std` must be a finite float > 0. Found {init_std!r}.")
        rng = np.random.default_rng(seed)
        self._items = ItemModel(
            item_embedding=rng.normal(scale=init_std, size=(n, d)).astype(np.float32),
            item_bias=np.zeros(n, np.float32),
        )
        self._recipe = recipe or ReconstructionRecipe()
        if not isinstance(self._recipe, ReconstructionRecipe):
            raise TypeError(f"`recipe` must be a ReconstructionRecipe. Found {type(recipe).__name__}.")

    @classmethod
    def from_item_model(cls, items: ItemModel, *, recipe: ReconstructionRecipe | None = None) -> PrivateRecommenderModel:
        """Wrap trained global parameters (for example ``train_central(...).model.items``)."""
        if not isinstance(items, ItemModel):
            raise TypeError(f"`items` must be an ItemModel. Found {type(items).__name__}.")
        model = cls(items.num_items, items.dim, recipe=recipe)
        model._items = items
        return model

    @property
    def item_model(self) -> ItemModel:
        """The global parameters (float32)."""
        return self._items

    @property
    def recipe(self) -> ReconstructionRecipe:
        """How a device rebuilds its user vector."""
        return self._recipe

    @property
    def num_items(self) -> int:
        """Catalog size."""
        return self._items.num_items

    @property
    def embedding_dim(self) -> int:
        """d."""
        return self._items.dim

    def exportable(self) -> ItemModel | QuantizedItemModel:
        """What an exporter writes: the float32 model."""
        return self._items

    def user_vector(self, history: object, *, weights: object | None = None) -> NDArray[np.float32]:
        """Fit a user vector ``float32[d]`` to ``history`` (item ids, oldest first), as a device does:
        the recipe's labels, then its ``finetune`` calls over the whole catalog (numpy reference)."""
        labels = self._recipe.labels(history, self.num_items, weights=weights)
        signatures = NumpySignatures(self._items, self._recipe.steps)
        return self._recipe.fit(signatures.finetune, labels, dim=self.embedding_dim)

    def score(self, user: NDArray[np.floating], item_ids: object | None = None) -> NDArray[np.float32]:
        """Scores ``float32[N]`` of ``item_ids`` (all items when None) for ``user``."""
        return self._items.score(user, item_ids)

    def recommend(self, user: NDArray[np.floating], top_k: int = 10, exclude: object | None = None) -> list[int]:
        """The ``top_k`` best item ids for ``user``, best first, never any of ``exclude``."""
        k = check_positive_int(top_k, "top_k")
        ids, _ = self._items.recommend(user, k=k, exclude=exclude)
        return [int(i) for i in ids]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_items={self.num_items}, embedding_dim={self.embedding_dim})"


class MobileOptimizedRecommender(PrivateRecommenderModel):
    """The founding document's ``MobileOptimizedRecommender``: the same model, int8 for the phone.

    Exports an int8 item table with one float32 scale per row (:func:`~privrec.sdk.quantize.quantize_int8`);
    with ``sparsity > 0`` the table is first magnitude-pruned (:func:`~privrec.sdk.prune.magnitude_prune`;
    fine-tuning after pruning needs training data: see :func:`~privrec.sdk.prune.prune_and_finetune`).

    Args:
        num_items: catalog size.
        embedding_dim: d.
        sparsity: fraction of item-table entries set to zero before quantization, in [0, 1).
        seed, init_std, recipe: as for :class:`PrivateRecommenderModel`.
    """

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 32,
        *,
        sparsity: float = 0.0,
        seed: int = 0,
        init_std: float = 0.1,
        recipe: ReconstructionRecipe | None = None,
    ) -> None:
        super().__init__(num_items, embedding_dim, seed=seed, init_std=init_std, recipe=recipe)
        if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0.0 <= float(sparsity) < 1.0:
            raise ValueError(f"`sparsity` must be in [0, 1). Found {sparsity!r}.")
        self._sparsity = float(sparsity)

    @property
    def sparsity(self) -> float:
        """The target sparsity of the exported item table."""
        return self._sparsity

    def exportable(self) -> QuantizedItemModel:
        """The int8 model the exporters write (pruned first when ``sparsity > 0``)."""
        items = self._items
        if self._sparsity > 0:
            from privrec.sdk.prune import magnitude_prune  # loads the training code (torch): only when pruning

            items, _ = magnitude_prune(items, self._sparsity)
        return quantize_int8(items)


def _exportable(model: object, num_items: object, embedding_dim: object) -> ItemModel | QuantizedItemModel:
    """The model to export, after checking the founding call's explicit sizes against it."""
    if isinstance(model, PrivateRecommenderModel):
        exportable: ItemModel | QuantizedItemModel = model.exportable()
    elif isinstance(model, ItemModel | QuantizedItemModel):
        exportable = model
    else:
        raise TypeError(
            "`model` must be a PrivateRecommenderModel, MobileOptimizedRecommender, ItemModel or QuantizedItemModel. "
            f"Found {type(model).__name__}."
        )
    n = check_positive_int(num_items, "num_items")
    d = check_positive_int(embedding_dim, "embedding_dim")
    if n != exportable.num_items:
        raise ValueError(f"`num_items` must match the model ({exportable.num_items}). Found {n}.")
    if d != exportable.dim:
        raise ValueError(f"`embedding_dim` must match the model ({exportable.dim}). Found {d}.")
    return exportable


class CoreMLExporter:
    """The founding document's ``CoreMLExporter``: :func:`privrec.export.export_format` for Core ML."""

    @staticmethod
    def export_to_coreml(model: object, num_items: int, embedding_dim: int, path: str | Path) -> ArtifactRecord:
        """Write the Core ML artifact for ``model`` next to ``path``.

        Core ML ML programs are packages (``.mlpackage`` directories), not one ``.mlmodel`` file, and an iOS16
        package holds one function, so ``"Recommender.mlmodel"`` becomes three packages in the same folder,
        named after its stem: ``RecommenderScore.mlpackage``, ``RecommenderRecommend.mlpackage`` and
        ``RecommenderFinetune.mlpackage`` (existing ones are replaced). Xcode generates one class per package.

        Args:
            model: a :class:`PrivateRecommenderModel` (float32), :class:`MobileOptimizedRecommender` (int8),
                or an ``ItemModel`` / ``QuantizedItemModel``.
            num_items, embedding_dim: must equal the model's (the founding signature passes them explicitly).
            path: where the founding document wrote its ``.mlmodel``; its folder and stem are used.

        Returns:
            The exporter's :class:`~privrec.export.ArtifactRecord`, with ``files`` relative to ``path``'s folder.
        """
        from privrec.export import export_format
        from privrec.export.base import ArtifactRecord
        from privrec.export.coreml import DENSE_PACKAGES

        exportable = _exportable(model, num_items, embedding_dim)
        target = Path(path)
        folder, stem = target.parent, target.stem
        folder.mkdir(parents=True, exist_ok=True)
        renames = {pkg: f"{stem}{pkg.removeprefix('Recommender')}" for pkg in DENSE_PACKAGES.values()}
        with tempfile.TemporaryDirectory(prefix=".coreml-", dir=folder) as tmp:
            record = export_format(exportable, tmp, "coreml", coreml_targets=("iOS16",))  # one class per package
            for old, new in renames.items():
                dest = folder / new
                if dest.exists():
                    shutil.rmtree(dest)
                (Path(tmp) / old).rename(dest)
        files = tuple(
            next((new + f.removeprefix(old) for old, new in renames.items() if f.startswith(old + "/")), f)
            for f in record.files
        )
        return ArtifactRecord(format=record.format, precision=record.precision, files=files,
                              signatures=record.signatures, details=record.details)


class TensorFlowLiteExporter:
    """The founding document's ``TensorFlowLiteExporter``: :func:`privrec.export.export_format` for TFLite."""

    @staticmethod
    def export_to_tflite(model: object, num_items: int, embedding_dim: int, path: str | Path) -> Path:
        """Write ``model`` as one ``.tflite`` file at ``path`` (replaced if it exists) and return its path.

        The file holds three named signatures, ``score``, ``recommend`` and ``finetune`` (docs: the bundle
        format), every op a TFLite builtin; load it with LiteRT's ``Interpreter`` and call
        ``get_signature_runner("recommend")``.

        Args:
            model: as for :meth:`CoreMLExporter.export_to_coreml`.
            num_items, embedding_dim: must equal the model's.
            path: the ``.tflite`` file to write.
        """
        from privrec.export import export_format
        from privrec.export.tflite import TFLITE_FILE

        exportable = _exportable(model, num_items, embedding_dim)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".tflite-", dir=target.parent) as tmp:
            export_format(exportable, tmp, "tflite")
            (Path(tmp) / TFLITE_FILE).replace(target)
        return target


class _Capture:
    """A server optimizer that only records the update it is handed (lets :class:`DifferentialPrivacy` run
    the central-DP part of :func:`finish_round` without applying anything)."""

    def __init__(self) -> None:
        self.update: NDArray[np.float64] | None = None

    def step(self, params: NDArray[np.float32], update: NDArray[np.float64]) -> None:
        self.update = update


class DifferentialPrivacy:
    """The founding document's ``DifferentialPrivacy``: clipping, noise and accounting, user-level.

    Each call of :meth:`privatize` is one release of the Poisson-subsampled Gaussian mechanism (McMahan et
    al. 2018, Alg. 1): every row (one user's update) is clipped to L2 norm C, the rows are summed, and
    ``N(0, (Z·C)²)`` is added per coordinate, with Z calibrated by the accountant so that ``rounds`` releases
    at sampling rate ``sample_rate`` spend at most ``epsilon`` at ``delta`` (RDP bound, dp-accounting). A
    release past the budget raises :class:`~privrec.sdk.errors.PrivacyBudgetExceededError`.

    ``sample_rate`` must be the probability with which each user was *independently* sampled into the
    release; if you choose the users yourself, leave it at 1 (no amplification by subsampling is claimed).

    Args:
        epsilon: ε budget > 0 for all ``rounds`` releases.
        delta: δ in (0, 1); choose δ well below 1 / (number of users).
        clip_norm: C > 0.
        sample_rate: q in (0, 1].
        rounds: releases the budget is planned for.
        secure_noise: ChaCha20-keyed Gaussian noise (default); False needs ``seed`` (warned, for tests).
        seed: seeds the noise when ``secure_noise=False``.
    """

    def __init__(
        self,
        *,
        epsilon: float,
        delta: float,
        clip_norm: float = 1.0,
        sample_rate: float = 1.0,
        rounds: int = 1,
        secure_noise: bool = True,
        seed: int | None = None,
    ) -> None:
        from privrec.sdk.privacy.accountant import PrivacyAccountant
        from privrec.sdk.privacy.calibrate import calibrate_noise_multiplier

        self.epsilon = float(epsilon)
        self.rounds = check_positive_int(rounds, "rounds")
        self.noise_multiplier = calibrate_noise_multiplier(
            target_epsilon=epsilon, sample_rate=sample_rate, rounds=self.rounds, delta=delta
        )
        self.clip_norm = float(clip_norm)
        self.sample_rate = float(sample_rate)
        self._noise = make_noise_generator(secure=secure_noise, seed=None if secure_noise else seed)
        self._accountant: PrivacyAccountant = PrivacyAccountant(delta=delta)
        self._setup()  # validates C and q now, not at the first release

    def _setup(self) -> RoundSetup:
        return RoundSetup(dp_mode="central", noise_multiplier=self.noise_multiplier, clip_norm=self.clip_norm,
                          sample_rate=self.sample_rate, denominator=1.0, local_lr=1.0)

    def clip(self, updates: NDArray[np.floating]) -> tuple[NDArray[np.floating], NDArray[np.float64]]:
        """``(clipped, norms)``: every row of ``updates [users, D]`` scaled to L2 norm ≤ C; norms before clipping."""
        return clip_l2(updates, clip_norm=self.clip_norm)

    def privatize(self, updates: NDArray[np.floating]) -> NDArray[np.float64]:
        """One release: the noised sum ``float64[D]`` of the clipped rows of ``updates [users, D]``.

        Raises:
            PrivacyBudgetExceededError: this release would take the stated ε past ``epsilon``.
        """
        setup = self._setup()
        if self._accountant.would_exceed(budget=self.epsilon, next_event=setup.event()):
            raise PrivacyBudgetExceededError(
                f"release {self._accountant.rounds + 1} would take ε past the budget {self.epsilon} (spent "
                f"{self._accountant.epsilon_rdp():.4f} at δ={self._accountant.delta} over {self._accountant.rounds} releases)."
            )
        clipped, _ = self.clip(updates)
        total = np.asarray(clipped, np.float64).sum(axis=0)
        capture = _Capture()
        outcome = finish_round(np.zeros(total.shape, np.float32), total, setup=setup, survivors=clipped.shape[0],
                               optimizer=capture, noise=self._noise)
        if outcome.event is not None:
            self._accountant.compose(outcome.event)
        if capture.update is None:  # pragma: no cover - central mode always applies
            raise RuntimeError("the round step applied nothing")
        return capture.update

    def spent(self) -> EpsilonReport:
        """(ε, δ) spent so far by both accountants (``.epsilon`` is the stated RDP value)."""
        return self._accountant.epsilon()

    @property
    def releases(self) -> int:
        """Releases made so far."""
        return self._accountant.rounds


class SecureAggregator:
    """The founding document's ``SecureAggregator``: the server learns only the sum of the submitted updates.

    :meth:`aggregate` runs one round of secure aggregation (Bonawitz et al. 2017 with the SecAgg+ graph of
    Bell et al. 2020) over the submitted updates, every party in this process: X25519 key agreement,
    pairwise and self masks, AES-GCM-encrypted Shamir shares, fixed-point encoding mod 2³². Updates are
    masked and secret-shared, not homomorphically encrypted. In a deployment the parties are separate:
    devices run :class:`privrec.sdk.secagg.SecAggClient` (through :class:`privrec.runtime.Device`) and the
    server :class:`privrec.server_stub.RoundManager`.

    Args:
        clip_range: every coordinate is clipped to ``[-clip_range, clip_range]`` by the fixed-point encoding
            (use the L2 clip norm C of the updates).
        threshold_fraction: the Shamir threshold is ``floor(f · n) + 1`` of n submitters (f ≥ 0.5 keeps it
            above half).
        neighbours: k of the SecAgg+ graph, or None for the full mesh.
        seed: seeds the public graph (the cryptography uses ``secrets``).
    """

    def __init__(self, *, clip_range: float, threshold_fraction: float = 0.5, neighbours: int | None = None,
                 seed: int = 0) -> None:
        if isinstance(clip_range, bool) or not isinstance(clip_range, int | float) or not (
            math.isfinite(clip_range) and clip_range > 0
        ):
            raise ValueError(f"`clip_range` must be a finite float > 0. Found {clip_range!r}.")
        if not isinstance(threshold_fraction, int | float) or not 0.0 <= threshold_fraction < 1.0:
            raise ValueError(f"`threshold_fraction` must be in [0, 1). Found {threshold_fraction!r}.")
        self.clip_range = float(clip_range)
        self.threshold_fraction = float(threshold_fraction)
        self.neighbours = neighbours
        self._seed = seed
        self._updates: dict[str, NDArray[np.float64]] = {}
        self.last_stats: SimulationStats | None = None

    def submit(self, client_id: str, update: NDArray[np.floating]) -> None:
        """Hold one client's update (``float[D]``) for the next :meth:`aggregate`.

        Raises:
            ValueError: a repeated ``client_id``, or an update whose length differs from the first one's.
        """
        if client_id in self._updates:
            raise ValueError(f"`client_id` must submit once per round. Found {client_id!r} twice.")
        vec = np.asarray(update, np.float64).reshape(-1)
        first = next(iter(self._updates.values()), None)
        if first is not None and vec.shape != first.shape:
            raise ValueError(f"`update` must have length {first.shape[0]} like the first one. Found {vec.shape[0]}.")
        self._updates[client_id] = vec

    def aggregate(self) -> NDArray[np.float64]:
        """Run the round over the submitted updates and return their sum ``float64[D]``; clears them.

        Raises:
            ValueError: fewer than 2 submitted updates (a sum of one is that one update).
            privrec.sdk.secagg.SecAggAbortedError: too few survivors (not raised without dropouts).
        """
        from privrec.sdk.secagg.local import simulate_round

        n = len(self._updates)
        if n < 2:
            raise ValueError(f"secure aggregation needs at least 2 submitted updates. Found {n}.")
        vectors = np.stack(list(self._updates.values()))
        threshold = max(2, min(n, math.floor(self.threshold_fraction * n) + 1))
        total, stats = simulate_round(vectors, threshold=threshold, neighbours=self.neighbours,
                                      clip_range=self.clip_range, seed=self._seed)
        self._seed += 1
        self._updates.clear()
        self.last_stats = stats
        return total

    def __repr__(self) -> str:
        return f"SecureAggregator(pending={len(self._updates)}, clip_range={self.clip_range})"
