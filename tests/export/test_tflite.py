"""The TFLite exporter and its LiteRT runner, checked with the real interpreters.

Parity is against the numpy reference over the exported weights (dequantized for int8): float32 max abs
error ≤ 1e-4, int8 ≤ 2e-2 and equal top-K sets up to ties (docs/BUNDLE.md). The int8 ``recommend`` is
held to more: the exact top-K and exact scores (property tests), with its scan inside the proven bound.
The 2.14 test runs the same files in ``tflite-runtime`` 2.14 from the second environment ``.venv-tflite214``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from privrec.export.base import ArtifactRecord, CatalogScorer, ExportConfig, get_exporter, get_runner_factory, score_catalog
from privrec.export.manifest import bundle_signatures
from privrec.export.tflite import (
    CATALOG_SIGNATURE,
    QUANT_ERROR,
    ROUNDING,
    SCAN_MIN_ITEMS,
    SCAN_RATIO,
    TFLITE_FILE,
    TFLiteRunner,
    _Blocks,
    _blocks,
    _Bound,
    _bound,
    _compact,
    _convert,
    export,
)
from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import QuantizedItemModel, quantize_int8
from privrec.sdk.reconstruct import finetune_reference

pytestmark = pytest.mark.xdist_group("tflite")

REPO = Path(__file__).resolve().parents[2]
TFLITE214_PYTHON = REPO / ".venv-tflite214" / "bin" / "python"
PARITY_SCRIPT = Path(__file__).with_name("tflite214_parity.py")

NUM_ITEMS, DIM = 200, 8
CONFIG = ExportConfig(top_k=10, finetune_steps=10)
TOL = {"float32": 1e-4, "int8": 2e-2}
LR, L2 = 1.0, 1e-3
PRECISIONS = ("float32", "int8")
SIZES = (1, 23, NUM_ITEMS)  # one item, some, the full catalog


def synthetic_model(num_items: int, dim: int, seed: int) -> ItemModel:
    """A seeded random model with score spreads like a trained one (|s| of order 1)."""
    rng = np.random.default_rng(seed)
    emb = (rng.normal(size=(num_items, dim)) * 0.3).astype(np.float32)
    bias = (rng.normal(size=num_items) * 0.1).astype(np.float32)
    return ItemModel(item_embedding=emb, item_bias=bias)


@dataclass(frozen=True)
class Exported:
    """One exported precision: what went in, the numpy reference, and the loaded runner."""

    precision: str
    model: ItemModel | QuantizedItemModel
    reference: ItemModel
    bundle_dir: Path
    record: ArtifactRecord
    runner: TFLiteRunner


def _export(model: ItemModel | QuantizedItemModel, out: Path, config: ExportConfig = CONFIG) -> Exported:
    record = export(model, out, config)
    reference = model.dequantize() if isinstance(model, QuantizedItemModel) else model
    runner = TFLiteRunner(out / TFLITE_FILE)
    return Exported(record.precision, model, reference, out, record, runner)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    model = synthetic_model(NUM_ITEMS, DIM, seed=7)
    root = tmp_path_factory.mktemp("tflite")
    return {
        "float32": _export(model, root / "float32"),
        "int8": _export(quantize_int8(model), root / "int8"),
    }


def _ids(rng: np.random.Generator, n: int, num_items: int) -> NDArray[np.int32]:
    if n == num_items:
        return rng.permutation(num_items).astype(np.int32)
    return rng.integers(0, num_items, n).astype(np.int32)


def _max_err(got: NDArray[Any], want: NDArray[Any]) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))


def _assert_top_k(
    top_ids: NDArray[np.int32], top_scores: NDArray[np.float32], ref_scores: NDArray[np.float32], tol: float
) -> None:
    """``top_ids`` is a top-K of ``ref_scores`` up to ties, and its scores match, highest first."""
    k = top_ids.size
    kth = ref_scores[np.argsort(-ref_scores, kind="stable")[k - 1]]
    got = ref_scores[top_ids]
    assert len(set(top_ids.tolist())) == k
    if np.isfinite(kth):  # every returned id scores at least the K-th reference score (within tol) ...
        assert np.all(got >= kth - tol)
    # ... and every id clearly above the K-th score is returned (with K > eligible: every eligible id).
    assert set(np.flatnonzero(ref_scores > kth + tol).tolist()) <= set(top_ids.tolist())
    finite = np.isfinite(got)
    np.testing.assert_array_equal(np.isfinite(top_scores), finite)
    assert np.all(np.diff(top_scores[finite]) <= 0), "scores must be sorted, highest first"
    assert _max_err(top_scores[finite], got[finite]) <= tol


# -- the record and the registry -----------------------------------------------------------------------------


def test_registry_returns_this_exporter_and_a_working_runner(exported: dict[str, Exported]) -> None:
    assert get_exporter("tflite") is export
    e = exported["float32"]
    runner = get_runner_factory("tflite")(e.bundle_dir, e.record)
    user = np.linspace(-1, 1, DIM, dtype=np.float32)
    np.testing.assert_allclose(
        runner.score(user, np.array([3, 0], np.int32)), e.reference.score(user, [3, 0]), atol=1e-6
    )


@pytest.mark.parametrize("precision", PRECISIONS)
def test_record_describes_the_file(exported: dict[str, Exported], precision: str) -> None:
    e = exported[precision]
    assert e.record.format == "tflite"
    assert e.record.precision == precision
    assert e.record.files == ("model.tflite",)
    assert (e.bundle_dir / "model.tflite").is_file()
    assert e.record.signatures == bundle_signatures(DIM, NUM_ITEMS, 10)
    assert e.record.details["table_dtype"] == ("int8" if precision == "int8" else "float32")
    assert e.record.details["finetune_steps"] == 10
    assert e.record.details[CATALOG_SIGNATURE] is False  # below SCAN_MIN_ITEMS: no whole-catalog signature
    json.dumps(e.record.details)  # the manifest stores details as JSON


@pytest.mark.parametrize("precision", PRECISIONS)
def test_signatures_names_dtypes_and_shapes_in_the_interpreter(
    exported: dict[str, Exported], precision: str
) -> None:
    e = exported[precision]
    interpreter = Interpreter(model_path=str(e.bundle_dir / TFLITE_FILE), num_threads=1)
    assert interpreter.get_signature_list() == {
        "finetune": {"inputs": ["item_ids", "l2", "labels", "lr", "user"], "outputs": ["loss", "user_out"]},
        "recommend": {"inputs": ["mask", "user"], "outputs": ["top_ids", "top_scores"]},
        "score": {"inputs": ["item_ids", "user"], "outputs": ["scores"]},
    }
    for name, (inputs, outputs) in e.record.signatures.items():
        runner = interpreter.get_signature_runner(name)
        found = {**runner.get_input_details(), **runner.get_output_details()}
        for spec in (*inputs, *outputs):
            assert np.dtype(found[spec.name]["dtype"]) == np.dtype(spec.dtype), (name, spec.name)
            assert tuple(int(s) for s in found[spec.name]["shape_signature"]) == spec.shape, (name, spec.name)


def _constants(path: Path) -> list[tuple[int, int, tuple[int, ...]]]:
    """(buffer index, TensorType, shape) of every tensor backed by data in the flatbuffer."""
    fb = schema.Model.GetRootAs(path.read_bytes(), 0)
    out = []
    for si in range(fb.SubgraphsLength()):
        graph = fb.Subgraphs(si)
        for ti in range(graph.TensorsLength()):
            t = graph.Tensors(ti)
            if fb.Buffers(t.Buffer()).DataLength() > 0:
                out.append((t.Buffer(), t.Type(), tuple(int(s) for s in t.ShapeAsNumpy())))
    return out


def _builtin_ops(path: Path) -> set[int]:
    fb = schema.Model.GetRootAs(path.read_bytes(), 0)
    return {
        max(fb.OperatorCodes(i).BuiltinCode(), fb.OperatorCodes(i).DeprecatedBuiltinCode())
        for i in range(fb.OperatorCodesLength())
    }


@pytest.mark.parametrize("precision", PRECISIONS)
def test_flatbuffer_stores_the_table_in_its_precision_and_uses_builtin_ops(
    exported: dict[str, Exported], precision: str
) -> None:
    # A 200×8 table is small enough for the converter to fold cast(int8) * scale into float32 if allowed.
    path = exported[precision].bundle_dir / TFLITE_FILE
    consts = _constants(path)
    big = {(t, shape) for _, t, shape in consts if int(np.prod(shape)) >= NUM_ITEMS * DIM}
    want = schema.TensorType.INT8 if precision == "int8" else schema.TensorType.FLOAT32
    assert big == {(want, (NUM_ITEMS, DIM))}
    # Each constant is stored once (the three signatures share buffers): count unique buffers.
    floats = {buf: int(np.prod(shape)) for buf, t, shape in consts if t == schema.TensorType.FLOAT32}
    if precision == "int8":
        assert sum(floats.values()) <= 2 * NUM_ITEMS + 64  # scale and bias (one float per item), scalars
    ops = _builtin_ops(path)
    assert schema.BuiltinOperator.CUSTOM not in ops  # no Flex / custom ops: plain LiteRT and 2.14 run it
    assert schema.BuiltinOperator.TOPK_V2 in ops


# -- parity --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_score_parity(exported: dict[str, Exported], precision: str, n: int) -> None:
    e = exported[precision]
    rng = np.random.default_rng(n)
    user = rng.normal(size=DIM).astype(np.float32)
    ids = _ids(rng, n, NUM_ITEMS)
    got = e.runner.score(user, ids)
    assert got.dtype == np.float32 and got.shape == (n,)
    ref = e.reference.item_embedding.astype(np.float64)[ids] @ user + e.reference.item_bias[ids]
    assert _max_err(got, ref) <= TOL[precision]


@settings(max_examples=30, deadline=None)
@given(ids=st.lists(st.integers(0, NUM_ITEMS - 1), min_size=1, max_size=60), seed=st.integers(0, 2**16))
def test_score_parity_for_any_ids(exported: dict[str, Exported], ids: list[int], seed: int) -> None:
    user = np.random.default_rng(seed).normal(size=DIM).astype(np.float32) * 3
    for precision in PRECISIONS:
        e = exported[precision]
        got = e.runner.score(user, np.array(ids, np.int32))
        assert _max_err(got, e.reference.score(user, ids)) <= TOL[precision]


@pytest.mark.parametrize("excluded", [0, 60, NUM_ITEMS - 3])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_recommend_parity(exported: dict[str, Exported], precision: str, excluded: int) -> None:
    e = exported[precision]
    rng = np.random.default_rng(excluded)
    user = rng.normal(size=DIM).astype(np.float32)
    mask = np.zeros(NUM_ITEMS, np.float32)
    mask[rng.choice(NUM_ITEMS, excluded, replace=False)] = -np.inf
    top_ids, top_scores = e.runner.recommend(user, mask)
    assert top_ids.dtype == np.int32 and top_scores.dtype == np.float32
    assert top_ids.shape == top_scores.shape == (10,)
    ref = e.reference.score(user) + mask
    _assert_top_k(top_ids, top_scores, ref, TOL[precision])
    if excluded == NUM_ITEMS - 3:  # K > eligible: the 3 eligible items first, then excluded ones (-inf)
        assert set(top_ids[:3].tolist()) == set(np.flatnonzero(mask == 0).tolist())
        assert np.all(np.isinf(top_scores[3:]))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_recommend_ties_go_to_the_lower_index(tmp_path: Path, precision: str) -> None:
    zero = ItemModel(np.zeros((30, 4), np.float32), np.zeros(30, np.float32))
    model = quantize_int8(zero) if precision == "int8" else zero
    e = _export(model, tmp_path, ExportConfig(top_k=8))
    mask = np.zeros(30, np.float32)
    mask[[0, 2, 5]] = -np.inf
    top_ids, top_scores = e.runner.recommend(np.ones(4, np.float32), mask)
    # Same rule as ItemModel.recommend (stable sort): all scores tie, so ids ascend, skipping excluded.
    ref_ids, _ = zero.recommend(np.ones(4, np.float32), k=8, exclude=[0, 2, 5])
    np.testing.assert_array_equal(top_ids, ref_ids)
    np.testing.assert_array_equal(top_ids, [1, 3, 4, 6, 7, 8, 9, 10])
    np.testing.assert_array_equal(top_scores, np.zeros(8, np.float32))


@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_finetune_parity(exported: dict[str, Exported], precision: str, m: int) -> None:
    e = exported[precision]
    rng = np.random.default_rng(100 + m)
    user = (rng.normal(size=DIM) * 0.5).astype(np.float32)
    ids = _ids(rng, m, NUM_ITEMS)
    labels = (rng.random(m) < 0.3).astype(np.float32)
    labels[0] = 1.0
    got_u, got_loss = e.runner.finetune(
        user, ids, labels, np.array([LR], np.float32), np.array([L2], np.float32)
    )
    assert got_u.dtype == got_loss.dtype == np.float32
    assert got_u.shape == (DIM,) and got_loss.shape == (1,)
    ref_u, ref_loss = finetune_reference(
        user, e.reference.item_embedding, e.reference.item_bias, ids, labels, lr=LR, l2=L2, steps=10
    )
    assert _max_err(got_u, ref_u) <= TOL[precision]
    assert _max_err(got_loss, np.array([ref_loss])) <= TOL[precision]
    assert not np.allclose(got_u, user)  # the steps moved the vector: the check has teeth


@settings(max_examples=20, deadline=None)
@given(
    labels=st.lists(st.floats(0.0, 5.0, width=32), min_size=1, max_size=40),
    lr=st.floats(0.01, 1.0),
    l2=st.floats(0.0, 0.1),
    seed=st.integers(0, 2**16),
)
def test_finetune_parity_for_any_labels_lr_l2(
    exported: dict[str, Exported], labels: list[float], lr: float, l2: float, seed: int
) -> None:
    # Includes all-zero labels: y = labels / max(sum, 1e-12) = 0, the gradient is the L2 term alone.
    e = exported["float32"]
    rng = np.random.default_rng(seed)
    user = rng.normal(size=DIM).astype(np.float32)
    ids = rng.integers(0, NUM_ITEMS, len(labels)).astype(np.int32)
    lab = np.array(labels, np.float32)
    lr32, l232 = np.float32(lr), np.float32(l2)
    got_u, got_loss = e.runner.finetune(user, ids, lab, np.array([lr32]), np.array([l232]))
    ref_u, ref_loss = finetune_reference(
        user, e.model.item_embedding, e.model.item_bias, ids, lab, lr=float(lr32), l2=float(l232), steps=10
    )
    assert _max_err(got_u, ref_u) <= 1e-4
    assert abs(float(got_loss[0]) - ref_loss) <= 1e-4


# -- errors --------------------------------------------------------------------------------------------------


def test_export_refuses_a_non_model(tmp_path: Path) -> None:
    with pytest.raises(
        TypeError, match=r"`model` must be an ItemModel or a QuantizedItemModel\. Found dict\."
    ):
        export({"item_embedding": 1}, tmp_path, CONFIG)  # type: ignore[arg-type]


def test_runner_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No TFLite model at"):
        TFLiteRunner(tmp_path / "model.tflite")


def test_finetune_refuses_no_items(exported: dict[str, Exported]) -> None:
    one = np.ones(1, np.float32)
    with pytest.raises(
        ValueError, match=r"`item_ids` must hold at least one item for `finetune`\. Found 0\."
    ):
        exported["float32"].runner.finetune(
            np.zeros(DIM, np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32), one, one
        )


def test_top_k_larger_than_the_catalog_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"`top_k` must be <= num_items \(6\)\. Found 10\."):
        export(synthetic_model(6, 3, seed=1), tmp_path, ExportConfig(top_k=10))


# -- size ----------------------------------------------------------------------------------------------------


def test_int8_file_size_1682x32_and_1682x128(tmp_path: Path) -> None:
    """int8 saves exactly the table bytes: ``int8 ≈ float32 − 3·n·d + 4·n`` (the per-row scale).

    The graph (about 170 ops and ~13 KB after compaction, mostly the unrolled fine-tune) and the float32 bias
    are the same in both files, except that the int8 ``recommend`` has about 35 more ops (the hybrid scan,
    the block threshold and the exact re-rank, about 3.7 KB), so the ratio is ``(d + 8) / (4d + 4)`` plus
    overhead: at d = 32 the weights alone give 0.303 and the file 0.358 (84,272 / 235,296 bytes), above 0.30
    by arithmetic; at d = 128 it is 0.28 (245,744 / 881,184).
    """
    sizes: dict[tuple[int, str], int] = {}
    for dim in (32, 128):
        model = synthetic_model(1682, dim, seed=dim)
        for precision, m in (("float32", model), ("int8", quantize_int8(model))):
            out = tmp_path / f"{dim}-{precision}"
            export(m, out, CONFIG)
            sizes[dim, precision] = (out / TFLITE_FILE).stat().st_size
    n = 1682
    for dim in (32, 128):
        f32, i8 = sizes[dim, "float32"], sizes[dim, "int8"]
        assert f32 >= 4 * n * dim + 4 * n  # the float table and bias are really in the float file
        assert i8 <= f32 - 3 * n * dim + 4 * n + 6144, sizes  # only the table shrank; the graph grew ~1 KB
    assert sizes[128, "int8"] <= 0.30 * sizes[128, "float32"], sizes
    print(f"tflite sizes (bytes): {sizes}; ratio d=32 {sizes[32, 'int8'] / sizes[32, 'float32']:.3f}")


def test_100k_catalog_exports_and_passes_parity(tmp_path: Path) -> None:
    n, dim = 100_000, 32
    model = synthetic_model(n, dim, seed=11)
    rng = np.random.default_rng(0)
    user = rng.normal(size=dim).astype(np.float32)
    ids = rng.integers(0, n, 1000).astype(np.int32)
    labels = (rng.random(ids.size) < 0.05).astype(np.float32)
    labels[0] = 1.0
    mask = np.zeros(n, np.float32)
    mask[rng.choice(n, 500, replace=False)] = -np.inf
    for precision, m in (("float32", model), ("int8", quantize_int8(model))):
        e = _export(m, tmp_path / precision)
        tol = TOL[precision]
        assert _max_err(e.runner.score(user, ids), e.reference.score(user, ids)) <= tol
        top_ids, top_scores = e.runner.recommend(user, mask)
        _assert_top_k(top_ids, top_scores, e.reference.score(user) + mask, tol)
        got_u, got_loss = e.runner.finetune(
            user, ids, labels, np.array([LR], np.float32), np.array([L2], np.float32)
        )
        ref_u, ref_loss = finetune_reference(
            user, e.reference.item_embedding, e.reference.item_bias, ids, labels, lr=LR, l2=L2, steps=10
        )
        assert _max_err(got_u, ref_u) <= tol
        assert abs(float(got_loss[0]) - ref_loss) <= tol


# -- tflite-runtime 2.14 -------------------------------------------------------------------------------------


def _cases_2_14(exported: dict[str, Exported]) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    rng = np.random.default_rng(214)
    for precision in PRECISIONS:
        e = exported[precision]
        tol = TOL[precision]
        ref = e.reference
        user = rng.normal(size=DIM).astype(np.float32)
        for n in SIZES:
            ids = _ids(rng, n, NUM_ITEMS)
            cases.append({
                "model": precision, "signature": "score", "tolerance": tol,
                "inputs": {"user": user.tolist(), "item_ids": ids.tolist()},
                "expected": {"scores": ref.score(user, ids).tolist()},
            })  # fmt: skip
            labels = (rng.random(n) < 0.3).astype(np.float32)
            labels[0] = 1.0
            u, loss = finetune_reference(
                user, ref.item_embedding, ref.item_bias, ids, labels, lr=LR, l2=L2, steps=10
            )
            cases.append({
                "model": precision, "signature": "finetune", "tolerance": tol,
                "inputs": {"user": user.tolist(), "item_ids": ids.tolist(), "labels": labels.tolist(),
                           "lr": [LR], "l2": [L2]},
                "expected": {"user_out": u.tolist(), "loss": [loss]},
            })  # fmt: skip
        for excluded in (40, NUM_ITEMS - 3):  # K > eligible: -inf fills the tail (int8: tau = -inf)
            exclude = rng.choice(NUM_ITEMS, excluded, replace=False)
            top_ids, top_scores = ref.recommend(user, k=10, exclude=exclude)
            cases.append({
                "model": precision, "signature": "recommend", "tolerance": tol, "num_items": NUM_ITEMS,
                "inputs": {"user": user.tolist(), "exclude": exclude.tolist()},
                "expected": {"top_ids": top_ids.tolist(), "top_scores": top_scores.tolist()},
            })  # fmt: skip
    return cases


def _padded_cases_2_14(scan_models: _ScanModels) -> list[dict[str, Any]]:
    """int8 ``recommend`` on the padded 997-item export, against the exact scores (tolerance 1e-5)."""
    q, _ = scan_models["prime"]
    num_items, dim = q.item_embedding.shape
    rng = np.random.default_rng(997)
    cases: list[dict[str, Any]] = []
    for excluded in (0, 300, num_items - 3):
        user = rng.normal(size=dim).astype(np.float32)
        exclude = rng.choice(num_items, excluded, replace=False)
        mask = np.zeros(num_items, np.float32)
        mask[exclude] = -np.inf
        ref = _exact_scores(q, user, mask)
        want = np.argsort(-ref, kind="stable")[: SCAN_CONFIG.top_k]
        cases.append({
            "model": "int8_padded", "signature": "recommend", "tolerance": 1e-5, "num_items": num_items,
            "inputs": {"user": user.tolist(), "exclude": exclude.tolist()},
            "expected": {"top_ids": want.tolist(), "top_scores": ref[want].tolist()},
        })  # fmt: skip
    return cases


def _scan_score_cases_2_14(score_models: dict[str, _ScoreModel]) -> list[dict[str, Any]]:
    """int8 ``score`` on the 5,000-item export: the scan (all ids in order, shuffled, long lists with
    duplicates) and the gathered rows (a short list), against the float64 reference."""
    m = score_models["random"]
    rng = np.random.default_rng(5000)
    cases: list[dict[str, Any]] = []
    for mode in ("all", "shuffled", "long", "short", "long", "all", "just_long", "just_short"):  # resized each call
        user = (rng.normal(size=SCORE_DIM) * 10.0 ** rng.uniform(-3, 3)).astype(np.float32)
        ids = _score_ids(mode, SCORE_ITEMS, rng)
        ref = _exact_scores(m.q, user, np.zeros(SCORE_ITEMS, np.float32))
        cases.append({
            "model": "int8_scan", "signature": "score", "tolerance": _score_tolerance(m.q, user),
            "inputs": {"user": user.tolist(), "item_ids": ids.tolist()},
            "expected": {"scores": ref[ids].tolist()},
        })  # fmt: skip
        if mode in ("all", "short"):  # score_all between resized score calls
            cases.append({
                "model": "int8_scan", "signature": CATALOG_SIGNATURE, "tolerance": _score_tolerance(m.q, user),
                "inputs": {"user": user.tolist()}, "expected": {"scores": ref.tolist()},
            })  # fmt: skip
    return cases


def _run_2_14(workdir: Path, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    (workdir / "cases.json").write_text(json.dumps(spec))
    proc = subprocess.run(
        [str(TFLITE214_PYTHON), str(PARITY_SCRIPT), str(workdir)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.stdout.strip(), (
        f"no report from the 2.14 script (exit {proc.returncode}): {proc.stderr[-2000:]}"
    )
    return proc.returncode, json.loads(proc.stdout)


def test_tflite_runtime_2_14_runs_both_precisions(
    exported: dict[str, Exported], scan_models: _ScanModels, score_models: dict[str, _ScoreModel], tmp_path: Path
) -> None:
    """Apps pinned to TFLite 2.14 can load the file and run all three signatures within tolerance; the int8
    ``recommend`` (blocks, ``WHERE``, padding) gives the exact top-K there too, and the int8 ``score`` of a
    large catalog (nested ``IF``, the two-pass scan) is as accurate as in LiteRT."""
    if not TFLITE214_PYTHON.is_file():
        msg = f"the tflite-runtime 2.14 environment is missing ({TFLITE214_PYTHON})."
        if os.environ.get("PRIVREC_REQUIRE_TFLITE214") == "1":
            pytest.fail(msg + " Build it with `make .venv-tflite214/.installed`.")
        pytest.skip("run `make .venv-tflite214/.installed` to check the model in tflite-runtime 2.14: " + msg)
    for precision in PRECISIONS:
        (tmp_path / precision).mkdir()
        shutil.copy(exported[precision].bundle_dir / TFLITE_FILE, tmp_path / precision / TFLITE_FILE)
    (tmp_path / "int8_padded").mkdir()
    shutil.copy(scan_models["prime"][1].path, tmp_path / "int8_padded" / TFLITE_FILE)
    (tmp_path / "int8_scan").mkdir()
    shutil.copy(score_models["random"].path, tmp_path / "int8_scan" / TFLITE_FILE)
    signatures = {
        name: {"inputs": [s.name for s in ins], "outputs": [s.name for s in outs]}
        for name, (ins, outs) in exported["float32"].record.signatures.items()
    }
    spec = {
        "models": {p: f"{p}/{TFLITE_FILE}" for p in (*PRECISIONS, "int8_padded", "int8_scan")},
        "signatures": signatures,
        "extra_signatures": {"int8_scan": {CATALOG_SIGNATURE: {"inputs": ["user"], "outputs": ["scores"]}}},
        "cases": _cases_2_14(exported) + _padded_cases_2_14(scan_models) + _scan_score_cases_2_14(score_models),
    }
    code, report = _run_2_14(tmp_path, spec)
    assert report["tflite_runtime"] == "2.14.0"
    assert report["numpy"].startswith("1.")
    assert report["signatures_ok"], report["signatures"]
    assert len(report["cases"]) == len(spec["cases"]) == 30
    failed = [c for c in report["cases"] if not c["passed"]]
    assert report["passed"] and code == 0 and not failed, failed
    for case in report["cases"]:
        assert all(err <= case["tolerance"] for err in case["max_abs_err"].values()), case

    # Negative control: the script must fail when an expected output is off by more than the tolerance.
    for case in spec["cases"]:
        if case["signature"] == "score":
            case["expected"]["scores"] = [s + 10 * case["tolerance"] for s in case["expected"]["scores"]]
    code, report = _run_2_14(tmp_path, spec)
    assert code == 1 and not report["passed"]
    assert {c["signature"] for c in report["cases"] if not c["passed"]} == {"score"}


# -- int8 fast path ------------------------------------------------------------------------------------------


def test_int8_recommend_scans_the_int8_table_with_the_hybrid_fully_connected(exported: dict[str, Exported]) -> None:
    """The scan is one FULLY_CONNECTED whose weights are the int8 table itself (same buffer, no float copy)."""
    fb = schema.Model.GetRootAs((exported["int8"].bundle_dir / TFLITE_FILE).read_bytes(), 0)
    codes = [
        max(fb.OperatorCodes(i).BuiltinCode(), fb.OperatorCodes(i).DeprecatedBuiltinCode())
        for i in range(fb.OperatorCodesLength())
    ]
    table_buffers, fc_weights = set(), []
    for si in range(fb.SubgraphsLength()):
        graph = fb.Subgraphs(si)
        for ti in range(graph.TensorsLength()):
            t = graph.Tensors(ti)
            if t.Type() == schema.TensorType.INT8 and tuple(t.ShapeAsNumpy()) == (NUM_ITEMS, DIM):
                table_buffers.add(t.Buffer())
        for oi in range(graph.OperatorsLength()):
            op = graph.Operators(oi)
            if codes[op.OpcodeIndex()] == schema.BuiltinOperator.FULLY_CONNECTED:
                w = graph.Tensors(op.Inputs(1))
                if tuple(w.ShapeAsNumpy()) == (NUM_ITEMS, DIM):
                    fc_weights.append((graph.Name(), w))
    assert len(table_buffers) == 1  # score, finetune and the recommend scan share one int8 buffer
    assert [name for name, _ in fc_weights] == [b"recommend"]
    w = fc_weights[0][1]
    assert w.Type() == schema.TensorType.INT8 and w.Buffer() in table_buffers
    q = w.Quantization()
    assert q.ScaleAsNumpy().tolist() == [1.0] and q.ZeroPointAsNumpy().tolist() == [0]  # row scales on the output


@pytest.mark.parametrize("excluded", [0, 60])
def test_int8_recommend_scores_are_exact_after_the_rerank(exported: dict[str, Exported], excluded: int) -> None:
    """The hybrid scan only picks candidates; the returned scores are recomputed exactly (far below 2e-2)."""
    e = exported["int8"]
    rng = np.random.default_rng(500 + excluded)
    for scale in (0.1, 1.0, 30.0):
        user = (rng.normal(size=DIM) * scale).astype(np.float32)
        mask = np.zeros(NUM_ITEMS, np.float32)
        mask[rng.choice(NUM_ITEMS, excluded, replace=False)] = -np.inf
        top_ids, top_scores = e.runner.recommend(user, mask)
        ref = e.reference.item_embedding.astype(np.float64) @ user + e.reference.item_bias + mask
        np.testing.assert_array_equal(top_ids, np.argsort(-ref, kind="stable")[:10])
        assert _max_err(top_scores, ref[top_ids]) <= 1e-5 * max(1.0, scale)


# -- int8 recommend: scan bound, threshold, exact re-rank ----------------------------------------------------

SCAN_CONFIG = ExportConfig(top_k=10, finetune_steps=1)


def _duplicated_rows_model(num_items: int, dim: int, distinct: int, seed: int) -> ItemModel:
    """Every row (and its bias) repeats one of ``distinct`` rows: exact score ties everywhere."""
    base = synthetic_model(distinct, dim, seed)
    which = np.random.default_rng(seed + 1).integers(0, distinct, num_items)
    return ItemModel(item_embedding=base.item_embedding[which], item_bias=base.item_bias[which])


class _ScanModels(dict[str, tuple[QuantizedItemModel, TFLiteRunner]]):
    """The exports below, with a short repr (hypothesis prints the arguments of a failing example)."""

    def __repr__(self) -> str:
        return f"<scan models {sorted(self)}>"


@pytest.fixture(scope="module")
def scan_models(tmp_path_factory: pytest.TempPathFactory) -> _ScanModels:
    """Small int8 exports that reach every branch of the int8 ``recommend``.

    ``random`` (3,000 x 16, blocks of 50), ``duplicated`` (3,000 rows from 40 distinct ones: many exact
    ties), ``prime`` (997 items: no divisor near sqrt(N), so the scan is padded with ``-inf``), ``tiny``
    (15 items with K = 10: blocks of one item).
    """
    root = tmp_path_factory.mktemp("tflite-scan")
    models = {
        "random": synthetic_model(3000, 16, seed=21),
        "duplicated": _duplicated_rows_model(3000, 16, distinct=40, seed=22),
        "prime": synthetic_model(997, 8, seed=23),
        "tiny": synthetic_model(15, 4, seed=24),
    }
    out = _ScanModels()
    for name, model in models.items():
        q = quantize_int8(model)
        export(q, root / name, SCAN_CONFIG)
        out[name] = (q, TFLiteRunner(root / name / TFLITE_FILE))
    return out


def _exact_scores(q: QuantizedItemModel, user: NDArray[np.float32], mask: NDArray[np.float32]) -> NDArray[np.float64]:
    """float64 ``(q @ u) · scale + b + mask``: the numpy reference of the re-rank."""
    dots = q.item_embedding.astype(np.float64) @ user.astype(np.float64)
    return dots * q.item_scale.astype(np.float64) + q.item_bias.astype(np.float64) + mask.astype(np.float64)


def _user(kind: str, dim: int, magnitude: float, rng: np.random.Generator) -> NDArray[np.float32]:
    if kind == "zero":  # E = 0: the scan is b + mask exactly
        return np.zeros(dim, np.float32)
    if kind == "one_hot":
        u = np.zeros(dim, np.float32)
        u[rng.integers(dim)] = 1.0
    elif kind == "constant":
        u = np.ones(dim, np.float32)
    else:
        u = rng.normal(size=dim).astype(np.float32)
    return (u * magnitude).astype(np.float32)


def _mask(masked: str, num_items: int, rng: np.random.Generator) -> NDArray[np.float32]:
    mask = np.zeros(num_items, np.float32)
    if masked == "all":
        mask[:] = -np.inf
    elif masked == "all_but_3":
        mask[:] = -np.inf
        mask[rng.choice(num_items, 3, replace=False)] = 0.0
    else:
        mask[rng.random(num_items) < float(masked)] = -np.inf
    return mask


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(["random", "duplicated", "prime", "tiny"]),
    kind=st.sampled_from(["normal", "normal", "zero", "one_hot", "constant"]),
    magnitude=st.sampled_from([1e-3, 1.0, 1e3]),
    masked=st.sampled_from(["0", "0.3", "0.97", "all_but_3", "all"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_int8_recommend_is_the_exact_top_k(
    scan_models: _ScanModels,
    name: str,
    kind: str,
    magnitude: float,
    masked: str,
    seed: int,
) -> None:
    """``top_ids`` are the exact top-K (equal scores: lower index first; ``-inf`` fills the tail by lower
    index), ``top_scores`` the exact scores, for users from 1e-3 to 1e3, ``u = 0``, exact ties and masks."""
    q, runner = scan_models[name]
    rng = np.random.default_rng(seed)
    num_items, dim = q.item_embedding.shape
    user = _user(kind, dim, magnitude, rng)
    mask = _mask(masked, num_items, rng)
    top_ids, top_scores = runner.recommend(user, mask)
    ref = _exact_scores(q, user, mask)
    want = np.argsort(-ref, kind="stable")[: SCAN_CONFIG.top_k]
    np.testing.assert_array_equal(top_ids, want)
    finite = np.isfinite(ref[want])
    np.testing.assert_array_equal(np.isfinite(top_scores), finite)
    if finite.any():
        scale = max(1.0, float(np.max(np.abs(ref[want][finite]))))
        assert _max_err(top_scores[finite], ref[want][finite]) <= 1e-5 * scale


@pytest.mark.parametrize("name", ["random", "duplicated", "prime", "tiny"])
def test_int8_recommend_with_all_but_3_items_masked(scan_models: _ScanModels, name: str) -> None:
    """Fewer eligible items than K: t = -inf, every item is a candidate (padding slots dropped), and the
    output is what a TOPK_V2 over the whole catalog gives: the 3 eligible items by score, then the
    lowest-index excluded items with -inf."""
    q, runner = scan_models[name]
    num_items, dim = q.item_embedding.shape
    rng = np.random.default_rng(3)
    eligible = np.sort(rng.choice(num_items, 3, replace=False))
    mask = np.full(num_items, -np.inf, np.float32)
    mask[eligible] = 0.0
    user = rng.normal(size=dim).astype(np.float32)
    top_ids, top_scores = runner.recommend(user, mask)
    ref = _exact_scores(q, user, mask)
    head = eligible[np.argsort(-ref[eligible], kind="stable")]
    tail = np.setdiff1d(np.arange(num_items), eligible)[: SCAN_CONFIG.top_k - 3]
    np.testing.assert_array_equal(top_ids, np.concatenate([head, tail]))
    np.testing.assert_allclose(top_scores[:3], ref[head], rtol=1e-6, atol=1e-6)
    assert np.all(top_scores[3:] == -np.inf)


def _scan_tensor(path: Path, num_items: int) -> tuple[int, int]:
    """(subgraph, tensor) of the int8 ``recommend`` scan: the ``[N]`` input of the reshape into blocks."""
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    sig = next(s for s in model.signatureDefs if s.signatureKey == b"recommend")
    graph = model.subgraphs[sig.subgraphIndex]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    found = [
        int(op.inputs[0])
        for op in graph.operators
        if codes[op.opcodeIndex] == schema.BuiltinOperator.RESHAPE
        and len(graph.tensors[op.outputs[0]].shape) == 2
        and [int(s) for s in graph.tensors[op.inputs[0]].shape] == [num_items]
    ]
    assert len(found) == 1, found
    return sig.subgraphIndex, found[0]


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`:UserWarning")
@pytest.mark.parametrize(
    "resolver", [OpResolverType.AUTO, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES], ids=["xnnpack", "builtin"]
)
def test_int8_scan_error_is_within_the_bound_in_the_real_kernels(
    scan_models: _ScanModels, resolver: OpResolverType
) -> None:
    """The interpreter's own scan (XNNPACK's asymmetric ``qd8`` and the builtin symmetric hybrid kernel)
    stays within ``E = max|u| · L1MAX · QUANT_ERROR`` of the exact scores."""
    for name in ("random", "duplicated"):
        q, runner = scan_models[name]
        num_items, dim = q.item_embedding.shape
        graph, tensor = _scan_tensor(runner.path, num_items)
        interpreter = Interpreter(
            model_path=str(runner.path), num_threads=1, experimental_op_resolver_type=resolver,
            experimental_preserve_all_tensors=True,
        )  # fmt: skip
        run = interpreter.get_signature_runner("recommend")
        l1_max = float(np.max(np.abs(q.item_embedding.astype(np.float64)).sum(axis=1) * q.item_scale))
        rng = np.random.default_rng(5)
        worst = 0.0
        for magnitude in (1e-3, 1.0, 1e3):
            for kind in ("normal", "normal", "one_hot", "constant"):
                user = _user(kind, dim, magnitude, rng)
                mask = np.zeros(num_items, np.float32)
                run(user=user, mask=mask)
                scan = interpreter.get_tensor(tensor, graph).astype(np.float64)
                err = float(np.max(np.abs(scan - _exact_scores(q, user, mask))))
                bound = float(np.max(np.abs(user))) * l1_max * QUANT_ERROR
                assert err <= bound, (name, kind, magnitude, err, bound)
                worst = max(worst, err / bound)
        assert worst > 0.05  # the scan really is approximate: the check has teeth


def _symmetric(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """TFLite's builtin hybrid kernel: ``round(u / step)`` in [-127, 127], ``step = max|u| / 127``."""
    step = np.max(np.abs(u)) / 127.0
    return np.clip(np.round(u / step), -127, 127) * step if step > 0 else np.zeros_like(u)


