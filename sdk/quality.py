"""One table of quality and size per model variant, measured in one run (the foundation's report).

Variants, all on the same leave-one-out split and protocol: the ALS peer baseline; central MF with its
jointly trained user vectors; the same globals with every user rebuilt by reconstruction; the int8
table; 50% magnitude pruning with fine-tuning under the mask, then int8. Every ratio is computed from
numbers measured in the same run.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from .baselines import tune_als
from .data.splits import LeaveOneOutSplit
from .evaluate import Metrics, ScoreFn, evaluate
from .model import TrainedModel
from .prune import prune_and_finetune
from .quantize import quantize_int8
from .reconstruct import FinetuneConfig
from .run import evaluate_reconstructed, tune_finetune
from .sizes import parameter_bytes
from .train import TrainConfig, train_central

__all__ = ["VARIANTS", "QualityReport", "quality_report"]

VARIANTS = ("als", "central", "reconstructed", "int8", "pruned50+int8")
"""Measured for the primary model (the config's dimension); ``central d=<D>`` rows add other dimensions."""


@dataclass(frozen=True)
class QualityReport:
    """Per-seed metrics per variant, the sizes, and the settings used."""

    seeds: tuple[int, ...]
    metrics: dict[str, list[Metrics]]
    sizes: dict[str, dict[str, int]]
    config: TrainConfig
    extra: dict[str, Any] = field(default_factory=dict)

    def mean(self, variant: str, key: str = "full_hr") -> float:
        """Mean over seeds of one metric (``full_hr``, ``full_ndcg``, ``sampled_hr``, ``sampled_ndcg``)."""
        return float(np.mean([getattr(m, key) for m in self.metrics[variant]]))

    def ratios(self) -> dict[str, float]:
        """The acceptance ratios (full-catalog HR@10, means over seeds)."""
        extra = {f"{v} / als": self.mean(v) / self.mean("als") for v in self.metrics if v.startswith("central d=")}
        return {
            "central / als": self.mean("central") / self.mean("als"),
            **extra,
            "reconstructed / central": self.mean("reconstructed") / self.mean("central"),
            "int8 / central": self.mean("int8") / self.mean("central"),
            "pruned50+int8 / central": self.mean("pruned50+int8") / self.mean("central"),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        keys = ("full_hr", "full_ndcg", "sampled_hr", "sampled_ndcg")
        return {
            "seeds": list(self.seeds),
            "variants": {
                v: {k: self.mean(v, k) for k in keys} | {"per_seed_full_hr": [m.full_hr for m in ms]}
                for v, ms in self.metrics.items()
            },
            "ratios": self.ratios(),
            "sizes": self.sizes,
            "config": self.config.to_dict(),
        } | self.extra

    def markdown(self) -> str:
        """The table: quality (mean ± std over seeds) and size of each variant."""
        size_of: dict[str, str | None] = {"als": None, "central": "float32", "reconstructed": "float32", "int8": "int8",
                                          "pruned50+int8": "pruned50+int8"}
        size_of |= {v: v for v in self.metrics if v.startswith("central d=")}
        lines = [
            "| variant | full HR@10 | full NDCG@10 | sampled HR@10 | sampled NDCG@10 | item params (bytes) | gzip (bytes) |",
            "|---|---|---|---|---|---|---|",
        ]
        for v, ms in self.metrics.items():
            cells = []
            for k in ("full_hr", "full_ndcg", "sampled_hr", "sampled_ndcg"):
                vals = [getattr(m, k) for m in ms]
                cells.append(f"{np.mean(vals):.4f} ± {np.std(vals):.4f}")
            s = size_of.get(v)
            raw = f"{self.sizes[s]['raw']:,}" if s else "—"
            gz = f"{self.sizes[s]['gzip']:,}" if s else "—"
            name = f"central d={self.config.dim}" if v == "central" else v
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {raw} | {gz} |")
        lines.append("")
        lines.append("| ratio (full HR@10, mean of seeds) | value |")
        lines.append("|---|---|")
        lines.extend(f"| {k} | {v:.3f} |" for k, v in self.ratios().items())
        return "\n".join(lines) + "\n"


def _scorer(U: NDArray[np.float32], V: NDArray[np.float32], b: NDArray[np.float32]) -> ScoreFn:
    def score(users: NDArray[np.int64]) -> NDArray[np.float32]:
        return (U[users] @ V.T + b).astype(np.float32)

    return score


def quality_report(
    split: LeaveOneOutSplit,
    config: TrainConfig | None = None,
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    sparsity: float = 0.5,
    extra_dims: tuple[int, ...] = (),
    progress: bool = True,
) -> tuple[QualityReport, list[TrainedModel]]:
    """Train and measure every variant for each seed; returns the report and the central models.

    ``extra_dims`` adds a ``central d=<D>`` row per dimension (same config otherwise), so the
    quality/size trade-off of the dimension is measured in the same run.
    """
    cfg = config or TrainConfig()
    metrics: dict[str, list[Metrics]] = {v: [] for v in VARIANTS}
    for d in extra_dims:
        metrics[f"central d={d}"] = []
    models: list[TrainedModel] = []
    sizes: dict[str, dict[str, int]] = {}
    tuned_finetune: list[FinetuneConfig] = []
    bar = tqdm(seeds, desc="quality (seeds)", file=sys.stderr, disable=not progress)
    for seed in bar:
        bar.set_postfix(stage="als")
        als, _ = tune_als(split, seed=seed)
        metrics["als"].append(evaluate(als.score, split))
        bar.set_postfix(stage="train")
        trained = train_central(split, cfg, seed=seed, progress=False).model
        models.append(trained)
        V, b, U = trained.items.item_embedding, trained.items.item_bias, trained.user_embedding
        metrics["central"].append(evaluate(_scorer(U, V, b), split))
        bar.set_postfix(stage="reconstruct")
        ft = tune_finetune(trained.items, split, cfg)
        tuned_finetune.append(ft)
        metrics["reconstructed"].append(
            evaluate_reconstructed(trained.items, split, ft, recency_half_life=cfg.recency_half_life)
        )
        bar.set_postfix(stage="int8")
        deq = quantize_int8(trained.items).dequantize()
        Vq = deq.item_embedding
        metrics["int8"].append(evaluate(_scorer(U, Vq, b), split))
        bar.set_postfix(stage="prune")
        pruned = prune_and_finetune(trained, split, sparsity, cfg, seed=seed)
        q = quantize_int8(pruned.items)
        Vp, bp, Up = q.dequantize().item_embedding, q.item_bias, pruned.user_embedding
        metrics["pruned50+int8"].append(evaluate(_scorer(Up, Vp, bp), split))
        for d in extra_dims:
            bar.set_postfix(stage=f"train d={d}")
            other = train_central(split, replace(cfg, dim=d), seed=seed, progress=False).model
            metrics[f"central d={d}"].append(
                evaluate(_scorer(other.user_embedding, other.items.item_embedding, other.items.item_bias), split)
            )
            sizes.setdefault(f"central d={d}", parameter_bytes(other.items))
        if "float32" not in sizes:
            sizes |= {
                "float32": parameter_bytes(trained.items),
                "int8": parameter_bytes(quantize_int8(trained.items)),
                "pruned50+int8": parameter_bytes(q),
            }
    extra = {"finetune_per_seed": [asdict(f) for f in tuned_finetune]}
    return QualityReport(seeds=tuple(seeds), metrics=metrics, sizes=sizes, config=cfg, extra=extra), models
