"""Known-failures files: ``runtime case-glob verdict # reason`` lines, matched against results.

A line matches a (runtime spec, case, verdict) when both globs match and the verdict is equal.
A line that matched nothing in a run is *stale*: the failure it lists is gone (fixed, or the
suite changed), and the line should be removed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opref.verdicts import Verdict


@dataclass(frozen=True)
class Expectation:
    runtime: str
    case_glob: str
    verdict: str
    reason: str
    line: int = 0  # where it stands in its file (0 when built in code)

    @property
    def key(self) -> str:
        return f"{self.runtime} {self.case_glob} {self.verdict}"

    def matches(self, runtime: str, case: str, verdict: str) -> bool:
        return (
            verdict == self.verdict
            and fnmatch.fnmatchcase(runtime, self.runtime)
            and fnmatch.fnmatchcase(case, self.case_glob)
        )


def parse_expected(text: str, source: str = "expected file") -> list[Expectation]:
    """Lines of ``runtime case-glob verdict # reason``; ValueError names a bad line."""
    out = []
    known = [v.value for v in Verdict]
    for n, raw in enumerate(text.splitlines(), 1):
        line, _, reason = raw.partition("#")
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(
                f"{source}:{n}: expected 'runtime case-glob verdict # reason', got {raw.strip()!r}"
            )
        if fields[2] not in known:
            raise ValueError(f"{source}:{n}: unknown verdict {fields[2]!r}; one of {known}")
        out.append(Expectation(fields[0], fields[1], fields[2], reason.strip(), n))
    return out


def read_expected(path: str) -> list[Expectation]:
    """Parse a known-failures file; OSError or ValueError say why it cannot be used."""
    with open(path, encoding="utf-8") as fh:
        return parse_expected(fh.read(), path)


def expectation_for(
    expectations: Sequence[Expectation], runtime: str, case: str, verdict: str
) -> Expectation | None:
    """The first line that lists this failure, or None."""
    return next((e for e in expectations if e.matches(runtime, case, verdict)), None)


def stale(
    expectations: Iterable[Expectation],
    used: Iterable[Expectation],
    runtimes: Iterable[str],
    cases: Iterable[str],
) -> list[Expectation]:
    """Lines that matched no failure although the run validated a runtime and a case they name.

    A line about a runtime or cases that were not part of this run says nothing either way.
    """
    used = set(used)
    specs, names = list(runtimes), list(cases)
    return [
        e
        for e in expectations
        if e not in used
        and any(fnmatch.fnmatchcase(spec, e.runtime) for spec in specs)
        and any(fnmatch.fnmatchcase(name, e.case_glob) for name in names)
    ]
