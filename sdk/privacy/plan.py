"""Plan a private federated run for N devices and a budget ε: (q, T, Z, C, cohort) and the quality to expect.

The settings and the expected quality come from measurements, not a formula: ``privrec bench population``
trained at N ∈ {943, 10k, 100k, 1M} (and intermediate N at ε = 1) for ε ∈ {0.5, …, 8, ∞} and wrote the
measured curves (the table ``privrec.sdk.privacy._population_curves``, generated from its ``result.json``).
:func:`plan`

1. takes the ε = 1 shape chosen (on validation users) at the nearest measured N at or below ``users`` (the
   smallest measured N for smaller populations): the model layout, the expected cohort q·N and the rounds
   T, so q = cohort / N;
2. calibrates Z to ε for that (q, T, δ) (:func:`~privrec.sdk.privacy.calibrate_noise_multiplier`) and
   recomputes the stated ε with dp-accounting (RDP and PLD) for exactly that (q, T, Z);
3. interpolates the measured quality ratio (full HR@10 ÷ that N's DP-off reference, itself the best of a
   DP-off grid on validation users) linearly in (log N, log ε) between the
   measured points; outside them it clamps, and says so in ``basis``. At a fixed cohort and T the noise
   on the average falls as 1/N, so beyond the largest N measured the clamped value is a lower bound.

δ defaults to ``min(N^-1.1, 1/(2N))`` and must be < 1/N.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass
from typing import Any

from .accountant import compute_epsilon
from .calibrate import calibrate_noise_multiplier

__all__ = ["Plan", "default_delta", "plan"]


@dataclass(frozen=True)
class Plan:
    """A recommended private federated run.

    Attributes:
        users: N, devices in the population.
        target_epsilon: the ε asked for; ``delta``: δ (< 1/N).
        sample_rate: q, the Poisson rate a device joins a round with.
        expected_cohort: q·N, devices per round on average (what secure aggregation must handle).
        rounds: T.
        noise_multiplier: Z, calibrated so the stated ε (RDP) ≤ ``target_epsilon``.
        clip_norm: C, the L2 bound of one device's update (the measured runs' setting).
        layout: the model the measured runs trained (``"tied4"``: item table tied to public genre/decade
            features, d = 4; ``"tied+free16"``: a free table on top of the tie, d = 16; see
            :func:`privrec.benchmarks.population.population_config`).
        epsilon_rdp, epsilon_pld: ε of exactly (q, T, Z, δ), recomputed by dp-accounting.
        expected_ratio: the measured full HR@10 ÷ DP-off ratio interpolated to (N, ε).
        basis: how ``expected_ratio`` was obtained (which measured points; clamping).
    """

    users: int
    target_epsilon: float
    delta: float
    sample_rate: float
    expected_cohort: float
    rounds: int
    noise_multiplier: float
    clip_norm: float
    layout: str
    epsilon_rdp: float
    epsilon_pld: float
    expected_ratio: float
    basis: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``privrec plan --json``)."""
        return asdict(self)


def default_delta(users: int) -> float:
    """``min(N^-1.1, 1/(2N))``: below 1/N for every N ≥ 1."""
    return float(min(float(users) ** -1.1, 0.5 / users))


def _check(users: object, epsilon: object, delta: object) -> tuple[int, float, float]:
    if isinstance(users, bool) or not isinstance(users, int):
        raise TypeError(f"`users` must be an int. Found {type(users).__name__}.")
    if users < 1:
        raise ValueError(f"`users` must be >= 1. Found {users}.")
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float):
        raise TypeError(f"`epsilon` must be a float. Found {type(epsilon).__name__}.")
    eps = float(epsilon)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"`epsilon` must be finite and > 0. Found {epsilon}.")
    d = default_delta(users) if delta is None else delta
    if isinstance(d, bool) or not isinstance(d, int | float):
        raise TypeError(f"`delta` must be a float. Found {type(d).__name__}.")
    dd = float(d)
    if not (math.isfinite(dd) and 0 < dd < 1.0 / users):
        raise ValueError(f"`delta` must be in (0, 1/N) = (0, {1.0 / users:.3g}) for N = {users}. Found {d}.")
    return users, eps, dd


