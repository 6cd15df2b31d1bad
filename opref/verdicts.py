"""The verdicts a (case, runtime) pair can get, declared once (names exactly as in the issues)."""

from __future__ import annotations

import enum


class Verdict(enum.StrEnum):
    PASS = "pass"  # output within tolerance (bit-exact for exact data)
    FAIL_SHAPE = "fail-shape"  # output shape differs from the spec's
    FAIL_VALUES = "fail-values"  # values (or the element type) differ beyond tolerance
    ERROR = "error"  # raised on a valid model
    UNSUPPORTED = "unsupported"  # the runtime says it does not implement this (dtype, opset)
    FALLBACK = "fallback"  # the requested provider refused the node (it would have run elsewhere)
    REJECTED = "rejected"  # correctly refused a must-reject case
    ACCEPTED_INVALID = "accepted-invalid"  # produced an output for a must-reject case
    CRASHED = "crashed"  # the worker process died
    TIMEOUT = "timeout"  # no answer within the time limit
    DIVERGENCE = "divergence"  # ambiguous case: follows another documented reading


# Failures that make `opref validate` exit 1 unless listed in the --expected file.
NORMATIVE_FAILURES = frozenset(
    {Verdict.FAIL_SHAPE, Verdict.FAIL_VALUES, Verdict.ERROR, Verdict.ACCEPTED_INVALID, Verdict.CRASHED}
)

# The order reports list verdicts in: good news first, then what needs a look.
ORDER = tuple(Verdict)
