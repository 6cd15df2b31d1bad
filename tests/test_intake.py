"""The report is written whatever the verdicts are (issue 22, guarantee 7): NaN and infinite
comparisons, missing tensors, saved-tensor paths that point nowhere, empty runtimes and
hand-edited results.json with wrong types give a report with a note per bad record, or one
clear line; never a traceback."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opref import cases as cs
from opref import vectors as vx
from opref.report import write_report
from opref.validate import dumps, validate

ROOT = Path(__file__).resolve().parent.parent
FAKE = "py:fake_runtimes:make"
LAST_SECTION = "## Runtimes and machine"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Real results: random-data and exact-data comparisons, an error, an unavailable runtime,
    saved tensors."""
    base = tmp_path_factory.mktemp("intake")
    suite = base / "v"
    vx.generate(suite, cs.catalog(only=["seed_basic", "rank1_s2_float32_random"]), {})
    runtimes = [
        f"{FAKE}?mode=one-ulp",
        f"{FAKE}?mode=shift-pad",
        f"{FAKE}?mode=error",
        f"{FAKE}?mode=unavailable",
    ]
    data = validate(suite, runtimes, save_tensors="failures", tensors_dir=base / "r").to_dict()
    return json.loads(dumps(data))  # as read back from results.json: "nan" and "inf" as strings


def _strict_json(text: str) -> object:
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _check_report(out: Path) -> str:
    """Every output is there and well-formed; index.md is complete."""
    ET.fromstring((out / "junit.xml").read_bytes())  # expat: strict XML 1.0
    _strict_json((out / "report.json").read_text(encoding="utf-8"))
    md = (out / "index.md").read_text(encoding="utf-8")
    assert LAST_SECTION in md, md[-2000:]
    assert "</html>" in (out / "index.html").read_text(encoding="utf-8")
    return md


def _report(tmp_path: Path, data: object, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "results.json").write_text(json.dumps(data, allow_nan=True))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "opref",
        "report",
        str(tmp_path / "in"),
        "--out",
        str(tmp_path / "rep"),
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_nan_and_infinite_comparisons_give_a_report(results, tmp_path):
    """A runtime that answers NaN: its fraction of the bound is NaN (written "nan"); plot()
    used to fail on it and no report was written."""
    data = copy.deepcopy(results)
    random = [r for r in data["records"] if r["comparison"] and not r["comparison"]["bitexact_required"]]
    assert random, "the fixture must hold a random-data comparison"
    for value, rec in zip(["nan", "inf", "-inf"], random * 3, strict=False):
        rec["comparison"].update(max_bound_fraction=value, max_abs_error=value, ok=False)
        rec["verdict"] = "fail-values"
    run = _report(tmp_path, data)
    assert run.returncode in (0, 1) and "Traceback" not in run.stderr, run.stderr
    _check_report(tmp_path / "rep")
    assert (tmp_path / "rep" / "summary.png").is_file()
    # A bare NaN (no JSON number: a hand edit) is one clear line, never a traceback.
    random[0]["comparison"]["max_abs_error"] = math.nan
    run = _report(tmp_path, data)
    assert run.returncode == 2 and "NaN" in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_missing_tensors_and_paths_that_point_nowhere(results, tmp_path):
    data = copy.deepcopy(results)
    saved = [r for r in data["records"] if r.get("tensors")]
    assert saved, "the fixture must hold saved tensors"
    nowhere = ["../../../../etc/passwd", "/dev/zero", "tensors/none.npy", "", ".", "tensors"]
    for rec, path in zip(saved * len(nowhere), nowhere, strict=False):
        rec["tensors"] = {"expected": path, "output": path, "bound": path}
    data["tensors_root"] = "/"
    run = _report(tmp_path, data)
    assert run.returncode in (0, 1) and "Traceback" not in run.stderr, run.stderr
    _check_report(tmp_path / "rep")
    assert not (tmp_path / "rep" / "heatmaps").exists()


