"""The outcome of a federated run, whoever ran it: torch-free, so Flower's ServerApp (which runs without
torch) returns the same type as the in-process simulation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..model import ItemModel
from ..privacy import PrivacyLedger
from .config import FederatedConfig
from .params import ParamLayout

__all__ = ["FederatedResult"]


@dataclass(frozen=True)
class FederatedResult:
    """The outcome of a simulated federated run.

    Attributes:
        layout: the global parameter layout.
        params: final flat global parameters ``float32[D]``.
        config: the run's settings.
        history: one dict per round (``round``, ``cohort``, ``loss``, ``clip_norm``, ``epsilon``, and every
            ``eval_every`` rounds the held-out validation ``val_full_hr@10`` etc.).
        ledger: the privacy ledger of the rounds that ran.
        noise_multiplier: Z on the update sum (0.0 in mode off).
        rounds_run: rounds actually run (fewer than planned if the budget stopped training).
        stop_reason: why training ended early, or None.
        train_users, heldout_users: the user indices that trained / were held out.
        seconds: wall time.
    """

    layout: ParamLayout
    params: NDArray[np.float32]
    config: FederatedConfig
    history: list[dict[str, Any]]
    ledger: PrivacyLedger
    noise_multiplier: float
    rounds_run: int
    stop_reason: str | None
    train_users: NDArray[np.int64]
    heldout_users: NDArray[np.int64]
    seconds: float

    @property
    def items(self) -> ItemModel:
        """The trained global model (``V = E + F W``, ``b``)."""
        return self.layout.item_model(self.params)
