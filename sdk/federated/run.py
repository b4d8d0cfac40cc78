"""``privrec train --mode federated``: simulated federated training (MovieLens-100K or an app's own data) into a RUN_DIR.

The RUN_DIR has the layout of a central run (:mod:`privrec.sdk.run`) — ``weights.safetensors`` (the item
table ``V = E + F W`` and bias only: user vectors never exist outside devices), ``config.json``
(``"mode": "federated"``, ``"dataset"``, ``"train"``, ``"finetune"``, ``"heldout_users"``,
``"federated"``), ``items.json``, ``history.json`` (one row per round), ``metrics.json`` (test metrics of
the held-out users by reconstruction, :func:`privrec.sdk.run.evaluate_run`) — plus
``privacy_ledger.json`` (:class:`privrec.sdk.privacy.PrivacyLedger`; the exporter copies it into the
bundle manifest).

Writing a RUN_DIR (:func:`write_federated_run`) needs no torch — Flower's ServerApp, which runs without it,
writes its runs with it; training and evaluating (:func:`train_federated_run`) import torch when called.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.numpy import save_file

from ..data import DataSource, Interactions, heldout_users, leave_one_out
from .config import FederatedConfig
from .result import FederatedResult
from .side_info import movielens100k_item_features

__all__ = ["json_safe", "train_federated_run", "write_federated_run"]


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON, as ``metrics.json`` is written)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_federated_run(out: Path, result: FederatedResult, *, dataset: str, seed: int,
                        items_catalog: list[dict[str, object]] | None = None,
                        data_source: DataSource | None = None) -> Path:
    """Write ``result`` as a RUN_DIR (everything but ``metrics.json``); returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    save_file(result.items.tensors(), str(out / "weights.safetensors"))
    config = {
        "mode": "federated",
        "dataset": dataset,
        "seed": seed,
        "train": {
            "dim": cfg.dim,
            "l2": cfg.finetune.l2,
            "init_std": cfg.init_std,
            "recency_half_life": cfg.recency_half_life,
            "loss": "full",
        },
        "finetune": asdict(cfg.finetune),
        "heldout_users": [int(u) for u in result.heldout_users],
        "federated": cfg.to_dict(),
        "layout": result.layout.to_dict(),
        "noise_multiplier": result.noise_multiplier,
        "rounds_run": result.rounds_run,
        "stop_reason": result.stop_reason,
        "train_devices": int(result.train_users.size),
        "seconds": result.seconds,
    }
    if data_source is not None:
        config["data"] = data_source.to_dict()
    (out / "config.json").write_text(json.dumps(json_safe(config), indent=2, sort_keys=True) + "\n")
    (out / "history.json").write_text(json.dumps(json_safe(result.history), indent=1) + "\n")
    result.ledger.save(out)
    if items_catalog is not None:
        (out / "items.json").write_text(json.dumps(items_catalog, indent=0, ensure_ascii=False) + "\n")
    return out


def train_federated_run(out: Path, *, overrides: dict[str, Any] | None = None, seed: int = 0,
                        progress: bool = True, data_source: DataSource | None = None,
                        data: Interactions | None = None) -> Path:
    """Simulate federated training (one device per user, 10% of users held out) and write a RUN_DIR
    (module docstring). ``overrides`` are :class:`FederatedConfig` fields.

    On MovieLens-100K by default; on an app's own file with ``data_source`` (recorded in ``config.json``;
    ``data`` is that file already loaded, to skip a second read).
    There ``item_features="genre"`` ties the item table to the item file's features (the data's
    ``item_features``), or to none when the data has none.
    """
    from ..run import evaluate_run, load_run_data
    from .simulate import simulate_federated

    cfg = FederatedConfig.from_dict(dict(overrides or {}))
    data = data if data is not None else load_run_data(data_source, progress=progress)
    split = leave_one_out(data)
    train, held = heldout_users(split.num_users, fraction=cfg.heldout_fraction, seed=cfg.heldout_seed)
    features = None
    if cfg.item_features == "genre":
        features = movielens100k_item_features(data)[0] if data_source is None else data.item_features
    result = simulate_federated(split, cfg, train_users=train, heldout_users=held, seed=seed,
                                features=features, progress=progress)
    out = write_federated_run(Path(out), result, dataset=data.name, seed=seed, items_catalog=data.item_catalog(),
                              data_source=data_source)
    metrics = evaluate_run(out, split=split)
    metrics["privacy"] = result.ledger.to_manifest()
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2) + "\n")
    return out
