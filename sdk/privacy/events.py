"""Privacy events: immutable records of what one or more federated rounds released.

The training loop records one event per round (or one event for a run of identical rounds, with
``rounds=T``); :class:`~privrec.sdk.privacy.accountant.PrivacyAccountant` composes them. Events are data,
the accountant is behaviour (the dp_accounting split of ``dp_event.py`` / ``privacy_accountant.py``). The
meaning of a field never changes: a new kind of release gets a new event type.

Every event describes one round of DP-FedAvg (McMahan et al. 2018, "Learning Differentially Private
Recurrent Language Models", Alg. 1) under **user-level add-or-remove-one adjacency**: each device is
included independently with probability ``sample_rate`` (Poisson sampling), its update is clipped to
L2 norm ``clip_norm`` and the *sum* of the clipped updates receives Gaussian noise of standard deviation
``noise_multiplier * clip_norm``. For accounting this is the Poisson-subsampled Gaussian mechanism with
noise multiplier Z = std / sensitivity (dp_accounting ``PoissonSampledDpEvent(q, GaussianDpEvent(Z))``);
the clip norm does not change ε and is recorded for the ledger only.

Adaptive clipping (Andrew et al. 2021, "Differentially Private Learning with Adaptive Clipping", §3 and
Theorem 1) releases a second sum in the same round: the count of devices whose update was not
clipped, computed as ``Σ (b_i − ½)`` (sensitivity ½) plus ``N(0, σ_b²)``. Releasing both sums is
equivalent, for privacy, to one Gaussian query with noise multiplier

    z = (z_Δ⁻² + (2σ_b)⁻²)^(−½)

where z_Δ is the update's noise multiplier (:func:`effective_noise_multiplier`); conversely, to spend a
budget computed for z, the update must carry z_Δ = (z⁻² − (2σ_b)⁻²)^(−½) > z
(:func:`update_noise_multiplier`).
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:  # dp-accounting is imported where events are composed, not where they are made
    from dp_accounting import dp_event

from ._validate import (
    check_clip_norm,
    check_noise_multiplier,
    check_nonnegative,
    check_rounds,
    check_sample_rate,
)
from .errors import PrivacyWarning

__all__ = [
    "AdaptiveClipEvent",
    "DPRoundEvent",
    "NonPrivateRoundEvent",
    "PrivacyEvent",
    "effective_noise_multiplier",
    "event_from_dict",
    "update_noise_multiplier",
]

MECHANISM_GAUSSIAN = "poisson_subsampled_gaussian"
MECHANISM_NONE = "none"


def effective_noise_multiplier(*, update_noise_multiplier: float, count_noise_std: float) -> float:
    """Noise multiplier z of the combined (update sum, clipped count) release of one adaptive-clipping round.

    Andrew et al. 2021, Theorem 1: the update sum (sensitivity C, noise ``z_Δ·C``) together with the count
    ``Σ (b_i − ½)`` (sensitivity ½, noise ``σ_b``) is a Gaussian query with multiplier
    ``z = (z_Δ⁻² + (2σ_b)⁻²)^(−½)``. Returns 0.0 (no privacy) when either noise is zero.

    Args:
        update_noise_multiplier: z_Δ ≥ 0, the update noise std divided by the clip norm.
        count_noise_std: σ_b ≥ 0, the std of the noise added to the count sum (in devices).
    """
    z_delta = check_noise_multiplier(update_noise_multiplier, "update_noise_multiplier")
    sigma_b = check_nonnegative(count_noise_std, "count_noise_std")
    if z_delta == 0.0 or sigma_b == 0.0:
        return 0.0
    return float((z_delta**-2 + (2.0 * sigma_b) ** -2) ** -0.5)


def update_noise_multiplier(*, noise_multiplier: float, count_noise_std: float) -> float:
    """The update noise multiplier z_Δ that makes an adaptive-clipping round cost what multiplier z costs.

    Inverts :func:`effective_noise_multiplier` (Andrew et al. 2021, Theorem 1):
    ``z_Δ = (z⁻² − (2σ_b)⁻²)^(−½)``. Requires ``2σ_b > z``: otherwise the count query alone spends the
    budget. ``noise_multiplier=0`` returns 0.0.

    Raises:
        ValueError: if ``count_noise_std <= noise_multiplier / 2``.
    """
    z = check_noise_multiplier(noise_multiplier)
    sigma_b = check_nonnegative(count_noise_std, "count_noise_std")
    if z == 0.0:
        return 0.0
    if 2.0 * sigma_b <= z:
        raise ValueError(
            f"`count_noise_std` must be > noise_multiplier / 2 = {z / 2} so that the clipped-count query "
            f"leaves budget for the update (Andrew et al. 2021, Theorem 1). Found {count_noise_std}."
        )
    return float((z**-2 - (2.0 * sigma_b) ** -2) ** -0.5)


class PrivacyEvent(abc.ABC):
    """Base of every privacy event: ``rounds`` identical rounds of one release (frozen dataclasses)."""

    kind: ClassVar[str]
    sample_rate: float
    rounds: int

    @property
    @abc.abstractmethod
    def effective_noise_multiplier(self) -> float:
        """The Z that the accountant composes for one round (0.0 means no privacy: ε = inf)."""

    @property
    @abc.abstractmethod
    def mechanism(self) -> str:
        """The accounted mechanism: ``"poisson_subsampled_gaussian"`` or ``"none"``."""

    def privacy_key(self) -> tuple[str, float, float]:
        """What the accountant needs to know about one round: (mechanism, Z, q). Equal keys compose alike."""
        return (self.mechanism, self.effective_noise_multiplier, self.sample_rate)

    def to_dp_event(self) -> dp_event.DpEvent:
        """This event as a dp_accounting event (``rounds``-fold self-composition)."""
        from dp_accounting import dp_event

        z = self.effective_noise_multiplier
        if self.mechanism == MECHANISM_NONE or z == 0.0:
            single: dp_event.DpEvent = dp_event.NonPrivateDpEvent()
        else:
            single = dp_event.PoissonSampledDpEvent(self.sample_rate, dp_event.GaussianDpEvent(z))
        return dp_event.SelfComposedDpEvent(single, self.rounds)

    def with_rounds(self, rounds: int) -> Self:
        """The same release repeated ``rounds`` times (no new warning: this release was already warned about)."""
        new = copy.copy(self)
        object.__setattr__(new, "rounds", check_rounds(rounds))
        return new

    def same_release(self, other: PrivacyEvent) -> bool:
        """True if ``other`` differs from this event at most in ``rounds`` (so the two can be merged)."""
        if type(other) is not type(self):
            return False
        return other.with_rounds(self.rounds) == self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a ``"type"`` key; :func:`event_from_dict` reverses it."""
        return {"type": self.kind, **dataclasses.asdict(self)}  # type: ignore[call-overload]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPRoundEvent(PrivacyEvent):
    """``rounds`` rounds of DP-FedAvg with a fixed clip norm: sum of clipped updates + N(0, (Z·C)²).

    Attributes:
        noise_multiplier: Z ≥ 0 (noise std on the sum divided by ``clip_norm``). In distributed mode, the Z
            the *surviving* devices' noise shares actually add up to (see ``noise.distributed_noise_std``).
        sample_rate: Poisson sampling rate q in (0, 1].
        clip_norm: L2 clip norm C > 0 (does not change ε; recorded).
        rounds: how many identical rounds this event stands for (≥ 1).
    """

    kind: ClassVar[str] = "dp_round"
    noise_multiplier: float
    sample_rate: float
    clip_norm: float
    rounds: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_multiplier", check_noise_multiplier(self.noise_multiplier))
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate))
        object.__setattr__(self, "clip_norm", check_clip_norm(self.clip_norm))
        object.__setattr__(self, "rounds", check_rounds(self.rounds))
        if self.noise_multiplier == 0.0:
            warnings.warn(
                "DPRoundEvent with noise_multiplier=0: these rounds are not private (ε = inf).",
                PrivacyWarning,
                stacklevel=3,
            )

    @property
    def effective_noise_multiplier(self) -> float:
        return self.noise_multiplier

    @property
    def mechanism(self) -> str:
        return MECHANISM_GAUSSIAN


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaptiveClipEvent(PrivacyEvent):
    """``rounds`` rounds of DP-FedAvg with adaptive clipping (Andrew et al. 2021, Alg. 1 / §3).

    Each round releases the update sum with noise ``N(0, (z_Δ·C)²)`` and the count ``Σ (b_i − ½)`` with noise
    ``N(0, σ_b²)``; accounted as one Gaussian with :attr:`effective_noise_multiplier` (Theorem 1).

    Attributes:
        update_noise_multiplier: z_Δ ≥ 0 on the update sum.
        count_noise_std: σ_b ≥ 0 on the clipped-count sum, in devices.
        sample_rate: Poisson sampling rate q in (0, 1].
        clip_norm: the clip norm C used in this round (> 0; recorded, changes from round to round).
        rounds: how many identical rounds this event stands for (≥ 1).
    """

    kind: ClassVar[str] = "adaptive_clip_round"
    update_noise_multiplier: float
    count_noise_std: float
    sample_rate: float
    clip_norm: float
    rounds: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "update_noise_multiplier",
            check_noise_multiplier(self.update_noise_multiplier, "update_noise_multiplier"),
        )
        object.__setattr__(self, "count_noise_std", check_nonnegative(self.count_noise_std, "count_noise_std"))
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate))
        object.__setattr__(self, "clip_norm", check_clip_norm(self.clip_norm))
        object.__setattr__(self, "rounds", check_rounds(self.rounds))
        if self.effective_noise_multiplier == 0.0:
            warnings.warn(
                "AdaptiveClipEvent with zero update or count noise: these rounds are not private (ε = inf).",
                PrivacyWarning,
                stacklevel=3,
            )

    @property
    def effective_noise_multiplier(self) -> float:
        return effective_noise_multiplier(
            update_noise_multiplier=self.update_noise_multiplier, count_noise_std=self.count_noise_std
        )

    @property
    def mechanism(self) -> str:
        return MECHANISM_GAUSSIAN


