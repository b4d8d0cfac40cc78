"""One device's part of a federated round: numpy and the exported signatures only (no torch).

Federated Reconstruction (Singhal et al. 2021, "Federated Reconstruction: Partially Local Federated
Learning", Alg. 1): the device

1. **reconstructs** its user vector ``u`` with the global parameters frozen, following the bundle's
   :class:`~privrec.sdk.recipe.ReconstructionRecipe` through the ``finetune`` signature — the same call an
   app makes to recommend; ``u`` never leaves the device and is discarded after the round;
2. **scores** the whole catalog at ``u`` with the ``score`` signature and computes, in numpy, the gradient
   of its loss ``−Σ_i y_i log softmax(V u + b)_i`` (``y`` its normalised labels) with respect to the global
   parameters. With ``g = softmax(s) − y`` ``[n]`` and ``V = E + F W`` (:mod:`.params`)::

       ∂/∂E = outer(g, u)        ∂/∂W = outer(Fᵀ g, u)        ∂/∂b = g

   so the update is ``Δ = −local_lr · (∂E, ∂W, bias_scale·∂b)``, a rank-1 matrix per block;
3. **clips** ``Δ`` to L2 norm C (McMahan et al. 2018, Alg. 1 ``ClipFn``; :func:`privrec.sdk.privacy.clip_l2`);
4. in distributed-DP mode adds its **noise share** ``N(0, σ_share²)`` per coordinate before secure
   aggregation (and, with adaptive clipping, reports ``b − ½`` with its own share of the count noise).

:func:`device_update` is what every device runs: the on-device runtime (:class:`privrec.runtime.Device`,
through onnxruntime or LiteRT), the founding-document facade (through :class:`NumpySignatures`, the
numpy reference of the same signatures) and a Flower ClientApp. The vectorised simulation batches the
same maths in torch (:mod:`.batched`); tests check that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ..model import ItemModel
from ..privacy._validate import check_clip_norm, check_nonnegative, check_positive
from ..privacy.clipping import clip_l2
from ..privacy.noise import NoiseGenerator
from ..recipe import ReconstructionRecipe
from ..reconstruct import finetune_reference
from ..validation import check_finite, check_item_ids, check_positive_int, check_user_vector
from .params import ParamLayout

__all__ = [
    "DeviceStats",
    "DeviceUpdate",
    "NumpySignatures",
    "RoundConfig",
    "SignatureModel",
    "device_update",
    "update_from_scores",
]


class SignatureModel(Protocol):
    """The two exported signatures a device's update needs (:class:`privrec.runtime.Recommender` has them)."""

    @property
    def num_items(self) -> int:
        """n, the catalog size."""
        ...

    @property
    def dim(self) -> int:
        """d, the user vector's length."""
        ...

    def finetune(
        self,
        user: NDArray[np.floating],
        item_ids: object,
        labels: NDArray[np.floating] | None = None,
        lr: float | None = None,
        l2: float | None = None,
    ) -> tuple[NDArray[np.float32], float]:
        """``finetune(user, item_ids, labels, lr, l2) -> (user_out, loss)`` with the exported steps."""
        ...

    def score(self, user: NDArray[np.floating], item_ids: object | None = None) -> NDArray[np.float32]:
        """Scores of ``item_ids``, or of the whole catalog in item order when None."""
        ...


