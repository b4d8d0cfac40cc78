"""The ``privrec`` command line (stable: scripts and checks depend on it).

``--json`` prints exactly one JSON object on stdout; progress and logs go to stderr. Heavy imports
(torch, TensorFlow, coremltools) happen inside the commands, so ``privrec --help`` is instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="privrec: private on-device recommendations.")
data_app = typer.Typer(no_args_is_help=True, help="Data sets: fetch MovieLens, validate an app's own file.")
device_app = typer.Typer(no_args_is_help=True, help="Simulated devices that take part in federated rounds.")
keys_app = typer.Typer(no_args_is_help=True, help="Ed25519 keys that sign bundles.")
app.add_typer(data_app, name="data")
app.add_typer(device_app, name="device")
app.add_typer(keys_app, name="keys")


def _emit(payload: dict[str, Any]) -> None:
    """Print one JSON object on stdout (the only thing a --json command prints there)."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n")
    sys.stdout.flush()


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@data_app.command("fetch")
def data_fetch(
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where to keep the data (default: $PRIVREC_DATA_DIR or ~/.cache/privrec).")
    ] = None,
) -> None:
    """Download MovieLens-100K (inside the recbole 1.2.1 wheel), check its hashes, extract it."""
    from privrec.sdk.data.fetch import fetch_movielens100k

    try:
        path = fetch_movielens100k(cache_dir)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"MovieLens-100K ready in {path}", err=True)


# An app's own data: the options `train`, `evaluate` and `data validate` share.
_DataFile = Annotated[
    Path | None, typer.Option("--data", help="An app's interactions: CSV, TSV, Parquet or JSON Lines (default: MovieLens-100K).")
]
_ItemsFile = Annotated[
    Path | None, typer.Option("--items", help="Item file (same formats): id, title and categorical feature columns.")
]
_UserCol = Annotated[str, typer.Option("--user-col", help="User id column.")]
_ItemCol = Annotated[str, typer.Option("--item-col", help="Item id column (and the item file's id column).")]
_TimeCol = Annotated[
    str | None,
    typer.Option("--time-col", help="Time column (seconds or ISO 8601). Default: 'timestamp' if present, else file order."),
]
_RatingCol = Annotated[
    str | None, typer.Option("--rating-col", help="Rating column. Default: 'rating' if present, else every row counts 1.")
]
_MinRating = Annotated[float | None, typer.Option("--min-rating", help="Drop rows rated below this.")]
_TitleCol = Annotated[str | None, typer.Option("--title-col", help="Item file's title column (default: 'title' if present).")]
_ItemsIdCol = Annotated[str | None, typer.Option("--items-id-col", help="Item file's id column (default: the --item-col name).")]
_FeatureCols = Annotated[
    str | None,
    typer.Option("--feature-cols", help="Item file's categorical columns, comma-separated; cells split on '|' "
                                        "(default: those of genres, genre, categories, category, tags present)."),
]
_Dedupe = Annotated[
    bool, typer.Option("--dedupe", help="Keep the first of duplicate rows (same user, item, time) instead of refusing.")
]


def _data_source(data: Path, items: Path | None, user_col: str, item_col: str, time_col: str | None,
                 rating_col: str | None, min_rating: float | None, title_col: str | None, feature_cols: str | None,
                 dedupe: bool, items_id_col: str | None = None) -> Any:
    """The :class:`~privrec.sdk.data.DataSource` the flags describe (files hashed), or exit 2 naming the problem."""
    from privrec.sdk.data import ColumnSpec, DataSource, ItemsSpec

    try:
        columns = ColumnSpec(user=user_col, item=item_col, time=time_col, rating=rating_col, min_rating=min_rating)
        feats = None if feature_cols is None else tuple(c.strip() for c in feature_cols.split(",") if c.strip())
        spec = ItemsSpec(id_col=items_id_col, title_col=title_col, feature_cols=feats)
        return DataSource.from_files(data, columns, items=items, items_spec=spec, dedupe=dedupe)
    except (OSError, ValueError) as exc:
        _fail(str(exc))


