"""The typed contract between a device and the aggregation server about a round.

Everything that crosses the wire about a round's *parameters* is a frozen dataclass here, with
``to_dict``/``from_dict`` that refuse unknown and missing keys and wrong types; both sides import it, so
neither builds or reads a dict by hand. (The secure-aggregation messages themselves are
:mod:`privrec.sdk.secagg.messages`.)

* :class:`RoundParams` — what the server tells every device of a round once enrolment closes: how to
  compute its update (C, η_local, bias scale, noise-share stds), how to encode it (fixed-point range and
  cohort size), and which global blocks it updates (the layout).
* :class:`DeviceAction` — what the server's ``request`` endpoint tells a device to do next.
* :data:`ENROLLING` — the phase of a round before its secure-aggregation stages
  (:class:`privrec.sdk.secagg.ServerStage`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ..secagg.encoding import FixedPointEncoder
from .device import RoundConfig
from .params import ParamLayout
from .round import RoundSetup

__all__ = ["ENROLLING", "DeviceAction", "RoundParams", "WireError"]

#: A round's phase while devices check in (before the first secure-aggregation stage).
ENROLLING = "enrolling"


class WireError(ValueError):
    """A round message that is not exactly what the contract says (unknown, missing or mistyped fields)."""


class DeviceAction:
    """What a device does next in a round (the ``action`` of the server's ``request`` answer)."""

    RESPOND = "respond"  #: answer the stage's server message
    WAIT = "wait"  #: poll again
    DONE = "done"  #: the round completed
    ABORTED = "aborted"  #: the round aborted (nothing released)
    EXCLUDED = "excluded"  #: not, or no longer, in the round

    ALL: tuple[str, ...] = (RESPOND, WAIT, DONE, ABORTED, EXCLUDED)
    FINAL: tuple[str, ...] = (DONE, ABORTED, EXCLUDED)


def _number(raw: dict[str, Any], key: str) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"round params: `{key}` must be a number. Found {type(value).__name__}.")
    if not math.isfinite(float(value)):
        raise WireError(f"round params: `{key}` must be finite. Found {value}.")
    return float(value)


def _integer(raw: dict[str, Any], key: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"round params: `{key}` must be an int. Found {type(value).__name__}.")
    return value


def _flag(raw: dict[str, Any], key: str) -> bool:
    value = raw[key]
    if not isinstance(value, bool):
        raise WireError(f"round params: `{key}` must be a bool. Found {type(value).__name__}.")
    return value


@dataclass(frozen=True, kw_only=True)
class RoundParams:
    """The public parameters of one round, the same for every device.

    Attributes:
        round_id: the round.
        model_version: the server model the round runs on (the device updates *that* bundle's parameters).
        clip_norm, local_lr, bias_scale, noise_std, count_noise_std: the device's :class:`RoundConfig`.
        adaptive: whether the device appends its adaptive-clipping count report to its vector.
        clip_range, max_clients: the fixed-point encoding (:class:`FixedPointEncoder`).
        free_embedding, train_bias, num_features: the global blocks the update covers
            (:class:`ParamLayout`; the F of ``num_features > 0`` ships in the bundle).
    """

    round_id: str
    model_version: int
    clip_norm: float
    local_lr: float
    bias_scale: float
    noise_std: float
    count_noise_std: float
    adaptive: bool
    clip_range: float
    max_clients: int
    free_embedding: bool
    train_bias: bool
    num_features: int

    _NUMBERS: ClassVar[tuple[str, ...]] = (
        "clip_norm", "local_lr", "bias_scale", "noise_std", "count_noise_std", "clip_range")
    _INTEGERS: ClassVar[tuple[str, ...]] = ("model_version", "max_clients", "num_features")
    _FLAGS: ClassVar[tuple[str, ...]] = ("adaptive", "free_embedding", "train_bias")

    def __post_init__(self) -> None:
        if not isinstance(self.round_id, str) or not 0 < len(self.round_id) <= 64:
            raise WireError(f"round params: `round_id` must be a string of 1 to 64 characters. Found {self.round_id!r}.")
        if self.model_version < 0 or self.num_features < 0:
            raise WireError("round params: `model_version` and `num_features` must be >= 0.")
        if not self.free_embedding and self.num_features == 0:
            raise WireError("round params: the layout needs `free_embedding` or `num_features > 0`: found neither.")
        try:
            self.round_config()
            self.encoder()
        except (TypeError, ValueError) as exc:
            raise WireError(f"round params: {exc}") from None

    @classmethod
    def from_setup(
        cls, setup: RoundSetup, *, round_id: str, model_version: int, max_clients: int, layout: ParamLayout
    ) -> RoundParams:
        """The parameters devices get for a round of ``setup`` with at most ``max_clients`` participants."""
        config = setup.device_config()
        return cls(
            round_id=round_id, model_version=model_version, clip_norm=config.clip_norm, local_lr=config.local_lr,
            bias_scale=config.bias_scale, noise_std=config.noise_std, count_noise_std=config.count_noise_std,
            adaptive=setup.adaptive, clip_range=setup.clip_range, max_clients=max_clients,
            free_embedding=layout.free_embedding, train_bias=layout.train_bias, num_features=layout.num_features,
        )

    def round_config(self) -> RoundConfig:
        """What the device computes its update with."""
        return RoundConfig(clip_norm=self.clip_norm, local_lr=self.local_lr, bias_scale=self.bias_scale,
                           noise_std=self.noise_std, count_noise_std=self.count_noise_std)

    def encoder(self) -> FixedPointEncoder:
        """The round's fixed-point encoding."""
        return FixedPointEncoder(clip_range=self.clip_range, max_clients=self.max_clients)

    def layout(self, *, num_items: int, dim: int, features: NDArray[np.float32] | None) -> ParamLayout:
        """The update's layout for a model of ``num_items × dim`` with public item ``features`` (from the bundle).

        Raises :class:`WireError` when the bundle's features do not have ``num_features`` columns.
        """
        width = 0 if features is None else int(features.shape[1])
        if width != self.num_features:
            raise WireError(
                f"the round updates {self.num_features} item-feature columns; the bundle carries {width}."
            )
        return ParamLayout(num_items=num_items, dim=dim, free_embedding=self.free_embedding,
                           features=features if self.num_features else None, train_bias=self.train_bias)

    def vector_length(self, layout: ParamLayout) -> int:
        """D (+1 for the count report with adaptive clipping): the secure-aggregation vector's length."""
        return layout.size + (1 if self.adaptive else 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: object) -> RoundParams:
        """Inverse of :meth:`to_dict`; unknown, missing or mistyped keys raise :class:`WireError`."""
        if not isinstance(raw, dict):
            raise WireError(f"round params must be a JSON object. Found {type(raw).__name__}.")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(raw) - set(names))
        missing = sorted(set(names) - set(raw))
        if unknown or missing:
            raise WireError(f"round params: unknown keys {unknown}, missing keys {missing}.")
        if not isinstance(raw["round_id"], str):
            raise WireError(f"round params: `round_id` must be a string. Found {type(raw['round_id']).__name__}.")
        values: dict[str, Any] = {"round_id": raw["round_id"]}
        values |= {k: _number(raw, k) for k in cls._NUMBERS}
        values |= {k: _integer(raw, k) for k in cls._INTEGERS}
        values |= {k: _flag(raw, k) for k in cls._FLAGS}
        return cls(**values)