def _interp(xs: list[float], ys: list[float], x: float) -> tuple[float, str]:
    """Piecewise-linear ``y(x)`` on sorted ``xs``, clamped at the ends (the note says which end)."""
    if x <= xs[0]:
        return ys[0], "clamped below" if x < xs[0] else ""
    if x >= xs[-1]:
        return ys[-1], "clamped above" if x > xs[-1] else ""
    j = bisect.bisect_right(xs, x)
    w = (x - xs[j - 1]) / (xs[j] - xs[j - 1])
    return ys[j - 1] + w * (ys[j] - ys[j - 1]), ""


def _curves() -> dict[str, Any]:
    from ._population_curves import CURVES

    curves: dict[str, Any] = CURVES
    return curves


def plan(*, users: int, epsilon: float, delta: float | None = None, curves: dict[str, Any] | None = None) -> Plan:
    """Recommend (q, T, Z, C, cohort) for ``users`` devices at (``epsilon``, ``delta``) (module docstring).

    Raises:
        TypeError, ValueError: ``users`` < 1, ``epsilon`` ≤ 0 or not finite, ``delta`` ∉ (0, 1/N); each
            message names the parameter, what was expected and what was found.
    """
    n, eps, d = _check(users, epsilon, delta)
    table = curves if curves is not None else _curves()
    settings = sorted(table["settings"], key=lambda s: s["n_users"])
    below = [s for s in settings if s["n_users"] <= n]
    chosen = below[-1] if below else settings[0]
    q = min(1.0, chosen["expected_cohort"] / n)
    rounds = int(chosen["rounds"])
    z = calibrate_noise_multiplier(target_epsilon=eps, sample_rate=q, rounds=rounds, delta=d)
    report = compute_epsilon(noise_multiplier=z, sample_rate=q, rounds=rounds, delta=d)
    # Quality: per measured N with ≥ 2 finite ε, interpolate in log ε; then in log N.
    per_n: dict[int, list[tuple[float, float]]] = {}
    for p in table["points"]:
        if p["epsilon"] is not None and p["ratio_to_off"] is not None:
            per_n.setdefault(int(p["n_users"]), []).append((math.log(p["epsilon"]), float(p["ratio_to_off"])))
    full = sorted(k for k, v in per_n.items() if len(v) >= 2)
    if not full:
        raise ValueError("the measured curves hold no population with two or more ε: run `privrec bench population`.")
    notes: list[str] = []
    at_n: list[float] = []
    for k in full:
        pts = sorted(per_n[k])
        val, note = _interp([p[0] for p in pts], [p[1] for p in pts], math.log(eps))
        at_n.append(val)
        if note:
            notes.append(f"ε {note} at N = {k:,}")
    ratio, note = _interp([math.log(k) for k in full], at_n, math.log(n))
    if note == "clamped above":
        notes.append(f"N above the largest fully measured N = {full[-1]:,}: a lower bound (noise on the average falls as 1/N)")
    elif note:
        notes.append(f"N below the smallest measured N = {full[0]:,}")
    basis = f"interpolated from measured N = {', '.join(f'{k:,}' for k in full)} ({table['source']})"
    if notes:
        basis += "; " + "; ".join(notes)
    return Plan(users=n, target_epsilon=eps, delta=d, sample_rate=q, expected_cohort=q * n, rounds=rounds,
                noise_multiplier=z, clip_norm=float(chosen["clip_norm"]),
                layout=str(chosen.get("layout", "tied4")), epsilon_rdp=report.epsilon_rdp,
                epsilon_pld=report.epsilon_pld, expected_ratio=max(0.0, min(1.0, ratio)), basis=basis)