def _asymmetric(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """XNNPACK ``qd8``: 255 levels over ``[min(u, 0), max(u, 0)]``, an integer zero point, clamped to int8."""
    lo, hi = min(float(u.min()), 0.0), max(float(u.max()), 0.0)
    step = (hi - lo) / 255.0
    if step == 0:
        return np.zeros_like(u)
    zero_point = np.clip(np.round(-128.0 - lo / step), -128, 127)
    return (np.clip(np.round(u / step) + zero_point, -128, 127) - zero_point) * step


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    magnitude=st.sampled_from([1e-3, 1.0, 1e3]),
    positive=st.booleans(),
)
def test_scan_error_bound_holds_for_both_input_quantizers(seed: int, magnitude: float, positive: bool) -> None:
    """``|q · (u - quantized u)| · scale ≤ max|u| · L1MAX · QUANT_ERROR`` for the symmetric (builtin) and the
    asymmetric (XNNPACK) quantization of ``u``, including rows built to align with the rounding errors."""
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(1, 65))
    u = rng.normal(size=dim) * magnitude
    if positive:  # one-signed inputs: the asymmetric step is max|u| / 255
        u = np.abs(u)
    u = u.astype(np.float32).astype(np.float64)
    table = rng.integers(-127, 128, (64, dim))
    for quantize in (_symmetric, _asymmetric):
        err = quantize(u) - u
        adversarial = 127 * np.sign(err).astype(np.int64)  # the worst row: every error adds up
        rows = np.vstack([table, adversarial])
        scale = rng.uniform(1e-4, 1e-2, rows.shape[0])
        l1_max = float(np.max(np.abs(rows).sum(axis=1) * scale))
        got = np.abs(rows @ err) * scale
        assert float(got.max()) <= float(np.max(np.abs(u))) * l1_max * QUANT_ERROR, quantize.__name__


