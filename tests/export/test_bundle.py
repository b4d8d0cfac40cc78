"""The bundle writer (export/bundle.py): end to end over every format, atomicity, inputs, export_run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from privrec.export import (
    ArtifactRecord,
    BundleWarning,
    ExportConfig,
    export_bundle,
    export_format,
    export_onnx,
    export_run,
    load_manifest,
    register_exporter,
    verify_bundle,
)
from privrec.export.base import Exportable, Precision
from privrec.export.manifest import bundle_signatures
from privrec.runtime import Recommender
from privrec.sdk.model import ItemModel, TrainedModel
from privrec.sdk.quantize import QuantizedItemModel
from privrec.sdk.reconstruct import FinetuneConfig


def _no_runner(bundle_dir: Path, record: ArtifactRecord) -> object:
    raise RuntimeError("test-only format: nothing to run")


@register_exporter("test_failing", _no_runner)  # type: ignore[arg-type]
def _failing(model: Exportable, bundle_dir: Path, config: ExportConfig) -> ArtifactRecord:
    (bundle_dir / "half.bin").write_bytes(b"partial")
    raise RuntimeError("exporter crashed half-way")


@register_exporter("test_stray", _no_runner)  # type: ignore[arg-type]
def _stray(model: Exportable, bundle_dir: Path, config: ExportConfig) -> ArtifactRecord:
    (bundle_dir / "listed.bin").write_bytes(b"x")
    (bundle_dir / "unlisted.tmp").write_bytes(b"y")
    precision: Precision = "int8" if isinstance(model, QuantizedItemModel) else "float32"
    return ArtifactRecord(
        format="test_stray",
        precision=precision,
        files=("listed.bin",),
        signatures=bundle_signatures(model.dim, model.num_items, config.top_k),
    )


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_all_runnable_formats_end_to_end(
    tmp_path: Path, small_model: ItemModel, runnable_formats: tuple[str, ...], precision: str
) -> None:
    formats = tuple(f for f in runnable_formats if not f.startswith("test_"))
    assert "onnx" in formats
    bundle = export_bundle(small_model, tmp_path / "b", formats=formats, precision=precision)  # type: ignore[arg-type]
    m = load_manifest(bundle)
    assert m.formats == tuple(sorted(formats))
    assert all(a["precision"] == precision for a in m.artifacts.values())
    report = verify_bundle(bundle)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert report["ok"], failed
    assert {c["format"] for c in report["checks"]} == {"golden", *formats}


def test_int8_export_quantizes_and_records_measured_sparsity(tmp_path: Path, small_model: ItemModel) -> None:
    v = small_model.item_embedding.copy()
    v[:, :2] = 0.0  # a quarter of the table is exactly zero
    model = ItemModel(v, small_model.item_bias)
    bundle = export_bundle(model, tmp_path / "b", formats=("onnx",), precision="int8", sparsity=0.25)
    weights = load_file(str(bundle / "weights.safetensors"))
    assert weights["item_embedding"].dtype == np.int8
    assert set(weights) == {"item_embedding", "item_scale", "item_bias"}
    manifest = json.loads((bundle / "manifest.json").read_text())
    # Measured on the int8 table: the zeroed quarter plus entries that round to 0.
    assert manifest["precision"] == "int8"
    assert manifest["sparsity"] == float((weights["item_embedding"] == 0).mean()) >= 0.25
    assert manifest["artifacts"]["onnx"]["precision"] == "int8"


def test_pruned_int8_model_through_every_format(
    tmp_path: Path, small_model: ItemModel, runnable_formats: tuple[str, ...]
) -> None:
    """A half-zero table with sparsity=0.5 (Core ML adds its iOS18 sparse variant) still verifies."""
    from privrec.sdk.prune import magnitude_prune

    pruned, _ = magnitude_prune(small_model, 0.5)
    formats = tuple(f for f in runnable_formats if not f.startswith("test_"))
    bundle = export_bundle(pruned, tmp_path / "b", formats=formats, precision="int8", sparsity=0.5)
    assert load_manifest(bundle).sparsity >= 0.5
    report = verify_bundle(bundle)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]


def test_failed_export_leaves_nothing_behind(tmp_path: Path, small_model: ItemModel) -> None:
    with pytest.raises(RuntimeError, match="exporter crashed half-way"):
        export_bundle(small_model, tmp_path / "b", formats=("onnx", "test_failing"))
    assert list(tmp_path.iterdir()) == []


def test_files_no_artifact_lists_are_refused(tmp_path: Path, small_model: ItemModel) -> None:
    with pytest.raises(ValueError, match=r"exporters left files no artifact lists: \['unlisted\.tmp'\]"):
        export_bundle(small_model, tmp_path / "b", formats=("onnx", "test_stray"))
    assert list(tmp_path.iterdir()) == []


def test_existing_bundle_is_kept_unless_overwrite(tmp_path: Path, small_model: ItemModel) -> None:
    out = export_bundle(small_model, tmp_path / "b", formats=("onnx",))
    first = load_manifest(out).files["weights.safetensors"]["sha256"]
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        export_bundle(small_model, out, formats=("onnx",))
    other = ItemModel(small_model.item_embedding * 2, small_model.item_bias)
    export_bundle(other, out, formats=("onnx",), overwrite=True)
    assert load_manifest(out).files["weights.safetensors"]["sha256"] != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    (tmp_path / "empty").mkdir()
    export_bundle(small_model, tmp_path / "empty", formats=("onnx",))  # an empty directory is fine
    load_manifest(tmp_path / "empty")


def test_metadata_finetune_and_privacy_reach_the_manifest(tmp_path: Path, small_model: ItemModel) -> None:
    items = [{"index": i, "id": 1000 + i, "title": f"Movie {i}"} for i in reversed(range(200))]
    privacy = {"mode": "central", "ledger": [{"round": 1, "epsilon": 0.5}]}
    out = export_bundle(
        small_model,
        tmp_path / "b",
        formats=("onnx",),
        items=items,
        privacy=privacy,
        top_k=5,
        finetune=FinetuneConfig(steps=3, lr=0.5, l2=0.01),
    )
    m = load_manifest(out)
    assert m.items[0] == {"index": 0, "id": "1000", "title": "Movie 0"}
    assert m.privacy == privacy
    assert m.finetune == {"steps": 3, "lr": 0.5, "l2": 0.01, "calls": 20, "recency_half_life": None}
    assert m.top_k == 5 and m.artifacts["onnx"]["details"]["finetune_steps"] == 3
    with pytest.warns(BundleWarning, match="without checking its signature"):
        assert Recommender.load(out, allow_unsigned=True).items[199]["title"] == "Movie 199"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"formats": ()}, ValueError, r"`formats` must name at least one format\. Found none\."),
        ({"formats": "onnx"}, TypeError, r"`formats` must be a sequence of format names"),
        ({"formats": ("onnx", "onnx")}, ValueError, r"must not repeat a format\. Found \['onnx'\]"),
        ({"formats": ("pmml",)}, ValueError, r"unknown format 'pmml'\. Expected one of \["),
        ({"precision": "int2"}, ValueError, r"`precision` must be one of \['float32', 'int8', 'int4'\]\. Found 'int2'\."),
        (
            {"top_k": 201},
            ValueError,
            r"`top_k` must be an int in \[1, 200\] \(the number of items\)\. Found 201\.",
        ),
        ({"sparsity": 1.0}, ValueError, r"`sparsity` must be in \[0, 1\)\. Found 1\.0\."),
        (
            {"items": [{"index": 0, "id": "a"}]},
            ValueError,
            r"`items` must hold exactly one entry per model row 0\.\.199",
        ),
        ({"privacy": ["x"]}, TypeError, r"`privacy` must be a dict"),
        ({"finetune": {"steps": 3}}, TypeError, r"`finetune` must be a FinetuneConfig"),
    ],
)
def test_bad_arguments_are_refused_before_writing(
    tmp_path: Path, small_model: ItemModel, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    kwargs = {"formats": ("onnx",), **kwargs}
    with pytest.raises(error, match=message):
        export_bundle(small_model, tmp_path / "b", **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_quantized_model_cannot_be_exported_as_float32(tmp_path: Path, small_qmodel: QuantizedItemModel) -> None:
    with pytest.raises(ValueError, match=r"`precision` must be 'int8' for a QuantizedItemModel"):
        export_bundle(small_qmodel, tmp_path / "b", formats=("onnx",), precision="float32")
    out = export_bundle(small_qmodel, tmp_path / "b", formats=("onnx",))  # precision follows the model
    assert load_manifest(out).precision == "int8"


def test_single_format_export(tmp_path: Path, small_model: ItemModel) -> None:
    record = export_onnx(small_model, tmp_path / "onnx_only", precision="int8", top_k=3)
    assert record.format == "onnx" and record.precision == "int8"
    assert sorted(p.name for p in (tmp_path / "onnx_only").iterdir()) == sorted(record.files)
    record2 = export_format(small_model, tmp_path / "again", "onnx")
    assert record2.precision == "float32"


def _synthetic_run(run_dir: Path, model: ItemModel) -> None:
    users = np.random.default_rng(3).normal(size=(5, model.dim)).astype(np.float32)
    TrainedModel(items=model, user_embedding=users).save(
        run_dir, {"mode": "central", "dataset": "synthetic", "finetune": {"steps": 4, "lr": 0.25, "l2": 0.0}}
    )
    items = [{"index": i, "id": str(i + 1), "title": f"t{i}"} for i in range(model.num_items)]
    (run_dir / "items.json").write_text(json.dumps(items))
    (run_dir / "privacy_ledger.json").write_text(json.dumps({"mode": "off", "ledger": []}))


def test_export_run_reads_config_items_and_ledger(tmp_path: Path, small_model: ItemModel) -> None:
    _synthetic_run(tmp_path / "run", small_model)
    out = export_run(tmp_path / "run", tmp_path / "bundle", formats=("onnx",), precision="int8")
    m = load_manifest(out)
    assert m.finetune == {"steps": 4, "lr": 0.25, "l2": 0.0, "calls": 20, "recency_half_life": None}
    assert m.items[3] == {"index": 3, "id": "4", "title": "t3"}
    assert m.privacy == {"mode": "off", "ledger": []}
    assert m.precision == "int8" and m.sparsity < 0.05
    assert verify_bundle(out)["ok"]


def test_export_run_prunes_when_asked(tmp_path: Path, small_model: ItemModel) -> None:
    _synthetic_run(tmp_path / "run", small_model)
    out = export_run(tmp_path / "run", tmp_path / "bundle", formats=("onnx",), precision="float32", sparsity=0.5)
    m = load_manifest(out)
    assert m.sparsity == 0.5
    assert verify_bundle(out)["ok"]


def test_cli_export_and_verify(tmp_path: Path, small_model: ItemModel) -> None:
    _synthetic_run(tmp_path / "run", small_model)
    cli = [sys.executable, "-m", "privrec"]
    done = subprocess.run(
        [
            *cli,
            "export",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "b"),
            "--formats",
            "onnx",
            "--precision",
            "int8",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*cli, "verify", str(tmp_path / "b"), "--json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and len(report["checks"]) == 6
    assert report["signature"]["status"] == "not_checked"
    (tmp_path / "b" / "model.onnx.data").write_bytes(b"\0")
    done = subprocess.run([*cli, "verify", str(tmp_path / "b"), "--json"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert "model.onnx.data: size mismatch" in done.stderr


def test_cli_keys_export_signed_and_verify_the_signature(tmp_path: Path, small_model: ItemModel) -> None:
    _synthetic_run(tmp_path / "run", small_model)
    cli = [sys.executable, "-m", "privrec"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, check=False)

    done = run("keys", "generate", "--out", str(tmp_path / "keys"), "--json")
    assert done.returncode == 0, done.stderr
    keys = json.loads(done.stdout)
    assert set(keys) == {"private_key", "public_key", "key_id"}
    assert (Path(keys["private_key"]).stat().st_mode & 0o777) == 0o600
    assert run("keys", "generate", "--out", str(tmp_path / "keys")).returncode == 2  # never overwrites a key

    done = run("export", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--formats", "onnx",
               "--sign-key", keys["private_key"])
    assert done.returncode == 0, done.stderr
    assert "signed" in done.stderr and (tmp_path / "b" / "manifest.sig").is_file()

    done = run("verify", str(tmp_path / "b"), "--json", "--public-key", keys["public_key"])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["signature"]["status"] == "ok"
    assert report["signature"]["key_id"] == keys["key_id"]

    done = run("verify", str(tmp_path / "b"), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["signature"]["status"] == "not_checked"
    assert "the signature was not checked" in done.stderr

    other = run("keys", "generate", "--out", str(tmp_path / "other"), "--json")
    done = run("verify", str(tmp_path / "b"), "--json", "--public-key", json.loads(other.stdout)["public_key"])
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert (report["ok"], report["signature"]["status"], report["checks"]) == (False, "bad", [])
    assert "not the pinned public key" in report["signature"]["detail"]

    done = run("verify", str(tmp_path / "b"), "--public-key", str(tmp_path / "missing.pub"))
    assert done.returncode == 2 and "missing.pub" in done.stderr


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_large_catalog_exports_and_verifies(
    tmp_path: Path, make_model: Callable[..., ItemModel], runnable_formats: tuple[str, ...], precision: str
) -> None:
    """100,000 items × 32: ONNX in float32, every format whose module imports here in int8 (the harder
    path: int8 storage must survive each converter), keeping the suite's time in budget."""
    formats = tuple(f for f in runnable_formats if not f.startswith("test_")) if precision == "int8" else ("onnx",)
    bundle = export_bundle(make_model(100_000, 32), tmp_path / "b", formats=formats, precision=precision)  # type: ignore[arg-type]
    report = verify_bundle(bundle)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    assert {c["format"] for c in report["checks"]} == {"golden", *formats}


@pytest.mark.data
@pytest.mark.xdist_group("ml100k")  # one worker trains the session's ML-100K run, not every worker
@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_ml100k_bundle_verifies_in_every_format(
    ml100k_run_dir: Path, tmp_path: Path, runnable_formats: tuple[str, ...], precision: str
) -> None:
    formats = tuple(f for f in runnable_formats if not f.startswith("test_"))
    bundle = export_run(ml100k_run_dir, tmp_path / "b", formats=formats, precision=precision)
    m = load_manifest(bundle)
    assert (m.num_items, m.precision, m.formats) == (1682, precision, tuple(sorted(formats)))
    report = verify_bundle(bundle)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    assert {c["format"] for c in report["checks"]} == {"golden", *formats}
