"""A CI gate that can be trusted (issue 13): no silent green, JUnit and report that agree with the
exit code, and clear errors. Each test runs the command line as a CI job would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from opref import cases as cs
from opref import codec as cx
from opref import vectors as vx
from opref.expectations import cpu_flags, expectation_for, parse_expected, stale

ROOT = Path(__file__).resolve().parent.parent
FAKE = "py:fake_runtimes:make"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite") / "v"
    picks = ["seed_basic", "seed_stride2", "rank1_s2_float64_exact", "reject_negative_pads"]
    vx.generate(out, cs.catalog(only=picks), {})
    return out


def opref(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opref", *args], env=ENV, cwd=cwd, capture_output=True, text=True, timeout=300
    )


# --- 1-5: false greens ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("ort:cpuu", "is not an onnxruntime execution provider"),
        ("ort:CUDAExecutionProvidr", "did you mean CUDAExecutionProvider?"),
        ("ort:cpu?bogus=1", "unknown CPUExecutionProvider option(s) ['bogus']; known: none"),
        ("ort:cuda?use_tf23=1", "known: arena_extend_strategy"),
        ("nosuchkind", "unknown runtime 'nosuchkind'"),
        # tract has no device to choose: a ':arg' it would ignore is a typo, not a choice
        ("tract:cuda", "tract takes no ':cuda'"),
    ],
)
def test_a_spec_that_cannot_be_right_is_a_usage_error(suite, tmp_path, spec, words):
    run = opref("validate", str(suite), "--runtime", spec, "--out", str(tmp_path))
    assert run.returncode == 2 and words in run.stderr, run.stderr


@pytest.mark.parametrize(
    ("spec", "what_to_do"),
    [
        ("py:nosuchmod:make", "make the adapter's module importable"),
        ("ort:cpu@/no/python", "check the interpreter after '@'"),
        ("ort:cuda", "install onnxruntime-gpu and run on a machine with a CUDA GPU"),
    ],
)
def test_a_runtime_named_but_unavailable_fails_the_run(suite, tmp_path, spec, what_to_do):
    run = opref("validate", str(suite), "--runtime", spec, "--runtime", FAKE, "--out", str(tmp_path))
    assert run.returncode == 1, run.stdout
    assert "UNAVAILABLE" in run.stdout and what_to_do in run.stdout, run.stdout
    assert "\x1b[" not in run.stdout  # onnxruntime's colour codes are stripped
    tolerant = opref(
        "validate",
        str(suite),
        "--runtime",
        spec,
        "--runtime",
        FAKE,
        "--out",
        str(tmp_path),
        "--allow-unavailable",
    )
    assert tolerant.returncode == 0, tolerant.stdout


def test_no_case_selected_is_a_failure(suite, tmp_path):
    run = opref("validate", str(suite), "--runtime", FAKE, "--only", "nothing_*", "--out", str(tmp_path))
    assert run.returncode == 1 and "0 cases selected" in run.stdout


def test_every_case_timing_out_is_not_a_pass(suite, tmp_path):
    run = opref(
        "validate",
        str(suite),
        "--runtime",
        f"{FAKE}?mode=hang",
        "--timeout",
        "1",
        "--out",
        str(tmp_path),
        "--only",
        "seed_*",
    )
    assert run.returncode == 1 and "UNEXPECTED timeout" in run.stdout, run.stdout
    listed = tmp_path / "known.txt"
    listed.write_text(f"{FAKE}?mode=hang seed_* timeout # hangs, upstream #7\n")
    run = opref(
        "validate",
        str(suite),
        "--runtime",
        f"{FAKE}?mode=hang",
        "--timeout",
        "1",
        "--out",
        str(tmp_path),
        "--only",
        "seed_*",
        "--expected",
        str(listed),
    )
    assert run.returncode == 0, run.stdout


def test_stale_expectations_are_printed_reported_and_can_fail_the_run(suite, tmp_path):
    known = tmp_path / "known.txt"
    known.write_text(f"{FAKE} seed_basic fail-values # fixed upstream since\n")
    base = ["validate", str(suite), "--runtime", FAKE, "--expected", str(known), "--out", str(tmp_path / "r")]
    run = opref(*base)
    assert run.returncode == 0 and "STALE expectation (line 1)" in run.stdout and "now passes" in run.stdout
    assert opref(*base, "--strict-expected").returncode == 1
    rep = opref("report", str(tmp_path / "r"), "--out", str(tmp_path / "rep"))
    assert rep.returncode == 0 and "STALE" in rep.stdout
    md = (tmp_path / "rep/index.md").read_text()
    assert (
        "Stale known-failures lines" in md and f"{FAKE} seed_basic fail-values" in md and "now passes" in md
    )
    assert (
        opref("report", str(tmp_path / "r"), "--out", str(tmp_path / "rep"), "--strict-expected").returncode
        == 1
    )
    # a line whose case glob matches no case, or whose runtime is misspelt, is stale too
    known.write_text(f"{FAKE} nothing_* error # a typo\nort:cpux seed_* error # a misspelt runtime\n")
    typo = opref(*base)
    assert (
        typo.returncode == 0
        and "'py:fake_runtimes:make nothing_* error' matches no case of the suite" in typo.stdout
    )
    assert "1 lines match no runtime of this run (lines 2)" in typo.stdout
    assert opref(*base, "--strict-expected").returncode == 1


# --- 6-9: JUnit, report exit code, strict JSON, relative reproduce commands --------------------


@pytest.fixture(scope="module")
def reported(suite, tmp_path_factory):
    """One run with an expected failure, an unexpected one, unsupported and an Infinity."""
    tmp = tmp_path_factory.mktemp("rep")
    known = tmp / "known.txt"
    wrong = f"{FAKE}?mode=shift-pad&only=seed_*"
    known.write_text(f"{wrong} seed_basic fail-values # the pad bug, upstream #1\n")
    validate = opref(
        "validate",
        str(suite),
        "--runtime",
        wrong,
        "--runtime",
        "ort:cpu",
        "--expected",
        str(known),
        "--out",
        "results",
        cwd=tmp,
    )
    report = opref("report", "results", "--out", "report", cwd=tmp)
    return tmp, validate, report


def test_report_exits_like_validate(reported):
    tmp, validate, report = reported
    assert validate.returncode == 1  # seed_stride2's shift is not listed
    assert report.returncode == 1
    again = opref("report", "results", "--out", "report2", "--exit-zero", cwd=tmp)
    assert again.returncode == 0


def test_junit_agrees_with_the_exit_code(reported):
    tmp = reported[0]
    root = ET.parse(tmp / "report/junit.xml").getroot()
    cases = {(tc.get("classname"), tc.get("name")): tc for tc in root.iter("testcase")}
    wrong = f"{FAKE}?mode=shift-pad&only=seed_*"
    known = cases[(wrong, "seed_basic")]
    assert known.find("failure") is None
    assert "known failure (fail-values): the pad bug, upstream #1" in known.find("skipped").get("message")
    assert cases[(wrong, "seed_stride2")].find("failure") is not None
    unsupported = [
        tc.find("skipped").get("message")
        for (rt, _), tc in cases.items()
        if rt == "ort:cpu" and tc.find("skipped") is not None
    ]
    assert unsupported and set(unsupported) == {"unsupported: the runtime has no kernel for this dtype/opset"}
    failures = sum(int(s.get("failures")) for s in root.iter("testsuite"))
    assert failures == 1


def test_report_json_is_strict_json(reported):
    tmp = reported[0]

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    for path in (tmp / "report/report.json", tmp / "results/results.json"):
        json.loads(path.read_text(), parse_constant=refuse)
    text = (tmp / "report/report.json").read_text()
    assert '"inf"' in text  # the Infinity of an exact-data mismatch, as a string


def test_reproduce_commands_are_relative(reported):
    tmp = reported[0]
    data = json.loads((tmp / "report/report.json").read_text())
    cmds = [f["reproduce"] for f in data["failures"]]
    assert cmds and all("/tmp" not in c and str(tmp) not in c for c in cmds), cmds
    rel = os.path.relpath(
        next(iter([Path(json.loads((tmp / "results/results.json").read_text())["suite_path"])])),
        tmp / "report",
    )
    assert all(c.startswith(f"opref validate {rel} ") and c.endswith("--out opref-repro") for c in cmds)


# --- 14, 16: clear errors, cross-checks, verify --recompute -------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{}", "not opref validation results"),
        ("[1, 2]", "not opref validation results"),
        ('{"generator": "opref", "cases": []}', "a suite manifest, not validation results"),
    ],
)
def test_report_on_something_else_is_a_clear_error(tmp_path, content, words):
    (tmp_path / "results.json").write_text(content)
    run = opref("report", str(tmp_path), "--out", str(tmp_path / "rep"))
    assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_report_over_a_bad_record_writes_the_report_with_a_note_and_fails(tmp_path):
    # Issue 22: one bad record no longer refuses the whole file; it is left out, named, and the
    # report is never green.
    (tmp_path / "results.json").write_text('{"runtimes": [], "records": [{"case": 1}]}')
    run = opref("report", str(tmp_path), "--out", str(tmp_path / "rep"))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    index = (tmp_path / "rep" / "index.md").read_text()
    assert "Records left out" in index and "records[0] left out: it has no string 'case'" in index, index


def test_report_over_an_unavailable_runtime_warns_nothing(suite, tmp_path):
    opref("validate", str(suite), "--runtime", f"{FAKE}?mode=unavailable", "--out", str(tmp_path / "r"))
    run = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "opref",
            "report",
            str(tmp_path / "r"),
            "--out",
            str(tmp_path / "x"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "Warning" not in run.stderr, run.stderr


def test_generate_into_an_unwritable_place_is_a_clear_error(tmp_path):
    run = opref("generate", "--out", "/proc/opref-x", "--only", "seed_basic")
    assert run.returncode == 2 and "cannot write" in run.stderr and "Traceback" not in run.stderr


def test_a_valid_case_edited_to_must_reject_is_refused(suite, tmp_path):
    copy = tmp_path / "v"
    vx.generate(copy, cs.catalog(only=["seed_basic", "seed_stride2"]), {})
    data = json.loads((copy / "manifest.json").read_text())
    data["cases"][0]["expect"] = "reject"
    (copy / "manifest.json").write_text(json.dumps(data))
    run = opref("validate", str(copy), "--runtime", FAKE, "--out", str(tmp_path / "r"))
    assert run.returncode == 1 and "must-reject case must not list an output" in run.stdout, run.stdout


def test_verify_recompute_finds_a_wrong_expected_output(tmp_path):
    copy = tmp_path / "v"
    vx.generate(copy, cs.catalog(only=["seed_basic", "seed_stride2"]), {})
    assert opref("verify", str(copy), "--recompute").returncode == 0
    # A suite from elsewhere whose output is wrong, with a manifest that agrees (sha updated).
    path = copy / "node/seed_stride2/test_data_set_0/output_0.pb"
    y = cx.read_tensor(path.read_bytes()).copy()
    y.flat[3] += 1
    data = cx.tensor_proto(y, "Y").SerializeToString()
    path.write_bytes(data)
    manifest = json.loads((copy / "manifest.json").read_text())
    rec = next(r for r in manifest["cases"] if r["name"] == "seed_stride2")
    rec["files"]["test_data_set_0/output_0.pb"] = cx.sha256(data)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert opref("verify", str(copy)).returncode == 0  # the files agree with the manifest ...
    run = opref("verify", str(copy), "--recompute")  # ... but not with the operator
    assert (
        run.returncode == 1
        and "seed_stride2: output_0.pb differs from the recomputed output in 1 elements" in run.stdout
    )
    # the index of the first difference in plain ints (flat 3 of Y's shape), no numpy reprs
    first = [int(i) for i in np.unravel_index(3, y.shape)]
    assert f"first at {first}: file {float(y.flat[3])!r}" in run.stdout and "np." not in run.stdout


# --- platform-dependent known failures (issue 24) ----------------------------------------------------------


def test_a_known_failure_line_can_depend_on_cpu_features():
    lines = parse_expected(
        "ort:cpu *__qdq fail-values when=!avx512_vnni,!avx_vnni # saturates without VNNI\n"
        "openvino *__pad-fused fail-shape # a bug\n"
    )
    platform, bug = lines
    assert platform.platform and not bug.platform
    assert platform.key.endswith("when=!avx512_vnni,!avx_vnni")
    assert platform.active(frozenset({"avx2"})) and not platform.active(frozenset({"avx2", "avx_vnni"}))
    assert bug.active(frozenset())
    # Flags that cannot be read (no /proc/cpuinfo) show no condition to hold: nothing excused.
    assert not platform.active(frozenset())
    # A machine-dependent line is never stale: the failure need not show on every machine.
    assert stale([platform, bug], [], ["ort:cpu", "openvino"], ["a__qdq", "a__pad-fused"]) == [bug]
    for bad in ("when=", "when=avx 2", "if=avx2", "when=AVX2"):
        with pytest.raises(ValueError, match="when="):
            parse_expected(f"ort:cpu * fail-values {bad} # x")


def test_cpu_flags_are_read_from_proc_cpuinfo():
    if not Path("/proc/cpuinfo").exists():
        assert cpu_flags() == frozenset()
        return
    text = Path("/proc/cpuinfo").read_text()
    line = next((x for x in text.splitlines() if x.split(":")[0].strip() in ("flags", "Features")), None)
    assert cpu_flags() == (frozenset(line.split(":", 1)[1].split()) if line else frozenset())


def test_the_report_shows_platform_dependent_failures_apart_from_bugs():
    from opref.report import aggregate, markdown

    base = {"runtime": "ort:cpu", "dtype": "float32", "opset": 22, "attributes": {}, "reproduce": "x"}
    records = [
        {
            **base,
            "case": "a__qdq",
            "verdict": "fail-values",
            "expected_by": "ort:cpu *__qdq fail-values when=!avx_vnni",
            "expected_reason": "saturates",
        },
        {
            **base,
            "case": "b__qdq",
            "verdict": "fail-values",
            "expected_by": "ort:cpu b* fail-values",
            "expected_reason": "a bug",
        },
    ]
    results = {
        "runtimes": [{"spec": "ort:cpu", "available": True, "name": "onnxruntime", "version": "1"}],
        "records": records,
        "suite": "",
        "started": "",
        "machine": {},
    }
    data = aggregate([results]).data
    assert data["platform_dependent_count"] == 1
    rows = {f["case"]: f["platform"] for f in data["failures"]}
    assert rows == {"a__qdq": "!avx_vnni", "b__qdq": ""}
    text = markdown(aggregate([results]))
    assert "platform-dependent (when !avx_vnni: saturates)" in text and "known (a bug)" in text


def test_a_because_line_excuses_only_the_failure_its_bug_model_explains():
    """The qdq zero-point bug's line must not hide another failure on the same cases (review)."""
    lines = parse_expected(
        "openvino *__qdq fail-values because=qdq-zero-point-before-rounding # the rounding bug\n"
        "openvino *__qdq fail-values when=!avx512_vnni # saturation\n"
    )
    bug, platform = lines
    assert bug.key.endswith("because=qdq-zero-point-before-rounding")
    explained = ["qdq-zero-point-before-rounding"]
    assert expectation_for(lines, "openvino", "a__qdq", "fail-values", explained) == bug
    # the same verdict unexplained: not the bug's line; only the platform line where it applies
    got = expectation_for(lines, "openvino", "a__qdq", "fail-values", [])
    assert got is (platform if platform.active() else None)
    for bad in ("because=", "because=no-such-model", "because=qdq-zero-point-before-rounding,nope"):
        with pytest.raises(ValueError, match="because="):
            parse_expected(f"openvino * fail-values {bad} # x")


def test_a_one_node_line_does_not_reach_the_forms_with_other_nodes():
    """Review: 'onnx-reference group2_* error' excused errors of group2 cases inside Pad, BN and
    QDQ graphs too. A glob without '__' reaches the one-node variants only."""
    (line,) = parse_expected("onnx-reference group2_* error # the one-node group bug\n")
    case = "group2_c4_m6_float32_exact"
    for variant in ("", "__constant-weights", "__dynamic-batch", "__dynamic-spatial"):
        assert expectation_for([line], "onnx-reference", f"{case}{variant}", "error") == line
    for form in ("__pad-fused", "__bn-folded", "__qdq"):
        assert expectation_for([line], "onnx-reference", f"{case}{form}", "error") is None
    (named,) = parse_expected("onnx-reference group2_*__* error # the same bug, in the forms\n")
    assert expectation_for([named], "onnx-reference", "group2_c4_m6_float32_exact__qdq", "error") == named
