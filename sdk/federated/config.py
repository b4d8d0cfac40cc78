"""The settings of a federated run (frozen, validated on construction).

Privacy parameters are validated by :class:`privrec.sdk.privacy.DPConfig` (the same checks and messages);
:meth:`FederatedConfig.dp_config` builds it.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Literal

from ..privacy import DPConfig, DPMode, PrivacyWarning
from ..privacy._validate import (
    check_clip_norm,
    check_delta,
    check_nonnegative,
    check_positive,
    check_rounds,
    check_sample_rate,
)
from ..reconstruct import FinetuneConfig
from ..validation import check_config_keys, check_positive_int, check_probability

__all__ = ["FederatedConfig", "ItemFeatures"]

ItemFeatures = Literal["none", "genre"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class FederatedConfig:
    """A federated training run: rounds, sampling, clipping, DP, server optimizer, model, evaluation.

    The defaults are a free item table (d = 32) at ε = 8 (δ = 1e-4), every update clipped to C = 1, FedAvg
    η_s = 0.5 with momentum 0.9: the plain layout the aggregation server runs. The privacy benchmark's
    tuned per-ε settings, which tie the table to public genre features, are
    :func:`privrec.benchmarks.privacy.bench_config`.

    Attributes:
        rounds: T, the number of rounds planned (> 0).
        sample_rate: q in (0, 1], the Poisson rate at which each training device joins a round.
        clip_norm: C > 0, the L2 bound of one device's update (the initial C with adaptive clipping).
        local_lr: η_local > 0; a device's update is ``−η_local ·`` its gradient.
        bias_scale: the bias block's step is ``bias_scale · η_local`` (how much of the clip budget the
            item bias — popularity, the strongest signal under heavy noise — gets).
        server_optimizer: ``"fedavg"`` (with ``server_momentum``) or ``"fedadam"`` (``beta1``, ``beta2``, ``tau``).
        server_lr: η_s > 0.
        dp_mode: ``"central"``, ``"distributed"`` or ``"off"`` (``"off"`` warns and is recorded).
        noise_multiplier: Z ≥ 0, or None to calibrate Z to ``target_epsilon`` over ``rounds`` rounds at q.
        target_epsilon: the ε budget (> 0) or None. With ``noise_multiplier`` given it is a pure budget:
            rounds that would exceed it are not run.
        delta: δ in (0, 1); choose δ < 1/(number of users).
        on_budget_exceeded: ``"stop"`` (end training cleanly, with a message) or ``"raise"``
            (:class:`~privrec.sdk.errors.PrivacyBudgetExceededError`).
        adaptive_clipping: adapt C to the ``target_unclipped_quantile`` of update norms (Andrew et al. 2021).
        count_noise_std: σ_b for adaptive clipping; None = expected cohort / 20 (the paper's suggestion).
        secure_noise: draw DP noise from the secure generator; False (default for simulations) uses a
            generator seeded from the run seed — reproducible, **not secure**, warned and recorded.
        min_cohort_fraction: distributed mode: each device's share is sized for
            n = ⌊fraction · q·N⌋ devices; rounds with fewer sampled devices are aborted (not applied, but
            accounted), so the sum never carries less than Z·C.
        eval_every: evaluate the held-out users every this many rounds (and after the last one).
        dim, init_std, recency_half_life: the model (embedding size, initial std of E and W, label
            recency weighting; the user-vector L2 is ``finetune.l2``).
        item_features: ``"none"`` (free item table) or ``"genre"`` (public genre/decade features F with
            learned weights W, ``V = E + F W``; see :mod:`.side_info`).
        free_embedding: train a free item table E (with ``item_features="genre"``, False ties V to F W).
        train_bias: train the item bias.
        finetune: the on-device reconstruction (also exported with the model).
        heldout_fraction, heldout_seed: the users held out of training entirely.
    """

    rounds: int = 150
    sample_rate: float = 0.2
    clip_norm: float = 1.0
    local_lr: float = 10.0
    bias_scale: float = 1.0
    server_optimizer: Literal["fedavg", "fedadam"] = "fedavg"
    server_lr: float = 0.5
    server_momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    dp_mode: DPMode = "central"
    noise_multiplier: float | None = None
    target_epsilon: float | None = 8.0
    delta: float = 1e-4
    on_budget_exceeded: Literal["stop", "raise"] = "stop"
    adaptive_clipping: bool = False
    target_unclipped_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    count_noise_std: float | None = None
    secure_noise: bool = False
    min_cohort_fraction: float = 0.8
    eval_every: int = 25
    dim: int = 32
    init_std: float = 0.1
    recency_half_life: float | None = 10.0
    item_features: ItemFeatures = "none"
    free_embedding: bool = True
    train_bias: bool = True
    finetune: FinetuneConfig = dataclasses.field(default_factory=lambda: FinetuneConfig(steps=10, lr=0.05, l2=0.5, calls=10))
    heldout_fraction: float = 0.1
    heldout_seed: int = 0

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("rounds", check_rounds(self.rounds))
        put("sample_rate", check_sample_rate(self.sample_rate))
        put("clip_norm", check_clip_norm(self.clip_norm))
        put("local_lr", check_positive(self.local_lr, "local_lr"))
        put("bias_scale", check_positive(self.bias_scale, "bias_scale"))
        put("server_lr", check_positive(self.server_lr, "server_lr"))
        put("tau", check_positive(self.tau, "tau"))
        put("delta", check_delta(self.delta))
        for name in ("server_momentum", "beta1", "beta2"):
            v = check_nonnegative(getattr(self, name), name)
            if v >= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1). Found {v}.")
        if self.server_optimizer not in ("fedavg", "fedadam"):
            raise ValueError(f"`server_optimizer` must be 'fedavg' or 'fedadam'. Found {self.server_optimizer!r}.")
        if self.dp_mode not in ("central", "distributed", "off"):
            raise ValueError(f"`dp_mode` must be 'central', 'distributed' or 'off'. Found {self.dp_mode!r}.")
        if self.on_budget_exceeded not in ("stop", "raise"):
            raise ValueError(f"`on_budget_exceeded` must be 'stop' or 'raise'. Found {self.on_budget_exceeded!r}.")
        if self.item_features not in ("none", "genre"):
            raise ValueError(f"`item_features` must be 'none' or 'genre'. Found {self.item_features!r}.")
        if not self.free_embedding and self.item_features == "none":
            raise ValueError("`free_embedding=False` needs `item_features='genre'`: the item table would be empty.")
        for name in ("adaptive_clipping", "secure_noise", "free_embedding", "train_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be a bool. Found {type(getattr(self, name)).__name__}.")
        put("eval_every", check_positive_int(self.eval_every, "eval_every"))
        put("dim", check_positive_int(self.dim, "dim"))
        put("init_std", check_positive(self.init_std, "init_std"))
        put("min_cohort_fraction", check_probability(self.min_cohort_fraction, "min_cohort_fraction"))
        put("heldout_fraction", check_probability(self.heldout_fraction, "heldout_fraction", high_open=True))
        if self.recency_half_life is not None:
            put("recency_half_life", check_positive(self.recency_half_life, "recency_half_life"))
        if isinstance(self.finetune, dict):
            put("finetune", FinetuneConfig(**self.finetune))
        if not isinstance(self.finetune, FinetuneConfig):
            raise TypeError(f"`finetune` must be a FinetuneConfig. Found {type(self.finetune).__name__}.")
        if self.dp_mode == "off":
            if self.noise_multiplier is not None or self.target_epsilon is not None:
                raise ValueError(
                    "`noise_multiplier` and `target_epsilon` must be None when dp_mode='off'. Found "
                    f"noise_multiplier={self.noise_multiplier}, target_epsilon={self.target_epsilon}."
                )
        elif self.noise_multiplier is None and self.target_epsilon is None:
            raise ValueError(f"dp_mode={self.dp_mode!r} needs `noise_multiplier` or `target_epsilon`. Found neither.")
        # DPConfig repeats the privacy checks with the privacy package's messages (and warns for mode off).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrivacyWarning)
            self.dp_config(expected_devices=1.0)

    def dp_config(self, *, expected_devices: float, noise_seed: int = 0) -> DPConfig:
        """The :class:`DPConfig` of this run (``expected_devices`` = q·N sets the default σ_b; ``noise_seed``
        seeds the insecure generator when ``secure_noise`` is False)."""
        private = self.dp_mode != "off"
        calibrate = private and self.noise_multiplier is None
        count_std = None
        if self.adaptive_clipping and private:
            count_std = self.count_noise_std if self.count_noise_std is not None else max(expected_devices / 20.0, 1e-3)
        return DPConfig(
            mode=self.dp_mode,
            noise_multiplier=self.noise_multiplier if private else None,
            target_epsilon=self.target_epsilon if calibrate else None,
            rounds=self.rounds,
            sample_rate=self.sample_rate,
            clip_norm=self.clip_norm,
            delta=self.delta,
            adaptive_clipping=self.adaptive_clipping and private,
            target_unclipped_quantile=self.target_unclipped_quantile,
            clip_learning_rate=self.clip_learning_rate,
            count_noise_std=count_std,
            secure_noise=self.secure_noise or not private,
            noise_seed=None if (self.secure_noise or not private) else noise_seed,
        )

    @property
    def epsilon_budget(self) -> float | None:
        """The ε no run may exceed (``target_epsilon``), or None (no budget: mode off or a Z-only run)."""
        return self.target_epsilon if self.dp_mode != "off" else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``config.json``'s ``"federated"``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FederatedConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        data = check_config_keys(raw, cls, "federated")
        if isinstance(data.get("finetune"), dict):
            data["finetune"] = FinetuneConfig(**data["finetune"])
        return cls(**data)

    def expected_cohort(self, num_devices: int) -> float:
        """q·N, the expected number of devices per round (the fixed DP-FedAvg denominator,
        :func:`~privrec.sdk.federated.round.cohort_denominator`)."""
        from .round import cohort_denominator

        return cohort_denominator(sample_rate=self.sample_rate, population=num_devices)
