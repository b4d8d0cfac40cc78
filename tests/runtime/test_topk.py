"""runtime/topk.py: exact top-K equals a full stable sort, for every size, tie pattern and -inf mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from privrec.runtime import top_k
from privrec.runtime.topk import GROUPS


def _reference(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores.astype(np.float32), kind="stable")[:k]
    return order, scores.astype(np.float32)[order]


# Few distinct values (many ties), -inf entries, and sizes on both sides of the grouped path (n >= 8·GROUPS).
_values = st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 0.5000001, 2.0, 3.0]) | st.floats(-10, 10, width=32)


@settings(max_examples=150, deadline=None)
@given(
    scores=st.integers(1, 12 * GROUPS).flatmap(lambda n: arrays(np.float32, n, elements=_values)),
    k=st.integers(1, 12),
)
def test_equals_a_full_stable_sort(scores: np.ndarray, k: int) -> None:
    ids, values = top_k(scores, k)
    want_ids, want_values = _reference(scores, k)
    assert ids.dtype == np.int64 and values.dtype == np.float32
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(values, want_values)


@pytest.mark.parametrize("n", [8 * GROUPS, 8 * GROUPS + 1, 8 * GROUPS + GROUPS - 1, 100_000])
def test_large_catalogs_take_the_grouped_path_and_agree(n: int) -> None:
    rng = np.random.default_rng(n)
    scores = rng.normal(size=n).astype(np.float32)
    scores[rng.integers(0, n, 50)] = scores.max()  # ties at the very top
    scores[-1] = scores.max() + 1.0  # the best item sits in the tail group (when n is not a multiple of GROUPS)
    ids, values = top_k(scores, 10)
    want_ids, want_values = _reference(scores, 10)
    assert ids[0] == n - 1
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(values, want_values)


def test_all_equal_scores_give_the_lowest_indices() -> None:
    ids, _ = top_k(np.zeros(100_000, np.float32), 10)
    assert ids.tolist() == list(range(10))


def test_empty_scores_give_nothing() -> None:
    ids, values = top_k(np.zeros(0, np.float32), 3)
    assert ids.shape == values.shape == (0,) and ids.dtype == np.int64


def test_k_larger_than_the_catalog_returns_everything_sorted() -> None:
    ids, values = top_k(np.array([0.1, 0.3, -np.inf, 0.3], np.float32), 10)
    assert ids.tolist() == [1, 3, 0, 2]
    assert values[-1] == -np.inf


@pytest.mark.parametrize(
    ("scores", "k", "error", "message"),
    [
        ([1.0, 2.0], 1, TypeError, "`scores` must be a 1-D float numpy array. Found list."),
        (np.arange(5), 1, TypeError, "`scores` must have a float dtype. Found int64."),
        (np.zeros((2, 2), np.float32), 1, ValueError, r"`scores` must be 1-D. Found shape \(2, 2\)."),
        (np.zeros(5, np.float32), 0, ValueError, "`k` must be >= 1. Found 0."),
        (np.zeros(5, np.float32), 2.0, TypeError, "`k` must be an int. Found float."),
        (np.array([0.0, np.nan], np.float32), 1, ValueError, "`scores` must be finite or -inf. Found nan at position 1."),
        (np.r_[np.zeros(99_999), np.inf].astype(np.float32), 3, ValueError, "Found inf at position 99999."),
        (np.r_[np.zeros(50_000), np.nan, np.zeros(49_999)].astype(np.float32), 3, ValueError, "Found nan at position 50000."),
    ],
)
def test_bad_input_is_named(scores: object, k: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        top_k(scores, k)  # type: ignore[arg-type]
