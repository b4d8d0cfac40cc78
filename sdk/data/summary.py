"""A one-screen summary of an interaction log: sizes, density and history-length quantiles."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .interactions import Interactions

__all__ = ["QUANTILES", "DataSummary", "summarize"]

#: History-length quantiles reported (0 = shortest history, 1 = longest).
QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass(frozen=True)
class DataSummary:
    """Counts of an :class:`Interactions` log.

    Attributes:
        users: users with at least one interaction.
        items: items in the catalog (including items with no interaction).
        items_with_interactions: items that at least one user interacted with.
        interactions: rows kept.
        density: ``interactions / (users × items)``, in [0, 1].
        history_quantiles: interactions per user at each of :data:`QUANTILES` (``"p50"`` etc.).
        evaluable_users: users with at least 3 interactions (leave-one-out holds out their last two).
        time_column: the column that ordered each history, or ``None`` (file order).
        num_features: item feature columns (0 without item features).
    """

    users: int
    items: int
    items_with_interactions: int
    interactions: int
    density: float
    history_quantiles: dict[str, float]
    evaluable_users: int
    time_column: str | None
    num_features: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` rows for a two-column table."""
        q = self.history_quantiles
        return [
            ("users", f"{self.users:,}"),
            ("items (catalog)", f"{self.items:,}"),
            ("items with interactions", f"{self.items_with_interactions:,}"),
            ("interactions", f"{self.interactions:,}"),
            ("density", f"{self.density:.4%}"),
            ("history length min/p25/p50/p75/p90/max",
             " / ".join(f"{q[k]:g}" for k in ("min", "p25", "p50", "p75", "p90", "max"))),
            ("users with ≥ 3 (evaluated)", f"{self.evaluable_users:,}"),
            ("time order", self.time_column or "file order"),
            ("item feature columns", str(self.num_features)),
        ]

    def render(self, *, stderr: bool = False, title: str = "data summary") -> None:
        """Print the summary as a rich table (on stderr with ``stderr=True``)."""
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_header=False)
        table.add_column("", style="bold")
        table.add_column("", justify="right")
        for label, value in self.rows():
            table.add_row(label, value)
        Console(stderr=stderr).print(table)


def _quantile_key(q: float) -> str:
    return {0.0: "min", 1.0: "max"}.get(q, f"p{round(q * 100)}")


def summarize(data: Interactions, *, time_column: str | None = "timestamp") -> DataSummary:
    """The :class:`DataSummary` of ``data`` (history lengths count rows per user)."""
    counts = np.bincount(data.users, minlength=data.num_users)
    counts = counts[counts > 0]
    n_items = data.num_items
    qs = {_quantile_key(q): float(np.quantile(counts, q)) if counts.size else 0.0 for q in QUANTILES}
    return DataSummary(
        users=int(counts.size),
        items=n_items,
        items_with_interactions=int(np.unique(data.items).size),
        interactions=len(data),
        density=float(len(data) / (counts.size * n_items)) if counts.size and n_items else 0.0,
        history_quantiles=qs,
        evaluable_users=int((counts >= 3).sum()),
        time_column=time_column,
        num_features=0 if data.item_feature_names is None else len(data.item_feature_names),
    )