@dataclasses.dataclass(frozen=True, kw_only=True)
class NonPrivateRoundEvent(PrivacyEvent):
    """``rounds`` rounds run with DP mode ``"off"``: nothing is guaranteed (ε = inf).

    Attributes:
        sample_rate: Poisson sampling rate q in (0, 1] (recorded only).
        rounds: how many rounds (≥ 1).
    """

    kind: ClassVar[str] = "non_private_round"
    sample_rate: float
    rounds: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate))
        object.__setattr__(self, "rounds", check_rounds(self.rounds))

    @property
    def effective_noise_multiplier(self) -> float:
        return 0.0

    @property
    def mechanism(self) -> str:
        return MECHANISM_NONE


_EVENT_TYPES: dict[str, type[PrivacyEvent]] = {cls.kind: cls for cls in (DPRoundEvent, AdaptiveClipEvent, NonPrivateRoundEvent)}


def event_from_dict(data: dict[str, Any]) -> PrivacyEvent:
    """Rebuild an event from :meth:`PrivacyEvent.to_dict` output.

    Raises:
        ValueError: for an unknown ``"type"`` or missing / unexpected fields.
    """
    if not isinstance(data, dict):
        raise TypeError(f"`data` must be a dict. Found {type(data).__name__}.")
    kind = data.get("type")
    if kind not in _EVENT_TYPES:
        raise ValueError(f"`type` must be one of {sorted(_EVENT_TYPES)}. Found {kind!r}.")
    cls = _EVENT_TYPES[kind]
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    given = set(data) - {"type"}
    if given != fields:
        raise ValueError(f"`{kind}` event must have fields {sorted(fields)}. Found {sorted(given)}.")
    with warnings.catch_warnings():
        # A recorded non-private event was warned about when it was recorded.
        warnings.simplefilter("ignore", PrivacyWarning)
        return cls(**{k: data[k] for k in fields})
