"""An app's own interactions from CSV, Parquet or JSON Lines, streamed through pyarrow.

The interaction file holds one row per interaction with a user column and an item column (the app's
own ids, kept as strings), and optionally a time column (seconds since the epoch, or ISO 8601; without
one the file order is the time order) and a rating column (with ``min_rating``, rows rated lower are
dropped; without one every row counts as 1). Files are read in blocks (``pyarrow.csv.open_csv``,
``ParquetFile.iter_batches``, ``pyarrow.json.open_json``) and only four small arrays per row are kept,
so 10M interactions load in well under a few GB (``privrec bench data`` measures it).

An optional item file (same formats) gives each item id a title and public categorical features
(genres, categories...; multi-valued cells split on ``|``), turned into the multi-hot
:attr:`Interactions.item_features`. Items it lists that have no interactions stay in the catalog: they
are the cold-start items a feature-tied table can recommend on day one.

Every problem found is collected (one :class:`DataProblem` each, with a count and the first offending
row) before anything is raised: :func:`read_interactions` returns them, :func:`load_interactions`
raises :class:`DataValidationError` holding all of them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from privrec.sdk.errors import DataIntegrityError

from .interactions import Interactions
from .summary import DataSummary, summarize

__all__ = [
    "FORMATS",
    "ColumnSpec",
    "DataProblem",
    "DataValidationError",
    "ItemsSpec",
    "LoadReport",
    "detect_format",
    "load_interactions",
    "read_interactions",
]

#: File name endings → format name (``.gz``/``.bz2``/``.zst`` compressed CSV and JSON Lines are read too).
FORMATS: dict[str, str] = {
    ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "jsonl",
}
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
#: Item-file columns used as categorical features when ``ItemsSpec.feature_cols`` is not given.
AUTO_FEATURE_COLUMNS = ("genres", "genre", "categories", "category", "tags")
#: Files smaller than this load without a progress bar (a blink).
_PROGRESS_BYTES = 8 << 20


@dataclass(frozen=True)
class ColumnSpec:
    """Which columns of the interaction file mean what.

    Attributes:
        user: user id column (required).
        item: item id column (required).
        time: time column: numbers (seconds since the epoch) or ISO 8601 strings. ``None`` = ``"timestamp"``
            if the file has it, otherwise the file order is the time order. A name given here must exist.
        rating: rating column (numbers). ``None`` = ``"rating"`` if the file has it, otherwise every row
            rates 1. A name given here must exist.
        min_rating: drop rows rated below this (needs a rating column); ``None`` keeps every row.
    """

    user: str = "user_id"
    item: str = "item_id"
    time: str | None = None
    rating: str | None = None
    min_rating: float | None = None

    def __post_init__(self) -> None:
        for name in ("user", "item"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"`{name}` column name must be a non-empty string. Found {getattr(self, name)!r}.")
        if self.min_rating is not None and not math.isfinite(self.min_rating):
            raise ValueError(f"`min_rating` must be a finite number. Found {self.min_rating}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded in a run's ``config.json``)."""
        return {"user": self.user, "item": self.item, "time": self.time, "rating": self.rating,
                "min_rating": self.min_rating}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ColumnSpec:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError`` naming them."""
        _check_keys(raw, {"user", "item", "time", "rating", "min_rating"}, "columns")
        return cls(**raw)


@dataclass(frozen=True)
class ItemsSpec:
    """Which columns of the item file mean what.

    Attributes:
        id_col: item id column; ``None`` = the interaction file's item column name.
        title_col: title column; ``None`` = ``"title"`` if present (titles are optional).
        feature_cols: categorical feature columns; ``None`` = those of ``genres``, ``genre``, ``categories``,
            ``category``, ``tags`` that the file has. Names given here must exist.
        separator: splits a multi-valued cell (``"Comedy|Drama"``).
    """

    id_col: str | None = None
    title_col: str | None = None
    feature_cols: tuple[str, ...] | None = None
    separator: str = "|"

    def __post_init__(self) -> None:
        if not self.separator:
            raise ValueError("`separator` must be a non-empty string. Found ''.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded in a run's ``config.json``)."""
        return {"id_col": self.id_col, "title_col": self.title_col,
                "feature_cols": None if self.feature_cols is None else list(self.feature_cols),
                "separator": self.separator}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ItemsSpec:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError`` naming them."""
        _check_keys(raw, {"id_col", "title_col", "feature_cols", "separator"}, "items")
        cols = raw["feature_cols"]
        return cls(id_col=raw["id_col"], title_col=raw["title_col"],
                   feature_cols=None if cols is None else tuple(cols), separator=raw["separator"])


def _check_keys(raw: dict[str, Any], expected: set[str], what: str) -> None:
    if not isinstance(raw, dict):
        raise TypeError(f"`{what}` must be a JSON object. Found {type(raw).__name__}.")
    unknown, missing = sorted(set(raw) - expected), sorted(expected - set(raw))
    if unknown or missing:
        raise ValueError(f"`{what}` must have exactly the keys {sorted(expected)}. Unknown: {unknown}; missing: {missing}.")


@dataclass(frozen=True)
class DataProblem:
    """One problem found in a data file.

    Attributes:
        code: stable identifier (``missing_columns``, ``bad_timestamps``, ``bad_ratings``, ``empty_users``,
            ``empty_items``, ``duplicates``, ``items_not_in_item_file``, ``items_without_interactions``,
            ``no_interactions``, ``unreadable``, ``unsupported_format``, ``duplicate_item_rows``).
        message: one line: what is wrong, where, and how to fix it.
        count: how many rows or items it concerns.
        severity: ``"error"`` (the data cannot be used as is) or ``"warning"`` (it can; read the message).
    """

    code: str
    message: str
    count: int = 1
    severity: Literal["error", "warning"] = "error"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``privrec data validate --json``)."""
        return {"code": self.code, "message": self.message, "count": self.count, "severity": self.severity}


