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

import hashlib
import json
import os
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from opref.cases import Case
from opref.dtypes import DTYPES, DType, dtype_of
from opref.errors import SpecError
from opref.geometry import to_dict
from opref.model import ir_version_for, make_model
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
    return arr.astype(dt.numpy).reshape(shape)


# --- input data ---------------------------------------------------------------------------


def _rng(case: Case) -> np.random.RandomState:
    # RandomState's stream is frozen by numpy's compatibility policy; crc32 is stable.
    return np.random.RandomState(zlib.crc32(case.name.encode()))


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


def build_case(case: Case) -> tuple[dict[str, bytes], dict]:
    """The files of one case (relative path -> bytes) and its manifest record.

    The record holds only what the case determines; what this onnx version's checker says
    of the model goes to checker.json (see :func:`generate`).
    """
    inputs = case_inputs(case)
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
    }
    files: dict[str, bytes] = {}
    if case.reject:
        try:
            case.geometry()
            if case.w_dtype:
                raise SpecError("W.dtype", case.w_dtype, f"must equal X.dtype={case.dtype}")
        except SpecError as exc:
            message = str(exc)
        else:
            raise SuiteError(f"{case.name}: declared must-reject ({case.reject}) but opref accepts it")
        y_shape = [None] * len(case.x_shape)  # no output shape exists for an invalid node
        record.update(
            expect="reject",
            reject_rule=case.reject,
            reject_message=message,
            geometry=None,
            ambiguities=[],
            tolerance=None,
        )
    else:
        geo = case.geometry()
        X, W, *rest = inputs
        B = rest[0] if rest else None
        Y = conv_transpose(X, W, B, **attrs, opset=case.opset)
        y_shape = list(geo.output_shape)
        dt = DTYPES[case.dtype]
        S = magnitude_sum(X, W, B, geo)
        integral = all(np.array_equal(a, np.round(a.astype(np.float64))) for a in inputs)
        record.update(
            expect="output",
            geometry=to_dict(geo),
            ambiguities=list(geo.ambiguities),
            tolerance={
                "unit_roundoff": dt.unit_roundoff,
                "max_terms": max_terms(geo, B is not None),
                "max_magnitude_sum": float(S.max(initial=0.0)),
                "bitexact": bool(integral and S.max(initial=0.0) <= dt.exact_limit),
            },
        )
        files[f"{DATA_SET}/output_0.pb"] = tensor_proto(Y, "Y").SerializeToString()
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
    )
    files["model.onnx"] = model.SerializeToString()
    for i, (arr, name) in enumerate(zip(inputs, ("X", "W", "B"), strict=False)):
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

    Refuses a non-empty ``out`` that is not an opref suite. On any error, or if killed,
    the previous suite stays as it was.
    """
    t0 = time.perf_counter()
    out = Path(out).absolute()
    cases = list(cases)
    _recover(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_suite(out))):
        raise SuiteError(f"{out} exists and is not an opref suite; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.opref-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    records, total_bytes, checks = [], 0, {}
    try:
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
        old = out.parent / f".{out.name}.opref-old-{os.getpid()}"
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Summary(
        out,
        len(records),
        sum(1 for r in records if r["expect"] == "reject"),
        total_bytes,
        time.perf_counter() - t0,
    )


def load_manifest(suite: str | os.PathLike) -> dict:
    """The manifest of a suite directory, or SuiteError saying why it cannot be read."""
    path = Path(suite) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read the manifest ({exc.strerror})") from None
    except ValueError as exc:
        raise SuiteError(f"{path}: not valid JSON ({exc})") from None
    if (
        not isinstance(data, dict)
        or data.get("generator") != "opref"
        or not isinstance(data.get("cases"), list)
    ):
        raise SuiteError(f"{path}: not an opref manifest")
    return data


# --- reading a suite someone else produced ----------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """What checking a suite against its manifest found."""

    records: dict[str, dict]  # cases whose every file is present and unmodified
    case_problems: dict[str, str]  # case -> what is wrong with its files or record
    suite_problems: list[str]  # files and directories the manifest does not account for


# Nothing larger is read from a suite someone else produced (a model, or one tensor file).
MAX_FILE_BYTES = 256 * 2**20
_RECORD_FIELDS = {"name": str, "dtype": str, "opset": int, "attributes": dict, "expect": str, "files": dict}


def _safe_relative(rel: str) -> bool:
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel


def _external(tensors: Iterable[onnx.TensorProto]) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL or t.external_data for t in tensors)


def _check_content(rel: str, data: bytes) -> str | None:
    """Why a verified file still cannot be used (malformed, external data), or None."""
    from google.protobuf.message import DecodeError

    try:
        if rel == "model.onnx":
            model = onnx.ModelProto()
            model.ParseFromString(data)
            graph = model.graph
            attr_tensors = [a.t for n in graph.node for a in n.attribute if a.HasField("t")]
            if _external(list(graph.initializer) + attr_tensors):
                return f"{rel}: refers to external data; opref reads nothing outside the suite"
            if not graph.node:
                return f"{rel}: the graph has no node"
        elif rel.endswith(".pb"):
            tensor = onnx.TensorProto()
            tensor.ParseFromString(data)
            if _external([tensor]):
                return f"{rel}: refers to external data; opref reads nothing outside the suite"
            read_tensor(data)
    except (DecodeError, SuiteError, ValueError) as exc:
        return f"{rel}: malformed ({exc})"
    return None


def _check_record(rec: object) -> str | None:
    if not isinstance(rec, dict):
        return "manifest record is not an object"
    for key, kind in _RECORD_FIELDS.items():
        if not isinstance(rec.get(key), kind):
            return f"manifest record field {key!r} is missing or not a {kind.__name__}"
    if rec["dtype"] not in DTYPES or rec["expect"] not in ("output", "reject"):
        return f"manifest record has dtype {rec['dtype']!r} / expect {rec['expect']!r}"
    if rec["expect"] == "output" and not isinstance(rec.get("tolerance"), dict):
        return "manifest record has no tolerance"
    return None


def verify(suite: str | os.PathLike, manifest: dict | None = None) -> Verification:
    """Check every file of a suite against the manifest's sha256 before anything reads it.

    A case is refused if a file is missing, modified, too large, malformed, a symbolic link,
    outside the suite, or refers to external data; files the manifest does not list are
    reported as suite problems. Nothing is read before its size is checked.
    """
    root = Path(suite)
    top = root.resolve()
    manifest = manifest if manifest is not None else load_manifest(root)
    records, problems, listed = {}, {}, set()
    for rec in manifest["cases"]:
        name = rec.get("name") if isinstance(rec, dict) else None
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
            problems[str(name)] = "case name is not a plain directory name"
            continue
        bad = [_check_record(rec)] if _check_record(rec) else []
        files = rec.get("files") if isinstance(rec.get("files"), dict) else {}
        if "model.onnx" not in files:
            bad.append("manifest record lists no model.onnx")
        for rel, digest in sorted(files.items()):
            if not isinstance(rel, str) or not _safe_relative(rel):
                bad.append(f"{rel}: path leaves the case directory")
                continue
            path = root / "node" / name / rel
            listed.add(path)
            if path.is_symlink():
                bad.append(f"{rel}: is a symbolic link")
            elif not path.is_file():
                bad.append(f"{rel}: missing")
            elif top not in path.resolve().parents:
                bad.append(f"{rel}: resolves outside the suite")
            elif path.stat().st_size > MAX_FILE_BYTES:
                bad.append(f"{rel}: {path.stat().st_size} bytes, over the {MAX_FILE_BYTES}-byte limit")
            else:
                data = path.read_bytes()
                if _sha(data) != digest:
                    bad.append(f"{rel}: sha256 differs from the manifest (modified)")
                elif problem := _check_content(rel, data):
                    bad.append(problem)
        if bad:
            problems[name] = "; ".join(bad)
        else:
            records[name] = rec
    extra = []
    node = root / "node"
    if node.is_dir():
        for dirpath, dirnames, filenames in os.walk(node, followlinks=False):
            base = Path(dirpath)
            for entry in sorted(filenames) + sorted(d for d in dirnames if (base / d).is_symlink()):
                if base / entry not in listed:
                    extra.append(f"{(base / entry).relative_to(root)}: not in the manifest")
    return Verification(records, problems, sorted(extra))