def test_int8_bound_constants_are_rounded_up() -> None:
    model = quantize_int8(synthetic_model(500, 24, seed=3))
    bound = _bound(model.item_embedding, model.item_scale, model.item_bias)
    l1_max = float(np.max(np.abs(model.item_embedding.astype(np.float64)).sum(axis=1) * model.item_scale))
    assert np.float32(bound.slope) == bound.slope and np.float32(bound.offset) == bound.offset
    assert bound.slope >= l1_max * (2 * (QUANT_ERROR + 24 * 2.0**-23) + ROUNDING)
    assert bound.offset >= float(np.max(np.abs(model.item_bias))) * ROUNDING
    zero = _bound(np.zeros((3, 2), np.int8), np.ones(3, np.float32), np.zeros(3, np.float32))
    assert zero == _Bound(0.0, 0.0)


@pytest.mark.parametrize(
    ("num_items", "top_k", "want"),
    [
        (100_000, 10, _Blocks(250, 400, 0)),  # a divisor of N near sqrt(N): no padding
        (1682, 10, _Blocks(29, 58, 0)),
        (997, 10, _Blocks(31, 33, 26)),  # prime: padded with -inf
        (15, 10, _Blocks(1, 15, 0)),  # fewer than sqrt(N) * K items: blocks of one
        (10, 10, _Blocks(1, 10, 0)),  # K = N
        (1, 1, _Blocks(1, 1, 0)),
    ],
)
def test_blocks_cover_the_catalog_with_at_least_k_blocks(num_items: int, top_k: int, want: _Blocks) -> None:
    got = _blocks(num_items, top_k)
    assert got == want
    assert got.count >= top_k and got.count * got.size == num_items + got.pad and 0 <= got.pad < got.size


