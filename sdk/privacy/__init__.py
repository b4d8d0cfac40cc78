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
* :mod:`.audit` — the empirical privacy audit's maths: membership guesses → an ε **lower** bound
  (:func:`epsilon_lower_bound`, :func:`audit_guesses`; Steinke, Nasr & Jagielski 2023), ROC summaries.
* :mod:`.audit_canaries` — :func:`run_canary_audit`: canary devices in one federated training run (torch).
* :mod:`.audit_membership` — loss-threshold and reconstruction membership scores of users (torch).

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
    from .audit import (
        DEFAULT_GUESS_FRACTIONS,
        EmpiricalLowerBound,
        GuessBound,
        audit_guesses,
        epsilon_lower_bound,
        guess_pairs,
        p_value,
        roc_auc,
        roc_curve,
        tpr_at_fpr,
    )
    from .audit_canaries import (
        CANARY_SCORES,
        AuditConfig,
        CanaryAudit,
        MembershipResult,
        add_canaries,
        audit_run_dir,
        choose_canary_items,
        run_canary_audit,
    )
    from .audit_membership import MEMBERSHIP_SCORES, loss_scores, reconstruction_scores
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
    "CANARY_SCORES",
    "DEFAULT_GUESS_FRACTIONS",
    "DEFAULT_PLD_VALUE_DISCRETIZATION_INTERVAL",
    "LEDGER_FILENAME",
    "LEDGER_SCHEMA_VERSION",
    "MEMBERSHIP_SCORES",
    "AdaptiveClipEvent",
    "AdaptiveClipSummary",
    "AdaptiveClipper",
    "AuditConfig",
    "CanaryAudit",
    "DPConfig",
    "DPMode",
    "DPRoundEvent",
    "EmpiricalLowerBound",
    "EpsilonReport",
    "GuessBound",
    "LedgerEntry",
    "MembershipResult",
    "NoiseGenerator",
    "NonPrivateRoundEvent",
    "PrivacyAccountant",
    "PrivacyEvent",
    "PrivacyLedger",
    "PrivacyWarning",
    "SecureGaussianNoise",
    "SeededGaussianNoise",
    "add_canaries",
    "audit_guesses",
    "audit_run_dir",
    "calibrate_noise_multiplier",
    "central_noise_std",
    "choose_canary_items",
    "clip_l2",
    "compute_epsilon",
    "compute_epsilon_rdp",
    "distributed_effective_noise_multiplier",
    "distributed_noise_std",
    "effective_noise_multiplier",
    "epsilon_lower_bound",
    "event_from_dict",
    "geometric_clip_update",
    "guess_pairs",
    "loss_scores",
    "make_noise_generator",
    "manifest_privacy",
    "p_value",
    "privacy_report",
    "reconstruction_scores",
    "roc_auc",
    "roc_curve",
    "run_canary_audit",
    "tpr_at_fpr",
    "update_noise_multiplier",
]

# Every name is imported on first use (PEP 562): the device path needs clipping and noise, not the
# accountant (dp-accounting, scipy).
_LAZY: dict[str, str] = {
    "CANARY_SCORES": ".audit_canaries",
    "DEFAULT_GUESS_FRACTIONS": ".audit",
    "MEMBERSHIP_SCORES": ".audit_membership",
    "AuditConfig": ".audit_canaries",
    "CanaryAudit": ".audit_canaries",
    "EmpiricalLowerBound": ".audit",
    "GuessBound": ".audit",
    "MembershipResult": ".audit_canaries",
    "add_canaries": ".audit_canaries",
    "audit_guesses": ".audit",
    "audit_run_dir": ".audit_canaries",
    "choose_canary_items": ".audit_canaries",
    "epsilon_lower_bound": ".audit",
    "guess_pairs": ".audit",
    "loss_scores": ".audit_membership",
    "p_value": ".audit",
    "reconstruction_scores": ".audit_membership",
    "roc_auc": ".audit",
    "roc_curve": ".audit",
    "run_canary_audit": ".audit_canaries",
    "tpr_at_fpr": ".audit",
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
