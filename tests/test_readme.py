"""The README tells the truth about the repository: the paths it names exist in a clone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_repository_path_the_readme_names_exists():
    named = set(re.findall(r"`((?:opref|scripts|tests|results|vectors|\.ci)/[A-Za-z0-9_./-]+)`", README))
    named |= set(re.findall(r"\]\(((?:opref|scripts|tests|results)/[A-Za-z0-9_./-]+)\)", README))
    missing = sorted(p for p in named if "*" not in p and not (ROOT / p.rstrip("/")).exists())
    assert named and not missing, missing


def test_nothing_points_outside_the_clone():
    assert "shared/" not in README and "closing note" not in README


def test_the_known_failures_header_names_a_readme_section():
    header = (ROOT / "known-failures.txt").read_text().splitlines()[0]
    section = re.search(r'"([^"]+)"', header).group(1)
    assert re.search(rf"^#+ {re.escape(section)}$", README, re.M), section


def test_the_ecosystem_matrix_is_the_committed_results():
    """The README's runtime table says what results/ecosystem/report.json says, row by row:
    every runtime of the report, in its order, with its count of each verdict the table shows."""
    import json

    report = json.loads((ROOT / "results" / "ecosystem" / "report.json").read_text())
    block = README.split("<!-- ecosystem-matrix:", 1)[1].split("<!-- ecosystem-matrix: end -->", 1)[0]
    rows = [
        [c.strip() for c in ln.strip().strip("|").split("|")]
        for ln in block.splitlines()
        if ln.startswith("|")
    ]
    header, body = rows[0], rows[2:]
    assert header[0] == "runtime"
    assert len(body) == len(report["runtimes"])
    for row, runtime in zip(body, report["runtimes"], strict=True):
        counts = report["matrix"][runtime["spec"]]
        assert runtime["version"].split("-", 1)[0] in row[0], (row[0], runtime)
        assert row[0].startswith(runtime["name"]), (row[0], runtime)
        for verdict, cell in zip(header[1:], row[1:], strict=True):
            assert int(cell or 0) == counts.get(verdict, 0), (runtime["spec"], verdict)
        hidden = {v for v, n in counts.items() if n and v not in header}
        assert not hidden, (runtime["spec"], hidden)
    run = (ROOT / "results" / "ecosystem" / "run.txt").read_text()
    date = next(ln.split(": ", 1)[1][:10] for ln in run.splitlines() if ln.startswith("date: "))
    assert date in block.splitlines()[1]


def test_the_checker_figures_are_the_committed_suite():
    """The must-reject count and what onnx.checker refuses, from vectors/manifest.json and
    vectors/checker.json (the static 'inputs' form of each case)."""
    import json

    cases = {c["name"]: c for c in json.loads((ROOT / "vectors/manifest.json").read_text())["cases"]}
    checker = json.loads((ROOT / "vectors/checker.json").read_text())
    static = [c for c in cases.values() if c.get("variant", "inputs") == "inputs"]
    reject = [c for c in static if c["expect"] == "reject"]
    refused = [c for c in reject if checker["cases"][c["name"]].startswith("refused")]
    ambiguous = [c for c in static if c["ambiguities"] and c["expect"] != "reject"]
    amb_refused = [c for c in ambiguous if checker["cases"][c["name"]].startswith("refused")]
    assert f"`reject_*` ({len(reject)} must-reject models)" in README
    text = " ".join(README.split())
    assert (
        f"onnx {checker['onnx_version']} refuses {len(amb_refused)} ambiguous models" in text
        and f"{len(refused)} of the {len(reject)} must-reject models (it accepts the other "
        f"{len(reject) - len(refused)})"
        in text
    )


def test_the_readme_examples_write_nowhere_committed():
    """A validate, report or fuzz example run as written in this repository must not write into the
    committed results/ or vectors/ (the CI recipe runs in a runtime project's own checkout)."""
    text = re.sub(r"<!-- ci-recipe -->.*?<!-- /ci-recipe -->", "", README, flags=re.S)
    lines = [line for line in text.splitlines() if re.match(r"\s*opref (validate|report|fuzz|diff)", line)]
    assert len(lines) >= 3
    for line in lines:
        for out in re.findall(r"--out (\S+)", line):
            assert out.strip("'\"").split("/")[0] not in ("results", "vectors", "."), line


def test_fuzz_help_and_readme_say_what_variants_do():
    import subprocess
    import sys

    helped = subprocess.run([sys.executable, "-m", "opref", "fuzz", "--help"], capture_output=True, text=True)
    text = " ".join(helped.stdout.split()) + " " + " ".join(README.split())
    assert "exist yet" not in text and "until model variants exist" not in text


def test_the_published_reproduce_commands_work_from_the_report_folder():
    """Every reproduce command of results/ecosystem names, from that folder, the committed suite
    and an interpreter inside the clone's .venvs/ (the environments scripts/make-envs builds)."""
    import json
    import os
    import shlex

    here = ROOT / "results/ecosystem"
    report = json.loads((here / "report.json").read_text())
    commands = [r["reproduce"] for r in report["records"]]
    assert len(commands) == len(report["records"]) > 1000
    interpreters = 0
    for command in commands:
        words = shlex.split(command)
        assert words[:2] == ["opref", "validate"], command
        assert (here / words[2]).resolve() == ROOT / "vectors", command
        spec = words[words.index("--runtime") + 1]
        _, sep, python = spec.rpartition("@")
        if sep:
            interpreters += 1
            assert not Path(python).is_absolute(), command
            assert Path(os.path.normpath(here / python)).is_relative_to(ROOT / ".venvs"), command
    assert interpreters > 1000
    shown = (here / "index.md").read_text()
    assert "@.venvs/" not in re.sub(
        r"@\.\./\.\./\.venvs/", "", "".join(re.findall(r"`opref validate[^`]*`", shown))
    )


def test_the_model_variant_figures_are_the_committed_results():
    """The per-variant table and the figures around it, from results/variants/report.json."""
    import json

    report = json.loads((ROOT / "results/variants/report.json").read_text())
    text = " ".join(README.split())
    block = README[README.index("| runtime | variant | pass |") :].split("\n\n")[0].splitlines()
    header = [c.strip() for c in block[0].strip("|").split("|")]
    shown = {}
    for line in block[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        shown[(cells[0], cells[1])] = dict(zip(header[2:], cells[2:], strict=True))
    want = {
        (rt, v): {col: str(counts[col]) if counts.get(col) else "" for col in header[2:]}
        for rt, per_variant in report["variant_matrix"].items()
        for v, counts in per_variant.items()
    }
    assert shown == want
    # every verdict of the report is a column of the table (none left out)
    assert {v for per in report["variant_matrix"].values() for c in per.values() for v in c} <= set(header)

    changes = report["variant_changes"]
    forms = {"pad-fused", "bn-folded", "qdq"}  # the graphs around ConvTranspose

    def changed(runtime: str, among) -> list[str]:
        return [
            case
            for case, per in changes[runtime].items()
            if len({v for form, v in per.items() if form in among}) > 1
        ]

    one_node = {"inputs", "constant-weights", "dynamic-batch", "dynamic-spatial"}
    assert not changed("ort:cpu", one_node) and not changed("onnx-reference", one_node)
    assert f"on OpenVINO {len(changed('openvino', one_node))} cases change" in text
    runtimes = ("ort:cpu", "onnx-reference", "openvino")
    by_form = {rt: {f: len(changed(rt, {"inputs", f})) for f in forms} for rt in runtimes}
    around = {rt: len({c for f in forms for c in changed(rt, {"inputs", f})}) for rt in by_form}
    assert around["ort:cpu"] == 0
    openvino = by_form["openvino"]
    assert f"change {around['openvino']} cases on OpenVINO ({openvino['pad-fused']} `pad-fused`" in text
    assert f"{by_form['openvino']['qdq']} `qdq` fail-values" in text
    assert f"and {around['onnx-reference']} on onnx.reference (`bn-folded` fail-values)" in text
    assert by_form["onnx-reference"]["bn-folded"] == around["onnx-reference"]
    # "constant weights alone change none": no case differs between inputs and constant-weights
    assert all(
        c.get("inputs") == c.get("constant-weights")
        for c in changes["openvino"].values()
        if "constant-weights" in c
    )

    by_case: dict[str, dict[str, str]] = {}
    for r in report["records"]:
        if r["runtime"] == "openvino":
            base, sep, variant = r["case"].rpartition("__")
            by_case.setdefault(base if sep else r["case"], {})[variant if sep else "inputs"] = r["verdict"]
    failing = {"fail-shape", "fail-values", "error", "accepted-invalid", "crashed", "timeout"}
    symbolic = [c for c in by_case.values() if "dynamic-batch" in c]
    wrong = [c for c in symbolic if c["dynamic-batch"] in failing and c["inputs"] not in failing]
    assert f"OpenVINO 2026.4 gets {len(wrong)} of the {len(symbolic)} output cases that it gets right" in text

    readings = report["variant_ambiguities"]["same-with-output-padding"]["openvino"]
    assert readings["inputs"]["in-total"] == 32 and readings["dynamic-batch"]["added"] == 8
    assert readings["dynamic-batch"]["no documented reading"] == 28
    assert "`in-total` (32 cases) to `added` (8; 28 match no documented reading)" in text

    layers = [r for r in report["records"] if r["case"].startswith("layer_")]
    one_node_layers = [r for r in layers if r["case"].rpartition("__")[2] not in forms]
    assert {r["verdict"] for r in one_node_layers} == {"pass"}
    assert f"all {len(one_node_layers) // 3} committed `layer_*` cases" in text
    failing_layers = {
        f: sum(1 for r in layers if r["case"].endswith(f"__{f}") and r["verdict"] != "pass") for f in forms
    }
    assert failing_layers["bn-folded"] == 0
    assert f"OpenVINO fails {failing_layers['pad-fused']} of them in `pad-fused`" in text
    assert f"and {failing_layers['qdq']} in `qdq`" in text
    # 8 real layers in 4 one-node forms are 32 case directories, each run on 3 runtimes
    assert len({r["case"] for r in one_node_layers}) == 32 and len(one_node_layers) == 32 * 3
    assert "all 32 committed `layer_*` cases pass on all three" in text


def test_the_forms_table_is_the_committed_results():
    """The per-form verdicts of the forms section, for the three runtimes results/variants ran."""
    import json

    matrix = json.loads((ROOT / "results/variants/report.json").read_text())["variant_matrix"]
    block = README[README.index("| runtime | `pad-fused` (") :].split("\n\n")[0].splitlines()
    forms = [c.strip().split("`")[1] for c in block[0].strip("|").split("|")[1:]]
    checked = 0
    for line in block[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        runtime = cells[0].split(" (")[0]
        if runtime not in matrix:
            continue  # ort:openvino: measured by the main job, not in results/variants
        for form, cell in zip(forms, cells[1:], strict=True):
            counts = {v: n for v, n in matrix[runtime][form].items() if n}
            shown = {part.split(" ", 1)[1]: int(part.split(" ", 1)[0]) for part in cell.split(", ")}
            assert shown == counts, (runtime, form)
            checked += 1
    assert checked == 9
