"""One device's part of a federated round, independent of any transport (DESIGN §5).

Federated Reconstruction (Singhal et al. 2021, "Federated Reconstruction: Partially Local Federated
Learning", Alg. 1): the device

1. **reconstructs** its user vector ``u`` from its own interactions with the global parameters frozen
   (:func:`privrec.sdk.reconstruct.reconstruct_batch`, the same steps the exported ``finetune`` graph runs);
   ``u`` never leaves the device and is discarded after the round;
2. computes the gradient of its loss ``−Σ_i y_i log softmax(V u + b)_i`` (``y`` its normalised label
   distribution over the catalog) with respect to the global parameters at that ``u``. With
   ``g = softmax(V u + b) − y`` ``[n]`` and ``V = E + F W`` (:mod:`.params`)::

       ∂/∂E = outer(g, u)        ∂/∂W = outer(Fᵀ g, u)        ∂/∂b = g

   so the update ``Δ = −local_lr · (∂E, ∂W, bias_scale·∂b)`` has the closed-form norm
   ``local_lr · sqrt(‖u‖² (‖g‖²·[E] + ‖Fᵀg‖²·[W]) + bias_scale²‖g‖²·[b])``;
3. **clips** ``Δ`` to L2 norm C (McMahan et al. 2018, Alg. 1 ``ClipFn``; :func:`privrec.sdk.privacy.clip_l2`);
4. in distributed-DP mode adds its **noise share** ``N(0, σ_share²)`` per coordinate, with
   ``σ_share = Z·C/sqrt(n)`` (:func:`privrec.sdk.privacy.distributed_noise_std`), before secure aggregation.

:func:`device_update` is what a real device (the HTTP runtime, a Flower ClientApp) runs.
:func:`cohort_update_sum` is the same computation for many devices at once, returning only the *sum* of
their clipped updates (what secure aggregation reveals); it never materialises a per-device update
(``Σ_j s_j Δ_j`` for rank-1 ``Δ_j`` is one matrix product), and is what the simulation runs. Tests check
that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from ..privacy import NoiseGenerator, clip_l2
from ..privacy._validate import check_clip_norm, check_nonnegative, check_positive
from ..reconstruct import FinetuneConfig, reconstruct_batch
from ..validation import check_finite, check_item_ids
from .params import ParamLayout

__all__ = [
    "CohortSum",
    "DeviceStats",
    "DeviceUpdate",
    "RoundConfig",
    "cohort_update_sum",
    "device_labels",
    "device_update",
]

# Rows are scaled by C·(1 − _CLIP_MARGIN)/‖Δ‖ in the batched sum so that float32 rounding can never push a
# clipped row above C (the per-device path uses clip_l2, which guarantees ‖row‖ ≤ C exactly).
_CLIP_MARGIN = 1e-6


@dataclass(frozen=True, kw_only=True)
class RoundConfig:
    """What the server tells every device of a round (public; the same for all devices).

    Attributes:
        clip_norm: C > 0, the L2 bound of one device's update.
        local_lr: η_local > 0; the update is ``−η_local ·`` the gradient at the reconstructed ``u``.
        finetune: how the device reconstructs ``u`` (steps × calls, lr, l2).
        noise_std: σ_share ≥ 0 per coordinate of the device's noise share (distributed DP; 0 otherwise).
        count_noise_std: std ≥ 0 of the device's share of the noise on the adaptive-clipping count report.
        bias_scale: the bias block's step is ``bias_scale · local_lr`` (a per-block step size, applied
            before clipping: it decides how much of the clip budget C the bias gets).
    """

    clip_norm: float
    local_lr: float
    finetune: FinetuneConfig
    noise_std: float = 0.0
    count_noise_std: float = 0.0
    bias_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "bias_scale", check_positive(self.bias_scale, "bias_scale"))
        object.__setattr__(self, "clip_norm", check_clip_norm(self.clip_norm))
        object.__setattr__(self, "local_lr", check_positive(self.local_lr, "local_lr"))
        object.__setattr__(self, "noise_std", check_nonnegative(self.noise_std, "noise_std"))
        object.__setattr__(self, "count_noise_std", check_nonnegative(self.count_noise_std, "count_noise_std"))
        if not isinstance(self.finetune, FinetuneConfig):
            raise TypeError(f"`finetune` must be a FinetuneConfig. Found {type(self.finetune).__name__}.")


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


def device_labels(item_ids: object, weights: object | None, num_items: int) -> NDArray[np.float32]:
    """A device's label vector ``float32[num_items]`` from its item ids and optional non-negative weights.

    Repeated items keep their largest weight. Raises ``ValueError`` for ids out of range, negative or
    non-finite weights, or an all-zero result.
    """
    ids = check_item_ids(item_ids, num_items)
    w = np.ones(ids.size, np.float32) if weights is None else np.asarray(weights, np.float32)
    if w.shape != ids.shape:
        raise ValueError(f"`weights` must have shape {ids.shape}. Found {w.shape}.")
    check_finite(w, "weights")
    if (w < 0).any():
        pos = int(np.flatnonzero(w < 0)[0])
        raise ValueError(f"`weights` must be >= 0. Found {float(w[pos])} at position {pos}.")
    y = np.zeros(num_items, np.float32)
    np.maximum.at(y, ids, w)
    if y.sum() <= 0:
        raise ValueError("a device needs at least one item with a positive weight to take part in a round.")
    return y


def _gradient_parts(
    layout: ParamLayout, params: NDArray[np.float32], labels: torch.Tensor, finetune: FinetuneConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(U [B, d], G = P − T [B, n], CE [B], G F [B, f] or None)`` at the reconstructed user vectors."""
    model = layout.item_model(params)
    U = reconstruct_batch(model, labels, finetune)
    T = labels / labels.sum(dim=1, keepdim=True)
    logits = U @ torch.from_numpy(model.item_embedding).T + torch.from_numpy(model.item_bias)
    log_p = torch.log_softmax(logits, dim=1)
    G = torch.exp(log_p) - T
    ce = -(T * log_p).sum(dim=1)
    GF = None if layout.features is None else G @ torch.from_numpy(layout.features)
    return U, G, ce, GF


