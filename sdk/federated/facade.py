"""The Python API the project was announced with (its Quick Start) as a thin facade over the real machinery.

::

    from privrec import FederatedRecommendationSystem
    fed = FederatedRecommendationSystem(num_items=1000, embedding_dim=64, epsilon=1.0, num_clients=50)
    client = fed.register_client("device_000")
    client.add_interaction(item_id=42, rating=0.9)          # stays in the client object ("on device")
    fed.federated_round(["device_000", ...])                # reconstruction, clipping, DP noise, SecAgg
    client.get_recommendations(top_k=10)                    # reconstructs u on the client

What a round runs: every participant reconstructs its user vector locally with the reconstruction recipe
(:class:`~privrec.sdk.recipe.ReconstructionRecipe`), computes its update, clips it to C and adds its share
of the Gaussian noise (:func:`~privrec.sdk.federated.device.device_update`, the function every device
runs, here through the numpy reference of the exported signatures); the noised updates are summed by
**secure aggregation** (:func:`privrec.sdk.secagg.local.simulate_round`: real X25519 key agreement, masks,
Shamir shares, all in this process), so the server learns only the sum; the server's end of the round is
:func:`~privrec.sdk.federated.round.finish_round`, the step the simulation and the HTTP server run too, with
the participants as the cohort (q = 1, denominator n).

Privacy (user-level, add-or-remove-one): ``epsilon`` is a **budget**. The noise multiplier Z is
calibrated with the accountant so that ``max_rounds`` rounds spend at most ``epsilon`` at ``delta``; a
round past the budget raises :class:`~privrec.sdk.errors.PrivacyBudgetExceededError`. **No amplification by
subsampling is claimed**: the caller picks the participants (not a Poisson sample the facade drew), so
every round is accounted with sampling rate q = 1. That is honest and expensive — ε = 1 over a handful
of rounds needs a large Z, and recommendations from such a model are close to popularity. The noise
comes from the secure generator unless ``secure_noise=False`` (seeded; warned and recorded).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ..errors import PrivacyBudgetExceededError
from ..model import ItemModel
from ..privacy import (
    EpsilonReport,
    NoiseGenerator,
    PrivacyAccountant,
    PrivacyLedger,
    PrivacyWarning,
    calibrate_noise_multiplier,
    make_noise_generator,
)
from ..privacy._validate import check_clip_norm, check_delta, check_positive, check_target_epsilon
from ..recipe import ReconstructionRecipe
from ..reconstruct import FinetuneConfig
from ..validation import check_positive_int
from .device import NumpySignatures, RoundConfig, device_update
from .params import ParamLayout
from .round import RoundSetup, cohort_denominator, finish_round
from .server_opt import FedAvgM

__all__ = ["FederatedClient", "FederatedRecommendationSystem", "RoundSummary"]

#: Ratings are label weights in float32 on the device: larger ones would overflow to inf.
_MAX_RATING = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class RoundSummary:
    """What one :meth:`FederatedRecommendationSystem.federated_round` did.

    Attributes:
        round: 1-based round number.
        participants: number of clients whose updates were aggregated.
        noise_multiplier: Z of the noise on the sum.
        epsilon: stated ε (RDP) spent so far, at :attr:`delta`.
        delta: the δ of the budget.
        secure_aggregation: whether the sum went through secure aggregation (else summed in the clear).
    """

    round: int
    participants: int
    noise_multiplier: float
    epsilon: float
    delta: float
    secure_aggregation: bool


class FederatedClient:
    """One device: its interactions stay in this object; it computes its own update and recommendations.

    Create it with :meth:`FederatedRecommendationSystem.register_client`.
    """

    def __init__(self, system: FederatedRecommendationSystem, client_id: str) -> None:
        self._system = system
        self._client_id = client_id
        self._ratings: dict[int, float] = {}

    @property
    def client_id(self) -> str:
        """The id the client registered with."""
        return self._client_id

    @property
    def num_interactions(self) -> int:
        """Number of distinct items the client interacted with."""
        return len(self._ratings)

    def add_interaction(self, item_id: int, rating: float = 1.0) -> None:
        """Record an interaction on the device. ``rating`` ≥ 0 is the item's label weight (the latest
        rating of an item replaces earlier ones).

        Raises:
            TypeError: ``item_id`` is not an int or ``rating`` not a real number.
            ValueError: ``item_id`` outside ``[0, num_items)``, or ``rating`` negative or not finite.
        """
        n = self._system.num_items
        if isinstance(item_id, bool) or not isinstance(item_id, int | np.integer):
            raise TypeError(f"`item_id` must be an int. Found {type(item_id).__name__}.")
        if not 0 <= int(item_id) < n:
            raise ValueError(f"`item_id` must be in [0, {n}). Found {item_id}.")
        if isinstance(rating, bool) or not isinstance(rating, int | float | np.integer | np.floating):
            raise TypeError(f"`rating` must be a float. Found {type(rating).__name__}.")
        r = float(rating)
        if not (math.isfinite(r) and 0.0 <= r <= _MAX_RATING):
            raise ValueError(f"`rating` must be a finite float in [0, {_MAX_RATING:.3g}]. Found {rating}.")
        self._ratings.pop(int(item_id), None)  # the history is in order of the latest interaction
        self._ratings[int(item_id)] = r

    def _labels(self) -> NDArray[np.float32] | None:
        if not any(r > 0 for r in self._ratings.values()):
            return None
        ids = np.asarray(list(self._ratings), np.int64)
        weights = np.asarray(list(self._ratings.values()), np.float64)
        return self._system.recipe.labels(ids, self._system.num_items, weights=weights)

    def compute_update(self, config: RoundConfig, noise: NoiseGenerator) -> NDArray[np.float32]:
        """This client's contribution to a round (runs on the device): its clipped, noise-shared update, or —
        with no positive interaction yet — just a noise share (a zero update, still private)."""
        system = self._system
        labels = self._labels()
        if labels is None:
            share = noise.normal(system.layout.size, std=config.noise_std) if config.noise_std > 0 else 0.0
            return (np.zeros(system.layout.size) + share).astype(np.float32)
        return device_update(system.signatures, labels, recipe=system.recipe, layout=system.layout, config=config,
                             noise=noise).vector

    def get_recommendations(self, top_k: int = 10) -> list[int]:
        """The ``top_k`` highest-scoring items the client has not interacted with, best first.

        The user vector is reconstructed here, from this client's interactions, with the current global
        parameters frozen; without interactions the ranking is the item bias (popularity).
        """
        k = check_positive_int(top_k, "top_k")
        system = self._system
        model = system.item_model
        labels = self._labels()
        u = np.zeros(model.dim, np.float32) if labels is None else system.recipe.fit(
            system.signatures.finetune, labels, dim=model.dim)
        seen = np.asarray(sorted(self._ratings), np.int64)
        top, _ = model.recommend(u, k=k, exclude=seen if seen.size else None)
        return [int(i) for i in top if int(i) not in self._ratings][:k]

    def __repr__(self) -> str:
        return f"FederatedClient({self._client_id!r}, interactions={self.num_interactions})"


class FederatedRecommendationSystem:
    """Federated training of the compact recommender with user-level DP and secure aggregation.

    Args:
        num_items: catalog size (items are ``0 … num_items − 1``).
        embedding_dim: d.
        epsilon: the ε budget (> 0) for the whole training.
        num_clients: the expected population size N; sets the default δ.
        delta: δ in (0, 1); default ``min(1e-5, 0.1 / num_clients)`` (δ ≪ 1/N).
        max_rounds: rounds the budget is planned for (the noise is calibrated so these fit in ε).
        clip_norm: C, the L2 bound of one client's update.
        local_lr: a client's update is ``−local_lr ·`` its gradient at its reconstructed vector.
        server_lr, server_momentum: FedAvg with momentum on the server.
        dp_mode: ``"distributed"`` (default: each client adds its noise share before secure aggregation) or
            ``"central"`` (the server adds the noise to the sum).
        secure_aggregation: run :func:`privrec.sdk.secagg.simulate_round` (default); False sums in the
            clear (warned).
        secure_noise: secure noise generator (default); False uses one seeded by ``seed`` (warned, recorded).
        seed: seeds the initial item table (and the noise when ``secure_noise=False``).
        finetune: how clients reconstruct their user vector.
    """

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 32,
        epsilon: float = 1.0,
        num_clients: int = 100,
        *,
        delta: float | None = None,
        max_rounds: int = 20,
        clip_norm: float = 1.0,
        local_lr: float = 10.0,
        server_lr: float = 1.0,
        server_momentum: float = 0.0,
        dp_mode: Literal["distributed", "central"] = "distributed",
        secure_aggregation: bool = True,
        secure_noise: bool = True,
        seed: int = 0,
        init_std: float = 0.1,
        finetune: FinetuneConfig | None = None,
    ) -> None:
        self.num_items = check_positive_int(num_items, "num_items")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.epsilon = check_target_epsilon(epsilon, "epsilon")
        self.num_clients = check_positive_int(num_clients, "num_clients")
        self.delta = check_delta(delta if delta is not None else min(1e-5, 0.1 / self.num_clients))
        self.max_rounds = check_positive_int(max_rounds, "max_rounds")
        self.clip_norm = check_clip_norm(clip_norm)
        self.local_lr = check_positive(local_lr, "local_lr")
        if dp_mode not in ("distributed", "central"):
            raise ValueError(f"`dp_mode` must be 'distributed' or 'central'. Found {dp_mode!r}.")
        self.dp_mode: Literal["distributed", "central"] = dp_mode
        for name, flag in (("secure_aggregation", secure_aggregation), ("secure_noise", secure_noise)):
            if not isinstance(flag, bool):
                raise TypeError(f"`{name}` must be a bool. Found {type(flag).__name__}.")
        self.secure_aggregation = secure_aggregation
        if not secure_aggregation:
            warnings.warn("secure_aggregation=False: client updates are summed in the clear.", PrivacyWarning,
                          stacklevel=2)
        self.finetune = finetune or FinetuneConfig()
        #: How clients rebuild their user vector: the facade's ``finetune``, with ratings as label weights.
        self.recipe = ReconstructionRecipe(steps=self.finetune.steps, lr=self.finetune.lr, l2=self.finetune.l2,
                                           calls=self.finetune.calls)
        self.layout = ParamLayout(num_items=self.num_items, dim=self.embedding_dim)
        self._params = self.layout.init(init_std=check_positive(init_std, "init_std"), seed=seed)
        self._optimizer = FedAvgM(lr=server_lr, momentum=server_momentum)
        # Caller-chosen participants: no amplification by subsampling, so q = 1 (module docstring).
        self.noise_multiplier = calibrate_noise_multiplier(
            target_epsilon=self.epsilon, sample_rate=1.0, rounds=self.max_rounds, delta=self.delta
        )
        self._noise = make_noise_generator(secure=secure_noise, seed=None if secure_noise else seed)
        self._accountant = PrivacyAccountant(delta=self.delta)
        self._clients: dict[str, FederatedClient] = {}
        self._round = 0
        self._seed = seed

    @property
    def item_model(self) -> ItemModel:
        """The current global model (item table and bias)."""
        return self.layout.item_model(self._params)

    @property
    def signatures(self) -> NumpySignatures:
        """The current model's ``score`` and ``finetune`` signatures, as a device runs them (numpy reference)."""
        return NumpySignatures(self.item_model, self.finetune.steps)

    @property
    def rounds(self) -> int:
        """Rounds run so far."""
        return self._round

    @property
    def clients(self) -> dict[str, FederatedClient]:
        """The registered clients by id (a copy)."""
        return dict(self._clients)

    def register_client(self, client_id: str) -> FederatedClient:
        """Register a device and return its :class:`FederatedClient`.

        Raises:
            TypeError: ``client_id`` is not a non-empty str.
            ValueError: ``client_id`` is already registered.
        """
        if not isinstance(client_id, str) or not client_id:
            raise TypeError(f"`client_id` must be a non-empty str. Found {client_id!r}.")
        if client_id in self._clients:
            raise ValueError(f"`client_id` must be new. Found {client_id!r}, which is already registered.")
        client = FederatedClient(self, client_id)
        self._clients[client_id] = client
        return client

    def federated_round(self, client_ids: list[str] | tuple[str, ...]) -> RoundSummary:
        """Run one round with the given participants (see the module docstring).

        Raises:
            PrivacyBudgetExceededError: the round would take the stated ε past ``epsilon``.
            ValueError: unknown or repeated ids, no participant, or a single participant with secure
                aggregation (it needs at least 2).
        """
        ids = list(client_ids)
        if not ids:
            raise ValueError("`client_ids` must name at least one registered client. Found none.")
        for pos, cid in enumerate(ids):
            if cid not in self._clients:
                raise ValueError(f"`client_ids` must be registered clients. Found {cid!r} at position {pos}.")
        if len(set(ids)) != len(ids):
            dup = next(c for c in ids if ids.count(c) > 1)
            raise ValueError(f"`client_ids` must be distinct. Found {dup!r} twice.")
        if self.secure_aggregation and len(ids) < 2:
            raise ValueError(f"secure aggregation needs at least 2 participants. Found {len(ids)}.")
        n = len(ids)
        setup = RoundSetup(
            dp_mode=self.dp_mode, noise_multiplier=self.noise_multiplier, clip_norm=self.clip_norm, sample_rate=1.0,
            denominator=cohort_denominator(sample_rate=1.0, population=n), local_lr=self.local_lr,
            min_survivors=n if self.dp_mode == "distributed" else 1,
        )
        if self._accountant.would_exceed(budget=self.epsilon, next_event=setup.event()):
            raise PrivacyBudgetExceededError(
                f"round {self._round + 1} would take ε past the budget {self.epsilon} (spent "
                f"{self._accountant.epsilon_rdp():.4f} at δ={self.delta} over {self._round} rounds)."
            )
        config = setup.device_config()
        vectors = np.empty((n, self.layout.size), np.float64)
        for row, cid in enumerate(ids):
            vectors[row] = self._clients[cid].compute_update(config, self._noise)
        total = self._aggregate(vectors, setup)
        outcome = finish_round(self._params, total, setup=setup, survivors=n, optimizer=self._optimizer,
                               noise=self._noise)
        if outcome.event is not None:
            self._accountant.compose(outcome.event)
        self._round += 1
        return RoundSummary(round=self._round, participants=n, noise_multiplier=self.noise_multiplier,
                            epsilon=self._accountant.epsilon_rdp(), delta=self.delta,
                            secure_aggregation=self.secure_aggregation)

    def _aggregate(self, vectors: NDArray[np.float64], setup: RoundSetup) -> NDArray[np.float64]:
        if not self.secure_aggregation:
            clear: NDArray[np.float64] = vectors.sum(axis=0)
            return clear
        from ..secagg.local import simulate_round

        n = vectors.shape[0]
        total, _ = simulate_round(vectors, threshold=n // 2 + 1, clip_range=setup.clip_range,
                                  seed=self._seed * 100_003 + self._round)
        return np.asarray(total, np.float64)

    def privacy_spent(self) -> EpsilonReport:
        """(ε, δ) spent so far by both accountants (``.epsilon`` is the stated RDP value)."""
        return self._accountant.epsilon()

    def ledger(self) -> PrivacyLedger:
        """The privacy ledger of the rounds run so far (what the bundle manifest records)."""
        return PrivacyLedger.from_accountant(self._accountant, mode=self.dp_mode, secure_noise=self._noise.secure)

    def __repr__(self) -> str:
        return (f"FederatedRecommendationSystem(num_items={self.num_items}, embedding_dim={self.embedding_dim}, "
                f"epsilon={self.epsilon}, rounds={self._round}/{self.max_rounds}, clients={len(self._clients)})")

    def summary(self) -> dict[str, Any]:
        """A JSON-able description of the system's privacy settings and progress."""
        return {"num_items": self.num_items, "embedding_dim": self.embedding_dim, "epsilon": self.epsilon,
                "delta": self.delta, "max_rounds": self.max_rounds, "rounds": self._round,
                "noise_multiplier": self.noise_multiplier, "clip_norm": self.clip_norm,
                "dp_mode": self.dp_mode, "sample_rate_accounted": 1.0,
                "secure_aggregation": self.secure_aggregation}
