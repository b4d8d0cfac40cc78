"""Loaders for MovieLens-100K (the cached RecBole atomic files) and a user-supplied MovieLens-1M."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from privrec.sdk.errors import DataIntegrityError

from .fetch import movielens100k_dir
from .interactions import Interactions

__all__ = ["load_movielens1m", "load_movielens100k"]


def _read_titles(path: Path) -> dict[str, str]:
    titles: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
        if not header.startswith("item_id"):
            raise DataIntegrityError(f"{path}: expected a header starting with 'item_id'. Found {header[:40]!r}.")
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3 and parts[2].strip():
                titles[parts[0]] = f"{parts[1]} ({parts[2].strip()})"
            elif len(parts) >= 2:
                titles[parts[0]] = parts[1]
    return titles


def load_movielens100k(cache_dir: Path | None = None) -> Interactions:
    """MovieLens-100K: 943 users, 1,682 items, 100,000 ratings, with titles from ``ml-100k.item``.

    The files are hash-checked first (:func:`~privrec.sdk.data.fetch.movielens100k_dir`).
    """
    folder = movielens100k_dir(cache_dir)
    inter = folder / "ml-100k.inter"
    with open(inter, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
    expected = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    if header != expected:
        raise DataIntegrityError(f"{inter}: header must be {expected}. Found {header}.")
    raw = np.loadtxt(inter, delimiter="\t", skiprows=1, dtype=np.int64)
    return Interactions.from_raw(
        raw[:, 0].astype(str), raw[:, 1].astype(str), raw[:, 2].astype(np.float32), raw[:, 3],
        titles=_read_titles(folder / "ml-100k.item"), name="ml-100k",
    )


def load_movielens1m(folder: Path) -> Interactions:
    """MovieLens-1M from a user-supplied folder holding ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``)
    and optionally ``movies.dat`` (``MovieID::Title::Genres``, latin-1) for titles."""
    ratings_path = Path(folder) / "ratings.dat"
    if not ratings_path.is_file():
        raise FileNotFoundError(f"{ratings_path} is missing: point to the unpacked MovieLens-1M folder (ml-1m/).")
    rows: list[list[int]] = []
    with open(ratings_path, encoding="latin-1") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.strip().split("::")
            if len(parts) != 4:
                raise DataIntegrityError(f"{ratings_path}:{lineno}: expected 4 fields separated by '::'. Found {line.strip()!r}.")
            rows.append([int(p) for p in parts])
    raw = np.asarray(rows, np.int64)
    titles: dict[str, str] | None = None
    movies = Path(folder) / "movies.dat"
    if movies.is_file():
        titles = {}
        with open(movies, encoding="latin-1") as f:
            for line in f:
                parts = line.rstrip("\n").split("::")
                if len(parts) >= 2:
                    titles[parts[0]] = parts[1]
    return Interactions.from_raw(
        raw[:, 0].astype(str), raw[:, 1].astype(str), raw[:, 2].astype(np.float32), raw[:, 3],
        titles=titles, name="ml-1m",
    )