def test_empty_runtimes_give_a_report(tmp_path):
    run = _report(tmp_path, {"runtimes": [], "records": []})
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    _check_report(tmp_path / "rep")


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["records"][0].update(comparison="broken"),
        lambda d: d["records"][0].update(attributes=[1, 2], ambiguities="abc", reading=5),
        lambda d: d["records"][0].update(attributes={"group": "x", "dilations": "y", "pads": {"a": 1}}),
        lambda d: d["records"][0].update(expected_shape=["a"], got_shape=7, x_shape=None, w_shape={}),
        lambda d: d["records"][0].update(seconds="slow", message=["not", "text"], diagnosis=[1]),
        lambda d: d["records"][0].update(tensors=["x"], expected_by=3, expected_reason=None),
        lambda d: d["records"][0].update(opset=True, dtype=None),
        lambda d: d["records"][0].update(runtime="not listed anywhere"),
        lambda d: d["runtimes"][0].update(available="yes", details="none", reason=None),
        lambda d: d.update(stale_expectations=[{"line": "x", "key": None}], unexpected="all"),
        lambda d: d.update(case_problems=["x"], suite_problems={"a": 1}, machine=3, complete="no"),
    ],
    ids=[
        "comparison",
        "lists",
        "attribute-values",
        "shapes",
        "scalars",
        "tensors",
        "opset-dtype",
        "unlisted-runtime",
        "runtime-entry",
        "expectations",
        "top-level",
    ],
)
def test_hand_edited_fields_of_the_wrong_type_cost_a_note(results, tmp_path, edit, request):
    data = copy.deepcopy(results)
    failing = next(r for r in data["records"] if r["verdict"] == "fail-values")
    data["records"].remove(failing)
    data["records"].insert(0, failing)
    edit(data)
    out = tmp_path / "rep"
    report = write_report([data], out)
    md = _check_report(out)
    # Attribute values are shown as they are (any JSON): junk there is no wrong type, only a
    # fact no cluster shares; everything else of the wrong type is noted.
    noted = bool(report.data["notes"])
    assert noted != (request.node.callspec.id == "attribute-values"), report.data["notes"]
    assert ("## Records not shown as they were" in md) == noted


def test_records_without_case_runtime_or_verdict_are_left_out_with_a_note(results, tmp_path):
    data = copy.deepcopy(results)
    kept = len(data["records"])
    data["records"] += [None, 3, "x", {"case": 1}, {"case": "c", "runtime": "r", "verdict": "green"}, {}]
    report = write_report([data, "not results", None], tmp_path / "rep")
    _check_report(tmp_path / "rep")
    assert len(report.records) == kept
    assert len(report.data["notes"]) == 8, report.data["notes"]


def test_a_file_that_is_not_results_is_one_clear_line(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "results.json").write_bytes(b"\xff\xfe{")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "opref", "report", str(tmp_path / "in"), "--out", str(tmp_path / "rep")]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and run.stderr.startswith("opref: error:")


# --- hypothesis: hostile values in every field of real records ----------------------------

_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["\x1b[31m", "\udcff", "</script>", "]]>", "nan", "inf", "a|b`c", "\x00", "\ufffe"]
)
_scalar = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | _text
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


def _dicts(value: object) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _compared(rec: dict) -> bool:
    return isinstance(rec.get("comparison"), dict) and bool(rec["comparison"])


@st.composite
def hostile(draw, base):
    """A real results.json with 1-6 fields replaced by (or stripped of) hostile values: in a
    record, its comparison, a runtime entry, or at the top."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.sampled_from(["record", "comparison", "runtime", "top"]))
        records = _dicts(data.get("records"))
        if where == "record" and records:
            rec = draw(st.sampled_from(records))
            if not rec:  # an earlier edit emptied it: give it a key back
                rec["case"] = draw(_value)
                continue
            key = draw(st.sampled_from(sorted(rec)))
            if draw(st.booleans()):
                rec[key] = draw(_value)
            else:
                del rec[key]
        elif where == "comparison" and (cmps := [r["comparison"] for r in records if _compared(r)]):
            cmp = draw(st.sampled_from(cmps))
            cmp[draw(st.sampled_from(sorted(cmp)))] = draw(_value)
        elif where == "runtime" and (runtimes := _dicts(data.get("runtimes"))):
            rt = draw(st.sampled_from(runtimes))
            rt[draw(st.sampled_from(sorted(rt) or ["spec"]))] = draw(_value)
        elif where == "top":
            data[draw(st.sampled_from(sorted(data)))] = draw(_value)
    return data


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_records_never_stop_the_report(results, tmp_path_factory, data):
    edited = data.draw(hostile(results))
    out = tmp_path_factory.mktemp("hostile") / "rep"
    write_report([edited], out)
    _check_report(out)
