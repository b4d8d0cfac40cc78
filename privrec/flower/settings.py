"""The Flower App's settings: its ``[tool.flwr.app.config]`` (Flower's run config) read into frozen records.

Flower hands a ServerApp and a ClientApp the same run config: the app's ``pyproject.toml`` table
``[tool.flwr.app.config]`` fused with ``flwr run --run-config`` overrides, flattened to dotted keys of
bool, int, float or str. :meth:`FlowerSettings.from_run_config` reads it once for both sides:

* ``federated.*`` — the fields of :class:`~privrec.sdk.federated.config.FederatedConfig` in kebab case
  (``federated.sample-rate``, ``federated.finetune.steps``), the same settings ``privrec train --mode
  federated --config FILE`` takes; TOML has no null, so an optional field set to the string ``"none"`` is
  None. :func:`run_config_overrides` turns a ``privrec train`` config into these keys.
* ``data.*`` — which users the virtual devices are (:mod:`.partition`).
* ``secagg.*`` — Flower's SecAgg+ (``SecAggPlusWorkflow``): on or off, shares, threshold, timeout.
* ``seed``, ``out-dir``, ``bundle-formats``, ``min-nodes``, ``node-wait-seconds``, ``meter-bytes``.

Every key is checked: an unknown key, a missing one or a wrong type raises ``ValueError`` naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # imported on use: a ClientApp reads only `data.*` and should not load the accountant
    from privrec.sdk.federated.config import FederatedConfig

__all__ = ["NONE", "DataSettings", "FlowerSettings", "SecAggSettings", "run_config_overrides"]

#: The run-config spelling of None (TOML has no null).
NONE = "none"

_Scalar = bool | int | float | str



def _optional_fields() -> frozenset[str]:
    """FederatedConfig fields that may be None (written ``"none"`` in the run config)."""
    from privrec.sdk.federated.config import FederatedConfig

    return frozenset(f.name for f in dataclasses.fields(FederatedConfig) if str(f.type).replace(" ", "").endswith("|None"))


def _get(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in raw:
        raise ValueError(f"run config: missing key `{key}`.")
    value = raw[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"run config: `{key}` must be {names}. Found {type(value).__name__} {value!r}.")
    return value


@dataclass(frozen=True, kw_only=True)
class DataSettings:
    """Which users the virtual devices are.

    Attributes:
        dataset: ``"ml-100k"`` (MovieLens-100K from ``privrec data fetch``) or ``"synthetic"``
            (:func:`privrec.sdk.data.synthetic_interactions` with the ``synthetic_*`` settings).
        population: the number of devices (partitions); 0 means one per training user. A larger
            population replicates the training users: partition ``p`` holds user ``p mod N``.
        synthetic_users, synthetic_items, synthetic_rank, synthetic_seed: the synthetic data set.
        heldout_fraction, heldout_seed: the users held out of training (``federated.heldout-fraction`` and
            ``federated.heldout-seed``, the split ``privrec train --mode federated`` makes).
    """

    dataset: str = "ml-100k"
    population: int = 0
    synthetic_users: int = 60
    synthetic_items: int = 200
    synthetic_rank: int = 3
    synthetic_seed: int = 2
    heldout_fraction: float = 0.1
    heldout_seed: int = 0

    _KEYS: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "data.dataset": str, "data.population": int, "data.synthetic-users": int, "data.synthetic-items": int,
        "data.synthetic-rank": int, "data.synthetic-seed": int, "federated.heldout-fraction": (int, float),
        "federated.heldout-seed": int,
    }

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, _Scalar]) -> DataSettings:
        """The ``data.*`` keys and the held-out split of a run config (all a ClientApp needs to find its user)."""
        values = {k.split(".", 1)[1].replace("-", "_"): _get(run_config, k, kind) for k, kind in cls._KEYS.items()}
        values["heldout_fraction"] = float(values["heldout_fraction"])
        return cls(**values)

    def __post_init__(self) -> None:
        if self.dataset not in ("ml-100k", "synthetic"):
            raise ValueError(f"run config: `data.dataset` must be 'ml-100k' or 'synthetic'. Found {self.dataset!r}.")
        if self.population < 0:
            raise ValueError(f"run config: `data.population` must be >= 0. Found {self.population}.")
        for name in ("synthetic_users", "synthetic_items", "synthetic_rank"):
            if getattr(self, name) < 1:
                raise ValueError(f"run config: `data.{name.replace('_', '-')}` must be >= 1. Found {getattr(self, name)}.")


@dataclass(frozen=True, kw_only=True)
class SecAggSettings:
    """Flower's SecAgg+ (``SecAggPlusWorkflow`` on the server, ``secaggplus_mod`` on each device).

    Attributes:
        enabled: False sends every device's clipped update to the server in the clear (warned, and written
            into the ledger's warnings).
        num_shares: SecAgg+ neighbourhood size (the device and its ring neighbours, Bell et al. 2020); a
            round with at most this many devices runs the full mesh.
        reconstruction_threshold: Shamir threshold t (at most the cohort size); keep it above half the
            neighbourhood (an honest-but-curious server, Bell et al. 2020, §3).
        timeout: seconds the server waits for each stage's replies (0: no limit); a silent device drops out.
    """

    enabled: bool = True
    num_shares: int = 11
    reconstruction_threshold: int = 6
    timeout: float = 0.0

    def __post_init__(self) -> None:
        if self.num_shares < 3:
            raise ValueError(f"run config: `secagg.num-shares` must be >= 3. Found {self.num_shares}.")
        if not 2 <= self.reconstruction_threshold < self.num_shares:
            raise ValueError(
                "run config: `secagg.reconstruction-threshold` must be in [2, secagg.num-shares = "
                f"{self.num_shares}). Found {self.reconstruction_threshold}."
            )
        if self.timeout < 0:
            raise ValueError(f"run config: `secagg.timeout` must be >= 0. Found {self.timeout}.")


def _federated(raw: Mapping[str, Any]) -> FederatedConfig:
    """``federated.*`` keys (kebab case, ``finetune.*`` nested, ``"none"`` for None) as a FederatedConfig."""
    from privrec.sdk.federated.config import FederatedConfig

    optional = _optional_fields()
    fields: dict[str, Any] = {}
    finetune: dict[str, Any] = {}
    for key, value in raw.items():
        if not key.startswith("federated."):
            continue
        name = key.removeprefix("federated.").replace("-", "_")
        value = None if value == NONE and name in optional else value
        if name.startswith("finetune."):
            finetune[name.removeprefix("finetune.")] = value
        else:
            fields[name] = value
    if finetune:
        fields["finetune"] = finetune
    try:
        return FederatedConfig.from_dict(fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"run config: federated: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class FlowerSettings:
    """Everything the Flower App reads from its run config (module docstring).

    Attributes:
        federated: the run's privrec settings (rounds, q, C, DP mode and budget, optimizer, model, recipe).
        data: which users the devices are.
        secagg: SecAgg+ settings.
        seed: seeds initialisation, cohort sampling and (with ``federated.secure-noise = false``) the noise,
            exactly as :func:`~privrec.sdk.federated.simulate.simulate_federated`'s ``seed``.
        out_dir: the RUN_DIR the ServerApp writes (``privrec train --mode federated``'s layout), or "" for none.
        bundle_formats: formats of the bundle exported into ``out_dir/bundle`` (``"onnx"``, ``"onnx,tflite"``),
            or "" for none.
        min_nodes: SuperNodes to wait for before round 1 (0: the population).
        node_wait_seconds: how long to wait for them.
        meter_bytes: record the serialised bytes of every message to and from each device in the history.
    """

    federated: FederatedConfig
    data: DataSettings
    secagg: SecAggSettings
    seed: int = 0
    out_dir: str = ""
    bundle_formats: str = "onnx"
    min_nodes: int = 0
    node_wait_seconds: float = 120.0
    meter_bytes: bool = False

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, _Scalar]) -> FlowerSettings:
        """Read Flower's (flattened) run config; raises ``ValueError`` naming an unknown, missing or mistyped key."""
        raw = dict(run_config)
        top: dict[str, type | tuple[type, ...]] = {
            "seed": int, "out-dir": str, "bundle-formats": str, "min-nodes": int, "node-wait-seconds": (int, float),
            "meter-bytes": bool,
        }
        secagg: dict[str, type | tuple[type, ...]] = {
            "secagg.enabled": bool, "secagg.num-shares": int, "secagg.reconstruction-threshold": int,
            "secagg.timeout": (int, float),
        }
        known = set(top) | set(DataSettings._KEYS) | set(secagg)
        unknown = sorted(k for k in raw if k not in known and not k.startswith("federated."))
        if unknown:
            raise ValueError(f"run config: unknown keys {unknown}. Known: {sorted(known)} and federated.*.")

        def pick(spec: dict[str, type | tuple[type, ...]], prefix: str) -> dict[str, Any]:
            return {k.removeprefix(prefix).replace("-", "_"): _get(raw, k, kind) for k, kind in spec.items()}

        values = pick(top, "")
        values["node_wait_seconds"] = float(values["node_wait_seconds"])
        sa = pick(secagg, "secagg.")
        sa["timeout"] = float(sa["timeout"])
        settings = cls(federated=_federated(raw), data=DataSettings.from_run_config(raw),
                       secagg=SecAggSettings(**sa), **values)
        if settings.min_nodes < 0 or settings.node_wait_seconds <= 0:
            raise ValueError("run config: `min-nodes` must be >= 0 and `node-wait-seconds` > 0.")
        return settings


def run_config_overrides(federated: Mapping[str, Any] | FederatedConfig, **top: _Scalar) -> dict[str, _Scalar]:
    """The run-config keys of a ``privrec train --mode federated`` config (a dict of :class:`FederatedConfig`
    fields, or the config) plus top-level keys given as ``out_dir="runs/x"``, ``data_dataset="synthetic"``,
    ``secagg_enabled=False``: what ``flwr run --run-config`` takes (write it with :func:`tomli_w.dumps`)."""
    from privrec.sdk.federated.config import FederatedConfig

    raw = federated.to_dict() if isinstance(federated, FederatedConfig) else dict(federated)
    FederatedConfig.from_dict(dict(raw))  # refuse an invalid config here, not in a SuperNode
    out: dict[str, _Scalar] = {}
    for name, value in raw.items():
        if name == "finetune":
            ft = dict(value) if isinstance(value, Mapping) else dataclasses.asdict(value)
            out |= {f"federated.finetune.{k}": v for k, v in ft.items()}
        else:
            out[f"federated.{name.replace('_', '-')}"] = NONE if value is None else value
    for name, value in top.items():
        group, _, rest = name.partition("_")
        key = f"{group}.{rest.replace('_', '-')}" if group in ("data", "secagg") else name.replace("_", "-")
        out[key] = value
    return out
