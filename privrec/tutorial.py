"""The interactive tutorial: ``privrec tutorial [--no-pause] [--quick]`` or ``python -m privrec.tutorial``.

Eight steps on MovieLens-100K, each of which explains what it does, runs the real code, and shows a table
or a figure:

1. ``data`` — the interaction log and the leave-one-out split;
2. ``central`` — the compact model (matrix factorisation + item bias) trained centrally, as a reference;
3. ``reconstruct`` — one user's vector rebuilt on the device from their own history, the global
   parameters frozen;
4. ``compress`` — int8 and magnitude pruning: bytes against quality;
5. ``export`` — one bundle with ONNX, TFLite and Core ML artifacts, verified against a numpy reference,
   and what a tampered copy does;
6. ``federated`` — one federated round with user-level DP and secure aggregation, devices running the
   exported bundle;
7. ``server`` — what the server saw and kept, and the privacy spent;
8. ``offline`` — a recommendation on the "phone" with networking switched off.

The same functions drive the command line and the documentation's executed notebook (``docs/tutorial.py``):
:func:`run_step` runs one step and returns a :class:`StepResult`; :func:`show` renders it with rich in a
terminal and as Markdown, rich tables and images in a notebook. ``quick`` trains smaller and shorter (about
a minute of compute on 2 cores); the full run takes a few minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import importlib
import json
import math
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

__all__ = [
    "STEPS",
    "StepResult",
    "TutorialContext",
    "main",
    "run_step",
    "run_tutorial",
    "show",
]

DOCS = "the documentation (`mkdocs serve` in a checkout)"
#: The user whose phone the tutorial follows: the first MovieLens user (id "1") has 272 ratings.
DEMO_USER_ID = "1"
#: δ of the tutorial's privacy statements (< 1/943 users).
DELTA = 1e-4


@dataclass
class TutorialContext:
    """What the steps hand to each other. Create with :meth:`create`; steps fill the other fields.

    Attributes:
        out: folder for the bundle, plots and the tampered copy.
        quick: smaller and shorter training (the tutorial's ``--quick``).
        seed: seeds training, sampling and the public secure-aggregation graph.
    """

    out: Path
    quick: bool = False
    seed: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, out: Path | str, *, quick: bool = False, seed: int = 0) -> TutorialContext:
        """A fresh context writing into ``out`` (created; an existing tutorial bundle there is replaced)."""
        path = Path(out)
        (path / "plots").mkdir(parents=True, exist_ok=True)
        return cls(out=path, quick=quick, seed=seed)

    def need(self, key: str, step: str) -> Any:
        """A value an earlier step produced; a clear error when the steps ran out of order."""
        if key not in self.state:
            raise RuntimeError(f"step {step!r} needs {key!r}: run the steps in order ({', '.join(STEPS)}).")
        return self.state[key]


@dataclass(frozen=True)
class StepResult:
    """One step's output.

    Attributes:
        key: the step's name in :data:`STEPS`.
        title: its heading.
        text: the explanation (Markdown).
        tables: rich tables to show.
        figures: PNG files written into ``out/plots``.
        facts: the step's key numbers (JSON-able), for tests and for ``--json``-style use.
        seconds: wall time of the step.
    """

    key: str
    title: str
    text: str
    tables: tuple[Table, ...] = ()
    figures: tuple[Path, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- helpers
def _quiet() -> None:
    """Silence the converters' and accountants' chatter; the tutorial prints what matters."""
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("absl", "coremltools", "tensorflow", "jax"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "—"}[value]
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isinf(v):
            return "∞"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(value)


def _history(ctx: TutorialContext, user: int) -> NDArray[np.int64]:
    """A user's training items, oldest first (what their phone holds)."""
    split = ctx.need("split", "data")
    items: NDArray[np.int64] = split.train_items[split.train_users == user]
    return items


def _title(ctx: TutorialContext, item: int) -> str:
    titles = ctx.need("data", "data").item_titles
    return str(titles[item]) if titles else f"item {item}"


def _plot(path: Path, draw: Callable[[Any], object]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    draw(ax)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


@contextlib.contextmanager
def _converter_chatter_captured() -> Iterator[None]:
    """Capture what the converters (TensorFlow, coremltools) write to the process's stderr, C++ logs and
    progress bars included; replay it only if the block fails."""
    import os
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """No network for this process while the block runs: any connection attempt raises ``OSError``."""

    def refuse(*_: Any, **__: Any) -> None:
        raise OSError("networking is switched off for this step of the tutorial")

    original = socket.socket.connect, socket.socket.connect_ex, socket.create_connection
    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign,assignment]
    socket.create_connection = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.create_connection = original  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------- steps
def step_data(ctx: TutorialContext) -> StepResult:
    """1. The data: MovieLens-100K as a log of implicit interactions, split leave-one-out."""
    from privrec.sdk.data import fetch_movielens100k, leave_one_out, load_movielens100k, movielens100k_dir

    try:
        movielens100k_dir()
    except FileNotFoundError:
        fetch_movielens100k()  # downloads the recbole 1.2.1 wheel with pip and checks its sha256
    data = load_movielens100k()
    split = leave_one_out(data)
    user = data.user_ids.index(DEMO_USER_ID)
    ctx.state.update(data=data, split=split, user=user)
    per_user = np.bincount(data.users, minlength=data.num_users)
    history = _history(ctx, user)
    overview = _table("MovieLens-100K", ["", "value"], [
        ["users", data.num_users], ["items", data.num_items], ["interactions", len(data)],
        ["density", len(data) / (data.num_users * data.num_items)],
        ["interactions per user (median)", int(np.median(per_user))],
        ["training / validation / test interactions",
         f"{split.train_items.size:,} / {int((split.val_item >= 0).sum()):,} / {int((split.test_item >= 0).sum()):,}"],
    ])
    recent = _table(f"User {DEMO_USER_ID}'s phone: the 5 latest training interactions (of {history.size})",
                    ["title", "item"], [[_title(ctx, int(i)), int(i)] for i in history[-5:]])
    text = f"""
Every rating is one **positive interaction**; what the model learns is *which* movies a user watched, not
the stars. Per user, the latest interaction is held out as the **test** item and the second latest as the
**validation** item; the rest are the user's **training** items — the history their phone would hold.

We follow one phone through the tutorial: user {DEMO_USER_ID}, with {history.size} training interactions.
The data come from the `recbole==1.2.1` wheel on PyPI (`privrec data fetch`), checked by sha256 and never
committed (their licence forbids redistribution).
"""
    return StepResult("data", "1. The data", text, (overview, recent),
                      facts={"users": data.num_users, "items": data.num_items, "interactions": len(data),
                             "demo_user_history": int(history.size)})


def step_central(ctx: TutorialContext) -> StepResult:
    """2. The model, trained centrally as a reference."""
    from privrec.sdk.evaluate import evaluate
    from privrec.sdk.recipe import ReconstructionRecipe
    from privrec.sdk.reconstruct import FinetuneConfig
    from privrec.sdk.run import tune_finetune
    from privrec.sdk.train import TrainConfig, train_central

    split = ctx.need("split", "central")
    cfg = TrainConfig(dim=32, epochs=12, patience=3) if ctx.quick else TrainConfig(dim=64)
    result = train_central(split, cfg, seed=ctx.seed, progress=False)
    model = result.model
    # Quick: the recipe `tune_finetune` chose once on the validation items for this configuration (it takes ~25 s).
    finetune = FinetuneConfig(steps=5, lr=0.1, l2=0.25, calls=2) if ctx.quick else tune_finetune(model.items, split, cfg)
    recipe = ReconstructionRecipe.from_finetune(finetune, recency_half_life=cfg.recency_half_life)
    ctx.state.update(trained=model, train_config=cfg, finetune=finetune, recipe=recipe)
    U, V, b = model.user_embedding, model.items.item_embedding, model.items.item_bias
    central = evaluate(lambda us: U[us] @ V.T + b, split)
    counts = np.bincount(split.train_items, minlength=split.num_items).astype(np.float32)
    popular = evaluate(lambda us: np.broadcast_to(counts, (us.size, counts.size)), split)
    ctx.state["central_metrics"] = central
    rows = [["most popular (no model)", popular.full_hr, popular.full_ndcg, popular.sampled_hr],
            [f"MF d={cfg.dim}, central", central.full_hr, central.full_ndcg, central.sampled_hr]]
    table = _table("Test items of all 943 users", ["model", "full HR@10", "full NDCG@10", "sampled HR@10"], rows)

    def draw(ax: Any) -> None:
        ax.plot([h["epoch"] + 1 for h in result.history], [h["val_full_hr@10"] for h in result.history], marker="o")
        ax.axvline(result.best_epoch + 1, color="grey", linestyle=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation full HR@10")
        ax.set_title(f"central training, d={cfg.dim} (best epoch {result.best_epoch + 1})")

    fig = _plot(ctx.out / "plots" / "02_training.png", draw)
    text = f"""
The model is **matrix factorisation with an item bias**: `score(u, i) = u · V[i] + b[i]`. The item table `V`
({split.num_items} × {cfg.dim}) and the bias `b` are the *global* parameters every phone shares; `u`, the
*user vector*, belongs to one phone. Training minimises a full softmax over the catalog per user (each user
weighs the same, as each device does in federated training), with Adam and early stopping on the
validation items ({result.seconds:.0f} s here).

Trained centrally, every user's vector sits on the server — the setting privrec exists to avoid. It is the
reference the private variants are compared with. **HR@10** is the share of users whose held-out test item
is in their top 10 over the **full** catalog (minus what they already watched); **sampled** HR@10 ranks it
against 99 random unwatched items instead, the easier protocol much of the literature reports.
"""
    return StepResult("central", "2. The model, trained centrally", text, (table,), (fig,),
                      facts={"dim": cfg.dim, "full_hr": central.full_hr, "popular_full_hr": popular.full_hr,
                             "best_epoch": result.best_epoch, "train_seconds": result.seconds})


def step_reconstruct(ctx: TutorialContext) -> StepResult:
    """3. Reconstruction: the user vector rebuilt on the device."""
    from privrec.sdk.federated.device import NumpySignatures
    from privrec.sdk.run import evaluate_reconstructed

    split, model = ctx.need("split", "reconstruct"), ctx.need("trained", "reconstruct")
    recipe, user = ctx.need("recipe", "reconstruct"), ctx.need("user", "reconstruct")
    items = model.items
    history = _history(ctx, user)
    labels = recipe.labels(history, items.num_items)
    u = recipe.fit(NumpySignatures(items, recipe.steps).finetune, labels, dim=items.dim)
    trained_u = model.user_embedding[user]
    cosine = float(u @ trained_u / (np.linalg.norm(u) * np.linalg.norm(trained_u)))
    target = int(split.test_item[user])
    seen = np.concatenate([history, [split.val_item[user]]])
    cold, _ = items.recommend(np.zeros(items.dim, np.float32), k=10, exclude=seen)
    warm, _ = items.recommend(u, k=10, exclude=seen)
    def name(item: int) -> str:
        return _title(ctx, item) + (" ◀ test item" if item == target else "")

    rows = [[i + 1, name(int(c)), name(int(w))] for i, (c, w) in enumerate(zip(cold, warm, strict=True))]
    top = _table(f"User {DEMO_USER_ID}'s top 10 (watched items excluded)",
                 ["rank", "before (u = 0)", "after reconstruction"], rows)
    rec = evaluate_reconstructed(items, split, ctx.need("finetune", "reconstruct"),
                                 recency_half_life=recipe.recency_half_life)
    central = ctx.need("central_metrics", "reconstruct")
    ctx.state.update(user_vector=u, reconstructed_metrics=rec)
    quality = _table("Test items of all 943 users", ["user vectors", "full HR@10", "sampled HR@10"], [
        ["trained jointly with the items (central)", central.full_hr, central.sampled_hr],
        ["rebuilt on each device (reconstruction)", rec.full_hr, rec.sampled_hr],
    ])
    text = f"""
A phone never receives a user vector: it **rebuilds** one from its own history with the global parameters
frozen (*Federated Reconstruction*, Singhal et al. 2021). The bundle says how (its reconstruction recipe:
{recipe.calls} calls × {recipe.steps} gradient steps, lr {recipe.lr}, L2 {recipe.l2}, the label of an item halving every
{recipe.recency_half_life:g} interactions back); the steps run inside the exported `finetune` signature, so a phone
needs no training framework. Here the same maths runs in numpy.

User {DEMO_USER_ID}'s rebuilt vector points the same way as the one central training learned (cosine
{cosine:.2f}), and its recommendations move from "popular with everyone" to this user's taste. Over all
users, rebuilt vectors recommend about as well as jointly trained ones — the reason privrec can keep `u` on the
phone at all: the server never needs it.
"""
    return StepResult("reconstruct", "3. Rebuilding the user vector on the device", text, (top, quality),
                      facts={"cosine_to_trained": cosine, "full_hr": rec.full_hr, "history": int(history.size),
                             "test_item_in_top10": bool(target in warm.tolist())})


def _weights_bytes(tensors: dict[str, NDArray[Any]]) -> tuple[int, int]:
    from safetensors.numpy import save

    blob = save(dict(tensors))
    return len(blob), len(gzip.compress(blob, 9))


def step_compress(ctx: TutorialContext) -> StepResult:
    """4. Compression: int8 and pruning, bytes against quality."""
    from privrec.sdk.prune import prune_and_finetune
    from privrec.sdk.quantize import quantize_int8
    from privrec.sdk.run import evaluate_reconstructed

    split, model = ctx.need("split", "compress"), ctx.need("trained", "compress")
    finetune, recipe = ctx.need("finetune", "compress"), ctx.need("recipe", "compress")
    cfg = ctx.need("train_config", "compress")
    int8 = quantize_int8(model.items)
    pruned = prune_and_finetune(model, split, 0.5, cfg, epochs=3 if ctx.quick else 10, seed=ctx.seed)
    pruned8 = quantize_int8(pruned.items)
    ctx.state.update(int8=int8)
    variants = [("float32", model.items.tensors(), model.items),
                ("int8 (one scale per row)", int8.tensors(), int8.dequantize()),
                ("pruned 50% + int8", pruned8.tensors(), pruned8.dequantize())]
    rows: list[list[Any]] = []
    facts: dict[str, Any] = {}
    base = None
    for name, tensors, items in variants:
        raw, packed = _weights_bytes(tensors)
        base = base or raw
        hr = evaluate_reconstructed(items, split, finetune, recency_half_life=recipe.recency_half_life).full_hr
        rows.append([name, raw, packed, raw / base, hr])
        facts[name] = {"bytes": raw, "gzip_bytes": packed, "full_hr": hr}
    table = _table(f"weights.safetensors for {split.num_items} items × d={model.items.dim}",
                   ["variant", "bytes", "gzip -9 bytes", "× float32", "full HR@10 (rebuilt u)"], rows)
    d = model.items.dim
    at_100k = _table("The same formulas at 100,000 items (weights only; see the Benchmarks page for artifacts)",
                     ["d", "float32 bytes (4d + 4 per item)", "int8 bytes (d + 8 per item)"],
                     [[dd, 100_000 * (4 * dd + 4), 100_000 * (dd + 8)] for dd in sorted({32, 64, d})])

    def draw(ax: Any) -> None:
        ax.scatter([r[2] / 1000 for r in rows], [r[4] for r in rows])
        for r in rows:
            ax.annotate(str(r[0]), (r[2] / 1000, r[4]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("gzip -9 kB (what an app download costs)")
        ax.set_ylabel("full HR@10")
        ax.set_title("size against quality")

    fig = _plot(ctx.out / "plots" / "04_size_quality.png", draw)
    text = f"""
Phones pay for every byte. **int8** stores each item row as 8-bit integers with one float32 scale per row
(`V[i] ≈ q[i] · scale[i]`); the bias stays float32. At d = {d} that is (d + 8) / (4d + 4) =
{(d + 8) / (4 * d + 4):.2f} of the float32 bytes, at no measurable loss of HR@10. **Magnitude pruning** zeroes the
half of the table's entries with the smallest magnitude and then fine-tunes with those entries held at zero
(pruning without fine-tuning loses much more); the zeros survive int8 exactly and compress well (gzip, and
Core ML's sparse iOS18 format).
"""
    return StepResult("compress", "4. int8 and pruning", text, (table, at_100k), (fig,), facts=facts)


def step_export(ctx: TutorialContext) -> StepResult:
    """5. Export one signed bundle and verify it."""
    from privrec.export import BundleError, export_bundle, generate_signing_key, verify_bundle
    from privrec.runtime import Recommender

    _quiet()
    data, int8 = ctx.need("data", "export"), ctx.need("int8", "export")
    finetune, recipe = ctx.need("finetune", "export"), ctx.need("recipe", "export")
    keys = ctx.out / "keys"
    shutil.rmtree(keys, ignore_errors=True)
    private_key, public_key = generate_signing_key(keys)  # what `privrec keys generate --out DIR` does
    bundle = ctx.out / "bundle"
    with warnings.catch_warnings(), _converter_chatter_captured():
        warnings.simplefilter("ignore")
        export_bundle(int8, bundle, formats=("onnx", "tflite", "coreml"), finetune=finetune, items=data.item_catalog(),
                      recency_half_life=recipe.recency_half_life, overwrite=True, sign_key=private_key)
        report = verify_bundle(bundle, public_key=public_key)
    ctx.state.update(bundle=bundle, public_key=public_key)
    checks = [[c["format"] + (f"/{c['variant']}" if "variant" in c else ""), c["signature"], c["max_abs_err"],
               c["tolerance"], c["topk_equal"], c["ok"]] for c in report["checks"]]
    verify = _table(f"privrec verify {bundle.name} --public-key …: {'ok' if report['ok'] else 'FAILED'} "
                    f"(signature {report['signature']['status']})",
                    ["artifact", "signature", "max abs error", "tolerance", "top-10 equal", "ok"], checks)
    manifest = json.loads((bundle / "manifest.json").read_text())
    groups: dict[str, int] = {}
    for rel, entry in manifest["files"].items():
        top = rel.split("/")[0]
        groups[top] = groups.get(top, 0) + int(entry["size"])
    files = _table("Files listed in manifest.json (a .mlpackage is a folder)", ["file", "bytes"],
                   [[k, v] for k, v in sorted(groups.items())])
    self_tests = {b: Recommender.load(bundle, backend=b, public_key=public_key).self_test()["ok"]
                  for b in ("onnxruntime", "litert")}
    refusals: dict[str, str] = {}
    for what in ("a weight", "the manifest"):
        tampered = ctx.out / "bundle-tampered"
        shutil.rmtree(tampered, ignore_errors=True)
        shutil.copytree(bundle, tampered)
        if what == "a weight":
            target = tampered / "model.onnx.data"
            raw = bytearray(target.read_bytes())
            raw[len(raw) // 2] ^= 0x01  # one bit of one weight
            target.write_bytes(bytes(raw))
        else:
            target = tampered / "manifest.json"
            target.write_text(target.read_text().replace('"top_k": 10', '"top_k":  10'))  # one space
        try:
            Recommender.load(tampered, public_key=public_key)
            refusals[what] = "loaded (this must not happen)"
        except BundleError as exc:
            refusals[what] = str(exc)
    text = f"""
A **bundle** is one folder per model version: `manifest.json` (every file's sha256 and size, the shapes,
the reconstruction recipe, the privacy ledger), `manifest.sig` (an Ed25519 signature of the manifest's
bytes), `weights.safetensors` (the exact int8 weights), `golden.json` (inputs and expected outputs for a
self-test at app start) and the artifacts — ONNX (three graphs sharing one weights file), TFLite (one
file, three named signatures) and Core ML (one iOS18 package, three functions over one copy of the
weights). Every format has the same three signatures: `score`, `recommend` (catalog scan + top-10 in one
graph) and `finetune` (the reconstruction steps as a plain forward graph).

We generated a signing key pair first (`privrec keys generate`): the private key signs on the publishing
machine, the public key is what an app pins. `privrec verify` checks the signature, then runs every
artifact × signature against a numpy reference built from `weights.safetensors` alone: int8 must stay within
2e-2 of it with the same top-10. Core ML cannot run on Linux, so its saved programs run in a small numpy
interpreter of their ops. The app-start self-test passed on ONNX Runtime ({self_tests['onnxruntime']}) and
LiteRT ({self_tests['litert']}).

Then we tampered with copies. Flipping **one bit of one weight**:

> `{refusals['a weight']}`

Adding **one space** to the manifest:

> `{refusals['the manifest']}`
"""
    return StepResult("export", "5. One signed bundle, three formats, verified", text, (verify, files),
                      facts={"verify_ok": report["ok"], "signature": report["signature"]["status"],
                             "self_tests": self_tests, "refusals": refusals,
                             "bundle_bytes": sum(groups.values()), "bundle": str(bundle)})


@dataclass
class _ServerLog:
    """What the secure-aggregation server received, stage by stage."""

    stages: list[tuple[str, int, int, str]] = field(default_factory=list)
    masked: dict[int, NDArray[np.uint32]] = field(default_factory=dict)


def _secure_sum(
    encoded: NDArray[np.uint32], *, threshold: int, drop: int, seed: int
) -> tuple[NDArray[np.uint32], tuple[int, ...], _ServerLog]:
    """One secure-aggregation round over the rows of ``encoded`` (client ``i + 1`` holds row ``i``), with client
    ``drop`` silent from the masked-input stage on: the protocol of :mod:`privrec.sdk.secagg` driven stage by
    stage (as its package docstring shows), recording what the server receives."""
    import hashlib

    from privrec.sdk.secagg import SecAggClient, SecAggConfig, SecAggServer, ServerStage

    n = encoded.shape[0]
    config = SecAggConfig(round_id=f"tutorial-{seed}", participants=tuple(range(1, n + 1)), threshold=threshold,
                          vector_length=encoded.shape[1], graph_seed=hashlib.sha256(f"tutorial-{seed}".encode()).digest())
    server = SecAggServer(config)
    clients = {u: SecAggClient(config, u) for u in config.participants}
    log = _ServerLog()
    what = {
        ServerStage.ADVERTISE_KEYS: "two X25519 public keys per device",
        ServerStage.SHARE_KEYS: "Shamir shares, AES-GCM-encrypted to each peer (opaque to the server)",
        ServerStage.MASKED_INPUT_COLLECTION: "masked vectors: uniformly random-looking words mod 2³²",
        ServerStage.UNMASKING: "shares of survivors' self-mask seeds and of the dropped device's mask key",
    }
    while server.stage != ServerStage.COMPLETED:
        stage = server.stage
        count = size = 0
        for u in server.recipients():
            c = clients[u]
            if stage == ServerStage.ADVERTISE_KEYS:
                message: Any = c.advertise_keys()
            elif stage == ServerStage.SHARE_KEYS:
                message = c.share_keys(server.key_roster(u))
            elif stage == ServerStage.MASKED_INPUT_COLLECTION:
                if u == drop:
                    continue  # this phone lost its connection after sharing its keys
                message = c.mask_input(server.share_routing(u), encoded[u - 1])
                log.masked[u] = message.values.copy()
            else:
                message = c.unmask(server.unmasking_request(u))
            server.receive(message)
            count += 1
            size += len(json.dumps(message.to_dict()))
        log.stages.append((str(stage), count, size, what.get(stage, "")))
        server.advance()
    return server.result(), server.survivors, log


def step_federated(ctx: TutorialContext) -> StepResult:
    """6. One federated round with DP and secure aggregation, devices running the bundle."""
    from privrec.runtime import Recommender
    from privrec.sdk.federated import FedAvgM, ParamLayout, RoundSetup, cohort_denominator, device_update, finish_round
    from privrec.sdk.privacy import PrivacyAccountant, calibrate_noise_multiplier
    from privrec.sdk.privacy.noise import SecureGaussianNoise

    split, bundle = ctx.need("split", "federated"), ctx.need("bundle", "federated")
    rec = Recommender.load(bundle, backend="onnxruntime", public_key=ctx.need("public_key", "federated"))
    layout = ParamLayout(num_items=rec.num_items, dim=rec.dim)
    params = np.zeros(layout.size, np.float32)
    table_view, _, bias_view = layout.split(params)
    if table_view is None or bias_view is None:  # a free table and a trained bias: both blocks exist
        raise RuntimeError("the layout has no item table or bias block")
    before = ctx.need("int8", "federated").dequantize()
    table_view[:] = before.item_embedding
    bias_view[:] = before.item_bias
    start = params.copy()
    # Poisson sampling: every phone joins with probability q (drawn on the phone; seeded here to be repeatable).
    population = split.num_users
    q = 0.02
    rng = np.random.default_rng(ctx.seed + 6)
    cohort = [int(u) for u in np.flatnonzero(rng.random(population) < q) if _history(ctx, int(u)).size > 0]
    planned_rounds, target_epsilon = 300, 1.0
    z = calibrate_noise_multiplier(target_epsilon=target_epsilon, sample_rate=q, rounds=planned_rounds, delta=DELTA)
    n = len(cohort)
    threshold = n // 2 + 1
    setup = RoundSetup(dp_mode="distributed", noise_multiplier=z, clip_norm=0.5, sample_rate=q,
                       denominator=cohort_denominator(sample_rate=q, population=population), local_lr=10.0,
                       min_survivors=threshold)
    config = setup.device_config()
    noise = SecureGaussianNoise()
    labels = [rec.recipe.labels(_history(ctx, u), rec.num_items) for u in cohort]
    updates = [device_update(rec, y, recipe=rec.recipe, layout=layout, config=config, noise=noise) for y in labels]
    # The narrator's view, never the server's: the same updates without their noise shares.
    silent = dataclasses.replace(config, noise_std=0.0)
    clean = np.stack([device_update(rec, y, recipe=rec.recipe, layout=layout, config=silent).vector for y in labels])
    encoder = setup.encoder(max_clients=n)
    vectors = np.stack([up.vector for up in updates]).astype(np.float64)
    encoded = encoder.encode(vectors)
    drop = 2
    t0 = time.perf_counter()
    total_enc, survivors, log = _secure_sum(encoded, threshold=threshold, drop=drop, seed=ctx.seed)
    secagg_seconds = time.perf_counter() - t0
    total = encoder.decode(total_enc)
    rows_in = [s - 1 for s in survivors]
    truth = vectors[rows_in].sum(axis=0)
    clean_sum = clean[rows_in].astype(np.float64).sum(axis=0)
    outcome = finish_round(params, total, setup=setup, survivors=len(survivors), optimizer=FedAvgM(lr=1.0),
                           noise=noise)
    accountant = PrivacyAccountant(delta=DELTA)
    if outcome.event is not None:
        accountant.compose(outcome.event)
    ctx.state.update(round=dict(setup=setup, log=log, survivors=survivors, cohort=cohort, vectors=vectors,
                                encoded=encoded, total=total, truth=truth, clean_sum=clean_sum, accountant=accountant,
                                planned_rounds=planned_rounds, target_epsilon=target_epsilon, drop=drop,
                                change=float(np.abs(params - start).max()), secagg_seconds=secagg_seconds))
    norms = [up.stats.norm for up in updates]
    rows = [[f"phone {i + 1}" + (" (dropped)" if i + 1 == drop else ""), int(_history(ctx, u).size), up.stats.norm,
             up.stats.clipped, float(np.linalg.norm(up.vector))] for i, (u, up) in enumerate(zip(cohort, updates, strict=True))]
    devices = _table(f"The cohort: {n} phones sampled with q = {q}", ["phone", "history", "update norm",
                     "clipped to C", "norm sent (with noise share)"], rows[:8] + ([["…", "", "", "", ""]] if n > 8 else []))
    settings = _table("The round's public settings", ["setting", "value"], [
        ["clip norm C", setup.clip_norm], ["noise multiplier Z", z],
        ["each phone's noise std (Z·C/√t)", setup.device_noise_std],
        ["secure-aggregation threshold t", threshold], ["dimension D of an update", layout.size],
        ["sampling rate q", q], ["planned rounds / ε target", f"{planned_rounds} / {target_epsilon}"],
    ])
    text = f"""
Now the global parameters are trained without anyone seeing a history. For one round, {n} of the 943 phones
were sampled (each independently with probability q = {q}). Each phone, running **the bundle we exported**
(ONNX Runtime here; LiteRT or Core ML on a real phone):

1. rebuilds its user vector with the bundle's recipe through the `finetune` signature;
2. scores the catalog with `score` and computes, in numpy, its update to `V` and `b` (the gradient of its
   softmax loss at its own `u` — a rank-1 matrix);
3. **clips** the update to L2 norm C = {setup.clip_norm} (median norm before clipping: {float(np.median(norms)):.2f}), so
   no phone can move the model by more than C;
4. adds its **share of the Gaussian noise** (distributed DP): std Z·C/√t, so any t surviving shares
   together carry noise of std Z·C — Z = {z:.2f} was calibrated so that {planned_rounds} such rounds spend at most
   ε = {target_epsilon} (δ = {DELTA:g}).

The noised updates then go through **secure aggregation** (Bonawitz et al. 2017): pairwise masks that cancel
in the sum, plus self-masks whose seeds are Shamir-shared, so the server can remove them only for phones that
completed the round. Phone {drop} dropped out after sharing its keys; the others revealed the shares the server needed
to cancel its masks. The protocol ran in this process, every message a real JSON message, in {secagg_seconds:.1f} s.
"""
    return StepResult("federated", "6. A federated round: DP and secure aggregation", text, (devices, settings),
                      facts={"cohort": n, "survivors": len(survivors), "noise_multiplier": z,
                             "applied": outcome.applied, "sum_max_error": float(np.abs(total - truth).max())})


def step_server(ctx: TutorialContext) -> StepResult:
    """7. What the server saw, kept and spent."""
    from privrec.sdk.privacy import PrivacyLedger, compute_epsilon_rdp

    rnd = ctx.need("round", "server")
    setup, log, accountant = rnd["setup"], rnd["log"], rnd["accountant"]
    stages = _table("Messages the server received", ["stage", "messages", "JSON bytes", "what they hold"],
                    [list(s) for s in log.stages])
    first = min(log.masked)
    masked = log.masked[first].astype(np.float64)
    mine = rnd["encoded"][first - 1].astype(np.float64)
    corr = float(np.corrcoef(masked, mine)[0, 1])
    noise_part = rnd["truth"] - rnd["clean_sum"]
    peek = _table(f"Phone {first}: its encoded update and what the server received (first 5 of {masked.size:,} words)",
                  ["", *[f"w{i}" for i in range(5)]],
                  [["encoded update (never sent)", *[str(int(v)) for v in mine[:5]]],
                   ["masked vector (sent)", *[str(int(v)) for v in masked[:5]]]])
    report = accountant.epsilon()
    planned = rnd["planned_rounds"]
    eps_planned = compute_epsilon_rdp(noise_multiplier=setup.noise_multiplier, sample_rate=setup.sample_rate,
                                      rounds=planned, delta=DELTA)
    ledger = PrivacyLedger.from_accountant(accountant, mode="distributed", secure_noise=True).to_dict()
    privacy = _table("Privacy spent (user-level, add-or-remove one user's whole history)", ["", "ε", "δ"], [
        ["after this round (RDP, stated)", report.epsilon_rdp, DELTA],
        ["after this round (PLD, tighter)", report.epsilon_pld, DELTA],
        [f"after the {planned} planned rounds (RDP)", eps_planned, DELTA]])
    grid = sorted({1, 10, 30, 100, planned, 2 * planned, 5 * planned})
    curve = [compute_epsilon_rdp(noise_multiplier=setup.noise_multiplier, sample_rate=setup.sample_rate, rounds=t,
                                 delta=DELTA) for t in grid]

    def draw(ax: Any) -> None:
        ax.plot(grid, curve, marker="o")
        ax.set_xscale("log")
        ax.axhline(rnd["target_epsilon"], color="grey", linestyle=":")
        ax.set_xlabel("rounds")
        ax.set_ylabel(f"ε at δ = {DELTA:g}")
        ax.set_title(f"ε spent as rounds accumulate (Z = {setup.noise_multiplier:.2f}, q = {setup.sample_rate})")

    fig = _plot(ctx.out / "plots" / "07_epsilon_rounds.png", draw)
    text = f"""
**What the server saw.** Public keys, ciphertexts it cannot open, and one masked vector per phone:
phone {first}'s masked words have correlation {corr:+.3f} with its real encoded update. After unmasking it
learned **one thing: the sum** of the {len(rnd['survivors'])} surviving phones' clipped, noised updates (equal to
the true sum up to the fixed-point encoding: max error {float(np.abs(rnd['total'] - rnd['truth']).max()):.1e}).
That sum carries noise of std {setup.noise_multiplier * setup.clip_norm:.2f} per coordinate (norm
{float(np.linalg.norm(noise_part)):.1f}) against a signal of norm {float(np.linalg.norm(rnd["clean_sum"])):.2f}: a single round of
{len(rnd['survivors'])} phones is almost all noise (it moved some weights by {rnd['change']:.2f}). Over many rounds
of many phones the noise averages out while the signal adds up; the Benchmarks page shows what that buys on
MovieLens at each ε.

**What the server keeps** (`privrec serve`'s SQLite file): device ids with hashed tokens, which devices
checked in to which round, every model version and its bundle, each round's settings and outcome (counts,
ε, a hash of the aggregate), and the privacy ledger. Protocol messages are deleted when a round ends.

**What it spent.** The round's privacy event went into the ledger, and the accountant (dp-accounting) turns
the ledger into (ε, δ) for the mechanism that ran. This ledger is what ships in the next bundle's manifest:

`{json.dumps({k: ledger[k] for k in ('mode', 'epsilon', 'delta', 'rounds', 'secure_noise')})}`
"""
    return StepResult("server", "7. What the server saw, kept and spent", text, (stages, peek, privacy), (fig,),
                      facts={"masked_correlation": corr, "epsilon_round": report.epsilon_rdp,
                             "epsilon_planned": eps_planned, "messages": [list(s[:3]) for s in log.stages]})


def step_offline(ctx: TutorialContext) -> StepResult:
    """8. A recommendation on the phone, offline."""
    from privrec.runtime import Recommender

    split, bundle, user = ctx.need("split", "offline"), ctx.need("bundle", "offline"), ctx.need("user", "offline")
    history = _history(ctx, user)
    target = int(split.test_item[user])
    with _offline():
        rec = Recommender.load(bundle, backend="litert", public_key=ctx.need("public_key", "offline"))
        ok = rec.self_test()["ok"]
        u = rec.reconstruct(history)
        seen = np.concatenate([history, [split.val_item[user]]])
        ids, scores = rec.recommend(u, exclude=seen)
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            rec.recommend(u, exclude=seen)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rec.reconstruct(history)
        reconstruct_ms = (time.perf_counter() - t0) * 1000
        try:
            socket.create_connection(("example.com", 443), timeout=1)
            network = "a connection opened (this must not happen)"
        except OSError as exc:
            network = str(exc)
    p50 = float(np.median(times)) * 1000
    rows = [[i + 1, rec.items[int(item)]["title"] + (" ◀ test item" if item == target else ""), float(s)]
            for i, (item, s) in enumerate(zip(ids, scores, strict=True))]
    table = _table(f"User {DEMO_USER_ID}'s recommendations, computed offline (LiteRT, int8 bundle)",
                   ["rank", "title", "score"], rows)
    text = f"""
Back on user {DEMO_USER_ID}'s phone, with **networking switched off** for this process (a connection attempt
says: *{network}*). The app loads the bundle (the signature against its pinned key, then every sha256), runs the golden self-test
({'passed' if ok else 'FAILED'}), rebuilds the user vector from the {history.size} interactions it holds
({reconstruct_ms:.1f} ms through the `finetune` signature) and asks `recommend` for the top 10, excluding what the
user watched: {p50:.3f} ms per call here (median of 200; desktop CPU, one thread — the Benchmarks page has
measured latencies per catalog size and backend).

That is the whole loop: the history and the user vector stayed in this process; the server only ever got
clipped, noised, masked updates, and only their sum.
"""
    return StepResult("offline", "8. A recommendation, offline", text, (table,),
                      facts={"self_test": ok, "recommend_p50_ms": p50, "reconstruct_ms": reconstruct_ms,
                             "test_item_in_top10": bool(target in ids.tolist()), "network": network})


#: The tutorial's steps in order: key → function.
STEPS: dict[str, Callable[[TutorialContext], StepResult]] = {
    "data": step_data,
    "central": step_central,
    "reconstruct": step_reconstruct,
    "compress": step_compress,
    "export": step_export,
    "federated": step_federated,
    "server": step_server,
    "offline": step_offline,
}


def run_step(ctx: TutorialContext, key: str) -> StepResult:
    """Run one step (in order: see :data:`STEPS`) and return its result with its wall time."""
    if key not in STEPS:
        raise ValueError(f"`key` must be one of {list(STEPS)}. Found {key!r}.")
    _quiet()
    t0 = time.perf_counter()
    result = STEPS[key](ctx)
    return StepResult(result.key, result.title, result.text, result.tables, result.figures, result.facts,
                      time.perf_counter() - t0)


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where the notebook of the docs runs)."""
    ipython = sys.modules.get("IPython")  # a kernel has imported it; a terminal run never imports it
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show(result: StepResult, console: Console | None = None) -> None:
    """Render a step: rich in a terminal; Markdown, rich tables and inline images in a notebook."""
    if console is None and _in_notebook():
        ipy: Any = importlib.import_module("IPython.display")  # present in any notebook kernel
        ipy.display(ipy.Markdown(result.text))
        notebook = Console(force_jupyter=True, width=92)
        for table in result.tables:
            notebook.print(table)
        for fig in result.figures:
            ipy.display(ipy.Image(filename=str(fig)))
        return
    out = console or Console()
    out.rule(f"[bold]{result.title}")
    out.print(Markdown(result.text.strip()))
    for table in result.tables:
        out.print(table)
    for fig in result.figures:
        out.print(f"[dim]figure: {fig}[/dim]")
    out.print(f"[dim]({result.seconds:.1f} s)[/dim]")


def run_tutorial(*, out: Path | str = Path("runs/tutorial"), quick: bool = False, pause: bool = True,
                 console: Console | None = None) -> list[StepResult]:
    """Run every step, showing each and (with ``pause``) waiting for Enter between them."""
    con = console or Console()
    ctx = TutorialContext.create(out, quick=quick)
    con.print(Markdown(f"""# privrec tutorial{' (quick)' if quick else ''}

Eight steps from a data set to a private, offline recommendation. Figures are written to `{ctx.out / 'plots'}`.
Every number below is computed now, on this machine."""))
    results: list[StepResult] = []
    t0 = time.perf_counter()
    for i, key in enumerate(STEPS):
        result = run_step(ctx, key)
        show(result, con)
        results.append(result)
        if pause and i < len(STEPS) - 1:
            try:
                con.input("[dim]Press Enter for the next step…[/dim]")
            except EOFError:
                pause = False  # no terminal to wait on: carry on
    con.print(Markdown(f"""---
Done in {time.perf_counter() - t0:.0f} s. The bundle is in `{ctx.out / 'bundle'}`; try
`privrec verify {ctx.out / 'bundle'} --public-key {ctx.out / 'keys' / 'privrec_signing_key.pub'}`.
Next: the Concepts, Production guide and Debugging guide pages of {DOCS}."""))
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m privrec.tutorial [--no-pause] [--quick] [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m privrec.tutorial",
        description="The privrec tutorial: eight steps from a data set to a private, offline recommendation.")
    parser.add_argument("--no-pause", action="store_true", help="Do not wait for Enter between steps.")
    parser.add_argument("--quick", action="store_true", help="Smaller, shorter training (about 2 minutes on 2 cores).")
    parser.add_argument("--out", type=Path, default=Path("runs/tutorial"), help="Folder for the bundle and plots.")
    args = parser.parse_args(argv)
    run_tutorial(out=args.out, quick=args.quick, pause=not args.no_pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