def _norms(layout: ParamLayout, U: torch.Tensor, G: torch.Tensor, GF: torch.Tensor | None, lr: float,
           bias_scale: float) -> torch.Tensor:
    """Per-device update norms ``float64[B]`` in closed form (module docstring)."""
    u2 = (U.double() ** 2).sum(dim=1)
    g2 = (G.double() ** 2).sum(dim=1)
    sq = torch.zeros_like(u2)
    if layout.free_embedding:
        sq += u2 * g2
    if GF is not None:
        sq += u2 * (GF.double() ** 2).sum(dim=1)
    if layout.train_bias:
        sq += bias_scale**2 * g2
    return lr * torch.sqrt(sq)


@torch.no_grad()
def device_update(
    layout: ParamLayout,
    params: NDArray[np.float32],
    labels: NDArray[np.float32],
    config: RoundConfig,
    *,
    noise: NoiseGenerator | None = None,
) -> DeviceUpdate:
    """Run one device's round: reconstruct ``u``, compute, clip and (distributed DP) noise its update.

    Args:
        layout: the global parameter layout (public).
        params: the current global parameters ``float32[D]`` (as downloaded).
        labels: the device's label weights ``float32[num_items]`` (:func:`device_labels`); stays on device.
        config: the round's public settings.
        noise: the device's noise source; required when ``config.noise_std > 0`` or
            ``config.count_noise_std > 0``.

    Returns:
        :class:`DeviceUpdate` with ``‖vector − noise share‖₂ ≤ C``.
    """
    if labels.shape != (layout.num_items,):
        raise ValueError(f"`labels` must have shape ({layout.num_items},). Found {labels.shape}.")
    check_finite(labels, "labels")
    if (labels < 0).any() or labels.sum() <= 0:
        raise ValueError("`labels` must be non-negative with a positive sum.")
    needs_noise = config.noise_std > 0 or config.count_noise_std > 0
    if needs_noise and noise is None:
        raise ValueError("`noise` must be given when the round asks for a noise share (noise_std > 0).")
    Y = torch.from_numpy(np.ascontiguousarray(labels, np.float32))[None, :]
    U, G, ce, GF = _gradient_parts(layout, params, Y, config.finetune)
    u, g = U[0].numpy().astype(np.float64), G[0].numpy().astype(np.float64)
    lr = config.local_lr
    blocks: list[NDArray[np.float64]] = []
    if layout.free_embedding:
        blocks.append(-lr * np.outer(g, u).ravel())
    if GF is not None:
        blocks.append(-lr * np.outer(GF[0].numpy().astype(np.float64), u).ravel())
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
    return DeviceUpdate(
        vector=vector,
        count_report=count,
        stats=DeviceStats(norm=norm, clipped=norm > config.clip_norm, loss=float(ce[0])),
    )


