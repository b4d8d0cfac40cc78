import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.data import Interactions, leave_one_out
from privrec.sdk.evaluate import EvalProtocol, bootstrap_ratio_ci, evaluate, sampled_negatives


def _split():  # type: ignore[no-untyped-def]
    # 2 users, 30 items; user 0: train {0,1}, val 2, test 3; user 1: train {4,5}, val 6, test 7
    users = [0, 0, 0, 0, 1, 1, 1, 1]
    items = [0, 1, 2, 3, 4, 5, 6, 7]
    data = Interactions(
        users=np.array(users, np.int64), items=np.array(items, np.int64), ratings=np.ones(8, np.float32),
        timestamps=np.arange(8, dtype=np.int64), user_ids=("a", "b"), item_ids=tuple(str(i) for i in range(30)),
    )
    return leave_one_out(data)


def test_golden_ranks() -> None:
    s = _split()
    base = -np.arange(30, dtype=np.float32)  # item i scores -i: lower ids rank higher

    def score(us: np.ndarray) -> np.ndarray:
        return np.tile(base, (us.size, 1))

    m = evaluate(score, s, protocol=EvalProtocol(k=3, num_negatives=10, seed=0))
    # full ranking excludes history (train + val): user 0 → candidates 3..29, target 3 ranks 0;
    # user 1 → items 0,1,2,3 and 8.. remain eligible, target 7 ranks 4 (items 0..3 above it) → miss at k=3.
    assert m.full_hr == pytest.approx(0.5)
    assert m.full_ndcg == pytest.approx(0.5 * 1.0)
    assert m.user_ids.tolist() == [0, 1] and m.full_hits.tolist() == [True, False]  # per user, same order
    negs = sampled_negatives(s, 10, 0)
    r1 = int((negs[1] < 7).sum())  # negatives with a lower id outrank the target
    expected_hit_1 = 1.0 if r1 < 3 else 0.0
    assert m.sampled_hr == pytest.approx((1.0 + expected_hit_1) / 2)
    expected_ndcg_1 = 1 / math.log2(r1 + 2) if r1 < 3 else 0.0
    assert m.sampled_ndcg == pytest.approx((1.0 + expected_ndcg_1) / 2)


def test_negatives_are_never_interacted_and_seeded() -> None:
    s = _split()
    a = sampled_negatives(s, 10, 7)
    assert np.array_equal(a, sampled_negatives(s, 10, 7))
    assert not np.isin(a[0], [0, 1, 2, 3]).any() and not np.isin(a[1], [4, 5, 6, 7]).any()
    assert all(len(set(row)) == 10 for row in a.tolist())


def test_perfect_and_json_shape() -> None:
    s = _split()

    def oracle(us: np.ndarray) -> np.ndarray:
        out = np.zeros((us.size, 30), np.float32)
        out[np.arange(us.size), s.test_item[us]] = 10.0
        return out

    d = evaluate(oracle, s, protocol=EvalProtocol(num_negatives=20)).to_dict()
    assert d["full"] == {"hr@10": 1.0, "ndcg@10": 1.0}
    assert d["sampled"] == {"hr@10": 1.0, "ndcg@10": 1.0}
    assert d["users"] == 2 and d["protocol"]["candidates_sampled"] == 21


def test_bad_score_shape() -> None:
    s = _split()
    with pytest.raises(ValueError, match=r"score_fn must return shape \(2, 30\)"):
        evaluate(lambda us: np.zeros((us.size, 3), np.float32), s, protocol=EvalProtocol(num_negatives=5))


def test_bootstrap_ratio_ci_golden_cases() -> None:
    hits = np.array([[1, 0, 1, 1, 0, 0, 1, 0]], bool)
    assert bootstrap_ratio_ci(hits, hits) == (1.0, 1.0)  # paired: a run against itself has no spread
    twice = bootstrap_ratio_ci(hits.astype(float) * 0.5, hits)
    assert twice == pytest.approx((0.5, 0.5))
    assert bootstrap_ratio_ci(hits, ~hits, seed=3) == bootstrap_ratio_ci(hits, ~hits, seed=3)  # seeded
    with pytest.raises(ValueError, match="must hold the same users"):
        bootstrap_ratio_ci(hits, hits[:, :5])
    with pytest.raises(ValueError, match=r"`level` must be in \(0, 1\). Found 1.0."):
        bootstrap_ratio_ci(hits, hits, level=1.0)


@settings(max_examples=30, deadline=None)
@given(p=st.floats(0.1, 0.5), q=st.floats(0.1, 0.5), seed=st.integers(0, 1000))
def test_bootstrap_ci_brackets_the_ratio_and_narrows_with_more_users(p: float, q: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    widths = []
    for users in (100, 1600):
        a = rng.random((3, users)) < p
        b = rng.random((3, users)) < q
        if not b.any():
            return
        low, high = bootstrap_ratio_ci(a, b, resamples=500, seed=seed)
        point = a.mean() / b.mean()
        assert low <= point <= high
        widths.append(high - low)
    assert widths[1] < widths[0]  # 16x the users: about 4x narrower
