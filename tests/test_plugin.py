"""The pytest entry (``pytest --pyargs opref.conformance``) and its plugin, run as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from opref import cases as cs
from opref import vectors as vx

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
FAKE = "py:fake_runtimes:make"


@pytest.fixture
def env(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{ROOT / 'tests'}:{ROOT}")
    return pytester


def test_a_project_with_its_own_runtime_option_still_starts(env):
    """The plugin is loaded into every pytest run where opref is installed: its options must not
    take names a project's conftest may use."""
    env.makeconftest(
        "def pytest_addoption(parser):\n"
        "    parser.addoption('--runtime', default='mine')\n"
        "    parser.addoption('--vectors', default='v')\n"
        "    parser.addoption('--expected', default='e')\n"
    )
    env.makepyfile("def test_one(request):\n    assert request.config.getoption('--runtime') == 'mine'\n")
    result = env.runpytest_subprocess("--runtime", "mine")
    result.assert_outcomes(passed=1)


def test_one_test_per_case_and_runtime_with_known_failures_as_xfail(env, tmp_path):
    suite = tmp_path / "v"
    vx.generate(suite, cs.catalog(only=["seed_basic", "seed_stride2", "reject_negative_pads"]), {})
    wrong = f"{FAKE}?mode=shift-pad&only=seed_basic"
    known = tmp_path / "known.txt"
    known.write_text(f"{wrong} seed_basic fail-values # the pad bug\n")
    result = env.runpytest_subprocess(
        "--pyargs",
        "opref.conformance",
        "-p",
        "no:cacheprovider",
        "--opref-vectors",
        str(suite),
        "--opref-runtime",
        FAKE,
        "--opref-runtime",
        wrong,
        "--opref-expected",
        str(known),
        "-rxX",
    )
    # 3 cases x 2 runtimes: 5 right, the known pad bug xfails.
    result.assert_outcomes(passed=5, xfailed=1)
    result.stdout.fnmatch_lines(["*known: the pad bug*"])
    unknown = env.runpytest_subprocess(
        "--pyargs",
        "opref.conformance",
        "-p",
        "no:cacheprovider",
        "--opref-vectors",
        str(suite),
        "--opref-runtime",
        wrong,
    )
    unknown.assert_outcomes(passed=2, failed=1)
    unknown.stdout.fnmatch_lines(["*fail-values*", "*reproduce: opref validate*"])


def test_a_bad_runtime_or_a_missing_expected_file_is_one_usage_error(env, tmp_path):
    suite = tmp_path / "v"
    vx.generate(suite, cs.catalog(only=["seed_basic", "seed_stride2"]), {})
    args = ["--pyargs", "opref.conformance", "-p", "no:cacheprovider", "--opref-vectors", str(suite)]
    typo = env.runpytest_subprocess(*args, "--opref-runtime", "ort:cpux")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR
    typo.stderr.fnmatch_lines(["*--opref-runtime*did you mean ort:cpu?*"])
    assert "passed" not in typo.stdout.str() and "failed" not in typo.stdout.str()
    missing = env.runpytest_subprocess(*args, "--opref-expected", str(tmp_path / "missing.txt"))
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--opref-expected*missing.txt: no such file*"])
    assert "Traceback" not in missing.stderr.str() + missing.stdout.str()


def test_strict_fails_a_known_failure_that_now_passes_and_names_stale_lines(env, tmp_path):
    suite = tmp_path / "v"
    vx.generate(suite, cs.catalog(only=["seed_basic", "seed_stride2"]), {})
    known = tmp_path / "known.txt"
    known.write_text(f"{FAKE} seed_basic fail-values # fixed since\n{FAKE} group9_* error # no such case\n")
    args = ["--pyargs", "opref.conformance", "-p", "no:cacheprovider", "--opref-vectors", str(suite)]
    args += ["--opref-runtime", FAKE, "--opref-expected", str(known)]
    lenient = env.runpytest_subprocess(*args)
    lenient.assert_outcomes(passed=2)
    lenient.stdout.fnmatch_lines(["*STALE expectation line 2*group9_* error*matches no case of the suite*"])
    assert lenient.ret == 0
    strict = env.runpytest_subprocess(*args, "--opref-strict")
    strict.assert_outcomes(passed=1, failed=1)
    strict.stdout.fnmatch_lines(["*known failure now passes*line 1*"])
    assert strict.ret == pytest.ExitCode.TESTS_FAILED


def test_strict_fails_on_a_stale_line_alone_also_under_xdist(env, tmp_path):
    """Review: under -n (the README's recipe) the controller collected nothing, so a line that
    matches no case was neither printed nor failed the run."""
    suite = tmp_path / "v"
    vx.generate(suite, cs.catalog(only=["seed_basic"]), {})
    known = tmp_path / "known.txt"
    known.write_text(f"{FAKE} group9_* error # no such case\n")
    args = ["--pyargs", "opref.conformance", "-p", "no:cacheprovider", "--opref-vectors", str(suite)]
    args += ["--opref-runtime", FAKE, "--opref-expected", str(known), "--opref-strict"]
    for extra in ([], ["-n", "2"]):
        run = env.runpytest_subprocess(*args, *extra)
        run.stdout.fnmatch_lines(["*STALE expectation line 1*group9_* error*matches no case of the suite*"])
        assert run.ret == 1, (extra, run.stdout.str()[-2000:])
