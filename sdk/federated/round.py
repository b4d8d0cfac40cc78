"""The server's end of a federated round, written once: the vectorised simulation, the founding-document
facade, the HTTP aggregation server and a Flower ServerApp all call :func:`finish_round`.

A round (DP-FedAvg, McMahan et al. 2018, "Learning Differentially Private Recurrent Language Models",
Alg. 1; Federated Reconstruction, Singhal et al. 2021) is fixed before any device computes by a
:class:`RoundSetup`: the clip norm C, the noise multiplier Z, the sampling rate q and the **cohort
denominator** ``q·N`` (the expected cohort, never the number of devices that happened to report, so one
device moves the average by at most ``C/(q·N)``). The devices' clipped (and, in distributed mode, noised)
updates are summed by secure aggregation; then :func:`finish_round`

1. adds the central noise ``N(0, (Z·C)²)`` per coordinate in mode ``central`` (in mode ``distributed``
   each device already added ``N(0, (Z·C)²/n)`` for ``n = min_survivors``, and a round with fewer
   survivors releases nothing);
2. divides the sum by ``q·N`` and applies it with the server optimizer (:mod:`.server_opt`);
3. with adaptive clipping (Andrew et al. 2021, Alg. 1), noises the count sum and moves C;
4. returns the round's privacy event for the ledger: ``DPRoundEvent(Z, q, C)`` (or the adaptive-clipping
   event), ``NonPrivateRoundEvent`` in mode ``off``. In distributed mode the sum carries at least ``Z·C``
   (every one of the ≥ n surviving shares has std ``Z·C/sqrt(n)``), so the event states Z: never the larger
   ``Z·sqrt(k/n)`` that a particular survivor count k would give.

The secure-aggregation input of a device is its update vector, followed by its count report when
adaptive clipping is on (:func:`aggregation_input`, :func:`split_aggregate`). The fixed-point encoding
clips each coordinate to ``±(C + 9σ)`` for a device noise share of std σ (:attr:`RoundSetup.clip_range`):
a Gaussian share exceeds 9σ with probability below 2·10⁻¹⁹ per coordinate.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..privacy._validate import check_clip_norm, check_nonnegative, check_positive, check_sample_rate
from ..privacy.clipping import AdaptiveClipper
from ..privacy.errors import PrivacyWarning
from ..privacy.events import DPRoundEvent, NonPrivateRoundEvent, PrivacyEvent
from ..privacy.noise import NoiseGenerator
from ..secagg.encoding import FixedPointEncoder
from ..validation import check_positive_int
from .device import DeviceUpdate, RoundConfig
from .server_opt import ServerOptimizer

if TYPE_CHECKING:
    from ..privacy.config import DPMode

__all__ = [
    "NOISE_HEADROOM_SIGMAS",
    "RoundOutcome",
    "RoundSetup",
    "aggregation_input",
    "cohort_denominator",
    "finish_round",
    "split_aggregate",
]

#: Fixed-point headroom per unit of a device's noise std: coordinates are clipped to ±(C + 9σ).
NOISE_HEADROOM_SIGMAS = 9.0


def cohort_denominator(*, sample_rate: float, population: int) -> float:
    """``q·N``, the fixed DP-FedAvg denominator: the expected cohort of a population of N devices (≥ 1)."""
    q = check_sample_rate(sample_rate)
    n = check_positive_int(population, "population")
    return max(q * n, 1.0)


@dataclass(frozen=True, kw_only=True)
class RoundSetup:
    """The public settings of one round, fixed before any device computes (the same for every device).

    Attributes:
        dp_mode: ``"central"``, ``"distributed"`` or ``"off"``.
        noise_multiplier: Z ≥ 0 on the update sum (0 in mode off).
        clip_norm: C > 0 of this round (with adaptive clipping, the clipper's current C).
        sample_rate: q in (0, 1], the Poisson rate at which devices join.
        denominator: ``q·N`` (:func:`cohort_denominator`); the sum is divided by it.
        local_lr: η_local > 0 of the device update.
        bias_scale: the bias block's step factor.
        min_survivors: distributed mode: each device's share is sized for this many devices, and a round
            with fewer survivors releases nothing. 1 in the other modes.
        count_noise_std: σ_b of adaptive clipping's count sum, or None without adaptive clipping.
    """

    dp_mode: DPMode
    noise_multiplier: float
    clip_norm: float
    sample_rate: float
    denominator: float
    local_lr: float
    bias_scale: float = 1.0
    min_survivors: int = 1
    count_noise_std: float | None = None

    def __post_init__(self) -> None:
        if self.dp_mode not in ("central", "distributed", "off"):
            raise ValueError(f"`dp_mode` must be 'central', 'distributed' or 'off'. Found {self.dp_mode!r}.")
        object.__setattr__(self, "noise_multiplier", check_nonnegative(self.noise_multiplier, "noise_multiplier"))
        object.__setattr__(self, "clip_norm", check_clip_norm(self.clip_norm))
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate))
        object.__setattr__(self, "denominator", check_positive(self.denominator, "denominator"))
        object.__setattr__(self, "local_lr", check_positive(self.local_lr, "local_lr"))
        object.__setattr__(self, "bias_scale", check_positive(self.bias_scale, "bias_scale"))
        object.__setattr__(self, "min_survivors", check_positive_int(self.min_survivors, "min_survivors"))
        if self.count_noise_std is not None:
            object.__setattr__(self, "count_noise_std", check_nonnegative(self.count_noise_std, "count_noise_std"))
        if self.dp_mode == "off" and self.noise_multiplier != 0:
            raise ValueError(f"`noise_multiplier` must be 0 when dp_mode='off'. Found {self.noise_multiplier}.")

    @property
    def adaptive(self) -> bool:
        """Whether devices also report ``b − ½`` for adaptive clipping."""
        return self.count_noise_std is not None

    @property
    def device_noise_std(self) -> float:
        """σ of one device's noise share: ``Z·C/sqrt(min_survivors)`` in distributed mode, else 0."""
        if self.dp_mode != "distributed":
            return 0.0
        return self.noise_multiplier * self.clip_norm / math.sqrt(self.min_survivors)

    @property
    def device_count_noise_std(self) -> float:
        """σ of one device's share of the count noise: ``σ_b/sqrt(min_survivors)`` in distributed mode, else 0."""
        if self.dp_mode != "distributed" or self.count_noise_std is None:
            return 0.0
        return self.count_noise_std / math.sqrt(self.min_survivors)

    @property
    def clip_range(self) -> float:
        """R of the fixed-point encoding: ``C + 9σ`` (and ``½ + 9σ_b'`` for the count report, if larger)."""
        r = self.clip_norm + NOISE_HEADROOM_SIGMAS * self.device_noise_std
        if self.adaptive:
            r = max(r, 0.5 + NOISE_HEADROOM_SIGMAS * self.device_count_noise_std)
        return r

    def encoder(self, max_clients: int) -> FixedPointEncoder:
        """The fixed-point encoding of this round for sums of up to ``max_clients`` devices."""
        return FixedPointEncoder(clip_range=self.clip_range, max_clients=max_clients)

    def device_config(self) -> RoundConfig:
        """What every device computes its update with."""
        return RoundConfig(clip_norm=self.clip_norm, local_lr=self.local_lr, bias_scale=self.bias_scale,
                           noise_std=self.device_noise_std, count_noise_std=self.device_count_noise_std)

    def event(self) -> PrivacyEvent:
        """The privacy event a completed round of this setup adds to the ledger (module docstring, 4)."""
        if self.dp_mode == "off":
            return NonPrivateRoundEvent(sample_rate=self.sample_rate)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrivacyWarning)  # Z = 0 was warned about when the config was made
            if self.count_noise_std is not None:
                from ..privacy.events import AdaptiveClipEvent

                return AdaptiveClipEvent(update_noise_multiplier=self.noise_multiplier,
                                         count_noise_std=self.count_noise_std, sample_rate=self.sample_rate,
                                         clip_norm=self.clip_norm)
            return DPRoundEvent(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate,
                                clip_norm=self.clip_norm)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with a round)."""
        return {k: getattr(self, k) for k in (
            "dp_mode", "noise_multiplier", "clip_norm", "sample_rate", "denominator", "local_lr", "bias_scale",
            "min_survivors", "count_noise_std")}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RoundSetup:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError``."""
        from ..validation import check_config_keys

        data = check_config_keys(raw, cls, "round setup")
        missing = sorted({"dp_mode", "noise_multiplier", "clip_norm", "sample_rate", "denominator", "local_lr"} - set(data))
        if missing:
            raise ValueError(f"round setup: missing key(s) {missing}.")
        return cls(**data)


