"""pyarrow's modules in one place (imported on first use by the file loaders: pyarrow is not light)."""

from __future__ import annotations

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pcsv  # type: ignore[import-untyped]
import pyarrow.json as pjson  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

__all__ = ["pa", "pc", "pcsv", "pjson", "pq"]
