"""The boundary: the one door through which data from outside opref becomes typed records.

Outside data is everything opref did not compute itself in this process: a worker's frames (its
hello, reply headers and array descriptions, which carry an adapter's ``info()``, details and
messages), a suite's manifest records and model files, and a ``results.json`` read back by
``opref report``. It may be malformed, huge, deeply nested or full of terminal escapes; the code
above this module never sees it raw. Every reader here

- bounds size and nesting depth *before* decoding (a cheap scan of the bytes, so a header nested
  5,000 deep is refused, never a RecursionError);
- validates types (``bool`` is not an ``int``, a shape is a short list of sizes);
- normalises text once (:func:`text`): valid UTF-8, no lone surrogates, no control characters
  but newline and tab (ANSI escape sequences removed whole), length capped with a visible mark;
- checks shapes with exact integer arithmetic, zero-size dimensions included (:func:`shape`).

What is wrong is a :class:`BoundaryError` (a ValueError) that says what and why; each caller
turns it into its own kind of problem (a protocol error, a case's refusal, a note on a record).
Writers escape for their own format; this module only guarantees that the text they get is
plain.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from opref.geometry import nonzero_size

if TYPE_CHECKING:
    import onnx

MAX_DEPTH = 16  # nesting of any JSON opref reads: its own files nest 5 deep at most
MAX_TEXT = 64 * 2**10  # characters kept of one piece of outside text
MAX_KEY = 200  # characters kept of a key inside an adapter's details
MAX_ITEMS = 10_000  # entries in one list or object of free-form outside values
MAX_RANK = 32  # dimensions of any array opref receives (numpy itself stops at 64)
# Elements an outside shape may describe, zero-size dimensions set aside: 2**40 is past any
# memory opref runs in, far below where numpy's own size arithmetic would overflow (2**63 bytes).
MAX_ELEMENTS = 2**40
CUT_MARK = " [… cut: {total} characters in all]"
_MARK_ROOM = 64  # longer than any mark: a cut text read again is not cut again


class BoundaryError(ValueError):
    """Outside data that is not what opref accepts (what it is and why not)."""


# --- JSON, bounded before it is decoded ------------------------------------------------------------

_SCAN_CHUNK = 2**20
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_STEP = np.zeros(256, np.int8)  # what a byte does to the nesting, outside strings
_STEP[[ord("["), ord("{")]], _STEP[[ord("]"), ord("}")]] = 1, -1
_SPECIAL = np.zeros(256, bool)
_SPECIAL[[ord(c) for c in '[]{}"\\']] = True


def json_depth(data: bytes | bytearray, stop: int | None = None) -> int:
    """How deeply the arrays and objects of JSON text ``data`` nest (an over-estimate for text
    that is not JSON), without decoding it: a few numpy passes over the bytes, in chunks.

    Only brackets, quotes and backslashes matter, so they are picked out first (a fraction of
    the bytes). A quote counts unless an odd run of backslashes precedes it; a bracket counts
    unless an odd number of quotes precedes it (it is inside a string); the depth is the
    highest running count of ``[{`` minus ``]}``. With ``stop``, it returns as soon as the depth
    passes it (chunks start small, so a hostile frame costs little).
    """
    raw = bytes(data)
    deepest = level = quotes = run = 0  # carried over chunks: depth, quote parity, backslash run
    start, size = 0, min(_SCAN_CHUNK, 2**12)
    while start < len(raw):
        chunk = np.frombuffer(raw, np.uint8, count=min(size, len(raw) - start), offset=start)
        start, size = start + chunk.size, min(2 * size, _SCAN_CHUNK)
        at = np.flatnonzero(_SPECIAL[chunk])
        if not at.size:
            run = 0
            continue
        b = chunk[at]
        slash = b == _BACKSLASH
        before = np.zeros(b.size, np.int64)  # backslashes right before each special byte
        if slash.any() or run:
            index = np.arange(b.size)
            adjacent = np.zeros(b.size, bool)  # the byte right before is the previous special one
            adjacent[1:] = at[1:] == at[:-1] + 1
            follows = np.zeros(b.size, bool)  # ... and it is a backslash
            follows[1:] = adjacent[1:] & slash[:-1]
            carried = at[0] == 0 and slash[0] and run > 0  # a run from the last chunk goes on
            begins = np.maximum.accumulate(np.where(slash & follows, 0, index))
            length = np.where(slash, index - begins + 1, 0)  # the run of backslashes ending here
            if carried:
                length += np.where(slash & (begins == 0), run, 0)
            before[1:] = np.where(follows[1:], length[:-1], 0)
            if at[0] == 0:
                before[0] = run
            run = int(length[-1]) if at[-1] == chunk.size - 1 else 0
        else:
            run = 0
        quote = (b == _QUOTE) & (before % 2 == 0)
        inside = (np.cumsum(quote) + quotes) % 2 == 1
        step = _STEP[b].astype(np.int64)
        step[inside] = 0
        running = np.cumsum(step) + level
        deepest = max(deepest, int(running.max()))
        level, quotes = int(running[-1]), int(inside[-1])
        if stop is not None and deepest > stop:
            break
    return deepest


def _no_constant(name: str) -> object:
    raise BoundaryError(f"{name} is not a JSON number")


def load_json(data: bytes | bytearray, what: str, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> object:
    """The JSON value of ``data``: at most ``max_bytes`` bytes of UTF-8, nested at most ``max_depth``
    deep, with no NaN or Infinity (JSON has none). BoundaryError names ``what`` and the problem."""
    if len(data) > max_bytes:
        raise BoundaryError(f"{what}: {len(data)} bytes, over the {max_bytes}-byte limit")
    depth = json_depth(data, stop=max_depth)
    if depth > max_depth:
        raise BoundaryError(f"{what}: nested {depth} deep or more, over the limit of {max_depth}")
    try:
        decoded = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BoundaryError(f"{what}: not UTF-8 ({exc})") from None
    try:
        return json.loads(decoded, parse_constant=_no_constant)
    except BoundaryError as exc:
        raise BoundaryError(f"{what}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # ValueError: also a number of over 4,300 digits
        raise BoundaryError(f"{what}: not valid JSON ({str(exc)[:200]})") from None


# --- text ------------------------------------------------------------------------------------------

# ANSI/VT escape sequences, removed whole: CSI (ESC [ or the C1 byte), OSC, DCS/SOS/PM/APC strings
# up to their terminator, and two-character escapes.
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# Control characters but tab and newline (C0, DEL, C1), line/paragraph separators, and the
# bidirectional overrides that make a terminal show text in another order than it is.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def strip_ansi(value: str) -> str:
    """``value`` without terminal escape sequences (onnxruntime colours its log lines); the
    one definition of what an escape sequence is, for every text opref prints or stores."""
    return _ESCAPE.sub("", value)


def text(value: object, what: str, cap: int = MAX_TEXT) -> str:
    """``value`` (a string, or bytes decoded as UTF-8) as plain text: invalid bytes and lone
    surrogates become U+FFFD, escape sequences and control characters but newline and tab are
    removed (``\\r\\n`` and a lone ``\\r`` become newlines), and past ``cap`` characters it is cut
    with a mark that says so. Normalising twice gives what normalising once gave."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value[: 4 * cap + 64]).decode("utf-8", "replace")
    elif not isinstance(value, str):
        raise BoundaryError(f"{what} is not a string")
    total = len(value)
    s = value[: 4 * cap + 64]  # bound the work; escapes and controls may shrink it
    s = _SURROGATE.sub("\ufffd", s)
    s = _ESCAPE.sub("", s)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _CONTROL.sub("", s)
    if len(s) > cap + _MARK_ROOM or total > 4 * cap + 64:
        return s[:cap] + CUT_MARK.format(total=total)
    return s  # up to cap + _MARK_ROOM: text that was cut once (mark and all) passes again unchanged


