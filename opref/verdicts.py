"""The verdicts a (case, runtime) pair can get, and what each means for CI, declared once.

Names exactly as in the issues. The report, the JUnit writer, the pytest entry and the exit
code all read the groups below; none keeps a list of its own.
"""

from __future__ import annotations

import enum


class Verdict(enum.StrEnum):
    PASS = "pass"  # output within tolerance (bit-exact for exact data)
    FAIL_SHAPE = "fail-shape"  # output shape differs from the spec's
    FAIL_VALUES = "fail-values"  # values (or the element type) differ beyond tolerance
    ERROR = "error"  # raised on a valid model, or answered something that is no answer
    UNSUPPORTED = "unsupported"  # the runtime says it does not implement this (dtype, opset)
    FALLBACK = "fallback"  # the requested provider refused the node (it would have run elsewhere)
    REJECTED = "rejected"  # correctly refused a must-reject case
    ACCEPTED_INVALID = "accepted-invalid"  # produced an output for a must-reject case
    CRASHED = "crashed"  # the worker process died
    TIMEOUT = "timeout"  # no answer within the time limit
    DIVERGENCE = "divergence"  # ambiguous case: follows another documented reading


class Group(enum.StrEnum):
    """What a verdict means for a CI gate."""

    OK = "ok"  # ran and was right (or rightly refused, or followed a documented reading)
    NORMATIVE = "normative"  # wrong: fails the run unless listed as a known failure
    SKIPPED = "skipped"  # did not run here, by the runtime's own word: neither right nor wrong


GROUP: dict[Verdict, Group] = {
    Verdict.PASS: Group.OK,
    Verdict.REJECTED: Group.OK,
    Verdict.DIVERGENCE: Group.OK,
    Verdict.FAIL_SHAPE: Group.NORMATIVE,
    Verdict.FAIL_VALUES: Group.NORMATIVE,
    Verdict.ERROR: Group.NORMATIVE,
    Verdict.ACCEPTED_INVALID: Group.NORMATIVE,
    Verdict.CRASHED: Group.NORMATIVE,
    # A case that never answered was not shown to be right: a gate must not pass it.
    Verdict.TIMEOUT: Group.NORMATIVE,
    Verdict.UNSUPPORTED: Group.SKIPPED,
    Verdict.FALLBACK: Group.SKIPPED,
}

# Failures that make `opref validate` exit 1 unless listed in the --expected file.
NORMATIVE_FAILURES = frozenset(v for v, g in GROUP.items() if g is Group.NORMATIVE)
SKIPPED = frozenset(v for v, g in GROUP.items() if g is Group.SKIPPED)

# One shared JUnit <skipped> message per skipped verdict (a CI view groups identical reasons).
SKIP_REASONS: dict[Verdict, str] = {
    Verdict.UNSUPPORTED: "the runtime has no kernel for this dtype/opset",
    Verdict.FALLBACK: "the requested provider refused the node",
}

# The order reports list verdicts in: good news first, then what needs a look.
ORDER = tuple(Verdict)
