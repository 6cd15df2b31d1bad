"""The report: rendered from real validation results that hold every verdict kind."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from opref import cases as cs
from opref import vectors as vx
from opref.report import aggregate, junit, markdown, write_report
from opref.validate import validate
from opref.verdicts import NORMATIVE_FAILURES, Verdict

ROOT = Path(__file__).resolve().parent.parent
F = "py:fake_runtimes:make"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Validation results in which every verdict occurs at least once."""
    suite = tmp_path_factory.mktemp("s") / "v"
    picks = [
        "seed_basic",
        "seed_stride2",
        "amb_neg_total_same_upper_float32_exact",
        "reject_negative_pads",
        "rank1_s2_float32_random",
    ]
    vx.generate(suite, cs.catalog(only=picks), {})
    runtimes = [
        f"{F}?mode=good",
        f"{F}?mode=shift-pad&only=seed_basic",
        f"{F}?mode=wrong-shape&only=seed_stride2",
        f"{F}?mode=error&only=rank1_*",
        f"{F}?mode=unsupported",
        f"{F}?mode=fallback",
        f"{F}?mode=accept-all",
        f"{F}?mode=crash&only=seed_basic",
        f"{F}?mode=hang&only=seed_stride2",
        f"{F}?reading.negative-total-padding=clamp",
        f"{F}?mode=unavailable",
        "ort:cpu",
    ]
    # The hanging runtime never answers; the others answer in milliseconds, far inside 10 s.
    return validate(suite, runtimes, timeout=10, jobs=2).to_dict()


def test_fixture_holds_every_verdict(results):
    assert {r["verdict"] for r in results["records"]} == {v.value for v in Verdict}


def test_markdown_has_matrix_failures_and_ambiguity_table(results):
    md = markdown(aggregate([results]))
    summary = md[md.index("## Summary") :]  # the verdict-per-runtime table comes first
    header = next(line for line in summary.splitlines() if line.startswith("| runtime | version |"))
    for v in Verdict:
        assert f" {v.value} " in header, v
    assert "**unavailable**: libfake.so" in md
    assert "## Normative failures" in md and "opref validate " in md and "--only seed_basic" in md
    # The seed output row [0, 0, 1] shifted left by one: first difference at column 1.
    assert "at [0, 0, 0, 1]: expected 0.0, got 1.0" in md
    assert "### negative-total-padding" in md
    assert "| runtime | **floor** | trunc | clamp | reject | no documented reading |" in md
    assert f"`{F}?reading.negative-total-padding=clamp` follows `clamp` for negative-total-padding" in md
    assert "## Unsupported" in md and "float32 opset 22" in md
    assert "## Placement" in md and "fake" in md


def test_build_matrix_lists_cases_where_runtimes_disagree(results):
    data = aggregate([results]).data
    row = data["build_matrix"]["seed_basic"]
    assert row[f"{F}?mode=good"] == "pass" and row[f"{F}?mode=crash&only=seed_basic"] == "crashed"
    assert (
        data["build_matrix"]["amb_neg_total_same_upper_float32_exact"][
            f"{F}?reading.negative-total-padding=clamp"
        ]
        == "divergence: clamp"
    )
    assert "## Where the runtimes disagree" in markdown(aggregate([results]))


def test_report_json_counts_match_the_records(results):
    data = aggregate([results]).data
    total = sum(sum(row.values()) for row in data["matrix"].values())
    assert total == len(results["records"])
    assert len(data["failures"]) == sum(
        Verdict(r["verdict"]) in NORMATIVE_FAILURES for r in results["records"]
    )
    assert data["ambiguities"]["negative-total-padding"][f"{F}?reading.negative-total-padding=clamp"] == {
        "clamp": 1
    }


def test_junit_parses_with_one_testcase_per_result(results):
    root = ET.fromstring(junit(aggregate([results])))
    cases = root.findall(".//testcase")
    assert len(cases) == len(results["records"])
    failures = root.findall(".//testcase/failure")
    assert len(failures) == sum(Verdict(r["verdict"]) in NORMATIVE_FAILURES for r in results["records"])
    assert all("reproduce: opref validate" in f.text for f in failures)
    assert root.findall(".//testcase/skipped")


def test_write_report_files(results, tmp_path):
    write_report([results], tmp_path)
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "report.json").read_text())["schema"] == 1
    ET.parse(tmp_path / "junit.xml")
    assert "![summary](summary.png)" in (tmp_path / "index.md").read_text()


def test_main_job_end_to_end(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "conformance.py"),
            "--only",
            "seed_*",
            "--only",
            "onnx_*",
            "--build",
            str(tmp_path / "build"),
            "--out",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "report:" in res.stdout and "ort:cpu" in res.stdout
    for name in ("index.md", "report.json", "junit.xml", "summary.png"):
        assert (tmp_path / "report" / name).is_file(), name
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    per_variant = data["variant_matrix"]["ort:cpu"]
    for v in ("inputs", "constant-weights", "dynamic-batch", "dynamic-spatial"):
        assert per_variant[v] == {"pass": 16}, v  # 16 cases, each in the four one-node model variants
    for v in ("pad-fused", "bn-folded", "qdq"):  # and the forms around ConvTranspose of the subset
        assert set(per_variant[v]) == {"pass"}, v
    assert data["variant_changes"]["ort:cpu"] == {}