def plain(value: object, what: str, depth: int = 8, cap: int = MAX_TEXT) -> object:
    """Free-form outside values (an adapter's details) as plain JSON values: strings through
    :func:`text`, finite numbers (others become their name as text), at most ``depth`` levels
    and MAX_ITEMS entries per level; anything else is refused."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str | bytes):
        return text(value, what, cap)
    if depth <= 0:
        raise BoundaryError(f"{what} nests too deeply")
    if isinstance(value, Mapping):
        if len(value) > MAX_ITEMS:
            raise BoundaryError(f"{what} has {len(value)} entries, over {MAX_ITEMS}")
        out = {}
        for k, v in value.items():
            key = text(k if isinstance(k, str) else str(k), f"a key of {what}", MAX_KEY)
            out[key] = plain(v, f"{what}.{key}", depth - 1, cap)
        return out
    if isinstance(value, list | tuple):
        if len(value) > MAX_ITEMS:
            raise BoundaryError(f"{what} has {len(value)} entries, over {MAX_ITEMS}")
        return [plain(v, f"{what}[{i}]", depth - 1, cap) for i, v in enumerate(value)]
    raise BoundaryError(f"{what} holds a {type(value).__name__}, not a plain value")


# --- shapes ----------------------------------------------------------------------------------------


def shape(
    value: object, what: str, *, max_rank: int = MAX_RANK, max_elements: int = MAX_ELEMENTS
) -> tuple[int, ...]:
    """``value`` as a shape: a list (or tuple) of at most ``max_rank`` integers >= 0 whose
    product, zero-size dimensions set aside, is at most ``max_elements`` (exact arithmetic)."""
    if not isinstance(value, list | tuple):
        raise BoundaryError(f"{what} is not a list of sizes")
    if len(value) > max_rank:
        raise BoundaryError(f"{what} has {len(value)} dimensions, over the limit of {max_rank}")
    if not all(type(d) is int and d >= 0 for d in value):
        raise BoundaryError(f"{what} {list(value)!r:.200} is not a list of sizes (integers >= 0)")
    if any(d > max_elements for d in value) or nonzero_size(value) > max_elements:
        raise BoundaryError(
            f"{what} {list(value)!r:.200} describes more than {max_elements} elements"
            " (zero-size dimensions set aside)"
        )
    return tuple(value)


# --- model files -----------------------------------------------------------------------------------


def parse_model(data: bytes, max_bytes: int) -> onnx.ModelProto:
    """A model file's bytes as a ModelProto: at most ``max_bytes``, well-formed protobuf (whose
    parser bounds nesting at 100), and every string field valid UTF-8 (protobuf hands an
    invalid one back as bytes; opref writes none). BoundaryError names the field."""
    import onnx  # here, not at the top: a worker imports this module and never reads a model
    from google.protobuf.message import DecodeError

    if len(data) > max_bytes:
        raise BoundaryError(f"{len(data)} bytes, over the {max_bytes}-byte limit")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise BoundaryError(f"malformed ({exc})") from None
    where = _undecodable(model, "model")
    if where:
        raise BoundaryError(f"{where} is not UTF-8 text; opref writes none such")
    return model


def _undecodable(message, path: str) -> str:
    """The first string field of ``message`` (recursively) that is not valid UTF-8, or ''."""
    for field, value in message.ListFields():
        where = f"{path}.{field.name}"
        items = list(value) if field.is_repeated else [value]
        if field.type == field.TYPE_MESSAGE:
            for k, item in enumerate(items):
                found = _undecodable(item, f"{where}[{k}]" if field.is_repeated else where)
                if found:
                    return found
        elif field.type == field.TYPE_STRING and any(not isinstance(v, str) for v in items):
            return where
    return ""


# --- results.json read back ------------------------------------------------------------------------

MAX_RESULTS_BYTES = 256 * 2**20
_VERDICT_NAMES = None  # filled on first use from opref.verdicts (kept import-light)


@dataclass(frozen=True)
class Results:
    """One results.json as read back: its plain data with only the records that passed their
    checks, and a note for each that did not (the report shows them)."""

    data: dict
    notes: tuple[str, ...]


def _verdicts() -> frozenset[str]:
    global _VERDICT_NAMES
    if _VERDICT_NAMES is None:
        from opref.verdicts import Verdict

        _VERDICT_NAMES = frozenset(v.value for v in Verdict)
    return _VERDICT_NAMES


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def number(value: object, what: str) -> float | int | None:
    """A number from results.json: finite, or one of the strings opref writes for a non-finite
    one ("nan", "inf", "-inf"); None stays None."""
    if value is None or (type(value) in (int, float) and math.isfinite(value)):
        return value
    if isinstance(value, str) and value.strip().lower() in _NONFINITE:
        return _NONFINITE[value.strip().lower()]
    raise BoundaryError(f"{what} is {value!r:.60}, not a number")


def _ints_or_none(value: object, what: str) -> list[int] | None:
    return None if value is None else list(shape(value, what))


def _str_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BoundaryError(f"{what} is not an object of strings")
    return dict(value)


def saved_tensor(root: str | os.PathLike, rel: object, what: str) -> str:
    """A saved-tensor path from results.json: relative, inside ``root`` (no ``..``, no link on
    the way) and a regular ``.npy`` file there. The path is returned as given."""
    if not isinstance(rel, str) or not rel or len(rel) > 1000 or "\x00" in rel:
        raise BoundaryError(f"{what} is not a path")
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or not rel.endswith(".npy"):
        raise BoundaryError(f"{what} {rel!r:.200} is not a .npy file inside the results directory")
    at = Path(root)
    for k, part in enumerate(parts):
        at = at / part
        try:
            st = os.lstat(at)
        except OSError:
            raise BoundaryError(f"{what} {rel!r:.200} is missing") from None
        if stat.S_ISLNK(st.st_mode):
            raise BoundaryError(f"{what} {rel!r:.200} passes through a symbolic link")
        if k == len(parts) - 1 and not stat.S_ISREG(st.st_mode):
            raise BoundaryError(f"{what} {rel!r:.200} is not a regular file")
    return rel


def _attributes(value: object) -> dict:
    if not isinstance(value, dict):
        raise BoundaryError("'attributes' is not an object")
    for key, v in value.items():
        ok = (
            isinstance(v, str)
            if key == "auto_pad"
            else type(v) is int
            if key == "group"
            else isinstance(v, list) and all(type(n) is int for n in v)
        )
        if not ok:
            raise BoundaryError(f"attribute {key!r:.60} is {v!r:.60}, not what ConvTranspose takes")
    return value


def _result_record(rec: object, root: Path, notes: list[str]) -> dict:
    """One record of results.json, checked and normalised; BoundaryError says why not. A saved
    tensor whose path is not confined to ``root`` is dropped with a note in ``notes``."""
    if not isinstance(rec, dict):
        raise BoundaryError("is not an object")
    out = plain(rec, "the record", depth=6)
    assert isinstance(out, dict)
    for key in ("case", "runtime", "verdict", "dtype", "reproduce"):
        if not isinstance(rec.get(key), str):
            raise BoundaryError(f"has no string {key!r}")
    if type(rec.get("opset")) is not int:
        raise BoundaryError("has no integer 'opset'")
    if rec["verdict"] not in _verdicts():
        raise BoundaryError(f"has the unknown verdict {out['verdict']!r:.60}")
    for key in ("x_shape", "w_shape", "expected_shape", "got_shape"):
        if key in rec:
            out[key] = _ints_or_none(rec[key], key)
    for key in ("message", "placement", "family", "expect", "expected_reason", "expected_by"):
        if not isinstance(out.get(key, ""), str | None):
            raise BoundaryError(f"{key!r} is not a string")
    for key in ("max_rel_error", "seconds"):
        if key in rec:
            out[key] = number(rec[key], key)
    for key in ("reading", "nearest_reading"):
        if key in out:
            out[key] = _str_map(out[key], key) or None
    amb = out.get("ambiguities") or []
    if not isinstance(amb, list) or not all(isinstance(a, str) for a in amb):
        raise BoundaryError("'ambiguities' is not a list of strings")
    diag = out.get("diagnosis") or []
    if not isinstance(diag, list) or not all(isinstance(d, str) for d in diag):
        raise BoundaryError("'diagnosis' is not a list of strings")
    out["attributes"] = _attributes(out.get("attributes") or {})
    comparison = out.get("comparison")
    if comparison is not None:
        if not isinstance(comparison, dict):
            raise BoundaryError("'comparison' is not an object")
        out["comparison"] = {
            k: (number(v, f"comparison.{k}") if not isinstance(v, list | dict | bool) else v)
            for k, v in comparison.items()
        }
    tensors = out.get("tensors")
    if tensors is not None:
        if not isinstance(tensors, dict):
            raise BoundaryError("'tensors' is not an object")
        kept = {}
        for k, v in tensors.items():
            try:
                kept[k] = saved_tensor(root, v, f"saved tensor {k!r:.40}")
            except BoundaryError as exc:
                notes.append(f"{exc}; not shown")
        out["tensors"] = kept
    return out


def _who(rec: object) -> str:
    if not isinstance(rec, dict):
        return ""
    names = [text(rec[k], k, 200) for k in ("runtime", "case") if isinstance(rec.get(k), str)]
    return f" ({' / '.join(names)})" if names else ""


def _is_report(data: object) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("schema"), int)
        and isinstance(data.get("failures"), list)
        and isinstance(data.get("sources"), list)
    )


def suite_of_reproduce(records: object, where: Path) -> Path | None:
    """The suite a report's records were validated on, from their reproduce commands (written
    relative to the report's directory ``where``); None when no record names one."""
    for rec in records if isinstance(records, list) else []:
        command = rec.get("reproduce") if isinstance(rec, dict) else None
        try:
            words = shlex.split(command) if isinstance(command, str) else []
        except ValueError:
            continue
        if len(words) > 2 and words[:2] == ["opref", "validate"]:
            suite = Path(words[2])
            return suite if suite.is_absolute() else Path(os.path.normpath(where.absolute() / suite))
    return None


