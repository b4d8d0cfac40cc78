"""A small numpy interpreter for the MIL programs inside our saved Core ML packages (Linux parity path).

Core ML's own runtime exists only on Apple platforms, so on Linux the parity checks (docs/BUNDLE.md) run the
*saved* ML program — the protobuf ``Data/com.apple.CoreML/model.mlmodel`` and the weight blob
``Data/com.apple.CoreML/weights/weight.bin`` of an ``.mlpackage`` — with this interpreter. It reads what
is on disk, not the Python objects the exporter built, so it checks what an app would ship.

Scope: exactly the MIL ops our exported programs contain (:data:`SUPPORTED_OPS`), with the semantics of
the MIL op reference (``coremltools.converters.mil.mil.ops.defs``, iOS16 and iOS18 opsets). Loading a
program that holds any other op raises :class:`UnsupportedMilOpError` naming the op, so a converter
change that introduces a new op fails loudly instead of being silently mis-run. Arithmetic is float32 like
Core ML with ``compute_precision=FLOAT32``; every op output is cast to the dtype the program declares.

Weight blob layout (MIL blob storage v2, as written by coremltools' ``milstorage``): a 64-byte file
header (``uint32`` blob count, ``uint32`` version = 2), then for each blob a 64-byte metadata record at the
offset the program names — ``uint32`` sentinel ``0xDEADBEEF``, ``uint32`` data type, ``uint64`` size in
bytes, ``uint64`` data offset — and the data at that offset. Sub-byte types (``uint1``, …) are packed
least-significant bit first; ``int4`` (blob type 8) is two's complement, two per byte, low nibble first.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from coremltools.proto import MIL_pb2, Model_pb2
from numpy.typing import NDArray

from privrec.sdk.errors import PrivrecError

__all__ = [
    "SUPPORTED_OPS",
    "BlobReader",
    "MilFunction",
    "MilProgram",
    "MilTensorType",
    "UnsupportedMilOpError",
    "load_package_spec",
]

Array = NDArray[Any]


class UnsupportedMilOpError(PrivrecError, NotImplementedError):
    """The program holds a MIL op this interpreter does not implement."""


# --------------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------------
_DT = MIL_pb2.DataType
_NUMPY_DTYPES: dict[int, np.dtype[Any]] = {
    _DT.Value("BOOL"): np.dtype(np.bool_),
    _DT.Value("FLOAT16"): np.dtype(np.float16),
    _DT.Value("FLOAT32"): np.dtype(np.float32),
    _DT.Value("FLOAT64"): np.dtype(np.float64),
    _DT.Value("INT8"): np.dtype(np.int8),
    _DT.Value("INT16"): np.dtype(np.int16),
    _DT.Value("INT32"): np.dtype(np.int32),
    _DT.Value("INT64"): np.dtype(np.int64),
    _DT.Value("UINT8"): np.dtype(np.uint8),
    _DT.Value("UINT16"): np.dtype(np.uint16),
    _DT.Value("UINT32"): np.dtype(np.uint32),
    _DT.Value("UINT64"): np.dtype(np.uint64),
    _DT.Value("UINT1"): np.dtype(np.uint8),  # one value per element once unpacked
    _DT.Value("INT4"): np.dtype(np.int8),  # one value per element once unpacked, in [-8, 7]
}
_SUB_BYTE_BITS = {_DT.Value("UINT1"): 1}
_STRING = _DT.Value("STRING")


@dataclass(frozen=True)
class MilTensorType:
    """A declared tensor type: MIL dtype name (``"FLOAT32"``, ``"INT8"``, …) and shape (``-1`` = unknown)."""

    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def from_proto(cls, vt: MIL_pb2.ValueType) -> MilTensorType:
        if vt.WhichOneof("type") != "tensorType":
            raise ValueError(f"only tensor values are supported. Found {vt.WhichOneof('type')!r}.")
        t = vt.tensorType
        dims = tuple(
            int(d.constant.size) if d.WhichOneof("dimension") == "constant" else -1 for d in t.dimensions
        )
        return cls(dtype=_DT.Name(t.dataType), shape=dims)

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        code = _DT.Value(self.dtype)
        if code not in _NUMPY_DTYPES:
            raise ValueError(f"MIL dtype {self.dtype} has no numpy equivalent in this interpreter.")
        return _NUMPY_DTYPES[code]


# --------------------------------------------------------------------------------------------------
# Weight blob
# --------------------------------------------------------------------------------------------------
_BLOB_SENTINEL = 0xDEADBEEF
_BLOB_HEADER = struct.Struct("<II")  # count, version
_BLOB_META = struct.Struct("<IIQQ")  # sentinel, dtype, size in bytes, data offset
# milstorage BlobDataType codes for the MIL dtypes we read (cross-checked against the program's type).
_BLOB_DTYPES = {
    1: "FLOAT16",
    2: "FLOAT32",
    3: "UINT8",
    4: "INT8",
    8: "INT4",
    6: "INT16",
    7: "UINT16",
    9: "UINT1",
    14: "INT32",
    15: "UINT32",
}


class BlobReader:
    """Reads tensors out of one MIL ``weight.bin`` (format in the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._data = self.path.read_bytes()
        if len(self._data) < _BLOB_HEADER.size:
            raise ValueError(f"{self.path}: too short for a MIL weight blob ({len(self._data)} bytes).")
        self.count, self.version = _BLOB_HEADER.unpack_from(self._data, 0)
        if self.version != 2:
            raise ValueError(f"{self.path}: MIL blob storage version must be 2. Found {self.version}.")

    def read(self, offset: int, tensor_type: MilTensorType) -> Array:
        """The tensor stored at ``offset`` (a metadata record), with the program's declared type."""
        if offset < 0 or offset + _BLOB_META.size > len(self._data):
            raise ValueError(
                f"{self.path}: blob offset {offset} is outside the file ({len(self._data)} bytes)."
            )
        sentinel, code, nbytes, data_offset = _BLOB_META.unpack_from(self._data, offset)
        if sentinel != _BLOB_SENTINEL:
            raise ValueError(f"{self.path}: no blob metadata at offset {offset} (sentinel {sentinel:#x}).")
        stored = _BLOB_DTYPES.get(code, f"code {code}")
        if stored != tensor_type.dtype:
            raise ValueError(
                f"{self.path}: blob at offset {offset} holds {stored}, "
                f"the program declares {tensor_type.dtype}."
            )
        if data_offset + nbytes > len(self._data):
            raise ValueError(f"{self.path}: blob at offset {offset} runs past the end of the file.")
        raw = np.frombuffer(self._data, np.uint8, count=nbytes, offset=data_offset)
        count = int(np.prod(tensor_type.shape, dtype=np.int64))
        if tensor_type.dtype == "UINT1":
            flat: Array = np.unpackbits(raw, bitorder="little")[:count]
        elif tensor_type.dtype == "INT4":  # two's complement nibbles, low nibble first
            nibbles = np.stack([raw & 0xF, raw >> 4], axis=1).reshape(-1)[:count].astype(np.int8)
            flat = np.where(nibbles > 7, nibbles - 16, nibbles).astype(np.int8)
        else:
            flat = raw.view(tensor_type.numpy_dtype)
        if flat.size != count:
            raise ValueError(
                f"{self.path}: blob at offset {offset} holds {flat.size} values, "
                f"shape {tensor_type.shape} needs {count}."
            )
        return flat.reshape(tensor_type.shape).copy()


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------
def _immediate(value: MIL_pb2.Value, tt: MilTensorType) -> Array | str:
    tensor = value.immediateValue.tensor
    kind = tensor.WhichOneof("value")
    if _DT.Value(tt.dtype) == _STRING:
        strings = list(tensor.strings.values)
        return strings[0] if not tt.shape else np.array(strings)
    dtype = tt.numpy_dtype
    if kind == "bytes":
        raw = np.frombuffer(tensor.bytes.values, np.uint8)
        flat: Array = np.unpackbits(raw, bitorder="little") if tt.dtype == "UINT1" else raw.view(dtype)
        flat = flat[: int(np.prod(tt.shape, dtype=np.int64))]
    elif kind is None:
        flat = np.zeros(0, dtype)
    else:
        flat = np.asarray(list(getattr(tensor, kind).values)).astype(dtype)
    return flat.reshape(tt.shape).astype(dtype)


def _decode_value(value: MIL_pb2.Value, blobs: Callable[[str], BlobReader]) -> Array | str:
    tt = MilTensorType.from_proto(value.type)
    which = value.WhichOneof("value")
    if which == "immediateValue":
        return _immediate(value, tt)
    if which == "blobFileValue":
        return blobs(value.blobFileValue.fileName).read(int(value.blobFileValue.offset), tt)
    raise ValueError(f"unsupported MIL value kind {which!r}.")


# --------------------------------------------------------------------------------------------------
# Ops (semantics: coremltools.converters.mil.mil.ops.defs, iOS15–iOS18)
# --------------------------------------------------------------------------------------------------
OpFn = Callable[[dict[str, Any]], tuple[Array, ...]]


def _axes(p: dict[str, Any], key: str = "axes") -> tuple[int, ...] | None:
    v = p.get(key)
    return None if v is None else tuple(int(a) for a in np.atleast_1d(v))


def _f(x: Array) -> Array:
    return np.asarray(x)


def _gather(p: dict[str, Any]) -> tuple[Array, ...]:
    x, idx = _f(p["x"]), _f(p["indices"]).astype(np.int64)
    axis = int(p.get("axis", 0))
    if int(p.get("batch_dims", 0)) != 0:
        raise UnsupportedMilOpError("gather with batch_dims != 0 is not supported by the numpy interpreter.")
    size = x.shape[axis]
    bad = np.flatnonzero((idx < -size) | (idx >= size))
    if bad.size:
        raise ValueError(
            f"gather: `indices` must be in [{-size}, {size}). "
            f"Found {int(idx.ravel()[bad[0]])} at position {int(bad[0])}."
        )
    return (np.take(x, idx, axis=axis),)


def _matmul(p: dict[str, Any]) -> tuple[Array, ...]:
    x, y = _f(p["x"]), _f(p["y"])
    if bool(p.get("transpose_x", False)):
        x = np.swapaxes(x, -1, -2)
    if bool(p.get("transpose_y", False)):
        y = np.swapaxes(y, -1, -2)
    return (np.matmul(x, y),)


def _binary(fn: Callable[[Array, Array], Array]) -> OpFn:
    return lambda p: (fn(_f(p["x"]), _f(p["y"])),)


def _reduce(fn: Callable[..., Array]) -> OpFn:
    def run(p: dict[str, Any]) -> tuple[Array, ...]:
        return (fn(_f(p["x"]), axis=_axes(p), keepdims=bool(p.get("keep_dims", False))),)

    return run


def _log_sum_exp(x: Array, axis: tuple[int, ...] | None, keepdims: bool) -> Array:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    out: Array = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(p: dict[str, Any]) -> tuple[Array, ...]:
    x, axis = _f(p["x"]), int(p.get("axis", -1))
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return (e / np.sum(e, axis=axis, keepdims=True),)


def _squeeze(p: dict[str, Any]) -> tuple[Array, ...]:
    axes = _axes(p)
    return (np.squeeze(_f(p["x"]), axis=axes),)


def _expand_dims(p: dict[str, Any]) -> tuple[Array, ...]:
    out = _f(p["x"])
    rank = out.ndim + len(_axes(p) or ())
    for a in sorted(ax % rank for ax in _axes(p) or ()):
        out = np.expand_dims(out, a)
    return (out,)


def _topk(p: dict[str, Any]) -> tuple[Array, ...]:
    """MIL ``topk``; ties go to the lower index (a stable sort), the rule of the numpy reference."""
    x, k, axis = _f(p["x"]), int(p.get("k", 1)), int(p.get("axis", -1))
    ascending = bool(p.get("ascending", False))
    if not bool(p.get("sort", True)) or not bool(p.get("return_indices", True)):
        raise UnsupportedMilOpError("topk with sort=False or return_indices=False is not supported.")
    if not 0 < k <= x.shape[axis]:
        raise ValueError(f"topk: `k` must be in [1, {x.shape[axis]}]. Found {k}.")
    order = np.argsort(x if ascending else -x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int32)


def _affine_dequantize(p: dict[str, Any]) -> tuple[Array, ...]:
    q = _f(p["quantized_data"])
    scale, zp, axis = _f(p["scale"]), _f(p["zero_point"]), int(p["axis"])

    def along(v: Array) -> Array:
        if v.ndim == 0:
            return v
        shape = [1] * q.ndim
        shape[axis] = v.size
        return v.reshape(shape)

    out = (q.astype(np.float32) - along(zp).astype(np.float32)) * along(scale).astype(np.float32)
    return (out.astype(scale.dtype),)


def _blockwise(data: Array, scale: Array, offset: Array | None) -> Array:
    if data.ndim != scale.ndim:
        raise ValueError(f"blockwise dequantize: `data` rank {data.ndim} != `scale` rank {scale.ndim}.")
    for axis, (n, s) in enumerate(zip(data.shape, scale.shape, strict=True)):
        if n % s:
            raise ValueError(f"blockwise dequantize: {s} scales do not divide dimension {axis} of size {n}.")
        scale = np.repeat(scale, n // s, axis)
        if offset is not None:
            offset = np.repeat(offset, n // s, axis)
    x = data.astype(scale.dtype)
    if offset is not None:
        x = x - offset.astype(scale.dtype)
    return (x * scale).astype(scale.dtype)


def _blockwise_shift_scale(p: dict[str, Any]) -> tuple[Array, ...]:
    """iOS18 ``constexpr_blockwise_shift_scale``: ``(data - offset) * scale``, each scale over its block."""
    offset = p.get("offset")
    return (_blockwise(_f(p["data"]), _f(p["scale"]), None if offset is None else _f(offset)),)


def _sparse_to_dense(p: dict[str, Any]) -> tuple[Array, ...]:
    nz, mask = _f(p["nonzero_data"]), _f(p["mask"])
    if "shape" in p:  # iOS16: flat bit-packed uint8 mask + explicit shape
        shape = tuple(int(s) for s in _f(p["shape"]))
        bits = np.unpackbits(mask.astype(np.uint8), bitorder="little")[: int(np.prod(shape))].reshape(shape)
    else:  # iOS18: uint1 mask with the output's shape
        bits = mask
    if int(np.count_nonzero(bits)) != nz.size:
        raise ValueError(
            f"sparse_to_dense: mask has {int(np.count_nonzero(bits))} set bits, data has {nz.size}."
        )
    out = np.zeros(bits.shape, nz.dtype)
    out[bits != 0] = nz
    return (out,)


def _sparse_blockwise_shift_scale(p: dict[str, Any]) -> tuple[Array, ...]:
    mask, nz = _f(p["data_mask"]), _f(p["nonzero_data"])
    dense = _sparse_to_dense({"nonzero_data": nz, "mask": mask})[0]
    deq = _blockwise(dense, _f(p["scale"]), p.get("offset"))
    return mask, deq[mask != 0]


_CAST_DTYPES = {"fp16": np.float16, "fp32": np.float32, "int32": np.int32}


def _cast(p: dict[str, Any]) -> tuple[Array, ...]:
    """MIL ``cast`` (runtime) to ``dtype`` (``"fp16"``, ``"fp32"``, ``"int32"``)."""
    dtype = str(np.asarray(p["dtype"]).reshape(-1)[0] if np.ndim(p["dtype"]) else p["dtype"])
    if dtype not in _CAST_DTYPES:
        raise ValueError(f"cast: `dtype` must be one of {sorted(_CAST_DTYPES)}. Found {dtype!r}.")
    return (_f(p["x"]).astype(_CAST_DTYPES[dtype]),)


def _constexpr_cast(p: dict[str, Any]) -> tuple[Array, ...]:
    """iOS16/18 ``constexpr_cast``: a float16 constant widened to float32 (exact)."""
    src = _f(p["source_val"])
    if src.dtype != np.float16:
        raise ValueError(f"constexpr_cast: `source_val` must be float16. Found {src.dtype}.")
    return (src.astype(np.float32),)


_OPS: dict[str, OpFn] = {
    "const": lambda p: (p["val"],),
    "constexpr_cast": _constexpr_cast,
    "cast": _cast,
    "constexpr_affine_dequantize": _affine_dequantize,
    "constexpr_blockwise_shift_scale": _blockwise_shift_scale,
    "constexpr_sparse_to_dense": _sparse_to_dense,
    "constexpr_sparse_blockwise_shift_scale": _sparse_blockwise_shift_scale,
    "gather": _gather,
    "matmul": _matmul,
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "real_div": _binary(np.divide),
    "maximum": _binary(np.maximum),
    "greater_equal": _binary(np.greater_equal),
    "select": lambda p: (np.where(_f(p["cond"]), _f(p["a"]), _f(p["b"])),),
    "softmax": _softmax,
    "reduce_sum": _reduce(np.sum),
    "reduce_log_sum_exp": _reduce(_log_sum_exp),
    "topk": _topk,
    "expand_dims": _expand_dims,
    "squeeze": _squeeze,
    "identity": lambda p: (_f(p["x"]),),
    "less": _binary(np.less),
}
SUPPORTED_OPS: frozenset[str] = frozenset(_OPS) | {"while_loop"}
_MAX_LOOP_ITERATIONS = 100_000  # the exported fine-tune loop runs `steps` (at most 1000) times


def _walk(operations: Any) -> Any:
    """Every op of ``operations`` and, depth first, of the blocks nested in them (``while_loop``)."""
    for op in operations:
        yield op
        for block in op.blocks:
            yield from _walk(block.operations)
"""The MIL op types the interpreter runs (exactly those our exported programs contain)."""


# --------------------------------------------------------------------------------------------------
# Program
# --------------------------------------------------------------------------------------------------
def load_package_spec(package: Path) -> tuple[Model_pb2.Model, Path]:
    """The ``Model`` protobuf of an ``.mlpackage`` and the directory its ``@model_path`` refers to.

    The spec is found through ``Manifest.json``'s ``rootModelIdentifier`` like Core ML does.
    """
    package = Path(package)
    manifest_path = package / "Manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{package} is not an .mlpackage: no Manifest.json.")
    manifest = json.loads(manifest_path.read_text())
    try:
        entry = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
        spec_path = package / "Data" / entry["path"]
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"{manifest_path}: missing field {e} (rootModelIdentifier / itemInfoEntries)."
        ) from None
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    return spec, spec_path.parent


@dataclass(frozen=True)
class MilFunction:
    """One function of an ML program: typed inputs, output names and types, and its operations."""

    name: str
    opset: str
    inputs: dict[str, MilTensorType]
    outputs: dict[str, MilTensorType]
    operations: tuple[MIL_pb2.Operation, ...]
    var_types: dict[str, MilTensorType]

    def param_type(self, op: MIL_pb2.Operation, key: str) -> MilTensorType:
        """The declared type of parameter ``key`` of ``op`` (an attribute, or an input bound to a var)."""
        if key in op.attributes:
            return MilTensorType.from_proto(op.attributes[key].type)
        binding = op.inputs[key].arguments[0]
        if binding.WhichOneof("binding") == "name":
            return self.var_types[binding.name]
        return MilTensorType.from_proto(binding.value.type)

    def op_counts(self) -> Counter[str]:
        """How many ops of each type the function holds (``const`` included, ops inside loops counted once)."""
        return Counter(op.type for op in _walk(self.operations))


class MilProgram:
    """An ML program loaded from a saved ``.mlpackage``, runnable with numpy.

    Construction checks every op is supported (raising :class:`UnsupportedMilOpError` naming the first
    unknown one) and materializes every ``const`` / ``constexpr_*`` op once, as Core ML does at load time.
    """

    def __init__(self, spec: Model_pb2.Model, model_dir: Path) -> None:
        if spec.WhichOneof("Type") != "mlProgram":
            raise ValueError(f"the model is a {spec.WhichOneof('Type')!r}, not an ML program.")
        self.spec = spec
        self.specification_version = int(spec.specificationVersion)
        self._model_dir = Path(model_dir)
        self._blobs: dict[str, BlobReader] = {}
        self.functions: dict[str, MilFunction] = {}
        for fname, fn in spec.mlProgram.functions.items():
            block = fn.block_specializations[fn.opset]
            types: dict[str, MilTensorType] = {i.name: MilTensorType.from_proto(i.type) for i in fn.inputs}
            for op in _walk(block.operations):
                for out in op.outputs:
                    types[out.name] = MilTensorType.from_proto(out.type)
                for inner in op.blocks:
                    types.update({i.name: MilTensorType.from_proto(i.type) for i in inner.inputs})
            self.functions[fname] = MilFunction(
                name=fname,
                opset=fn.opset,
                inputs={i.name: types[i.name] for i in fn.inputs},
                outputs={o: types[o] for o in block.outputs},
                operations=tuple(block.operations),
                var_types=types,
            )
        for f in self.functions.values():
            for op in _walk(f.operations):
                if op.type not in _OPS and op.type != "while_loop":
                    out = op.outputs[0].name if op.outputs else "?"
                    raise UnsupportedMilOpError(
                        f"MIL op {op.type!r} (producing {out!r} in function {f.name!r}) "
                        "is not supported by the "
                        f"numpy interpreter. Supported ops: {sorted(SUPPORTED_OPS)}."
                    )
        self._consts: dict[str, dict[str, Array]] = {
            name: self._fold_constants(f) for name, f in self.functions.items()
        }

    @classmethod
    def load(cls, package: Path) -> MilProgram:
        """Read ``package`` (an ``.mlpackage`` directory) from disk."""
        spec, model_dir = load_package_spec(package)
        return cls(spec, model_dir)

    @property
    def default_function(self) -> str:
        """The function run when none is named (``main`` for a single-function program)."""
        return self.spec.description.defaultFunctionName or next(iter(self.functions))

    def _blob(self, file_name: str) -> BlobReader:
        if file_name not in self._blobs:
            rel = file_name.removeprefix("@model_path/")
            self._blobs[file_name] = BlobReader(self._model_dir / rel)
        return self._blobs[file_name]

    def _params(self, op: MIL_pb2.Operation, env: Mapping[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key, arg in op.inputs.items():
            values = [
                env[b.name] if b.WhichOneof("binding") == "name" else _decode_value(b.value, self._blob)
                for b in arg.arguments
            ]
            params[key] = values[0] if len(values) == 1 else values
        for key, value in op.attributes.items():
            if key != "name":
                params[key] = _decode_value(value, self._blob)
        return params

    def _run_block(self, fn: MilFunction, block: MIL_pb2.Block, env: Mapping[str, Any], args: list[Any]) -> list[Any]:
        """Run a nested block with its inputs bound to ``args``; it sees the enclosing values (MIL scoping)."""
        if len(args) != len(block.inputs):
            raise ValueError(f"a block of function {fn.name!r} takes {len(block.inputs)} inputs. Found {len(args)}.")
        local: dict[str, Any] = dict(env)
        local.update({i.name: a for i, a in zip(block.inputs, args, strict=True)})
        for op in block.operations:
            self._run_op(fn, op, local)
        return [local[o] for o in block.outputs]

    def _while_loop(self, fn: MilFunction, op: MIL_pb2.Operation, env: Mapping[str, Any]) -> list[Any]:
        """MIL ``while_loop``: ``while cond(*vars): vars = body(*vars)``; blocks 0 and 1 are cond and body."""
        loop_vars = [env[b.name] if b.WhichOneof("binding") == "name" else _decode_value(b.value, self._blob)
                     for b in op.inputs["loop_vars"].arguments]
        cond, body = op.blocks[0], op.blocks[1]
        for _ in range(_MAX_LOOP_ITERATIONS):
            if not bool(np.asarray(self._run_block(fn, cond, env, loop_vars)[0]).reshape(-1)[0]):
                return loop_vars
            loop_vars = self._run_block(fn, body, env, loop_vars)
        raise ValueError(f"while_loop in function {fn.name!r} ran more than {_MAX_LOOP_ITERATIONS} iterations.")

    def _run_op(self, fn: MilFunction, op: MIL_pb2.Operation, env: dict[str, Any]) -> None:
        if op.type == "while_loop":
            results: Any = self._while_loop(fn, op, env)
            for out, value in zip(op.outputs, results, strict=True):
                env[out.name] = np.asarray(value).astype(MilTensorType.from_proto(out.type).numpy_dtype, copy=False)
            return
        try:
            results = _OPS[op.type](self._params(op, env))
        except KeyError as e:
            raise ValueError(f"MIL op {op.type!r} in function {fn.name!r} misses input {e}.") from None
        if len(results) != len(op.outputs):
            raise ValueError(
                f"MIL op {op.type!r} produced {len(results)} outputs, the program declares {len(op.outputs)}."
            )
        for out, value in zip(op.outputs, results, strict=True):
            declared = MilTensorType.from_proto(out.type)
            if declared.dtype == "STRING":
                env[out.name] = value
            else:
                env[out.name] = np.asarray(value).astype(declared.numpy_dtype, copy=False)

    def _fold_constants(self, fn: MilFunction) -> dict[str, Array]:
        env: dict[str, Any] = {}
        for op in fn.operations:
            if op.type == "const" or op.type.startswith("constexpr_"):
                self._run_op(fn, op, env)
        return env

    def constant(self, name: str, function: str | None = None) -> Array:
        """The materialized value of the ``const``/``constexpr_*`` output ``name`` (as Core ML loads it)."""
        fn = function or self.default_function
        consts = self._consts.get(fn, {})
        if name not in consts:
            raise KeyError(f"function {fn!r} has no constant {name!r}.")
        value: Array = consts[name]
        return value

    def op_params(self, output: str, function: str | None = None) -> dict[str, Any]:
        """The decoded parameters (inputs and attributes) of the const-only op producing ``output``."""
        fn = self.functions[function or self.default_function]
        for op in fn.operations:
            if any(o.name == output for o in op.outputs):
                return self._params(op, self._consts[fn.name])
        raise KeyError(f"function {fn.name!r} has no op producing {output!r}.")

    def run(self, inputs: Mapping[str, Array], function: str | None = None) -> dict[str, Array]:
        """Run ``function`` (default: :attr:`default_function`) on ``inputs``; returns its outputs by name.

        Inputs are checked against the declared dtype and the fixed dimensions of the function's inputs.
        """
        name = function or self.default_function
        if name not in self.functions:
            raise ValueError(f"`function` must be one of {sorted(self.functions)}. Found {name!r}.")
        fn = self.functions[name]
        missing = sorted(set(fn.inputs) - set(inputs))
        if missing:
            raise ValueError(f"function {name!r} needs inputs {sorted(fn.inputs)}. Missing {missing}.")
        env: dict[str, Any] = dict(self._consts[name])
        for key, tt in fn.inputs.items():
            value = np.asarray(inputs[key])
            if value.dtype != tt.numpy_dtype:
                raise TypeError(f"input `{key}` must be {tt.numpy_dtype}. Found {value.dtype}.")
            if value.ndim != len(tt.shape) or any(
                d not in (-1, s) for d, s in zip(tt.shape, value.shape, strict=True)
            ):
                raise ValueError(f"input `{key}` must have shape {tt.shape} (-1 = any). Found {value.shape}.")
            env[key] = value
        for op in fn.operations:
            if op.outputs and op.outputs[0].name not in env:
                self._run_op(fn, op, env)
        return {o: env[o] for o in fn.outputs}
