"""The pytest plugin (entry point pytest11) behind ``pytest --pyargs opref.conformance``.

It adds options (all namespaced ``--opref-*``, so that no project's own options collide) and
fixtures only; tests that do not ask for ``opref_case`` are untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opref.expectations import read_expected, stale_lines
from opref.pool import CaseRunner
from opref.suite import read_case, read_manifest, verify


def pytest_addoption(parser):
    group = parser.getgroup("opref", "opref ConvTranspose conformance")
    group.addoption("--opref-vectors", default="vectors", help="the suite directory (default: ./vectors)")
    group.addoption("--opref-runtime", action="append", help="runtime spec, repeatable (default: ort:cpu)")
    group.addoption(
        "--opref-expected", default=None, help="known failures: 'runtime case-glob verdict # reason'"
    )
    group.addoption("--opref-timeout", type=float, default=60.0, help="seconds per case")
    group.addoption(
        "--opref-strict",
        action="store_true",
        help="fail a case a known-failures line lists that now passes, and end the session with "
        "an error when a line matches no case of the suite or no runtime of the run",
    )


def pytest_configure(config):
    """A misspelt runtime or a missing known-failures file is one usage error before any test,
    not one failure (or traceback) per case."""
    from opref.runtimes import RuntimeSpecError, check

    for spec in config.getoption("--opref-runtime") or []:
        try:
            check(spec)
        except RuntimeSpecError as exc:
            raise pytest.UsageError(f"--opref-runtime: {exc}") from None
    path = config.getoption("--opref-expected")
    if path:
        try:
            config._opref_expected = read_expected(path)
        except ValueError as exc:
            raise pytest.UsageError(f"--opref-expected: {exc}") from None


def _dangling(config) -> list[str]:
    """Known-failures lines that match no case of the suite or no runtime of the run (whether a
    listed failure now passes is each case's test's to say)."""
    expected = getattr(config, "_opref_expected", [])
    if not expected:
        return []
    names = getattr(config, "_opref_names", None)
    if names is None:  # the xdist controller collects no tests: it reads the suite's names itself
        try:
            manifest = read_manifest(Path(config.getoption("--opref-vectors")))
        except (OSError, ValueError) as exc:
            return [f"cannot check: the suite's manifest cannot be read ({exc})"]
        names = config._opref_names = sorted([*manifest.records, *manifest.problems])
    runtimes = config.getoption("--opref-runtime") or ["ort:cpu"]
    return [
        f"line {e.line}: '{e.key}' {why}"
        for e, why in stale_lines(expected, expected, runtimes, names, names)
    ]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in _dangling(config):
        terminalreporter.write_line(f"opref: STALE expectation {line}")


def pytest_sessionfinish(session, exitstatus):
    if session.config.getoption("--opref-strict", False) and _dangling(session.config) and exitstatus == 0:
        session.exitstatus = 1


def pytest_generate_tests(metafunc):
    if "opref_case" not in metafunc.fixturenames:
        return
    manifest = read_manifest(Path(metafunc.config.getoption("--opref-vectors")))
    names = sorted([*manifest.records, *manifest.problems])
    metafunc.config._opref_names = names
    runtimes = metafunc.config.getoption("--opref-runtime") or ["ort:cpu"]
    params = [(rt, name) for rt in runtimes for name in names]
    metafunc.parametrize("opref_case", params, ids=[f"{rt}::{name}" for rt, name in params])


@pytest.fixture(scope="session")
def opref_suite(pytestconfig):
    suite = Path(pytestconfig.getoption("--opref-vectors"))
    return suite, verify(suite)


@pytest.fixture(scope="session")
def opref_expected(pytestconfig):
    return getattr(pytestconfig, "_opref_expected", [])


@pytest.fixture(scope="session")
def opref_runners(pytestconfig):
    runners: dict[str, CaseRunner] = {}

    def get(spec: str) -> CaseRunner:
        if spec not in runners:
            runners[spec] = CaseRunner(spec, pytestconfig.getoption("--opref-timeout"))
        return runners[spec]

    yield get
    for r in runners.values():
        r.close()


@pytest.fixture
def opref_data(opref_case, opref_suite):
    suite, checked = opref_suite
    name = opref_case[1]
    if name in checked.case_problems:
        pytest.fail(f"vector files failed verification: {checked.case_problems[name]}", pytrace=False)
    return read_case(suite, checked.records[name])
