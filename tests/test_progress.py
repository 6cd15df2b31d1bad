"""opref.progress: what the progress line says (cases done, rate, time left, failures) on a
terminal and off one, driven by a clock the test moves; and that validate feeds it."""

from __future__ import annotations

import io

from opref import cases as cs
from opref import vectors as vx
from opref.progress import PLAIN_INTERVAL, Progress
from opref.validate import validate
from opref.verdicts import NORMATIVE_FAILURES, Verdict

FAKE = "py:fake_runtimes:make"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_terminal_line_is_redrawn_in_place_with_rate_time_left_and_failures():
    out, clock = io.StringIO(), Clock()
    p = Progress(out, tty=True, clock=clock)
    p.update("ort:cpu", 0, 100)
    for done in range(1, 51):
        clock.now += 0.5  # 2 cases a second
        p.update("ort:cpu", done, 100, failures=done // 10, unexpected=1)
    text = out.getvalue()
    assert "\n" not in text and text.count("\r") >= 10  # one line, redrawn
    last = text.rsplit("\r", 1)[1].strip()
    # 50 of 100 done in 25 s: 2.0/s, 25 s left; 5 failing so far, 1 of them unexpected.
    assert last == "ort:cpu: 50/100 cases, 2.0/s, ~25s left, 5 failing (1 unexpected)", last
    p.close()
    assert out.getvalue().endswith("\n")


def test_a_new_runtime_starts_a_new_line_and_the_end_says_how_long():
    out, clock = io.StringIO(), Clock()
    p = Progress(out, tty=True, clock=clock)
    for done in range(1, 5):
        clock.now += 1
        p.update("a", done, 4)
    p.update("b", 1, 2)
    first = out.getvalue().split("\n")[0].rsplit("\r", 1)[1].strip()
    # timed from the first update (1 case done at t=1) to the last (4 done at t=4)
    assert first == "a: 4/4 cases, 1.0/s, done in 3s, 0 failing", first


def test_off_a_terminal_plain_lines_now_and_then_not_one_per_case():
    out, clock = io.StringIO(), Clock()
    p = Progress(out, tty=False, clock=clock)
    for done in range(1, 1001):
        clock.now += 0.1  # 100 s for 1,000 cases
        p.update("ort:cpu", done, 1000)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # the first case, then one line per PLAIN_INTERVAL seconds, then the end
    assert 3 <= len(lines) <= 100 / PLAIN_INTERVAL + 3, lines
    assert lines[-1].startswith("ort:cpu: 1000/1000 cases, 10.0/s, done in 1m40s")


def test_validate_reports_failures_so_far_to_its_progress_callback(tmp_path):
    suite = tmp_path / "v"
    vx.generate(suite, cs.catalog(only=["seed_basic", "seed_stride2", "reject_negative_pads"]), {})
    calls = []
    res = validate(suite, [f"{FAKE}?mode=shift-pad"], progress=lambda *a: calls.append(a))
    failing = sum(Verdict(r["verdict"]) in NORMATIVE_FAILURES for r in res.records)
    assert failing > 0
    assert [c[1] for c in calls] == [1, 2, 3] and all(c[2] == 3 for c in calls)
    assert calls[-1][3] == failing and calls[-1][4] == len(res.unexpected) == failing
    assert [c[3] for c in calls] == sorted(c[3] for c in calls)


def test_validate_and_generate_commands_write_plain_progress_lines_off_a_terminal(tmp_path, capsys):
    from opref.cli import main

    suite = tmp_path / "v"
    assert main(["generate", "--out", str(suite), "--only", "seed_basic", "--only", "seed_stride2"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "generate: 1/" in err and "cases, " in err
    code = main(["validate", str(suite), "--runtime", f"{FAKE}?mode=shift-pad", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1
    assert "\r" not in err
    assert f"{FAKE}?mode=shift-pad: 1/" in err and "failing" in err
    assert main(["validate", str(suite), "--quiet", "--out", str(tmp_path / "q")]) == 0
    assert "cases, " not in capsys.readouterr().err
