"""The pytest plugin (entry point pytest11) behind ``pytest --pyargs opref.conformance``.

It adds options (all namespaced ``--opref-*``, so that no project's own options collide) and
fixtures only; tests that do not ask for ``opref_case`` are untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opref.expectations import read_expected
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


def pytest_generate_tests(metafunc):
    if "opref_case" not in metafunc.fixturenames:
        return
    manifest = read_manifest(Path(metafunc.config.getoption("--opref-vectors")))
    names = sorted([*manifest.records, *manifest.problems])
    runtimes = metafunc.config.getoption("--opref-runtime") or ["ort:cpu"]
    params = [(rt, name) for rt in runtimes for name in names]
    metafunc.parametrize("opref_case", params, ids=[f"{rt}::{name}" for rt, name in params])


@pytest.fixture(scope="session")
def opref_suite(pytestconfig):
    suite = Path(pytestconfig.getoption("--opref-vectors"))
    return suite, verify(suite)


@pytest.fixture(scope="session")
def opref_expected(pytestconfig):
    path = pytestconfig.getoption("--opref-expected")
    return read_expected(path) if path else []


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
