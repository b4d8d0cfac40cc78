"""Where a run's data came from: the file, its sha256 and how it was read, recorded in ``config.json``.

``privrec evaluate`` and ``privrec export`` re-read exactly this data: :meth:`DataSource.load` refuses a
file whose sha256 is no longer the recorded one (the split, and so every number, would differ).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privrec.sdk.errors import DataIntegrityError

from .fetch import sha256_file
from .interactions import Interactions
from .loaders import ColumnSpec, ItemsSpec, LoadReport, _check_keys, detect_format, load_interactions, read_interactions

__all__ = ["DataSource"]


@dataclass(frozen=True)
class DataSource:
    """An interaction file (and optional item file) with their sha256 and the settings that read them.

    Attributes:
        path: absolute path of the interaction file.
        sha256: its sha256 (hex) when the run was trained.
        format: ``csv``, ``tsv``, ``parquet`` or ``jsonl``.
        columns: the interaction file's columns.
        items_path, items_sha256: the item file and its sha256, or ``None``.
        items: the item file's columns.
        dedupe: whether duplicate rows were dropped.
    """

    path: str
    sha256: str
    format: str
    columns: ColumnSpec = field(default_factory=ColumnSpec)
    items_path: str | None = None
    items_sha256: str | None = None
    items: ItemsSpec = field(default_factory=ItemsSpec)
    dedupe: bool = False

    @classmethod
    def from_files(cls, path: Path | str, columns: ColumnSpec | None = None, *, items: Path | str | None = None,
                   items_spec: ItemsSpec | None = None, dedupe: bool = False) -> DataSource:
        """Describe ``path`` (and ``items``) as they are now: hashes them."""
        p = Path(path).resolve()
        if not p.is_file():
            raise FileNotFoundError(f"{p} does not exist (or is not a file).")
        ip = None if items is None else Path(items).resolve()
        if ip is not None and not ip.is_file():
            raise FileNotFoundError(f"{ip} does not exist (or is not a file).")
        return cls(path=str(p), sha256=sha256_file(p), format=detect_format(p), columns=columns or ColumnSpec(),
                   items_path=None if ip is None else str(ip), items_sha256=None if ip is None else sha256_file(ip),
                   items=items_spec or ItemsSpec(), dedupe=dedupe)

    def check(self) -> None:
        """Raise :class:`DataIntegrityError` if a file is missing or its sha256 changed since it was recorded."""
        for p, digest in ((self.path, self.sha256), (self.items_path, self.items_sha256)):
            if p is None:
                continue
            if not Path(p).is_file():
                raise DataIntegrityError(f"{p}: the run's data file is missing (expected sha256 {digest}).")
            found = sha256_file(Path(p))
            if found != digest:
                raise DataIntegrityError(
                    f"{p}: sha256 must be {digest} (the file the run was trained on). Found {found}: the file changed."
                )

    def read(self, *, progress: bool = True) -> LoadReport:
        """:func:`read_interactions` with the recorded settings (no hash check)."""
        return read_interactions(self.path, self.columns, items=self.items_path, items_spec=self.items,
                                 dedupe=self.dedupe, progress=progress)

    def load(self, *, progress: bool = True) -> Interactions:
        """Check the hashes (:meth:`check`), then load the data exactly as at training time."""
        self.check()
        return load_interactions(self.path, self.columns, items=self.items_path, items_spec=self.items,
                                 dedupe=self.dedupe, progress=progress)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``config.json``'s ``"data"``)."""
        return {"path": self.path, "sha256": self.sha256, "format": self.format, "columns": self.columns.to_dict(),
                "items_path": self.items_path, "items_sha256": self.items_sha256, "items": self.items.to_dict(),
                "dedupe": self.dedupe}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DataSource:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError`` naming them."""
        _check_keys(raw, {"path", "sha256", "format", "columns", "items_path", "items_sha256", "items", "dedupe"},
                    "data")
        return cls(path=raw["path"], sha256=raw["sha256"], format=raw["format"],
                   columns=ColumnSpec.from_dict(raw["columns"]), items_path=raw["items_path"],
                   items_sha256=raw["items_sha256"], items=ItemsSpec.from_dict(raw["items"]),
                   dedupe=bool(raw["dedupe"]))
