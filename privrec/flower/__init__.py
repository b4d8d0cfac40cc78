"""privrec.flower: privrec as a Flower App — the same device and server logic on Flower's engines.

Glue only: a device's round is :func:`privrec.sdk.federated.device_update`, the end of a round is
:func:`privrec.sdk.federated.finish_round`, ε comes from :mod:`privrec.sdk.privacy`, the RUN_DIR and the
bundle from :mod:`privrec.sdk.federated.run` and :mod:`privrec.export`. Flower contributes the transport,
the simulation and deployment engines, and secure aggregation (``SecAggPlusWorkflow`` + ``secaggplus_mod``).

* :mod:`.client_app` — ``app``, the ClientApp (one device per SuperNode, behind ``secaggplus_mod``).
* :mod:`.server_app` — ``app``, the ServerApp; its rounds are :mod:`.server`.
* :mod:`.aggregation` — a round's sum through SecAgg+ (or, warned, in the clear).
* :mod:`.wire` — :class:`TrainInstruction` and :class:`DeviceContribution`, the typed messages.
* :mod:`.partition` — partition = user: which history a SuperNode holds.
* :mod:`.settings` — :class:`FlowerSettings`, read from the app's run config.

Everything is imported on first use (PEP 562): importing ``privrec.flower`` loads neither flwr nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privrec._lazy import lazy_exports

if TYPE_CHECKING:
    from .aggregation import Aggregate, quantization_range
    from .partition import Population, load_population
    from .server import run_rounds, server_main
    from .settings import FlowerSettings, run_config_overrides
    from .wire import DeviceContribution, TrainInstruction

__all__ = [
    "Aggregate",
    "DeviceContribution",
    "FlowerSettings",
    "Population",
    "TrainInstruction",
    "load_population",
    "quantization_range",
    "run_config_overrides",
    "run_rounds",
    "server_main",
]

_LAZY = {
    "Aggregate": ".aggregation",
    "quantization_range": ".aggregation",
    "Population": ".partition",
    "load_population": ".partition",
    "run_rounds": ".server",
    "server_main": ".server",
    "FlowerSettings": ".settings",
    "run_config_overrides": ".settings",
    "DeviceContribution": ".wire",
    "TrainInstruction": ".wire",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
