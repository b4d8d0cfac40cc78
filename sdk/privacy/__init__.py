"""privrec.sdk.privacy: user-level differential privacy for federated rounds.

* :mod:`.events` — immutable records of what a round released (:class:`DPRoundEvent`,
  :class:`AdaptiveClipEvent`, :class:`NonPrivateRoundEvent`).
* :mod:`.accountant` — :class:`PrivacyAccountant` composing them with dp_accounting's RDP and PLD
  accountants (Poisson-subsampled Gaussian, add-or-remove-one users); :func:`compute_epsilon`.
* :mod:`.calibrate` — :func:`calibrate_noise_multiplier` (stated ε never above the target).
* :mod:`.config` — :class:`DPConfig` (modes central / distributed / off).
* :mod:`.clipping` — :func:`clip_l2`, :class:`AdaptiveClipper` (Andrew et al. 2021).
* :mod:`.noise` — secure (ChaCha20-keyed) and seeded Gaussian generators; per-party noise std.
* :mod:`.ledger` — :class:`PrivacyLedger` (``privacy_ledger.json``, the manifest's ``"privacy"``).
* :mod:`.report` — :func:`privacy_report`, the function behind ``privrec privacy``.

The stated ε everywhere is the RDP one (an analytic upper bound); PLD's is reported beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privrec._lazy import lazy_exports

if TYPE_CHECKING:
    from .accountant import (
        DEFAULT_PLD_VALUE_DISCRETIZATION_INTERVAL,
        EpsilonReport,
        PrivacyAccountant,
        compute_epsilon,
        compute_epsilon_rdp,
    )
    from .calibrate import calibrate_noise_multiplier
    from .clipping import AdaptiveClipper, clip_l2, geometric_clip_update
    from .config import DPConfig, DPMode
    from .errors import PrivacyWarning
    from .events import (
        AdaptiveClipEvent,
        DPRoundEvent,
        NonPrivateRoundEvent,
        PrivacyEvent,
        effective_noise_multiplier,
        event_from_dict,
        update_noise_multiplier,
    )
    from .ledger import (
        LEDGER_FILENAME,
        LEDGER_SCHEMA_VERSION,
        AdaptiveClipSummary,
        LedgerEntry,
        PrivacyLedger,
        manifest_privacy,
    )
    from .noise import (
        NoiseGenerator,
        SecureGaussianNoise,
        SeededGaussianNoise,
        central_noise_std,
        distributed_effective_noise_multiplier,
        distributed_noise_std,
        make_noise_generator,
    )
    from .report import privacy_report

__all__ = [
    "DEFAULT_PLD_VALUE_DISCRETIZATION_INTERVAL",
    "LEDGER_FILENAME",
    "LEDGER_SCHEMA_VERSION",
    "AdaptiveClipEvent",
    "AdaptiveClipSummary",
    "AdaptiveClipper",
    "DPConfig",
    "DPMode",
    "DPRoundEvent",
    "EpsilonReport",
    "LedgerEntry",
    "NoiseGenerator",
    "NonPrivateRoundEvent",
    "PrivacyAccountant",
    "PrivacyEvent",
    "PrivacyLedger",
    "PrivacyWarning",
    "SecureGaussianNoise",
    "SeededGaussianNoise",
    "calibrate_noise_multiplier",
    "central_noise_std",
    "clip_l2",
    "compute_epsilon",
    "compute_epsilon_rdp",
    "distributed_effective_noise_multiplier",
    "distributed_noise_std",
    "effective_noise_multiplier",
    "event_from_dict",
    "geometric_clip_update",
    "make_noise_generator",
    "manifest_privacy",
    "privacy_report",
    "update_noise_multiplier",
]

# Every name is imported on first use (PEP 562): the device path needs clipping and noise, not the
# accountant (dp-accounting, scipy).
_LAZY: dict[str, str] = {
    "AdaptiveClipEvent": ".events",
    "AdaptiveClipSummary": ".ledger",
    "AdaptiveClipper": ".clipping",
    "DEFAULT_PLD_VALUE_DISCRETIZATION_INTERVAL": ".accountant",
    "DPConfig": ".config",
    "DPMode": ".config",
    "DPRoundEvent": ".events",
    "EpsilonReport": ".accountant",
    "LEDGER_FILENAME": ".ledger",
    "LEDGER_SCHEMA_VERSION": ".ledger",
    "LedgerEntry": ".ledger",
    "NoiseGenerator": ".noise",
    "NonPrivateRoundEvent": ".events",
    "PrivacyAccountant": ".accountant",
    "PrivacyEvent": ".events",
    "PrivacyLedger": ".ledger",
    "PrivacyWarning": ".errors",
    "SecureGaussianNoise": ".noise",
    "SeededGaussianNoise": ".noise",
    "calibrate_noise_multiplier": ".calibrate",
    "central_noise_std": ".noise",
    "clip_l2": ".clipping",
    "compute_epsilon": ".accountant",
    "compute_epsilon_rdp": ".accountant",
    "distributed_effective_noise_multiplier": ".noise",
    "distributed_noise_std": ".noise",
    "effective_noise_multiplier": ".events",
    "event_from_dict": ".events",
    "geometric_clip_update": ".clipping",
    "make_noise_generator": ".noise",
    "manifest_privacy": ".ledger",
    "privacy_report": ".report",
    "update_noise_multiplier": ".events",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
