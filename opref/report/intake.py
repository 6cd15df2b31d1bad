"""What the report's writers are given (issue 22, guarantee 7): whatever records reach the
report (read back from a hand-edited results.json, or handed in by a caller), each field as the
type the writers render, and a note for every record or field that could not be taken as it
is. Nothing here raises on data: a bad record costs that record (or that field), never the
report.

Text goes through :func:`opref.boundary.text` (the boundary layer's text normaliser), capped
at ``TEXT_LIMIT`` characters; numbers written by :func:`opref.validate.strict` as "nan", "inf" or
"-inf" are floats again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from opref import boundary
from opref.verdicts import Verdict

MAX_DEPTH = 8  # nesting of a passed-through value shown in report.json and the HTML details
MAX_ITEMS = 10_000  # items of one passed-through list or object

TEXT_LIMIT = 4000  # characters of one outside string a report shows
_VERDICTS = {v.value for v in Verdict}
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "infinity": math.inf}


class _Bad(Exception):
    """A field of the wrong type: ``what`` says what it should have been."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def text(value: object, limit: int = TEXT_LIMIT) -> str:
    """Any value as plain text (the boundary's normaliser), cut at ``limit`` with a mark."""
    return boundary.text(value if isinstance(value, str) else repr(value), "report text", limit)


def _text(v: object) -> str:
    if not isinstance(v, str):
        raise _Bad("text")
    return text(v)


def _int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad("a whole number")
    return v


def _number(v: object) -> float:
    if isinstance(v, str) and v.strip().lower() in _NON_FINITE:
        return _NON_FINITE[v.strip().lower()]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad("a number")
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def _flag(v: object) -> bool:
    if not isinstance(v, bool):
        raise _Bad("true or false")
    return v


def _optional(kind: Callable[[object], object]) -> Callable[[object], object]:
    def parse(v: object) -> object:
        return None if v is None else kind(v)

    return parse


def _list(kind: Callable[[object], object]) -> Callable[[object], list]:
    def parse(v: object) -> list:
        if not isinstance(v, list) or len(v) > MAX_ITEMS:
            raise _Bad("a list")
        return [kind(x) for x in v]

    return parse


def _mapping(kind: Callable[[object], object]) -> Callable[[object], dict]:
    def parse(v: object) -> dict:
        if not isinstance(v, dict) or len(v) > MAX_ITEMS:
            raise _Bad("an object")
        return {_text(k): kind(x) for k, x in v.items()}

    return parse


def plain(v: object, depth: int = 0) -> object:
    """Any value as plain JSON values with normalised text (a passed-through field)."""
    if v is None or isinstance(v, bool | int):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, str):
        return text(v)
    if depth >= MAX_DEPTH:
        return "[... nested too deep]"
    if isinstance(v, list | tuple):
        return [plain(x, depth + 1) for x in list(v)[:MAX_ITEMS]]
    if isinstance(v, dict):
        return {text(str(k)): plain(x, depth + 1) for k, x in list(v.items())[:MAX_ITEMS]}
    return text(repr(v))


_shape = _optional(_list(_int))
_COMPARISON = {
    "ok": _flag,
    "bitexact_required": _flag,
    "max_abs_error": _optional(_number),
    "max_ulp": _optional(_number),
    "max_bound_fraction": _optional(_number),
    "expected_at_first": _optional(_number),
    "got_at_first": _optional(_number),
    "first_mismatch": _shape,
    "mismatches": _optional(_int),
}


def _comparison(v: object) -> dict | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _Bad("an object")
    out = {k: plain(x) for k, x in v.items() if k not in _COMPARISON}
    for key, kind in _COMPARISON.items():
        try:
            out[key] = kind(v.get(key))
        except _Bad as exc:
            raise _Bad(f"an object whose {key!r} is {exc.what}") from None
    return out


# The record's fields the writers read: (parser, default when absent or of the wrong type).
_RECORD: dict[str, tuple[Callable[[object], object], object]] = {
    "dtype": (_text, "?"),
    "opset": (_int, 0),
    "family": (_text, ""),
    "expect": (_text, ""),
    "reproduce": (_text, ""),
    "message": (_text, ""),
    "seconds": (_number, 0.0),
    "placement": (_text, ""),
    "runtime_name": (_text, ""),
    "runtime_version": (_text, ""),
    "attributes": (_mapping(plain), {}),
    "ambiguities": (_list(_text), []),
    "reading": (_optional(_mapping(_text)), None),
    "nearest_reading": (_optional(_mapping(_text)), None),
    "readings_followed": (_list(_mapping(_text)), []),
    "x_shape": (_shape, None),
    "w_shape": (_shape, None),
    "expected_shape": (_shape, None),
    "got_shape": (_shape, None),
    "got_dtype": (_optional(_text), None),
    "comparison": (_comparison, None),
    "max_rel_error": (_optional(_number), None),
    "diagnosis": (_list(_text), []),
    "tensors": (_mapping(_text), {}),
    "expected_reason": (_text, ""),
}
_OPTIONAL_TEXT = ("expected_by",)  # meaningful by their presence: kept only when they are text