def test_int8_recommend_sorts_only_block_maxima_and_candidates(
    scan_models: _ScanModels,
) -> None:
    """No ``TOPK_V2`` over the catalog: one over the block maxima, one over the (dynamic) candidates."""
    q, runner = scan_models["random"]
    model = schema.ModelT.InitFromPackedBuf(runner.path.read_bytes(), 0)
    sig = next(s for s in model.signatureDefs if s.signatureKey == b"recommend")
    graph = model.subgraphs[sig.subgraphIndex]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    topk_inputs = []
    for op in graph.operators:
        if codes[op.opcodeIndex] == schema.BuiltinOperator.TOPK_V2:
            t = graph.tensors[op.inputs[0]]
            topk_inputs.append([int(s) for s in (t.shapeSignature if t.shapeSignature is not None else t.shape)])
    blocks = _blocks(*q.item_embedding.shape[:1], SCAN_CONFIG.top_k)
    assert topk_inputs == [[blocks.count], [-1]]
    used = {codes[op.opcodeIndex] for op in graph.operators}
    assert schema.BuiltinOperator.WHERE in used and schema.BuiltinOperator.CUSTOM not in used


# -- int8 score: two-pass scan over the whole catalog for long lists ----------------------------------------

SCORE_ITEMS, SCORE_DIM = 5000, 16
RESOLVERS = {"xnnpack": OpResolverType.AUTO, "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


@dataclass(frozen=True)
class _ScoreModel:
    """An int8 export large enough for the scan branch, with a ``score`` runner per kernel set."""

    q: QuantizedItemModel
    path: Path
    runs: dict[str, Any]

    def __repr__(self) -> str:
        return f"<score model {self.q.item_embedding.shape}>"


@pytest.fixture(scope="module")
def score_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, _ScoreModel]:
    """``random`` (5,000 x 16) and ``duplicated`` (5,000 rows from 40 distinct ones: exact ties), both above
    ``SCAN_MIN_ITEMS``, run by XNNPACK (LiteRT's default, asymmetric input quantization) and by the builtin
    symmetric hybrid kernel."""
    assert SCORE_ITEMS >= SCAN_MIN_ITEMS
    root = tmp_path_factory.mktemp("tflite-score")
    out = {}
    for name, model in (
        ("random", synthetic_model(SCORE_ITEMS, SCORE_DIM, seed=31)),
        ("duplicated", _duplicated_rows_model(SCORE_ITEMS, SCORE_DIM, distinct=40, seed=32)),
    ):
        q = quantize_int8(model)
        export(q, root / name, SCAN_CONFIG)
        path = root / name / TFLITE_FILE
        runs = {
            kind: Interpreter(
                model_path=str(path), num_threads=1, experimental_op_resolver_type=resolver
            ).get_signature_runner("score")
            for kind, resolver in RESOLVERS.items()
        }
        out[name] = _ScoreModel(q, path, runs)
    return out


