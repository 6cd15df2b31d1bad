"""Issue 22, guarantee 1: every (case, runtime) pair the selection names ends with exactly one
record, whatever fails inside opref on the way, or the run says which pairs have none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opref import cases as cs
from opref import pool as pl
from opref import validate as va
from opref import vectors as vx
from opref.tensors import safe_name

ROOT = Path(__file__).resolve().parent.parent
FAKE = "py:fake_runtimes:make"
BAD = "py:misbehaving_runtimes:make"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite") / "v"
    vx.generate(out, cs.catalog(only=["seed_*", "reject_negative_pads"]), {})
    return out


def names(suite) -> set[str]:
    return {p.name for p in (suite / "node").iterdir()}


def pairs(res) -> list[tuple[str, str]]:
    return [(r["runtime"], r["case"]) for r in res.records]


def assert_one_record_each(res, suite, runtimes):
    got = pairs(res)
    assert len(got) == len(set(got)), "a pair has two records"
    assert set(got) == {(s, n) for s in runtimes for n in names(suite)}, "a pair has no record"
    assert res.complete and not res.missing


def _failing_on(case: str, exc: BaseException):
    def fail(*args, **kwargs):
        raise exc

    return fail


def test_an_exception_while_judging_is_that_pair_s_error(suite, monkeypatch):
    real = va.judge

    def judge(case, answer, *rest, **kw):
        if case.record.name == "seed_stride2":
            raise ZeroDivisionError("a bug in opref's judge")
        return real(case, answer, *rest, **kw)

    monkeypatch.setattr(va, "judge", judge)
    res = va.validate(suite, [FAKE])
    assert_one_record_each(res, suite, [FAKE])
    rec = next(r for r in res.records if r["case"] == "seed_stride2")
    assert rec["verdict"] == "error" and rec["opref_fault"] is True
    assert "could not judge it: ZeroDivisionError: a bug in opref's judge" in rec["message"]
    assert {r["verdict"] for r in res.records if r is not rec} == {"pass", "rejected"}
    assert (
        res.exit_code == 1 and {"case": "seed_stride2", "runtime": FAKE, "verdict": "error"} in res.unexpected
    )


def test_an_opref_fault_is_never_hidden_by_a_known_failures_line(suite, monkeypatch):
    from opref.expectations import parse_expected

    monkeypatch.setattr(va, "judge", _failing_on("", RuntimeError("judge is broken")))
    listed = parse_expected(f"{FAKE} seed_basic error # the runtime raises here\n")
    res = va.validate(suite, [FAKE], only=["seed_basic"], expected=listed)
    (rec,) = res.records
    assert rec["verdict"] == "error" and "expected_by" not in rec and res.exit_code == 1


def test_an_exception_in_a_slot_is_that_pair_s_error_and_the_worker_is_replaced(suite, monkeypatch):
    real = pl.Worker.call

    def call(self, request, timeout, output_limit):
        if request.case == "seed_basic":
            raise MemoryError("while decoding a reply")
        return real(self, request, timeout, output_limit)

    monkeypatch.setattr(pl.Worker, "call", call)
    res = va.validate(suite, [FAKE], jobs=2)
    assert_one_record_each(res, suite, [FAKE])
    rec = next(r for r in res.records if r["case"] == "seed_basic")
    assert rec["verdict"] == "error" and "MemoryError: while decoding a reply" in rec["message"], rec
    assert {r["verdict"] for r in res.records if r is not rec} == {"pass", "rejected"}


class _ThreadKilled(BaseException):
    """What kills a thread outright (not an Exception: nothing on the way catches it)."""


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_dead_slot_thread_costs_its_pairs_with_the_reason_not_the_run(suite, monkeypatch, jobs):
    def call(self, request, timeout, output_limit):
        raise _ThreadKilled("gone")

    monkeypatch.setattr(pl.Worker, "call", call)
    res = va.validate(suite, [FAKE], jobs=jobs)
    assert_one_record_each(res, suite, [FAKE])
    assert {r["verdict"] for r in res.records} == {"error"}
    died = [r for r in res.records if "slot thread died: _ThreadKilled: gone" in r["message"]]
    assert len(died) == jobs, [r["message"] for r in res.records]  # one case in hand per slot
    rest = [r for r in res.records if r not in died]
    assert all("no slot left" in r["message"] for r in rest), [r["message"] for r in rest]
    assert res.exit_code == 1


def test_a_failing_pool_costs_the_pairs_it_had_not_answered(suite, monkeypatch):
    real = pl.Pool.run

    def run(self, items, prepare):
        for k, got in enumerate(real(self, items, prepare)):
            if k == 2:
                raise RuntimeError("the pool broke")
            yield got

    monkeypatch.setattr(pl.Pool, "run", run)
    res = va.validate(suite, [FAKE, f"{FAKE}?mode=good"])
    assert_one_record_each(res, suite, [FAKE, f"{FAKE}?mode=good"])
    lost = [r for r in res.records if "pool failed: RuntimeError: the pool broke" in r["message"]]
    assert len(lost) == 2 * (len(names(suite)) - 2)


@pytest.mark.parametrize("block", ["file", "dir-file"])
def test_a_tensors_write_that_fails_is_that_pair_s_error(suite, tmp_path, block):
    out = tmp_path / "out"
    out.mkdir()
    spec = f"{FAKE}?mode=one-ulp&only=seed_stride2*"
    if block == "file":
        (out / "tensors").write_text("not a directory")
    else:
        folder = out / "tensors" / safe_name(spec)  # where the pair's folder would go: a file there
        folder.mkdir(parents=True)
        (folder / safe_name("seed_stride2")).write_text("x")
    res = va.validate(suite, [spec], save_tensors="failures", tensors_dir=out)
    assert_one_record_each(res, suite, [spec])
    bad = [r for r in res.records if r["verdict"] == "error"]
    assert bad and all(
        "could not be saved" in r["message"] and r["judged_verdict"] == "fail-values" for r in bad
    )
    assert {r["verdict"] for r in res.records if r not in bad} <= {"pass", "rejected", "fail-values"}
    assert res.exit_code == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_a_read_only_tensors_directory_is_each_pair_s_error(suite, tmp_path):
    out = tmp_path / "out"
    (out / "tensors").mkdir(parents=True)
    (out / "tensors").chmod(0o500)
    try:
        res = va.validate(suite, [f"{FAKE}?mode=one-ulp"], save_tensors="failures", tensors_dir=out)
    finally:
        (out / "tensors").chmod(0o700)
    assert all(
        r["verdict"] == "error" and "could not be saved" in r["message"]
        for r in res.records
        if r["expect"] == "output"
    )


def test_the_cli_names_selected_and_judged_and_fails_a_malformed_reply(suite, tmp_path):
    spec = f"{BAD}?mode=deep-header&only=seed_basic"
    run = subprocess.run(
        [sys.executable, "-m", "opref", "validate", str(suite), "--runtime", spec, "--out", str(tmp_path)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    n = len(names(suite))
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"{n} pairs selected ({n} cases x 1 runtimes): {n} judged" in run.stdout, run.stdout
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["complete"] is True and data["missing"] == [] and len(data["records"]) == n
    assert "Traceback" not in run.stderr


def test_pairs_without_a_record_make_the_run_incomplete_and_are_named(suite, monkeypatch):
    monkeypatch.setattr(va, "_run_runtime", lambda result, entry, *a: None)  # a lost runtime
    res = va.validate(suite, [FAKE], only=["seed_basic"])
    assert not res.complete and res.missing == [{"case": "seed_basic", "runtime": FAKE}]
    assert res.exit_code == 1 and not res.interrupted
    lines = va.summary_lines(res)
    assert any(line.startswith("INCOMPLETE: 1 selected pairs have no record: " + FAKE) for line in lines), (
        lines
    )
    assert "0 judged" in "\n".join(lines) and "1 without a record" in "\n".join(lines)
