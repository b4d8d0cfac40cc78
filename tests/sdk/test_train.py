import numpy as np
import pytest

from privrec.sdk.data import LeaveOneOutSplit
from privrec.sdk.evaluate import evaluate
from privrec.sdk.train import TrainConfig, label_matrix, train_central


def test_mf_beats_popularity_on_planted_structure(synthetic_split: LeaveOneOutSplit) -> None:
    res = train_central(synthetic_split, TrainConfig(dim=8, epochs=40, patience=40, l2=0.1, init_std=0.1), seed=0,
                        progress=False)
    m = res.model
    V, b, U = m.items.item_embedding, m.items.item_bias, m.user_embedding
    mf = evaluate(lambda us: U[us] @ V.T + b, synthetic_split)
    pop = np.bincount(synthetic_split.train_items, minlength=synthetic_split.num_items).astype(np.float32)
    popm = evaluate(lambda us: np.tile(pop, (us.size, 1)), synthetic_split)
    assert mf.full_hr > popm.full_hr + 0.05
    assert res.history and res.best_epoch >= 0


def test_training_is_deterministic(synthetic_split: LeaveOneOutSplit) -> None:
    cfg = TrainConfig(dim=4, epochs=3, patience=3)
    a = train_central(synthetic_split, cfg, seed=5, progress=False).model
    b = train_central(synthetic_split, cfg, seed=5, progress=False).model
    np.testing.assert_array_equal(a.items.item_embedding, b.items.item_embedding)


def test_sampled_softmax_trains(synthetic_split: LeaveOneOutSplit) -> None:
    res = train_central(synthetic_split, TrainConfig(dim=8, loss="sampled", num_negatives=64, epochs=5, patience=5),
                        seed=0, progress=False)
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_recency_labels() -> None:
    from privrec.sdk.data import Interactions, leave_one_out

    d = Interactions(np.zeros(5, np.int64), np.arange(5, dtype=np.int64), np.ones(5, np.float32),
                     np.arange(5, dtype=np.int64), ("u",), tuple("abcde"))
    s = leave_one_out(d)  # train items 0, 1, 2 (2 is the latest)
    y = label_matrix(s, 1.0)
    np.testing.assert_allclose(y[0, :3], [0.25, 0.5, 1.0])
    assert label_matrix(s, None)[0].tolist() == [1, 1, 1, 0, 0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 0}, "`dim` must be > 0. Found 0."),
        ({"dim": -3}, "`dim` must be > 0. Found -3."),
        ({"loss": "bpr"}, "`loss` must be 'full' or 'sampled'"),
        ({"lr": 0.0}, "`lr` must be a finite float > 0"),
        ({"l2": -1.0}, "`l2` must be a finite float >= 0"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_config_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown training config keys \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
