"""Write, read and verify a conformance suite in ONNX's backend-test layout.

Layout (exactly what onnx's loader and onnxruntime's test runners read)::

    <out>/manifest.json
    <out>/node/<case>/model.onnx
    <out>/node/<case>/test_data_set_0/input_0.pb   X
    <out>/node/<case>/test_data_set_0/input_1.pb   W
    <out>/node/<case>/test_data_set_0/input_2.pb   B (when present)
    <out>/node/<case>/test_data_set_0/output_0.pb  Y (absent for must-reject cases)

Everything written is a function of the case list alone: seeded data (numpy's frozen
``RandomState`` stream, seeded from the case name), explicit model fields, sorted JSON.
A run writes into a temporary sibling directory and swaps it in at the end.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from opref.cases import VARIANTS, Case
from opref.dtypes import DTYPES, DType, dtype_of
from opref.errors import SpecError
from opref.geometry import geometry, to_dict
from opref.model import ATTRIBUTE_NAMES, check_case_model, ir_version_for, make_model
from opref.outdir import staged
from opref.readings import AMBIGUITIES
from opref.reference import conv_transpose
from opref.tolerance import magnitude_sum, max_terms
from opref.version import __version__

MANIFEST = "manifest.json"
CHECKER = "checker.json"
FORMAT = 1
DATA_SET = "test_data_set_0"

# Significant bits of "random" data per dtype: values are seeded normals rounded to a dyadic
# grid of this many bits, so that the float64 reference sum is exact in any summation order
# (byte-identical files whatever BLAS) while the dtype's own accumulation still rounds.
RANDOM_BITS = {"float16": 11, "float32": 16, "float64": 20, "bfloat16": 8}


class SuiteError(Exception):
    """A suite directory cannot be written or read as asked."""


# --- tensors ------------------------------------------------------------------------------


def tensor_proto(array: np.ndarray, name: str) -> onnx.TensorProto:
    """A TensorProto with raw little-endian data, built field by field (no version defaults)."""
    dt = dtype_of(array, name)
    t = onnx.TensorProto()
    t.name = name
    t.data_type = dt.onnx_type
    t.dims.extend(int(d) for d in array.shape)
    t.raw_data = np.ascontiguousarray(array, dtype=dt.numpy.newbyteorder("<")).tobytes()
    return t


def read_tensor(data: bytes) -> np.ndarray:
    """Parse a serialized TensorProto of one of the four float types into an array."""
    t = onnx.TensorProto()
    t.ParseFromString(data)
    by_id = {d.onnx_type: d for d in DTYPES.values()}
    if t.data_type not in by_id:
        raise SuiteError(f"tensor {t.name!r} has ONNX data type {t.data_type}, not a float type opref knows")
    dt = by_id[t.data_type]
    shape = tuple(t.dims)
    if t.HasField("raw_data"):
        arr = np.frombuffer(t.raw_data, dtype=dt.numpy.newbyteorder("<"))
    else:
        from onnx import numpy_helper

        arr = numpy_helper.to_array(t).reshape(-1)
    if arr.size != int(np.prod(shape)):
        raise SuiteError(f"tensor {t.name!r}: {arr.size} values for shape {list(shape)}")
    return arr.astype(dt.numpy, copy=False).reshape(shape)  # a view where the bytes allow it


# --- input data ---------------------------------------------------------------------------


def _rng(case: Case) -> np.random.RandomState:
    # RandomState's stream is frozen by numpy's compatibility policy; crc32 is stable. Every
    # model variant of a case draws the case's own data.
    return np.random.RandomState(zlib.crc32(case.base_case.encode()))


def _random_grid(rng: np.random.RandomState, shape, dt: DType, bits: int) -> np.ndarray:
    frac = bits - 3  # values mostly within +-4
    ints = np.clip(np.round(rng.standard_normal(shape) * 2.0**frac), -(2**bits - 1), 2**bits - 1)
    return (ints / 2.0**frac).astype(dt.numpy)


def case_inputs(case: Case) -> tuple[np.ndarray, ...]:
    """X, W (and B) of a case: given, or drawn deterministically from the case name."""
    if case.inputs is not None:
        return case.inputs
    dt = DTYPES[case.dtype]
    w_dt = DTYPES[case.w_dtype or case.dtype]
    rng = _rng(case)
    shapes = [case.x_shape, case.w_shape] + ([case.b_shape] if case.b_shape is not None else [])
    types = [dt, w_dt, w_dt]
    if case.data == "random":
        return tuple(
            _random_grid(rng, s, t, RANDOM_BITS[t.name]) for s, t in zip(shapes, types, strict=False)
        )
    geo = None if case.reject else case.geometry()
    # Small integers, narrowed (smaller range, then sparser) until every partial sum fits.
    for high, density in ((3, 1.0), (2, 1.0), (1, 1.0), (1, 0.5), (1, 0.25), (1, 0.1), (1, 0.03)):
        arrays = []
        for s, t in zip(shapes, types, strict=False):
            vals = rng.randint(-high, high + 1, size=s).astype(np.float64)
            vals *= rng.random_sample(s) < density
            arrays.append(vals.astype(t.numpy))
        if geo is None:
            return tuple(arrays)
        bound = magnitude_sum(*arrays[:2], arrays[2] if len(arrays) > 2 else None, geo)
        if bound.max(initial=0) <= dt.exact_limit:
            return tuple(arrays)
    raise SuiteError(f"{case.name}: no exactly summable integer data found; shrink the case")


# --- one case -----------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checker(model: onnx.ModelProto) -> str:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # the checker raises several types; all mean "refused"
        return "refused: " + str(exc).strip().splitlines()[0][:300]
    return "ok"


@functools.lru_cache(maxsize=1)
def _values(base: Case) -> tuple[tuple[np.ndarray, ...], dict, bytes | None]:
    """The inputs, the value-dependent record fields and output_0.pb of a case, shared by its
    model variants (generate writes them one after the other: one entry suffices)."""
    inputs = case_inputs(base)
    if base.reject:
        try:
            base.geometry()
            if base.w_dtype:
                raise SpecError("W.dtype", base.w_dtype, f"must equal X.dtype={base.dtype}")
        except SpecError as exc:
            message = str(exc)
        else:
            raise SuiteError(f"{base.name}: declared must-reject ({base.reject}) but opref accepts it")
        return (
            inputs,
            {
                "expect": "reject",
                "reject_rule": base.reject,
                "reject_message": message,
                "geometry": None,
                "ambiguities": reject_ambiguities(
                    base.x_shape, base.w_shape, base.attributes, base.opset, base.b_shape, base.dtype
                ),
                "tolerance": None,
            },
            None,
        )
    geo = base.geometry()
    X, W, *rest = inputs
    B = rest[0] if rest else None
    Y = conv_transpose(X, W, B, **base.attributes, opset=base.opset)
    dt = DTYPES[base.dtype]
    S = magnitude_sum(X, W, B, geo)
    integral = all(np.array_equal(a, np.round(a.astype(np.float64))) for a in inputs)
    return (
        inputs,
        {
            "expect": "output",
            "geometry": to_dict(geo),
            "ambiguities": list(geo.ambiguities),
            "tolerance": {
                "unit_roundoff": dt.unit_roundoff,
                "max_terms": max_terms(geo, B is not None),
                "max_magnitude_sum": float(S.max(initial=0.0)),
                "bitexact": bool(integral and S.max(initial=0.0) <= dt.exact_limit),
            },
        },
        tensor_proto(Y, "Y").SerializeToString(),
    )


def reject_ambiguities(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    attributes: Mapping[str, object],
    opset: int,
    b_shape: Sequence[int] | None,
    dtype: str,
) -> list[str]:
    """The ambiguities under another reading of which a must-reject node is valid: a runtime
    that follows that reading and runs it diverges, it does not accept an invalid model
    (output-shape-rank: a full-rank output_shape whose N and C entries match). Empty when the
    geometry accepts the node under the default readings (mixed element types)."""
    from opref.geometry import geometry
    from opref.readings import AMBIGUITIES

    def valid(readings: Mapping[str, str]) -> bool:
        try:
            geometry(
                x_shape, w_shape, **attributes, opset=opset, b_shape=b_shape, dtype=dtype, readings=readings
            )
        except SpecError:
            return False
        return True

    if valid({}):
        return []
    return [aid for aid, amb in AMBIGUITIES.items() if any(valid({aid: r}) for r in amb.readings)]


def build_case(case: Case) -> tuple[dict[str, bytes], dict]:
    """The files of one case (relative path -> bytes) and its manifest record.

    The record holds only what the case determines; what this onnx version's checker says
    of the model goes to checker.json (see :func:`generate`). A model variant
    (``opref.cases.VARIANTS``) has its case's inputs and expected output; with constant
    weights, W and B are in the model and ``input_0.pb`` (X) is its only input file.
    """
    variant = VARIANTS[case.variant]
    inputs, outcome, output = _values(replace(case, name=case.base_case, variant="inputs"))
    attrs = case.attributes
    record: dict = {
        "name": case.name,
        "family": case.family,
        "dtype": case.dtype,
        "opset": case.opset,
        "ir_version": ir_version_for(case.opset),
        "x_shape": list(case.x_shape),
        "w_shape": list(case.w_shape),
        "b_shape": None if case.b_shape is None else list(case.b_shape),
        "attributes": attrs,
        "data": case.data,
        "features": list(case.features),
        "description": case.description,
        "variant": case.variant,
        "base_case": case.base_case,
        **outcome,
    }
    files: dict[str, bytes] = {}
    if output is None:
        y_shape = [None] * len(case.x_shape)  # no output shape exists for an invalid node
    else:
        y_shape = record["geometry"]["output_shape"]
        files[f"{DATA_SET}/output_0.pb"] = output
    named = list(zip(("X", "W", "B"), inputs, strict=False))
    constants = [tensor_proto(a, n) for n, a in named[1:]] if variant.constant_weights else []
    model = make_model(
        case.name,
        case.x_shape,
        case.w_shape,
        case.b_shape,
        attrs,
        case.dtype,
        case.opset,
        y_shape=y_shape,
        w_dtype=case.w_dtype,
        initializers=constants,
        symbolic_batch=variant.symbolic_batch,
        symbolic_spatial=variant.symbolic_spatial,
    )
    files["model.onnx"] = model.SerializeToString()
    for i, (name, arr) in enumerate(named[: len(named) - len(constants)]):
        files[f"{DATA_SET}/input_{i}.pb"] = tensor_proto(arr, name).SerializeToString()
    record["files"] = {path: _sha(data) for path, data in sorted(files.items())}
    return files, record


# --- a whole suite ------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    out: Path
    cases: int
    rejects: int
    bytes: int
    seconds: float

    def line(self) -> str:
        return (
            f"generated {self.cases} cases ({self.cases - self.rejects} with outputs, {self.rejects} "
            f"must-reject) into {self.out} ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f} s"
        )


def is_suite(path: Path) -> bool:
    """True when ``path`` holds a manifest written by opref."""
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("generator") == "opref"


def is_replaceable_suite(path: Path) -> bool:
    """A suite opref may replace: written by opref, holding nothing its manifest does not list."""
    return is_suite(path) and not _foreign_entries(path)


def _siblings(out: Path, kind: str) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.opref-{kind}-*"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(out: Path) -> None:
    """Tidy what an interrupted run left: stale temporaries, and a suite moved aside."""
    for tmp in _siblings(out, "tmp"):
        pid = int(tmp.name.rsplit("-", 1)[-1]) if tmp.name.rsplit("-", 1)[-1].isdigit() else 0
        if not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
    for old in _siblings(out, "old"):
        if not out.exists() and is_suite(old):
            old.rename(out)  # killed between the two renames of the swap
        else:
            shutil.rmtree(old, ignore_errors=True)


def _foreign_entries(out: Path) -> list[str]:
    """Paths under an existing suite that its manifest does not account for (a replaced suite
    must take nothing else with it)."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        cases = {r["name"]: set(r["files"]) for r in manifest["cases"]}
    except (OSError, ValueError, KeyError, TypeError):
        return [MANIFEST] if (out / MANIFEST).exists() else []
    foreign = [e.name for e in sorted(out.iterdir()) if e.name not in (MANIFEST, CHECKER, "node")]
    node = out / "node"
    if node.is_dir() and not node.is_symlink():
        for case in sorted(node.iterdir()):
            if case.name not in cases or case.is_symlink() or not case.is_dir():
                foreign.append(f"node/{case.name}")
                continue
            for path in sorted(case.rglob("*")):
                rel = path.relative_to(case).as_posix()
                inside = any(f.startswith(rel + "/") for f in cases[case.name])
                if rel not in cases[case.name] and not (path.is_dir() and inside):
                    foreign.append(f"node/{case.name}/{rel}")
    elif node.exists():
        foreign.append("node")
    return foreign