def _report_problems(report: Any) -> None:
    """Warnings as ``warning: ...`` lines, errors as ``error: ...`` lines on stderr; exit 2 if any error."""
    for p in report.problems:
        typer.echo(f"{p.severity}: {p.message}", err=True)
    if not report.ok:
        raise typer.Exit(2)


@data_app.command("validate")
def data_validate(
    data: Annotated[Path, typer.Argument(help="Interactions: CSV, TSV, Parquet or JSON Lines.")],
    items: _ItemsFile = None,
    user_col: _UserCol = "user_id",
    item_col: _ItemCol = "item_id",
    time_col: _TimeCol = None,
    rating_col: _RatingCol = None,
    min_rating: _MinRating = None,
    title_col: _TitleCol = None,
    feature_cols: _FeatureCols = None,
    items_id_col: _ItemsIdCol = None,
    dedupe: _Dedupe = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Check an app's data file without training: the summary table and every problem (exit 2 on an error)."""
    source = _data_source(data, items, user_col, item_col, time_col, rating_col, min_rating, title_col,
                          feature_cols, dedupe, items_id_col)
    report = source.read(progress=not as_json)
    if as_json:
        _emit(report.to_dict() | {"data": {"path": source.path, "sha256": source.sha256,
                                           "items_path": source.items_path, "items_sha256": source.items_sha256}})
        if not report.ok:
            raise typer.Exit(2)
        return
    if report.summary is not None:
        report.summary.render(title=data.name)
    for note in report.notes:
        typer.echo(f"note: {note}")
    _report_problems(report)
    typer.echo(f"{data.name}: ok ({source.format}, sha256 {source.sha256[:16]}…)")


@app.command("train")
def train(
    out: Annotated[Path, typer.Option("--out", help="RUN_DIR to write weights, config and metrics into.")],
    mode: Annotated[str, typer.Option(help="central or federated.")] = "central",
    config: Annotated[Path | None, typer.Option("--config", help="JSON file overriding the training config.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    data: _DataFile = None,
    items: _ItemsFile = None,
    user_col: _UserCol = "user_id",
    item_col: _ItemCol = "item_id",
    time_col: _TimeCol = None,
    rating_col: _RatingCol = None,
    min_rating: _MinRating = None,
    title_col: _TitleCol = None,
    feature_cols: _FeatureCols = None,
    items_id_col: _ItemsIdCol = None,
    dedupe: _Dedupe = False,
) -> None:
    """Train a model on MovieLens-100K or an app's own data (--data), centrally or by simulated federated rounds."""
    overrides: dict[str, Any] = json.loads(config.read_text()) if config else {}
    if mode not in ("central", "federated"):
        _fail(f"--mode must be 'central' or 'federated'. Found {mode!r}.")
    source = loaded = None
    if data is not None:
        source = _data_source(data, items, user_col, item_col, time_col, rating_col, min_rating, title_col,
                              feature_cols, dedupe, items_id_col)
        report = source.read()
        _report_problems(report)
        report.summary.render(stderr=True, title=f"{data.name}")
        loaded = report.interactions
    elif items is not None:
        _fail("--items needs --data (the interactions it describes).")
    if mode == "central":
        from privrec.sdk.run import train_central_run

        train_central_run(out, overrides=overrides, seed=seed, data_source=source, data=loaded)
    else:
        from privrec.sdk.federated.run import train_federated_run

        train_federated_run(out, overrides=overrides, seed=seed, data_source=source, data=loaded)


@app.command("evaluate")
def evaluate(
    run_dir: Annotated[Path | None, typer.Argument(help="RUN_DIR written by `privrec train`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    baseline: Annotated[str | None, typer.Option(help="Evaluate a peer baseline instead: 'als'.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the baseline's training.")] = 0,
    data: Annotated[
        Path | None, typer.Option("--data", help="The run's data file moved elsewhere (default: the path the run recorded; "
                                                 "its sha256 must match; the run's column settings are used).")
    ] = None,
    items: Annotated[
        Path | None, typer.Option("--items", help="The run's item file moved elsewhere (its sha256 must match).")
    ] = None,
) -> None:
    """Evaluate HR@10 and NDCG@10 (sampled and full catalog) on the leave-one-out test items."""
    from privrec.sdk.run import evaluate_baseline, evaluate_run

    if data is not None or items is not None:
        if run_dir is None:
            _fail("--data and --items need a RUN_DIR trained on that data.")
            return
        try:
            result = evaluate_run(run_dir, data=data, items=items)
        except (OSError, ValueError) as exc:
            _fail(str(exc))
    elif baseline is not None:
        if baseline != "als":
            _fail(f"--baseline must be 'als'. Found {baseline!r}.")
        result = evaluate_baseline(baseline, seed=seed)
    elif run_dir is None:
        _fail("give a RUN_DIR, or --baseline als.")
        return
    else:
        try:
            result = evaluate_run(run_dir)
        except (OSError, ValueError) as exc:
            _fail(str(exc))
    if as_json:
        _emit(result)
    else:
        typer.echo(json.dumps(result, indent=2))


@app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="RUN_DIR written by `privrec train`.")],
    out: Annotated[Path, typer.Option("--out", help="BUNDLE_DIR to create.")],
    formats: Annotated[str, typer.Option(help="Comma-separated: onnx,tflite,coreml.")] = "onnx,tflite,coreml",
    precision: Annotated[str, typer.Option(help="float32, int8 or int4 (per-row scales; composes with --sparsity).")] = "float32",
    sparsity: Annotated[float, typer.Option(help="Prune the item table to this sparsity in [0, 1) before export.")] = 0.0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing non-empty BUNDLE_DIR.")] = False,
    coreml_ios16: Annotated[
        bool,
        typer.Option("--coreml-ios16", help="Also write the iOS 16-17 Core ML fallback (three packages; not for int4)."),
    ] = False,
    onnx_standard_ops: Annotated[
        bool,
        typer.Option(
            "--onnx-standard-ops",
            help="int8 ONNX graphs from standard ops (MatMulInteger), not onnxruntime's MatMulNBits: for the browser "
            "(onnxruntime-web) and other ONNX runtimes.",
        ),
    ] = False,
    sign_key: Annotated[
        Path | None,
        typer.Option("--sign-key", help="Ed25519 private key (PEM, from `privrec keys generate`): writes manifest.sig."),
    ] = None,
) -> None:
    """Write a versioned bundle with the requested artifacts, manifest and golden self-test (signed with --sign-key)."""
    from privrec.export.bundle import export_run

    try:
        path = export_run(
            run_dir, out, formats=tuple(f for f in formats.split(",") if f), precision=precision, sparsity=sparsity,
            overwrite=overwrite, sign_key=sign_key, coreml_targets=("iOS18", "iOS16") if coreml_ios16 else ("iOS18",),
            onnx_standard_ops=onnx_standard_ops,
        )
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    signed = "signed" if sign_key is not None else "UNSIGNED (apps refuse it unless they allow unsigned bundles)"
    typer.echo(f"bundle written to {path}, {signed}", err=True)


@app.command("verify")
def verify(
    bundle_dir: Annotated[Path, typer.Argument(help="BUNDLE_DIR written by `privrec export`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="The publisher's Ed25519 public key (base64 file): check manifest.sig first."),
    ] = None,
) -> None:
    """Check the signature (with --public-key), then every artifact × signature against a numpy reference."""
    from privrec.export.verify import verify_bundle

    try:
        report = verify_bundle(bundle_dir, public_key=public_key)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
        return
    if as_json:
        _emit(report)
    else:
        sig = report["signature"]
        typer.echo(f"signature {sig['status']}: {sig['detail']}")
        for c in report["checks"]:
            flag = "ok  " if c["ok"] else "FAIL"
            err = "n/a" if c["max_abs_err"] is None else f"{c['max_abs_err']:.2e}"
            fmt = c["format"] + (f"/{c['variant']}" if "variant" in c else "")
            typer.echo(f"{flag} {fmt:13s} {c['signature']:9s} {c['precision']:7s} max_abs_err={err} {c.get('error', '')}")
    if report["signature"]["status"] == "not_checked":
        typer.echo("warning: the signature was not checked (no --public-key): the bundle is not authenticated.", err=True)
    if not report["ok"]:
        raise typer.Exit(1)


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", help="Directory for the key pair (created if missing).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Create an Ed25519 key pair: a private key (PEM, mode 0600) to sign bundles, a public key for apps to pin."""
    from privrec.export.signing import generate_signing_key, key_id

    try:
        private_path, public_path = generate_signing_key(out)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
        return
    result = {"private_key": str(private_path), "public_key": str(public_path), "key_id": key_id(public_path)}
    if as_json:
        _emit(result)
    else:
        typer.echo(f"private key: {private_path} (secret: keep it off devices and out of version control)")
        typer.echo(f"public key:  {public_path} (pin it in the app; key id {result['key_id']})")


@app.command("privacy")
def privacy(
    sample_rate: Annotated[float, typer.Option("--sample-rate", help="Poisson sampling rate q in (0, 1].")],
    rounds: Annotated[int, typer.Option("--rounds", help="Number of rounds T.")],
    delta: Annotated[float, typer.Option("--delta", help="Target δ in (0, 1).")],
    noise_multiplier: Annotated[float | None, typer.Option("--noise-multiplier", help="Noise multiplier Z ≥ 0.")] = None,
    target_epsilon: Annotated[float | None, typer.Option("--target-epsilon", help="Calibrate Z to this ε instead.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """User-level (ε, δ) of the Poisson-subsampled Gaussian over T rounds (RDP and PLD accountants)."""
    from privrec.sdk.privacy.report import privacy_report

    try:
        result = privacy_report(
            noise_multiplier=noise_multiplier, sample_rate=sample_rate, rounds=rounds, delta=delta,
            target_epsilon=target_epsilon,
        )
    except (TypeError, ValueError) as exc:
        _fail(str(exc))
        return
    if as_json:
        _emit(result)
    else:
        typer.echo(json.dumps(result, indent=2))


@app.command("audit")
def audit(
    run_dir: Annotated[Path, typer.Argument(help="RUN_DIR written by `privrec train --mode federated`.")],
    canaries: Annotated[int, typer.Option("--canaries", help="Canary devices m (each included with probability ½).")] = 200,
    delta: Annotated[float | None, typer.Option("--delta", help="δ of the lower bound (default: the run's δ).")] = None,
    confidence: Annotated[float, typer.Option("--confidence", help="Confidence of the lower bound, in (0, 1).")] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Empirical privacy lower bound: re-train the run with canaries and record what an attacker learned."""
    try:
        from privrec.sdk.privacy.audit_canaries import AuditConfig, audit_run_dir

        config = AuditConfig(canaries=canaries, delta=delta, confidence=confidence)
        result, ledger = audit_run_dir(run_dir, audit=config)
    except (OSError, TypeError, ValueError) as exc:
        _fail(str(exc))
        return
    payload = {"run_dir": str(run_dir), "ledger": str(ledger), **result.to_dict()}
    if as_json:
        _emit(payload)
    else:
        typer.echo(json.dumps(payload, indent=2))


@app.command("plan")
def plan_run(
    users: Annotated[int, typer.Option("--users", help="N, the number of devices that will take part.")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="The user-level ε budget (> 0).")],
    delta: Annotated[float | None, typer.Option("--delta", help="δ in (0, 1/N) (default: min(N^-1.1, 1/(2N))).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Recommend (q, T, Z, C, cohort) for N devices at ε, and the quality ratio measured at that scale."""
    from privrec.sdk.privacy.plan import plan

    try:
        result = plan(users=users, epsilon=epsilon, delta=delta).to_dict()
    except (TypeError, ValueError) as exc:
        _fail(str(exc))
        return
    if as_json:
        _emit(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key}: {value}")


@app.command("serve")
def serve(
    db: Annotated[Path, typer.Option("--db", help="SQLite file holding the server's state.")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate chain: serve over TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
) -> None:
    """Run the aggregation server (FastAPI + uvicorn, SQLite state; TLS with --tls-cert/--tls-key)."""
    from privrec.server_stub.serve import serve as run_server

    run_server(db=db, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key)


@device_app.command("simulate")
def device_simulate(
    server: Annotated[str, typer.Option("--server", help="Base URL of `privrec serve`.")],
    devices: Annotated[int, typer.Option("--devices", help="How many devices (one MovieLens user each).")] = 50,
    dropout: Annotated[float, typer.Option("--dropout", help="Probability a device drops at each stage.")] = 0.0,
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds to take part in.")] = 1,
    admin_token: Annotated[
        str | None,
        typer.Option("--admin-token", envvar="PRIVREC_ADMIN_TOKEN",
                     help="The server's admin token, to issue each new device its one-time enrolment code."),
    ] = None,
    ca_cert: Annotated[Path | None, typer.Option("--ca-cert", help="CA certificate (PEM) of an https:// server.")] = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="The server's bundle-signing public key, pinned on every device "
                                          "(without it bundles are installed unchecked, with a warning)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Run N devices, each holding one MovieLens user's data, through federated rounds over HTTP(S)."""
    from privrec.testing.devices import simulate_devices

    result = simulate_devices(server=server, devices=devices, dropout=dropout, rounds=rounds, admin_token=admin_token,
                              verify=str(ca_cert) if ca_cert is not None else True, public_key=public_key)
    if as_json:
        _emit(result)


@app.command("bench")
def bench(
    what: Annotated[str, typer.Argument(help="all, latency, size, quality, aggregation or privacy.")] = "all",
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes and few repeats (under 2 minutes).")] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the reports: one subfolder per suite (the committed reports live here).")
    ] = Path("reports/bench"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    update_readme: Annotated[
        Path | None,
        typer.Option("--update-readme", help="Rewrite this README's results-privacy section from the privacy report."),
    ] = None,
) -> None:
    """Benchmarks: medians and ratios against baselines measured in the same run."""
    from privrec.bench import run_bench

    result = run_bench(what, quick=quick, out=out)
    if update_readme is not None and "privacy" in result:
        from privrec.demo import update_readme_section

        report = (out / "privacy" / "privacy_utility.md").read_text()
        update_readme_section(update_readme, "results-privacy", report.split("\n\n", 1)[1])  # without the title
    if as_json:
        _emit(result)


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for runs, bundles and the report.")] = Path("runs/demo"),
    seeds: Annotated[int, typer.Option(help="Seeds to average over.")] = 3,
    update_readme: Annotated[
        Path | None, typer.Option("--update-readme", help="Rewrite this README's results sections from the run.")
    ] = None,
) -> None:
    """The main job end to end on MovieLens-100K, ending with a table of quality and size per variant."""
    from privrec.demo import run_demo

    run_demo(out=out, seeds=seeds, update_readme=update_readme)


@app.command("tutorial")
def tutorial(
    no_pause: Annotated[bool, typer.Option("--no-pause", help="Do not wait for Enter between steps.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Smaller, shorter training (about 2 minutes on 2 cores).")] = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for the tutorial's bundle and plots.")] = Path("runs/tutorial"),
) -> None:
    """The interactive tutorial: data → model → on-device reconstruction → int8 → bundle → a private round → offline."""
    from privrec.tutorial import run_tutorial

    run_tutorial(out=out, quick=quick, pause=not no_pause)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def main() -> None:
    """Console-script entry point: a refused input or a failed command is one line on stderr and exit code 2
    (``PRIVREC_DEBUG=1`` shows the traceback instead)."""
    import os

    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        typer.echo("privrec: interrupted", err=True)
        raise SystemExit(130) from None
    except Exception as exc:  # every error reaches the user as one line; the traceback is opt-in
        if os.environ.get("PRIVREC_DEBUG") == "1":
            raise
        typer.echo(f"error: {type(exc).__name__}: {_one_line(exc)}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
