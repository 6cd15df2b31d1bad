"""Hardening: fuzzed attributes, untrusted suites, killed generation, no zombie workers."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import configurations, outcome_of

from opref import cases as cs
from opref import codec as cx
from opref import suite as sx
from opref import vectors as vx
from opref.cli import main as cli_main
from opref.validate import validate

ROOT = Path(__file__).resolve().parent.parent
FAKE = "py:fake_runtimes:make"


# --- fuzzing: a correct result or SpecError, nothing else ----------------------------------


@settings(max_examples=300)
@given(configurations())
def test_fuzzed_attributes_give_a_result_or_spec_error(config):
    outcome_of(*config)


@settings(max_examples=150)
@given(
    argv=st.lists(
        st.sampled_from(
            [
                "--x-shape",
                "--w-shape",
                "--strides",
                "--pads",
                "--output-shape",
                "--output-padding",
                "--dilations",
                "--group",
                "--auto-pad",
                "--opset",
                "--kernel-shape",
                "--reading",
                "--json",
                "1,1,3",
                "1,2,3,3",
                "0",
                "-1",
                "2,2",
                "x",
                "",
                "SAME_UPPER",
                "9" * 30,
                "negative-total-padding=clamp",
            ]
        ),
        max_size=12,
    )
)
def test_fuzzed_explain_command_line(argv):
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            code = cli_main(["explain", *argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code in (0, 2), argv


# --- untrusted suites ----------------------------------------------------------------------


@pytest.fixture
def suite(tmp_path):
    out = tmp_path / "v"
    vx.generate(out, cs.catalog(only=["seed_basic", "seed_stride2", "seed_two_channels"]), {})
    return out


def _rewrite(suite: Path, case: str, rel: str, data: bytes, manifest_rel: str | None = None) -> None:
    """Replace a file and make the manifest agree, as a careful attacker would."""
    path = suite / "node" / case / rel
    path.write_bytes(data)
    m = json.loads((suite / "manifest.json").read_text())
    rec = next(r for r in m["cases"] if r["name"] == case)
    files = rec["files"]
    if manifest_rel is not None:
        files[manifest_rel] = files.pop(rel)
    else:
        files[rel] = cx.sha256(data)
    (suite / "manifest.json").write_text(json.dumps(m))


def _problems(suite):
    res = validate(suite, [FAKE])
    return res, {r["case"]: r["verdict"] for r in res.records}


def test_external_data_is_refused(suite):
    model = onnx.load(suite / "node" / "seed_basic" / "model.onnx")
    t = model.graph.initializer.add()
    t.name, t.data_type = "W", onnx.TensorProto.FLOAT
    t.dims.extend([1])
    t.data_location = onnx.TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    _rewrite(suite, "seed_basic", "model.onnx", model.SerializeToString())
    res, verdicts = _problems(suite)
    assert "external data" in res.case_problems["seed_basic"]
    assert "seed_basic" not in verdicts and verdicts["seed_stride2"] == "pass" and res.exit_code == 1


@pytest.mark.parametrize("bad_rel", ["../seed_stride2/model.onnx", "/etc/passwd", "test_data_set_0/../../x"])
def test_paths_leaving_the_case_are_refused(suite, bad_rel):
    _rewrite(
        suite,
        "seed_basic",
        "model.onnx",
        (suite / "node/seed_basic/model.onnx").read_bytes(),
        manifest_rel=bad_rel,
    )
    res, verdicts = _problems(suite)
    assert "a case holds only model.onnx, inputs and output_0.pb" in res.case_problems["seed_basic"]
    assert "seed_basic" not in verdicts


def test_symlink_out_of_the_suite_is_refused(suite, tmp_path):
    outside = tmp_path / "outside.pb"
    target = suite / "node" / "seed_basic" / cx.DATA_SET / "input_0.pb"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    res, _ = _problems(suite)
    assert "symbolic link" in res.case_problems["seed_basic"]


def test_malformed_tensor_is_named_and_the_run_goes_on(suite):
    _rewrite(suite, "seed_basic", f"{cx.DATA_SET}/input_0.pb", b"\xff\x00garbage")
    res, verdicts = _problems(suite)
    assert "input_0.pb: malformed" in res.case_problems["seed_basic"]
    assert verdicts == {"seed_stride2": "pass", "seed_two_channels": "pass"}


def test_oversized_file_is_refused_before_reading(suite, monkeypatch):
    monkeypatch.setattr(sx, "MAX_FILE_BYTES", 50)
    res, verdicts = _problems(suite)
    assert all("over the 50-byte limit" in p for p in res.case_problems.values()) and not verdicts


def test_missing_and_extra_files(suite):
    (suite / "node" / "seed_basic" / cx.DATA_SET / "input_1.pb").unlink()
    (suite / "node" / "seed_stride2" / "notes.txt").write_text("hello")
    res, _ = _problems(suite)
    assert "input_1.pb: missing" in res.case_problems["seed_basic"]
    assert res.suite_problems == ["node/seed_stride2/notes.txt: not in the manifest"]


def test_malformed_manifest_is_a_clear_usage_error(suite, tmp_path, capsys):
    (suite / "manifest.json").write_text("{not json")
    assert cli_main(["validate", str(suite), "--runtime", "ort:cpu", "--out", str(tmp_path / "r")]) == 2
    assert "manifest.json: not valid JSON" in capsys.readouterr().err
    (suite / "manifest.json").write_text(json.dumps({"generator": "opref", "format": 1, "cases": [7]}))
    assert validate(suite, [FAKE]).case_problems == {"record[0]": "the record has no name"}
    bad_name = {"generator": "opref", "format": 1, "cases": [{"name": "../x"}]}
    (suite / "manifest.json").write_text(json.dumps(bad_name))
    with pytest.raises(cx.SuiteError, match="is not 1-200 characters"):
        validate(suite, [FAKE])


# --- killed generation ---------------------------------------------------------------------


def test_sigkill_during_generation_keeps_the_previous_suite(tmp_path):
    out = tmp_path / "suite"
    vx.generate(out, cs.catalog(only=["seed_*"]), {})
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opref",
            "generate",
            "--out",
            str(out),
            "--suite",
            "full",
            "--random",
            "3000",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".suite.opref-staging-*/node/*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "generation finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert list(tmp_path.glob(".suite.opref-staging-*"))  # what the killed run left ...
    vx.generate(out, cs.catalog(only=["seed_basic"]), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite"]  # ... the next run removes


# --- no zombies after crashes and hangs ----------------------------------------------------


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list child processes")
def test_crash_and_hang_leave_no_processes_behind(suite):
    before = set(_children(os.getpid()))
    res = validate(
        suite,
        [f"{FAKE}?mode=crash&only=seed_basic", f"{FAKE}?mode=hang&only=seed_stride2"],
        timeout=10,  # for the case that never answers; the others answer in milliseconds
        jobs=2,
    )
    verdicts = {(r["runtime"], r["case"]): r["verdict"] for r in res.records}
    assert verdicts[(f"{FAKE}?mode=crash&only=seed_basic", "seed_basic")] == "crashed"
    assert verdicts[(f"{FAKE}?mode=hang&only=seed_stride2", "seed_stride2")] == "timeout"
    assert sum(v == "pass" for v in verdicts.values()) == 4
    assert set(_children(os.getpid())) - before == set()
