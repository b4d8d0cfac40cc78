"""privrec.export: the bundle writer, one exporter per format (ONNX, TFLite, Core ML), parity checks.

Importing this package is cheap: format modules (and TensorFlow, coremltools, onnxruntime) load on
first use through the registry in :mod:`privrec.export.base`.
"""

from .base import (
    ArtifactRecord,
    CatalogScorer,
    ExportConfig,
    SignatureRunner,
    TensorSpec,
    available_formats,
    get_exporter,
    get_runner_factory,
    register_exporter,
    score_catalog,
)
from .bundle import (
    export_bundle,
    export_coreml,
    export_format,
    export_onnx,
    export_run,
    export_tflite,
    sign_bundle,
)
from .errors import BundleError, BundleWarning, SignatureError
from .item_map import ItemMap, MappedHistory
from .manifest import Manifest, load_manifest
from .reference import Reference, load_reference
from .signing import generate_signing_key, key_id, load_private_key, load_public_key, verify_signature
from .verify import verify_bundle

__all__ = [
    "ArtifactRecord",
    "BundleError",
    "BundleWarning",
    "CatalogScorer",
    "ExportConfig",
    "ItemMap",
    "Manifest",
    "MappedHistory",
    "Reference",
    "SignatureError",
    "SignatureRunner",
    "TensorSpec",
    "available_formats",
    "export_bundle",
    "export_coreml",
    "export_format",
    "export_onnx",
    "export_run",
    "export_tflite",
    "generate_signing_key",
    "get_exporter",
    "get_runner_factory",
    "key_id",
    "load_manifest",
    "load_private_key",
    "load_public_key",
    "load_reference",
    "register_exporter",
    "score_catalog",
    "sign_bundle",
    "verify_bundle",
    "verify_signature",
]