def _score_ids(mode: str, num_items: int, rng: np.random.Generator) -> NDArray[np.int32]:
    long = -(-num_items // SCAN_RATIO)  # the shortest list that takes the scan
    if mode == "all":  # what the runtime passes: every id in order
        return np.arange(num_items, dtype=np.int32)
    if mode == "shuffled":
        return rng.permutation(num_items).astype(np.int32)
    if mode == "long":  # random ids with duplicates, any order
        return rng.integers(0, num_items, int(rng.integers(long, 2 * num_items))).astype(np.int32)
    if mode == "just_long":
        return rng.integers(0, num_items, long).astype(np.int32)
    if mode == "just_short":
        return rng.integers(0, num_items, long - 1).astype(np.int32)
    return rng.integers(0, num_items, int(rng.integers(1, 60))).astype(np.int32)  # short


def _score_tolerance(q: QuantizedItemModel, user: NDArray[np.float32]) -> float:
    """The two-pass scan's error: the remainder ``u - Q(u)`` (at most ``max|u| / 254``) is itself quantized
    with error at most ``max|u| / 254^2`` per coordinate, so ``|err| <= max|u| · L1MAX / 254^2``, plus float32
    rounding (``1e-5`` of ``max|u| · L1MAX`` and of ``max|b|``)."""
    l1_max = float(np.max(np.abs(q.item_embedding.astype(np.float64)).sum(axis=1) * q.item_scale))
    umax = float(np.max(np.abs(user)))
    return umax * l1_max * (1 / 254**2 + 1e-5) + float(np.max(np.abs(q.item_bias))) * 1e-6


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["random", "duplicated"]),
    kernel=st.sampled_from(sorted(RESOLVERS)),
    mode=st.sampled_from(["all", "all", "shuffled", "long", "just_long", "just_short", "short"]),
    kind=st.sampled_from(["normal", "normal", "zero", "one_hot", "constant"]),
    magnitude=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_int8_score_is_accurate_for_every_item_in_both_branches_and_kernels(
    score_models: dict[str, _ScoreModel], name: str, kernel: str, mode: str, kind: str, magnitude: float, seed: int
) -> None:
    """Every score within ``max|u| · L1MAX / 254^2`` (about 1e-4 · max|u| here) of the float64 reference, for
    short lists (gathered rows, exact) and long ones (the two-pass scan), in XNNPACK and the builtin kernel;
    ``u = 0`` gives the bias exactly; with all ids the top-10 is the reference's stable top-10."""
    m = score_models[name]
    rng = np.random.default_rng(seed)
    num_items, dim = m.q.item_embedding.shape
    user = _user(kind, dim, magnitude, rng)
    ids = _score_ids(mode, num_items, rng)
    got = m.runs[kernel](user=user, item_ids=ids)["scores"]
    assert got.dtype == np.float32 and got.shape == ids.shape
    ref = _exact_scores(m.q, user, np.zeros(num_items, np.float32))
    assert _max_err(got, ref[ids]) <= _score_tolerance(m.q, user), (mode, kernel)
    if kind == "zero":
        np.testing.assert_array_equal(got, m.q.item_bias[ids])
    if mode == "all":
        np.testing.assert_array_equal(np.argsort(-got, kind="stable")[:10], np.argsort(-ref, kind="stable")[:10])


