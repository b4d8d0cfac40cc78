import numpy as np
import pytest

from privrec.sdk.data import Interactions, LeaveOneOutSplit, heldout_users, leave_one_out, synthetic_interactions


def _log(users: list[int], items: list[int], times: list[int]) -> Interactions:
    return Interactions(
        users=np.array(users, np.int64), items=np.array(items, np.int64),
        ratings=np.ones(len(users), np.float32), timestamps=np.array(times, np.int64),
        user_ids=tuple(str(i) for i in range(max(users) + 1)), item_ids=tuple(str(i) for i in range(max(items) + 1)),
    )


def test_latest_is_test_second_latest_is_validation() -> None:
    s = leave_one_out(_log([0, 0, 0, 0, 1, 1], [3, 1, 2, 0, 1, 2], [40, 10, 30, 20, 5, 6]))
    assert s.test_item.tolist() == [3, -1]
    assert s.val_item.tolist() == [2, -1]
    assert sorted(s.train_items[s.train_users == 0].tolist()) == [0, 1]
    assert sorted(s.train_items[s.train_users == 1].tolist()) == [1, 2]  # < 3 interactions: all in train


def test_equal_timestamps_keep_file_order() -> None:
    s = leave_one_out(_log([0, 0, 0, 0], [5, 6, 7, 8], [1, 9, 9, 9]))
    assert s.test_item[0] == 8 and s.val_item[0] == 7


def test_ml100k_split_shape(ml100k_split: LeaveOneOutSplit) -> None:
    assert ml100k_split.num_users == 943 and ml100k_split.num_items == 1682
    assert ml100k_split.train_users.size == 100_000 - 2 * 943
    assert (ml100k_split.test_item >= 0).all()


def test_heldout_users_partition() -> None:
    train, held = heldout_users(943, fraction=0.1, seed=0)
    assert held.size == 94 and train.size == 849
    assert np.intersect1d(train, held).size == 0
    assert heldout_users(943, seed=0)[1].tolist() == held.tolist()
    with pytest.raises(ValueError, match=r"`fraction` must be in \(0, 1\)\. Found 1.0"):
        heldout_users(10, fraction=1.0)


def test_synthetic_is_seeded_and_valid() -> None:
    a = synthetic_interactions(30, 50, seed=1)
    b = synthetic_interactions(30, 50, seed=1)
    assert np.array_equal(a.items, b.items) and a.num_users == 30 and a.num_items == 50
    with pytest.raises(ValueError, match="per_user"):
        synthetic_interactions(3, 5, per_user=(4, 9))
