"""The fuzzer finds what a deliberately wrong runtime gets wrong, shrinks it, writes it, replays it.

Each wrong runtime of ``fake_runtimes`` is fuzzed with a fixed seed and a small budget: the search
must meet its bug and shrink it to a configuration no larger than the size stated per mode (the
smallest configuration that can show the bug, derived by hand). opref's reference behind the
same adapter must give zero failures over the same budget.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from opref import fuzz as fz
from opref.cli import main
from opref.expectations import parse_expected
from opref.report import load_results, write_report
from opref.suite import read_case, read_manifest

FAKE = "py:fake_runtimes:make"
EXAMPLES = 40
SEED = 3


def _elements(shape) -> int:
    return int(np.prod(shape))


# mode -> (verdict, the largest minimal case accepted: spatial rank, X elements, W elements, and
# what the bug needs). Every mode but same-upper-as-lower is wrong on any configuration, so the
# minimum is X[1,1,1] W[1,1,1] (drop-bias also needs a bias). same-upper-as-lower differs from the
# spec only when SAME_UPPER splits an odd total padding: the smallest is I=1 with a kernel of 2
# (T = 1), so W has 2 elements.
MODES = {
    "shift-pad": ("fail-values", 1, 1, 1, {}),
    "wrong-shape": ("fail-shape", 1, 1, 1, {}),
    "wrong-dtype": ("fail-values", 1, 1, 1, {}),
    "one-ulp": ("fail-values", 1, 1, 1, {}),
    "drop-bias": ("fail-values", 1, 1, 1, {"bias": True}),
    "error": ("error", 1, 1, 1, {}),
    "same-upper-as-lower": ("fail-values", 1, 1, 2, {"auto_pad": "SAME_UPPER"}),
}


def _run(out, spec, examples=EXAMPLES, **kw) -> tuple[fz.FuzzRun, dict]:
    options = fz.FuzzSettings(examples=examples, seed=SEED, **kw)
    run = fz.fuzz([spec], out, options)
    return run, json.loads((out / "fuzz.json").read_text())


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """One fuzz run per mode, shared by the tests of this module."""
    runs: dict[str, tuple[fz.FuzzRun, dict]] = {}

    def get(mode: str) -> tuple[fz.FuzzRun, dict]:
        if mode not in runs:
            runs[mode] = _run(tmp_path_factory.mktemp(mode), f"{FAKE}?mode={mode}")
        return runs[mode]

    return get


@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_wrong_runtime_is_found_and_shrunk(fuzzed, mode):
    verdict, rank, x_max, w_max, needs = MODES[mode]
    run, data = fuzzed(mode)
    rows = [r for r in data["failures"] if r["verdict"] == verdict]
    assert rows, f"{mode}: no {verdict} among {data['failures']}"
    smallest = min(rows, key=lambda r: (_elements(r["x_shape"]), _elements(r["w_shape"])))
    assert len(smallest["x_shape"]) - 2 <= rank, smallest
    assert _elements(smallest["x_shape"]) <= x_max, smallest
    assert _elements(smallest["w_shape"]) <= w_max, smallest
    assert smallest["dtype"] in ("float32", "bfloat16") and smallest["data"] == "exact", smallest
    for key, want in needs.items():
        got = smallest["bias"] if key == "bias" else smallest["attributes"].get(key)
        assert got == want, f"{mode}: {key}={got!r}, the bug needs {want!r}: {smallest}"
    # Every minimal case is a case of DIR/vectors that fails the same way when replayed.
    assert all(r["reproduced"] for r in data["failures"]), data["failures"]
    assert run.exit_code == 1


def test_same_upper_as_lower_is_found_by_search_not_by_the_first_draw(fuzzed):
    """The bug needs SAME_UPPER and an odd T: passes come before it, and it is shrunk."""
    _, data = fuzzed("same-upper-as-lower")
    rt = data["runtimes"][0]
    assert rt["verdicts"].get("pass", 0) > 0, rt
    (row,) = data["failures"]
    assert row["first_seen"] > 1 and row["attributes"] == {"auto_pad": "SAME_UPPER"}, row


def test_the_reference_itself_gives_no_failure(tmp_path):
    run, data = _run(tmp_path, FAKE)
    rt = data["runtimes"][0]
    assert data["failures"] == [] and run.exit_code == 0, data
    assert rt["examples"] >= EXAMPLES * 0.8 and set(rt["verdicts"]) <= {"pass", "divergence"}, rt
    assert not (tmp_path / "vectors").exists() and not (tmp_path / "results.json").exists()


@pytest.mark.parametrize(("mode", "verdict"), [("crash", "crashed"), ("hang", "timeout")])
def test_a_dying_or_hanging_worker_is_a_failure_too(tmp_path, mode, verdict):
    # Every example costs a fresh worker (and a timeout): the first draw, which is already the
    # smallest configuration, and a time budget that stops the shrinker.
    # A short deadline only for the runtime that never answers: one that dies may take longer.
    timeout = 0.5 if mode == "hang" else 600
    _, data = _run(tmp_path, f"{FAKE}?mode={mode}", examples=1, timeout=timeout, time_budget=2)
    (row,) = data["failures"]
    assert row["verdict"] == verdict and row["x_shape"] == [1, 1, 1] and row["w_shape"] == [1, 1, 1], row


def test_the_cli_writes_a_suite_that_replays_reports_and_reproduces_the_seed(fuzzed, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["fuzz", "--runtime", f"{FAKE}?mode=drop-bias", "--examples", str(EXAMPLES)]
    assert main([*argv, "--seed", str(SEED), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    printed = captured.out
    assert "fail-values" in printed and "opref validate" in printed
    # Progress off a terminal: plain lines on stderr naming the runtime, the examples run of the
    # budget and the failures so far (this one fails on every example with a bias).
    progress = [ln for ln in captured.err.splitlines() if ln.startswith(f"{FAKE}?mode=drop-bias: ")]
    assert progress and "\r" not in captured.err, captured.err
    assert f"/{EXAMPLES} examples" in progress[-1] and "failing" in progress[-1], progress
    manifest = read_manifest(out / "vectors")
    assert not manifest.problems and manifest.records
    for record in manifest.records.values():
        case = read_case(out / "vectors", record)
        assert record.b_shape is not None and len(case.operands) == 3
    report = write_report(load_results([out]), tmp_path / "report")
    assert {r["verdict"] for r in report.records} == {"fail-values"}
    summary = (out / "summary.md").read_text()
    assert "drop-bias" in summary and "B " in summary
    # The same seed and budget found the same minimal cases as the library call did.
    again = json.loads((out / "fuzz.json").read_text())["failures"]
    first = fuzzed("drop-bias")[1]["failures"]
    drop = ("reproduce",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in again] == [
        {k: v for k, v in r.items() if k not in drop} for r in first
    ]


def test_signatures_ignore_numbers_names_and_the_ambiguity_prefix():
    a = fz.signature("fail-values", "3 elements out of tolerance; first at [0, 1]: expected 1.0, got 2.0")
    b = fz.signature(
        "fail-values",
        "matches no documented reading; 12 elements out of tolerance; first at [0, 0, 2, 1]: "
        "expected np.float32(-0.5), got np.float32(4e-05)",
    )
    assert a == b == ("fail-values", "# elements out of tolerance; first at [...]: expected #, got #")
    named = fz.signature("error", "Node (fuzz_ort_cpu_001) failed: shape {1,2,3} vs (4,)", "fuzz_ort_cpu_001")
    assert named == ("error", "Node (<case>) failed: shape [...] vs [...]")
    # numpy prints a 2-D list over lines; a rank-2 message must not lose what follows it.
    two_lines = fz.signature("error", "pads=[[0 0]\n [0 1]], strides=[1, 1], expected size 3")
    assert two_lines == ("error", "pads=[...], strides=[...], expected size #")
    assert fz.signature("pass", "") is None and fz.signature("divergence", "follows 'clamp'") is None
    assert fz.signature("unsupported", "NOT_IMPLEMENTED") is None


def test_drawn_configurations_are_valid_and_bounded():
    from hypothesis import given, settings

    seen = set()

    @settings(max_examples=150, database=None, deadline=None)
    @given(fz.configurations(max_elements=512))
    def check(drawn):
        case = drawn.case
        geo = case.geometry()  # valid: no SpecError
        assert max(_elements(case.x_shape), _elements(case.w_shape), _elements(geo.output_shape)) <= 512
        x, w, *_ = case.inputs
        assert x.shape == case.x_shape and w.shape == case.w_shape
        seen.add((len(case.x_shape) - 2, case.dtype, case.attributes.get("auto_pad", "NOTSET")))

    check()
    assert {r for r, _, _ in seen} >= {1, 2, 3}
    assert {d for _, d, _ in seen} == set(fz.DTYPE_ORDER)
    assert {a for _, _, a in seen} >= {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"}


def test_expected_failures_let_a_known_bug_pass_and_a_new_one_fail(tmp_path):
    spec = f"{FAKE}?mode=shift-pad"
    options = fz.FuzzSettings(examples=10, seed=SEED)
    known = parse_expected(f"{spec} * fail-values # the pad bug, filed upstream\n")
    run = fz.fuzz([spec], tmp_path / "known", options, expected=known)
    rows = json.loads((tmp_path / "known/fuzz.json").read_text())["failures"]
    assert rows and all(r["known"] is True for r in rows) and run.exit_code == 0
    assert "known: listed in --expected" in (tmp_path / "known/summary.md").read_text()
    other = parse_expected(f"{spec} * error # a different failure\n")
    assert fz.fuzz([spec], tmp_path / "other", options, expected=other).exit_code == 1
    assert fz.fuzz([spec], tmp_path / "none", options).exit_code == 1  # no file: any failure fails
