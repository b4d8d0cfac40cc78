"""The independent numpy reference of a bundle: built from ``weights.safetensors`` + ``manifest.json`` only.

No torch graph, no privrec model class and no artifact is involved: the reference reads the raw tensors,
dequantizes int8 exactly as docs/BUNDLE.md says (``V = item_embedding * item_scale[:, None]`` in
float32), and computes the three signatures in float64. Parity checks (``privrec verify``) and
``golden.json`` compare every artifact against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from privrec.sdk.quantize import unpack_int4
from privrec.sdk.reconstruct import finetune_reference

from .errors import BundleError
from .manifest import WEIGHTS_NAME, Manifest, load_manifest, load_safetensors

__all__ = ["Reference", "load_reference", "topk_stable"]


def topk_stable(scores: NDArray[np.floating], k: int) -> NDArray[np.int64]:
    """Indices of the ``k`` largest scores, highest first; ties go to the lower index (stable sort)."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k].astype(np.int64)


@dataclass(frozen=True)
class Reference:
    """The three signatures of docs/BUNDLE.md over float64 copies of the bundle's weights.

    Attributes:
        item_embedding: ``float64[num_items, dim]`` (dequantized from the float32 product for int8).
        item_bias: ``float64[num_items]``.
        top_k: ``K`` of ``recommend``.
        steps: gradient steps of ``finetune``.
    """

    item_embedding: NDArray[np.float64]
    item_bias: NDArray[np.float64]
    top_k: int
    steps: int

    @property
    def num_items(self) -> int:
        """Number of items."""
        return int(self.item_embedding.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.item_embedding.shape[1])

    def score(self, user: NDArray[np.floating], item_ids: NDArray[np.integer]) -> NDArray[np.float64]:
        """``scores[j] = V[item_ids[j]] · user + b[item_ids[j]]``, float64 ``[N]``."""
        u = np.asarray(user, np.float64)
        ids = np.asarray(item_ids, np.int64)
        return self.item_embedding[ids] @ u + self.item_bias[ids]

    def masked_scores(self, user: NDArray[np.floating], mask: NDArray[np.floating]) -> NDArray[np.float64]:
        """``V · user + b + mask`` over the whole catalog, float64 ``[num_items]``."""
        return self.item_embedding @ np.asarray(user, np.float64) + self.item_bias + np.asarray(mask, np.float64)

    def recommend(self, user: NDArray[np.floating], mask: NDArray[np.floating]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """``(top_ids [K], top_scores [K])`` of ``V · user + b + mask``, highest first, stable ties."""
        scores = self.masked_scores(user, mask)
        top = topk_stable(scores, self.top_k)
        return top, scores[top]

    def finetune(
        self,
        user: NDArray[np.floating],
        item_ids: NDArray[np.integer],
        labels: NDArray[np.floating],
        lr: float,
        l2: float,
    ) -> tuple[NDArray[np.float64], float]:
        """``(user_out [d], loss)`` after ``steps`` analytic gradient steps (sdk/reconstruct.py)."""
        out, loss = finetune_reference(
            np.asarray(user, np.float64),
            self.item_embedding,
            self.item_bias,
            np.asarray(item_ids, np.int64),
            np.asarray(labels, np.float64),
            lr=float(lr),
            l2=float(l2),
            steps=self.steps,
        )
        return out.astype(np.float64), float(loss)

    @classmethod
    def from_tensors(cls, tensors: dict[str, NDArray[np.generic]], *, top_k: int, steps: int) -> Reference:
        """Build from the raw ``weights.safetensors`` tensors (int8 when ``item_scale`` is present, int4 when
        ``item_embedding`` is uint8: packed pairs, ``V = unpack_int4(item_embedding) * item_scale[:, None]``)."""
        emb = tensors["item_embedding"]
        if emb.dtype == np.uint8:  # int4: two values per byte (privrec.sdk.quantize.pack_int4)
            values = unpack_int4(emb)
            if (values == -8).any():
                row = int(np.argwhere(values == -8)[0][0])
                raise BundleError(
                    f"{WEIGHTS_NAME}: `item_embedding` must hold symmetric int4 values in [-7, 7]. Found -8 in row {row}."
                )
            v = values.astype(np.float32) * tensors["item_scale"].astype(np.float32)[:, None]
        elif "item_scale" in tensors:
            v = emb.astype(np.float32) * tensors["item_scale"].astype(np.float32)[:, None]
        else:
            v = emb.astype(np.float32)
        return cls(
            item_embedding=v.astype(np.float64),
            item_bias=tensors["item_bias"].astype(np.float32).astype(np.float64),
            top_k=top_k,
            steps=steps,
        )


def load_reference(bundle_dir: Path | str, manifest: Manifest | None = None) -> Reference:
    """The reference of a bundle; validates the manifest and every file hash unless ``manifest`` is given.

    ``weights.safetensors`` is read once, and its sha256 and header are checked on the bytes used.
    """
    root = Path(bundle_dir)
    m = manifest if manifest is not None else load_manifest(root)
    tensors = load_safetensors(root, m, WEIGHTS_NAME, m.weights)
    return Reference.from_tensors(tensors, top_k=m.top_k, steps=int(m.finetune["steps"]))