@pytest.mark.parametrize("kernel", sorted(RESOLVERS))
def test_int8_score_long_lists_take_the_scan_and_short_lists_stay_exact(
    score_models: dict[str, _ScoreModel], kernel: str
) -> None:
    """The scan is approximate (errors well above float32 rounding, within the tolerance); gathered rows are
    exact to float32 rounding: which branch ran shows in the error."""
    m = score_models["random"]
    rng = np.random.default_rng(9)
    user = rng.normal(size=SCORE_DIM).astype(np.float32)
    ref = _exact_scores(m.q, user, np.zeros(SCORE_ITEMS, np.float32))
    errors = {}
    for mode in ("all", "shuffled", "just_long", "just_short", "short"):
        ids = _score_ids(mode, SCORE_ITEMS, rng)
        errors[mode] = _max_err(m.runs[kernel](user=user, item_ids=ids)["scores"], ref[ids])
    tol = _score_tolerance(m.q, user)
    assert all(err <= tol for err in errors.values()), errors
    assert min(errors["all"], errors["shuffled"], errors["just_long"]) > 1e-6, errors  # the scan ran
    assert max(errors["just_short"], errors["short"]) <= 1e-6, errors  # the rows were gathered


def test_int8_score_runner_handles_empty_duplicate_and_unordered_ids(score_models: dict[str, _ScoreModel]) -> None:
    m = score_models["duplicated"]
    runner = TFLiteRunner(m.path)
    user = np.random.default_rng(4).normal(size=SCORE_DIM).astype(np.float32)
    assert runner.score(user, np.zeros(0, np.int32)).shape == (0,)
    ref = _exact_scores(m.q, user, np.zeros(SCORE_ITEMS, np.float32))
    everything = runner.score(user, np.arange(SCORE_ITEMS, dtype=np.int32))
    reverse = np.arange(SCORE_ITEMS, dtype=np.int32)[::-1]
    np.testing.assert_array_equal(runner.score(user, reverse), everything[reverse])  # same scan, gathered
    twice = np.concatenate([reverse, reverse])
    np.testing.assert_array_equal(runner.score(user, twice), everything[twice])
    assert _max_err(everything, ref) <= _score_tolerance(m.q, user)


