"""The numpy MIL interpreter (export/mil_interpreter.py): op semantics on saved ML programs, the weight
blob reader against coremltools' own reader, input validation, and refusal of unknown ops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil import Builder as mb  # noqa: N813
from coremltools.converters.mil.mil import Var, types
from coremltools.libmilstoragepython import _BlobStorageReader
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.export.mil_interpreter import (
    BlobReader,
    MilProgram,
    MilTensorType,
    UnsupportedMilOpError,
    load_package_spec,
)

pytestmark = pytest.mark.xdist_group("mil_interpreter")

WEIGHTS = "Data/com.apple.CoreML/weights/weight.bin"


def _save(prog: Any, path: Path, target: Any = ct.target.iOS16) -> Path:
    model = ct.convert(
        prog, convert_to="mlprogram", minimum_deployment_target=target,
        compute_precision=ct.precision.FLOAT32, skip_model_load=True,
    )
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def ops_program(tmp_path_factory: pytest.TempPathFactory) -> MilProgram:
    """One iOS16 program exercising the float ops the exporter uses, with outputs checked by hand."""
    table = np.arange(12, dtype=np.float32).reshape(4, 3)

    def body(x: Var, idx: Var) -> tuple[Var, ...]:
        col = mb.expand_dims(x=x, axes=[1])  # [6, 1]
        rows = mb.gather(x=table, indices=idx, axis=0)  # [3, 3]
        values, indices = mb.topk(x=x, k=4, axis=0, ascending=False)
        lse = mb.reduce_log_sum_exp(x=col, axes=[0], keep_dims=True)  # [1, 1]
        return (
            mb.identity(x=mb.softmax(x=x, axis=0), name="softmax"),
            mb.reduce_sum(x=col, axes=[0], name="total"),
            mb.squeeze(x=mb.sub(x=col, y=lse), axes=[1], name="log_softmax"),
            mb.identity(x=values, name="top_values"),
            mb.identity(x=indices, name="top_indices"),
            mb.matmul(x=rows, y=rows, transpose_x=True, name="gram"),
            mb.real_div(x=mb.maximum(x=x, y=np.float32(0.5)), y=np.float32(2.0), name="clipped_half"),
            mb.mul(x=mb.add(x=x, y=np.float32(1.0)), y=np.float32(3.0), name="affine"),
        )

    specs = [mb.TensorSpec((6,), types.fp32), mb.TensorSpec((3,), types.int32)]
    prog = mb.program(input_specs=specs, opset_version=ct.target.iOS16)(body)
    return MilProgram.load(_save(prog, tmp_path_factory.mktemp("ops") / "ops.mlpackage"))


def test_ops_match_their_numpy_definitions(ops_program: MilProgram) -> None:
    x = np.array([1.0, 3.0, -2.0, 3.0, 0.0, 2.0], np.float32)
    idx = np.array([2, 0, -1], np.int32)  # MIL gather wraps negative indices like numpy
    out = ops_program.run({"x": x, "idx": idx})
    e = np.exp(x - x.max())
    np.testing.assert_allclose(out["softmax"], e / e.sum(), rtol=1e-6)
    np.testing.assert_array_equal(out["total"], [7.0])
    np.testing.assert_allclose(out["log_softmax"], x - np.log(np.exp(x).sum()), atol=1e-6)
    # Ties (3.0 at positions 1 and 3) go to the lower index.
    assert out["top_indices"].tolist() == [1, 3, 5, 0] and out["top_indices"].dtype == np.int32
    np.testing.assert_array_equal(out["top_values"], [3.0, 3.0, 2.0, 1.0])
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)[[2, 0, 3]]
    np.testing.assert_array_equal(out["gram"], rows.T @ rows)
    np.testing.assert_array_equal(out["clipped_half"], np.maximum(x, 0.5) / 2)
    np.testing.assert_array_equal(out["affine"], (x + 1) * 3)
    assert all(v.dtype == np.float32 for k, v in out.items() if k != "top_indices")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=6, max_size=6))
def test_topk_breaks_ties_by_the_lower_index(ops_program: MilProgram, values: list[int]) -> None:
    x = np.array(values, np.float32)
    out = ops_program.run({"x": x, "idx": np.zeros(3, np.int32)})
    want = np.argsort(-x, kind="stable")[:4]
    assert out["top_indices"].tolist() == want.tolist()
    np.testing.assert_array_equal(out["top_values"], x[want])


def test_run_validates_inputs(ops_program: MilProgram) -> None:
    x, idx = np.zeros(6, np.float32), np.zeros(3, np.int32)
    with pytest.raises(TypeError, match=r"^input `x` must be float32\. Found float64\.$"):
        ops_program.run({"x": x.astype(np.float64), "idx": idx})
    with pytest.raises(ValueError, match=r"^input `idx` must have shape \(3,\) \(-1 = any\)\. Found \(4,\)\.$"):
        ops_program.run({"x": x, "idx": np.zeros(4, np.int32)})
    with pytest.raises(ValueError, match=r"^function 'main' needs inputs \['idx', 'x'\]\. Missing \['idx'\]\.$"):
        ops_program.run({"x": x})
    with pytest.raises(ValueError, match=r"^`function` must be one of \['main'\]\. Found 'score'\.$"):
        ops_program.run({"x": x, "idx": idx}, "score")
    with pytest.raises(ValueError, match=r"^gather: `indices` must be in \[-4, 4\)\. Found 4 at position 2\.$"):
        ops_program.run({"x": x, "idx": np.array([0, 1, 4], np.int32)})
    assert ops_program.functions["main"].inputs == {
        "x": MilTensorType("FLOAT32", (6,)),
        "idx": MilTensorType("INT32", (3,)),
    }


def test_unknown_op_is_refused_with_its_name(tmp_path: Path) -> None:
    def body(x: Var) -> Var:
        return mb.relu(x=mb.add(x=x, y=np.float32(1.0)), name="out")

    prog = mb.program(input_specs=[mb.TensorSpec((4,), types.fp32)], opset_version=ct.target.iOS16)(body)
    path = _save(prog, tmp_path / "relu.mlpackage")
    with pytest.raises(UnsupportedMilOpError, match=r"^MIL op 'relu' \(producing 'out' in function 'main'\) is not supported"):
        MilProgram.load(path)
    with pytest.raises(NotImplementedError, match="Supported ops: \\['add', 'cast', 'const', "):
        MilProgram.load(path)


def test_blob_reader_agrees_with_coremltools(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = rng.normal(0, 1, (40, 8)).astype(np.float32)
    q = rng.integers(-127, 128, (40, 8)).astype(np.int8)
    mask = (rng.random((40, 8)) < 0.5).astype(types.np_uint1_dtype)

    def body(idx: Var) -> tuple[Var, Var]:
        joint_mask, values = mb.constexpr_sparse_blockwise_shift_scale(
            data_mask=mask, nonzero_data=q[mask != 0], scale=table[:, :1]
        )
        sparse = mb.constexpr_sparse_to_dense(nonzero_data=values, mask=joint_mask)
        dense = mb.constexpr_blockwise_shift_scale(data=q, scale=table[:, :1])
        return (
            mb.gather(x=mb.add(x=sparse, y=table), indices=idx, axis=0, name="a"),
            mb.gather(x=dense, indices=idx, axis=0, name="b"),
        )

    prog = mb.program(input_specs=[mb.TensorSpec((3,), types.int32)], opset_version=ct.target.iOS18)(body)
    package = _save(prog, tmp_path / "blobs.mlpackage", ct.target.iOS18)
    spec, model_dir = load_package_spec(package)
    assert model_dir == package / "Data/com.apple.CoreML"
    path = package / WEIGHTS
    ours, theirs = BlobReader(path), _BlobStorageReader(str(path))
    read_theirs = {
        "FLOAT32": theirs.read_float_data, "INT8": theirs.read_int8_data, "UINT1": theirs.read_uint1_data,
    }
    seen: dict[str, int] = {}
    for fn in spec.mlProgram.functions.values():
        for op in fn.block_specializations[fn.opset].operations:
            values = [a.value for arg in op.inputs.values() for a in arg.arguments if a.HasField("value")]
            values += [v for k, v in op.attributes.items() if k == "val"]
            for value in values:
                if value.WhichOneof("value") != "blobFileValue":
                    continue
                tt = MilTensorType.from_proto(value.type)
                got = ours.read(value.blobFileValue.offset, tt)
                want = np.asarray(read_theirs[tt.dtype](value.blobFileValue.offset))
                np.testing.assert_array_equal(got.ravel(), want[: got.size])
                seen[tt.dtype] = int(value.blobFileValue.offset)
    assert sorted(seen) == ["FLOAT32", "INT8", "UINT1"]
    with pytest.raises(ValueError, match=r"no blob metadata at offset 8 \(sentinel 0x0\)"):
        ours.read(8, MilTensorType("FLOAT32", (4,)))
    with pytest.raises(ValueError, match=r"holds INT8, the program declares FLOAT32"):
        ours.read(seen["INT8"], MilTensorType("FLOAT32", (4,)))


def test_load_refuses_a_directory_that_is_not_a_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"is not an \.mlpackage: no Manifest\.json\.$"):
        MilProgram.load(tmp_path)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(-8, 7), min_size=1, max_size=33))
def test_int4_blob_reads_back_what_coremltools_wrote(tmp_path_factory: pytest.TempPathFactory, values: list[int]) -> None:
    from coremltools.libmilstoragepython import _BlobStorageWriter

    path = tmp_path_factory.mktemp("int4") / "weight.bin"
    writer = _BlobStorageWriter(str(path))
    offset = writer.write_int4_data(np.array(values, np.int8))
    del writer  # flushes the file
    got = BlobReader(path).read(offset, MilTensorType("INT4", (len(values),)))
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, values)


def test_blockwise_shift_scale_per_row_int4_matches_numpy(tmp_path: Path) -> None:
    q = np.random.default_rng(1).integers(-7, 8, (6, 4)).astype(np.int8)
    scale = np.array([[0.5], [1.0], [0.25], [2.0], [0.1], [3.0]], np.float32)

    @mb.program(input_specs=[mb.TensorSpec((4,), types.fp32)], opset_version=ct.target.iOS18)
    def prog(u: Var) -> Var:
        table = mb.constexpr_blockwise_shift_scale(data=q.astype(types.np_int4_dtype), scale=scale)
        return mb.squeeze(x=mb.matmul(x=table, y=mb.expand_dims(x=u, axes=[1])), axes=[1], name="out")

    program = MilProgram.load(_save(prog, tmp_path / "m.mlpackage", ct.target.iOS18))
    u = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    np.testing.assert_allclose(program.run({"u": u})["out"], (q * scale) @ u, atol=1e-6)