def _json(data) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()


def progress_bar(done: int, total: int) -> None:
    """A one-line progress bar on stderr, redrawn about fifty times over a run."""
    if done != total and done % max(1, total // 50):
        return
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def generate(
    out: str | os.PathLike,
    cases: Iterable[Case],
    parameters: Mapping[str, object],
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Write ``cases`` as a suite at ``out``, replacing a previous opref suite there.

    Refuses a non-empty ``out`` that is not an opref suite, or one holding files its manifest
    does not list; on any error, or if killed, the previous suite stays as it was
    (:mod:`opref.outdir`).
    """
    t0 = time.perf_counter()
    out = Path(out).absolute()
    cases = list(cases)
    records, total_bytes, checks = [], 0, {}
    with staged(out, "generate", own=is_replaceable_suite, marker=False) as tmp:
        for i, case in enumerate(cases):
            files, record = build_case(case)
            checks[case.name] = _checker(onnx.load_from_string(files["model.onnx"]))
            for rel, data in files.items():
                path = tmp / "node" / case.name / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                total_bytes += len(data)
            records.append(record)
            if progress:
                progress(i + 1, len(cases))
        manifest = {
            "generator": "opref",
            "generator_version": __version__,
            "format": FORMAT,
            "parameters": dict(parameters),
            "case_count": len(records),
            "cases": records,
        }
        data = _json(manifest)
        (tmp / MANIFEST).write_bytes(data)
        total_bytes += len(data)
        # ONNX's checker is an observation of the installed onnx, not a property of the case:
        # it takes sides on ambiguities (clamps a negative T under SAME, adds output_padding
        # to SAME), refuses some valid models (output_shape far below the full extent), and
        # its verdicts change between onnx releases. Kept apart so the manifest and every
        # case file stay byte-identical across the onnx versions opref supports.
        (tmp / CHECKER).write_bytes(
            _json({"onnx_version": onnx.__version__, "full_check": True, "cases": checks})
        )
    return Summary(
        out,
        len(records),
        sum(1 for r in records if r["expect"] == "reject"),
        total_bytes,
        time.perf_counter() - t0,
    )


# --- reading a suite someone else produced ----------------------------------------------------
#
# A suite is untrusted input. Every file is opened relative to the suite's directory, one path
# component at a time, never through a symbolic link, and must be a regular file (a FIFO or a
# device is refused before it is read) no larger than its cap. Only the files a record lists are
# read, each checked against its sha256, and the very bytes that were checked are the ones that
# are parsed, judged and sent to a runtime.

# Nothing larger is read from a suite (a model, or one tensor file); the manifest has its own cap.
MAX_FILE_BYTES = 256 * 2**20
MAX_MANIFEST_BYTES = 64 * 2**20
CASE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}\Z")
_INPUT_FILE = re.compile(rf"{DATA_SET}/input_(\d)\.pb\Z")
OUTPUT_FILE = f"{DATA_SET}/output_0.pb"
_SHA = re.compile(r"[0-9a-f]{64}\Z")
_INT64 = 2**63


def _open_dir(name: str, dir_fd: int | None = None) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
    if dir_fd is not None:
        flags |= os.O_NOFOLLOW
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise SuiteError(f"{name}: {_why(exc, name, dir_fd)}") from None


def _why(exc: OSError, name: str, dir_fd: int | None) -> str:
    try:
        if dir_fd is not None and stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode):
            return "is a symbolic link"
    except OSError:
        pass
    if exc.errno == errno.ENOENT:
        return "missing"
    return (exc.strerror or str(exc)).lower()


def _read_regular(name: str, dir_fd: int, cap: int) -> bytes:
    """The bytes of a regular file ``name`` in ``dir_fd``: no link, FIFO or device, at most ``cap``."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise SuiteError(f"{name}: {_why(exc, name, dir_fd)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SuiteError(f"{name}: not a regular file")
        if st.st_size > cap:
            raise SuiteError(f"{name}: {st.st_size} bytes, over the {cap}-byte limit")
        chunks, left = [], st.st_size + 1  # one byte more: a file that grew is noticed
        while left > 0:
            chunk = os.read(fd, min(left, 2**24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > cap:
            raise SuiteError(f"{name}: grew past the {cap}-byte limit while being read")
        return data
    finally:
        os.close(fd)


def _read_suite_file(root_fd: int, parts: Sequence[str], cap: int) -> bytes:
    """The bytes of ``root/parts...``, every component opened without following a link; a
    SuiteError names the path up to the component that failed."""
    fd = os.dup(root_fd)
    try:
        for k, part in enumerate(parts):
            try:
                if k == len(parts) - 1:
                    return _read_regular(part, fd, cap)
                nxt = _open_dir(part, fd)
            except SuiteError as exc:
                raise SuiteError("/".join(parts[:k]) + ("/" if k else "") + str(exc)) from None
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    raise SuiteError("empty path")


def _open_suite(suite: str | os.PathLike) -> int:
    try:
        return _open_dir(os.fspath(suite))
    except SuiteError as exc:
        raise SuiteError(f"{suite}: not a readable directory ({exc})") from None


def load_manifest(suite: str | os.PathLike) -> dict:
    """The manifest of a suite directory as JSON, or SuiteError saying why it cannot be read."""
    root_fd = _open_suite(suite)
    path = Path(suite) / MANIFEST
    try:
        data = _read_regular(MANIFEST, root_fd, MAX_MANIFEST_BYTES)
    except SuiteError as exc:
        raise SuiteError(f"{path}: cannot read the manifest: {exc}") from None
    finally:
        os.close(root_fd)
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not UTF-8 ({exc})") from None
    except ValueError as exc:
        raise SuiteError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or obj.get("generator") != "opref" or not isinstance(obj.get("cases"), list):
        raise SuiteError(f"{path}: not an opref manifest")
    if obj.get("format") != FORMAT:
        raise SuiteError(f"{path}: manifest format {obj.get('format')!r}; this opref reads format {FORMAT}")
    return obj


# --- the manifest record, typed -----------------------------------------------------------------


class RecordError(ValueError):
    """A manifest record that is not what opref writes (its case is refused, the run goes on)."""


@dataclass(frozen=True)
class Tolerance:
    unit_roundoff: float
    max_terms: int
    bitexact: bool


@dataclass(frozen=True)
class CaseRecord:
    """One manifest record, checked field by field and against opref's own geometry."""

    name: str
    family: str
    dtype: str
    opset: int
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    b_shape: tuple[int, ...] | None
    attributes: Mapping[str, object]
    expect: str  # "output" or "reject"
    ambiguities: tuple[str, ...]
    tolerance: Tolerance | None
    files: Mapping[str, str]
    output_shape: tuple[int, ...] | None  # what geometry gives (output cases)
    reject_message: str = ""
    description: str = ""
    variant: str = "inputs"  # a name from opref.cases.VARIANTS
    base_case: str = ""  # the case this is a model variant of (its own name for "inputs")

    @property
    def input_files(self) -> list[str]:
        return sorted(
            (r for r in self.files if _INPUT_FILE.match(r)), key=lambda r: int(_INPUT_FILE.match(r)[1])
        )


def _int(value: object, what: str, low: int = -_INT64, high: int = _INT64) -> int:
    if type(value) is not int or not low <= value < high:
        raise RecordError(f"{what} must be an integer in [{low}, {high}), got {value!r:.80}")
    return value


def _ints(value: object, what: str, low: int = -_INT64) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 16:
        raise RecordError(f"{what} must be a list of at most 16 integers, got {value!r:.80}")
    return tuple(_int(v, f"{what}[{i}]", low) for i, v in enumerate(value))


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{what} must be a string, got {value!r:.80}")
    return value


def _attributes(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise RecordError("attributes must be an object")
    out: dict[str, object] = {}
    for key, v in value.items():
        if key not in ATTRIBUTE_NAMES:
            raise RecordError(f"unknown attribute {key!r:.80}; ConvTranspose has {list(ATTRIBUTE_NAMES)}")
        if key == "auto_pad":
            out[key] = _str(v, "attributes.auto_pad")
        elif key == "group":
            out[key] = _int(v, "attributes.group")
        else:
            out[key] = list(_ints(v, f"attributes.{key}"))
    return out


def _files(value: object, expect: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise RecordError("files must be an object of path -> sha256")
    for rel, digest in value.items():
        if rel != "model.onnx" and rel != OUTPUT_FILE and not _INPUT_FILE.match(rel):
            raise RecordError(
                f"files lists {rel!r:.80}; a case holds only model.onnx, inputs and output_0.pb"
            )
        if not isinstance(digest, str) or not _SHA.match(digest):
            raise RecordError(f"files[{rel!r}] is not a sha256 hex digest")
    if "model.onnx" not in value:
        raise RecordError("files lists no model.onnx")
    inputs = sorted(int(_INPUT_FILE.match(r)[1]) for r in value if _INPUT_FILE.match(r))
    if inputs != list(range(len(inputs))) or not inputs:
        raise RecordError(f"files lists inputs {inputs}; expected input_0.pb[, input_1.pb[, input_2.pb]]")
    if expect == "output" and OUTPUT_FILE not in value:
        raise RecordError("an output case must list test_data_set_0/output_0.pb")
    if expect == "reject" and OUTPUT_FILE in value:
        raise RecordError("a must-reject case must not list an output")
    return dict(value)


def parse_record(rec: object) -> CaseRecord:
    """Check one manifest record (types, then the geometry it claims); RecordError says why not."""
    if not isinstance(rec, dict):
        raise RecordError("the record is not an object")
    name = _str(rec.get("name"), "name")
    dtype = _str(rec.get("dtype"), "dtype")
    if dtype not in DTYPES:
        raise RecordError(f"dtype {dtype!r:.40} is not one of {sorted(DTYPES)}")
    opset = _int(rec.get("opset"), "opset", 1, 1000)
    expect = _str(rec.get("expect"), "expect")
    if expect not in ("output", "reject"):
        raise RecordError(f"expect must be 'output' or 'reject', got {expect!r:.40}")
    x_shape = _ints(rec.get("x_shape"), "x_shape", 0)
    w_shape = _ints(rec.get("w_shape"), "w_shape", 0)
    b_shape = None if rec.get("b_shape") is None else _ints(rec.get("b_shape"), "b_shape", 0)
    attributes = _attributes(rec.get("attributes"))
    files = _files(rec.get("files"), expect)
    ambiguities = rec.get("ambiguities") or []
    if not isinstance(ambiguities, list) or not all(a in AMBIGUITIES for a in ambiguities):
        raise RecordError(f"ambiguities {ambiguities!r:.120} are not ids from {sorted(AMBIGUITIES)}")
    try:
        geo = geometry(x_shape, w_shape, **attributes, opset=opset, b_shape=b_shape, dtype=dtype)
    except SpecError as exc:
        if expect == "output":
            raise RecordError(f"the record expects an output, but the node is invalid: {exc}") from None
        geo = None
    variant = _str(rec.get("variant", "inputs"), "variant")
    if variant not in VARIANTS:
        raise RecordError(f"variant {variant!r:.40} is not one of {list(VARIANTS)}")
    base_case = _str(rec.get("base_case", name), "base_case")
    if (base_case == name) != (variant == "inputs"):
        raise RecordError(f"base_case {base_case!r:.80} does not fit variant {variant!r}")
    tolerance = None
    if expect == "reject" and sorted(ambiguities) != sorted(
        reject_ambiguities(x_shape, w_shape, attributes, opset, b_shape, dtype)
    ):
        raise RecordError(f"ambiguities {ambiguities} are not those under which the node is valid")
    if expect == "output":
        if sorted(ambiguities) != sorted(geo.ambiguities):
            raise RecordError(f"ambiguities {ambiguities} differ from the node's {list(geo.ambiguities)}")
        tol = rec.get("tolerance")
        if not isinstance(tol, dict) or not isinstance(tol.get("bitexact"), bool):
            raise RecordError("tolerance must be an object with a boolean 'bitexact'")
        terms = max_terms(geo, b_shape is not None)
        tolerance = Tolerance(DTYPES[dtype].unit_roundoff, terms, tol["bitexact"])
        if tol.get("max_terms") != tolerance.max_terms:
            raise RecordError(
                f"tolerance.max_terms {tol.get('max_terms')!r:.40} is not the node's {tolerance.max_terms}"
            )
    return CaseRecord(
        name,
        _str(rec.get("family", ""), "family"),
        dtype,
        opset,
        x_shape,
        w_shape,
        b_shape,
        attributes,
        expect,
        tuple(ambiguities),
        tolerance,
        files,
        None if geo is None else tuple(geo.output_shape),
        _str(rec.get("reject_message", ""), "reject_message"),
        _str(rec.get("description", ""), "description"),
        variant,
        base_case,
    )


@dataclass(frozen=True)
class Manifest:
    """A suite's manifest: the records that passed their checks, and why the others did not."""

    records: Mapping[str, CaseRecord]
    problems: Mapping[str, str]
    raw: Mapping[str, object]


def read_manifest(suite: str | os.PathLike) -> Manifest:
    """Load and check a manifest. Names that could not be directory names (or are repeated) make
    the whole suite unusable (SuiteError); any other bad record is only that case's problem."""
    data = load_manifest(suite)
    if "case_count" in data and data["case_count"] != len(data["cases"]):
        raise SuiteError(f"manifest: case_count {data['case_count']!r:.40} but {len(data['cases'])} records")
    records: dict[str, CaseRecord] = {}
    problems: dict[str, str] = {}
    seen: set[str] = set()
    for i, rec in enumerate(data["cases"]):
        name = rec.get("name") if isinstance(rec, dict) else None
        if not isinstance(name, str):
            problems[f"record[{i}]"] = "the record has no name"
            continue
        if not CASE_NAME.match(name) or name in (".", ".."):
            raise SuiteError(
                f"manifest record {i}: case name {name!r:.80} is not 1-200 characters of [A-Za-z0-9_.-]"
            )
        if name in seen:
            raise SuiteError(f"manifest record {i}: case name {name!r} is used twice")
        seen.add(name)
        try:
            records[name] = parse_record(rec)
        except RecordError as exc:
            problems[name] = f"manifest record: {exc}"
    return Manifest(records, problems, data)


# --- one case, read and checked -------------------------------------------------------------------


@dataclass(frozen=True)
class CaseData:
    """A case as verified: the model's bytes, the named inputs, the node's operands, the
    expected output."""

    record: CaseRecord
    model: bytes
    inputs: tuple[tuple[str, np.ndarray], ...]  # (graph input name, array), in input_i order
    operands: tuple[np.ndarray, ...]  # X, W[, B] as the node reads them (inputs or initializers)
    expected: np.ndarray | None


def _tensor_file(rel: str, data: bytes) -> np.ndarray:
    from google.protobuf.message import DecodeError

    t = onnx.TensorProto()
    try:
        t.ParseFromString(data)
    except DecodeError as exc:
        raise SuiteError(f"{rel}: malformed ({exc})") from None
    if t.data_location == onnx.TensorProto.EXTERNAL or t.external_data:
        raise SuiteError(f"{rel}: refers to external data; opref reads nothing outside the suite")
    try:
        return read_tensor(data)
    except (SuiteError, ValueError) as exc:
        raise SuiteError(f"{rel}: malformed ({exc})") from None


def read_case(suite: str | os.PathLike, record: CaseRecord, root_fd: int | None = None) -> CaseData:
    """Read exactly the files ``record`` lists, verify each, and check them against the record.

    SuiteError names the first problem. The returned bytes and arrays are the verified ones.
    """
    own = root_fd is None
    fd = _open_suite(suite) if own else root_fd
    try:
        blobs = {}
        for rel, digest in record.files.items():
            data = _read_suite_file(fd, ["node", record.name, *rel.split("/")], MAX_FILE_BYTES)
            if _sha(data) != digest:
                raise SuiteError(f"{rel}: sha256 differs from the manifest (modified)")
            blobs[rel] = data
    finally:
        if own:
            os.close(fd)
    arrays = [_tensor_file(rel, blobs.pop(rel)) for rel in record.input_files]
    names, operands = check_case_model(blobs["model.onnx"], record, arrays)
    expected = None
    if record.expect == "output":
        expected = _tensor_file(OUTPUT_FILE, blobs.pop(OUTPUT_FILE))
        if expected.dtype != DTYPES[record.dtype].numpy or expected.shape != record.output_shape:
            raise SuiteError(
                f"{OUTPUT_FILE}: {expected.dtype} {list(expected.shape)}, but the node gives "
                f"{record.dtype} {list(record.output_shape)}"
            )
    else:
        _check_still_invalid(record, operands)
    named = tuple(zip(names, arrays, strict=True))
    return CaseData(record, blobs["model.onnx"], named, operands, expected)


def _check_still_invalid(record: CaseRecord, arrays: Sequence[np.ndarray]) -> None:
    """A must-reject record must describe a node that the spec refuses (else a runtime that runs
    it would be blamed for nothing)."""
    if record.output_shape is None:
        return  # the geometry already refuses it
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        return  # mixed element types
    raise SuiteError("declared must-reject, but the node is valid")


# --- a whole suite ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """What checking a suite against its manifest found."""

    records: Mapping[str, CaseRecord]  # cases whose every file is present, unmodified and consistent
    case_problems: Mapping[str, str]  # case -> what is wrong with its files or record
    suite_problems: Sequence[str]  # entries the manifest does not account for


def verify(suite: str | os.PathLike, manifest: Manifest | None = None) -> Verification:
    """Read and check every case (one at a time) and list what the manifest does not account for."""
    manifest = manifest if manifest is not None else read_manifest(suite)
    problems = dict(manifest.problems)
    records = {}
    root_fd = _open_suite(suite)
    try:
        for name, record in manifest.records.items():
            try:
                read_case(suite, record, root_fd)
            except SuiteError as exc:
                problems[name] = str(exc)
            else:
                records[name] = record
    finally:
        os.close(root_fd)
    return Verification(records, problems, unlisted(suite, manifest))


def unlisted(suite: str | os.PathLike, manifest: Manifest) -> list[str]:
    """Entries under node/ that no record lists (nothing is followed or read)."""
    root = Path(suite)
    listed = {(name, rel) for name, rec in manifest.records.items() for rel in rec.files}
    known = set(manifest.records) | set(manifest.problems)
    extra = []
    node = root / "node"
    if node.is_symlink():
        return ["node: is a symbolic link"]
    if not node.is_dir():
        return []
    for dirpath, dirnames, filenames in os.walk(node, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(node).parts
        if not rel_dir:
            entries = [d for d in dirnames if d not in known] + filenames
            extra += [f"node/{e}: not in the manifest" for e in sorted(entries)]
            dirnames[:] = [d for d in dirnames if d in known and not (base / d).is_symlink()]
            continue
        case, sub = rel_dir[0], "/".join(rel_dir[1:])
        for entry in sorted(filenames) + sorted(d for d in dirnames if (base / d).is_symlink()):
            rel = f"{sub}/{entry}" if sub else entry
            if (case, rel) not in listed and case in manifest.records:
                extra.append(f"node/{case}/{rel}: not in the manifest")
    return sorted(extra)


def recompute(suite: str | os.PathLike, records: Iterable[CaseRecord]) -> dict[str, str]:
    """Cases whose output_0.pb is not what opref's reference computes from their inputs and
    attributes (the default readings), one case in memory at a time: a suite from elsewhere can
    then be trusted without trusting its manifest."""
    problems = {}
    for record in records:
        if record.expect != "output":
            continue
        try:
            case = read_case(suite, record)
            want = conv_transpose(*case.operands, **record.attributes, opset=record.opset)
        except (SuiteError, SpecError) as exc:
            problems[record.name] = f"cannot recompute: {exc}"
            continue
        got = case.expected
        if want.shape != got.shape:
            problems[record.name] = (
                f"output_0.pb has shape {list(got.shape)}, the reference {list(want.shape)}"
            )
        elif want.tobytes() != got.tobytes():
            bits = np.dtype(f"u{want.dtype.itemsize}")
            where = np.argwhere(want.view(bits) != got.view(bits))
            at = tuple(where[0])
            problems[record.name] = (
                f"output_0.pb differs from the recomputed output in {len(where)} elements; "
                f"first at {list(at)}: file {got[at]!r}, reference {want[at]!r}"
            )
    return problems
