"""Loading an app's own interactions (CSV, TSV, Parquet, JSON Lines): good files, and one message per problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privrec.sdk.data import (
    ColumnSpec,
    DataProblem,
    DataSource,
    DataValidationError,
    ItemsSpec,
    load_interactions,
    read_interactions,
)
from privrec.sdk.errors import DataIntegrityError

ROWS = [
    {"user_id": "u2", "item_id": "10", "timestamp": 3, "rating": 4.0},
    {"user_id": "u1", "item_id": "9", "timestamp": 1, "rating": 5.0},
    {"user_id": "u1", "item_id": "10", "timestamp": 2, "rating": 2.0},
    {"user_id": "u2", "item_id": "9", "timestamp": 1, "rating": 3.0},
    {"user_id": "u1", "item_id": "11", "timestamp": 5, "rating": 1.0},
]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write ``rows`` as CSV, TSV, Parquet or JSON Lines, by ``path``'s suffix."""
    cols = list(rows[0]) if rows else ["user_id", "item_id"]
    if path.suffix == ".parquet":
        pq.write_table(pa.table({c: [r.get(c) for r in rows] for c in cols}), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        sep = "\t" if path.suffix == ".tsv" else ","
        lines = [sep.join(cols)] + [sep.join("" if r.get(c) is None else str(r.get(c)) for c in cols) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    return path


def _only(report_problems: tuple[DataProblem, ...]) -> DataProblem:
    assert len(report_problems) == 1, report_problems
    return report_problems[0]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_good_file_loads_the_same_in_every_format(tmp_path: Path, suffix: str) -> None:
    data = load_interactions(_write(tmp_path / f"d{suffix}", ROWS), progress=False)
    assert data.user_ids == ("u1", "u2")
    assert data.item_ids == ("9", "10", "11")  # numeric ids sort numerically
    assert [data.user_ids[u] for u in data.users] == [r["user_id"] for r in ROWS]
    assert [data.item_ids[i] for i in data.items] == [r["item_id"] for r in ROWS]
    np.testing.assert_array_equal(data.timestamps, [3, 1, 2, 1, 5])
    np.testing.assert_array_equal(data.ratings, [4.0, 5.0, 2.0, 3.0, 1.0])
    assert data.item_features is None and data.item_titles is None
    assert data.name == f"d{suffix}"


def test_summary_counts(tmp_path: Path) -> None:
    report = read_interactions(_write(tmp_path / "d.csv", ROWS), progress=False)
    s = report.summary
    assert s is not None and report.ok
    assert (s.users, s.items, s.interactions, s.evaluable_users) == (2, 3, 5, 1)
    assert s.density == pytest.approx(5 / 6)
    assert s.history_quantiles["min"] == 2 and s.history_quantiles["max"] == 3 and s.history_quantiles["p50"] == 2.5


def test_item_file_gives_titles_features_and_keeps_cold_items(tmp_path: Path) -> None:
    items = _write(tmp_path / "items.csv", [
        {"item_id": "9", "title": "Nine", "genres": "Comedy|Drama"},
        {"item_id": "10", "title": "Ten", "genres": "Drama"},
        {"item_id": "11", "title": "Eleven", "genres": ""},
        {"item_id": "12", "title": "Twelve (new)", "genres": "Horror| Comedy"},
    ])
    report = read_interactions(_write(tmp_path / "d.csv", ROWS), items=items, progress=False)
    data = report.interactions
    assert data is not None
    assert data.item_ids == ("9", "10", "11", "12")
    assert data.item_titles == ("Nine", "Ten", "Eleven", "Twelve (new)")
    assert data.item_feature_names == ("genres=Comedy", "genres=Drama", "genres=Horror")
    assert data.item_features is not None
    np.testing.assert_array_equal(data.item_features, [[1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1]])
    problem = _only(report.problems)
    assert problem.code == "items_without_interactions" and problem.severity == "warning"
    assert "1 item of the item file has no interactions in d.csv (first: '12')" in problem.message
    assert data.item_catalog()[3] == {"index": 3, "id": "12", "title": "Twelve (new)"}


def test_items_missing_from_item_file(tmp_path: Path) -> None:
    items = _write(tmp_path / "items.csv", [{"item_id": "9", "title": "Nine"}])
    report = read_interactions(_write(tmp_path / "d.csv", ROWS), items=items, progress=False)
    assert report.interactions is None
    p = _only(report.problems)
    assert p.code == "items_not_in_item_file"
    assert "2 item ids of d.csv are not in the item file (first: '10')" in p.message


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_missing_column_names_what_exists(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"d{suffix}", [{"uid": "a", "item_id": "1"}])
    report = read_interactions(path, progress=False)
    p = _only(report.problems)
    assert p.code == "missing_columns"
    assert p.message == (
        f"{path}: column 'user_id' (--user-col) missing; the file has columns 'uid', 'item_id'. "
        "Name the right ones with --user-col."
    )
    assert load_interactions(path, ColumnSpec(user="uid"), progress=False).user_ids == ("a",)


def test_explicit_time_column_must_exist(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", ROWS)
    p = _only(read_interactions(path, ColumnSpec(time="when"), progress=False).problems)
    assert "column 'when' (--time-col) missing" in p.message


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_bad_timestamps(tmp_path: Path, suffix: str) -> None:
    rows = [dict(r) for r in ROWS]
    rows[2]["timestamp"] = "yesterday"
    rows[4]["timestamp"] = "2021-13-45"
    if suffix == ".jsonl":
        rows = [r | {"timestamp": str(r["timestamp"])} for r in rows]
    path = _write(tmp_path / f"d{suffix}", rows)
    p = _only(read_interactions(path, progress=False).problems)
    assert p.code == "bad_timestamps" and p.count == 2
    assert p.message == (
        f"{path}: 2 rows have a time that is neither a number (seconds since the epoch) nor an ISO 8601 timestamp "
        "in column 'timestamp' (--time-col; first at data row 3: 'yesterday'). Fix or remove those rows."
    )


def test_iso_timestamps_and_offsets_parse(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [{"user_id": "a", "item_id": "1", "timestamp": "2020-01-01T00:00:00"},
            {"user_id": "a", "item_id": "2", "timestamp": "2020-01-01T01:00:00+01:00"},
            {"user_id": "a", "item_id": "3", "timestamp": "2020-01-01 00:00:10Z"}]
    data = load_interactions(_write(tmp_path / "d.csv", rows), progress=False)
    np.testing.assert_array_equal(data.timestamps, [1577836800, 1577836800, 1577836810])


def test_empty_users_and_items(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS]
    rows[1]["user_id"] = ""
    rows[3]["user_id"] = "  "
    rows[4]["item_id"] = None
    path = _write(tmp_path / "d.parquet", rows)
    report = read_interactions(path, progress=False)
    codes = {p.code: p for p in report.problems}
    assert set(codes) == {"empty_users", "empty_items"}
    assert codes["empty_users"].count == 2
    assert codes["empty_users"].message == (
        f"{path}: 2 rows have an empty user id in column 'user_id' (--user-col; first at data row 2). "
        "Fix or remove those rows."
    )
    assert codes["empty_items"].message.startswith(f"{path}: 1 row has an empty item id in column 'item_id'")


def test_ratings_not_numeric(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS]
    rows[0]["rating"] = "five"
    path = _write(tmp_path / "d.csv", rows)
    p = _only(read_interactions(path, progress=False).problems)
    assert p.code == "bad_ratings"
    assert "1 row has a rating that is not a number in column 'rating' (--rating-col; first at data row 1: 'five')" in p.message


def test_min_rating_drops_rows_and_needs_a_rating_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", ROWS)
    data = load_interactions(path, ColumnSpec(min_rating=3.0), progress=False)
    assert len(data) == 3 and data.item_ids == ("9", "10")  # item 11 (rated 1) is gone with its row
    bare = _write(tmp_path / "bare.csv", [{k: r[k] for k in ("user_id", "item_id")} for r in ROWS])
    p = _only(read_interactions(bare, ColumnSpec(min_rating=3.0), progress=False).problems)
    assert "--min-rating 3.0 needs a rating column, and there is none" in p.message


def test_without_time_column_file_order_is_time_order(tmp_path: Path) -> None:
    bare = _write(tmp_path / "bare.jsonl", [{k: r[k] for k in ("user_id", "item_id")} for r in ROWS])
    report = read_interactions(bare, progress=False)
    assert report.interactions is not None
    np.testing.assert_array_equal(report.interactions.timestamps, np.arange(5))
    np.testing.assert_array_equal(report.interactions.ratings, np.ones(5))
    assert any("file order is the time order" in n for n in report.notes)


def test_duplicates_are_counted_and_dedupe_keeps_the_first(tmp_path: Path) -> None:
    rows = [*ROWS, dict(ROWS[1]), dict(ROWS[1]), dict(ROWS[0]) | {"rating": 1.0}]
    path = _write(tmp_path / "d.csv", rows)
    report = read_interactions(path, progress=False)
    p = _only(report.problems)
    assert p.code == "duplicates" and p.count == 3
    assert p.message == (
        f"{path}: 3 duplicate rows (same user, item and time; first: user 'u1', item '9'). "
        "Pass --dedupe to keep the first of each."
    )
    with pytest.raises(DataValidationError, match="3 duplicate rows"):
        load_interactions(path, progress=False)
    data = load_interactions(path, dedupe=True, progress=False)
    assert len(data) == 5
    np.testing.assert_array_equal(data.ratings, [4.0, 5.0, 2.0, 3.0, 1.0])  # first of each kept


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS] + [dict(ROWS[0])]
    rows[1]["rating"] = "x"
    rows[2]["timestamp"] = "x"
    rows[3]["user_id"] = ""
    with pytest.raises(DataValidationError) as info:
        load_interactions(_write(tmp_path / "d.csv", rows), progress=False)
    assert [p.code for p in info.value.problems] == ["empty_users", "bad_timestamps", "bad_ratings", "duplicates"]
    assert isinstance(info.value, ValueError)


def test_unsupported_and_unreadable_files(tmp_path: Path) -> None:
    xls = tmp_path / "d.xlsx"
    xls.write_bytes(b"PK\x03\x04")
    p = _only(read_interactions(xls, progress=False).problems)
    assert p.code == "unsupported_format"
    assert "cannot tell the format from the file name" in p.message and "Found '.xlsx'" in p.message
    broken = tmp_path / "d.parquet"
    broken.write_bytes(b"not parquet at all")
    p = _only(read_interactions(broken, progress=False).problems)
    assert p.code == "unreadable" and "cannot read it as parquet" in p.message
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"user_id": "a", "item_id": 1}\n' * 3 + '{"user_id": 7, "item_id": 1}\n')
    p = _only(read_interactions(mixed, progress=False).problems)
    assert p.code == "unreadable"
    assert "changed from string to number" in p.message
    assert p.message.endswith("Each JSON field must hold one type in every line: write ids as strings.")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_interactions(tmp_path / "nope.csv", progress=False)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("user_id,item_id\n")
    p = _only(read_interactions(path, progress=False).problems)
    assert p.code == "no_interactions"


def test_item_file_problems(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.csv", ROWS)
    items = _write(tmp_path / "items.csv", [{"sku": "9", "title": "Nine"}])
    p = _only(read_interactions(data, items=items, progress=False).problems)
    assert p.message == (
        f"{items}: column 'item_id' (--items-id-col) missing; the item file has columns 'sku', 'title'. "
        "Name the right ones with --items-id-col."
    )
    dup = _write(tmp_path / "dup.csv", [{"item_id": i, "title": "t"} for i in ("9", "10", "11", "9")])
    p = _only(read_interactions(data, items=dup, progress=False).problems)
    assert p.code == "duplicate_item_rows" and "1 item id listed more than once" in p.message
    p = _only(read_interactions(data, items=dup, items_spec=ItemsSpec(feature_cols=("genres",)), progress=False).problems)
    assert "column 'genres' (--feature-cols) missing" in p.message


def test_data_source_records_and_refuses_a_changed_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", ROWS)
    source = DataSource.from_files(path, ColumnSpec(min_rating=2.0), dedupe=True)
    assert DataSource.from_dict(json.loads(json.dumps(source.to_dict()))) == source
    assert len(source.load(progress=False)) == 4
    path.write_text(path.read_text() + "u3,9,9,5\n")
    with pytest.raises(DataIntegrityError, match=r"sha256 must be [0-9a-f]{64} \(the file the run was trained on\)"):
        source.load(progress=False)
    raw = source.to_dict() | {"extra": 1}
    with pytest.raises(ValueError, match=r"Unknown: \['extra'\]"):
        DataSource.from_dict(raw)


_ids = st.text(alphabet="abcxyz0123456789-", min_size=1, max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_ids, _ids, st.integers(0, 10**9)), min_size=1, max_size=40, unique=True))
def test_csv_and_parquet_agree_and_ids_map_back(tmp_path: Path, rows: list[tuple[str, str, int]]) -> None:
    """Any table of string ids loads to the same log from CSV and Parquet, and every row's indices map back
    to its own ids (users and items numbered in sorted-id order)."""
    dicts = [{"user_id": u, "item_id": i, "timestamp": t} for u, i, t in rows]
    a = load_interactions(_write(tmp_path / "p.csv", dicts), progress=False)
    b = load_interactions(_write(tmp_path / "p.parquet", dicts), progress=False)
    for x in (a, b):
        assert [(x.user_ids[u], x.item_ids[i]) for u, i in zip(x.users, x.items, strict=True)] == [(u, i) for u, i, _ in rows]
        np.testing.assert_array_equal(x.timestamps, [t for _, _, t in rows])
    assert a.user_ids == b.user_ids and a.item_ids == b.item_ids
    assert list(a.user_ids) == sorted(a.user_ids, key=lambda s: (int(s),) if all(u.isdigit() for u in a.user_ids) else (s,))


def test_compressed_csv_and_jsonl(tmp_path: Path) -> None:
    import gzip

    for suffix in (".csv", ".jsonl"):
        plain = _write(tmp_path / f"d{suffix}", ROWS)
        packed = tmp_path / f"d{suffix}.gz"
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        a, b = load_interactions(plain, progress=False), load_interactions(packed, progress=False)
        assert a.user_ids == b.user_ids and a.item_ids == b.item_ids
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_array_equal(a.timestamps, b.timestamps)
