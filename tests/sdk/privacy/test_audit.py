"""The audit's maths: p-values and ε lower bounds (Steinke, Nasr & Jagielski 2023), guesses, ROC summaries,
and the ledger's empirical lower bound."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from privrec.sdk.privacy import (
    AdaptiveClipEvent,
    DPRoundEvent,
    EmpiricalLowerBound,
    PrivacyAccountant,
    PrivacyLedger,
    audit_guesses,
    epsilon_lower_bound,
    guess_pairs,
    p_value,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)


def _hand_bound_all_correct(r: int, confidence: float) -> float:
    """δ = 0 and r correct guesses out of r: the p-value is q^r, so q = (1 − c)^(1/r) and ε = log(q/(1 − q))
    (0 when that is negative: too few guesses to reject even ε = 0)."""
    q = (1.0 - confidence) ** (1.0 / r)
    return max(0.0, math.log(q / (1.0 - q)))


@pytest.mark.parametrize("r", [1, 10, 50, 200])
def test_all_correct_without_delta_matches_the_hand_computation(r: int) -> None:
    got = epsilon_lower_bound(m=r, r=r, v=r, delta=0.0, confidence=0.95)
    assert got == pytest.approx(_hand_bound_all_correct(r, 0.95), abs=1e-9)


def test_golden_values() -> None:
    # δ = 0: the bound solves P[Binomial(r, q) >= v] = 1 − c exactly
    eps = epsilon_lower_bound(m=100, r=100, v=80, delta=0.0, confidence=0.95)
    q = 1.0 / (1.0 + math.exp(-eps))
    assert float(stats.binom.sf(79, 100, q)) == pytest.approx(0.05, abs=1e-9)
    # the δ term only ever lowers the bound, and more so with more canaries (2mδ)
    with_delta = epsilon_lower_bound(m=100, r=100, v=80, delta=1e-5, confidence=0.95)
    more_canaries = epsilon_lower_bound(m=1000, r=100, v=80, delta=1e-5, confidence=0.95)
    assert 0.0 < more_canaries < with_delta < eps


def test_p_value_is_the_binomial_tail_plus_the_delta_term() -> None:
    m, r, v, eps, delta = 50, 20, 15, 0.7, 1e-3
    q = math.exp(eps) / (1.0 + math.exp(eps))
    pmf = [math.comb(r, k) * q**k * (1 - q) ** (r - k) for k in range(r + 1)]
    tail = sum(pmf[v:])
    alpha = max(sum(pmf[v - i : v]) / i for i in range(1, v + 1))
    assert p_value(m=m, r=r, v=v, epsilon=eps, delta=delta) == pytest.approx(tail + 2 * m * delta * alpha, rel=1e-9)
    assert p_value(m=m, r=r, v=0, epsilon=eps, delta=delta) == 1.0


def test_the_bound_sits_where_the_p_value_crosses_the_level() -> None:
    eps = epsilon_lower_bound(m=200, r=60, v=55, delta=1e-5, confidence=0.9)
    assert p_value(m=200, r=60, v=55, epsilon=eps, delta=1e-5) < 0.1
    assert p_value(m=200, r=60, v=55, epsilon=eps + 1e-6, delta=1e-5) >= 0.1


def test_chance_level_guessing_gives_no_bound() -> None:
    assert epsilon_lower_bound(m=100, r=100, v=50, delta=1e-5, confidence=0.95) == 0.0
    assert epsilon_lower_bound(m=100, r=0, v=0, delta=1e-5, confidence=0.95) == 0.0


@settings(max_examples=60, deadline=None)
@given(r=st.integers(1, 120), data=st.data(), delta=st.sampled_from([0.0, 1e-6, 1e-4]),
       confidence=st.sampled_from([0.9, 0.95, 0.99]))
def test_monotone_in_correct_guesses_and_never_above_a_perfect_attacker(
    r: int, data: st.DataObject, delta: float, confidence: float
) -> None:
    v = data.draw(st.integers(0, r - 1))
    m = data.draw(st.integers(r, 4 * r))
    lower = epsilon_lower_bound(m=m, r=r, v=v, delta=delta, confidence=confidence)
    higher = epsilon_lower_bound(m=m, r=r, v=v + 1, delta=delta, confidence=confidence)
    perfect = epsilon_lower_bound(m=m, r=r, v=r, delta=delta, confidence=confidence)
    assert 0.0 <= lower <= higher + 1e-9
    assert higher <= perfect + 1e-9
    assert perfect <= _hand_bound_all_correct(r, confidence) + 1e-9  # δ > 0 only weakens the perfect bound


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"m": 5, "r": 6, "v": 1}, ValueError, "the counts must satisfy 0 <= v <= r <= m. Found m=5, r=6, v=1."),
        ({"m": 5, "r": 3, "v": 4}, ValueError, "the counts must satisfy 0 <= v <= r <= m. Found m=5, r=3, v=4."),
        ({"m": 5.0, "r": 3, "v": 1}, TypeError, "`m` must be an int. Found float."),
        ({"m": 5, "r": 3, "v": 1, "delta": 1.0}, ValueError, "`delta` must be in [0, 1). Found 1.0."),
        ({"m": 5, "r": 3, "v": 1, "confidence": 1.0}, ValueError, "`confidence` must be in (0, 1). Found 1.0."),
    ],
)
def test_bad_counts_are_refused(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    args: dict[str, object] = {"delta": 1e-5, "confidence": 0.95} | kwargs
    with pytest.raises(error) as info:
        epsilon_lower_bound(**args)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_p_value_refuses_a_negative_epsilon() -> None:
    with pytest.raises(ValueError, match=r"^`epsilon` must be >= 0. Found -0.1.$"):
        p_value(m=5, r=3, v=1, epsilon=-0.1, delta=0.0)


def test_guesses_on_perfect_scores_reach_the_perfect_bound_of_the_largest_budget() -> None:
    rng = np.random.default_rng(0)
    included = rng.random(200) < 0.5
    scores = included.astype(float) + rng.normal(scale=0.01, size=200)
    pairs = guess_pairs(200)
    bound = audit_guesses(scores, included, delta=0.0, confidence=0.95)
    per_test = 1.0 - 0.05 / len(pairs)
    best_r = max(kp + km for kp, km in pairs if kp <= included.sum() and km <= (~included).sum())
    assert bound.correct == bound.guesses == best_r
    assert bound.epsilon_lower == pytest.approx(_hand_bound_all_correct(best_r, per_test), abs=1e-9)
    assert bound.hypotheses == len(pairs) and bound.confidence == 0.95


def test_guesses_ignore_the_labels_and_random_scores_prove_nothing() -> None:
    rng = np.random.default_rng(1)
    included = rng.random(300) < 0.5
    bound = audit_guesses(rng.normal(size=300), included, delta=1e-5, confidence=0.95)
    assert bound.epsilon_lower == 0.0
    # reversed scores: every "in" guess is wrong, so the bound is 0 however good the inverse attack is
    perfect = included.astype(float)
    assert audit_guesses(-perfect, included, delta=1e-5, confidence=0.95).epsilon_lower == 0.0
    # more hypotheses to pay for (several score functions) can only lower the bound
    one = audit_guesses(perfect, included, delta=1e-5, confidence=0.95)
    two = audit_guesses(perfect, included, delta=1e-5, confidence=0.95, hypotheses=2 * len(guess_pairs(300)))
    assert two.epsilon_lower < one.epsilon_lower


@pytest.mark.parametrize(
    ("scores", "included", "kwargs", "error", "message"),
    [
        ([1.0, 2.0], [True], {}, ValueError, "`included` must have the shape of `scores` (2,). Found (1,)."),
        ([1.0, 2.0], [1, 0], {}, TypeError, "`included` must be a boolean array. Found dtype int64."),
        ([1.0, float("nan")], [True, False], {}, ValueError, "`scores` must be finite. Found 1 non-finite value(s)."),
        ([], [], {}, ValueError, "`scores` must be a non-empty 1-D array. Found shape (0,)."),
        ([1.0, 2.0], [True, False], {"fractions": (0.0, 0.7)}, ValueError,
         "`fractions` must be non-empty, each in [0, 0.5]. Found [0.0, 0.7]."),
        ([1.0, 2.0], [True, False], {"hypotheses": 1}, ValueError,
         "`hypotheses` must be at least the 3 pairs tried. Found 1."),
    ],
)
def test_bad_scores_are_refused(scores: list[float], included: list[object], kwargs: dict[str, object],
                                error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        audit_guesses(scores, np.asarray(included), delta=0.0, confidence=0.95, **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_roc_auc_equals_the_mann_whitney_statistic() -> None:
    rng = np.random.default_rng(2)
    members = rng.random(400) < 0.3
    scores = np.round(rng.normal(size=400) + 0.8 * members, 1)  # rounded: many ties
    u = stats.mannwhitneyu(scores[members], scores[~members]).statistic
    assert roc_auc(scores, members) == pytest.approx(u / (members.sum() * (~members).sum()), abs=1e-12)
    assert roc_auc(members.astype(float), members) == 1.0
    assert roc_auc(-members.astype(float), members) == 0.0
    fpr, tpr = roc_curve(scores, members)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_tpr_at_fpr() -> None:
    members = np.array([True] * 5 + [False] * 100)
    scores = np.r_[np.arange(5) + 100.0, np.arange(100.0)]  # members beat every non-member
    assert tpr_at_fpr(scores, members, fpr=0.0) == 1.0
    scores[0] = 97.5  # one member below two non-members: 4/5 at 0 FPR, all at 2%
    assert tpr_at_fpr(scores, members, fpr=0.0) == 0.8
    assert tpr_at_fpr(scores, members, fpr=0.01) == 0.8
    assert tpr_at_fpr(scores, members, fpr=0.02) == 1.0
    with pytest.raises(ValueError, match=r"^`members` must contain both classes. Found 5 member\(s\), 0 non"):
        roc_curve(scores[:5], members[:5])


def _ledger() -> PrivacyLedger:
    acc = PrivacyAccountant(delta=1e-5)
    acc.compose(DPRoundEvent(noise_multiplier=1.1, sample_rate=0.1, clip_norm=1.0, rounds=20))
    acc.compose(AdaptiveClipEvent(update_noise_multiplier=1.2, count_noise_std=5.0, sample_rate=0.1, clip_norm=0.8))
    return PrivacyLedger.from_accountant(acc, mode="central", secure_noise=True)


def test_the_ledger_records_the_empirical_lower_bound_apart_from_the_accountants_epsilon() -> None:
    ledger = _ledger()
    assert "empirical_lower_bound" not in ledger.to_dict()  # absent until audited: old readers see no change
    bound = EmpiricalLowerBound(epsilon_lower=0.42, delta=1e-5, confidence=0.95, canaries=200,
                                method="one-run canaries (Steinke, Nasr & Jagielski 2023): model_delta")
    audited = dataclasses.replace(ledger, empirical_lower_bound=bound)
    raw = audited.to_dict()
    assert raw["empirical_lower_bound"] == {"epsilon_lower": 0.42, "delta": 1e-5, "confidence": 0.95,
                                           "canaries": 200, "method": bound.method}
    assert raw["epsilon"] == ledger.epsilon  # the stated ε stays the accountant's upper bound
    assert PrivacyLedger.from_dict(raw) == audited
    assert audited.to_manifest()["empirical_lower_bound"] == raw["empirical_lower_bound"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"epsilon_lower": 0.1, "delta": 1e-5, "confidence": 0.95, "canaries": 10},
         "`empirical_lower_bound` must have keys ['canaries', 'confidence', 'delta', 'epsilon_lower', 'method']. "
         "Found ['canaries', 'confidence', 'delta', 'epsilon_lower']."),
        ({"epsilon_lower": -1.0, "delta": 1e-5, "confidence": 0.95, "canaries": 10, "method": "x"},
         "`epsilon_lower` must be a finite float >= 0. Found -1.0."),
        ({"epsilon_lower": 0.1, "delta": 1e-5, "confidence": 1.5, "canaries": 10, "method": "x"},
         "`confidence` must be in (0, 1). Found 1.5."),
        ({"epsilon_lower": 0.1, "delta": 1e-5, "confidence": 0.9, "canaries": 0, "method": "x"},
         "`canaries` must be an int >= 1. Found 0."),
    ],
)
def test_a_corrupt_empirical_lower_bound_is_refused(raw: dict[str, object], message: str) -> None:
    data = _ledger().to_dict() | {"empirical_lower_bound": raw}
    with pytest.raises(ValueError) as info:
        PrivacyLedger.from_dict(data)
    assert str(info.value) == message