def test_int8_score_scan_uses_the_int8_table_and_an_int8_identity_probe(score_models: dict[str, _ScoreModel]) -> None:
    """Every FULLY_CONNECTED with constant weights reads the one int8 table buffer (scale 1) or the one int8 d x d
    identity buffer (scale 1); no float copy of the table is stored; score branches with IF."""
    m = score_models["random"]
    model = schema.ModelT.InitFromPackedBuf(m.path.read_bytes(), 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    weights = []
    for graph in model.subgraphs:
        for op in graph.operators:
            if codes[op.opcodeIndex] == schema.BuiltinOperator.FULLY_CONNECTED:
                w = graph.tensors[op.inputs[1]]
                if model.buffers[w.buffer].data is not None and len(model.buffers[w.buffer].data) > 0:
                    weights.append(w)
    shapes = sorted(tuple(int(s) for s in w.shape) for w in weights)
    # the probes of score and score_all, their two passes each, recommend's scan
    assert shapes == [(SCORE_DIM, SCORE_DIM)] * 2 + [(SCORE_ITEMS, SCORE_DIM)] * 5
    for w in weights:
        assert w.type == schema.TensorType.INT8
        assert w.quantization.scale.tolist() == [1.0] and w.quantization.zeroPoint.tolist() == [0]
        data = np.frombuffer(bytes(model.buffers[w.buffer].data), np.int8)
        if w.shape[0] == SCORE_DIM:
            np.testing.assert_array_equal(data.reshape(SCORE_DIM, SCORE_DIM), np.eye(SCORE_DIM, dtype=np.int8))
        else:
            np.testing.assert_array_equal(data.reshape(SCORE_ITEMS, SCORE_DIM), m.q.item_embedding)
    assert len({w.buffer for w in weights if w.shape[0] == SCORE_ITEMS}) == 1
    assert len({w.buffer for w in weights if w.shape[0] == SCORE_DIM}) == 1
    big = [
        (t.type, tuple(int(s) for s in t.shape))
        for graph in model.subgraphs
        for t in graph.tensors
        if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data) >= SCORE_ITEMS * SCORE_DIM
    ]
    assert set(big) == {(schema.TensorType.INT8, (SCORE_ITEMS, SCORE_DIM))}
    assert schema.BuiltinOperator.IF in codes


def test_small_catalogs_keep_score_without_the_scan(exported: dict[str, Exported]) -> None:
    """Below ``SCAN_MIN_ITEMS`` the int8 ``score`` is the gather alone: no IF, no identity probe."""
    assert NUM_ITEMS < SCAN_MIN_ITEMS
    assert schema.BuiltinOperator.IF not in _builtin_ops(exported["int8"].bundle_dir / TFLITE_FILE)


# -- score_all: the whole catalog without the ids --------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(["random", "duplicated"]),
    kernel=st.sampled_from(sorted(RESOLVERS)),
    kind=st.sampled_from(["normal", "normal", "zero", "one_hot", "constant"]),
    magnitude=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_int8_score_all_is_the_scan_of_every_item_in_both_kernels(
    score_models: dict[str, _ScoreModel], name: str, kernel: str, kind: str, magnitude: float, seed: int
) -> None:
    """``score_all(user)`` = ``score(user, 0..N-1)``: every score within the two-pass bound of the float64
    reference, in XNNPACK and the builtin kernel; ``u = 0`` gives the bias exactly; the stable top-10 is the
    reference's."""
    m = score_models[name]
    user = _user(kind, SCORE_DIM, magnitude, np.random.default_rng(seed))
    run = Interpreter(
        model_path=str(m.path), num_threads=1, experimental_op_resolver_type=RESOLVERS[kernel]
    ).get_signature_runner(CATALOG_SIGNATURE)
    got = run(user=user)["scores"]
    assert got.dtype == np.float32 and got.shape == (SCORE_ITEMS,)
    ref = _exact_scores(m.q, user, np.zeros(SCORE_ITEMS, np.float32))
    assert _max_err(got, ref) <= _score_tolerance(m.q, user)
    np.testing.assert_array_equal(got, m.runs[kernel](user=user, item_ids=np.arange(SCORE_ITEMS, dtype=np.int32))["scores"])
    if kind == "zero":
        np.testing.assert_array_equal(got, m.q.item_bias)
    np.testing.assert_array_equal(np.argsort(-got, kind="stable")[:10], np.argsort(-ref, kind="stable")[:10])


