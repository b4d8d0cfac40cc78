"""The aggregation server's settings (:class:`ServerConfig`), stored in the database on first start."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Literal

from privrec.sdk.federated.config import FederatedConfig, ItemFeatures
from privrec.sdk.privacy import DPConfig, PrivacyWarning
from privrec.sdk.recipe import ReconstructionRecipe
from privrec.sdk.reconstruct import FinetuneConfig
from privrec.sdk.validation import check_config_keys

__all__ = ["SecurityWarning", "ServerConfig"]


class SecurityWarning(UserWarning):
    """A server setting that weakens its defences (e.g. open registration)."""


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"`{name}` must be a float. Found {type(value).__name__}.")
    if not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"`{name}` must be finite and > 0. Found {value}.")
    return float(value)


def _count(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int. Found {type(value).__name__}.")
    if value < low:
        raise ValueError(f"`{name}` must be >= {low}. Found {value}.")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Settings of one aggregation server (all keyword-only; validated on construction).

    Attributes:
        num_items, dim: shape of the initial item model (used only when the database holds no model).
        init_seed, init_std: seed and std of the initial item table (the bias starts at zero).
        sample_rate: q, the probability with which each registered device joins a round (the device
            draws it with ``secrets``: Poisson sampling, the q the accountant uses).
        population: N of the cohort denominator ``q·N`` every round's sum is divided by
            (:func:`~privrec.sdk.federated.round.cohort_denominator`); None: the devices registered when the
            round opens.
        threshold_fraction: the secure-aggregation threshold is ``t = floor(f * n) + 1`` for n
            participants (clamped to [2, n]); f >= 0.5 keeps t > n / 2 (Bonawitz et al. 2017, §6.2).
        min_participants: a round whose enrolment closes with fewer participants aborts.
        neighbours: k of the SecAgg+ graph (Bell et al. 2020), or None for the full mesh.
        dp: the DP configuration (mode central / distributed / off, Z, clip norm C, δ).
        local_lr: step size of the device's local update (published with each round).
        bias_scale: the bias block's step is ``bias_scale · local_lr`` (published with each round).
        free_embedding, train_bias, item_features: the global blocks (:class:`ParamLayout`): a free item
            table, the item bias, and ``"genre"`` for weights W of public item features F (``V = E + F W``;
            F is given to the server when its database is created, or read from MovieLens-100K).
        finetune, recency_half_life: the reconstruction recipe devices follow; published in every bundle.
        server_optimizer, server_lr, server_momentum, beta1, beta2, tau: the server optimizer
            (:func:`privrec.sdk.federated.server_opt.make_server_optimizer`).
        enroll_timeout_seconds, stage_timeout_seconds: deadlines of enrolment and of each protocol
            stage; a device that has not answered by then counts as dropped.
        admission: ``"code"``: a device registers only with a one-time enrolment code the operator issued
            (``POST /v1/admin/enrolment-codes``); ``"open"``: anyone may register (warned, logged: a
            registration flood can then fill every round with Sybil devices; for closed test networks only).
        enrolment_code_ttl_seconds: how long an issued enrolment code stays valid.
        rate_limit_per_second, rate_limit_burst: each device (by bearer token) and each client address (for
            registration) gets a token bucket of ``burst`` requests refilled at ``per_second``; past it the
            server answers 429 with ``Retry-After``.
        enroll_close_fraction, enroll_grace_seconds: once this fraction of the registered devices has checked
            in and at least ``min_participants`` take part, enrolment closes within ``enroll_grace_seconds``
            (or as soon as everyone has checked in), so a few devices that never check in cannot stall every
            round until the enrolment deadline.
        max_body_bytes: requests with larger bodies are refused with 413.
        auto_rounds: open a new round whenever a device asks and none is running.
        max_rounds: stop opening rounds after this many completed (None: no limit).
    """

    num_items: int = 1682
    dim: int = 32
    init_seed: int = 0
    init_std: float = 0.1
    sample_rate: float = 1.0
    threshold_fraction: float = 0.5
    min_participants: int = 2
    neighbours: int | None = None
    dp: DPConfig = dataclasses.field(
        default_factory=lambda: DPConfig(mode="central", noise_multiplier=1.0, clip_norm=1.0)
    )
    population: int | None = None
    local_lr: float = 1.0
    bias_scale: float = 1.0
    free_embedding: bool = True
    train_bias: bool = True
    item_features: ItemFeatures = "none"
    finetune: FinetuneConfig = dataclasses.field(
        default_factory=lambda: FinetuneConfig(steps=10, lr=0.05, l2=0.5, calls=10)
    )
    recency_half_life: float | None = 10.0
    server_optimizer: Literal["fedavg", "fedadam"] = "fedavg"
    server_lr: float = 1.0
    server_momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    enroll_timeout_seconds: float = 30.0
    stage_timeout_seconds: float = 30.0
    admission: Literal["code", "open"] = "code"
    enrolment_code_ttl_seconds: float = 7 * 24 * 3600.0
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 500
    enroll_close_fraction: float = 0.9
    enroll_grace_seconds: float = 2.0
    max_body_bytes: int = 16 * 1024 * 1024
    auto_rounds: bool = True
    max_rounds: int | None = None

    def __post_init__(self) -> None:
        _count(self.num_items, "num_items", 1)
        _count(self.dim, "dim", 1)
        _count(self.init_seed, "init_seed", 0)
        _positive(self.init_std, "init_std")
        q = _positive(self.sample_rate, "sample_rate")
        if q > 1:
            raise ValueError(f"`sample_rate` must be in (0, 1]. Found {q}.")
        f = self.threshold_fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 <= f < 1.0:
            raise ValueError(f"`threshold_fraction` must be in [0, 1). Found {f!r}.")
        _count(self.min_participants, "min_participants", 2)
        if self.neighbours is not None:
            _count(self.neighbours, "neighbours", 1)
        if not isinstance(self.dp, DPConfig):
            raise TypeError(f"`dp` must be a DPConfig. Found {type(self.dp).__name__}.")
        if self.population is not None:
            _count(self.population, "population", 1)
        for name in ("free_embedding", "train_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be a bool. Found {type(getattr(self, name)).__name__}.")
        if self.item_features not in ("none", "genre"):
            raise ValueError(f"`item_features` must be 'none' or 'genre'. Found {self.item_features!r}.")
        if not self.free_embedding and self.item_features == "none":
            raise ValueError("`free_embedding=False` needs `item_features='genre'`: the item table would be empty.")
        if self.recency_half_life is not None:
            _positive(self.recency_half_life, "recency_half_life")
        if not isinstance(self.finetune, FinetuneConfig):
            raise TypeError(f"`finetune` must be a FinetuneConfig. Found {type(self.finetune).__name__}.")
        if self.server_optimizer not in ("fedavg", "fedadam"):
            raise ValueError(f"`server_optimizer` must be 'fedavg' or 'fedadam'. Found {self.server_optimizer!r}.")
        for name in ("local_lr", "bias_scale", "server_lr", "enroll_timeout_seconds", "stage_timeout_seconds"):
            _positive(getattr(self, name), name)
        _count(self.max_body_bytes, "max_body_bytes", 1024)
        if self.admission not in ("code", "open"):
            raise ValueError(f"`admission` must be 'code' or 'open'. Found {self.admission!r}.")
        for name in ("enrolment_code_ttl_seconds", "rate_limit_per_second", "enroll_grace_seconds"):
            _positive(getattr(self, name), name)
        _count(self.rate_limit_burst, "rate_limit_burst", 1)
        f2 = self.enroll_close_fraction
        if isinstance(f2, bool) or not isinstance(f2, int | float) or not 0.0 < f2 <= 1.0:
            raise ValueError(f"`enroll_close_fraction` must be in (0, 1]. Found {f2!r}.")
        if self.admission == "open":
            warnings.warn(
                "ServerConfig(admission='open'): any client can register devices; a registration flood can fill "
                "rounds with Sybil devices. Use enrolment codes (admission='code') outside closed test networks.",
                SecurityWarning, stacklevel=3,
            )
        if not isinstance(self.auto_rounds, bool):
            raise TypeError(f"`auto_rounds` must be a bool. Found {type(self.auto_rounds).__name__}.")
        if self.max_rounds is not None:
            _count(self.max_rounds, "max_rounds", 1)

    @property
    def recipe(self) -> ReconstructionRecipe:
        """How devices rebuild their user vector (every published bundle's ``finetune`` block)."""
        return ReconstructionRecipe.from_finetune(self.finetune, recency_half_life=self.recency_half_life)

    def threshold(self, participants: int) -> int:
        """t for ``participants`` devices: ``floor(f * n) + 1`` clamped to [2, n]."""
        return max(2, min(participants, math.floor(self.threshold_fraction * participants) + 1))

    @classmethod
    def from_federated(
        cls, federated: FederatedConfig, *, num_items: int, num_devices: int, seed: int = 0, **overrides: Any
    ) -> ServerConfig:
        """The server settings that run ``federated`` (the in-process simulation's config) over HTTP with
        ``num_devices`` devices: the same layout (free table, public features, bias), init, q and cohort
        denominator, C and adaptive clipping, local step and bias scale, server optimizer, DP
        (``federated.dp_config`` with noise seed ``seed``) and reconstruction recipe. Give the server the
        same public item features the simulation used when its database is created."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrivacyWarning)
            dp = federated.dp_config(expected_devices=federated.expected_cohort(num_devices), noise_seed=seed)
        values: dict[str, Any] = {
            "num_items": num_items,
            "dim": federated.dim,
            "init_seed": seed,
            "init_std": federated.init_std,
            "sample_rate": federated.sample_rate,
            "population": num_devices,
            "dp": dp,
            "local_lr": federated.local_lr,
            "bias_scale": federated.bias_scale,
            "free_embedding": federated.free_embedding,
            "train_bias": federated.train_bias,
            "item_features": federated.item_features,
            "finetune": federated.finetune,
            "recency_half_life": federated.recency_half_life,
            "server_optimizer": federated.server_optimizer,
            "server_lr": federated.server_lr,
            "server_momentum": federated.server_momentum,
            "beta1": federated.beta1,
            "beta2": federated.beta2,
            "tau": federated.tau,
            "max_rounds": federated.rounds,
        }
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``dp`` as :meth:`DPConfig.to_dict`)."""
        out = dataclasses.asdict(self)
        out["dp"] = self.dp.to_dict()
        out["finetune"] = dataclasses.asdict(self.finetune)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        raw = check_config_keys(data, cls, "server")
        if isinstance(raw.get("dp"), dict):
            raw["dp"] = DPConfig.from_dict(raw["dp"])
        if isinstance(raw.get("finetune"), dict):
            raw["finetune"] = FinetuneConfig(**raw["finetune"])
        return cls(**raw)