class DataValidationError(DataIntegrityError):
    """An interaction or item file has problems; :attr:`problems` lists every one (errors first)."""

    def __init__(self, problems: tuple[DataProblem, ...]) -> None:
        self.problems = problems
        super().__init__(" | ".join(p.message for p in problems))


@dataclass(frozen=True)
class LoadReport:
    """What :func:`read_interactions` found.

    Attributes:
        interactions: the loaded log, or ``None`` when an error-severity problem stopped it.
        problems: every problem found (errors and warnings).
        summary: counts and history-length quantiles (``None`` when nothing could be loaded).
        format: the file format read (``csv``, ``tsv``, ``parquet`` or ``jsonl``).
    """

    interactions: Interactions | None
    problems: tuple[DataProblem, ...]
    summary: DataSummary | None
    format: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[DataProblem, ...]:
        """The error-severity problems (empty when the data can be used)."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def ok(self) -> bool:
        """True when there is no error-severity problem."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``privrec data validate --json``)."""
        return {
            "ok": self.ok, "format": self.format,
            "summary": None if self.summary is None else self.summary.to_dict(),
            "problems": [p.to_dict() for p in self.problems], "notes": list(self.notes),
        }


def detect_format(path: Path) -> str:
    """The format of ``path`` from its name (``.csv``, ``.tsv``, ``.parquet``/``.pq``, ``.jsonl``/``.ndjson``/``.json``,
    optionally followed by ``.gz``, ``.bz2``, ``.zst`` or ``.lz4`` for CSV and JSON Lines)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise ValueError(
            f"{path}: cannot tell the format from the file name. Expected one of {sorted(FORMATS)} "
            f"(optionally compressed: {', '.join(_COMPRESSED)}). Found {''.join(Path(path).suffixes) or 'no suffix'!r}."
        )
    return fmt


# ---------------------------------------------------------------------------------------------- reading


class _UnreadableError(Exception):
    """The file could not be parsed at all (message for the user)."""


def _schema_names(path: Path, fmt: str) -> list[str]:
    from ._arrow import pa, pcsv, pjson, pq

    try:
        if fmt == "parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        if fmt in ("csv", "tsv"):
            with pcsv.open_csv(pa.input_stream(str(path), compression="detect"),
                               parse_options=pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")) as reader:
                return list(reader.schema.names)
        with pjson.open_json(pa.input_stream(str(path), compression="detect")) as jreader:
            return list(jreader.schema.names)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, fmt, exc) from None


def _batches(path: Path, fmt: str, columns: list[str], *, block_size: int = 1 << 24) -> Iterator[tuple[Any, int]]:
    """``(pyarrow.RecordBatch, bytes_or_rows_done)`` of ``columns`` (CSV and TSV columns as strings)."""
    from ._arrow import pa, pcsv, pjson, pq

    try:
        if fmt == "parquet":
            pf = pq.ParquetFile(path)
            done = 0
            for batch in pf.iter_batches(batch_size=1 << 16, columns=columns):
                done += batch.num_rows
                yield batch, done
            return
        raw = pa.OSFile(str(path), "rb")
        stream = pa.input_stream(str(path), compression="detect") if path.suffix.lower() in _COMPRESSED else raw
        if fmt in ("csv", "tsv"):
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(block_size=block_size),
                parse_options=pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
                convert_options=pcsv.ConvertOptions(include_columns=columns,
                                                    column_types={c: pa.string() for c in columns}),
            )
        else:
            reader = pjson.open_json(stream, read_options=pjson.ReadOptions(block_size=block_size))
        with reader:
            for batch in reader:
                pos = raw.tell() if stream is raw else 0
                yield (batch.select(columns) if fmt == "jsonl" else batch), pos
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, fmt, exc) from None


def _unreadable(path: Path, fmt: str, exc: BaseException) -> _UnreadableError:
    hint = " Each JSON field must hold one type in every line: write ids as strings." if fmt == "jsonl" else ""
    return _UnreadableError(f"{path}: cannot read it as {fmt} ({_one_line(exc)}).{hint}")


def _verb(phrase: str, count: int) -> str:
    """``"have ..."`` → ``"has ..."`` for one row."""
    return "has" + phrase[4:] if count == 1 and phrase.startswith("have") else phrase


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass
class _Tally:
    """Rows with one kind of problem: how many, and the first one (1-based data row, value)."""

    count: int = 0
    first: tuple[int, str] | None = None

    def add(self, mask: NDArray[np.bool_], offset: int, values: list[Any] | None = None) -> None:
        n = int(mask.sum())
        if n == 0:
            return
        if self.first is None:
            j = int(np.flatnonzero(mask)[0])
            self.first = (offset + j + 1, "" if values is None else repr(values[j]))
        self.count += n

    def where(self) -> str:
        if self.first is None:
            return ""
        row, value = self.first
        return f"first at data row {row}" + (f": {value}" if value else "")


class _Encoder:
    """Maps string ids to dense codes in first-seen order: each batch is dictionary-encoded and its distinct
    ids looked up in the ids seen so far by ``pyarrow.compute.index_in`` (no per-id Python work)."""

    def __init__(self) -> None:
        from ._arrow import pa

        self.values = pa.array([], pa.string())

    def __len__(self) -> int:
        return len(self.values)

    def encode(self, arr: Any) -> NDArray[np.int64]:
        from ._arrow import pa, pc

        arr = pc.cast(arr, pa.string())
        enc = pc.dictionary_encode(arr)
        dictionary = enc.dictionary
        if len(dictionary) == 0:
            return np.zeros(len(arr), np.int64)
        pos = pc.index_in(dictionary, value_set=self.values)
        local: NDArray[np.int64] = pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        new = local < 0
        if new.any():
            local[new] = len(self.values) + np.arange(int(new.sum()), dtype=np.int64)
            self.values = pa.concat_arrays([self.values, pc.filter(dictionary, pa.array(new))])
        idx = enc.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        out: NDArray[np.int64] = local[idx]
        return out

    def ids(self) -> list[str]:
        """The ids in first-seen order (``ids()[code]``)."""
        return [str(v) for v in self.values.to_pylist()]

    def sorted_ids(self) -> tuple[tuple[str, ...], NDArray[np.int64]]:
        """Ids in sorted order (numerically when all are digits) and ``remap[first_seen_code] = sorted index``."""
        from ._arrow import pa, pc

        values = self.values
        n = len(values)
        if n == 0:
            return (), np.zeros(0, np.int64)
        if pc.all(pc.match_substring_regex(values, "^[0-9]+$")).as_py():
            # numeric order without overflow: by digit count without leading zeros, then digits, then the id
            stripped = pc.utf8_ltrim(values, characters="0")
            keys = pa.table({"len": pc.utf8_length(stripped), "digits": stripped, "id": values})
            order = pc.sort_indices(keys, sort_keys=[("len", "ascending"), ("digits", "ascending"), ("id", "ascending")])
        else:
            order = pc.array_sort_indices(values)  # UTF-8 byte order = code point order = Python's str order
        order_np = order.to_numpy(zero_copy_only=False).astype(np.int64)
        remap = np.empty(n, np.int64)
        remap[order_np] = np.arange(n, dtype=np.int64)
        return tuple(str(v) for v in values.take(order).to_pylist()), remap


def _as_strings(arr: Any) -> Any:
    from ._arrow import pa, pc

    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    if pa.types.is_floating(arr.type):  # 7.0 → "7": ids written as floats by a spreadsheet
        as_int = pc.cast(arr, pa.int64(), safe=False)
        if pc.all(pc.equal(pc.cast(as_int, pa.float64()), arr)).as_py() in (True, None):
            return pc.cast(as_int, pa.string())
    return pc.cast(arr, pa.string())


def _missing_id(arr: Any) -> NDArray[np.bool_]:
    from ._arrow import pc

    empty = pc.or_kleene(pc.is_null(arr), pc.equal(pc.utf8_trim_whitespace(arr), ""))
    return np.asarray(empty.fill_null(True).to_numpy(zero_copy_only=False), bool)


def _parse_time_python(values: list[Any]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    out = np.zeros(len(values), np.int64)
    bad = np.zeros(len(values), bool)
    for k, v in enumerate(values):
        try:
            if v is None or (isinstance(v, str) and not v.strip()):
                raise ValueError
            if isinstance(v, int | float):
                x = float(v)
            else:
                try:
                    x = float(v)
                except ValueError:
                    dt = datetime.fromisoformat(str(v).strip())
                    x = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
            if not math.isfinite(x):
                raise ValueError
            out[k] = math.floor(x)
        except (ValueError, OverflowError, TypeError):
            bad[k] = True
    return out, bad


def _parse_time(arr: Any) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Seconds since the epoch and a mask of values that are neither numbers nor ISO 8601 timestamps."""
    from ._arrow import pa, pc

    t = arr.type
    try:
        if pa.types.is_timestamp(t) or pa.types.is_date(t):
            secs = pc.cast(pc.cast(arr, pa.timestamp("s", tz=getattr(t, "tz", None))), pa.int64())
            bad = np.asarray(pc.is_null(secs).to_numpy(zero_copy_only=False), bool)
            return secs.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64), bad
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            for target in (pa.int64(), pa.float64()):
                try:
                    num = pc.cast(arr, target)
                except pa.ArrowException:
                    continue
                vals = num.fill_null(np.nan if target == pa.float64() else 0).to_numpy(zero_copy_only=False)
                bad = np.asarray(pc.is_null(num).to_numpy(zero_copy_only=False), bool)
                if target == pa.float64():
                    bad |= ~np.isfinite(vals)
                    vals = np.where(bad, 0.0, np.floor(vals))
                return vals.astype(np.int64), bad
            try:
                secs = pc.cast(pc.cast(arr, pa.timestamp("s")), pa.int64())
                bad = np.asarray(pc.is_null(secs).to_numpy(zero_copy_only=False), bool)
                return secs.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64), bad
            except pa.ArrowException:
                pass
    except pa.ArrowException:
        pass
    return _parse_time_python(arr.to_pylist())


