"""privrec.sdk.federated: federated training with user-level DP (DESIGN §5) and the founding document's API.

* :mod:`.device` — one device's round (reconstruct ``u``, update, clip, noise share), transport-independent;
  :func:`cohort_update_sum`, the same for a batch of devices, summed.
* :mod:`.params` — the global parameters as a flat vector (``V = E + F W``, ``b``).
* :mod:`.server_opt` — FedAvg with momentum, FedAdam (Reddi et al. 2021).
* :mod:`.config` — :class:`FederatedConfig`.
* :mod:`.simulate` — :func:`simulate_federated`, the vectorised DP-FedAvg simulation.
* :mod:`.run` — :func:`train_federated_run` (``privrec train --mode federated``).
* :mod:`.privacy_bench` — the privacy–utility benchmark (``privrec bench privacy``).
* :mod:`.facade` — :class:`FederatedRecommendationSystem`, :class:`FederatedClient` (ORIGIN.md Quick Start).
"""

from .config import FederatedConfig
from .device import CohortSum, DeviceStats, DeviceUpdate, RoundConfig, cohort_update_sum, device_labels, device_update
from .facade import FederatedClient, FederatedRecommendationSystem, RoundSummary
from .params import ParamLayout
from .server_opt import FedAdam, FedAvgM, ServerOptimizer, make_server_optimizer
from .simulate import FederatedResult, simulate_federated

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
    "ParamLayout",
    "RoundConfig",
    "RoundSummary",
    "ServerOptimizer",
    "cohort_update_sum",
    "device_labels",
    "device_update",
    "make_server_optimizer",
    "simulate_federated",
]
