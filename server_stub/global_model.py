"""The global model the server holds: its flat parameters, the optimizer state, and the published bundle.

The parameters are one flat ``float32[D]`` vector in the layout of
:class:`privrec.sdk.federated.params.ParamLayout` (the only flat layout: ``[E, W, b]``, only the trained
blocks), stored as safetensors bytes ``{"params": …}``. Databases written before the layout was stored
hold ``{"item_embedding", "item_bias"}`` instead: the plain layout, read the same way.

Each model version is published as a float32 ONNX bundle (a tar of the directory written by
:func:`privrec.export.export_bundle`) whose manifest carries the reconstruction recipe the round's devices
follow, the privacy ledger, and — for a table tied to public item features — those features.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray
from safetensors.numpy import load, save

from privrec.sdk.federated.params import ParamLayout
from privrec.sdk.federated.server_opt import ServerOptimizer
from privrec.sdk.recipe import ReconstructionRecipe

__all__ = [
    "features_from_bytes",
    "features_to_bytes",
    "optimizer_from_bytes",
    "optimizer_to_bytes",
    "pack_bundle",
    "params_from_bytes",
    "params_to_bytes",
]


def optimizer_to_bytes(optimizer: ServerOptimizer) -> bytes:
    """The optimizer's array state (e.g. FedAdam's moments) as safetensors bytes (empty: no state yet)."""
    arrays = {k: v for k, v in vars(optimizer).items() if isinstance(v, np.ndarray)}
    return bytes(save(arrays)) if arrays else b""


def optimizer_from_bytes(optimizer: ServerOptimizer, data: bytes | None) -> ServerOptimizer:
    """Restore the array state written by :func:`optimizer_to_bytes` into a fresh ``optimizer``."""
    if data:
        for name, value in load(data).items():
            setattr(optimizer, name, value.astype(np.float64))
    return optimizer


def params_to_bytes(params: NDArray[np.float32]) -> bytes:
    """safetensors bytes of the flat parameters."""
    return bytes(save({"params": np.ascontiguousarray(params, np.float32)}))


def params_from_bytes(data: bytes, layout: ParamLayout) -> NDArray[np.float32]:
    """Inverse of :func:`params_to_bytes`, checked against ``layout`` (older plain-layout rows accepted)."""
    tensors = load(data)
    if "params" in tensors:
        flat = tensors["params"]
    elif {"item_embedding", "item_bias"} <= set(tensors) and layout.features is None and layout.free_embedding:
        flat = np.concatenate([tensors["item_embedding"].ravel(), tensors["item_bias"]])
    else:
        raise ValueError(f"stored model tensors {sorted(tensors)} do not match the server's layout {layout.to_dict()}.")
    if flat.shape != (layout.size,):
        raise ValueError(f"stored parameters have shape {flat.shape}; the server's layout needs ({layout.size},).")
    return np.ascontiguousarray(flat, np.float32)


def features_to_bytes(features: NDArray[np.float32]) -> bytes:
    """safetensors bytes of the public item features ``[num_items, f]``."""
    return bytes(save({"item_features": np.ascontiguousarray(features, np.float32)}))


def features_from_bytes(data: bytes) -> NDArray[np.float32]:
    """Inverse of :func:`features_to_bytes`."""
    return np.ascontiguousarray(load(data)["item_features"], np.float32)


def pack_bundle(
    layout: ParamLayout,
    params: NDArray[np.float32],
    *,
    recipe: ReconstructionRecipe,
    privacy: dict[str, Any] | None,
    sign_key: Ed25519PrivateKey | None,
) -> bytes:
    """Export a float32 ONNX bundle of ``params`` and return it as an uncompressed tar (files at the root).

    The manifest's ``finetune`` block is ``recipe`` (the one the round's devices follow), a layout with
    public item features ships them, so devices can compute their update of the feature weights, and with
    ``sign_key`` the manifest is signed (``manifest.sig``), so devices that pin the server's public key
    refuse any other bundle.
    """
    from privrec.export import export_bundle

    with tempfile.TemporaryDirectory(prefix="privrec-bundle-") as tmp:
        out = export_bundle(
            layout.item_model(params), Path(tmp) / "bundle", formats=("onnx",), precision="float32", privacy=privacy,
            finetune=recipe.finetune, recency_half_life=recipe.recency_half_life,
            item_features=layout.features, sign_key=sign_key,
        )
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(out)))
        return buffer.getvalue()

