"""opref/bugreport.py: one ready-to-file report per failure cluster (issue 25).

The repro scripts are judged by running them: in an environment without opref (the pinned
onnxruntime 1.16.3 of ``scripts/make-envs ort-1.16``), against the runtime they name, with their
expected output kept, corrupted, or replaced by the runtime's own answer. The models they build
are compared with the suite's own model.onnx files, read with onnx alone.
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import py_compile
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from opref.bugreport import (
    Links,
    html_paragraph,
    load_upstream,
    markdown_lines,
    published_links,
    report_link,
    write_bug_reports,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "ecosystem"
PUBLISHED = RESULTS / "bugs"
MAKE_ENVS_TIMEOUT = 900


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bugs")
    here = Path.cwd()
    os.chdir(ROOT)  # the re-run commands name the suite relative to the working directory
    try:
        write_bug_reports(RESULTS, out, suite=ROOT / "vectors", upstream=PUBLISHED / "upstream.json")
    finally:
        os.chdir(here)
    return out


def _reports(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/repro.py"))


def _ort_116() -> Path:
    """.venvs/ort-1.16's python (built here when missing), or skip (fail under CI) saying why."""
    try:
        proc = subprocess.run(
            [str(ROOT / "scripts" / "make-envs"), "ort-1.16"],
            capture_output=True,
            text=True,
            timeout=MAKE_ENVS_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        proc = None
    if proc is None or proc.returncode != 0:
        reason = "scripts/make-envs ort-1.16 failed" + ("" if proc is None else f": {proc.stderr[-300:]}")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return ROOT / ".venvs" / "ort-1.16" / "bin" / "python"


def _run(python: Path, script: Path) -> subprocess.CompletedProcess:
    # -I: no PYTHONPATH, no user site, and not the script's directory's neighbours either.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        [str(python), "-I", str(script)],
        capture_output=True,
        text=True,
        cwd=script.parent,
        env=env,
        timeout=300,
    )


