"""A cohort's device updates computed as one batch in torch, returning only their sum (what secure
aggregation reveals): the vectorised simulation's path.

Exactly the sum of :func:`privrec.sdk.federated.device.device_update` over the cohort (tests check it),
computed without materialising a per-device update: reconstruction of each row is independent
(:func:`privrec.sdk.reconstruct.reconstruct_batch`, the recipe batched), and for rank-1 updates
``Σ_j s_j·outer(g_j, u_j) = (s ∘ G)ᵀ U`` with ``s_j = min(1, C/‖Δ_j‖)``. Per-device update norms are computed
in closed form: ``local_lr · sqrt(‖u‖² (‖g‖²·[E] + ‖Fᵀg‖²·[W]) + bias_scale²‖g‖²·[b])``.

This module imports torch; the device path (:mod:`.device`) does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from ..reconstruct import FinetuneConfig, reconstruct_batch
from .params import ParamLayout

__all__ = ["CohortSum", "cohort_update_sum"]

# Rows are scaled by C·(1 − _CLIP_MARGIN)/‖Δ‖ in the batched sum so that float32 rounding can never push a
# clipped row above C (the per-device path uses clip_l2, which guarantees ‖row‖ ≤ C exactly).
_CLIP_MARGIN = 1e-6


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
    """:func:`~privrec.sdk.federated.device.device_update` (without noise) for every row of ``labels [B, num_items]``, summed.

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
