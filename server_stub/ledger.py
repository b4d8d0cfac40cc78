"""The server's privacy ledger: one :class:`~privrec.sdk.privacy.PrivacyEvent` per completed round,
composed by :class:`~privrec.sdk.privacy.PrivacyAccountant` (dp-accounting RDP and PLD).

A round that aborts releases nothing (the server never sees an unmasked sum), so it costs no ε and
adds no event.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from privrec.sdk.privacy import (
    DPConfig,
    DPRoundEvent,
    NonPrivateRoundEvent,
    PrivacyAccountant,
    PrivacyEvent,
    PrivacyLedger,
    PrivacyWarning,
    distributed_effective_noise_multiplier,
)

__all__ = ["build_ledger", "round_event"]


def round_event(dp: DPConfig, *, sample_rate: float, expected_devices: int, survivors: int) -> PrivacyEvent:
    """The release of one completed round.

    central: the server adds N(0, (Z·C)²) to the sum → ``DPRoundEvent(Z)``. distributed: each device added
    N(0, (Z·C)²/n) with n = ``expected_devices`` (the threshold), so the k = ``survivors`` ≥ n shares in the
    sum carry ``Z·sqrt(k/n)`` (:func:`distributed_effective_noise_multiplier`). off: non-private.
    """
    if dp.mode == "off":
        return NonPrivateRoundEvent(sample_rate=sample_rate)
    z = dp.resolved_update_noise_multiplier
    if dp.mode == "distributed":
        z = distributed_effective_noise_multiplier(
            noise_multiplier=z, expected_devices=expected_devices, surviving_devices=survivors
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)  # Z = 0 was warned about when the config was made
        return DPRoundEvent(noise_multiplier=z, sample_rate=sample_rate, clip_norm=dp.clip_norm)


def build_ledger(
    dp: DPConfig, events: Iterable[PrivacyEvent], *, pld_value_discretization_interval: float = 1e-3
) -> PrivacyLedger:
    """The ledger of ``events`` (in round order) at ``dp.delta``.

    The stated ε is the RDP one and does not depend on the PLD discretisation; the server's default
    interval 1e-3 (dp-accounting's finer 1e-4 takes seconds per call) only ever overstates ``epsilon_pld``
    (by about 1e-5 relative at Z = 1, q = 0.2, 50 rounds).
    """
    accountant = PrivacyAccountant(delta=dp.delta, pld_value_discretization_interval=pld_value_discretization_interval)
    for event in events:
        accountant.compose(event)
    return PrivacyLedger.from_accountant(accountant, mode=dp.mode, secure_noise=dp.secure_noise)
