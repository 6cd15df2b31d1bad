"""The boundary (issue 22, guarantee 2): outside data is bounded before it is decoded, typed,
and its text normalised once, whoever sends it: a worker, a manifest, a model, a results.json."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opref import boundary
from opref import cases as cs
from opref import suite as sx
from opref import vectors as vx
from opref.boundary import BoundaryError
from opref.protocol import ArraySpec, Hello, ProtocolError, ReplyHeader, load_header
from opref.validate import validate

HOSTILE = "py:hostile_frames:make"

# --- JSON: size and depth before decoding ------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"[" * 100_000, b'{"k": [[[[' * 2000],
)
def test_a_header_nested_thousands_deep_is_refused_without_recursion(frame):
    with pytest.raises(ProtocolError, match=r"nested \d+ deep"):
        load_header(frame)


def test_brackets_inside_strings_are_not_nesting():
    text = '[{"m": "' + "[{" * 10_000 + '\\"]]"}]'
    assert load_header(json.dumps({"kind": "x", "m": text}).encode())["m"] == text


nested = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\ab'), inner, max_size=3)
    ),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=200, deadline=None)
@given(nested)
def test_the_depth_scan_agrees_with_the_decoded_value(value):
    data = json.dumps(value).encode()
    assert boundary.json_depth(data) == _depth(value), data
    default = boundary._SCAN_CHUNK
    try:
        for chunk in (1, 2, 3, 7):  # escapes and strings that cross a chunk's edge
            boundary._SCAN_CHUNK = chunk
            assert boundary.json_depth(data) == _depth(value), (chunk, data)
    finally:
        boundary._SCAN_CHUNK = default


@pytest.mark.parametrize("data", [b'{"x": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}'])
def test_json_has_no_nan_or_infinity(data):
    with pytest.raises(BoundaryError, match="not a JSON number"):
        boundary.load_json(data, "header", max_bytes=100)


def test_oversized_and_non_utf8_json_are_refused_before_decoding():
    with pytest.raises(BoundaryError, match="over the 10-byte limit"):
        boundary.load_json(b"[" + b"1," * 10 + b"1]", "x", max_bytes=10)
    with pytest.raises(BoundaryError, match="not UTF-8"):
        boundary.load_json(b'["\xff"]', "x", max_bytes=10)
    with pytest.raises(BoundaryError, match="not valid JSON"):
        boundary.load_json(b"[" + b"9" * 5000 + b"]", "x", max_bytes=10_000)  # Python's digit limit


# --- text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("\x1b[1;31mred\x1b[0m", "red"),  # SGR colours
        ("a\x1b[2Kb\x1b[10;20Hc", "abc"),  # erase line, cursor move
        ("\x1b]0;window title\x07x", "x"),  # OSC ended by BEL
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST-terminated
        ("\x9b31mc1\x9b0m", "c1"),  # the 8-bit CSI
        ("\x1bPdcs\x1b\\after", "after"),  # DCS string
        ("\x1b(Bcharset", "charset"),  # a designator escape
        ("bell\x07nul\x00del\x7f", "bellnuldel"),
        ("C1\x85next", "C1next"),
        ("crlf\r\nlone\rcr", "crlf\nlone\ncr"),
        ("tab\tnew\nline", "tab\tnew\nline"),
        ("\u202eevil\u2066", "evil"),  # bidi overrides
        ("lone \ud800 surrogate \udfff", "lone \ufffd surrogate \ufffd"),
        (b"bad \xff utf-8", "bad \ufffd utf-8"),
        ("\x1b", ""),  # an escape cut short
    ],
)
def test_text_is_plain_after_the_boundary(raw, want):
    assert boundary.text(raw, "message") == want


def test_text_is_cut_with_a_visible_mark_and_its_full_length():
    cut = boundary.text("x" * 1000, "message", cap=10)
    assert cut.startswith("x" * 10) and "cut: 1000 characters" in cut
    assert boundary.text("x" * 10, "message", cap=10) == "x" * 10
    assert boundary.text(cut, "message", cap=10) == cut  # read again (parent after worker): unchanged
    huge = boundary.text("\x1b[31m" * 10**6, "message", cap=10)  # bounded work, still marked
    assert "\x1b" not in huge and "cut" in huge


def test_text_refuses_what_is_not_text():
    with pytest.raises(BoundaryError, match="not a string"):
        boundary.text(5, "message")


def test_free_form_details_are_bounded_and_plain():
    assert boundary.plain({"a\x1b[1m": [1, 2.5, True, None, "\x00x"]}, "d") == {
        "a": [1, 2.5, True, None, "x"]
    }
    with pytest.raises(BoundaryError, match="nests too deeply"):
        deep: object = 1
        for _ in range(20):
            deep = [deep]
        boundary.plain(deep, "d")
    with pytest.raises(BoundaryError, match="entries"):
        boundary.plain(list(range(boundary.MAX_ITEMS + 1)), "d")
    with pytest.raises(BoundaryError, match="not a plain value"):
        boundary.plain({"x": object()}, "d")


# --- shapes: exact, zero-size dimensions included ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([0, 2**61, 2**61], "more than"),  # holds nothing, yet numpy cannot make it
        ([0] * 65, "65 dimensions"),  # numpy stops at 64
        ([2**20, 2**20, 2**20], "more than"),  # 2**60: exact, no int64 wrap
        ([2**64 + 1], "more than"),
        ([-1, 4], "sizes"),
        ([True, 2], "sizes"),  # a bool is not a size
        ([1.0], "sizes"),
        ("12", "not a list"),
    ],
)
def test_shapes_are_checked_exactly_before_anything_is_allocated(value, words):
    with pytest.raises(BoundaryError, match=words):
        boundary.shape(value, "shape")
    with pytest.raises(ProtocolError):
        ArraySpec.from_wire({"dtype": "float32", "shape": value})


def test_a_zero_size_array_within_bounds_still_arrives():
    spec = ArraySpec.from_wire({"dtype": "float32", "shape": [0, 3, 4]})
    assert spec.decode(b"").shape == (0, 3, 4)


# --- worker frames, end to end -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite") / "v"
    vx.generate(out, cs.catalog(only=["seed_basic", "seed_stride2", "reject_negative_pads"]), {})
    return out


@pytest.mark.parametrize(
    "mode", ["deep-header", "deep-object", "zero-dims-65", "zero-batch-huge", "nan-constant"]
)
def test_a_malformed_reply_frame_is_that_case_s_error_and_the_run_goes_on(suite, mode):
    res = validate(suite, [f"{HOSTILE}?mode={mode}&only=seed_basic"], timeout=60)
    cases = {r["case"]: r for r in res.records}
    assert set(cases) == {"seed_basic", "seed_stride2", "reject_negative_pads"}, res.records
    assert cases["seed_basic"]["verdict"] == "error", cases["seed_basic"]
    assert cases["seed_stride2"]["verdict"] == "pass"
    assert res.exit_code == 1


def test_a_runtime_s_message_reaches_the_record_as_plain_capped_text(suite):
    res = validate(suite, [f"{HOSTILE}?mode=nasty-message&only=seed_basic"], timeout=60)
    rec = next(r for r in res.records if r["case"] == "seed_basic")
    for field in ("message", "placement"):
        value = rec[field]
        assert not any(c in value for c in "\x1b\x00\x07\x85\r\u202e\ud800"), (field, value[:200])
        value.encode("utf-8")  # no lone surrogate left
        assert "error: bad" in value and "line\nnext\tcol" in value, value[:200]
    assert len(rec["message"]) < boundary.MAX_TEXT + 100 and "cut:" in rec["message"]


def test_an_adapter_s_info_and_details_are_normalised(suite):
    res = validate(suite, [f"{HOSTILE}?mode=nasty-info&only=none"], timeout=60)
    rt = res.runtimes[0]
    shown = json.dumps(rt, ensure_ascii=False)
    assert not any(c in shown for c in "\x1b\x00\x07\x85\u202e\ud800"), shown[:300]
    assert all(r["verdict"] in ("pass", "rejected") for r in res.records)


def test_details_nested_too_deep_make_the_runtime_unavailable_with_the_reason(suite):
    res = validate(suite, [f"{HOSTILE}?mode=deep-details"], timeout=60)
    assert not res.runtimes[0]["available"]
    assert "deep" in res.runtimes[0]["reason"], res.runtimes[0]
    assert res.exit_code == 1


def test_hello_and_reply_headers_are_typed():
    hello = {
        "kind": "hello",
        "name": "x\x1b[1m",
        "version": "1",
        "available": True,
        "reason": "",
        "details": {},
    }
    assert Hello.from_wire(hello).name == "x"
    with pytest.raises(ProtocolError):
        Hello.from_wire({**hello, "name": ["x"]})
    with pytest.raises(ProtocolError):
        Hello.from_wire(
            {**hello, "details": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}
        )
    reply = {
        "kind": "reply",
        "case": "c",
        "status": "ok",
        "message": "",
        "placement": "",
        "unit_roundoff": None,
    }
    with pytest.raises(ProtocolError, match="dimensions"):
        ReplyHeader.from_wire({**reply, "output": {"dtype": "float32", "shape": [0] * 65}}, "c")
    with pytest.raises(ProtocolError, match="unit_roundoff"):
        ReplyHeader.from_wire({**reply, "unit_roundoff": True, "output": None, "status": "error"}, "c")


# --- manifest records at the guard limit: refused or checked in milliseconds --------------------------


def _record(**change) -> dict:
    rec = {
        "name": "big",
        "family": "seed",
        "dtype": "float32",
        "opset": 22,
        "expect": "output",
        "ambiguities": [],
        "attributes": {},
        "files": {
            "model.onnx": "0" * 64,
            "test_data_set_0/input_0.pb": "0" * 64,
            "test_data_set_0/input_1.pb": "0" * 64,
            "test_data_set_0/output_0.pb": "0" * 64,
        },
        "tolerance": {"bitexact": False, "max_terms": 1},
        "x_shape": [1, 1, 2],
        "w_shape": [1, 1, 1],
    }
    rec.update(copy.deepcopy(change))
    return rec


@pytest.mark.parametrize(
    "change",
    [
        {"x_shape": [1, 1, 2**27], "w_shape": [1, 1, 1]},  # at the guard: 2**27 inputs, kernel 1
        {
            "x_shape": [1, 1, 2**13],
            "w_shape": [1, 1, 2**14],
            "tolerance": {"bitexact": False, "max_terms": 7},
        },
        {"x_shape": [1, 1, 2**13], "w_shape": [1, 1, 2**14 - 1], "attributes": {"strides": [2**40]}},
        {"x_shape": [0, 1, 2**40], "w_shape": [1, 1, 2**40]},  # a zero batch holds nothing, is not free
        {"x_shape": [2**62] * 16, "w_shape": [2**62] * 16},
        {"x_shape": [0] * 17, "w_shape": [1, 1, 1]},
    ],
)
def test_a_record_at_the_guard_limit_is_checked_without_laying_out_its_sizes(change):
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    with contextlib.suppress(sx.RecordError):
        sx.parse_record(_record(**change))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak} bytes traced for {change}"  # it was over 1 GiB


def test_a_forged_max_terms_at_the_guard_is_refused():
    with pytest.raises(sx.RecordError, match="max_terms 7 is not the node's 8192"):
        sx.parse_record(
            _record(
                x_shape=[1, 1, 2**13], w_shape=[1, 1, 2**14], tolerance={"bitexact": False, "max_terms": 7}
            )
        )


def test_manifest_free_text_is_normalised_and_names_are_not():
    rec = sx.parse_record(_record(description="a\x1b[31mb\x00", family="f\u202e"))
    assert (rec.description, rec.family) == ("ab", "f")
    with pytest.raises(sx.RecordError, match="dtype"):
        sx.parse_record(_record(dtype="float32\x00"))


def test_a_tensor_file_with_forged_dims_is_refused_before_reshaping():
    from opref.codec import SuiteError, read_tensor, tensor_proto

    for dims in ([0, 2**61, 2**61], [0] * 65, [-1, 0], [2**40, 2**40, 0]):
        t = tensor_proto(np.zeros(0, np.float32), "X")
        del t.dims[:]
        t.dims.extend(dims)
        with pytest.raises(SuiteError, match="dims"):
            read_tensor(t.SerializeToString())


# --- results.json read back ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def results_dir(suite, tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "r"
    validate(suite, ["py:fake_runtimes:make"], timeout=60).write(out)
    return out


def _hand_edit(results_dir, tmp_path, edit):
    out = tmp_path / "r"
    shutil.copytree(results_dir, out)
    data = json.loads((out / "results.json").read_text())
    edit(data)
    (out / "results.json").write_text(json.dumps(data))
    return out


def _deep(n: int) -> object:
    value: object = "x"
    for _ in range(n):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda r: r.update(opset="22"), "no integer 'opset'"),
        (lambda r: r.update(opset=True), "no integer 'opset'"),
        (lambda r: r.update(verdict="bogus\x1b[31m"), "unknown verdict 'bogus'"),
        (lambda r: r.pop("case"), "no string 'case'"),
        (lambda r: r.update(attributes={"group": "2"}), "attribute 'group'"),
        (lambda r: r.update(x_shape=[0, 2**61, 2**61]), "x_shape"),
        (lambda r: r.update(max_rel_error="lots"), "max_rel_error"),
        (lambda r: r.update(diagnosis=[1, 2]), "'diagnosis'"),
        (lambda r: r.update(message=_deep(10)), "nests too deeply"),
        (lambda r: r.update(comparison={"max_ulp": "many"}), "comparison.max_ulp"),
    ],
)
def test_a_bad_record_is_left_out_with_a_note_and_the_report_is_written(results_dir, tmp_path, edit, words):
    from opref.report import load_results, write_report

    out = _hand_edit(results_dir, tmp_path, lambda d: edit(d["records"][0]))
    results = load_results([out])
    notes = results[0]["read_notes"]
    assert len(notes) == 1 and words in notes[0] and "left out" in notes[0], notes
    assert len(results[0]["records"]) == 2  # the other two are reported
    report = write_report(results, tmp_path / "report")
    assert report.data["exit_code"] == 1  # a lost record is never green
    md = (tmp_path / "report" / "index.md").read_text()
    assert "Records left out" in md and "\x1b" not in md


def test_non_finite_numbers_written_as_strings_read_back_as_floats(results_dir, tmp_path):
    from opref.report import load_results, write_report

    def edit(d):
        d["records"][0].update(max_rel_error="nan", verdict="fail-values")
        d["records"][1].update(max_rel_error="inf", verdict="fail-values")

    results = load_results([_hand_edit(results_dir, tmp_path, edit)])
    errors = [r.get("max_rel_error") for r in results[0]["records"]]
    assert math.isnan(errors[0]) and errors[1] == math.inf and not results[0]["read_notes"]
    write_report(results, tmp_path / "report")  # the plot and tables take NaN and inf
    assert (tmp_path / "report" / "index.md").exists()


def test_text_in_results_is_normalised_once(results_dir, tmp_path):
    from opref.report import load_results

    def edit(d):
        d["records"][0]["message"] = "\x1b[31m" + "\ud800" + "m" * (2 * boundary.MAX_TEXT)
        d["runtimes"][0]["reason"] = "a\x00b"

    results = load_results([_hand_edit(results_dir, tmp_path, edit)])
    message = results[0]["records"][0]["message"]
    assert message.startswith("\ufffdm") and "cut:" in message and len(message) < boundary.MAX_TEXT + 100
    assert results[0]["runtimes"][0]["reason"] == "ab"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested"),
        (b'{"runtimes": 1, "records": []}', "not opref validation results"),
        (b'{"generator": "opref", "cases": []}', "a suite manifest"),
        (b'{"runtimes": [], "records": [], "x": NaN}', "not a JSON number"),
        (b'{"runtimes": [{"spec": 1}], "records": []}', "runtimes[0]"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_file_that_is_not_results_is_one_clear_line(tmp_path, capsys, data, words):
    from opref.cli import main

    (tmp_path / "results.json").write_bytes(data)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def _saved(results_dir, tmp_path, rel_of):
    out = _hand_edit(results_dir, tmp_path, lambda d: None)
    (out / "tensors").mkdir()
    np.save(out / "tensors" / "good.npy", np.zeros(2, np.float32))
    rel = rel_of(out, tmp_path)
    data = json.loads((out / "results.json").read_text())
    data["records"][0]["tensors"] = {"output": rel, "expected": "tensors/good.npy"}
    (out / "results.json").write_text(json.dumps(data))
    return out


def _outside_link(out, tmp):
    np.save(tmp / "secret.npy", np.ones(2, np.float32))
    os.symlink(tmp / "secret.npy", out / "tensors" / "link.npy")
    return "tensors/link.npy"


def _dir_link(out, tmp):
    (tmp / "elsewhere").mkdir()
    np.save(tmp / "elsewhere" / "x.npy", np.ones(2, np.float32))
    os.symlink(tmp / "elsewhere", out / "tensors" / "dir")
    return "tensors/dir/x.npy"


def _fifo(out, tmp):
    os.mkfifo(out / "tensors" / "fifo.npy")
    return "tensors/fifo.npy"


def _directory(out, tmp):
    (out / "tensors" / "d.npy").mkdir()
    return "tensors/d.npy"


@pytest.mark.parametrize(
    ("rel_of", "words"),
    [
        (lambda out, tmp: "../../../../etc/passwd.npy", "not a .npy file inside"),
        (lambda out, tmp: "/etc/passwd.npy", "not a .npy file inside"),
        (lambda out, tmp: "tensors/good.txt", "not a .npy file inside"),
        (lambda out, tmp: 42, "not a path"),
        (_outside_link, "symbolic link"),
        (_dir_link, "symbolic link"),
        (_fifo, "not a regular file"),
        (_directory, "not a regular file"),
        (lambda out, tmp: "tensors/missing.npy", "missing"),
    ],
)
def test_saved_tensor_paths_are_confined_to_the_results_directory(results_dir, tmp_path, rel_of, words):
    from opref.report import load_results

    out = _saved(results_dir, tmp_path, rel_of)
    results = load_results([out])
    rec = results[0]["records"][0]
    assert rec["tensors"] == {"expected": "tensors/good.npy"}, rec["tensors"]  # the record stays
    notes = results[0]["read_notes"]
    assert len(notes) == 1 and words in notes[0], notes
    assert results[0]["tensors_root"] == str(out.absolute())  # read beside the file, not where it says


def test_hand_edited_run_level_fields_are_noted_and_the_report_is_written(results_dir, tmp_path):
    from opref.report import load_results, write_report

    def edit(d):
        d.update(suite_problems=[1, "a problem"], stale_expectations=["s", {"line": 3}], machine="m")
        d.update(unexpected=[{"runtime": 1}], case_problems={"c": 5}, complete="yes", seconds="long")

    results = load_results([_hand_edit(results_dir, tmp_path, edit)])
    notes = " ".join(results[0]["read_notes"])
    for key in ("suite_problems", "stale_expectations", "unexpected", "case_problems", "complete", "machine"):
        assert key in notes, (key, notes)
    report = write_report(results, tmp_path / "report")
    assert report.data["suite_problems"] == ["a problem"] and report.data["exit_code"] == 1
