"""Read and check a suite someone else produced: the one case reader, ``verify`` and
``recompute``.

A suite is untrusted input. Every file is opened relative to the suite's directory, one path
component at a time, never through a symbolic link, and must be a regular file (a FIFO or a
device is refused before it is read) no larger than its cap. Only the files a record lists are
read, each checked against its sha256, and the very bytes that were checked are the ones that
are parsed, judged and sent to a runtime.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from opref import boundary
from opref.cases import VARIANTS
from opref.codec import (
    DATA_SET,
    FORMAT,
    MANIFEST,
    MAX_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    OUTPUT_FILE,
    SuiteError,
    read_tensor,
    sha256,
)
from opref.dtypes import DTYPES
from opref.errors import SpecError
from opref.forms import FORMS, Form, FormError, QdqForm, file_x_type, parse_form
from opref.formvalues import expected_output
from opref.geometry import geometry, reject_ambiguities
from opref.model import ATTRIBUTE_NAMES, check_case_model
from opref.readings import AMBIGUITIES
from opref.reference import conv_transpose
from opref.tolerance import max_terms

# Nothing larger is read from a suite (a model, or one tensor file); the manifest has its own cap.
CASE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}\Z")
_INPUT_FILE = re.compile(rf"{DATA_SET}/input_(\d)\.pb\Z")
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
        obj = boundary.load_json(data, str(path), max_bytes=MAX_MANIFEST_BYTES)
    except boundary.BoundaryError as exc:
        raise SuiteError(str(exc)) from None
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
    form: Form | None = None  # the nodes around ConvTranspose and their values (opref.forms.FORMS)

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


def _prose(value: object, what: str) -> str:
    """Free text of a record (family, description, reject message), normalised at the boundary."""
    return boundary.text(_str(value, what), what)


def _shape(value: object, what: str) -> tuple[int, ...]:
    """A shape of a record, bounded before any geometry is computed on it: what no suite file
    could hold (zero-size dimensions set aside) is refused here, in microseconds."""
    try:
        return boundary.shape(value, what, max_rank=16, max_elements=MAX_FILE_BYTES)
    except boundary.BoundaryError as exc:
        raise RecordError(str(exc)) from None


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
    x_shape = _shape(rec.get("x_shape"), "x_shape")
    w_shape = _shape(rec.get("w_shape"), "w_shape")
    b_shape = None if rec.get("b_shape") is None else _shape(rec.get("b_shape"), "b_shape")
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
    form = None
    if variant in FORMS:
        if geo is None or expect != "output" or ambiguities:
            raise RecordError(f"a {variant} record must expect an output of a node without ambiguities")
        if variant == "qdq" and dtype != "float32":
            raise RecordError("a qdq record's node is float32 (between DequantizeLinear and QuantizeLinear)")
        node_pads = [ax.pad_begin for ax in geo.axes] + [ax.pad_end for ax in geo.axes]
        try:
            form = parse_form(
                rec.get("form"),
                variant,
                x_shape,
                w_shape,
                b_shape,
                int(attributes.get("group", 1)),
                node_pads,
            )
        except FormError as exc:
            raise RecordError(str(exc)) from None
    elif "form" in rec:
        raise RecordError(f"a {variant} record has no form")
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
        _prose(rec.get("family", ""), "family"),
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
        _prose(rec.get("reject_message", ""), "reject_message"),
        _prose(rec.get("description", ""), "description"),
        variant,
        base_case,
        form,
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


def _tensor_file(rel: str, data: bytes, integers: bool = False) -> np.ndarray:
    from google.protobuf.message import DecodeError

    t = onnx.TensorProto()
    try:
        t.ParseFromString(data)
    except DecodeError as exc:
        raise SuiteError(f"{rel}: malformed ({exc})") from None
    if t.data_location == onnx.TensorProto.EXTERNAL or t.external_data:
        raise SuiteError(f"{rel}: refers to external data; opref reads nothing outside the suite")
    try:
        return read_tensor(data, integers)
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
            if sha256(data) != digest:
                raise SuiteError(f"{rel}: sha256 differs from the manifest (modified)")
            blobs[rel] = data
    finally:
        if own:
            os.close(fd)
    quantized = isinstance(record.form, QdqForm)
    arrays = [_tensor_file(rel, blobs.pop(rel), quantized) for rel in record.input_files]
    names, operands = check_case_model(blobs["model.onnx"], record, arrays)
    expected = None
    if record.expect == "output":
        expected = _tensor_file(OUTPUT_FILE, blobs.pop(OUTPUT_FILE), quantized)
        y_type = DTYPES[record.dtype].numpy if record.form is None else file_x_type(record.form, record.dtype)
        if expected.dtype != y_type or expected.shape != record.output_shape:
            raise SuiteError(
                f"{OUTPUT_FILE}: {expected.dtype} {list(expected.shape)}, but the case gives "
                f"{y_type} {list(record.output_shape)}"
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
    # File names are outside text (any bytes but "/" and NUL, decoded with surrogate escapes).
    return sorted(boundary.text(e, "a file name", 1000) for e in extra)


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
            if record.form is not None:
                want = expected_output(record.form, case.operands, record.attributes, record.opset)
            else:
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
            at = tuple(int(i) for i in where[0])  # plain ints: the message shows [0, 1], not np.int64(0)
            problems[record.name] = (
                f"output_0.pb differs from the recomputed output in {len(where)} elements; "
                f"first at {list(at)}: file {float(got[at])!r}, reference {float(want[at])!r}"
            )
    return problems
