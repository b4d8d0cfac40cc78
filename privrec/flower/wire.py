"""The typed contract between the ServerApp and a device's ClientApp, carried in Flower's records.

Flower's ``SecAggPlusWorkflow`` drives the devices through the legacy ``FitIns``/``FitRes`` records
(``flwr.compat.common.recorddict_compat``): the server's instruction rides in ``FitIns`` and the
device's masked input is read from ``FitRes``. Both directions are frozen dataclasses here, shared by both
sides, whose decoders refuse unknown, missing or mistyped fields:

* :class:`TrainInstruction` — the round's :class:`~privrec.sdk.federated.wire.RoundParams` (the same
  contract the HTTP server sends), the model the round runs on — its shape (items × d), the global
  parameters as one flat ``float32[D]`` array in the :class:`~privrec.sdk.federated.params.ParamLayout`
  order and, for a table tied to public item features, those features (what a bundle ships) — and the
  :class:`~privrec.sdk.recipe.ReconstructionRecipe` the device rebuilds its user vector with (a bundle
  manifest's ``finetune`` block).
* :class:`DeviceContribution` — the device's secure-aggregation input
  (:func:`~privrec.sdk.federated.round.aggregation_input`), weight 1. Nothing else leaves the device: its
  loss and norm stay local, its user vector never exists outside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.common import Code, FitIns, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from numpy.typing import NDArray

from privrec.sdk.federated.params import ParamLayout
from privrec.sdk.federated.wire import RoundParams, WireError
from privrec.sdk.recipe import ReconstructionRecipe

__all__ = ["DeviceContribution", "TrainInstruction"]

_RECIPE_KEYS = frozenset({"steps", "lr", "l2", "calls", "recency_half_life"})


def _float_array(array: NDArray[Any], what: str) -> NDArray[np.float32]:
    if array.dtype.kind != "f" or not np.isfinite(array).all():
        raise WireError(f"{what} must be a finite float array. Found dtype {array.dtype}.")
    return np.asarray(array).astype(np.float32, copy=False)


def _single_array(parameters: Any, what: str) -> NDArray[np.float32]:
    arrays = parameters_to_ndarrays(parameters)
    if len(arrays) != 1 or arrays[0].ndim != 1:
        raise WireError(f"{what} must be one flat array. Found {[a.shape for a in arrays]}.")
    return _float_array(arrays[0], what)


@dataclass(frozen=True, kw_only=True)
class TrainInstruction:
    """What the server tells a device of a round (module docstring).

    Attributes:
        round: the round's public parameters.
        recipe: how the device rebuilds its user vector.
        num_items, dim: the model's shape (n items × d).
        params: the flat global parameters ``float32[D]``.
        features: the public item features ``float32[n, f]`` when ``round.num_features > 0``, else None.
    """

    round: RoundParams
    recipe: ReconstructionRecipe
    num_items: int
    dim: int
    params: NDArray[np.float32]
    features: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        layout = self.layout()  # checks the features against the round's layout
        if self.params.shape != (layout.size,):
            raise WireError(f"train instruction: parameters must have shape ({layout.size},). Found {self.params.shape}.")

    def layout(self) -> ParamLayout:
        """The layout of :attr:`params` (and of the device's update)."""
        try:
            return self.round.layout(num_items=self.num_items, dim=self.dim, features=self.features)
        except (TypeError, ValueError) as exc:
            raise WireError(f"train instruction: {exc}") from None

    def to_fitins(self) -> FitIns:
        """The instruction as Flower's ``FitIns`` (what ``Strategy.configure_fit`` returns)."""
        config: dict[str, bool | bytes | float | int | str] = {
            "round": json.dumps(self.round.to_dict()),
            "recipe": json.dumps(self.recipe.to_manifest()),
            "shape": json.dumps([self.num_items, self.dim]),
        }
        arrays = [np.ascontiguousarray(self.params, np.float32)]
        if self.features is not None:
            arrays.append(np.ascontiguousarray(self.features, np.float32))
        return FitIns(ndarrays_to_parameters(arrays), config)

    @classmethod
    def from_fitins(cls, fitins: FitIns) -> TrainInstruction:
        """Inverse of :meth:`to_fitins`; raises :class:`~privrec.sdk.federated.wire.WireError` for anything else."""
        config = dict(fitins.config)
        if set(config) != {"round", "recipe", "shape"}:
            raise WireError(f"train instruction: config keys must be ['recipe', 'round', 'shape']. Found {sorted(config)}.")
        try:
            round_raw, recipe_raw, shape = (json.loads(str(config[k])) for k in ("round", "recipe", "shape"))
        except json.JSONDecodeError as exc:
            raise WireError(f"train instruction: not JSON ({exc}).") from None
        if not (isinstance(shape, list) and len(shape) == 2 and all(type(v) is int and v > 0 for v in shape)):
            raise WireError(f"train instruction: `shape` must be [num_items, dim], positive ints. Found {shape!r}.")
        if not isinstance(recipe_raw, dict) or set(recipe_raw) != _RECIPE_KEYS:
            found = sorted(recipe_raw) if isinstance(recipe_raw, dict) else type(recipe_raw).__name__
            raise WireError(f"train instruction: recipe keys must be {sorted(_RECIPE_KEYS)}. Found {found}.")
        try:
            recipe = ReconstructionRecipe.from_manifest(recipe_raw)
        except (TypeError, ValueError) as exc:
            raise WireError(f"train instruction: recipe: {exc}") from None
        arrays = parameters_to_ndarrays(fitins.parameters)
        if len(arrays) not in (1, 2) or arrays[0].ndim != 1 or (len(arrays) == 2 and arrays[1].ndim != 2):
            raise WireError(f"train instruction: expected [params (D,)] or [params, features (n, f)]. "
                            f"Found {[a.shape for a in arrays]}.")
        params = _float_array(arrays[0], "train instruction: parameters")
        features = _float_array(arrays[1], "train instruction: features") if len(arrays) == 2 else None
        return cls(round=RoundParams.from_dict(round_raw), recipe=recipe, num_items=shape[0], dim=shape[1],
                   params=params, features=features)


@dataclass(frozen=True)
class DeviceContribution:
    """A device's secure-aggregation input ``float32[D (+1)]`` (module docstring)."""

    vector: NDArray[np.float32]

    def to_fitres(self) -> FitRes:
        """As Flower's ``FitRes`` with ``num_examples = 1`` (``secaggplus_mod`` masks it; the workflow's
        weighted mean over k survivors times k is their sum)."""
        return FitRes(Status(Code.OK, ""), ndarrays_to_parameters([np.ascontiguousarray(self.vector, np.float32)]), 1, {})

    @classmethod
    def from_fitres(cls, fitres: FitRes, *, length: int) -> DeviceContribution:
        """Inverse of :meth:`to_fitres` for a vector of ``length`` (weight 1 only)."""
        if fitres.num_examples != 1:
            raise WireError(f"device contribution: `num_examples` must be 1. Found {fitres.num_examples}.")
        vector = _single_array(fitres.parameters, "device contribution")
        if vector.shape != (length,):
            raise WireError(f"device contribution: the vector must have shape ({length},). Found {vector.shape}.")
        return cls(vector)
