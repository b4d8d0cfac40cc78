"""privrec: on-device recommendations whose users' data never leave the phone.

Subpackages: :mod:`privrec.sdk` (data, model, training, privacy, secure aggregation),
:mod:`privrec.export` (Core ML, TFLite, ONNX bundles), :mod:`privrec.runtime` (the on-device reference
runtime) and :mod:`privrec.server_stub` (the aggregation server).

The founding document's API is available at the top level, imported lazily so that ``import privrec``
stays light: ``from privrec import FederatedRecommendationSystem``.
"""

from __future__ import annotations

from privrec._lazy import lazy_exports

__version__ = "0.1.0"

__all__ = ["FederatedClient", "FederatedRecommendationSystem", "__version__"]

_LAZY = {
    "FederatedClient": "privrec.sdk.federated.facade",
    "FederatedRecommendationSystem": "privrec.sdk.federated.facade",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
