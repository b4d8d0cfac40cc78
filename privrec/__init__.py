"""privrec: on-device recommendations whose users' data never leave the phone.

Subpackages: :mod:`privrec.sdk` (data, model, training, privacy, secure aggregation),
:mod:`privrec.export` (Core ML, TFLite, ONNX bundles), :mod:`privrec.runtime` (the on-device reference
runtime) and :mod:`privrec.server_stub` (the aggregation server).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