def test_score_all_is_listed_in_the_record_and_used_by_the_runner(score_models: dict[str, _ScoreModel], tmp_path: Path) -> None:
    """Catalogs of ``SCAN_MIN_ITEMS`` items or more get ``score_all`` in either precision (``details.score_all``);
    the runner built from the record uses it, and :func:`score_catalog` falls back to ``score`` without it."""
    model = synthetic_model(SCORE_ITEMS, SCORE_DIM, seed=33)
    user = np.random.default_rng(5).normal(size=SCORE_DIM).astype(np.float32)
    all_ids = np.arange(SCORE_ITEMS, dtype=np.int32)
    for precision, m in (("float32", model), ("int8", quantize_int8(model))):
        record = export(m, tmp_path / precision, SCAN_CONFIG)
        assert record.details[CATALOG_SIGNATURE] is True
        assert record.signatures == bundle_signatures(SCORE_DIM, SCORE_ITEMS, SCAN_CONFIG.top_k)  # the contract's three
        runner = get_runner_factory("tflite")(tmp_path / precision, record)
        assert isinstance(runner, CatalogScorer)
        whole = runner.score_all(user)
        assert whole is not None and whole.shape == (SCORE_ITEMS,) and whole.dtype == np.float32
        np.testing.assert_array_equal(score_catalog(runner, user, all_ids), whole)
        if precision == "float32":  # one float FULLY_CONNECTED: float32 rounding only
            ref = model.item_embedding.astype(np.float64) @ user + model.item_bias
            assert _max_err(whole, ref) <= TOL["float32"]
            assert _max_err(runner.score(user, all_ids), ref) <= TOL["float32"]
        else:
            np.testing.assert_array_equal(runner.score(user, all_ids), whole)  # the same scan, gathered
        plain = TFLiteRunner(tmp_path / precision / TFLITE_FILE)  # built without the flag: `score` only
        assert plain.score_all(user) is None
        np.testing.assert_array_equal(score_catalog(plain, user, all_ids), runner.score(user, all_ids))


def test_runner_refuses_a_claimed_score_all_the_file_lacks(exported: dict[str, Exported]) -> None:
    """A manifest whose ``details.score_all`` is true for a file without that signature (edited, or from another
    export) is refused when the runner is built, naming the signature."""
    e = exported["int8"]
    assert CATALOG_SIGNATURE not in Interpreter(model_path=str(e.bundle_dir / TFLITE_FILE)).get_signature_list()
    with pytest.raises(ValueError, match="must have the `score_all` signature"):
        TFLiteRunner(e.bundle_dir / TFLITE_FILE, score_all=True)
    forged = ArtifactRecord(e.record.format, e.record.precision, e.record.files, e.record.signatures,
                            {**e.record.details, CATALOG_SIGNATURE: True})  # fmt: skip
    with pytest.raises(ValueError, match="score_all"):
        get_runner_factory("tflite")(e.bundle_dir, forged)


# -- compact flatbuffer (int8 file size) ---------------------------------------------------------------------

SIGNATURE_IO: dict[str, dict[str, list[str]]] = {
    "score": {"inputs": ["item_ids", "user"], "outputs": ["scores"]},
    "recommend": {"inputs": ["mask", "user"], "outputs": ["top_ids", "top_scores"]},
    "finetune": {"inputs": ["item_ids", "l2", "labels", "lr", "user"], "outputs": ["loss", "user_out"]},
}


def _signature_tensors(model: Any) -> dict[tuple[str, str, str], str]:
    """``(signature, "in"/"out", io name) -> name of the tensor it points at``, read from the flatbuffer."""
    found = {}
    for sig in model.signatureDefs:
        graph = model.subgraphs[sig.subgraphIndex]
        for kind, entries in (("in", sig.inputs), ("out", sig.outputs)):
            for entry in entries:
                found[sig.signatureKey.decode(), kind, entry.name.decode()] = graph.tensors[entry.tensorIndex].name.decode()
    return found


def _tensor_view(model: Any) -> list[list[tuple[int, tuple[int, ...], bytes]]]:
    """Per subgraph, per tensor: (type, shape, constant bytes) — everything the numerics depend on."""
    view = []
    for graph in model.subgraphs:
        rows = []
        for t in graph.tensors:
            data = model.buffers[t.buffer].data
            rows.append((int(t.type), tuple(int(s) for s in t.shape), b"" if data is None else bytes(data)))
        view.append(rows)
    return view


@pytest.mark.parametrize("precision", PRECISIONS)
def test_compact_keeps_signatures_graph_weights_and_outputs_bit_exact(tmp_path: Path, precision: str) -> None:
    model = synthetic_model(NUM_ITEMS, DIM, seed=11)
    m = quantize_int8(model) if precision == "int8" else model
    raw = _convert(m, CONFIG, compact=False)[0]
    packed = _compact(raw)
    assert len(packed) <= len(raw) - 3000, (len(raw), len(packed))  # measured: 9.3 / 12.4 KB less at 200×8
    before, after = schema.ModelT.InitFromPackedBuf(raw, 0), schema.ModelT.InitFromPackedBuf(packed, 0)
    assert _signature_tensors(after) == _signature_tensors(before)  # keys, IO names and their tensors' names
    assert _tensor_view(after) == _tensor_view(before)
    for g_before, g_after in zip(before.subgraphs, after.subgraphs, strict=True):
        ops = [(op.opcodeIndex, op.inputs.tolist(), op.outputs.tolist()) for op in g_before.operators]
        assert [(op.opcodeIndex, op.inputs.tolist(), op.outputs.tolist()) for op in g_after.operators] == ops
    assert [m.name for m in after.metadata] == [b"min_runtime_version"]
    assert bytes(after.buffers[after.metadata[0].buffer].data) == bytes(
        next(before.buffers[x.buffer].data for x in before.metadata if x.name == b"min_runtime_version")
    )
    # Same inputs, same bits out, in every signature.
    runners = [Interpreter(model_content=data, num_threads=1) for data in (raw, packed)]
    assert runners[0].get_signature_list() == runners[1].get_signature_list() == SIGNATURE_IO
    rng = np.random.default_rng(3)
    user = rng.normal(size=DIM).astype(np.float32)
    ids = _ids(rng, 23, NUM_ITEMS)
    mask = np.where(rng.random(NUM_ITEMS) < 0.2, -np.inf, 0.0).astype(np.float32)
    labels = rng.random(23).astype(np.float32)
    calls: dict[str, dict[str, NDArray[Any]]] = {
        "score": {"user": user, "item_ids": ids},
        "recommend": {"user": user, "mask": mask},
        "finetune": {"user": user, "item_ids": ids, "labels": labels, "lr": np.ones(1, np.float32), "l2": np.ones(1, np.float32)},
    }
    for name, inputs in calls.items():
        outs = [r.get_signature_runner(name)(**inputs) for r in runners]
        assert outs[0].keys() == outs[1].keys() == set(SIGNATURE_IO[name]["outputs"])
        for key in outs[0]:
            np.testing.assert_array_equal(outs[1][key], outs[0][key])


def test_int8_file_is_at_most_0_30_of_float32_at_1682x64(tmp_path: Path) -> None:
    """The int8 size target at the ML-100K shape (1682 items × d = 64, 5 fine-tune steps): int8 ≤ 0.30 × float32.

    Weights alone: int8 121,104 B (table, scale, bias), float32 437,320 B. Measured: 133,664 / 446,160 =
    0.2996 (before :func:`_compact`: 142,560 / 451,896 = 0.315).
    """
    model = synthetic_model(1682, 64, seed=0)
    config = ExportConfig(top_k=10, finetune_steps=5)
    sizes = {}
    for precision, m in (("float32", model), ("int8", quantize_int8(model))):
        out = tmp_path / precision
        export(m, out, config)
        path = out / TFLITE_FILE
        sizes[precision] = path.stat().st_size
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        assert interpreter.get_signature_list() == SIGNATURE_IO
        names = _signature_tensors(schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0))
        for (sig, kind, io), tensor_name in names.items():
            if kind == "in":  # the converter names signature inputs `<signature>_<input>:0`; kept as is
                assert tensor_name == f"{sig}_{io}:0"
    assert sizes["float32"] >= 4 * 1682 * 64 + 4 * 1682
    assert sizes["int8"] <= 0.30 * sizes["float32"], sizes
