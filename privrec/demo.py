"""``privrec demo``: the main job end to end on MovieLens-100K, printing what it measured.

Stages (each prints a table and writes it under ``out``):

1. **quality** — fetch the data, tune the ALS peer, train central MF (3 seeds), rebuild every user by
   on-device reconstruction, quantize to int8, prune 50% with fine-tuning + int8; one table of
   quality and size per variant, with the acceptance ratios.
2. **federated** — when the federated layer is installed: a federated run with DP through the HTTP
   aggregation server on 127.0.0.1 with secure aggregation, evaluated on held-out users; export of
   an int8 bundle and its verification.

``--update-readme`` rewrites the README's results sections from the tables just measured, so the
README never carries a typed number.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["run_demo", "update_readme_section"]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def update_readme_section(readme: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``readme``."""
    text = readme.read_text()
    pattern = re.compile(rf"(<!-- {re.escape(name)}:begin -->\n).*?(<!-- {re.escape(name)}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no '<!-- {name}:begin -->' … '<!-- {name}:end -->' section to update.")
    readme.write_text(pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text))


def _quality_stage(out: Path, seeds: int) -> dict[str, Any]:
    import torch

    from privrec.sdk.data import fetch_movielens100k, leave_one_out, load_movielens100k
    from privrec.sdk.quality import quality_report

    torch.set_num_threads(2)
    fetch_movielens100k()
    split = leave_one_out(load_movielens100k())
    t0 = time.perf_counter()
    report, models = quality_report(split, seeds=tuple(range(seeds)), extra_dims=(32,))
    md = report.markdown()
    md += "\n" + _bundle_stage(out, models[0], split, report.extra["finetune_per_seed"][0])
    header = (
        f"MovieLens-100K, leave-one-out test items, {split.num_users} users; mean ± std over seeds "
        f"{list(report.seeds)} ({time.perf_counter() - t0:.0f} s on this machine). Item parameters: "
        f"{split.num_items} items × d={report.config.dim}.\n\n"
    )
    (out / "quality.md").write_text(header + md)
    (out / "quality.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print("\n" + header + md, flush=True)
    return report.to_dict()


def _bundle_stage(out: Path, model: Any, split: Any, finetune: dict[str, Any]) -> str:
    """Export the first seed's central model as float32 and int8 bundles (all formats), verify both and
    table their sizes: what an app ships, checked against the numpy reference."""
    from privrec.export import export_bundle, load_manifest, verify_bundle
    from privrec.sdk.quantize import quantize_int8
    from privrec.sdk.reconstruct import FinetuneConfig
    from privrec.sdk.train import TrainConfig

    _say("[demo] export the central model (float32 and int8; ONNX, TFLite, Core ML) and verify")
    ft = FinetuneConfig(**finetune)  # the reconstruction settings chosen on validation for this model
    common = {"items": split.data.item_catalog(), "finetune": ft, "overwrite": True,
              "recency_half_life": TrainConfig().recency_half_life}
    b32 = export_bundle(model.items, out / "bundle-central-float32", precision="float32", **common)
    b8 = export_bundle(quantize_int8(model.items), out / "bundle-central-int8", **common)
    ok = {p: verify_bundle(b)["ok"] for p, b in (("float32", b32), ("int8", b8))}
    m32, m8 = load_manifest(b32), load_manifest(b8)
    lines = [
        f"Bundles of the seed-0 central model ({model.items.num_items} items × d={model.items.dim}): "
        f"`privrec verify` ok — float32: {ok['float32']}, int8: {ok['int8']}.",
        "",
        "| format | float32 bytes | int8 bytes | int8 / float32 |",
        "|---|---|---|---|",
    ]
    for fmt in m8.formats:
        s32 = sum(m32.files[f]["size"] for f in m32.artifact_record(fmt).files)
        s8 = sum(m8.files[f]["size"] for f in m8.artifact_record(fmt).files)
        lines.append(f"| {fmt} | {s32:,} | {s8:,} | {s8 / s32:.3f} |")
    return "\n".join(lines) + "\n"


def run_demo(*, out: Path, seeds: int = 3, update_readme: Path | None = None) -> dict[str, Any]:
    """Run every demo stage available in this installation; returns the measured summary."""
    import logging

    # dp-accounting logs (through absl) every RDP order it drops as non-convergent: harmless, and it
    # buries the progress bars. The demo is an application, so it may set this; the library does not.
    logging.getLogger("absl").setLevel(logging.ERROR)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _say(f"[demo] stage 1/2: quality and size on MovieLens-100K ({seeds} seeds)")
    summary: dict[str, Any] = {"quality": _quality_stage(out, seeds)}
    try:
        from privrec.demo_federated import federated_stage
    except ImportError:
        _say("[demo] stage 2/2 skipped: the federated layer is not part of this installation")
    else:
        _say("[demo] stage 2/2: federated training with DP and secure aggregation over HTTP")
        summary["federated"] = federated_stage(out)
    if update_readme is not None:
        update_readme_section(update_readme, "results-quality", (out / "quality.md").read_text())
        if (out / "federated.md").is_file():
            # The plot goes next to the README (runs/ is not committed) and the link follows it.
            figures = update_readme.parent / "reports" / "demo"
            figures.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / "federated_hr_per_round.png", figures / "federated_hr_per_round.png")
            text = (out / "federated.md").read_text().replace(
                "](federated_hr_per_round.png)", "](reports/demo/federated_hr_per_round.png)"
            )
            update_readme_section(update_readme, "results-federated", text)
    _say(f"[demo] done in {time.perf_counter() - t0:.0f} s; reports in {out}")
    return summary
