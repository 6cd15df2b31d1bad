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
