"""A semi-synthetic population of any size, fitted to MovieLens-100K: users generated on demand by index.

**Semi-synthetic, not real data.** Nothing of a real user is released; the generator is a smoothed
resampling of a model fitted to the real log, meant for measuring how federated training with
user-level DP scales with the number of devices N (10k to 1M), which MovieLens (943 users) cannot show.

The design (:func:`fit_population`):

1. a central model ``s(u, i) = u·V[i] + b[i]`` (d = 32, full softmax, uniform labels) is trained on the
   real leave-one-out training pairs; every real user's vector is then **reconstructed** from their
   training items with the items frozen (what a device would compute);
2. a synthetic user ``k`` picks a real user ``j`` uniformly and takes their history length ``L_j``
   (train + validation + test, so lengths follow the empirical distribution exactly) and the vector
   ``u_j + H z``, ``z ~ N(0, I_d)``: a Gaussian kernel density estimate of the reconstructed vectors
   (Silverman's rule, ``H Hᵀ = h² Σ``, Σ their covariance; Silverman 1986, "Density Estimation", eq. 4.14),
   sampled jointly with the length because heavy users' vectors differ from light users';
3. the user's ``L`` distinct items are drawn without replacement from ``softmax((V u + b) / τ)``
   (Gumbel-top-k: the ``L`` largest of ``(V u + b)/τ + Gumbel noise`` are a draw of sequential sampling
   without replacement; Vieira 2014, Kool et al. 2019 §2), and put in a uniformly random time order:
   the synthetic log has no temporal drift, so the latest item (test) and second latest (validation)
   are exchangeable with the training items;
4. the temperature τ is calibrated by bisection so that the central model, evaluated by reconstruction
   on synthetic users' test items (full-catalog HR@10), scores what it scores on the real users' test
   items: the synthetic population is as hard to recommend for as the real one.

**Streaming and reproducibility.** User ``k`` of a population with seed ``s`` is a pure function of
``(s, k)`` (its own ``numpy.random.Generator`` seeded by ``SeedSequence([s, k])``), so any subset of users
can be generated at any time in any chunking with identical results — a federated simulation
regenerates a round's cohort from its indices and never holds the population. Memory is
O(chunk × num_items): 10,000 users at a time need about 0.2 GB.

API: :func:`iter_population` (chunks in user order), :func:`generate_users` (any indices),
:func:`movielens100k_population` (the fitted model, cached on disk after the first fit).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..reconstruct import FinetuneConfig
from ..validation import check_positive_int
from .interactions import Interactions

__all__ = [
    "PopulationChunk",
    "PopulationModel",
    "fit_population",
    "generate_users",
    "iter_population",
    "movielens100k_population",
]

FINETUNE = FinetuneConfig(steps=10, lr=0.05, l2=0.5, calls=10)
"""The reconstruction used to fit and calibrate the generator (the privacy benchmark's)."""
_FORMAT_VERSION = 1
_CACHE_NAME = f"population-ml100k-v{_FORMAT_VERSION}.npz"


@dataclass(frozen=True, eq=False)
class PopulationModel:
    """The fitted generator (module docstring). All arrays are read-only after construction.

    Attributes:
        item_embedding: ``float32[n, d]`` the central model's item table V.
        item_bias: ``float32[n]`` its item bias b.
        user_vectors: ``float32[m, d]`` the m real users' reconstructed vectors (the kernel centres).
        history_lengths: ``int64[m]`` each real user's number of interactions (≥ 3).
        kernel: ``float64[d, d]`` H, the lower-triangular kernel factor (``H Hᵀ = h² Σ``).
        temperature: τ > 0 of the item softmax.
        source: what the model was fitted to (e.g. ``"ml-100k"``).
    """

    item_embedding: NDArray[np.float32]
    item_bias: NDArray[np.float32]
    user_vectors: NDArray[np.float32]
    history_lengths: NDArray[np.int64]
    kernel: NDArray[np.float64]
    temperature: float
    source: str = "ml-100k"

    def __post_init__(self) -> None:
        V = np.ascontiguousarray(self.item_embedding, np.float32)
        n, d = V.shape
        b = np.ascontiguousarray(self.item_bias, np.float32)
        U = np.ascontiguousarray(self.user_vectors, np.float32)
        L = np.ascontiguousarray(self.history_lengths, np.int64)
        H = np.ascontiguousarray(self.kernel, np.float64)
        if b.shape != (n,):
            raise ValueError(f"`item_bias` must have shape ({n},). Found {b.shape}.")
        if U.ndim != 2 or U.shape[1] != d or U.shape[0] == 0:
            raise ValueError(f"`user_vectors` must have shape (m > 0, {d}). Found {U.shape}.")
        if L.shape != (U.shape[0],):
            raise ValueError(f"`history_lengths` must have shape ({U.shape[0]},). Found {L.shape}.")
        if L.min() < 3 or L.max() > n:
            raise ValueError(f"`history_lengths` must be in [3, {n}]. Found [{L.min()}, {L.max()}].")
        if H.shape != (d, d):
            raise ValueError(f"`kernel` must have shape ({d}, {d}). Found {H.shape}.")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"`temperature` must be finite and > 0. Found {self.temperature}.")
        for name, arr in (("item_embedding", V), ("item_bias", b), ("user_vectors", U), ("kernel", H)):
            if not np.isfinite(arr).all():
                raise ValueError(f"`{name}` must be finite.")
            arr.flags.writeable = False
        L.flags.writeable = False
        fields: tuple[tuple[str, NDArray[Any]], ...] = (
            ("item_embedding", V), ("item_bias", b), ("user_vectors", U), ("history_lengths", L), ("kernel", H))
        for name, value in fields:
            object.__setattr__(self, name, value)
        object.__setattr__(self, "temperature", float(self.temperature))

    @property
    def num_items(self) -> int:
        """n, the catalog size."""
        return int(self.item_embedding.shape[0])

    @property
    def dim(self) -> int:
        """d of the generating model."""
        return int(self.item_embedding.shape[1])

    def with_temperature(self, temperature: float) -> PopulationModel:
        """The same model at another temperature τ."""
        return PopulationModel(item_embedding=self.item_embedding, item_bias=self.item_bias,
                               user_vectors=self.user_vectors, history_lengths=self.history_lengths,
                               kernel=self.kernel, temperature=temperature, source=self.source)

    def save(self, path: Path) -> Path:
        """Write the model as an ``.npz`` file (no pickles); returns ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, version=np.int64(_FORMAT_VERSION), item_embedding=self.item_embedding,
                     item_bias=self.item_bias, user_vectors=self.user_vectors,
                     history_lengths=self.history_lengths, kernel=self.kernel,
                     temperature=np.float64(self.temperature), source=np.str_(self.source))
        return path

    @classmethod
    def load(cls, path: Path) -> PopulationModel:
        """Read a model written by :meth:`save`; a file of another format version raises ``ValueError``."""
        with np.load(Path(path), allow_pickle=False) as z:
            version = int(z["version"])
            if version != _FORMAT_VERSION:
                raise ValueError(f"{path}: population model format {_FORMAT_VERSION} expected. Found {version}.")
            return cls(item_embedding=z["item_embedding"], item_bias=z["item_bias"], user_vectors=z["user_vectors"],
                       history_lengths=z["history_lengths"], kernel=z["kernel"],
                       temperature=float(z["temperature"]), source=str(z["source"]))


@dataclass(frozen=True, eq=False)
class PopulationChunk:
    """Some synthetic users' histories, oldest item first.

    Attributes:
        user_index: ``int64[B]`` the users' global indices in the population.
        offsets: ``int64[B + 1]``; user ``j``'s items are ``items[offsets[j]:offsets[j + 1]]``.
        items: ``int64[offsets[-1]]`` item indices in ``[0, num_items)``, distinct within a user, in time
            order (the last is the user's test item, the one before their validation item).
        num_items: the catalog size n.
    """

    user_index: NDArray[np.int64]
    offsets: NDArray[np.int64]
    items: NDArray[np.int64]
    num_items: int

    def __len__(self) -> int:
        return int(self.user_index.size)

    @property
    def lengths(self) -> NDArray[np.int64]:
        """``int64[B]`` each user's history length."""
        return np.diff(self.offsets)

    def history(self, j: int) -> NDArray[np.int64]:
        """User ``j``'s (position in the chunk) items, oldest first."""
        return self.items[self.offsets[j] : self.offsets[j + 1]]

    def train_labels(self) -> NDArray[np.float32]:
        """``float32[B, n]``: 1 on each user's training items (all but the last two), 0 elsewhere — the label
        rows a device holds (uniform labels: the synthetic log has no recency)."""
        B = len(self)
        y = np.zeros((B, self.num_items), np.float32)
        lengths = self.lengths
        rows = np.repeat(np.arange(B), lengths)
        pos = np.arange(self.items.size) - np.repeat(self.offsets[:-1], lengths)
        keep = pos < np.repeat(lengths - 2, lengths)
        y[rows[keep], self.items[keep]] = 1.0
        return y

    def to_interactions(self, name: str = "population") -> Interactions:
        """The chunk as an :class:`Interactions` log (user ``j`` of the chunk is user index ``j``; timestamps
        are positions in the history), ready for :func:`~privrec.sdk.data.leave_one_out`."""
        lengths = self.lengths
        B = len(self)
        users = np.repeat(np.arange(B, dtype=np.int64), lengths)
        times = (np.arange(self.items.size) - np.repeat(self.offsets[:-1], lengths)).astype(np.int64)
        return Interactions(
            users=users, items=self.items.astype(np.int64), ratings=np.ones(self.items.size, np.float32),
            timestamps=times, user_ids=tuple(str(int(k)) for k in self.user_index),
            item_ids=tuple(str(i) for i in range(self.num_items)), name=name,
        )


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` must be an int >= 0. Found {seed!r}.")
    return int(seed)


def generate_users(model: PopulationModel, indices: NDArray[np.integer] | list[int], *, seed: int) -> PopulationChunk:
    """The users at global ``indices`` (any order, repeats allowed) of the population ``(model, seed)``.

    User ``k`` depends only on ``(seed, k)``: the same index gives the same history in any call.
    """
    s = _check_seed(seed)
    idx = np.asarray(indices, np.int64).reshape(-1)
    if idx.size and idx.min() < 0:
        raise ValueError(f"`indices` must be >= 0. Found {int(idx.min())}.")
    n, d, m = model.num_items, model.dim, model.user_vectors.shape[0]
    B = idx.size
    pick = np.empty(B, np.int64)
    Z = np.empty((B, d), np.float64)
    G = np.empty((B, n), np.float32)  # uniforms first, turned into Gumbel noise in one batch below
    orders: list[NDArray[np.int64]] = []
    for r, k in enumerate(idx):
        rng = np.random.default_rng([s, int(k)])
        j = int(rng.integers(m))
        pick[r] = j
        Z[r] = rng.standard_normal(d)
        G[r] = rng.random(n, dtype=np.float32)
        orders.append(rng.permutation(int(model.history_lengths[j])))
    np.maximum(G, np.float32(1e-30), out=G)
    G = -np.log(-np.log(G))  # standard Gumbel noise
    U = model.user_vectors[pick].astype(np.float64) + Z @ model.kernel.T
    logits = (U @ model.item_embedding.T.astype(np.float64) + model.item_bias) / model.temperature
    perturbed = logits.astype(np.float32) + G
    lengths = model.history_lengths[pick]
    offsets = np.zeros(B + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.empty(int(offsets[-1]), np.int64)
    if B:
        top = int(lengths.max())
        part = np.argpartition(-perturbed, top - 1, axis=1)[:, :top] if top < n else np.tile(np.arange(n), (B, 1))
        for r in range(B):
            L = int(lengths[r])
            cand = part[r]
            chosen = cand[np.argsort(-perturbed[r, cand], kind="stable")[:L]]
            items[offsets[r] : offsets[r + 1]] = chosen[orders[r]]
    return PopulationChunk(user_index=idx, offsets=offsets, items=items, num_items=n)


def iter_population(
    n_users: int, *, seed: int = 0, chunk: int = 10_000, model: PopulationModel | None = None, start: int = 0,
) -> Iterator[PopulationChunk]:
    """Users ``start, …, start + n_users − 1`` of the population ``(model, seed)`` in chunks of ``chunk``.

    Args:
        n_users: how many users (> 0).
        seed: the population's seed (≥ 0); user ``k``'s history depends only on ``(seed, k)``, so the
            result does not depend on ``chunk``.
        chunk: users per yielded chunk (> 0); memory is about ``chunk × num_items × 5`` bytes.
        model: the generator; default :func:`movielens100k_population` (fitted once, then cached).
        start: the first user index (≥ 0).
    """
    total = check_positive_int(n_users, "n_users")
    size = check_positive_int(chunk, "chunk")
    first = int(start)
    if first < 0:
        raise ValueError(f"`start` must be >= 0. Found {start}.")
    gen = model if model is not None else movielens100k_population()
    for a in range(first, first + total, size):
        b = min(a + size, first + total)
        yield generate_users(gen, np.arange(a, b, dtype=np.int64), seed=seed)


def _silverman_kernel(vectors: NDArray[np.float32]) -> NDArray[np.float64]:
    """H with ``H Hᵀ = h² Σ``, ``h = (4 / (m (d + 2)))^{1 / (d + 4)}`` (Silverman's rule of thumb)."""
    X = vectors.astype(np.float64)
    m, d = X.shape
    cov = np.cov(X, rowvar=False) + 1e-9 * np.eye(d)
    h = (4.0 / (m * (d + 2))) ** (1.0 / (d + 4))
    return np.asarray(h * np.linalg.cholesky(cov), np.float64)


def _central_hr(model: PopulationModel, *, users: int, seed: int) -> float:
    """Full-catalog test HR@10 of the generating model on ``users`` synthetic users (by reconstruction)."""
    from ..evaluate import EvalProtocol
    from ..model import ItemModel
    from ..run import evaluate_reconstructed
    from .splits import leave_one_out

    chunk = generate_users(model, np.arange(users, dtype=np.int64), seed=seed)
    split = leave_one_out(chunk.to_interactions())
    items = ItemModel(item_embedding=np.array(model.item_embedding), item_bias=np.array(model.item_bias))
    return evaluate_reconstructed(items, split, FINETUNE, recency_half_life=None,
                                  protocol=EvalProtocol(target="test")).full_hr


def fit_population(
    data: Interactions,
    *,
    dim: int = 32,
    epochs: int = 60,
    seed: int = 0,
    calibration_users: int = 3000,
    progress: bool = False,
) -> tuple[PopulationModel, dict[str, float]]:
    """Fit the generator to ``data`` (module docstring, steps 1–4).

    Returns ``(model, fit_report)``; the report holds ``central_full_hr_real`` (the central model on the
    real users' test items, by reconstruction), ``central_full_hr_synthetic`` (the same on
    ``calibration_users`` synthetic users at the calibrated τ), ``temperature`` and the bisection's steps.
    """
    import torch

    from ..evaluate import EvalProtocol
    from ..reconstruct import reconstruct_batch
    from ..run import evaluate_reconstructed
    from ..train import TrainConfig, label_matrix, train_central
    from .splits import leave_one_out

    split = leave_one_out(data)
    cfg = TrainConfig(dim=dim, l2=FINETUNE.l2, init_std=0.01, recency_half_life=None, finetune=FINETUNE,
                      epochs=epochs)
    trained = train_central(split, cfg, seed=seed, progress=progress)
    items = trained.model.items
    Y = torch.from_numpy(label_matrix(split, None))
    has = Y.sum(dim=1).numpy() > 0
    U = reconstruct_batch(items, Y[torch.from_numpy(np.flatnonzero(has))], FINETUNE).numpy()
    counts = np.bincount(data.users, minlength=data.num_users)[has]
    keep = counts >= 3
    real_hr = evaluate_reconstructed(items, split, FINETUNE, recency_half_life=None,
                                     protocol=EvalProtocol(target="test")).full_hr
    base = PopulationModel(item_embedding=items.item_embedding, item_bias=items.item_bias,
                           user_vectors=U[keep], history_lengths=counts[keep].astype(np.int64),
                           kernel=_silverman_kernel(U[keep]), temperature=1.0, source=data.name)
    # HR@10 falls as τ grows (flatter item distributions); bisect log τ on [1/8, 8].
    lo, hi = math.log(0.125), math.log(8.0)
    steps = 0
    hr = float("nan")
    for step in range(1, 13):
        steps = step
        mid = 0.5 * (lo + hi)
        hr = _central_hr(base.with_temperature(math.exp(mid)), users=calibration_users, seed=10_000 + seed)
        if progress:
            print(f"population fit: τ = {math.exp(mid):.4f} → synthetic HR@10 {hr:.4f} (real {real_hr:.4f})",
                  file=sys.stderr)
        if hr > real_hr:
            lo = mid
        else:
            hi = mid
        if abs(hr - real_hr) < 0.002:
            break
    tau = math.exp(mid)
    report = {"central_full_hr_real": real_hr, "central_full_hr_synthetic": hr, "temperature": tau,
              "bisection_steps": float(steps), "central_best_epoch": float(trained.best_epoch)}
    return base.with_temperature(tau), report


def movielens100k_population(cache_dir: Path | None = None, *, progress: bool = False) -> PopulationModel:
    """The generator fitted to MovieLens-100K (:func:`fit_population` with its defaults), cached as
    ``population-ml100k-v1.npz`` in the data cache after the first fit (about a minute on one core)."""
    from .fetch import data_dir
    from .movielens import load_movielens100k

    path = (Path(cache_dir) if cache_dir is not None else data_dir()) / _CACHE_NAME
    if path.is_file():
        return PopulationModel.load(path)
    model, _ = fit_population(load_movielens100k(cache_dir), progress=progress)
    tmp = path.with_suffix(".tmp.npz")
    model.save(tmp)
    tmp.replace(path)
    return model

