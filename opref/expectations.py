"""Known-failures files: ``runtime case-glob verdict [when=CONDITION] # reason`` lines, matched
against results.

A line matches a (runtime spec, case, verdict) when both globs match and the verdict is equal.
A line is *stale*, and should be removed or mended, when

- it matched no failure although the run validated a runtime and a case it names (the failure
  it lists is gone: fixed, or the suite changed): "now passes";
- its case glob matches no case of the suite (a typo, or a case renamed or dropped);
- its runtime glob matches no runtime of the run (a misspelt runtime, or a line about a runtime
  this run did not validate: a file shared by several runs says so for each).

``when=`` makes a line *platform-dependent*: a failure that depends on the machine, not a bug of
the runtime's (e.g. int8 products that saturate on CPUs without VNNI). The condition is CPU
feature flags as /proc/cpuinfo names them, joined by commas, each required present (``avx2``) or
absent (``!avx512_vnni``). On a machine where the condition does not hold the line is inactive:
it excuses nothing; and a platform-dependent line is never stale (its failure need not show on
every machine). The report lists what such lines excuse apart from bugs.
"""

from __future__ import annotations

import fnmatch
import functools
import re
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
    when: tuple[str, ...] = ()  # CPU feature flags, "!flag" for absent (platform-dependent lines)
    because: tuple[str, ...] = ()  # bug models (opref.diagnose ids): one must explain the failure

    @property
    def key(self) -> str:
        cond = f" when={','.join(self.when)}" if self.when else ""
        cond += f" because={','.join(self.because)}" if self.because else ""
        return f"{self.runtime} {self.case_glob} {self.verdict}{cond}"

    @property
    def platform(self) -> bool:
        return bool(self.when)

    def active(self, flags: frozenset[str] | None = None) -> bool:
        """Whether the line applies on this machine (``flags``: its CPU features; read here)."""
        if not self.when:
            return True
        have = cpu_flags() if flags is None else flags
        if not have:  # flags unknown here (no /proc/cpuinfo): the condition cannot be shown to hold
            return False
        return all((f[1:] not in have) if f.startswith("!") else (f in have) for f in self.when)

    def matches(self, runtime: str, case: str, verdict: str, diagnosis: Iterable[str] = ()) -> bool:
        """``diagnosis``: the bug models opref found to reproduce the failure; a line with
        ``because=`` excuses only a failure one of its models explains."""
        return (
            self.active()
            and (not self.because or bool(set(self.because) & set(diagnosis)))
            and _scope_fits(self.case_glob, case)
            and verdict == self.verdict
            and fnmatch.fnmatchcase(runtime, self.runtime)
            and fnmatch.fnmatchcase(case, self.case_glob)
        )


def _scope_fits(case_glob: str, case: str) -> bool:
    """A line about one-node cases does not reach the graphs around ConvTranspose: a case of a
    form with other nodes (``__pad-fused``, ``__bn-folded``, ``__qdq``) is matched only by a glob
    that names a form (contains ``__``), so a Pad, BatchNormalization or QDQ failure cannot hide
    under a one-node bug's line."""
    from opref.forms import FORMS

    return "__" in case_glob or case.rpartition("__")[2] not in FORMS


_FLAG = re.compile(r"!?[a-z0-9_]{1,40}\Z")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags (/proc/cpuinfo's ``flags``, ``Features`` on Arm); empty
    where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def _condition(text: str, where: str) -> tuple[str, ...]:
    flags = tuple(text.removeprefix("when=").split(","))
    if not text.startswith("when=") or not all(_FLAG.match(f) for f in flags):
        raise ValueError(
            f"{where}: expected 'when=FLAG[,FLAG...]' (CPU feature flags, '!flag' for absent), got {text!r}"
        )
    return flags


def _because(text: str, where: str) -> tuple[str, ...]:
    from opref.diagnose import CATALOG
    from opref.formdiagnose import FORM_CATALOG

    models = tuple(text.removeprefix("because=").split(","))
    unknown = [m for m in models if m not in CATALOG and m not in FORM_CATALOG]
    if unknown or not models:
        named = ", ".join(unknown) or "(none)"
        raise ValueError(f"{where}: 'because=' names bug models of opref.diagnose; unknown: {named}")
    return models


def parse_expected(text: str, source: str = "expected file") -> list[Expectation]:
    """Lines of ``runtime case-glob verdict [when=CONDITION] [because=MODEL,...] # reason``;
    ValueError names a bad line."""
    out = []
    known = [v.value for v in Verdict]
    for n, raw in enumerate(text.splitlines(), 1):
        line, _, reason = raw.partition("#")
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (3, 4, 5):
            raise ValueError(
                f"{source}:{n}: expected 'runtime case-glob verdict [when=CONDITION] [because=MODEL] "
                f"# reason', got {raw.strip()!r}"
            )
        if fields[2] not in known:
            raise ValueError(f"{source}:{n}: unknown verdict {fields[2]!r}; one of {known}")
        when: tuple[str, ...] = ()
        because: tuple[str, ...] = ()
        for extra in fields[3:]:
            if extra.startswith("because=") and not because:
                because = _because(extra, f"{source}:{n}")
            elif not when:
                when = _condition(extra, f"{source}:{n}")
            else:
                raise ValueError(f"{source}:{n}: 'when=' and 'because=' at most once each, got {extra!r}")
        out.append(Expectation(fields[0], fields[1], fields[2], reason.strip(), n, when, because))
    return out


def read_expected(path: str) -> list[Expectation]:
    """Parse a known-failures file; ValueError says why it cannot be used."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ValueError(
            f"known-failures file {path}: no such file (one 'runtime case-glob verdict # reason' per line)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"known-failures file {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    return parse_expected(text, path)


def expectation_for(
    expectations: Sequence[Expectation],
    runtime: str,
    case: str,
    verdict: str,
    diagnosis: Iterable[str] = (),
) -> Expectation | None:
    """The first line that lists this failure (with ``diagnosis``, the bug models that explain
    it, for ``because=`` lines), or None."""
    found = tuple(diagnosis)
    return next((e for e in expectations if e.matches(runtime, case, verdict, found)), None)


NOW_PASSES = "now passes"
NO_CASE = "matches no case of the suite"
NO_RUNTIME = "matches no runtime of this run"


def stale_lines(
    expectations: Iterable[Expectation],
    used: Iterable[Expectation],
    runtimes: Iterable[str],
    cases: Iterable[str],
    suite_cases: Iterable[str],
) -> list[tuple[Expectation, str]]:
    """(line, why) for each stale line (see the module's text), in file order: ``runtimes`` the
    specs the run validated, ``cases`` the cases it ran, ``suite_cases`` every case of the suite."""
    expectations = list(expectations)
    specs, everything = list(runtimes), list(suite_cases)
    passes = set(stale(expectations, used, specs, cases))
    out = []
    for e in expectations:
        if not any(fnmatch.fnmatchcase(spec, e.runtime) for spec in specs):
            out.append((e, NO_RUNTIME))
        elif not any(fnmatch.fnmatchcase(name, e.case_glob) for name in everything):
            out.append((e, NO_CASE))
        elif e in passes:
            out.append((e, NOW_PASSES))
    return out


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
        and not e.platform  # a machine-dependent failure need not show on every machine
        and any(fnmatch.fnmatchcase(spec, e.runtime) for spec in specs)
        and any(fnmatch.fnmatchcase(name, e.case_glob) for name in names)
    ]
