import numpy as np
import pytest

from privrec.sdk.model import ItemModel, TrainedModel


def _model(n: int = 6, d: int = 3) -> ItemModel:
    rng = np.random.default_rng(0)
    return ItemModel(rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=n).astype(np.float32))


def test_score_is_dot_plus_bias() -> None:
    m = _model()
    u = np.array([1.0, -2.0, 0.5], np.float32)
    expected = m.item_embedding @ u + m.item_bias
    np.testing.assert_allclose(m.score(u), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(m.score(u, [4, 0]), expected[[4, 0]], rtol=0, atol=1e-6)


def test_recommend_excludes_and_orders() -> None:
    m = ItemModel(np.eye(4, 2, dtype=np.float32), np.array([0.0, 0.0, 3.0, 1.0], np.float32))
    ids, scores = m.recommend(np.array([1.0, 0.5], np.float32), k=3, exclude=[2])
    assert ids.tolist() == [0, 3, 1]
    np.testing.assert_allclose(scores, [1.0, 1.0, 0.5])


def test_construction_validates() -> None:
    with pytest.raises(ValueError, match=r"`item_bias` must have one entry per item \(4\)\. Found 3\."):
        ItemModel(np.zeros((4, 2), np.float32), np.zeros(3, np.float32))
    bad = np.zeros((4, 2), np.float32)
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="`item_embedding` must be finite"):
        ItemModel(bad, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="at least one item and one dimension"):
        ItemModel(np.zeros((4, 0), np.float32), np.zeros(4, np.float32))


def test_score_rejects_out_of_range_and_nan() -> None:
    m = _model()
    with pytest.raises(ValueError, match=r"\[0, 6\)\. Found 6 at position 1"):
        m.score(np.zeros(3, np.float32), [0, 6])
    with pytest.raises(ValueError, match="finite"):
        m.score(np.array([np.nan, 0, 0], np.float32))


def test_save_load_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = TrainedModel(items=_model(), user_embedding=np.ones((2, 3), np.float32))
    m.save(tmp_path, {"mode": "central"})
    back = TrainedModel.load(tmp_path)
    np.testing.assert_array_equal(back.items.item_embedding, m.items.item_embedding)
    np.testing.assert_array_equal(back.user_embedding, m.user_embedding)
    with pytest.raises(FileNotFoundError, match="No weights at"):
        TrainedModel.load(tmp_path / "nope")
