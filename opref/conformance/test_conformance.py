"""One test per (case, runtime); see opref.conformance."""

from __future__ import annotations

import pytest

from opref.expectations import expectation_for
from opref.judge import judge
from opref.runtimes import declared_unit_roundoff
from opref.validate import reproduce_command, request_for
from opref.verdicts import GROUP, Group


def test_case(opref_case, opref_data, opref_runners, opref_suite, opref_expected, pytestconfig):
    spec, name = opref_case
    runner = opref_runners(spec)
    if not runner.info.available:
        pytest.fail(f"{spec} unavailable: {runner.info.reason}", pytrace=False)
    u = declared_unit_roundoff(spec, opref_data.record.dtype)  # from the spec, never the worker
    judgement = judge(opref_data, runner.run(*request_for(opref_data)), u)
    again = reproduce_command(str(opref_suite[0]), spec, name)
    detail = f"{judgement.verdict}: {judgement.message}\nreproduce: {again}"
    group = GROUP[judgement.verdict]
    if group is Group.SKIPPED:
        pytest.skip(detail)
    if group is Group.NORMATIVE:
        known = expectation_for(opref_expected, spec, name, judgement.verdict, judgement.diagnosis)
        if known:
            pytest.xfail(f"known: {known.reason or known.case_glob} ({detail})")
        pytest.fail(detail, pytrace=False)
    listed = [e for e in opref_expected if e.matches(spec, name, e.verdict)]
    if listed and pytestconfig.getoption("--opref-strict"):
        lines = ", ".join(f"line {e.line} '{e.key}'" for e in listed)
        pytest.fail(f"known failure now passes ({judgement.verdict}): remove or mend {lines}", pytrace=False)
