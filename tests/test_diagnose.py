"""Bug models (opref/diagnose.py): each injected mistake is diagnosed as itself, and nothing is
diagnosed on a right output.

The injected runtimes are ``tests/fake_runtimes.py``'s ``mode=bug``, which writes every mistake
again without opref.diagnose (other attributes, the direct loop, per-group runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fake_runtimes import FakeRuntime

from opref import diagnose as dg
from opref.judge import judge
from opref.pool import Answer
from opref.protocol import ReplyHeader
from opref.runtimes import Status
from opref.suite import read_case, read_manifest
from opref.verdicts import Verdict

SUITE = Path(__file__).resolve().parent.parent / "vectors"
FAILED = (Verdict.FAIL_SHAPE, Verdict.FAIL_VALUES)


@pytest.fixture(scope="module")
def cases():
    # The one-node forms: the bug models here are the node's; the forms with nodes around it
    # (pad-fused, bn-folded, qdq) have their own, injected in tests/test_forms.py.
    manifest = read_manifest(SUITE)
    return [
        read_case(SUITE, r) for r in manifest.records.values() if r.expect == "output" and r.form is None
    ]


def _answer(case, outcome) -> Answer:
    header = ReplyHeader(case.record.name, outcome.status, outcome.message, outcome.placement, None, None)
    return Answer(header, outcome.output, None, "", 0.0)


def _judged(runtime: FakeRuntime, case):
    return judge(case, _answer(case, runtime.run(case.model, dict(case.inputs))))


@pytest.mark.parametrize("bug", list(dg.CATALOG))
def test_an_injected_bug_is_diagnosed_as_itself(bug, cases):
    runtime = FakeRuntime("fake", {"mode": "bug", "bug": bug})
    # Precision models are judged on random data only (on exact data any rounding looks alike).
    precision = dg.CATALOG[bug].kind == "precision"
    failed = 0
    for case in cases:
        if precision and case.record.tolerance.bitexact:
            continue
        j = _judged(runtime, case)
        if j.verdict in FAILED:
            failed += 1
            assert bug in j.diagnosis, (case.record.name, j.verdict, j.diagnosis, j.message)
    assert failed, f"{bug}: no case of the default suite shows it"


def test_a_right_output_gets_no_diagnosis(cases):
    """Every case of the default suite, with its own expected output as the runtime's answer:
    no bug model claims it, and every model that applies predicts a visibly wrong output."""
    for case in cases:
        rec = case.record
        p = dg.problem(case.operands, rec.attributes, rec.opset, bitexact=rec.tolerance.bitexact)
        assert dg.diagnose(p, case.expected, case.expected) == (), rec.name
        for mid, pred in dg.predictions(p, case.expected).items():
            if pred.unit_roundoff is None:
                same = pred.output.shape == case.expected.shape and np.array_equal(
                    pred.output.astype(np.float64), case.expected.astype(np.float64)
                )
                assert not same, (rec.name, mid)


def test_a_mistake_no_model_describes_gets_no_diagnosis(cases):
    """One ulp off on exact data fails every exact case; no bug model explains it."""
    runtime = FakeRuntime("fake", {"mode": "one-ulp"})
    failed = 0
    for case in cases:
        if not case.record.tolerance.bitexact:
            continue
        j = _judged(runtime, case)
        if j.verdict in FAILED:
            failed += 1
            assert j.diagnosis == (), (case.record.name, j.diagnosis)
    assert failed > 100


def test_a_value_bug_on_a_clamp_shaped_output_is_fail_values_under_clamp(cases):
    """The nearest reading: a clamp-shaped output with one wrong value is judged under clamp."""
    runtime = FakeRuntime("fake", {"reading.negative-total-padding": "clamp"})
    seen = 0
    for case in cases:
        rec = case.record
        if (
            "negative-total-padding" not in rec.ambiguities
            or rec.attributes.get("auto_pad", "NOTSET") == "NOTSET"
        ):
            continue
        outcome = runtime.run(case.model, dict(case.inputs))
        if outcome.status is not Status.OK or outcome.output.shape == case.expected.shape:
            continue
        out = outcome.output.copy()
        out.reshape(-1)[0] += 64  # a value bug on top of the clamp shape
        j = judge(case, _answer(case, type(outcome)(Status.OK, out, "", "fake")))
        assert j.verdict is Verdict.FAIL_VALUES, (rec.name, j.verdict, j.message)
        assert j.nearest_reading == {"negative-total-padding": "clamp"}, rec.name
        assert "under 'clamp' for negative-total-padding" in j.message
        assert j.comparison.mismatches == 1 and j.comparison.first_mismatch == [0] * out.ndim
        seen += 1
    assert seen >= 2


def test_diagnosis_is_bounded():
    """A recomputation past MAX_ELEMENTS is skipped, not attempted."""
    X = np.zeros((1, 1, 2048, 2048), np.float32)
    W = np.zeros((1, 1, 3, 3), np.float32)
    p = dg.problem([X, W], {"strides": [2, 2]}, 22, bitexact=True)
    assert dg.CATALOG["kernel-flipped"].predict(p) is None
