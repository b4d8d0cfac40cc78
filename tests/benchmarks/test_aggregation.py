"""The aggregation suite's pure parts: the SecAgg+ neighbourhood rule at scale and the growth-exponent fit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privrec.benchmarks.aggregation import GROWTH, growth_exponents, scale_acceptance, scale_neighbourhood


@pytest.mark.parametrize(("n", "k", "t"), [(3, 2, 2), (8, 4, 3), (100, 8, 5), (1_000, 10, 6), (10_000, 14, 8)])
def test_neighbourhood_golden(n: int, k: int, t: int) -> None:
    assert scale_neighbourhood(n) == (k, t)


@given(st.integers(3, 10**6))
def test_neighbourhood_is_even_logarithmic_and_a_majority(n: int) -> None:
    k, t = scale_neighbourhood(n)
    assert k <= n - 1 and (k % 2 == 0 or k == n - 1)
    assert math.log2(n) <= k <= math.log2(n) + 2 or k == n - 1
    assert 2 * t > k + 1 >= t  # a majority of the closed neighbourhood, so no Round-3 caveat


def test_neighbourhood_refuses_too_few_devices() -> None:
    with pytest.raises(ValueError, match=r"`n` must be >= 3 for a SecAgg\+ neighbourhood\. Found 2\."):
        scale_neighbourhood(2)


def test_growth_exponent_recovers_a_power_law_per_dropout() -> None:
    rows = [
        {"devices": n, "dropout": p} | {key: 3.0 * n ** (1.5 if p else 0.5) for key, _ in GROWTH}
        for n in (100, 1_000, 10_000)
        for p in (0.0, 0.05)
    ]
    rows.append({"devices": 10_000, "dropout": 0.1, "error": "aborted"})  # one n only, and failed: no fit
    fits = {g["dropout"]: g for g in growth_exponents(rows)}
    assert set(fits) == {0.0, 0.05}
    for key, _ in GROWTH:
        assert fits[0.0][key] == pytest.approx(0.5) and fits[0.05][key] == pytest.approx(1.5)


def test_scale_acceptance_reads_flower_at_1000_else_its_largest_n() -> None:
    rows = [{"devices": n, "dropout": 0.0, "round_s_est": float(n)} for n in (100, 1_000)]
    scale = {
        "rows": rows,
        "growth": growth_exponents(rows),
        "flower": {"rows": [{"devices": 100, "dropout": 0.0, "round_ratio": 0.2}, {"devices": 1_000, "dropout": 0.0}]},
    }
    complete, flower = scale_acceptance(scale)
    assert complete["met"] is True and "round-time exponent 1.00" in complete["measured"]
    assert flower["met"] is True and flower["measured"] == "0.2× at n = 100"  # Flower did not finish at 1,000
    scale["flower"]["rows"][0]["round_ratio"] = 0.7
    assert scale_acceptance(scale)[1]["met"] is False