def _parse_rating(arr: Any) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    from ._arrow import pa, pc

    try:
        num = pc.cast(arr, pa.float64())
        vals = num.fill_null(np.nan).to_numpy(zero_copy_only=False)
    except pa.ArrowException:
        vals = np.empty(len(arr), np.float64)
        for k, v in enumerate(arr.to_pylist()):
            try:
                vals[k] = float(v)
            except (TypeError, ValueError):
                vals[k] = np.nan
    bad = ~np.isfinite(vals)
    return np.where(bad, 0.0, vals).astype(np.float32), bad


def read_interactions(
    path: Path | str,
    columns: ColumnSpec | None = None,
    *,
    items: Path | str | None = None,
    items_spec: ItemsSpec | None = None,
    dedupe: bool = False,
    progress: bool = True,
    name: str | None = None,
) -> LoadReport:
    """Read and check an interaction file (and optionally an item file); never raises for bad data.

    Returns a :class:`LoadReport` listing every problem; its ``interactions`` is ``None`` when any problem
    has error severity. Duplicate rows (same user, item and time) are an error unless ``dedupe`` keeps the
    first of each. Raises ``FileNotFoundError`` if a file does not exist.
    """
    from tqdm import tqdm

    path = Path(path)
    cols = columns or ColumnSpec()
    ispec = items_spec or ItemsSpec()
    for p in (path, None if items is None else Path(items)):
        if p is not None and not p.is_file():
            raise FileNotFoundError(f"{p} does not exist (or is not a file).")
    problems: list[DataProblem] = []
    notes: list[str] = []
    try:
        fmt = detect_format(path)
        names = _schema_names(path, fmt)
    except ValueError as exc:
        return LoadReport(None, (DataProblem("unsupported_format", str(exc)),), None)
    except _UnreadableError as exc:
        return LoadReport(None, (DataProblem("unreadable", str(exc)),), None)

    wanted = {"--user-col": cols.user, "--item-col": cols.item}
    if cols.time is not None:
        wanted["--time-col"] = cols.time
    if cols.rating is not None:
        wanted["--rating-col"] = cols.rating
    missing = [f"{col!r} ({flag})" for flag, col in wanted.items() if col not in names]
    if missing:
        msg = (f"{path}: column{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing; the file has "
               f"columns {', '.join(repr(n) for n in names) or '(none)'}. Name the right ones with "
               f"{', '.join(flag for flag, col in wanted.items() if col not in names)}.")
        return LoadReport(None, (DataProblem("missing_columns", msg, len(missing)),), None, fmt)
    time_col = cols.time if cols.time is not None else ("timestamp" if "timestamp" in names else None)
    rating_col = cols.rating if cols.rating is not None else ("rating" if "rating" in names else None)
    if time_col is None:
        notes.append(f"no time column ('timestamp' not in {path.name}): the file order is the time order.")
    if rating_col is None:
        notes.append(f"no rating column ('rating' not in {path.name}): every row is one interaction.")
        if cols.min_rating is not None:
            msg = (f"{path}: --min-rating {cols.min_rating} needs a rating column, and there is none; the file has "
                   f"columns {', '.join(repr(n) for n in names)}. Name it with --rating-col.")
            return LoadReport(None, (DataProblem("missing_columns", msg),), None, fmt)
    read_cols = list(dict.fromkeys(c for c in (cols.user, cols.item, time_col, rating_col) if c is not None))

    users_enc, items_enc = _Encoder(), _Encoder()
    chunks: dict[str, list[NDArray[Any]]] = {"u": [], "i": [], "t": [], "r": []}
    tallies = {k: _Tally() for k in ("empty_users", "empty_items", "bad_timestamps", "bad_ratings")}
    below = 0
    offset = 0
    by_bytes = fmt != "parquet" and path.suffix.lower() not in _COMPRESSED  # else rows (compressed: no total)
    total = path.stat().st_size if by_bytes else (_parquet_rows(path) if fmt == "parquet" else None)
    bar = tqdm(total=total, desc=f"load {path.name}", unit="B" if by_bytes else " rows",
               unit_scale=True, file=sys.stderr, leave=False,
               disable=not progress or path.stat().st_size < _PROGRESS_BYTES)
    try:
        for batch, done in _batches(path, fmt, read_cols):
            n = batch.num_rows
            u_arr = _as_strings(batch.column(cols.user))
            i_arr = _as_strings(batch.column(cols.item))
            bad_u = _missing_id(u_arr)
            bad_i = _missing_id(i_arr)
            tallies["empty_users"].add(bad_u, offset)
            tallies["empty_items"].add(bad_i, offset)
            keep = ~(bad_u | bad_i)
            if time_col is not None:
                t, bad_t = _parse_time(batch.column(time_col))
                tallies["bad_timestamps"].add(bad_t, offset, batch.column(time_col).to_pylist() if bad_t.any() else None)
                keep &= ~bad_t
            else:
                t = np.arange(offset, offset + n, dtype=np.int64)
            if rating_col is not None:
                r, bad_r = _parse_rating(batch.column(rating_col))
                tallies["bad_ratings"].add(bad_r, offset, batch.column(rating_col).to_pylist() if bad_r.any() else None)
                keep &= ~bad_r
                if cols.min_rating is not None:
                    low = keep & (r < cols.min_rating)
                    below += int(low.sum())
                    keep &= ~low
            else:
                r = np.ones(n, np.float32)
            ku = users_enc.encode(u_arr)
            ki = items_enc.encode(i_arr)
            if not keep.all():  # codes given to rejected rows' ids are dropped when the maps are finalised
                ku, ki, t, r = ku[keep], ki[keep], t[keep], r[keep]
            chunks["u"].append(ku.astype(np.int32 if len(users_enc) < 2**31 else np.int64))
            chunks["i"].append(ki.astype(np.int32 if len(items_enc) < 2**31 else np.int64))
            chunks["t"].append(t)
            chunks["r"].append(r)
            offset += n
            bar.update(done - bar.n if by_bytes else n)
    except _UnreadableError as exc:
        bar.close()
        return LoadReport(None, (DataProblem("unreadable", str(exc)),), None, fmt)
    bar.close()

    col_flag = {"empty_users": (cols.user, "--user-col"), "empty_items": (cols.item, "--item-col"),
                "bad_timestamps": (time_col, "--time-col"), "bad_ratings": (rating_col, "--rating-col")}
    what = {"empty_users": "have an empty user id", "empty_items": "have an empty item id",
            "bad_timestamps": "have a time that is neither a number (seconds since the epoch) nor an ISO 8601 timestamp",
            "bad_ratings": "have a rating that is not a number"}
    for code, tally in tallies.items():
        if tally.count:
            col, flag = col_flag[code]
            problems.append(DataProblem(
                code, f"{path}: {tally.count} row{'s' if tally.count > 1 else ''} {_verb(what[code], tally.count)} "
                      f"in column {col!r} ({flag}; {tally.where()}). Fix or remove those rows.", tally.count))

    users_first = np.concatenate(chunks["u"]).astype(np.int64) if chunks["u"] else np.zeros(0, np.int64)
    items_first = np.concatenate(chunks["i"]).astype(np.int64) if chunks["i"] else np.zeros(0, np.int64)
    times = np.concatenate(chunks["t"]) if chunks["t"] else np.zeros(0, np.int64)
    ratings = np.concatenate(chunks["r"]) if chunks["r"] else np.zeros(0, np.float32)
    del chunks
    if below:
        notes.append(f"{below} rows rated below --min-rating {cols.min_rating} dropped.")

    # duplicates: same user, item and time
    dup_mask = np.zeros(users_first.size, bool)
    if users_first.size:
        order = np.lexsort((np.arange(users_first.size), times, items_first, users_first))
        su, si, st = users_first[order], items_first[order], times[order]
        same = (su[1:] == su[:-1]) & (si[1:] == si[:-1]) & (st[1:] == st[:-1])
        dup_mask[order[1:][same]] = True
        del order, su, si, st, same
    n_dup = int(dup_mask.sum())
    if n_dup and not dedupe:
        first = int(np.flatnonzero(dup_mask)[0])
        example = (users_enc.ids()[int(users_first[first])], items_enc.ids()[int(items_first[first])])
        problems.append(DataProblem(
            "duplicates", f"{path}: {n_dup} duplicate row{'s' if n_dup > 1 else ''} (same user, item and time; "
                          f"first: user {example[0]!r}, item {example[1]!r}). Pass --dedupe to keep the first of each.",
            n_dup))
    elif n_dup:
        notes.append(f"{n_dup} duplicate rows (same user, item and time) dropped by --dedupe.")
        keep_rows = ~dup_mask
        users_first, items_first, times, ratings = (users_first[keep_rows], items_first[keep_rows],
                                                    times[keep_rows], ratings[keep_rows])
    del dup_mask

    # ids used by kept rows only, in sorted order
    user_ids, users = _finalise(users_enc, users_first)
    data_item_ids, items_idx = _finalise(items_enc, items_first)
    del users_first, items_first

    titles: dict[str, str] | None = None
    feature_map: dict[str, set[str]] | None = None
    feature_names: tuple[str, ...] | None = None
    item_ids = data_item_ids
    if items is not None:
        item_meta = _read_item_file(Path(items), ispec, cols.item, problems, notes, progress=progress)
        if item_meta is not None:
            titles, feature_map, feature_names, listed = item_meta
            listed_set = set(listed)
            absent = [i for i in data_item_ids if i not in listed_set]
            if absent:
                problems.append(DataProblem(
                    "items_not_in_item_file",
                    f"{Path(items)}: {len(absent)} item id{'s' if len(absent) > 1 else ''} of {path.name} "
                    f"{'are' if len(absent) > 1 else 'is'} not in the item file (first: {absent[0]!r}). Add them to "
                    f"the item file, or remove their interactions.", len(absent)))
            data_set = set(data_item_ids)
            cold = [i for i in listed if i not in data_set]
            if cold:
                problems.append(DataProblem(
                    "items_without_interactions",
                    f"{Path(items)}: {len(cold)} item{'s' if len(cold) > 1 else ''} of the item file "
                    f"{'have' if len(cold) > 1 else 'has'} no interactions in {path.name} (first: {cold[0]!r}); "
                    f"they stay in the catalog as cold-start items, recommended from their features "
                    f"(item_cold_start='features').", len(cold), "warning"))
                item_ids, items_idx = _merge_catalog(data_item_ids, items_idx, cold)
    if users.size == 0 and not any(p.severity == "error" for p in problems):
        problems.append(DataProblem("no_interactions", f"{path}: no interactions to load (the file has no data rows"
                                    f"{' after --min-rating' if below else ''})."))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        return LoadReport(None, tuple(sorted(problems, key=lambda p: p.severity != "error")), None, fmt, tuple(notes))

    feats = None
    if feature_map is not None and feature_names is not None:
        col_of = {n: k for k, n in enumerate(feature_names)}
        feats = np.zeros((len(item_ids), len(feature_names)), np.float32)
        for k, iid in enumerate(item_ids):
            for f in feature_map.get(iid, ()):
                feats[k, col_of[f]] = 1.0
    data = Interactions(
        users=users, items=items_idx, ratings=ratings, timestamps=times,
        user_ids=user_ids, item_ids=item_ids,
        item_titles=None if titles is None else tuple(titles.get(i, "") for i in item_ids),
        name=name or path.name,
        item_features=feats, item_feature_names=feature_names if feats is not None else None,
    )
    return LoadReport(data, tuple(problems), summarize(data, time_column=time_col), fmt, tuple(notes))


