"""opref diff OLD NEW (opref/report/diff.py), and report refusing to merge two runs of one runtime.

The two runs are real validations: a right runtime and one with a known bug (the fake
runtimes' shift-pad), so which cases newly fail is what shift-pad does to the suite's cases,
counted from the verdicts each run recorded on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opref import cases as cs
from opref import vectors as vx
from opref.report import load_results
from opref.report.diff import diff, pair_runtimes
from opref.validate import validate
from opref.verdicts import NORMATIVE_FAILURES, Verdict

ROOT = Path(__file__).resolve().parent.parent
FAKE = "py:fake_runtimes:make"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}
GOOD, BAD = f"{FAKE}?mode=good", f"{FAKE}?mode=shift-pad"


def opref(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opref", *args], env=ENV, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("diff")
    suite = base / "v"
    picks = ["seed_basic", "seed_stride2", "group2_bias_float32_random", "reject_negative_pads"]
    vx.generate(suite, cs.catalog(only=picks), {})
    for name, spec in (("good", GOOD), ("bad", BAD)):
        validate(suite, [spec]).write(base / name)
    validate(suite, [GOOD, BAD]).write(base / "both")
    return base


def _failing(path: Path) -> set[str]:
    data = json.loads((path / "results.json").read_text())
    return {r["case"] for r in data["records"] if Verdict(r["verdict"]) in NORMATIVE_FAILURES}


def test_one_runtime_each_side_pairs_whatever_the_names(runs):
    d = diff(load_results([runs / "good"]), load_results([runs / "bad"]))
    assert d["pairs"][0]["old"] == GOOD and d["pairs"][0]["new"] == BAD
    newly = {row["case"] for g in d["changes"]["newly_failing"] for row in g["cases"]}
    assert newly == _failing(runs / "bad") - _failing(runs / "good") and newly
    assert d["counts"]["newly_passing"] == 0 and d["exit_code"] == 1
    # grouped by cluster: each group's rows share the verdict they now have
    for g in d["changes"]["newly_failing"]:
        assert len({row["new"] for row in g["cases"]}) == 1 and g["count"] == len(g["cases"])

    back = diff(load_results([runs / "bad"]), load_results([runs / "good"]))
    assert back["counts"]["newly_passing"] == len(newly) and back["exit_code"] == 0


def test_several_runtimes_pair_by_name_and_the_rest_is_named_not_compared():
    assert pair_runtimes(["a", "b"], ["b", "c"]) == [("b", "b")]
    assert pair_runtimes(["ort:cpu"], ["ort:cpu@.venvs/ort-1.16/bin/python"]) == [
        ("ort:cpu", "ort:cpu@.venvs/ort-1.16/bin/python")
    ]


def test_the_same_run_twice_changes_nothing(runs):
    d = diff(load_results([runs / "both"]), load_results([runs / "both"]))
    held = len(json.loads((runs / "both/results.json").read_text())["records"])
    assert (
        held >= 6
        and d["counts"]["unchanged"] == held
        and sum(d["counts"][k] for k in ("newly_failing", "changed")) == 0
    )
    assert d["exit_code"] == 0 and [p["old"] for p in d["pairs"]] == sorted([GOOD, BAD])


def test_cli_markdown_json_and_exit_status(runs, tmp_path):
    md = opref("diff", str(runs / "good"), str(runs / "bad"), "--out", str(tmp_path / "d"))
    assert md.returncode == 1, md.stderr
    n = len(_failing(runs / "bad") - _failing(runs / "good"))
    assert f"## Newly failing ({n})" in md.stdout and "## Newly passing (0)" in md.stdout
    assert f"{n} newly failing" in md.stderr
    js = opref("diff", str(runs / "bad"), str(runs / "good"), "--json")
    assert js.returncode == 0 and json.loads(js.stdout)["counts"]["newly_passing"] == n
    assert json.loads((tmp_path / "d/diff.json").read_text())["counts"]["newly_failing"] == n
    assert (tmp_path / "d/diff.md").read_text().startswith("# opref diff")
    missing = opref("diff", str(runs / "nothing"), str(runs / "good"))
    assert missing.returncode == 2 and "cannot read validation results" in missing.stderr


def test_report_refuses_two_runs_of_one_runtime_instead_of_dropping_one(runs, tmp_path):
    run = opref("report", str(runs / "good"), str(runs / "both"), "--out", str(tmp_path / "r"))
    assert run.returncode == 2 and "opref diff" in run.stderr and GOOD in run.stderr, run.stderr
    # different runtimes (or shards) still merge
    ok = opref("report", str(runs / "good"), str(runs / "bad"), "--out", str(tmp_path / "r2"), "--exit-zero")
    assert ok.returncode == 0, ok.stderr
    held = [len(json.loads((runs / n / "results.json").read_text())["records"]) for n in ("good", "bad")]
    assert len(json.loads((tmp_path / "r2/report.json").read_text())["records"]) == sum(held)


def test_what_new_does_not_show_is_never_a_green_diff(runs):
    """Found in review: each of these exited 0 although NEW may hold a new failure."""
    good = load_results([runs / "good"])[0]
    bad = load_results([runs / "bad"])[0]
    failing = _failing(runs / "bad")
    # NEW interrupted: its failing pairs are missing, not unchanged
    cut = {**good, "complete": False, "missing": [{"runtime": GOOD, "case": c} for c in sorted(failing)]}
    cut["records"] = [r for r in good["records"] if r["case"] not in failing]
    d = diff([good], [cut])
    assert d["exit_code"] == 1 and any("incomplete" in n for n in d["notes"])
    # failing cases that only NEW holds
    d = diff([{**good, "records": [r for r in good["records"] if r["case"] not in failing]}], [bad])
    assert d["counts"]["newly_failing"] == 0 and d["exit_code"] == 1, d["notes"]
    # two runtimes a side, the buggy one renamed in NEW: nothing of it pairs
    both = load_results([runs / "both"])[0]
    renamed = json.loads(json.dumps(both))
    for r in renamed["records"]:
        r["runtime"] = r["runtime"].replace("shift-pad", "shift-pad&x=1")
    for rt in renamed["runtimes"]:
        rt["spec"] = rt["spec"].replace("shift-pad", "shift-pad&x=1")
    d = diff([both], [renamed])
    assert d["unpaired_new"] and d["exit_code"] == 1 and any("pairs with no OLD" in n for n in d["notes"])
    # every case renamed: nothing in common
    moved = json.loads(json.dumps(good))
    for r in moved["records"]:
        r["case"] += "_x"
    assert diff([good], [moved])["exit_code"] == 1
