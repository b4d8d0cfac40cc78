"""privrec.export: the bundle writer, one exporter per format (ONNX, TFLite, Core ML), parity checks.

Importing this package is cheap: format modules (and TensorFlow, coremltools, onnxruntime) load on
first use through the registry in :mod:`privrec.export.base`.
"""

from .base import (
    ArtifactRecord,
    ExportConfig,
    SignatureRunner,
    TensorSpec,
    available_formats,
    get_exporter,
    get_runner_factory,
    register_exporter,
)
from .bundle import (
    export_bundle,
    export_coreml,
    export_format,
    export_onnx,
    export_run,
    export_tflite,
)
from .errors import BundleError
from .manifest import Manifest, load_manifest
from .reference import Reference, load_reference
from .verify import verify_bundle

__all__ = [
    "ArtifactRecord",
    "BundleError",
    "ExportConfig",
    "Manifest",
    "Reference",
    "SignatureRunner",
    "TensorSpec",
    "available_formats",
    "export_bundle",
    "export_coreml",
    "export_format",
    "export_onnx",
    "export_run",
    "export_tflite",
    "get_exporter",
    "get_runner_factory",
    "load_manifest",
    "load_reference",
    "register_exporter",
    "verify_bundle",
]