def _parquet_rows(path: Path) -> int:
    from ._arrow import pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # an unreadable file is reported by the reader itself
        return 0


def _finalise(enc: _Encoder, codes: NDArray[np.int64]) -> tuple[tuple[str, ...], NDArray[np.int64]]:
    """Ids that kept rows use, sorted (numerically when all digits), and the rows' indices into them."""
    all_ids, remap = enc.sorted_ids()
    sorted_codes = remap[codes] if codes.size else codes
    used = np.zeros(len(all_ids), bool)
    used[sorted_codes] = True
    new_index = np.cumsum(used) - 1
    ids = tuple(i for i, u in zip(all_ids, used.tolist(), strict=True) if u)
    return ids, new_index[sorted_codes].astype(np.int64) if codes.size else np.zeros(0, np.int64)


def _merge_catalog(data_ids: tuple[str, ...], idx: NDArray[np.int64],
                   cold: list[str]) -> tuple[tuple[str, ...], NDArray[np.int64]]:
    """The union of interaction items and cold items, in the same sorted order, with the rows re-indexed."""
    from ._arrow import pa

    enc = _Encoder()
    enc.encode(pa.array([*data_ids, *cold], pa.string()))
    ids, remap = enc.sorted_ids()
    return ids, remap[idx] if idx.size else idx


