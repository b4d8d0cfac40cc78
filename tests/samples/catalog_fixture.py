"""Test helper shared by the sample tests (Kotlin core, web): the catalog-update fixture.

Two signed ONNX bundles of one model whose catalogs differ — v1 holds 160 items in id order; v2 drops 20 of
them, adds 40 and re-orders the rows — a history of v1 item ids (3 of them removed in v2), the same history
as v1 rows (the earlier store format), and what the Python runtime recommends on v2 for it. A sample stores
the history by id, "installs" v2, and must serve what a device that started on v2 serves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from privrec.export import export_bundle
from privrec.runtime import Recommender
from privrec.sdk.model import ItemModel
from privrec.sdk.reconstruct import FinetuneConfig

NUM_ITEMS, DIM = 200, 8
V1 = np.arange(160)  # v1's rows hold these items of the model, in id order
_rng = np.random.default_rng(19)
REMOVED = np.sort(_rng.choice(V1, 20, replace=False))
V2 = _rng.permutation(np.concatenate([np.setdiff1d(V1, REMOVED), np.arange(160, NUM_ITEMS)]))  # 20 removed, 40 added


def sku(item: int) -> str:
    """The app's id of model item ``item``."""
    return f"sku-{item:04d}"


def write_catalog_fixture(root: Path, sign_key: Path, public_key: Path) -> Path:
    """Export v1 and v2 into ``root`` (signed with ``sign_key``) and write ``root/catalog_update.json``:
    ``{"v1", "v2": bundle dirs, "history": [ids], "weights", "dropped": [ids v2 lacks], "v1_rows",
    "python_top_ids", "python_top_scores", "tolerance"}``. Returns its path."""
    rng = np.random.default_rng(5)
    model = ItemModel(rng.normal(0, 0.6, (NUM_ITEMS, DIM)).astype(np.float32), rng.normal(0, 0.3, NUM_ITEMS).astype(np.float32))
    out: dict[str, Path] = {}
    for name, rows in (("v1", V1), ("v2", V2)):
        items = [{"index": r, "id": sku(int(i)), "title": f"Item {int(i)}"} for r, i in enumerate(rows)]
        table = ItemModel(model.item_embedding[rows].copy(), model.item_bias[rows].copy())
        out[name] = export_bundle(table, root / name, formats=("onnx",), items=items, top_k=10, recency_half_life=3.0,
                                  finetune=FinetuneConfig(steps=5, lr=0.5, l2=0.05, calls=2), sign_key=sign_key)
    kept = [int(i) for i in rng.choice(np.setdiff1d(V1, REMOVED), 9, replace=False)]
    gone = [int(i) for i in REMOVED[[2, 11, 17]]]
    order = [*kept[:3], gone[0], *kept[3:6], gone[1], *kept[6:8], gone[2], kept[8]]
    history = [sku(i) for i in order]
    weights = [1.0 + (k % 3) * 0.5 for k in range(len(order))]
    rec = Recommender.load(out["v2"], public_key=public_key)
    user = rec.reconstruct(history, weights=np.asarray(weights))
    top_ids, top_scores = rec.recommend_ids(user, exclude=history)
    fixture = {
        "v1": str(out["v1"]), "v2": str(out["v2"]), "history": history, "weights": weights,
        "dropped": [sku(i) for i in order if i in set(gone)], "v1_rows": order,
        "python_top_ids": top_ids, "python_top_scores": top_scores.tolist(), "tolerance": 1e-4,
    }
    path = root / "catalog_update.json"
    path.write_text(json.dumps(fixture, indent=1))
    return path
