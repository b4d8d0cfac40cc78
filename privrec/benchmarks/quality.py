"""Quality suite: central, reconstructed, int8, pruned+int8 and the ALS baseline on one table (+ federated).

Full run: :func:`privrec.sdk.quality.quality_report` on MovieLens-100K (leave-one-out, full-catalog
HR@10 / NDCG@10), one seed, from the local cache (``privrec data fetch``). Federated and federated+DP
rows train with :func:`privrec.sdk.federated.run.train_federated_run` (its default config: central DP
calibrated to the default target ε, and the same with ``dp_mode="off"``), seed 0, evaluated by
reconstruction on its held-out users (so not the same users as the central rows); if that fails, the
latest demo report (``runs/demo/federated.json``) is read instead. ``--quick`` trains nothing: it reads the latest
demo report (``runs/demo/quality.json``) if present and says so, otherwise it reports the rows as missing.

Item cold start (full run only, rows ``cold items: ...``): :func:`run_cold_start` holds 10% of the items out of
training entirely and scores the test cases whose test item is one of them, with the feature-tied table against
the alternatives (:func:`cold_start_experiment`). ``python -m privrec.benchmarks.quality --cold-start-only``
regenerates that part alone (``cold_start.md``/``.json``/``.png`` beside the quality report).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "COLD_FRACTION",
    "COLD_METHODS",
    "COLD_SEEDS",
    "DEMO_DIR",
    "VARIANTS",
    "cold_start_experiment",
    "cold_start_rows",
    "cold_start_split",
    "run_cold_start",
    "run_quality",
    "write_cold_start_report",
]

DEMO_DIR = Path("runs/demo")
VARIANTS = ("als", "central", "reconstructed", "int8", "pruned50+int8", "federated", "federated+dp")


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _stamp(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rows_from_report(report: dict[str, Any], source: str) -> list[dict[str, Any]]:
    variants = report.get("variants", {})
    return [
        {"variant": v, "source": source, **{k: vals.get(k) for k in ("full_hr", "full_ndcg", "sampled_hr", "sampled_ndcg")}}
        for v, vals in variants.items()
        if isinstance(vals, dict)
    ]


def _federated_rows(demo_dir: Path) -> list[dict[str, Any]]:
    path = demo_dir / "federated.json"
    report = _read(path)
    if report is None:
        return []
    return _rows_from_report(report, f"{path} ({_stamp(path)})")


FEDERATED_RUNS: dict[str, dict[str, Any]] = {
    "federated": {"dp_mode": "off", "noise_multiplier": None, "target_epsilon": None},
    "federated+dp": {},  # the FederatedConfig defaults: central DP calibrated to its target ε
}


def _train_federated(variant: str, overrides: dict[str, Any], work: Path) -> dict[str, Any]:
    """One :func:`privrec.sdk.federated.run.train_federated_run` (seed 0); its held-out reconstruction metrics."""
    import warnings

    from privrec.sdk.federated.run import train_federated_run

    t0 = time.perf_counter()
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # leave the other core to whatever else runs (the latency suite, other users)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dp_mode="off" warns loudly by design; the row says "no DP"
        try:
            run = train_federated_run(work / variant.replace("+", "_"), overrides=overrides, seed=0, progress=True)
        finally:
            torch.set_num_threads(threads)
    metrics = json.loads((run / "metrics.json").read_text())
    privacy = metrics.get("privacy") or {}
    return {
        "variant": variant,
        "source": f"measured in this run (seed 0, {time.perf_counter() - t0:.0f} s; held-out users, reconstruction)",
        "full_hr": metrics["full"]["hr@10"],
        "full_ndcg": metrics["full"]["ndcg@10"],
        "sampled_hr": metrics["sampled"]["hr@10"],
        "sampled_ndcg": metrics["sampled"]["ndcg@10"],
        "epsilon": privacy.get("epsilon"),
        "delta": privacy.get("delta"),
        "rounds": privacy.get("rounds"),
    }


def run_quality(*, quick: bool, demo_dir: Path = DEMO_DIR, federated: bool = True) -> dict[str, Any]:
    """Rows ``{"variant", "source", "full_hr", ...}`` plus ``"missing"`` (variants without a number)."""
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    cold_rows_out: list[dict[str, Any]] = []
    cold_notes_out: list[str] = []
    demo_quality = demo_dir / "quality.json"
    if quick:
        report = _read(demo_quality)
        if report is not None:
            rows += _rows_from_report(report, f"{demo_quality} ({_stamp(demo_quality)})")
            notes.append(f"--quick: read the latest demo report {demo_quality} ({_stamp(demo_quality)}); nothing trained.")
        else:
            notes.append(f"--quick: no demo report at {demo_quality}; run `privrec demo` or the full bench for numbers.")
    else:
        try:
            from privrec.sdk.data import leave_one_out, load_movielens100k
            from privrec.sdk.quality import quality_report

            split = leave_one_out(load_movielens100k())
        except Exception as exc:  # no data cache: say so instead of failing the whole bench
            notes.append(f"MovieLens-100K not available ({type(exc).__name__}: {exc}); run `privrec data fetch`.")
        else:
            t0 = time.perf_counter()
            report_obj, _ = quality_report(split, seeds=(0,), progress=True)
            rows += _rows_from_report(report_obj.to_dict(), "measured in this run (1 seed)")
            notes.append(f"quality_report on MovieLens-100K, seed 0, {time.perf_counter() - t0:.0f} s.")
            print(f"[bench quality] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            cold = run_cold_start()
            cold_rows, cold_notes = cold_start_rows(cold)
            cold_rows_out, cold_notes_out = cold_rows, cold_notes
    fed: list[dict[str, Any]] = []
    if not quick and federated:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="privrec-bench-fed-") as tmp:
            for variant, overrides in FEDERATED_RUNS.items():
                try:
                    fed.append(_train_federated(variant, overrides, Path(tmp)))
                except Exception as exc:  # the federated layer is another package's: report, do not crash
                    notes.append(f"{variant}: not measured ({type(exc).__name__}: {exc}).")
    if not fed:
        fed = _federated_rows(demo_dir)
    rows += fed
    if not fed:
        notes.append(f"federated / federated+DP: no report at {demo_dir / 'federated.json'} (run `privrec demo`).")
    rows += cold_rows_out
    notes += cold_notes_out
    found = {r["variant"] for r in rows}
    return {"rows": rows, "missing": [v for v in VARIANTS if v not in found], "notes": notes}


# ------------------------------------------------------------------------------------------- item cold start

#: Share of the catalog held out of training entirely in the cold-start measurement.
COLD_FRACTION = 0.1
#: Item-holdout seeds pooled in the full cold-start measurement (training seed 0 each).
COLD_SEEDS = (0, 1, 2)
COLD_METHODS = ("features", "features (unweighted fit)", "mean item (no features)", "popularity",
                "as trained (none)", "trained on everything")


def cold_start_split(split: Any, *, fraction: float, seed: int) -> tuple[Any, Any]:
    """``(training split, held bool[num_items])``: ``fraction`` of the items (uniform, seeded) lose every training
    interaction, and validation items among them are dropped (early stopping never sees them); test items stay."""
    import numpy as np

    from privrec.sdk.data import LeaveOneOutSplit

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`fraction` must be in (0, 1). Found {fraction}.")
    rng = np.random.default_rng(seed)
    n = split.num_items
    held = np.zeros(n, bool)
    held[rng.choice(n, size=max(1, round(fraction * n)), replace=False)] = True
    keep = ~held[split.train_items]
    val = split.val_item.copy()
    val[(val >= 0) & held[np.maximum(val, 0)]] = -1
    cold = LeaveOneOutSplit(data=split.data, train_users=split.train_users[keep], train_items=split.train_items[keep],
                            val_item=val, test_item=split.test_item)
    return cold, held


def _full_ranks(scores: Any, targets: Any, seen: Any) -> Any:
    """0-based rank of each target among the catalog minus the user's history (``seen``, bool ``[B, n]``)."""
    import numpy as np

    s = np.array(scores, np.float64)
    rows = np.arange(s.shape[0])
    t = s[rows, targets]
    s[seen] = -np.inf
    s[rows, targets] = t  # the target is never part of the history
    return (s > t[:, None]).sum(axis=1)


