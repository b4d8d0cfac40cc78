"""The DP configuration of a federated run.

Modes:

* ``"central"`` — a trusted server adds ``N(0, (Z·C)²)`` to the sum of clipped updates.
* ``"distributed"`` — each of n devices adds ``N(0, (Z·C)²/n)`` before secure aggregation, so the sum
  carries ``Z·C`` when all n shares arrive; see :mod:`privrec.sdk.privacy.noise` for dropouts (the sum is
  under-noised) and the conservative choice of n.
* ``"off"`` — no clipping guarantee, no noise, ε = inf. Allowed for baselines; warns with
  :class:`~privrec.sdk.privacy.errors.PrivacyWarning` when the config is created and is recorded in the
  ledger and the bundle manifest.

Give exactly one of ``noise_multiplier`` (Z) and ``target_epsilon``; with ``target_epsilon``, also the
planned ``rounds`` and ``sample_rate``, and Z is calibrated so that the stated (RDP) ε of the planned run
is ≤ the target (:func:`~privrec.sdk.privacy.calibrate.calibrate_noise_multiplier`).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any, Literal, get_args

from ..validation import check_config_keys, check_probability
from ._validate import (
    check_clip_norm,
    check_delta,
    check_noise_multiplier,
    check_nonnegative,
    check_rounds,
    check_sample_rate,
    check_target_epsilon,
)
from .calibrate import calibrate_noise_multiplier
from .errors import PrivacyWarning
from .events import update_noise_multiplier
from .noise import NoiseGenerator, make_noise_generator

__all__ = ["DPConfig", "DPMode"]

DPMode = Literal["central", "distributed", "off"]
_MODES: tuple[str, ...] = get_args(DPMode)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPConfig:
    """User-level DP settings of a federated run. Validated on construction; every field keyword-only.

    Attributes:
        mode: ``"central"``, ``"distributed"`` or ``"off"``.
        noise_multiplier: Z ≥ 0 (noise std on the sum / C), or None when ``target_epsilon`` is given.
        target_epsilon: ε budget > 0 for the planned run, or None when ``noise_multiplier`` is given.
        rounds: planned number of rounds T (required with ``target_epsilon``).
        sample_rate: planned Poisson sampling rate q in (0, 1] (required with ``target_epsilon``).
        clip_norm: the L2 clip norm C > 0; the initial C₀ when ``adaptive_clipping``.
        delta: δ in (0, 1) (default 1e-5; choose δ < 1/number of users).
        adaptive_clipping: adapt C to a quantile of the update norms (Andrew et al. 2021).
        target_unclipped_quantile: γ in [0, 1] (default 0.5).
        clip_learning_rate: η ≥ 0 for the geometric update (default 0.2).
        count_noise_std: σ_b > Z/2, std of the noise on the clipped-count sum in devices; required with
            ``adaptive_clipping`` (Andrew et al. suggest m/20 for m expected devices per round).
        secure_noise: draw noise from the secure generator (default). False requires ``noise_seed``, warns,
            and is recorded.
        noise_seed: seed of the insecure reproducible generator (only with ``secure_noise=False``).
    """

    mode: DPMode = "central"
    noise_multiplier: float | None = None
    target_epsilon: float | None = None
    rounds: int | None = None
    sample_rate: float | None = None
    clip_norm: float = 1.0
    delta: float = 1e-5
    adaptive_clipping: bool = False
    target_unclipped_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    count_noise_std: float | None = None
    secure_noise: bool = True
    noise_seed: int | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if self.mode not in _MODES:
            raise ValueError(f"`mode` must be one of {list(_MODES)}. Found {self.mode!r}.")
        for name in ("adaptive_clipping", "secure_noise"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be a bool. Found {type(getattr(self, name)).__name__}.")
        put("clip_norm", check_clip_norm(self.clip_norm))
        put("delta", check_delta(self.delta))
        put(
            "target_unclipped_quantile",
            check_probability(self.target_unclipped_quantile, "target_unclipped_quantile", low_open=False),
        )
        put("clip_learning_rate", check_nonnegative(self.clip_learning_rate, "clip_learning_rate"))
        if self.rounds is not None:
            put("rounds", check_rounds(self.rounds))
        if self.sample_rate is not None:
            put("sample_rate", check_sample_rate(self.sample_rate))
        if self.count_noise_std is not None:
            put("count_noise_std", check_nonnegative(self.count_noise_std, "count_noise_std"))
        if self.secure_noise and self.noise_seed is not None:
            raise ValueError(f"`noise_seed` must be None when secure_noise=True. Found {self.noise_seed}.")
        if not self.secure_noise and self.noise_seed is None:
            raise ValueError("`noise_seed` must be an int when secure_noise=False. Found None.")

        if self.mode == "off":
            for name in ("noise_multiplier", "target_epsilon"):
                if getattr(self, name) is not None:
                    raise ValueError(f"`{name}` must be None when mode='off'. Found {getattr(self, name)}.")
            warnings.warn(
                "DP mode 'off': updates are neither noised nor accounted; this run has NO differential "
                "privacy (ε = inf). It is recorded as mode 'off' in the ledger and the bundle manifest.",
                PrivacyWarning,
                stacklevel=3,
            )
            return

        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError(
                "Exactly one of `noise_multiplier` and `target_epsilon` must be given when mode="
                f"{self.mode!r}. Found noise_multiplier={self.noise_multiplier}, "
                f"target_epsilon={self.target_epsilon}."
            )
        if self.noise_multiplier is not None:
            put("noise_multiplier", check_noise_multiplier(self.noise_multiplier))
            if self.noise_multiplier == 0.0:
                warnings.warn(
                    f"noise_multiplier=0 in mode {self.mode!r}: updates are clipped but not noised (ε = inf).",
                    PrivacyWarning,
                    stacklevel=3,
                )
        else:
            put("target_epsilon", check_target_epsilon(self.target_epsilon))
            for name in ("rounds", "sample_rate"):
                if getattr(self, name) is None:
                    raise ValueError(f"`{name}` must be given with `target_epsilon` (to calibrate Z). Found None.")
        if self.adaptive_clipping:
            if self.count_noise_std is None:
                raise ValueError("`count_noise_std` must be given when adaptive_clipping=True. Found None.")
            if self.noise_multiplier is not None:
                update_noise_multiplier(noise_multiplier=self.noise_multiplier, count_noise_std=self.count_noise_std)
        if not self.secure_noise:
            warnings.warn(
                f"secure_noise=False: noise comes from a seeded generator (seed {self.noise_seed}) and does "
                "not protect users; for simulations only. Recorded in the ledger.",
                PrivacyWarning,
                stacklevel=3,
            )

    @functools.cached_property
    def resolved_noise_multiplier(self) -> float:
        """Z of the whole round release: the given ``noise_multiplier``, or calibrated from ``target_epsilon``
        (stated RDP ε of ``rounds`` rounds at ``sample_rate`` ≤ target). 0.0 in mode ``"off"``.

        With adaptive clipping this is the *effective* z of update + count (Andrew et al. 2021, Thm 1); the
        update itself gets :attr:`resolved_update_noise_multiplier`.
        """
        if self.mode == "off":
            return 0.0
        if self.noise_multiplier is not None:
            return self.noise_multiplier
        if self.target_epsilon is None or self.rounds is None or self.sample_rate is None:  # pragma: no cover
            raise RuntimeError("unreachable: __post_init__ requires target_epsilon, rounds and sample_rate")
        return calibrate_noise_multiplier(
            target_epsilon=self.target_epsilon,
            sample_rate=self.sample_rate,
            rounds=self.rounds,
            delta=self.delta,
        )

    @property
    def resolved_update_noise_multiplier(self) -> float:
        """z_Δ, the multiplier of the noise on the update sum (= Z without adaptive clipping).

        Raises:
            ValueError: if adaptive and ``count_noise_std <= Z / 2``.
        """
        z = self.resolved_noise_multiplier
        if not self.adaptive_clipping or self.mode == "off":
            return z
        if self.count_noise_std is None:  # pragma: no cover
            raise RuntimeError("unreachable: __post_init__ requires count_noise_std with adaptive clipping")
        return update_noise_multiplier(noise_multiplier=z, count_noise_std=self.count_noise_std)

    def make_noise(self) -> NoiseGenerator:
        """The noise generator this config asks for (secure unless ``secure_noise=False``)."""
        return make_noise_generator(secure=self.secure_noise, seed=self.noise_seed)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (:meth:`from_dict` reverses it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DPConfig:
        """Build from a dict of fields; unknown keys are refused (ValueError naming them)."""
        return cls(**check_config_keys(data, cls, "DP"))