@dataclass(frozen=True)
class NumpySignatures:
    """The ``score`` and ``finetune`` signatures of an :class:`ItemModel`, in numpy (float64 inside).

    The independent reference every exported artifact is checked against
    (:func:`privrec.sdk.reconstruct.finetune_reference`); a device without an artifact (the facade's
    in-process clients) runs its update through it.

    Attributes:
        model: the global item model.
        steps: gradient steps per ``finetune`` call (what an artifact bakes in).
    """

    model: ItemModel
    steps: int

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")

    @property
    def num_items(self) -> int:
        """n."""
        return self.model.num_items

    @property
    def dim(self) -> int:
        """d."""
        return self.model.dim

    def finetune(
        self,
        user: NDArray[np.floating],
        item_ids: object,
        labels: NDArray[np.floating] | None = None,
        lr: float | None = None,
        l2: float | None = None,
    ) -> tuple[NDArray[np.float32], float]:
        """``steps`` analytic steps; ``lr`` and ``l2`` are required (a bare model has no recipe)."""
        if lr is None or l2 is None:
            raise ValueError("`lr` and `l2` must be given: a bare item model carries no reconstruction recipe.")
        ids = check_item_ids(item_ids, self.num_items)
        lab = np.ones(ids.size, np.float32) if labels is None else np.asarray(labels, np.float32)
        return finetune_reference(check_user_vector(user, self.dim), self.model.item_embedding,
                                  self.model.item_bias, ids, lab, lr=lr, l2=l2, steps=self.steps)

    def score(self, user: NDArray[np.floating], item_ids: object | None = None) -> NDArray[np.float32]:
        """``V[ids] @ u + b[ids]`` (the whole catalog when ``item_ids`` is None)."""
        u = check_user_vector(user, self.dim).astype(np.float64)
        V = self.model.item_embedding.astype(np.float64)
        s = V @ u + self.model.item_bias
        if item_ids is None:
            return s.astype(np.float32)
        return s[check_item_ids(item_ids, self.num_items)].astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class RoundConfig:
    """What a device needs to compute its update in one round (public; the same for every device).

    Attributes:
        clip_norm: C > 0, the L2 bound of one device's update.
        local_lr: η_local > 0; the update is ``−η_local ·`` the gradient at the reconstructed ``u``.
        bias_scale: the bias block's step is ``bias_scale · local_lr`` (a per-block step size, applied
            before clipping: it decides how much of the clip budget C the bias gets).
        noise_std: σ_share ≥ 0 per coordinate of the device's noise share (distributed DP; 0 otherwise).
        count_noise_std: std ≥ 0 of the device's share of the noise on the adaptive-clipping count report.
    """

    clip_norm: float
    local_lr: float
    bias_scale: float = 1.0
    noise_std: float = 0.0
    count_noise_std: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip_norm", check_clip_norm(self.clip_norm))
        object.__setattr__(self, "local_lr", check_positive(self.local_lr, "local_lr"))
        object.__setattr__(self, "bias_scale", check_positive(self.bias_scale, "bias_scale"))
        object.__setattr__(self, "noise_std", check_nonnegative(self.noise_std, "noise_std"))
        object.__setattr__(self, "count_noise_std", check_nonnegative(self.count_noise_std, "count_noise_std"))


@dataclass(frozen=True)
class DeviceStats:
    """Local diagnostics of one device's round. **Never sent** in a private deployment.

    Attributes:
        norm: L2 norm of the update before clipping.
        clipped: whether the update was scaled down.
        loss: the device's cross-entropy at its reconstructed ``u`` (without the L2 term).
    """

    norm: float
    clipped: bool
    loss: float


@dataclass(frozen=True)
class DeviceUpdate:
    """What a device contributes to secure aggregation in one round.

    Attributes:
        vector: ``float32[D]``: the clipped update, plus the noise share in distributed mode.
        count_report: ``b − ½`` with ``b = 1[‖Δ‖ ≤ C]`` (plus its noise share), the adaptive-clipping count
            contribution (Andrew et al. 2021, Alg. 1); sum it only when adaptive clipping is on.
        stats: local diagnostics (not sent).
    """

    vector: NDArray[np.float32]
    count_report: float
    stats: DeviceStats


def _check_labels(labels: NDArray[np.floating], num_items: int) -> NDArray[np.float64]:
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"`labels` must be a numpy array of shape ({num_items},). Found {type(labels).__name__}.")
    if labels.shape != (num_items,):
        raise ValueError(f"`labels` must have shape ({num_items},). Found {labels.shape}.")
    check_finite(labels, "labels")
    y = labels.astype(np.float64)
    if (y < 0).any() or y.sum() <= 0:
        raise ValueError("`labels` must be non-negative with a positive sum.")
    return y