def record(rec: object, where: str, notes: list[str]) -> dict | None:
    """One record as the writers read it, or None (with a note) when it names no case, runtime
    and known verdict."""
    if not isinstance(rec, dict):
        notes.append(f"{where}: not an object; left out")
        return None
    out: dict = {}
    for key in ("case", "runtime", "verdict"):
        value = rec.get(key)
        if not isinstance(value, str) or (key == "verdict" and value not in _VERDICTS):
            shown = text(repr(value), 80)
            notes.append(
                f"{where}: {key} {shown} is not {'a known verdict' if key == 'verdict' else 'text'}; left out"
            )
            return None
        out[key] = text(value)
    who = f"{where} ({out['runtime']} {out['case']})"
    for key, value in rec.items():
        if key not in _RECORD and key not in out and key not in _OPTIONAL_TEXT:
            out[text(str(key))] = plain(value)
    for key, (parse, default) in _RECORD.items():
        if key not in rec:
            out[key] = default
            continue
        try:
            out[key] = parse(rec[key])
        except _Bad as exc:
            notes.append(f"{who}: {key!r} is not {exc.what}; shown without it")
            out[key] = default
    for key in _OPTIONAL_TEXT:
        if isinstance(rec.get(key), str):
            out[key] = text(rec[key])
        elif key in rec:
            notes.append(f"{who}: {key!r} is not text; shown without it")
    return out


def _runtime(rt: object, where: str, notes: list[str]) -> dict | None:
    if not isinstance(rt, dict) or not isinstance(rt.get("spec"), str):
        notes.append(f"{where}: names no runtime spec; left out")
        return None
    out = {k: plain(v) for k, v in rt.items()}
    out["spec"] = text(rt["spec"])
    if not isinstance(rt.get("available"), bool):
        notes.append(f"{where} ({out['spec']}): 'available' is not true or false; taken as unavailable")
    out["available"] = rt.get("available") is True
    for key in ("name", "version", "reason", "hint"):
        value = rt.get(key, "")
        out[key] = text(value) if isinstance(value, str) else text(repr(value))
    out["details"] = plain(rt["details"]) if isinstance(rt.get("details"), dict) else {}
    return out


def _field(data: dict, key: str, parse, default, where: str, notes: list[str]):
    if key not in data:
        return default
    try:
        return parse(data[key])
    except _Bad as exc:
        notes.append(f"{where}: {key!r} is not {exc.what}; taken as {default!r}")
        return default


def _unexpected(v: object) -> dict:
    if not isinstance(v, dict):
        raise _Bad("an object")
    return {
        "runtime": _text(v.get("runtime")),
        "case": _text(v.get("case")),
        "verdict": plain(v.get("verdict")),
    }


def _stale(v: object) -> dict:
    if not isinstance(v, dict):
        raise _Bad("an object")
    line = v.get("line")
    return {
        **{k: plain(x) for k, x in v.items()},
        "line": line if isinstance(line, int) and not isinstance(line, bool) else "?",
        "key": text(v.get("key", "")),
        "reason": text(v.get("reason", "")),
    }


def result(data: object, where: str, notes: list[str]) -> dict | None:
    """One results.json's content as the writers read it (None, with a note, when it is not
    validation results at all)."""
    if not isinstance(data, dict):
        notes.append(f"{where}: not validation results (not an object); left out")
        return None
    out: dict = {}
    for key in ("suite", "suite_path", "started", "tensors_root", "opref_version"):
        out[key] = _field(data, key, _text, "", where, notes)
    out["seconds"] = _field(data, "seconds", _number, 0.0, where, notes)
    # Absent: a results.json older than the flag, complete; of the wrong type: not complete.
    out["complete"] = _field(data, "complete", _flag, False, where, notes) if "complete" in data else True
    out["allow_unavailable"] = _field(data, "allow_unavailable", _flag, False, where, notes)
    out["machine"] = _field(data, "machine", _mapping(plain), {}, where, notes)
    out["suite_problems"] = _field(data, "suite_problems", _list(_text), [], where, notes)
    out["case_problems"] = _field(data, "case_problems", _mapping(_text), {}, where, notes)
    out["unexpected"] = _field(data, "unexpected", _list(_unexpected), [], where, notes)
    out["stale_expectations"] = _field(data, "stale_expectations", _list(_stale), [], where, notes)
    # What the boundary's reader left out of this file, and the pairs a run could not finish.
    out["read_notes"] = _field(data, "read_notes", _list(_text), [], where, notes)
    out["missing"] = _field(data, "missing", _list(plain), [], where, notes)
    runtimes = data.get("runtimes") if isinstance(data.get("runtimes"), list) else []
    records = data.get("records") if isinstance(data.get("records"), list) else []
    if not isinstance(data.get("runtimes"), list) or not isinstance(data.get("records"), list):
        notes.append(f"{where}: no 'runtimes' and 'records' lists; what there is is shown")
    out["runtimes"] = [
        r for i, rt in enumerate(runtimes) if (r := _runtime(rt, f"{where} runtimes[{i}]", notes))
    ]
    out["records"] = [
        r for i, rec in enumerate(records) if (r := record(rec, f"{where} records[{i}]", notes))
    ]
    listed = {rt["spec"] for rt in out["runtimes"]}
    for rec in out["records"]:
        if rec["runtime"] not in listed:
            listed.add(rec["runtime"])
            notes.append(f"{where}: runtime {rec['runtime']} has records but is not in 'runtimes'; added")
            out["runtimes"].append(
                {
                    "spec": rec["runtime"],
                    "available": True,
                    "name": "?",
                    "version": "?",
                    "reason": "",
                    "hint": "",
                    "details": {},
                }
            )
    return out


def results(
    sources: Sequence[object], names: Sequence[str] | None = None
) -> tuple[list[dict | None], list[str]]:
    """Every source as the writers read it (None where it is not validation results at all),
    and the notes on what could not be taken as it is; ``names`` name the sources in notes."""
    notes: list[str] = []
    names = list(names) if names is not None else [f"results[{i}]" for i in range(len(sources))]
    return [result(data, text(name), notes) for data, name in zip(sources, names, strict=True)], notes
