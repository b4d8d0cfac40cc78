"""``privrec bench data``: the synthetic files load to the same log in every format (sizes are the bench's job)."""

from __future__ import annotations

from pathlib import Path

from privrec.benchmarks.data import measure_load, write_synthetic_files
from privrec.sdk.data import load_interactions


def test_synthetic_files_agree_and_a_fresh_process_measures_them(tmp_path: Path) -> None:
    paths = write_synthetic_files(tmp_path, 3_000, seed=1)
    logs = {fmt: load_interactions(p, progress=False) for fmt, p in paths.items()}
    ref = logs["csv"]
    assert len(ref) == 3_000 and ref.user_ids[0].startswith("user-") and ref.item_ids[0].startswith("sku-")
    for data in logs.values():
        assert data.user_ids == ref.user_ids and data.item_ids == ref.item_ids
        assert (data.users == ref.users).all() and (data.items == ref.items).all()
        assert (data.timestamps == ref.timestamps).all() and (data.ratings == ref.ratings).all()
    m = measure_load(paths["parquet"])
    assert m["rows"] == 3_000 and m["users"] == ref.num_users and m["items"] == ref.num_items
    assert m["peak_mb"] > 0 and m["baseline_mb"] > 0 and m["seconds"] > 0