def aggregation_input(update: DeviceUpdate, *, adaptive: bool) -> NDArray[np.float32]:
    """What a device feeds into secure aggregation: its vector, then its count report if ``adaptive``."""
    if not adaptive:
        return update.vector
    return np.concatenate([update.vector, np.asarray([update.count_report], np.float32)])


def split_aggregate(total: NDArray[np.floating], *, adaptive: bool) -> tuple[NDArray[np.float64], float]:
    """Inverse of :func:`aggregation_input` on a sum: ``(update sum [D], count sum)`` (0.0 without adaptive)."""
    t = np.asarray(total, np.float64)
    if not adaptive:
        return t, 0.0
    return t[:-1], float(t[-1])


@dataclass(frozen=True)
class RoundOutcome:
    """What :func:`finish_round` did.

    Attributes:
        applied: False when a distributed-DP round had fewer than ``min_survivors`` survivors (nothing is
            released, the parameters are unchanged, and no event is accounted).
        event: the privacy event to compose into the ledger, or None when nothing was released.
        next_clip_norm: C for the next round (changed only by adaptive clipping).
    """

    applied: bool
    event: PrivacyEvent | None
    next_clip_norm: float


def finish_round(
    params: NDArray[np.float32],
    total: NDArray[np.floating],
    *,
    setup: RoundSetup,
    survivors: int,
    optimizer: ServerOptimizer,
    noise: NoiseGenerator,
    clipper: AdaptiveClipper | None = None,
    count_sum: float = 0.0,
) -> RoundOutcome:
    """Apply one round's aggregate to ``params`` in place (module docstring, steps 1–4).

    Args:
        params: the flat global parameters ``float32[D]`` (updated in place).
        total: the decoded sum of the surviving devices' update vectors ``[D]`` (what secure aggregation
            revealed; in distributed mode it includes their noise shares).
        setup: the round's settings.
        survivors: how many devices' inputs are in ``total``.
        optimizer: the server optimizer (stateful).
        noise: the central noise source (unused outside mode ``central``).
        clipper: adaptive clipping's state, required when ``setup.adaptive``; its C must be ``setup.clip_norm``.
        count_sum: the sum of the survivors' count reports (adaptive clipping).

    Raises:
        ValueError: ``total`` of the wrong shape or not finite; a clipper that does not match the setup.
    """
    t = np.asarray(total, np.float64)
    if t.shape != params.shape:
        raise ValueError(f"`total` must have shape {params.shape}. Found {t.shape}.")
    if not np.isfinite(t).all():
        raise ValueError("`total` must be finite: the aggregate is corrupt.")
    if setup.adaptive != (clipper is not None):
        raise ValueError("`clipper` must be given exactly when the round uses adaptive clipping.")
    if clipper is not None and not math.isclose(clipper.clip_norm, setup.clip_norm, rel_tol=1e-12):
        raise ValueError(f"the clipper's C ({clipper.clip_norm}) is not the round's C ({setup.clip_norm}).")
    if setup.dp_mode == "distributed" and survivors < setup.min_survivors:
        return RoundOutcome(applied=False, event=None, next_clip_norm=setup.clip_norm)
    event = setup.event()
    if setup.dp_mode == "central":
        t = t + noise.normal(t.shape[0], std=setup.noise_multiplier * setup.clip_norm)
        if clipper is not None:
            count_sum = clipper.add_count_noise(count_sum, noise=noise)
    optimizer.step(params, t / setup.denominator)
    next_clip = setup.clip_norm if clipper is None else clipper.update(float(count_sum))
    return RoundOutcome(applied=True, event=event, next_clip_norm=next_clip)
