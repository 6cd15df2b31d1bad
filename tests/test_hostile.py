"""Hostile suites (issue 12, items 1-6 and 12-14): every one ends as a named per-case problem or a
clear suite error; nothing outside the suite is read, nothing hangs, no result is lost."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from opref import cases as cs
from opref import codec as cx
from opref import suite as sx
from opref import vectors as vx
from opref.cli import main as cli_main
from opref.validate import Validation, validate

FAKE = "py:fake_runtimes:make"
CASES = ["seed_basic", "seed_stride2", "seed_two_channels", "reject_negative_pads"]


@pytest.fixture
def suite(tmp_path):
    out = tmp_path / "v"
    vx.generate(out, cs.catalog(only=CASES), {})
    return out


def manifest(suite: Path) -> dict:
    return json.loads((suite / "manifest.json").read_text())


def save(suite: Path, data: dict) -> None:
    (suite / "manifest.json").write_text(json.dumps(data))


def record(data: dict, name: str) -> dict:
    return next(r for r in data["cases"] if r["name"] == name)


def relist(suite: Path, case: str, rel: str, content: bytes) -> None:
    """Write a file into a case and list it in the manifest with its true sha256."""
    (suite / "node" / case / rel).write_bytes(content)
    data = manifest(suite)
    record(data, case)["files"][rel] = cx.sha256(content)
    save(suite, data)


def run(suite: Path):
    res = validate(suite, [FAKE], timeout=20)
    return res, {r["case"]: r["verdict"] for r in res.records}


# --- 1. only the listed files, regular files only -------------------------------------------------


def test_unlisted_input_and_output_files_are_never_read(suite):
    d = suite / "node"
    # A third input in a case without bias, and an output in a must-reject case: neither listed.
    (d / "seed_basic/test_data_set_0/input_2.pb").write_bytes(b"\xff" * 10)
    (d / "reject_negative_pads/test_data_set_0/output_0.pb").write_bytes(b"\xff" * 10)
    res, verdicts = run(suite)
    assert verdicts["seed_basic"] == "pass" and verdicts["reject_negative_pads"] == "rejected"
    assert sorted(res.suite_problems) == [
        "node/reject_negative_pads/test_data_set_0/output_0.pb: not in the manifest",
        "node/seed_basic/test_data_set_0/input_2.pb: not in the manifest",
    ]


def test_a_fifo_in_place_of_a_listed_file_is_refused_without_waiting(suite):
    path = suite / "node/seed_basic/test_data_set_0/input_1.pb"
    path.unlink()
    os.mkfifo(path)
    res, verdicts = run(suite)
    assert "input_1.pb: not a regular file" in res.case_problems["seed_basic"]
    assert "seed_basic" not in verdicts and verdicts["seed_stride2"] == "pass"


def test_a_link_to_a_device_is_refused(suite):
    path = suite / "node/seed_basic/model.onnx"
    path.unlink()
    path.symlink_to("/dev/zero")
    res, _ = run(suite)
    assert "model.onnx: is a symbolic link" in res.case_problems["seed_basic"]


def test_a_case_directory_that_is_a_link_out_of_the_suite_is_refused(suite, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (suite / "node/seed_basic").rename(elsewhere)
    (suite / "node/seed_basic").symlink_to(elsewhere)
    res, _ = run(suite)
    assert "is a symbolic link" in res.case_problems["seed_basic"]


# --- 2. the manifest itself -----------------------------------------------------------------------


def test_a_manifest_that_is_a_link_is_refused(suite, tmp_path, capsys):
    real = tmp_path / "real.json"
    (suite / "manifest.json").rename(real)
    (suite / "manifest.json").symlink_to(real)
    assert cli_main(["validate", str(suite), "--runtime", FAKE, "--out", str(tmp_path / "r")]) == 2
    assert "manifest.json: is a symbolic link" in capsys.readouterr().err


def test_a_manifest_that_is_a_fifo_does_not_hang(suite, tmp_path, capsys):
    (suite / "manifest.json").unlink()
    os.mkfifo(suite / "manifest.json")
    assert cli_main(["validate", str(suite), "--runtime", FAKE, "--out", str(tmp_path / "r")]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_an_oversized_manifest_is_refused_before_reading(suite, monkeypatch):
    monkeypatch.setattr(sx, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(cx.SuiteError, match="over the 100-byte limit"):
        validate(suite, [FAKE])


# --- 3. a case model must be what opref writes ----------------------------------------------------


def _with_subgraph_external_data(model: onnx.ModelProto) -> onnx.ModelProto:
    """An If node whose branch holds an initializer stored in an external file."""
    t = helper.make_tensor("secret", onnx.TensorProto.FLOAT, [1], [0.0])
    t.ClearField("float_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../../../../etc/hostname")
    out = helper.make_tensor_value_info("Z", onnx.TensorProto.FLOAT, [1])
    branch = helper.make_graph([helper.make_node("Identity", ["secret"], ["Z"])], "b", [], [out], [t])
    cond = helper.make_tensor("cond", onnx.TensorProto.BOOL, [], [True])
    model.graph.initializer.append(cond)
    model.graph.node.append(helper.make_node("If", ["cond"], ["Z"], then_branch=branch, else_branch=branch))
    model.graph.output.append(out)
    return model


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_with_subgraph_external_data, "has 2 nodes"),
        (lambda m: (m.graph.node[0].__setattr__("op_type", "Conv"), m)[1], "not ConvTranspose"),
        (lambda m: (m.functions.add().__setattr__("name", "f"), m)[1], "holds functions"),
        (lambda m: (m.opset_import.add(domain="com.x", version=1), m)[1], "imports opsets"),
        (lambda m: (m.graph.node[0].attribute.append(helper.make_attribute("group", 2)), m)[1], "attributes"),
    ],
)
def test_a_model_that_is_not_one_convtranspose_node_is_refused(suite, edit, words):
    path = suite / "node/seed_basic/model.onnx"
    model = edit(onnx.load_from_string(path.read_bytes()))
    relist(suite, "seed_basic", "model.onnx", model.SerializeToString())
    res, verdicts = run(suite)
    assert words in res.case_problems["seed_basic"] and "seed_basic" not in verdicts
    assert verdicts["seed_stride2"] == "pass"


def test_the_model_must_agree_with_its_record(suite):
    data = manifest(suite)
    record(data, "seed_stride2")["dtype"] = "float16"  # a hand edit: the model says float32
    record(data, "seed_two_channels")["attributes"] = {"strides": [1, 1]}
    save(suite, data)
    res, _ = run(suite)
    assert "element type" in res.case_problems["seed_stride2"]
    assert "differ from the manifest's" in res.case_problems["seed_two_channels"]


# --- 4. a bad record is that case's problem --------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r: r.pop("dtype"), "dtype must be a string"),
        (lambda r: r["attributes"].update(bogus=1), "unknown attribute 'bogus'"),
        (lambda r: r["attributes"].update(strides="2"), "attributes.strides must be a list"),
        (lambda r: r.update(ambiguities=["no-such-ambiguity"]), "are not ids from"),
        (lambda r: r["files"].pop("test_data_set_0/output_0.pb"), "must list test_data_set_0/output_0.pb"),
        (lambda r: r["attributes"].update(strides=[2**40, 2**40]), "is not the node's"),
        (lambda r: r.update(opset="22"), "opset must be an integer"),
        (lambda r: r["tolerance"].update(max_terms=10**6), "tolerance.max_terms"),
        (lambda r: r.update(ambiguities=["negative-total-padding"]), "differ from the node's"),
    ],
)
def test_a_bad_record_refuses_its_case_and_the_run_goes_on(suite, change, words, tmp_path):
    data = manifest(suite)
    change(record(data, "seed_basic"))
    save(suite, data)
    res, verdicts = run(suite)
    assert words in res.case_problems["seed_basic"], res.case_problems
    assert verdicts == {
        "seed_stride2": "pass",
        "seed_two_channels": "pass",
        "reject_negative_pads": "rejected",
    }
    assert res.exit_code == 1
    res.write(tmp_path / "r")  # and the results are written
    assert json.loads((tmp_path / "r/results.json").read_text())["case_problems"]


def test_a_hand_edited_case_count_or_format_is_noticed(suite):
    data = manifest(suite)
    data["case_count"] += 1
    save(suite, data)
    with pytest.raises(cx.SuiteError, match="case_count"):
        validate(suite, [FAKE])
    data["case_count"] -= 1
    data["format"] = 2
    save(suite, data)
    with pytest.raises(cx.SuiteError, match="manifest format 2"):
        validate(suite, [FAKE])


# --- 5. names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["seed_stride2", "bad name", "a/b", "..", "x\x1b[31m", "<script>", "é"])
def test_case_names_are_checked_at_load(suite, name, tmp_path, capsys):
    data = manifest(suite)
    record(data, "seed_basic")["name"] = name
    save(suite, data)
    assert cli_main(["validate", str(suite), "--runtime", FAKE, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "used twice" in err if name == "seed_stride2" else "[A-Za-z0-9_.-]" in err


def test_a_manifest_that_is_not_utf8_is_refused(suite):
    (suite / "manifest.json").write_bytes(b'{"generator": "opref", "cases": ["\xff"]}')
    with pytest.raises(cx.SuiteError, match="not UTF-8"):
        validate(suite, [FAKE])


# --- 6. bounded memory ------------------------------------------------------------------------------


def test_cases_are_read_as_workers_need_them(monkeypatch, tmp_path):
    out = tmp_path / "v"
    vx.generate(out, cs.catalog(only=["seed_*", "rank1_*float32*"]), {})
    live, peak = [0], [0]
    real = sx.read_case

    def counting(*args, **kwargs):
        case = real(*args, **kwargs)
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        return case

    import opref.judge
    import opref.validate

    real_judge = opref.judge.judge

    def judged(case, answer, *rest, **kw):
        live[0] -= 1
        return real_judge(case, answer, *rest, **kw)

    monkeypatch.setattr(opref.validate, "read_case", counting)
    monkeypatch.setattr(opref.validate, "judge", judged)
    res = validate(out, [FAKE], jobs=2)
    assert len(res.records) > 10 and peak[0] <= 5, peak  # 2 sending, 2 queued, 1 being judged


# --- 12. writers --------------------------------------------------------------------------------------


def test_concurrent_writers_never_collide(tmp_path):
    errors = []

    def write(k):
        try:
            for _ in range(50):
                Validation(f"suite{k}").write(tmp_path)
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and json.loads((tmp_path / "results.json").read_text())["suite"].startswith("suite")
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


# --- 13. generate never deletes a user's file ----------------------------------------------------------


def test_generate_refuses_to_replace_a_suite_holding_foreign_files(suite, capsys):
    (suite / "results").mkdir()
    (suite / "results/results.json").write_text("{}")
    (suite / "node/seed_basic/notes.txt").write_text("mine")
    code = cli_main(["generate", "--out", str(suite), "--only", "seed_basic"])
    assert code == 2 and "holds files opref did not write" in capsys.readouterr().err
    assert (suite / "results/results.json").read_text() == "{}"
    assert (suite / "node/seed_basic/notes.txt").read_text() == "mine"
    (suite / "node/seed_basic/notes.txt").unlink()
    (suite / "results/results.json").unlink()
    (suite / "results").rmdir()
    assert cli_main(["generate", "--out", str(suite), "--only", "seed_basic"]) == 0


# --- 14. numbers on the command line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "v", "--out", "o", "--timeout", "0"],
        ["validate", "v", "--out", "o", "--timeout", "-1"],
        ["validate", "v", "--out", "o", "--timeout", "inf"],
        ["validate", "v", "--out", "o", "--timeout", "nan"],
        ["validate", "v", "--out", "o", "--jobs", "0"],
        ["validate", "v", "--out", "o", "--jobs", "-3"],
        ["generate", "--out", "o", "--random", "-5"],
        # issue 22: too large is nonsense too (1e308 s was an OverflowError in the worker's deadline)
        ["validate", "v", "--out", "o", "--timeout", "1e308"],
        ["validate", "v", "--out", "o", "--timeout", "604801"],
        ["validate", "v", "--out", "o", "--start-timeout", "1e308"],
        ["validate", "v", "--out", "o", "--start-timeout", "nan"],
        ["validate", "v", "--out", "o", "--start-timeout", "-1"],
        ["validate", "v", "--out", "o", "--jobs", "1000000000"],
        ["validate", "v", "--out", "o", "--jobs", "10**9"],
        ["generate", "--out", "o", "--random", "1000000000"],
        ["generate", "--out", "o", "--random", "1", "--seed", "-1"],
        ["generate", "--out", "o", "--random", "1", "--seed", "4294967296"],
        ["fuzz", "--runtime", "ort:cpu", "--out", "o", "--examples", "0"],
        ["fuzz", "--runtime", "ort:cpu", "--out", "o", "--examples", "100000000000"],
        ["fuzz", "--runtime", "ort:cpu", "--out", "o", "--max-elements", "0"],
        ["fuzz", "--runtime", "ort:cpu", "--out", "o", "--max-elements", "1000000000000"],
        ["fuzz", "--runtime", "ort:cpu", "--out", "o", "--time-budget", "1e308"],
        ["fuzz", "--runtime", "ort:cpu", "--out", "o", "--time-budget", "nan"],
        ["fuzz", "--runtime", "ort:cpu", "--out", "o", "--timeout", "inf"],
    ],
)
def test_nonsense_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "expected a number of seconds > 0 and <= 604800" in err or "expected a whole number from" in err


@pytest.mark.parametrize(
    "keywords",
    [
        {"timeout": 1e308},
        {"timeout": float("nan")},
        {"timeout": -1},
        {"timeout": 0},
        {"start_timeout": float("inf")},
        {"start_timeout": 10**400},
        {"jobs": 0},
        {"jobs": 10**9},
        {"jobs": 2.5},
        {"jobs": True},
    ],
)
def test_the_library_refuses_the_numbers_the_cli_refuses(suite, keywords, tmp_path):
    from opref.fuzz import FuzzSettings

    with pytest.raises(ValueError, match=next(iter(keywords))):
        validate(suite, [FAKE], **keywords)
    if "jobs" not in keywords:
        with pytest.raises(ValueError, match=next(iter(keywords))):
            FuzzSettings(**keywords)


@pytest.mark.parametrize(
    "keywords",
    [{"examples": 0}, {"examples": 10**12}, {"max_elements": 0}, {"time_budget": float("nan")}],
)
def test_fuzz_settings_refuse_nonsense(keywords):
    from opref.fuzz import FuzzSettings

    with pytest.raises(ValueError, match=next(iter(keywords))):
        FuzzSettings(**keywords)


@pytest.mark.parametrize("keywords", [{"random": -1}, {"random": 10**9}, {"random": 1, "seed": -1}])
def test_catalog_refuses_nonsense_counts_as_a_spec_error(keywords):
    from opref.errors import SpecError

    with pytest.raises(SpecError):
        cs.catalog(**keywords)


def test_out_that_is_a_file_is_a_usage_error(suite, tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert cli_main(["validate", str(suite), "--runtime", FAKE, "--out", str(target)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_the_parent_sends_the_verified_bytes_not_a_later_file(suite, monkeypatch):
    """A file swapped after verification is not what the runtime gets (nor blamed on it)."""
    import opref.validate

    real = sx.read_case
    swapped = []

    def swap_then_read(s, rec, *a, **k):
        if rec.name == "seed_basic" and not swapped:
            path = suite / "node/seed_basic/test_data_set_0/input_0.pb"
            x = cx.read_tensor(path.read_bytes())
            path.write_bytes(cx.tensor_proto(np.zeros_like(x), "X").SerializeToString())
            swapped.append(1)
        return real(s, rec, *a, **k)

    monkeypatch.setattr(opref.validate, "read_case", swap_then_read)
    res, verdicts = run(suite)
    assert "seed_basic" not in verdicts
    assert "changed during the run" in res.case_problems["seed_basic"]
    assert "sha256 differs" in res.case_problems["seed_basic"]
