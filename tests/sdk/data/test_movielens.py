from pathlib import Path

import pytest

from privrec.sdk.data import Interactions, load_movielens1m
from privrec.sdk.errors import DataIntegrityError


def test_movielens1m_loader(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (tmp_path / "movies.dat").write_text("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James (1996)::Animation\n")
    d = load_movielens1m(tmp_path)
    assert (d.num_users, d.num_items, len(d)) == (2, 2, 3)
    assert d.item_ids == ("661", "1193")  # numeric ids sort numerically
    assert d.item_titles == ("James (1996)", "One Flew Over the Cuckoo's Nest (1975)")
    assert d.item_catalog()[1] == {"index": 1, "id": "1193", "title": "One Flew Over the Cuckoo's Nest (1975)"}


def test_movielens1m_bad_line(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::1193::5\n")
    with pytest.raises(DataIntegrityError, match=r"ratings\.dat:1: expected 4 fields"):
        load_movielens1m(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ratings\.dat is missing"):
        load_movielens1m(tmp_path / "nowhere")


def test_ml100k_titles(ml100k_split) -> None:  # type: ignore[no-untyped-def]
    data: Interactions = ml100k_split.data
    assert data.item_titles is not None
    assert data.item_titles[0] == "Toy Story (1995)"
    assert data.name == "ml-100k"