def _results_of_report(data: dict, where: Path) -> dict:
    """A report.json's content as the results it was written from. What is unexpected is read
    conservatively: every failure row not marked known (the report's aggregate also requires the
    record itself to name the line that covers it)."""
    sources = [s for s in data["sources"] if isinstance(s, dict)]
    one = sources[0] if len(sources) == 1 else {}
    return {
        "records": data.get("records"),
        "runtimes": data.get("runtimes"),
        "unexpected": [
            {"runtime": f.get("runtime"), "case": f.get("case"), "verdict": f.get("verdict")}
            for f in data["failures"]
            if isinstance(f, dict) and f.get("unexpected") is not False
        ],
        "complete": bool(sources) and all(s.get("complete") is True for s in sources),
        "suite": one.get("suite", ""),
        "suite_path": str(suite_of_reproduce(data.get("records"), where) or ""),
        "started": one.get("started", ""),
        "seconds": one.get("seconds", 0.0),
        **{
            k: data[k]
            for k in ("machine", "suite_problems", "case_problems", "stale_expectations", "allow_unavailable")
            if k in data
        },
        "read_notes": data.get("read_notes", []),
    }


def read_results(path: str | os.PathLike) -> Results:
    """A results.json (or the directory holding one; or a report's directory or report.json,
    read as the results it was written from) read back for a report.

    The file as a whole must be opref's validation results (BoundaryError, one line, if not); a
    record that is not what opref writes is left out with a note saying why, and the rest is
    reported. Text is normalised, numbers written as "nan"/"inf" become floats again, and paths
    to saved tensors are confined to the results directory (regular files, no links)."""
    p = Path(path)
    if p.is_dir():
        # A published report's directory (report.json, no results.json) is read back too: a
        # report can be rewritten by a newer opref, or diffed, without the run's raw file.
        report = p / "report.json"
        p = report if report.is_file() and not (p / "results.json").exists() else p / "results.json"
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BoundaryError(f"{p}: cannot read validation results ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BoundaryError(f"{p}: not a regular file")
        if st.st_size > MAX_RESULTS_BYTES:
            raise BoundaryError(f"{p}: {st.st_size} bytes, over the {MAX_RESULTS_BYTES}-byte limit")
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(MAX_RESULTS_BYTES + 1)
    finally:
        os.close(fd)
    data = load_json(raw, str(p), max_bytes=MAX_RESULTS_BYTES)
    if _is_report(data):
        data = _results_of_report(data, p.parent)
    if isinstance(data, dict) and data.get("generator") == "opref" and "cases" in data:
        raise BoundaryError(f"{p}: a suite manifest, not validation results (run opref validate first)")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("runtimes"), list)
        or not isinstance(data.get("records"), list)
    ):
        raise BoundaryError(f"{p}: not opref validation results (no 'runtimes' and 'records' lists)")
    notes: list[str] = []
    runtimes = []
    for i, rt in enumerate(data["runtimes"]):
        if (
            not isinstance(rt, dict)
            or not isinstance(rt.get("spec"), str)
            or not isinstance(rt.get("available"), bool)
        ):
            raise BoundaryError(f"{p}: runtimes[{i}] has no 'spec' string and 'available' flag")
        runtimes.append(plain(rt, f"runtimes[{i}]", depth=6))
    root = p.parent  # saved tensors are read from beside the file, whatever it says they were
    records = []
    for i, rec in enumerate(data["records"]):
        said: list[str] = []
        try:
            records.append(_result_record(rec, root, said))
            notes += [f"{p}: records[{i}]{_who(rec)}: {n}" for n in said]
        except BoundaryError as exc:
            notes.append(f"{p}: records[{i}]{_who(rec)} left out: it {exc}")
    rest = {k: v for k, v in data.items() if k not in ("runtimes", "records")}
    try:
        clean = plain(rest, str(p), depth=8)
    except BoundaryError as exc:
        raise BoundaryError(f"{p}: {exc}") from None
    assert isinstance(clean, dict)
    clean["runtimes"], clean["records"] = runtimes, records
    for key in ("suite", "started", "suite_path"):
        if not isinstance(clean.get(key, ""), str):
            notes.append(f"{p}: {key!r} is not a string; ignored")
            clean[key] = ""
    for key in ("case_problems",):
        if not isinstance(clean.get(key, {}), dict) or not all(
            isinstance(v, str) for v in clean.get(key, {}).values()
        ):
            notes.append(f"{p}: {key!r} is not an object of strings; ignored")
            clean[key] = {}
    for key in ("suite_problems", "stale_expectations", "unexpected"):
        if not isinstance(clean.get(key, []), list):
            notes.append(f"{p}: {key!r} is not a list; ignored")
            clean[key] = []
    kept = {
        "unexpected": lambda u: (
            isinstance(u, dict) and all(isinstance(u.get(k), str) for k in ("runtime", "case"))
        ),
        "stale_expectations": lambda e: isinstance(e, dict),
        "suite_problems": lambda x: isinstance(x, str),
    }
    for key, fits in kept.items():
        entries = clean.get(key, [])
        clean[key] = [e for e in entries if fits(e)]
        if len(clean[key]) != len(entries):
            notes.append(
                f"{p}: {len(entries) - len(clean[key])} entries of {key!r} are not what opref writes; ignored"
            )
    try:
        clean["seconds"] = number(clean.get("seconds", 0.0), "seconds") or 0.0
    except BoundaryError:
        clean["seconds"] = 0.0
    if not isinstance(clean.get("complete", True), bool):
        notes.append(f"{p}: 'complete' is not a boolean; read as false")
        clean["complete"] = False
    if not isinstance(clean.get("machine", {}), dict):
        notes.append(f"{p}: 'machine' is not an object; ignored")
        clean["machine"] = {}
    clean.setdefault("machine", {})
    clean["tensors_root"] = str(root.absolute()) if any(r.get("tensors") for r in records) else ""
    clean.setdefault("suite", "")
    clean.setdefault("started", "")
    clean.setdefault("complete", True)
    return Results(clean, tuple(notes))