def test_a_runtime_quoting_the_case_name_gives_one_cluster_not_one_per_case():
    # tract 0.23.9 names the failing node, and opref names nodes after their case: the same
    # refusal on three cases (and on one case's model form) is one cause, one cluster.
    from opref.report.clusters import clusters

    names = ["autopad_same_lower_rank3_odd_float32_exact", "opset1_same_upper_even_float32_random_opset1"]
    records = [
        {
            "case": case,
            "runtime": "tract",
            "verdict": "error",
            "message": f'TractError: Failed analyse for node #0 "{node}" ConvTranspose',
            "reproduce": f"opref validate vectors --only {case} --runtime tract",
        }
        for case, node in [(names[0], names[0]), (names[1], names[1]), (names[0] + "__symbolic", names[0])]
    ]
    found = clusters(records)
    assert len(found) == 1 and found[0]["count"] == 3, found


def test_a_results_file_without_its_unexpected_list_does_not_turn_failures_green(results):
    # No known-failures file was given to this run: every normative failure is unexpected, and
    # stays so when the results' 'unexpected' list is dropped (a report.json passed as results)
    # or trimmed by hand. Only a record that names the line covering it is known.
    failing = [r for r in results["records"] if Verdict(r["verdict"]) in NORMATIVE_FAILURES]
    assert len(failing) >= 5
    trimmed = {k: v for k, v in results.items() if k != "unexpected"}
    assert aggregate([trimmed]).data["unexpected_count"] == len(failing)
    assert aggregate([{**results, "unexpected": []}]).data["unexpected_count"] == len(failing)
    covered = {**failing[0], "expected_by": "fake:* seed_basic", "expected_reason": "listed"}
    records = [covered if r is failing[0] else r for r in results["records"]]
    pair = (covered["runtime"], covered["case"])
    rest = [u for u in results["unexpected"] if (u["runtime"], u["case"]) != pair]
    data = aggregate([{**results, "records": records, "unexpected": rest}]).data
    assert data["unexpected_count"] == len(failing) - 1


def test_a_published_report_directory_reads_back_as_the_results_it_was_written_from(results, tmp_path):
    from opref.boundary import read_results

    write_report([results], tmp_path / "published")
    assert not (tmp_path / "published" / "results.json").exists()
    again = aggregate([read_results(tmp_path / "published").data]).data
    first = aggregate([results]).data
    failing = sum(Verdict(r["verdict"]) in NORMATIVE_FAILURES for r in results["records"])
    assert again["matrix"] == first["matrix"] and again["unexpected_count"] == failing
    # Marking every failure row known in report.json does not make the records known.
    data = json.loads((tmp_path / "published" / "report.json").read_text())
    data["failures"] = [{**f, "unexpected": False} for f in data["failures"]]
    (tmp_path / "edited").mkdir()
    (tmp_path / "edited" / "report.json").write_text(json.dumps(data))
    assert aggregate([read_results(tmp_path / "edited").data]).data["unexpected_count"] == failing


def test_markdown_opens_with_the_verdict_and_a_row_per_runtime(results):
    md = markdown(aggregate([results]))
    lines = md.splitlines()
    assert lines[0] == "# opref ConvTranspose conformance report"
    banner = lines[2]
    assert banner.startswith("> **FAIL** (exit status 1): "), banner
    assert f"{len(results['unexpected'])} unexpected normative failures" in banner
    assert "runtime unavailable: py:fake_runtimes:make?mode=unavailable" in banner
    assert md.index("## Verdict per runtime") < md.index("## Summary")
    table = md[md.index("## Verdict per runtime") :].split("\n\n")[2].splitlines()
    assert table[0] == "| runtime | version | pass | unexpected | known | other |"
    for row in table[2:]:
        spec, _, *counts = [c.strip() for c in row.strip("|").split("|")]
        spec = html.unescape(re.sub(r"\\(.)", r"\1", spec))  # Markdown writes \* for *, &amp; for &
        recs = [r for r in results["records"] if r["runtime"] == spec]
        right = sum(1 for r in recs if r["verdict"] in ("pass", "rejected"))
        new = sum(1 for u in results["unexpected"] if u["runtime"] == spec)
        assert [int(c.strip("*")) for c in counts] == [right, new, 0, len(recs) - right - new], spec


def test_reproduce_commands_run_from_the_report_directory(tmp_path, monkeypatch):
    """A relative interpreter path names a file relative to where validate ran; from the report's
    directory the command must reach the same file (results/ecosystem's commands did not)."""
    from opref.report.aggregate import spec_from

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".venvs/ort-1.16/bin").mkdir(parents=True)
    spec = spec_from("ort:cpu@.venvs/ort-1.16/bin/python", "results/ecosystem")
    assert spec == "ort:cpu@../../.venvs/ort-1.16/bin/python"
    assert (tmp_path / "results/ecosystem" / spec.split("@")[1]).resolve() == (
        tmp_path / ".venvs/ort-1.16/bin/python"
    )
    assert spec_from("ort:cpu", "results/ecosystem") == "ort:cpu"
    assert spec_from("ort:cpu@/usr/bin/python3", "r") == "ort:cpu@/usr/bin/python3"


def test_a_pair_twice_in_one_file_or_a_listed_failure_without_its_record_is_never_green(results):
    # The passing record first, then the failing one (a hand-merged file): the failure stays.
    failing = next(r for r in results["records"] if r["verdict"] == "fail-values")
    passing = {**failing, "verdict": "pass", "message": ""}
    doubled = {**results, "records": [passing, *results["records"]]}
    data = aggregate([doubled]).data
    kept = [r for r in data["records"] if (r["runtime"], r["case"]) == (failing["runtime"], failing["case"])]
    assert [r["verdict"] for r in kept] == ["fail-values"] and data["exit_code"] == 1
    assert any("a second record" in n for n in data["notes"])
    # The run listed failures as unexpected; their records were cut out of the file.
    cut = {**results, "records": [r for r in results["records"] if r["verdict"] != "fail-values"]}
    data = aggregate([cut]).data
    assert data["exit_code"] == 1 and any("its record is missing" in n for n in data["notes"])
