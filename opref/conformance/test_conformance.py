"""One test per (case, runtime); see opref.conformance."""

from __future__ import annotations

import pytest

from opref.validate import expectation_for, judge, reproduce_command
from opref.verdicts import NORMATIVE_FAILURES, Verdict

SKIPPED = {Verdict.UNSUPPORTED, Verdict.FALLBACK, Verdict.TIMEOUT}


def test_case(opref_case, opref_data, opref_runners, opref_suite, opref_expected):
    spec, name = opref_case
    runner = opref_runners(spec)
    if not runner.info.available:
        pytest.skip(f"{spec} unavailable: {runner.info.reason}")
    verdict_info = judge(opref_data, runner.run(name, opref_data.record["dtype"]))
    verdict = Verdict(verdict_info["verdict"])
    again = reproduce_command(str(opref_suite[0]), spec, name)
    detail = f"{verdict}: {verdict_info['message']}\nreproduce: {again}"
    if verdict in SKIPPED:
        pytest.skip(detail)
    if verdict in NORMATIVE_FAILURES:
        known = expectation_for(opref_expected, spec, name, verdict)
        if known:
            pytest.xfail(f"known: {known.reason or known.case_glob} ({detail})")
        pytest.fail(detail, pytrace=False)