def _mf_scorer(U: Any, V: Any, b: Any) -> Any:
    """``users -> U[users] @ V.T + b`` (the evaluation's score function)."""
    return lambda us: U[us] @ V.T + b


def cold_start_experiment(
    split: Any,
    features: Any,
    *,
    config: Any = None,
    fraction: float = COLD_FRACTION,
    seeds: tuple[int, ...] = COLD_SEEDS,
    progress: bool = True,
) -> dict[str, Any]:
    """Item cold start on ``split``: per seed, hold ``fraction`` of the items out of training, train centrally,
    and score the test cases whose test item is held out (full-catalog ranking minus the user's history, the
    usual protocol) five ways:

    * ``features``: the held-out rows from the feature-tied table fitted with each trained item weighted by
      its interactions (what ``item_cold_start="features"`` does);
    * ``features (unweighted fit)``: the same table, every trained item weighted the same;
    * ``mean item (no features)``: the weighted table without features (every cold item is the average item as
      users meet items);
    * ``popularity``: items ranked by training interactions (a cold item has none);
    * ``as trained (none)``: the rows as trained (``item_cold_start="none"``);
    * ``trained on everything``: a model trained with the held-out items' interactions (upper reference).

    Equal scores are broken by a fixed tiny per-item jitter (the same for every method), so ties do not
    flatter any method. Returns ``{"rows": [...], "cases": int, "per_seed": [...], "random_hr": float}``; each
    row has the pooled full HR@10 / NDCG@10, sampled HR@10 and a 95% bootstrap interval of full HR@10.
    """
    import numpy as np
    import torch

    from privrec.sdk.evaluate import evaluate
    from privrec.sdk.federated.side_info import feature_tied_items
    from privrec.sdk.train import TrainConfig, train_central

    cfg = config or TrainConfig()
    F = np.asarray(features, np.float32)
    n = split.num_items
    jitter = (np.random.default_rng(7).standard_normal(n) * 1e-6).astype(np.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        full_model = train_central(split, cfg, seed=0, progress=progress).model
        hits: dict[str, list[Any]] = {m: [] for m in COLD_METHODS}
        ranks: dict[str, list[Any]] = {m: [] for m in COLD_METHODS}
        ndcg: dict[str, float] = dict.fromkeys(COLD_METHODS, 0.0)
        sampled: dict[str, float] = dict.fromkeys(COLD_METHODS, 0.0)
        per_seed: list[dict[str, Any]] = []
        random_hr: list[float] = []
        hist = split.train_matrix()
        for seed in seeds:
            cold_split, held = cold_start_split(split, fraction=fraction, seed=seed)
            cases = np.flatnonzero((split.test_item >= 0) & held[np.maximum(split.test_item, 0)])
            if cases.size == 0:
                per_seed.append({"seed": seed, "cases": 0, "held_items": int(held.sum())})
                continue
            model = train_central(cold_split, cfg, seed=0, progress=progress).model
            untrained = np.bincount(cold_split.train_items, minlength=n) == 0
            U = model.user_embedding
            pop = np.bincount(cold_split.train_items, minlength=n).astype(np.float64)
            tables = {
                "features": feature_tied_items(model.items, F, untrained, weights=pop),
                "features (unweighted fit)": feature_tied_items(model.items, F, untrained),
                "mean item (no features)": feature_tied_items(model.items, np.zeros((n, 0), np.float32), untrained,
                                                              weights=pop),
                "as trained (none)": model.items,
            }
            scorers: dict[str, Any] = {
                name: _mf_scorer(U, t.item_embedding, t.item_bias + jitter) for name, t in tables.items()
            }
            scorers["popularity"] = _mf_scorer(np.zeros((split.num_users, 1)), np.zeros((n, 1)), pop + jitter)
            scorers["trained on everything"] = _mf_scorer(full_model.user_embedding, full_model.items.item_embedding,
                                                          full_model.items.item_bias + jitter)
            row: dict[str, Any] = {"seed": seed, "cases": int(cases.size), "held_items": int(held.sum())}
            seen_mask = hist[cases].toarray() > 0
            has_val = split.val_item[cases] >= 0
            seen_mask[np.flatnonzero(has_val), split.val_item[cases][has_val]] = True
            for name in COLD_METHODS:
                m = evaluate(scorers[name], split, users=cases)
                ranks[name].append(_full_ranks(scorers[name](cases), split.test_item[cases], seen_mask))
                hits[name].append(m.full_hits)
                ndcg[name] += m.full_ndcg * m.users
                sampled[name] += m.sampled_hr * m.users
                row[name] = m.full_hr
            per_seed.append(row)
            seen = np.asarray(hist[cases].sum(axis=1)).ravel() + (split.val_item[cases] >= 0)
            random_hr += np.minimum(1.0, 10.0 / (n - seen)).tolist()
    finally:
        torch.set_num_threads(threads)
    total = sum(len(h) for h in hits[COLD_METHODS[0]])
    rng = np.random.default_rng(0)
    rows = []
    for name in COLD_METHODS:
        h = np.concatenate(hits[name]).astype(np.float64) if total else np.zeros(0)
        r = np.concatenate(ranks[name]) if total else np.zeros(0)
        boots = [float(h[rng.integers(0, h.size, h.size)].mean()) for _ in range(1000)] if total else [float("nan")]
        rows.append({
            "method": name,
            "full_hr": float(h.mean()) if total else None,
            "full_ndcg": ndcg[name] / total if total else None,
            "sampled_hr": sampled[name] / total if total else None,
            "hr@100": float((r < 100).mean()) if total else None,
            "median_rank": float(np.median(r)) + 1 if total else None,
            "hr_ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))] if total else None,
        })
    return {"rows": rows, "cases": total, "per_seed": per_seed, "fraction": fraction, "seeds": list(seeds),
            "random_hr": float(np.mean(random_hr)) if random_hr else None}


def run_cold_start(*, seeds: tuple[int, ...] = COLD_SEEDS, progress: bool = True) -> dict[str, Any]:
    """:func:`cold_start_experiment` on MovieLens-100K with its public genre and release-period features
    (:func:`privrec.sdk.federated.side_info.movielens100k_item_features`)."""
    from privrec.sdk.data import leave_one_out, load_movielens100k
    from privrec.sdk.federated.side_info import movielens100k_item_features

    data = load_movielens100k()
    t0 = time.perf_counter()
    result = cold_start_experiment(leave_one_out(data), movielens100k_item_features(data)[0], seeds=seeds,
                                   progress=progress)
    result["seconds"] = time.perf_counter() - t0
    return result


def cold_start_rows(result: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The cold-start result as quality-table rows (variant ``cold items: <method>``) and a note on the protocol."""
    src = (f"measured in this run: {result['cases']} test cases whose item was held out "
           f"({round(100 * result['fraction'])}% of items, seeds {result['seeds']})")
    rows = [{"variant": f"cold items: {r['method']}", "source": src, "full_hr": r["full_hr"],
             "full_ndcg": r["full_ndcg"], "sampled_hr": r["sampled_hr"]} for r in result["rows"]]
    note = (f"cold items: {round(100 * result['fraction'])}% of items held out of training entirely (seeds "
            f"{result['seeds']}); HR@10 over the {result['cases']} test cases whose test item is held out; random "
            f"ranking would score {result['random_hr']:.4f}. 'features' = item_cold_start='features' (genre and "
            f"release-period table), 'trained on everything' = the upper reference.")
    return rows, [note]


def write_cold_start_report(out: Path, result: dict[str, Any]) -> Path:
    """Write ``cold_start.md``, ``cold_start.json`` and ``cold_start.png`` into ``out`` (the quality report's folder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import machine_section, table

    out.mkdir(parents=True, exist_ok=True)
    rows = [r | {"ci": "—" if r["hr_ci95"] is None else f"[{r['hr_ci95'][0]:.3f}, {r['hr_ci95'][1]:.3f}]"}
            for r in result["rows"]]
    md = "\n".join([
        "# privrec bench: quality — item cold start\n",
        machine_section(),
        f"MovieLens-100K, leave-one-out. {round(100 * result['fraction'])}% of the items (uniform, seeds "
        f"{result['seeds']}) are held out of training entirely; a central model (default training config, seed 0) "
        f"is trained on the rest. The table scores the **{result['cases']} test cases whose test item is a held-out "
        f"item**, pooled over the seeds: full-catalog HR@10 / NDCG@10 (the catalog minus the user's history) and "
        f"sampled HR@10 (99 negatives). A random ranking scores HR@10 ≈ {result['random_hr']:.4f} on these cases. "
        f"Ties are broken by a fixed tiny per-item jitter shared by every method.\n",
        "- **features**: `item_cold_start=\"features\"` — each held-out item's row and bias from the feature-tied "
        "table: a ridge fit of the trained rows on the public genre and release-period features, each trained item "
        "weighted by its interactions (the row of an item *as users meet items*).",
        "- **features (unweighted fit)**: the same table with every trained item weighted the same.",
        "- **mean item (no features)**: the weighted table with no features (every cold item is the average item).",
        "- **popularity**: items ranked by their training interactions (a held-out item has none).",
        "- **as trained (none)**: `item_cold_start=\"none\"`, the rows the training left (never a positive).",
        "- **trained on everything**: the model trained with the held-out items' interactions (upper reference).\n",
        table(rows, [("method", "method"), ("full_hr", "full HR@10"), ("ci", "95% CI (bootstrap)"),
                     ("full_ndcg", "full NDCG@10"), ("hr@100", "full HR@100"), ("median_rank", "median rank"),
                     ("sampled_hr", "sampled HR@10")]),
        "Per seed (full HR@10):\n",
        table(result["per_seed"], [("seed", "seed"), ("held_items", "held-out items"), ("cases", "cases"),
                                   *[(m, m) for m in COLD_METHODS]]),
        f"\n![cold start](cold_start.png)\n\nMeasured in {result.get('seconds', float('nan')):.0f} s. Regenerate with "
        "`.venv/bin/python -m privrec.benchmarks.quality --cold-start-only` (this part only) or `privrec bench quality` "
        "(the whole quality report, whose table then carries these rows too).\n",
    ])
    (out / "cold_start.md").write_text(md)
    (out / "cold_start.json").write_text(json.dumps(result, indent=1, allow_nan=False, default=str) + "\n")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [r["method"] for r in result["rows"]]
    vals = [r["full_hr"] or 0.0 for r in result["rows"]]
    err = [[v - (r["hr_ci95"] or [v, v])[0] for v, r in zip(vals, result["rows"], strict=True)],
           [(r["hr_ci95"] or [v, v])[1] - v for v, r in zip(vals, result["rows"], strict=True)]]
    ax.barh(names, vals, xerr=err, color=["tab:green", "tab:olive", "tab:gray", "tab:orange", "tab:red", "tab:blue"])
    ax.axvline(result["random_hr"] or 0.0, color="black", linestyle=":", label="random ranking")
    ax.invert_yaxis()
    ax.set_xlabel("full-catalog HR@10 on test cases with a held-out item")
    ax.set_title(f"item cold start, MovieLens-100K ({result['cases']} cases)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "cold_start.png", dpi=110)
    plt.close(fig)
    return out / "cold_start.md"


def main(argv: list[str] | None = None) -> None:
    """``python -m privrec.benchmarks.quality --cold-start-only [--out DIR]``: regenerate only the cold-start part."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--cold-start-only", action="store_true", required=True)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/quality"))
    args = parser.parse_args(argv)
    path = write_cold_start_report(args.out, run_cold_start())
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
