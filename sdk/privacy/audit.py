"""Empirical privacy auditing: from membership guesses to a lower bound on ε (the maths, numpy + scipy only).

The accountant (:mod:`.accountant`) proves an **upper** bound: no attacker can learn more than ε allows.
An audit measures a **lower** bound: a real attacker did learn this much, so the mechanism that ran is *not*
(ε', δ)-DP for any ε' below it. A lower bound above the stated ε is a bug in the mechanism or its accounting.

One training run (Steinke, Nasr & Jagielski, NeurIPS 2023, "Privacy Auditing with One (1) Training Run",
arXiv:2305.08846): m canaries are each included independently with probability ½; the auditor scores every
canary on the released model, guesses "in" for the ``k₊`` highest scores and "out" for the ``k₋`` lowest
(abstaining on the rest), and counts the v correct guesses among r = k₊ + k₋. Their main theorem, in its (ε, δ)
form, bounds the chance of v or more correct guesses against an (ε, δ)-DP mechanism by

    P[W ≥ v] ≤ P[Binomial(r, q) ≥ v] + 2mδ · max_{1 ≤ i ≤ v} P[v > Binomial(r, q) ≥ v − i] / i,
    q = e^ε / (1 + e^ε)

(:func:`p_value`, computed as in the authors' published p-value procedure). The ε lower bound at confidence
c is the largest ε whose p-value is still below 1 − c, found by bisection (:func:`epsilon_lower_bound`).

Choosing ``(k₊, k₋)`` after seeing the scores would make the bound invalid; :func:`audit_guesses` instead tries
every pair of a grid fixed in advance and spends the confidence over them (Bonferroni: each pair is tested at
level ``(1 − c)/G``), so the best pair's bound holds at confidence c.

:func:`roc_curve`, :func:`roc_auc` and :func:`tpr_at_fpr` summarise classic membership inference.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

__all__ = [
    "DEFAULT_GUESS_FRACTIONS",
    "EmpiricalLowerBound",
    "GuessBound",
    "audit_guesses",
    "epsilon_lower_bound",
    "guess_pairs",
    "p_value",
    "roc_auc",
    "roc_curve",
    "tpr_at_fpr",
]

#: Guess budgets tried by :func:`audit_guesses`: ``k₊`` and ``k₋`` are each ``⌊f·m⌋`` for f in this tuple
#: (0 = no guesses on that side), every pair with at least one guess (a grid fixed before any score is seen).
DEFAULT_GUESS_FRACTIONS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5)

_BISECTION_STEPS = 60
_EPSILON_CEILING = 100.0


def _check_counts(m: int, r: int, v: int) -> None:
    for name, value in (("m", m), ("r", r), ("v", v)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"`{name}` must be an int. Found {type(value).__name__}.")
    if not 0 <= v <= r <= m:
        raise ValueError(f"the counts must satisfy 0 <= v <= r <= m. Found m={m}, r={r}, v={v}.")


def _check_delta(delta: float) -> float:
    d = float(delta)
    if not 0.0 <= d < 1.0:
        raise ValueError(f"`delta` must be in [0, 1). Found {delta}.")
    return d


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1). Found {confidence}.")
    return c


def p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """The chance of ``v`` or more correct guesses out of ``r`` against an (ε, δ)-DP mechanism (module docstring).

    Args:
        m: canaries, each included independently with probability ½.
        r: guesses made (abstentions excluded), ``r ≤ m``.
        v: correct guesses, ``v ≤ r``.
        epsilon: ε ≥ 0 of the null hypothesis.
        delta: δ in [0, 1) of the null hypothesis.

    Returns:
        the p-value in [0, 1] (Steinke, Nasr & Jagielski 2023, the (ε, δ) form of their main theorem; capped at 1).
    """
    _check_counts(m, r, v)
    d = _check_delta(delta)
    eps = float(epsilon)
    if not eps >= 0.0:
        raise ValueError(f"`epsilon` must be >= 0. Found {epsilon}.")
    q = 1.0 / (1.0 + math.exp(-eps))  # the accuracy of ε-DP randomised response
    tail = float(stats.binom.sf(v - 1, r, q))  # P[Binomial(r, q) >= v]
    if v == 0:
        return min(tail, 1.0)
    i = np.arange(1, v + 1)
    between = np.cumsum(stats.binom.pmf(v - i, r, q))  # P[v > Binomial(r, q) >= v - i], i = 1..v
    alpha = float(np.max(between / i))
    return min(tail + 2.0 * m * d * alpha, 1.0)


def epsilon_lower_bound(*, m: int, r: int, v: int, delta: float, confidence: float) -> float:
    """The largest ε such that ``v`` correct guesses out of ``r`` still reject (ε, δ)-DP at ``confidence``.

    Bisection on :func:`p_value`, which falls as ε falls (as in the authors' own ε search):
    returns 0.0 when even ε = 0 cannot be rejected, and at most 100 (a perfect attacker's bound with very
    many canaries is far below it).

    Example:
        Ten guesses, all correct, δ = 0, 95%: the bound solves ``q¹⁰ = 0.05`` for ``q = e^ε/(1 + e^ε)``,
        ε = log(q/(1 − q)) ≈ 1.052.

        >>> round(epsilon_lower_bound(m=10, r=10, v=10, delta=0.0, confidence=0.95), 3)
        1.052
    """
    _check_counts(m, r, v)
    d = _check_delta(delta)
    level = 1.0 - _check_confidence(confidence)
    if r == 0 or p_value(m=m, r=r, v=v, epsilon=0.0, delta=d) >= level:
        return 0.0
    lo, hi = 0.0, 1.0  # keep p_value(lo) < level <= p_value(hi)
    while p_value(m=m, r=r, v=v, epsilon=hi, delta=d) < level:
        if hi >= _EPSILON_CEILING:
            return _EPSILON_CEILING
        lo, hi = hi, min(2.0 * hi, _EPSILON_CEILING)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if p_value(m=m, r=r, v=v, epsilon=mid, delta=d) < level:
            lo = mid
        else:
            hi = mid
    return lo


@dataclasses.dataclass(frozen=True, kw_only=True)
class GuessBound:
    """The best guess budget of an audit and the ε lower bound it proves.

    Attributes:
        epsilon_lower: the lower bound on ε (0.0 = no evidence of leakage).
        k_plus, k_minus: guesses "in" (highest scores) and "out" (lowest scores) of the best pair.
        guesses: ``k_plus + k_minus``.
        correct: correct guesses among them.
        canaries: m.
        delta: δ of the bound.
        confidence: the bound's confidence (after the correction for the pairs tried).
        hypotheses: how many ``(k₊, k₋)`` pairs were tried (each tested at ``(1 − confidence)/hypotheses``).
    """

    epsilon_lower: float
    k_plus: int
    k_minus: int
    guesses: int
    correct: int
    canaries: int
    delta: float
    confidence: float
    hypotheses: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)


def _check_scores(scores: object, included: object) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    s = np.asarray(scores, np.float64)
    inc = np.asarray(included)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"`scores` must be a non-empty 1-D array. Found shape {s.shape}.")
    if inc.shape != s.shape:
        raise ValueError(f"`included` must have the shape of `scores` {s.shape}. Found {inc.shape}.")
    if inc.dtype != np.bool_:
        raise TypeError(f"`included` must be a boolean array. Found dtype {inc.dtype}.")
    if not np.isfinite(s).all():
        raise ValueError(f"`scores` must be finite. Found {int((~np.isfinite(s)).sum())} non-finite value(s).")
    return s, inc


def guess_pairs(canaries: int, fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS) -> list[tuple[int, int]]:
    """The ``(k₊, k₋)`` pairs :func:`audit_guesses` tries for ``canaries`` canaries: ``⌊f·m⌋`` for each f of
    ``fractions`` on each side, every pair with at least one guess."""
    fr = sorted({float(f) for f in fractions})
    if not fr or fr[0] < 0.0 or fr[-1] > 0.5:
        raise ValueError(f"`fractions` must be non-empty, each in [0, 0.5]. Found {list(fractions)}.")
    budgets = sorted({math.floor(f * canaries) for f in fr})
    pairs = [(kp, km) for kp in budgets for km in budgets if kp + km > 0]
    if not pairs:
        raise ValueError(f"`fractions` {list(fractions)} give no guesses for m={canaries} canaries.")
    return pairs


def audit_guesses(
    scores: Sequence[float] | NDArray[np.floating],
    included: Sequence[bool] | NDArray[np.bool_],
    *,
    delta: float,
    confidence: float,
    fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS,
    hypotheses: int | None = None,
) -> GuessBound:
    """Guess membership from ``scores`` (higher = more likely included) and bound ε (module docstring).

    Ties are broken by canary order (a rule fixed in advance). ``included`` is only used to count correct
    guesses: the guesses themselves depend on the scores alone, as the theorem requires.

    Args:
        scores: one score per canary ``[m]``.
        included: whether each canary was in the training run ``bool[m]``.
        delta: δ of the null hypothesis.
        confidence: overall confidence c in (0, 1) of the returned bound.
        fractions: the guess-budget grid (fixed in advance): ``k₊, k₋ = ⌊f·m⌋``.
        hypotheses: the total number of tests the caller spends ``confidence`` over (at least the pairs
            tried here; pass a larger number when several score functions are audited and the best is kept).

    Returns:
        the pair with the largest lower bound (:class:`GuessBound`).
    """
    s, inc = _check_scores(scores, included)
    d = _check_delta(delta)
    c = _check_confidence(confidence)
    m = int(s.size)
    pairs = guess_pairs(m, fractions)
    tests = len(pairs) if hypotheses is None else int(hypotheses)
    if tests < len(pairs):
        raise ValueError(f"`hypotheses` must be at least the {len(pairs)} pairs tried. Found {hypotheses}.")
    per_test = 1.0 - (1.0 - c) / tests
    order = np.argsort(-s, kind="stable")  # highest score first; ties keep canary order
    ranked = inc[order]
    bounds: list[GuessBound] = []
    for kp, km in pairs:
        v = int(ranked[:kp].sum()) + int((~ranked[m - km:]).sum() if km else 0)
        eps = epsilon_lower_bound(m=m, r=kp + km, v=v, delta=d, confidence=per_test)
        bounds.append(GuessBound(epsilon_lower=eps, k_plus=kp, k_minus=km, guesses=kp + km, correct=v,
                                 canaries=m, delta=d, confidence=c, hypotheses=tests))
    return max(bounds, key=lambda b: b.epsilon_lower)  # the first of equal bounds (grid order)


def roc_curve(
    scores: Sequence[float] | NDArray[np.floating], members: Sequence[bool] | NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(fpr, tpr)`` of the rule "member if score ≥ t" over every threshold t, from (0, 0) to (1, 1).

    Tied scores move both rates at once (one point per distinct score).

    Raises:
        ValueError: when ``members`` has no members or no non-members.
    """
    s, mem = _check_scores(scores, members)
    pos, neg = int(mem.sum()), int((~mem).sum())
    if pos == 0 or neg == 0:
        raise ValueError(f"`members` must contain both classes. Found {pos} member(s), {neg} non-member(s).")
    order = np.argsort(-s, kind="stable")
    s_sorted, m_sorted = s[order], mem[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s.size - 1]
    tp = np.cumsum(m_sorted)[last_of_tie]
    fp = np.cumsum(~m_sorted)[last_of_tie]
    tpr = np.r_[0.0, tp / pos]
    fpr = np.r_[0.0, fp / neg]
    return fpr.astype(np.float64), tpr.astype(np.float64)


def roc_auc(scores: Sequence[float] | NDArray[np.floating], members: Sequence[bool] | NDArray[np.bool_]) -> float:
    """Area under :func:`roc_curve` (trapezoids; ties count ½): 0.5 is guessing, 1.0 a perfect attack."""
    fpr, tpr = roc_curve(scores, members)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tpr_at_fpr(
    scores: Sequence[float] | NDArray[np.floating], members: Sequence[bool] | NDArray[np.bool_], *,
    fpr: float = 0.01,
) -> float:
    """The largest true-positive rate of a threshold whose false-positive rate is at most ``fpr``."""
    f = float(fpr)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"`fpr` must be in [0, 1]. Found {fpr}.")
    rates_f, rates_t = roc_curve(scores, members)
    return float(rates_t[rates_f <= f + 1e-12].max())


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmpiricalLowerBound:
    """An audit's empirical lower bound on ε, as the privacy ledger records it (``empirical_lower_bound``).

    Not a guarantee: the accountant's ε is the guarantee (an upper bound); this says that an attacker
    *demonstrably* got at least this much, so the mechanism is not (ε', δ)-DP for any ε' below it.

    Attributes:
        epsilon_lower: the lower bound (0.0 = the audit found no evidence of leakage).
        delta: δ at which it holds.
        confidence: the probability that the bound is not an overestimate.
        canaries: m, the canary devices of the audit run.
        method: how it was obtained (e.g. ``"one-run canaries (Steinke, Nasr & Jagielski 2023): bias_delta"``).
    """

    epsilon_lower: float
    delta: float
    confidence: float
    canaries: int
    method: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon_lower) and self.epsilon_lower >= 0.0):
            raise ValueError(f"`epsilon_lower` must be a finite float >= 0. Found {self.epsilon_lower}.")
        object.__setattr__(self, "delta", _check_delta(self.delta))
        object.__setattr__(self, "confidence", _check_confidence(self.confidence))
        if isinstance(self.canaries, bool) or not isinstance(self.canaries, int) or self.canaries < 1:
            raise ValueError(f"`canaries` must be an int >= 1. Found {self.canaries!r}.")
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"`method` must be a non-empty string. Found {self.method!r}.")

    def to_dict(self) -> dict[str, Any]:
        """The ledger's ``empirical_lower_bound`` object."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> EmpiricalLowerBound:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != fields:
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"`empirical_lower_bound` must have keys {sorted(fields)}. Found {found}.")
        return cls(**data)
