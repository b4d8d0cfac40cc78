"""The global item model the server holds: (de)serialisation, the flat update layout, the bundle.

An update is one float vector of length ``D = num_items · (dim + 1)``: the item table ``V`` row-major,
then the bias ``b`` — the layout of :class:`privrec.sdk.federated.params.ParamLayout` without features
(DESIGN §4: only these global parameters are federated; the user vector stays on the device).

Each model version is published as safetensors bytes and as a float32 ONNX bundle (a tar of the bundle
directory written by :func:`privrec.export.export_bundle`) whose ``finetune`` signature the devices run.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load, save

from privrec.sdk.federated.params import ParamLayout
from privrec.sdk.federated.server_opt import ServerOptimizer
from privrec.sdk.model import ItemModel

__all__ = [
    "flatten",
    "initial_model",
    "model_from_bytes",
    "model_to_bytes",
    "optimizer_from_bytes",
    "optimizer_to_bytes",
    "pack_bundle",
    "unflatten",
]


def initial_model(*, num_items: int, dim: int, seed: int, std: float) -> ItemModel:
    """The initial parameters of :meth:`ParamLayout.init` (table ~ N(0, std²) seeded, bias 0), so a
    server and the in-process simulation with the same seed start from the same model."""
    layout = ParamLayout(num_items=num_items, dim=dim)
    return layout.item_model(layout.init(init_std=std, seed=seed))


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


def model_to_bytes(model: ItemModel) -> bytes:
    """safetensors bytes of ``item_embedding`` and ``item_bias``."""
    return bytes(save(model.tensors()))


def model_from_bytes(data: bytes) -> ItemModel:
    """Inverse of :func:`model_to_bytes` (validated by :class:`ItemModel`)."""
    tensors = load(data)
    return ItemModel(item_embedding=tensors["item_embedding"], item_bias=tensors["item_bias"])


def flatten(model: ItemModel) -> NDArray[np.float64]:
    """``[V.ravel(), b]`` as float64 ``[num_items · (dim + 1)]``."""
    return np.concatenate([model.item_embedding.ravel(), model.item_bias]).astype(np.float64)


def unflatten(vector: NDArray[Any], num_items: int, dim: int) -> ItemModel:
    """Inverse of :func:`flatten`."""
    expected = num_items * (dim + 1)
    if vector.shape != (expected,):
        raise ValueError(f"`vector` must have shape ({expected},). Found {vector.shape}.")
    table = vector[: num_items * dim].reshape(num_items, dim).astype(np.float32)
    return ItemModel(item_embedding=table, item_bias=vector[num_items * dim :].astype(np.float32))


def pack_bundle(model: ItemModel, *, privacy: dict[str, Any] | None) -> bytes:
    """Export a float32 ONNX bundle of ``model`` and return it as an uncompressed tar (files at the root)."""
    from privrec.export import export_bundle

    with tempfile.TemporaryDirectory(prefix="privrec-bundle-") as tmp:
        out = export_bundle(model, Path(tmp) / "bundle", formats=("onnx",), precision="float32", privacy=privacy)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(out)))
        return buffer.getvalue()
