"""The semi-synthetic population: reproducible by (seed, index), chunking-independent, streamed, faithful
to the history lengths it was fitted to, and validated at its boundary."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.data import (
    PopulationModel,
    generate_users,
    iter_population,
    leave_one_out,
    synthetic_interactions,
)
from privrec.sdk.data.population import fit_population

N_ITEMS, DIM = 120, 6


def _model(temperature: float = 1.0, seed: int = 0) -> PopulationModel:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 60, size=80)
    return PopulationModel(
        item_embedding=rng.normal(size=(N_ITEMS, DIM)).astype(np.float32),
        item_bias=rng.normal(size=N_ITEMS).astype(np.float32),
        user_vectors=rng.normal(size=(80, DIM)).astype(np.float32),
        history_lengths=lengths.astype(np.int64),
        kernel=0.3 * np.eye(DIM),
        temperature=temperature,
        source="test",
    )


MODEL = _model()


def _same(a: object, b: object) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("user_index", "offsets", "items"))


def test_same_seed_same_users_and_another_seed_other_users() -> None:
    a = generate_users(MODEL, np.arange(50), seed=3)
    b = generate_users(MODEL, np.arange(50), seed=3)
    c = generate_users(MODEL, np.arange(50), seed=4)
    assert _same(a, b)
    assert not np.array_equal(a.items, c.items)


@settings(max_examples=15, deadline=None)
@given(chunk=st.integers(1, 70), seed=st.integers(0, 2**31))
def test_chunking_does_not_change_any_user(chunk: int, seed: int) -> None:
    whole = generate_users(MODEL, np.arange(60), seed=seed)
    parts = list(iter_population(60, seed=seed, chunk=chunk, model=MODEL))
    assert [len(p) for p in parts] == [min(chunk, 60 - a) for a in range(0, 60, chunk)]
    assert np.array_equal(np.concatenate([p.user_index for p in parts]), np.arange(60))
    for j in range(60):
        part = parts[j // chunk]
        assert np.array_equal(part.history(j % chunk), whole.history(j))


def test_a_user_is_the_same_in_any_order_or_company() -> None:
    order = np.array([41, 3, 3, 17])
    mixed = generate_users(MODEL, order, seed=9)
    for r, k in enumerate(order):
        alone = generate_users(MODEL, [k], seed=9)
        assert np.array_equal(mixed.history(r), alone.history(0))
    shifted = next(iter_population(5, seed=9, chunk=5, model=MODEL, start=40))
    assert np.array_equal(shifted.history(1), mixed.history(0))


def test_streaming_yields_chunks_one_at_a_time() -> None:
    assert inspect.isgenerator(iter_population(10, model=MODEL))
    stream = iter_population(10**9, seed=0, chunk=16, model=MODEL)  # a billion users: only what is asked exists
    first = next(stream)
    second = next(stream)
    assert len(first) == len(second) == 16
    assert first.user_index[0] == 0 and second.user_index[0] == 16


def test_histories_are_distinct_items_with_lengths_from_the_fitted_distribution() -> None:
    chunk = generate_users(MODEL, np.arange(2000), seed=1)
    lengths = chunk.lengths
    assert set(lengths.tolist()) <= set(MODEL.history_lengths.tolist())
    for j in range(0, 2000, 97):
        h = chunk.history(j)
        assert np.unique(h).size == h.size and h.min() >= 0 and h.max() < N_ITEMS
    # Empirical CDF of the lengths vs the fitted lengths' (users pick a real user uniformly): the
    # Dvoretzky–Kiefer–Wolfowitz bound at 2000 draws puts the sup distance under 0.045 with prob. 1 − 2e-3.
    grid = np.arange(0, 61)
    fitted = np.searchsorted(np.sort(MODEL.history_lengths), grid, side="right") / MODEL.history_lengths.size
    drawn = np.searchsorted(np.sort(lengths), grid, side="right") / lengths.size
    assert np.abs(fitted - drawn).max() < 0.045


def test_train_labels_hold_all_but_the_last_two_items_and_the_split_agrees() -> None:
    chunk = generate_users(MODEL, np.arange(30), seed=2)
    y = chunk.train_labels()
    assert y.shape == (30, N_ITEMS)
    split = leave_one_out(chunk.to_interactions())
    for j in range(30):
        h = chunk.history(j)
        assert set(np.flatnonzero(y[j]).tolist()) == set(h[:-2].tolist())
        assert split.test_item[j] == h[-1] and split.val_item[j] == h[-2]


def test_lower_temperature_concentrates_the_items() -> None:
    def top_share(t: float) -> float:
        items = generate_users(_model(temperature=t), np.arange(400), seed=0).items
        counts = np.sort(np.bincount(items, minlength=N_ITEMS))[::-1]
        return float(counts[:12].sum() / counts.sum())

    assert top_share(0.3) > top_share(1.0) > top_share(5.0)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = MODEL.save(tmp_path / "m.npz")
    back = PopulationModel.load(path)
    assert back.temperature == MODEL.temperature and back.source == "test"
    assert _same(generate_users(back, np.arange(20), seed=5), generate_users(MODEL, np.arange(20), seed=5))
    with np.load(path) as z:
        arrays = dict(z)
    arrays["version"] = np.int64(99)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(ValueError, match=r"population model format 1 expected\. Found 99"):
        PopulationModel.load(tmp_path / "old.npz")


def test_bad_inputs_name_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"`seed` must be an int >= 0. Found -1"):
        generate_users(MODEL, [0], seed=-1)
    with pytest.raises(ValueError, match=r"`indices` must be >= 0. Found -3"):
        generate_users(MODEL, [1, -3], seed=0)
    with pytest.raises(ValueError, match="n_users"):
        next(iter_population(0, model=MODEL))
    with pytest.raises(ValueError, match="chunk"):
        next(iter_population(5, chunk=0, model=MODEL))
    base = {k: getattr(MODEL, k) for k in ("item_embedding", "item_bias", "user_vectors", "kernel")}
    with pytest.raises(ValueError, match=r"`history_lengths` must be in \[3, 120\]. Found \[2, 5\]"):
        PopulationModel(**base, history_lengths=np.array([2, 5] + [5] * 78), temperature=1.0)
    with pytest.raises(ValueError, match=r"`temperature` must be finite and > 0. Found 0.0"):
        PopulationModel(**base, history_lengths=MODEL.history_lengths, temperature=0.0)
    with pytest.raises(ValueError, match=r"`item_bias` must have shape \(120,\). Found \(7,\)"):
        PopulationModel(**(base | {"item_bias": np.zeros(7, np.float32)}), history_lengths=MODEL.history_lengths,
                        temperature=1.0)


def test_fit_calibrates_the_temperature_to_the_real_central_quality() -> None:
    data = synthetic_interactions(150, 200, rank=3, per_user=(12, 30), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, report = fit_population(data, dim=8, epochs=4, calibration_users=300)
    assert model.user_vectors.shape == (150, 8) and model.num_items == 200
    assert sorted(model.history_lengths.tolist()) == sorted(np.bincount(data.users).tolist())
    assert 0.125 < model.temperature < 8.0 and report["temperature"] == model.temperature
    # The bisection brackets the real HR@10; 300 synthetic users resolve it to about ±0.05.
    assert abs(report["central_full_hr_synthetic"] - report["central_full_hr_real"]) < 0.08
