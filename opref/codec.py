"""The suite's file format, below both writing and reading it: the backend-test layout's
names, the tensor file codec (TensorProto with raw little-endian data), the digest files are
listed under, and :class:`SuiteError`."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import onnx

from opref import boundary
from opref.dtypes import DTYPES, dtype_of

MANIFEST = "manifest.json"
CHECKER = "checker.json"
FORMAT = 1
DATA_SET = "test_data_set_0"
OUTPUT_FILE = f"{DATA_SET}/output_0.pb"
# Nothing larger is read from a suite (a model, or one tensor file); the manifest has its own cap.
MAX_FILE_BYTES = 256 * 2**20
MAX_MANIFEST_BYTES = 64 * 2**20


class SuiteError(Exception):
    """A suite directory cannot be written or read as asked."""


def sha256(data: bytes) -> str:
    """The digest a manifest lists each file under."""
    return hashlib.sha256(data).hexdigest()


# The quantized forms' graph input and output (issue 24: the qdq form), read only where asked.
_QUANTIZED = {onnx.TensorProto.INT8: np.dtype(np.int8), onnx.TensorProto.UINT8: np.dtype(np.uint8)}


def tensor_proto(array: np.ndarray, name: str) -> onnx.TensorProto:
    """A TensorProto with raw little-endian data, built field by field (no version defaults)."""
    quantized = {v: k for k, v in _QUANTIZED.items()}.get(np.asarray(array).dtype)
    if quantized is not None:
        elem, numpy_type = quantized, np.asarray(array).dtype
    else:
        dt = dtype_of(array, name)
        elem, numpy_type = dt.onnx_type, dt.numpy
    t = onnx.TensorProto()
    t.name = name
    t.data_type = elem
    t.dims.extend(int(d) for d in array.shape)
    t.raw_data = np.ascontiguousarray(array, dtype=numpy_type.newbyteorder("<")).tobytes()
    return t


def read_tensor(data: bytes, integers: bool = False) -> np.ndarray:
    """Parse a serialized TensorProto of one of the four float types (or, with ``integers``,
    int8 or uint8) into an array."""
    t = onnx.TensorProto()
    t.ParseFromString(data)
    by_id = {d.onnx_type: d.numpy for d in DTYPES.values()}
    if integers:
        by_id.update(_QUANTIZED)
    if t.data_type not in by_id:
        raise SuiteError(f"tensor {t.name!r} has ONNX data type {t.data_type}, not a type opref reads here")
    dt = by_id[t.data_type]
    try:  # checked before anything is allocated: no negative, no overflowing, no 65-dim shape
        shape = boundary.shape(list(t.dims), f"tensor {t.name!r:.80} dims", max_elements=2**32)
    except boundary.BoundaryError as exc:
        raise SuiteError(str(exc)) from None
    if t.HasField("raw_data"):
        if len(t.raw_data) % dt.itemsize:
            raise SuiteError(f"tensor {t.name!r}: {len(t.raw_data)} bytes of {dt} data")
        arr = np.frombuffer(t.raw_data, dtype=dt.newbyteorder("<"))
    else:
        from onnx import numpy_helper

        arr = numpy_helper.to_array(t).reshape(-1)
    if arr.size != math.prod(shape):
        raise SuiteError(f"tensor {t.name!r}: {arr.size} values for shape {list(shape)}")
    return arr.astype(dt, copy=False).reshape(shape)  # a view where the bytes allow it


