"""The function behind ``privrec privacy``.

``privrec privacy --noise-multiplier Z --sample-rate Q --rounds T --delta D --json`` prints ε of T rounds of
the Poisson-subsampled Gaussian from both accountants; ``--target-epsilon E`` instead of
``--noise-multiplier`` calibrates Z so that the **stated ε (RDP)** is ≤ E, and reports that Z with both
ε values (ε_pld is then usually well below E).
"""

from __future__ import annotations

import math
from typing import Any

from .accountant import DEFAULT_PLD_VALUE_DISCRETIZATION_INTERVAL, compute_epsilon
from .calibrate import calibrate_noise_multiplier

__all__ = ["privacy_report"]


def _finite_or_none(value: float) -> float | None:
    return None if math.isinf(value) else value


def privacy_report(
    *,
    noise_multiplier: float | None = None,
    sample_rate: float,
    rounds: int,
    delta: float,
    target_epsilon: float | None = None,
    pld_value_discretization_interval: float = DEFAULT_PLD_VALUE_DISCRETIZATION_INTERVAL,
) -> dict[str, Any]:
    """User-level (ε, δ) of T rounds at noise multiplier Z and sampling rate q, or Z calibrated to a target ε.

    Exactly one of ``noise_multiplier`` and ``target_epsilon`` must be given.

    Returns:
        ``{"epsilon": ε_rdp (stated), "epsilon_rdp", "epsilon_pld", "delta", "noise_multiplier",
        "sample_rate", "rounds"}`` plus ``"target_epsilon"`` when calibrating; JSON-ready. ε = inf (Z = 0,
        no guarantee) is returned as ``None`` (JSON ``null``), as in the ledger.

    Raises:
        ValueError: if both or neither of ``noise_multiplier`` / ``target_epsilon`` are given, or an argument
            is out of range (the message names it and the value).
    """
    if (noise_multiplier is None) == (target_epsilon is None):
        raise ValueError(
            "Exactly one of `noise_multiplier` and `target_epsilon` must be given. "
            f"Found noise_multiplier={noise_multiplier}, target_epsilon={target_epsilon}."
        )
    if noise_multiplier is None:
        z = calibrate_noise_multiplier(
            target_epsilon=target_epsilon,  # type: ignore[arg-type]  # not None: checked above
            sample_rate=sample_rate,
            rounds=rounds,
            delta=delta,
        )
    else:
        z = noise_multiplier
    report = compute_epsilon(
        noise_multiplier=z,
        sample_rate=sample_rate,
        rounds=rounds,
        delta=delta,
        pld_value_discretization_interval=pld_value_discretization_interval,
    )
    result: dict[str, Any] = {
        "epsilon": _finite_or_none(report.epsilon),
        "epsilon_rdp": _finite_or_none(report.epsilon_rdp),
        "epsilon_pld": _finite_or_none(report.epsilon_pld),
        "delta": report.delta,
        "noise_multiplier": float(z),
        "sample_rate": float(sample_rate),
        "rounds": int(rounds),
    }
    if target_epsilon is not None:
        result["target_epsilon"] = float(target_epsilon)
    return result
