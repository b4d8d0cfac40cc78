"""privrec: on-device recommendations whose users' data never leave the phone.

Subpackages: :mod:`privrec.sdk` (data, model, training, privacy, secure aggregation),
:mod:`privrec.export` (Core ML, TFLite, ONNX bundles), :mod:`privrec.runtime` (the on-device reference
runtime) and :mod:`privrec.server_stub` (the aggregation server).

The founding document's API is available at the top level, imported lazily so that ``import privrec``
stays light: ``from privrec import FederatedRecommendationSystem``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = ["FederatedClient", "FederatedRecommendationSystem", "__version__"]

_LAZY = {
    "FederatedClient": "privrec.sdk.federated.facade",
    "FederatedRecommendationSystem": "privrec.sdk.federated.facade",
}


def __getattr__(name: str) -> Any:
    """Import the facade classes on first use (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'privrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
