"""L2 clipping of per-device updates: a fixed clip norm, and adaptive clipping.

:func:`clip_l2` bounds each device's contribution — the sensitivity of the sum the DP noise is calibrated
to (McMahan et al. 2018, Alg. 1, ``ClipFn``). :class:`AdaptiveClipper` moves the clip norm towards a
target quantile γ of the update norms, privately (Andrew et al. 2021, "Differentially Private Learning
with Adaptive Clipping", Alg. 1 and §3): each device reports ``b_i − ½`` with ``b_i = 1[‖Δ_i‖ ≤ C]``, the sum
receives ``N(0, σ_b²)``, ``b̃ = noised_sum / m + ½`` estimates the unclipped fraction (m = expected devices
per round) and the **geometric update** ``C ← C·exp(−η (b̃ − γ))`` follows. The count release costs
privacy: account for it with :class:`~privrec.sdk.privacy.events.AdaptiveClipEvent` (Theorem 1).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from ..validation import check_probability
from ._validate import check_clip_norm, check_nonnegative, check_positive, check_sample_rate
from .events import AdaptiveClipEvent
from .noise import NoiseGenerator

if TYPE_CHECKING:
    import torch

__all__ = ["AdaptiveClipper", "clip_l2", "geometric_clip_update"]

_FloatArray = TypeVar("_FloatArray", NDArray[np.float32], NDArray[np.float64])


def _is_torch_tensor(x: object) -> bool:
    torch_mod = sys.modules.get("torch")
    return torch_mod is not None and isinstance(x, torch_mod.Tensor)


def _clip_numpy(updates: NDArray[Any], clip_norm: float) -> tuple[NDArray[Any], NDArray[np.float64]]:
    if updates.ndim != 2:
        raise ValueError(f"`updates` must be 2-D [devices, dim]. Found shape {updates.shape}.")
    if updates.dtype.kind != "f":
        raise TypeError(f"`updates` must have a float dtype. Found {updates.dtype}.")
    x64 = updates.astype(np.float64)
    norms = np.linalg.norm(x64, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms))
    if bad.size:
        raise ValueError(f"`updates` rows must have a finite L2 norm. Found {norms[bad[0]]} at position {int(bad[0])}.")
    out = updates.copy()
    over = norms > clip_norm
    if over.any():
        out[over] = (x64[over] * (clip_norm / norms[over])[:, None]).astype(updates.dtype)
        # Rounding (to float32, or in the product) can leave a norm a few ulps above C: shrink those rows
        # again by slightly more than the excess until every stored row satisfies ‖row‖ ≤ C exactly.
        shrink = 1.0 - 4.0 * float(np.finfo(updates.dtype).eps)
        for _ in range(64):
            new = np.linalg.norm(out.astype(np.float64), axis=1)
            still = new > clip_norm
            if not still.any():
                break
            out[still] = (out[still].astype(np.float64) * (clip_norm / new[still] * shrink)[:, None]).astype(updates.dtype)
    return out, norms


def _clip_torch(updates: torch.Tensor, clip_norm: float) -> tuple[torch.Tensor, NDArray[np.float64]]:
    import torch

    if updates.ndim != 2:
        raise ValueError(f"`updates` must be 2-D [devices, dim]. Found shape {tuple(updates.shape)}.")
    if not updates.is_floating_point():
        raise TypeError(f"`updates` must have a float dtype. Found {updates.dtype}.")
    with torch.no_grad():
        clipped, norms = _clip_numpy(updates.detach().cpu().numpy(), clip_norm)
    return torch.from_numpy(clipped).to(device=updates.device, dtype=updates.dtype), norms


@overload
def clip_l2(updates: _FloatArray, *, clip_norm: float) -> tuple[_FloatArray, NDArray[np.float64]]: ...


@overload
def clip_l2(updates: torch.Tensor, *, clip_norm: float) -> tuple[torch.Tensor, NDArray[np.float64]]: ...


def clip_l2(updates: Any, *, clip_norm: float) -> tuple[Any, NDArray[np.float64]]:
    """Scale each row of ``updates`` to L2 norm at most ``clip_norm``.

    Args:
        updates: ``[devices, dim]`` float numpy array (float32 or float64) or torch tensor; one row per
            device's flattened update. Not modified.
        clip_norm: C > 0.

    Returns:
        ``(clipped, norms)``: ``clipped`` has the input's type, dtype and shape (torch: device too; computed
        on CPU, not differentiable); every row satisfies ``‖row‖₂ ≤ C`` as computed in float64 from the stored
        values, and rows already within C are returned bit-for-bit unchanged. ``norms`` is the float64
        ``[devices]`` array of the norms *before* clipping.

    Raises:
        TypeError: if ``updates`` is not a float numpy array or torch tensor.
        ValueError: for a shape other than 2-D, a non-finite row norm, or C ≤ 0.
    """
    c = check_clip_norm(clip_norm)
    if isinstance(updates, np.ndarray):
        return _clip_numpy(updates, c)
    if _is_torch_tensor(updates):
        return _clip_torch(updates, c)
    raise TypeError(f"`updates` must be a numpy array or torch tensor. Found {type(updates).__name__}.")


def geometric_clip_update(
    *,
    clip_norm: float,
    unclipped_fraction: float,
    target_unclipped_quantile: float,
    clip_learning_rate: float,
) -> float:
    """One geometric step of adaptive clipping: ``C·exp(−η (b̃ − γ))`` (Andrew et al. 2021, §3, Alg. 1).

    Args:
        clip_norm: current C > 0.
        unclipped_fraction: b̃, the (noised) estimate of the fraction of updates with norm ≤ C; any real (noise
            can push it outside [0, 1]).
        target_unclipped_quantile: γ in [0, 1].
        clip_learning_rate: η ≥ 0.
    """
    c = check_clip_norm(clip_norm)
    if isinstance(unclipped_fraction, bool) or not isinstance(unclipped_fraction, int | float | np.floating):
        raise TypeError(f"`unclipped_fraction` must be a float. Found {type(unclipped_fraction).__name__}.")
    b = float(unclipped_fraction)
    if not math.isfinite(b):
        raise ValueError(f"`unclipped_fraction` must be finite. Found {unclipped_fraction}.")
    gamma = check_probability(target_unclipped_quantile, "target_unclipped_quantile", low_open=False)
    eta = check_nonnegative(clip_learning_rate, "clip_learning_rate")
    return c * math.exp(-eta * (b - gamma))


class AdaptiveClipper:
    """Adaptive clip norm (Andrew et al. 2021): clip with the current C, then move C towards quantile γ.

    One round, central mode::

        clipped, norms = clipper.clip(updates)                 # on the devices
        count_sum = clipper.count_contributions(norms).sum()   # summed by secure aggregation
        noised = clipper.add_count_noise(count_sum, noise=noise)   # server adds N(0, σ_b²)
        event = clipper.event(update_noise_multiplier=z_delta, sample_rate=q)   # C of this round
        clipper.update(noised)                                  # C for the next round

    In distributed mode each device adds its share ``N(0, σ_b²/n)`` to ``b_i − ½`` instead and the server
    calls :meth:`update` on the noised sum directly.

    Args:
        initial_clip_norm: C₀ > 0.
        count_noise_std: σ_b ≥ 0, the std of the noise on the count sum (Andrew et al. suggest m/20).
        expected_devices: m > 0, the expected number of devices per round (q·N); b̃ is normalised by it.
        target_unclipped_quantile: γ in [0, 1] (default 0.5, the median).
        clip_learning_rate: η ≥ 0 (default 0.2, the paper's choice for the geometric update).
    """

    def __init__(
        self,
        *,
        initial_clip_norm: float,
        count_noise_std: float,
        expected_devices: float,
        target_unclipped_quantile: float = 0.5,
        clip_learning_rate: float = 0.2,
    ) -> None:
        self._clip_norm = check_clip_norm(initial_clip_norm, "initial_clip_norm")
        self._count_noise_std = check_nonnegative(count_noise_std, "count_noise_std")
        self._expected_devices = check_positive(expected_devices, "expected_devices")
        self._gamma = check_probability(target_unclipped_quantile, "target_unclipped_quantile", low_open=False)
        self._eta = check_nonnegative(clip_learning_rate, "clip_learning_rate")
        self._history: list[float] = [self._clip_norm]
        self._fractions: list[float] = []

    @property
    def clip_norm(self) -> float:
        """The clip norm C of the current round."""
        return self._clip_norm

    @property
    def count_noise_std(self) -> float:
        """σ_b."""
        return self._count_noise_std

    @property
    def history(self) -> tuple[float, ...]:
        """C₀, C₁, …: the clip norm of every round so far, the current one last."""
        return tuple(self._history)

    @property
    def unclipped_fractions(self) -> tuple[float, ...]:
        """The noised unclipped fractions b̃ of the rounds completed so far."""
        return tuple(self._fractions)

    @overload
    def clip(self, updates: _FloatArray) -> tuple[_FloatArray, NDArray[np.float64]]: ...

    @overload
    def clip(self, updates: torch.Tensor) -> tuple[torch.Tensor, NDArray[np.float64]]: ...

    def clip(self, updates: Any) -> tuple[Any, NDArray[np.float64]]:
        """:func:`clip_l2` with the current clip norm."""
        return clip_l2(updates, clip_norm=self._clip_norm)

    def count_contributions(self, norms: NDArray[np.floating]) -> NDArray[np.float64]:
        """Each device's count report ``b_i − ½`` (±½; sensitivity ½) for the given pre-clip norms."""
        arr = np.asarray(norms, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"`norms` must be 1-D. Found shape {arr.shape}.")
        return np.where(arr <= self._clip_norm, 0.5, -0.5)

    def add_count_noise(self, count_sum: float, *, noise: NoiseGenerator) -> float:
        """Central mode: ``count_sum + N(0, σ_b²)`` drawn from ``noise``."""
        return float(count_sum) + float(noise.normal((1,), std=self._count_noise_std)[0])

    def update(self, noised_count_sum: float) -> float:
        """End the round: ``b̃ = noised_count_sum / m + ½``, ``C ← C·exp(−η (b̃ − γ))``; return the new C."""
        if isinstance(noised_count_sum, bool) or not isinstance(noised_count_sum, int | float | np.floating):
            raise TypeError(f"`noised_count_sum` must be a float. Found {type(noised_count_sum).__name__}.")
        b = float(noised_count_sum) / self._expected_devices + 0.5
        self._clip_norm = geometric_clip_update(
            clip_norm=self._clip_norm,
            unclipped_fraction=b,
            target_unclipped_quantile=self._gamma,
            clip_learning_rate=self._eta,
        )
        self._fractions.append(b)
        self._history.append(self._clip_norm)
        return self._clip_norm

    def event(self, *, update_noise_multiplier: float, sample_rate: float) -> AdaptiveClipEvent:
        """The privacy event of the current round (its C, z_Δ, σ_b and q)."""
        return AdaptiveClipEvent(
            update_noise_multiplier=update_noise_multiplier,
            count_noise_std=self._count_noise_std,
            sample_rate=check_sample_rate(sample_rate),
            clip_norm=self._clip_norm,
        )

    def summary(self) -> dict[str, float | int]:
        """Schedule summary for the ledger: initial / final / min / max C, rounds, γ, η, σ_b, m."""
        h = self._history
        return {
            "initial_clip_norm": h[0],
            "final_clip_norm": h[-1],
            "min_clip_norm": min(h),
            "max_clip_norm": max(h),
            "rounds": len(self._fractions),
            "target_unclipped_quantile": self._gamma,
            "clip_learning_rate": self._eta,
            "count_noise_std": self._count_noise_std,
            "expected_devices": self._expected_devices,
        }