def _read_item_file(
    path: Path, spec: ItemsSpec, item_col: str, problems: list[DataProblem], notes: list[str], *, progress: bool
) -> tuple[dict[str, str], dict[str, set[str]] | None, tuple[str, ...] | None, list[str]] | None:
    """``(titles, features per id, feature names, ids in file order)``, or None after adding problems."""
    try:
        fmt = detect_format(path)
        names = _schema_names(path, fmt)
    except ValueError as exc:
        problems.append(DataProblem("unsupported_format", str(exc)))
        return None
    except _UnreadableError as exc:
        problems.append(DataProblem("unreadable", str(exc)))
        return None
    id_col = spec.id_col or item_col
    title_col = spec.title_col if spec.title_col is not None else ("title" if "title" in names else None)
    feature_cols = spec.feature_cols if spec.feature_cols is not None else tuple(
        c for c in AUTO_FEATURE_COLUMNS if c in names)
    wanted = [(id_col, "--items-id-col"), *([(title_col, "--title-col")] if title_col else []),
              *[(c, "--feature-cols") for c in feature_cols]]
    missing = [(c, flag) for c, flag in wanted if c not in names]
    if missing:
        problems.append(DataProblem(
            "missing_columns",
            f"{path}: column{'s' if len(missing) > 1 else ''} {', '.join(f'{c!r} ({f})' for c, f in missing)} "
            f"missing; the item file has columns {', '.join(repr(n) for n in names) or '(none)'}. Name the right "
            f"ones with {', '.join(sorted({f for _, f in missing}))}.", len(missing)))
        return None
    if title_col is None:
        notes.append(f"no title column in {path.name}: items have no titles.")
    if feature_cols:
        notes.append(f"item features from {path.name}: {', '.join(feature_cols)} (multi-valued cells split on "
                      f"{spec.separator!r}).")
    titles: dict[str, str] = {}
    feats: dict[str, set[str]] = {}
    listed: list[str] = []
    empty = _Tally()
    dup = 0
    offset = 0
    try:
        for batch, _ in _batches(path, fmt, list(dict.fromkeys([id_col, *([title_col] if title_col else []),
                                                               *feature_cols]))):
            ids_arr = _as_strings(batch.column(id_col))
            bad = _missing_id(ids_arr)
            empty.add(bad, offset)
            ids = ids_arr.to_pylist()
            tl = _as_strings(batch.column(title_col)).to_pylist() if title_col else None
            fl = {c: _as_strings(batch.column(c)).to_pylist() for c in feature_cols}
            for k, iid in enumerate(ids):
                if bad[k]:
                    continue
                if iid in titles:
                    dup += 1
                    continue
                listed.append(iid)
                titles[iid] = (tl[k] or "") if tl is not None else ""
                feats[iid] = {f"{c}={v.strip()}" for c in feature_cols for v in (fl[c][k] or "").split(spec.separator)
                              if v.strip()}
            offset += batch.num_rows
    except _UnreadableError as exc:
        problems.append(DataProblem("unreadable", str(exc)))
        return None
    if empty.count:
        problems.append(DataProblem(
            "empty_items", f"{path}: {empty.count} row{'s' if empty.count > 1 else ''} {_verb('have', empty.count)} "
                           f"an empty item id in column {id_col!r} (--items-id-col; {empty.where()}). "
                           "Fix or remove those rows.", empty.count))
    if dup:
        problems.append(DataProblem(
            "duplicate_item_rows", f"{path}: {dup} item id{'s' if dup > 1 else ''} listed more than once in column "
                                   f"{id_col!r}; each item needs exactly one row.", dup))
    names_sorted = tuple(sorted({f for fs in feats.values() for f in fs})) if feature_cols else None
    if feature_cols and not names_sorted:
        notes.append(f"feature columns {', '.join(feature_cols)} of {path.name} are all empty: no item features.")
        return titles, None, None, listed
    return titles, (feats if names_sorted else None), names_sorted, listed


def load_interactions(
    path: Path | str,
    columns: ColumnSpec | None = None,
    *,
    items: Path | str | None = None,
    items_spec: ItemsSpec | None = None,
    dedupe: bool = False,
    progress: bool = True,
    name: str | None = None,
) -> Interactions:
    """:func:`read_interactions`, raising :class:`DataValidationError` (every error problem) if the data
    cannot be used. Users and items are indexed in sorted-id order (numerically when all ids are digits)."""
    report = read_interactions(path, columns, items=items, items_spec=items_spec, dedupe=dedupe,
                               progress=progress, name=name)
    if report.interactions is None:
        raise DataValidationError(report.errors)
    return report.interactions