def _module(script: Path):
    spec = importlib.util.spec_from_file_location(f"repro_{abs(hash(script))}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_cluster_has_a_report_and_the_index_lists_them(generated):
    clusters = json.loads((RESULTS / "report.json").read_text())["clusters"]
    reports = _reports(generated)
    assert len(reports) == len(clusters), (len(reports), len(clusters))
    index = (generated / "index.md").read_text()
    for d in reports:
        rel = d.relative_to(generated).as_posix()
        assert f"]({rel}/ISSUE.md)" in index, rel
        assert (d / "ISSUE.md").read_text().startswith("# ConvTranspose "), rel
    per_runtime = {}
    for c in clusters:
        per_runtime[c["runtime"]] = per_runtime.get(c["runtime"], 0) + 1
    assert sum(per_runtime.values()) == len(reports)


def test_the_published_reports_are_what_the_command_writes_byte_for_byte(generated):
    """Deterministic output, and results/ecosystem/bugs is up to date with the committed matrix."""
    for d in [*_reports(generated), generated]:
        rel = d.relative_to(generated)
        names = ["index.md"] if d == generated else ["repro.py", "ISSUE.md"]
        _, mismatch, errors = filecmp.cmpfiles(d, PUBLISHED / rel, names, shallow=False)
        assert not mismatch and not errors, (rel, mismatch, errors)
    assert {p.relative_to(PUBLISHED) for p in _reports(PUBLISHED)} == {
        p.relative_to(generated) for p in _reports(generated)
    }


def test_every_published_repro_compiles_and_every_report_has_an_upstream_status(tmp_path):
    reports = _reports(PUBLISHED)
    assert reports
    status = load_upstream(PUBLISHED / "upstream.json")
    for d in reports:
        py_compile.compile(str(d / "repro.py"), cfile=str(tmp_path / "x.pyc"), doraise=True)
        line = next(ln for ln in (d / "ISSUE.md").read_text().splitlines() if ln.startswith("- **Upstream**"))
        assert "not searched yet" not in line, d
    assert all(e["links"] for e in status.values() if e["status"] == "reported")


def test_each_repro_builds_the_suites_model_and_inputs(generated):
    """The inline model is the case's model.onnx: node, attributes, graph inputs/outputs, opset,
    IR version; the inline inputs are its input_N.pb."""
    for d in _reports(generated):
        repro = _module(d / "repro.py")
        case = re.search(r"opref's case `([^`]+)`", (d / "repro.py").read_text())[1]
        want = onnx.load(str(ROOT / "vectors" / "node" / case / "model.onnx"))
        got = repro.build_model()
        assert got.ir_version == want.ir_version, case
        assert list(got.opset_import) == list(want.opset_import), case
        assert list(got.graph.node) == list(want.graph.node), case
        assert list(got.graph.input) == list(want.graph.input), case
        assert list(got.graph.output) == list(want.graph.output), case
        files = sorted((ROOT / "vectors" / "node" / case / "test_data_set_0").glob("input_*.pb"))
        names = [i.name for i in want.graph.input]
        for name, f in zip(names, files, strict=True):
            t = onnx.TensorProto()
            t.ParseFromString(f.read_bytes())
            np.testing.assert_array_equal(
                repro.INPUTS[name], numpy_helper.to_array(t), err_msg=f"{case} {name}"
            )


def _patched(script: Path, out: Path, old: str, new: str) -> Path:
    text = script.read_text()
    assert old in text
    out.write_text(text.replace(old, new, 1))
    return out


def test_a_repro_runs_without_opref_and_exits_1_while_the_bug_is_there(generated, tmp_path):
    python = _ort_116()
    probe = subprocess.run(
        [str(python), "-I", "-c", "import opref"], capture_output=True, text=True, cwd=tmp_path
    )
    assert probe.returncode != 0 and "No module named 'opref'" in probe.stderr
    [report] = sorted(generated.glob("ort-cpu-1.16.3/*/"))
    script = tmp_path / "repro.py"
    script.write_text((report / "repro.py").read_text())
    proc = _run(python, script)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BUG:" in proc.stdout and "expected" in proc.stdout and "got" in proc.stdout

    # The runtime's own answer, computed by the script's own run() under onnxruntime 1.16.3 ...
    own = subprocess.run(
        [
            str(python),
            "-I",
            "-c",
            "import json, runpy; m = runpy.run_path('repro.py'); "
            "print(json.dumps(m['run'](m['build_model']().SerializeToString(), m['INPUTS']).tolist()))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert own.returncode == 0, own.stderr
    # ... written in as the expected output: the script now says "fixed".
    fixed = _patched(
        script,
        tmp_path / "fixed.py",
        "ANSWERS = [\n",
        f'ANSWERS = [("own", np.array({own.stdout.strip()}, dtype=np.float32), None)]\nOLD = [\n',
    )
    proc = _run(python, fixed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: the output is right" in proc.stdout


def _env_python(name: str) -> Path:
    """.venvs/<name>'s python (scripts/make-envs builds it), or skip: these runtimes are heavy."""
    python = ROOT / ".venvs" / name / "bin" / "python"
    if not python.exists():
        pytest.skip(f".venvs/{name} is not built (scripts/make-envs {name})")
    return python


def test_a_deployment_runtimes_repro_runs_without_opref(generated, tmp_path):
    """OpenCV's runner (W and B made constants, cv2.dnn as an application calls it), in
    .venvs/opencv, which has no opref: the repro exits 1 on OpenCV 5.0.0's ignored
    output_padding, and 0 with OpenCV's own answer written in as the expected output."""
    python = _env_python("opencv")
    probe = subprocess.run(
        [str(python), "-I", "-c", "import opref"], capture_output=True, text=True, cwd=tmp_path
    )
    assert probe.returncode != 0 and "No module named 'opref'" in probe.stderr
    [report] = [d for d in sorted(generated.glob("opencv-*/*/")) if "output-padding-ignored" in d.name]
    script = tmp_path / "repro.py"
    script.write_text((report / "repro.py").read_text())
    assert "import cv2" in script.read_text()
    assert not re.search(r"^\s*(import|from) opref", script.read_text(), re.MULTILINE)
    proc = _run(python, script)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "elements differ" in proc.stdout
    own = subprocess.run(
        [
            str(python),
            "-I",
            "-c",
            "import json, runpy; m = runpy.run_path('repro.py'); "
            "print(json.dumps(m['run'](m['build_model']().SerializeToString(), m['INPUTS']).tolist()))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert own.returncode == 0, own.stderr
    fixed = _patched(
        script,
        tmp_path / "fixed.py",
        "ANSWERS = [\n",
        f'ANSWERS = [("own", np.array({own.stdout.strip()}, dtype=np.float32), None)]\nOLD = [\n',
    )
    proc = _run(python, fixed)
    assert proc.returncode == 0 and "OK: the output is right" in proc.stdout, proc.stdout + proc.stderr


def test_an_mnn_repro_installs_nothing(generated, tmp_path):
    """MNN's telemetry module runs `pip install` through os.system on import: its repro, run in
    .venvs/mnn with a recording pip first on PATH, calls no pip and still shows the bug."""
    python = _env_python("mnn")
    stub, record = tmp_path / "bin", tmp_path / "pip-calls.txt"
    stub.mkdir()
    for name in ("pip", "pip3"):
        (stub / name).write_text('#!/bin/sh\necho "$0 $*" >> "$OPREF_PIP_RECORD"\nexit 1\n')
        (stub / name).chmod(0o755)
    [report] = [d for d in sorted(generated.glob("mnn-*/*/")) if "output-padding-ignored" in d.name]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{stub}{os.pathsep}{os.environ.get('PATH', '')}", OPREF_PIP_RECORD=str(record))
    proc = subprocess.run(
        [str(python), "-I", str(report / "repro.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1 and "elements differ" in proc.stdout, proc.stdout + proc.stderr
    assert not record.exists(), record.read_text()


def test_a_repro_with_a_corrupted_expected_output_exits_1(generated, tmp_path):
    """onnx.reference as the runtime (it is in opref's own environment): with the runtime's own
    answer written in as the expected output the repro exits 0; with one element of it off by one,
    1, naming the element."""
    [report] = [d for d in sorted(generated.glob("onnx-reference-*/*/")) if "pads-used" in d.name]
    module = _module(report / "repro.py")
    own = np.asarray(module.run(module.build_model().SerializeToString(), module.INPUTS))
    literal = np.array2string(own, separator=",", threshold=10**6).replace("\n", "")
    right = _patched(
        report / "repro.py",
        tmp_path / "right.py",
        "ANSWERS = [\n",
        f'ANSWERS = [("own", np.array({literal}, dtype=np.float32), None)]\nOLD = [\n',
    )
    assert _run(Path(sys.executable), right).returncode == 0
    own.flat[0] += 1
    literal = np.array2string(own, separator=",", threshold=10**6).replace("\n", "")
    wrong = _patched(
        report / "repro.py",
        tmp_path / "wrong.py",
        "ANSWERS = [\n",
        f'ANSWERS = [("own", np.array({literal}, dtype=np.float32), None)]\nOLD = [\n',
    )
    proc = _run(Path(sys.executable), wrong)
    assert proc.returncode == 1, proc.stdout
    assert "1 of" in proc.stdout and "elements differ" in proc.stdout


def test_must_reject_and_crash_semantics(generated, tmp_path):
    """A must-reject repro exits 1 when the runtime returns an output, 0 when it raises; any
    repro exits 1 when the runtime's process is killed by a signal."""
    [report] = [
        d for d in sorted(generated.glob("onnx-reference-*/*/")) if "no-attribute-validation" in d.name
    ]
    script = report / "repro.py"
    assert "MUST_REJECT = True" in script.read_text()
    assert _run(Path(sys.executable), script).returncode == 1  # onnx.reference 1.23.2 accepts it
    body = "return ReferenceEvaluator(onnx.load_from_string(model_bytes)).run(None, feeds)[0]"
    raises = _patched(script, tmp_path / "raises.py", body, 'raise ValueError("invalid dilations")')
    proc = _run(Path(sys.executable), raises)
    assert proc.returncode == 0 and "rejects the model" in proc.stdout, proc.stdout
    crash = _patched(
        script, tmp_path / "crash.py", body, "import signal; os.kill(os.getpid(), signal.SIGABRT)"
    )
    proc = _run(Path(sys.executable), crash)
    assert proc.returncode == 1 and "crashed" in proc.stdout, proc.stdout


def test_report_link_points_at_the_index_when_there_is_one(tmp_path):
    assert report_link(tmp_path / "bugs", tmp_path) is None
    (tmp_path / "bugs").mkdir()
    (tmp_path / "bugs" / "index.md").write_text("x")
    assert report_link(tmp_path / "bugs", tmp_path) == "bugs/index.md"
    assert published_links(tmp_path, {"clusters": [], "runtimes": []}) == Links("bugs/index.md", {})
    assert published_links(tmp_path / "elsewhere", {}) is None
    assert markdown_lines(None) == [] and html_paragraph(None) == ""


def test_the_committed_reports_clusters_link_to_their_published_reports():
    """Every cluster of results/ecosystem/report.json (as stored: keys sorted) links to an
    ISSUE.md whose title names its verdict and whose case list is the cluster's."""
    data = json.loads((RESULTS / "report.json").read_text())
    links = published_links(RESULTS, data)
    assert links is not None and links.index == "bugs/index.md"
    assert set(links.clusters) == {c["id"] for c in data["clusters"]}
    for c in data["clusters"]:
        text = (RESULTS / links.clusters[c["id"]]).read_text()
        assert f"{c['count']} failing cases (verdict `{c['verdict']}`)" in text, c["id"]
        assert all(f"`{case}`" in text for case in c["cases"]), c["id"]
    assert "[bugs/index.md](bugs/index.md)" in markdown_lines(links)[0]
    assert '<a href="bugs/index.md">' in html_paragraph(links)


# --- what a title says of the models: the catalog decides validity, not the phrase table -------------------


def _catalog_validity() -> dict[str, bool]:
    """{case name: whether the spec gives the model an output} from the case catalog itself."""
    from opref import cases as cs

    return {c.name: c.reject is None for c in cs.catalog()}


def _claims(title: str) -> tuple[bool, bool]:
    """(says the models are valid, says they are invalid): the verdict's words, before the cause
    (which is the runtime's or known-failures.txt's text)."""
    verdict = title.removeprefix("# ").split(":", 1)[0]
    says_valid = re.search(r"\b(a valid model|valid models)\b", verdict) is not None
    says_invalid = re.search(r"\b(an invalid model|invalid models|invalid ones)\b", verdict) is not None
    return says_valid, says_invalid


@pytest.fixture(scope="module")
def crashes(tmp_path_factory) -> tuple[Path, dict]:
    """(suite, results) of three fake runtimes that crash: on a valid case and two must-reject
    ones, on the must-reject ones only, on the valid one only."""
    from opref import cases as cs
    from opref import vectors as vx
    from opref.validate import validate

    suite = tmp_path_factory.mktemp("crashes") / "v"
    vx.generate(suite, cs.catalog(only=["seed_basic", "reject_negative_pads", "reject_group_zero"]), {})
    fake = "py:fake_runtimes:make?mode=crash"
    runtimes = [f"{fake}&only=reject_*", f"{fake}&only=seed_*", fake]
    return suite, validate(suite, runtimes, jobs=1, timeout=60).to_dict()


def test_crash_titles_follow_the_catalogs_validity(crashes, tmp_path):
    """A runtime that crashes on a valid case and on must-reject cases: the clusters' titles say
    "valid" exactly where the catalog gives the cases an output, and call a crash on a
    must-reject model a bug (it must reject it) without calling the model valid."""
    suite, result = crashes
    (tmp_path / "results.json").write_text(json.dumps(result))
    reports = write_bug_reports(tmp_path / "results.json", tmp_path / "bugs", suite=suite)
    valid = _catalog_validity()
    members = {}  # runtime -> its crashed cases (one cluster each: the same crash message)
    for rec in result["records"]:
        if rec["verdict"] == "crashed":
            members.setdefault(rec["runtime"], []).append(rec["case"])
    assert sorted(r.runtime for r in reports) == sorted(members)
    seen = set()
    for r in reports:
        kinds = {valid[c] for c in members[r.runtime]}
        says_valid, says_invalid = _claims(r.title)
        assert says_valid == (True in kinds), (r.title, members[r.runtime])
        assert says_invalid == (False in kinds), (r.title, members[r.runtime])
        text = (tmp_path / "bugs" / r.directory / "ISSUE.md").read_text()
        if False in kinds:
            assert "instead of rejecting" in r.title
            assert "the bug is that the runtime does not reject them with an error but dies on them" in text
        if valid[r.case]:  # a crash on a valid case: its expected shape, from the suite's output file
            t = onnx.TensorProto()
            t.ParseFromString((suite / "node" / r.case / "test_data_set_0" / "output_0.pb").read_bytes())
            assert f"| expected | output of shape {list(t.dims)}, float32 |" in text
        seen.add(frozenset(kinds))
    # a cluster of invalid models only, one of valid ones only, one mixed
    assert seen == {frozenset({False}), frozenset({True}), frozenset({True, False})}, seen


def test_the_committed_titles_follow_the_catalogs_validity():
    """Every published report's title: "valid" only where the catalog gives all or some of the
    cluster's cases an output, "invalid" only where it makes all or some of them must-reject."""
    data = json.loads((RESULTS / "report.json").read_text())
    links = published_links(RESULTS, data)
    valid = _catalog_validity()
    assert links is not None
    crashes_on_invalid = 0
    for c in data["clusters"]:
        title = (RESULTS / links.clusters[c["id"]]).read_text().splitlines()[0]
        kinds = {valid[case] for case in c["cases"]}
        says_valid, says_invalid = _claims(title)
        assert says_valid == (True in kinds and c["verdict"] in ("error", "crashed", "timeout")), title
        assert says_invalid == (False in kinds), title
        crashes_on_invalid += c["verdict"] == "crashed" and kinds == {False}
    assert crashes_on_invalid >= 2  # tract's panics on wrong-length attributes, MNN's SIGFPE, ...


# --- the report links each cluster to its published bug report ------------------------------------------


def test_the_report_links_each_cluster_to_its_bug_report_and_keeps_them(crashes, tmp_path):
    """write_report, bugreport into OUT/bugs, write_report again (what scripts/ecosystem does):
    the rewritten report keeps bugs/ (with its hand-kept upstream.json) and each cluster's row
    links its ISSUE.md and repro.py, in index.md and index.html; links that resolve."""
    from opref.report import write_report

    suite, result = crashes
    out = tmp_path / "report"
    write_report([result], out)
    assert "bug report" not in (out / "index.md").read_text()  # nothing published yet: no column
    (out / "bugs").mkdir()
    (out / "bugs" / "upstream.json").write_text("{}\n")
    reports = write_bug_reports(out, out / "bugs", suite=suite)
    write_report([result], out)
    assert (out / "bugs" / "upstream.json").read_text() == "{}\n"
    md, page = (out / "index.md").read_text(), (out / "index.html").read_text()
    data = json.loads((out / "report.json").read_text())
    assert len(reports) == len(data["clusters"]) == 3
    for r in reports:
        issue, repro = f"bugs/{r.directory}/ISSUE.md", f"bugs/{r.directory}/repro.py"
        assert (out / issue).is_file() and (out / repro).is_file()
        row = next(ln for ln in md.splitlines() if f"]({issue})" in ln)
        assert f"[repro.py]({repro})" in row and "crashed" in row
        assert f'<a href="{issue}">ISSUE.md</a>' in page and f'<a href="{repro}">repro.py</a>' in page
    assert "[bugs/index.md](bugs/index.md)" in md and '<a href="bugs/index.md">' in page


def test_outside_text_in_a_repro_stays_text(crashes, tmp_path):
    """A runtime's name, version and message reach repro.py's docstring; a results file from
    elsewhere may say anything there. Nothing of it may become code that `python repro.py` runs."""
    import ast

    suite, result = crashes
    hostile = '1.0"""\nopen("PWNED", "w").write("x")\n"""\\'
    result = json.loads(json.dumps(result))
    for rt in result["runtimes"]:
        rt["version"], rt["name"] = hostile, 'fake\n# """\nimport os'
    for rec in result["records"]:
        rec["message"] = 'boom """\nopen("PWNED", "w")\n"""'
    (tmp_path / "results.json").write_text(json.dumps(result))
    reports = write_bug_reports(tmp_path / "results.json", tmp_path / "bugs", suite=suite)
    assert reports
    for r in reports:
        tree = ast.parse((tmp_path / "bugs" / r.directory / "repro.py").read_text())
        doc = ast.get_docstring(tree)
        assert "PWNED" in doc or "1.0" in doc, doc
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "open"]
        assert not calls, r.directory
        imports = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert "os" in imports and imports.count("os") == 1, imports
