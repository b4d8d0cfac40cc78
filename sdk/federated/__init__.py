"""privrec.sdk.federated: federated training with user-level DP, and the founding document's API.

* :mod:`.device` — one device's round (reconstruct ``u`` with the recipe through the exported signatures,
  update, clip, noise share): numpy only, what every device runs.
* :mod:`.round` — :func:`finish_round`, the server's end of a round (noise, cohort denominator, server
  optimizer, adaptive clipping, ledger event), called by the simulation, the facade and the HTTP server.
* :mod:`.wire` — the typed messages a device and a server exchange about a round (:class:`RoundParams`).
* :mod:`.params` — the global parameters as a flat vector (``V = E + F W``, ``b``): the only flat layout.
* :mod:`.server_opt` — FedAvg with momentum, FedAdam (Reddi et al. 2021).
* :mod:`.config` — :class:`FederatedConfig`.
* :mod:`.batched` — :func:`cohort_update_sum`, the device update for a batch of devices, summed (torch).
* :mod:`.simulate` — :func:`simulate_federated`, the vectorised DP-FedAvg simulation (torch).
* :mod:`.run` — :func:`train_federated_run` (``privrec train --mode federated``).
* :mod:`.facade` — :class:`FederatedRecommendationSystem`, :class:`FederatedClient` (the founding
  document's Quick Start API).

The torch-backed names, the config and the facade are imported on first use (PEP 562), so a device that
imports the device path never loads torch or the accountant (dp-accounting, scipy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privrec._lazy import lazy_exports

from .device import DeviceStats, DeviceUpdate, NumpySignatures, RoundConfig, SignatureModel, device_update, update_from_scores
from .params import ParamLayout
from .round import RoundOutcome, RoundSetup, aggregation_input, cohort_denominator, finish_round, split_aggregate
from .server_opt import FedAdam, FedAvgM, ServerOptimizer, make_server_optimizer
from .wire import RoundParams

if TYPE_CHECKING:
    from .batched import CohortSum, cohort_update_sum
    from .config import FederatedConfig
    from .facade import FederatedClient, FederatedRecommendationSystem, RoundSummary
    from .result import FederatedResult
    from .simulate import simulate_federated

__all__ = [
    "CohortSum",
    "DeviceStats",
    "DeviceUpdate",
    "FedAdam",
    "FedAvgM",
    "FederatedClient",
    "FederatedConfig",
    "FederatedRecommendationSystem",
    "FederatedResult",
    "NumpySignatures",
    "ParamLayout",
    "RoundConfig",
    "RoundOutcome",
    "RoundParams",
    "RoundSetup",
    "RoundSummary",
    "ServerOptimizer",
    "SignatureModel",
    "aggregation_input",
    "cohort_denominator",
    "cohort_update_sum",
    "device_update",
    "finish_round",
    "make_server_optimizer",
    "simulate_federated",
    "split_aggregate",
    "update_from_scores",
]

_LAZY = {
    "FederatedConfig": ".config",
    "CohortSum": ".batched",
    "cohort_update_sum": ".batched",
    "FederatedResult": ".result",
    "simulate_federated": ".simulate",
    "FederatedClient": ".facade",
    "FederatedRecommendationSystem": ".facade",
    "RoundSummary": ".facade",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