@dataclass(frozen=True)
class CohortSum:
    """The sum of a cohort's clipped updates (what secure aggregation reveals) and local diagnostics.

    Attributes:
        total: ``float64[D]`` sum of the clipped updates (no noise).
        unclipped: number of devices with ``‖Δ‖ ≤ C`` (the noiseless adaptive-clipping count).
        norms: ``float64[B]`` pre-clip norms (diagnostics only: a real server never sees them).
        losses: ``float64[B]`` per-device cross-entropy (diagnostics only).
    """

    total: NDArray[np.float64]
    unclipped: int
    norms: NDArray[np.float64]
    losses: NDArray[np.float64]


@torch.no_grad()
def cohort_update_sum(
    layout: ParamLayout,
    params: NDArray[np.float32],
    labels: torch.Tensor,
    *,
    clip_norm: float,
    local_lr: float,
    finetune: FinetuneConfig,
    bias_scale: float = 1.0,
) -> CohortSum:
    """:func:`device_update` (without noise) for every row of ``labels [B, num_items]``, summed.

    Exactly the sum of the per-device clipped updates, computed as one batch: reconstruction of each
    row is independent, and ``Σ_j s_j·outer(g_j, u_j) = (s ∘ G)ᵀ U`` with ``s_j = min(1, C/‖Δ_j‖)``.
    """
    D = layout.size
    if labels.shape[0] == 0:
        empty = np.zeros(0, np.float64)
        return CohortSum(total=np.zeros(D, np.float64), unclipped=0, norms=empty, losses=empty)
    U, G, ce, GF = _gradient_parts(layout, params, labels, finetune)
    norms = _norms(layout, U, G, GF, local_lr, bias_scale)
    scale = torch.clamp(clip_norm * (1.0 - _CLIP_MARGIN) / norms.clamp_min(1e-30), max=1.0)
    scale = torch.where(norms <= clip_norm, torch.ones_like(scale), scale)
    Gs = (G.double() * scale[:, None]).float()
    parts: list[torch.Tensor] = []
    if layout.free_embedding:
        parts.append((-local_lr * (Gs.T @ U)).reshape(-1))
    if GF is not None and layout.features is not None:
        GFs = (GF.double() * scale[:, None]).float()
        parts.append((-local_lr * (GFs.T @ U)).reshape(-1))
    if layout.train_bias:
        parts.append(-local_lr * bias_scale * Gs.sum(dim=0))
    total = torch.cat(parts).double().numpy()
    return CohortSum(
        total=total,
        unclipped=int((norms <= clip_norm).sum()),
        norms=norms.numpy(),
        losses=ce.double().numpy(),
    )