def update_from_scores(
    layout: ParamLayout,
    user: NDArray[np.floating],
    scores: NDArray[np.floating],
    labels: NDArray[np.floating],
    config: RoundConfig,
    *,
    noise: NoiseGenerator | None = None,
) -> DeviceUpdate:
    """Steps 2–4 of the module docstring, from the reconstructed ``user [d]`` and its catalog ``scores [n]``.

    Args:
        layout: the global parameter layout (public; its ``features`` are the public item features F).
        user: the reconstructed user vector.
        scores: ``V u + b`` over the whole catalog, in item order.
        labels: the device's label weights ``[n]`` (non-negative, positive sum); normalised here.
        config: the round's public settings.
        noise: the device's noise source; required when ``config`` asks for a noise share.

    Returns:
        :class:`DeviceUpdate` with ``‖vector − noise share‖₂ ≤ C``.
    """
    n = layout.num_items
    y = _check_labels(labels, n)
    y = y / y.sum()
    u = check_user_vector(user, layout.dim).astype(np.float64)
    s = np.asarray(scores, np.float64)
    if s.shape != (n,):
        raise ValueError(f"`scores` must have shape ({n},) (the whole catalog). Found {s.shape}.")
    check_finite(s, "scores")
    if (config.noise_std > 0 or config.count_noise_std > 0) and noise is None:
        raise ValueError("`noise` must be given when the round asks for a noise share (noise_std > 0).")
    log_p = s - s.max()
    log_p -= np.log(np.exp(log_p).sum())
    g = np.exp(log_p) - y
    lr = config.local_lr
    blocks: list[NDArray[np.float64]] = []
    if layout.free_embedding:
        blocks.append(-lr * np.outer(g, u).ravel())
    if layout.features is not None:
        blocks.append(-lr * np.outer(layout.features.T.astype(np.float64) @ g, u).ravel())
    if layout.train_bias:
        blocks.append(-lr * config.bias_scale * g)
    raw = np.concatenate(blocks).astype(np.float32)[None, :]
    clipped, norms = clip_l2(raw, clip_norm=config.clip_norm)
    vector = clipped[0]
    norm = float(norms[0])
    count = 0.5 if norm <= config.clip_norm else -0.5
    if noise is not None and config.noise_std > 0:
        vector = (vector.astype(np.float64) + noise.normal(vector.shape, std=config.noise_std)).astype(np.float32)
    if noise is not None and config.count_noise_std > 0:
        count += float(noise.normal((1,), std=config.count_noise_std)[0])
    loss = float(-(y * log_p).sum())
    return DeviceUpdate(vector=vector, count_report=count,
                        stats=DeviceStats(norm=norm, clipped=norm > config.clip_norm, loss=loss))


def device_update(
    model: SignatureModel,
    labels: NDArray[np.floating],
    *,
    recipe: ReconstructionRecipe,
    layout: ParamLayout,
    config: RoundConfig,
    noise: NoiseGenerator | None = None,
) -> DeviceUpdate:
    """One device's round: reconstruct ``u`` with ``recipe`` through ``model.finetune``, score the catalog
    with ``model.score``, then :func:`update_from_scores`.

    Args:
        model: the round's global model as signatures (a loaded bundle, or :class:`NumpySignatures`).
        labels: the device's labels ``[n]`` from :meth:`ReconstructionRecipe.labels`; they stay on device.
        recipe: how the device rebuilds ``u`` (the bundle manifest's ``finetune`` block).
        layout: the global parameter layout.
        config: the round's public settings.
        noise: the device's noise source; required when the round asks for a noise share.
    """
    if (model.num_items, model.dim) != (layout.num_items, layout.dim):
        raise ValueError(
            f"the model ({model.num_items} items × {model.dim}) does not match the round's layout "
            f"({layout.num_items} items × {layout.dim})."
        )
    y = _check_labels(labels, layout.num_items).astype(np.float32)
    u = recipe.fit(model.finetune, y, dim=layout.dim)
    return update_from_scores(layout, u, model.score(u), y, config, noise=noise)
