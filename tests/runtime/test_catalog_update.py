"""A catalog update: the device's history survives a new bundle whose catalog added, removed and re-ordered
items (runtime/device.py, runtime/recommender.py, the manifest's item map).

A small model is trained on a synthetic app log of 300 items with the app's ids ``sku-0000`` … Bundle v1
ships 240 of them in id order; bundle v2 drops 40 of those, adds the 60 new ones and shuffles the rows.
A device records its history on v1, then installs v2: its rebuilt user vector and recommendations must
equal, bit for bit, those of a device that started on v2 with the same surviving history — on both
runtime backends.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from privrec.export import export_bundle, generate_signing_key
from privrec.runtime import Device, Recommender, StoreIntegrityError
from privrec.sdk.data import leave_one_out, synthetic_interactions
from privrec.sdk.model import ItemModel
from privrec.sdk.reconstruct import FinetuneConfig
from privrec.sdk.train import TrainConfig, train_central

ALL = 300
V1 = np.arange(240)  # v1's rows hold these items, in id order
_rng = np.random.default_rng(19)
REMOVED = np.sort(_rng.choice(V1, 40, replace=False))
V2 = _rng.permutation(np.concatenate([np.setdiff1d(V1, REMOVED), np.arange(240, ALL)]))  # re-ordered, 60 new
FT = FinetuneConfig(steps=5, lr=0.5, l2=0.05, calls=2)


def sku(item: int) -> str:
    return f"sku-{item:04d}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_signing_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> dict[str, Path]:
    """``{"v1", "v2"}``: signed bundles (ONNX and TFLite) of one small trained model, two catalogs."""
    split = leave_one_out(synthetic_interactions(120, ALL, rank=4, seed=3))
    trained = train_central(split, TrainConfig(dim=8, epochs=4, patience=4, finetune=FT), seed=0, progress=False).model.items
    root = tmp_path_factory.mktemp("catalog")
    out = {}
    for name, rows in (("v1", V1), ("v2", V2)):
        table = ItemModel(trained.item_embedding[rows].copy(), trained.item_bias[rows].copy())
        items = [{"index": r, "id": sku(int(item)), "title": f"Item {item}"} for r, item in enumerate(rows)]
        out[name] = export_bundle(table, root / name, formats=("onnx", "tflite"), finetune=FT, top_k=10, items=items,
                                  recency_half_life=3.0, sign_key=keys[0])
    return out


def _history() -> tuple[list[str], list[float]]:
    """15 interactions, oldest first, 5 of them with items v2 removes (one seen twice)."""
    rng = np.random.default_rng(5)
    kept = rng.choice(np.setdiff1d(V1, REMOVED), 10, replace=False)
    gone = REMOVED[[0, 7, 13, 21]]
    order = [*kept[:3], gone[0], *kept[3:6], gone[1], gone[2], *kept[6:9], gone[0], gone[3], kept[9]]
    return [sku(int(i)) for i in order], [1.0 + (k % 3) * 0.5 for k in range(len(order))]


@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_a_catalog_update_rebuilds_what_a_device_that_started_on_v2_gets(
    tmp_path: Path, bundles: dict[str, Path], keys: tuple[Path, Path], backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    ids, weights = _history()
    removed = {sku(int(i)) for i in REMOVED}
    updated = Device(tmp_path / "updated", name="updated", backend=backend, public_key=keys[1])  # type: ignore[arg-type]
    v1 = updated.install_bundle(bundles["v1"])
    updated.add_interactions(ids[:5], weights[:5])
    rows = [v1.item_map.row(i) for i in ids[5:]]  # a caller written for rows: stored as v1's ids for them
    updated.add_interactions(np.asarray(rows), weights[5:])
    assert updated.history()[0] == ids and updated.history()[1].tolist() == weights
    on_v1, _ = updated.recommend_ids()
    assert len(on_v1) == 10 and not set(on_v1) & set(ids) and set(on_v1) <= {sku(int(i)) for i in V1}

    with caplog.at_level(logging.INFO, logger="privrec.runtime"):
        updated.install_bundle(bundles["v2"])
    assert "does not hold 5 of the 15 stored interactions' items" in caplog.text
    mapped = updated.mapped_history()
    assert mapped.dropped == tuple(i for i in ids if i in removed) and len(mapped.dropped) == 5
    got_ids, got_scores = updated.recommend_ids()
    got_user = updated.user_vector()

    surviving = [(i, w) for i, w in zip(ids, weights, strict=True) if i not in removed]
    fresh = Device(tmp_path / "fresh", name="fresh", backend=backend, public_key=keys[1])  # type: ignore[arg-type]
    v2 = fresh.install_bundle(bundles["v2"])
    fresh.add_interactions([i for i, _ in surviving], [w for _, w in surviving])
    want_ids, want_scores = fresh.recommend_ids()

    np.testing.assert_array_equal(got_user, fresh.user_vector())
    assert got_ids == want_ids and len(got_ids) == 10
    np.testing.assert_array_equal(got_scores, want_scores)
    assert set(got_ids) <= {sku(int(i)) for i in V2} and not set(got_ids) & set(ids)
    # The Recommender maps ids the same way; the removed items stay stored for a catalog that brings them back.
    np.testing.assert_array_equal(v2.reconstruct(ids, weights=np.asarray(weights)), got_user)
    assert updated.history()[0] == ids
    # Control: the same history kept as v1 rows and read as v2 rows gives other recommendations.
    v1_rows = np.asarray([v1.item_map.row(i) for i in ids])
    stale = v2.reconstruct(v1_rows, weights=np.asarray(weights))
    assert v2.recommend_ids(stale, exclude=v1_rows)[0] != got_ids


def test_a_history_stored_as_rows_by_an_earlier_privrec_is_migrated_on_first_load(
    tmp_path: Path, bundles: dict[str, Path], keys: tuple[Path, Path]
) -> None:
    ids, weights = _history()
    v1_ids = [sku(int(i)) for i in V1]
    rows = [v1_ids.index(i) for i in ids] + [240]  # one row past v1's catalog: dropped by the migration
    legacy = Device(tmp_path / "d", name="d", public_key=keys[1])
    legacy.store.put_json("interactions", {"item_ids": rows, "ratings": [*weights, 1.0]})  # the earlier format

    dev = Device(tmp_path / "d", name="d", public_key=keys[1])  # the upgraded app, same directory
    with pytest.raises(RuntimeError, match="stored as bundle rows by an earlier privrec: install the bundle"):
        dev.history()
    with pytest.raises(RuntimeError, match="install the bundle those rows index"):
        dev.add_interactions(["sku-0001"])
    assert "interactions" in dev.store and "history" not in dev.store  # nothing changed
    dev.install_bundle(bundles["v1"])
    assert dev.history()[0] == ids and dev.history()[1].tolist() == weights
    assert "interactions" not in dev.store and "history" in dev.store

    dev.install_bundle(bundles["v2"])
    fresh = Device(tmp_path / "fresh", name="fresh", public_key=keys[1])
    fresh.install_bundle(bundles["v2"])
    removed = {sku(int(i)) for i in REMOVED}
    surviving = [(i, w) for i, w in zip(ids, weights, strict=True) if i not in removed]
    fresh.add_interactions([i for i, _ in surviving], [w for _, w in surviving])
    got, want = dev.recommend_ids(), fresh.recommend_ids()
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


def test_a_migration_interrupted_after_its_new_record_keeps_the_new_one(
    tmp_path: Path, bundles: dict[str, Path], keys: tuple[Path, Path]
) -> None:
    dev = Device(tmp_path / "d", name="d", public_key=keys[1])
    dev.store.put_json("interactions", {"item_ids": [0, 1], "ratings": [1.0, 1.0]})
    dev.store.put_json("history", {"item_ids": ["sku-0000", "sku-0001", "sku-0002"], "ratings": [1.0, 1.0, 1.0]})
    dev.install_bundle(bundles["v1"])
    assert dev.history()[0] == ["sku-0000", "sku-0001", "sku-0002"] and "interactions" not in dev.store


@pytest.mark.parametrize(
    ("record_id", "value", "message"),
    [
        ("history", {"item_ids": [3, "sku-0001"], "ratings": [1.0, 1.0]},
         r"Store record 'history': `item_ids\[0\]` must be a non-empty item id string\. Found 3 \(int\)\."),
        ("history", {"item_ids": ["sku-0001", None], "ratings": [1.0, 1.0]},
         r"`item_ids\[1\]` must be a non-empty item id string\. Found None \(NoneType\)\."),
        ("history", {"item_ids": ["sku-0001", ""], "ratings": [1.0, 1.0]}, r"`item_ids\[1\]` must be a non-empty item id"),
        ("history", {"item_ids": ["sku-0001"], "ratings": [1.0, 2.0]}, r"must hold two lists of equal length.* lengths 1 and 2"),
        ("history", {"item_ids": ["sku-0001"], "ratings": [-1.0]}, r"`ratings\[0\]` must be a finite number >= 0\. Found -1\.0"),
        ("history", {"item_ids": ["a"], "ratings": [1.0], "rows": [0]}, r"must be an object with keys \['item_ids', 'ratings'\]"),
        ("history", ["sku-0001"], r"must be an object with keys \['item_ids', 'ratings'\]\. Found list\."),
        ("interactions", {"item_ids": ["sku-0001"], "ratings": [1.0]},
         r"Store record 'interactions' \(written by an earlier privrec\): `item_ids\[0\]` must be a row"),
    ],
)
def test_a_history_record_that_is_not_item_ids_is_refused_and_left_as_it_was(
    tmp_path: Path, bundles: dict[str, Path], keys: tuple[Path, Path], record_id: str, value: object, message: str
) -> None:
    dev = Device(tmp_path / "d", name="d", public_key=keys[1])
    dev.store.put_json(record_id, value)
    before = dev.store.get(record_id)
    with pytest.raises(StoreIntegrityError, match=message):
        dev.install_bundle(bundles["v1"])
    with pytest.raises(RuntimeError, match="No bundle is installed"):
        _ = dev.recommender  # the refused history left no half-installed bundle behind
    with pytest.raises(StoreIntegrityError, match=message):
        dev.history()
    with pytest.raises(StoreIntegrityError, match=message):
        dev.add_interactions(["sku-0002"])
    assert dev.store.get(record_id) == before and ("history" in dev.store) == (record_id == "history")


def test_add_interactions_refuses_what_is_not_an_item_id(
    tmp_path: Path, bundles: dict[str, Path], keys: tuple[Path, Path]
) -> None:
    dev = Device(tmp_path / "d", name="d", public_key=keys[1])
    dev.install_bundle(bundles["v1"])
    dev.add_interactions(["sku-0001"])
    for bad, error, message in [
        (["sku-0002", 3], TypeError, r"`item_ids` must hold item id strings\. Found 3 \(int\) at position 1\."),
        (["sku-0002", ""], ValueError, r"`item_ids` must hold non-empty item ids\. Found '' at position 1\."),
        ([1.5], TypeError, r"`item_ids` must be the app's item ids \(strings\) or rows \(non-negative ints\)"),
        ([240], ValueError, r"`rows` must be ints in \[0, 240\)\. Found 240 at position 0\."),
    ]:
        with pytest.raises(error, match=message):
            dev.add_interactions(bad)
    assert dev.history()[0] == ["sku-0001"]


def test_the_recommender_takes_item_ids_wherever_it_takes_rows(
    bundles: dict[str, Path], keys: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recommender.load(bundles["v2"], public_key=keys[1])
    ids = [rec.item_map.ids[r] for r in (4, 9, 31)]
    user = rec.reconstruct([4, 9, 31])
    with caplog.at_level(logging.INFO, logger="privrec.runtime"):
        np.testing.assert_array_equal(rec.reconstruct([ids[0], sku(int(REMOVED[0])), ids[1], ids[2]]), user)
    assert "reconstruct: 1 of 4 history entries name items bundle" in caplog.text
    rows, scores = rec.recommend(user, exclude=[4, 9, 31])
    got_ids, got_scores = rec.recommend_ids(user, exclude=[*ids, "not-in-catalog"])
    assert got_ids == rec.item_map.ids_of(rows.tolist()) and np.array_equal(got_scores, scores)
    with pytest.raises(ValueError, match=r"`history` must name at least one item of this catalog\. Found 2 item id"):
        rec.reconstruct([sku(int(REMOVED[0])), "nope"])
    with pytest.raises(TypeError, match=r"`item_ids` must hold item id strings\. Found 7 \(int\) at position 1"):
        rec.reconstruct([ids[0], 7])
