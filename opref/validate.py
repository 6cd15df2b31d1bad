"""Validate runtimes over a suite: the orchestration of suite reading, workers, judging and
known failures (each in its own module) into one :class:`Validation` (what results.json holds).

The suite is checked first (every record, every file), then each runtime runs the selected
cases in its own worker processes. Cases are read one at a time as workers ask for them, and the
bytes sent to a runtime are the bytes that were verified and are judged against.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import platform
import shlex
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opref import limits
from opref.codec import SuiteError
from opref.dtypes import DTYPES
from opref.escape import visible
from opref.expectations import NO_RUNTIME, NOW_PASSES, Expectation, expectation_for, stale_lines
from opref.judge import Judgement, judge
from opref.pool import DEFAULT_START_TIMEOUT, DEFAULT_TIMEOUT, Job, Pool
from opref.protocol import Request
from opref.runtimes import check, declared_unit_roundoff, hint
from opref.suite import CaseData, read_case, read_manifest, verify
from opref.tensors import SAVE_POLICIES, save_tensors
from opref.verdicts import NORMATIVE_FAILURES, Verdict
from opref.version import __version__

# A runtime's output may be this many times larger than the expected one (a float64 answer to a
# float16 case is 4x) before it is refused unread.
OUTPUT_SLACK, OUTPUT_MIN_LIMIT = 8, 2**20


def select_cases(
    names: Sequence[str], only: Sequence[str] | None, shard: tuple[int, int] | None
) -> list[str]:
    """Filter by name globs, then keep shard i of n (1-based) of the sorted names."""
    names = sorted(names)
    if only:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in only)]
    if shard:
        i, n = shard
        names = [name for k, name in enumerate(names) if k % n == i - 1]
    return names


def reproduce_command(suite: str, spec: str, case: str) -> str:
    """The command that reruns one (case, runtime) on ``suite`` as given, into ./opref-repro."""
    return (
        f"opref validate {shlex.quote(suite)} --runtime {shlex.quote(spec)} --only {shlex.quote(case)} "
        f"--out opref-repro"
    )


def strict(value: object) -> object:
    """``value`` with every non-finite float written as a string ("inf", "-inf", "nan"), so that
    any JSON parser reads the file (JSON has no Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def dumps(value: object) -> str:
    return json.dumps(strict(value), indent=1, sort_keys=True, default=str, allow_nan=False) + "\n"


def request_for(case: CaseData) -> tuple[Request, int]:
    """The worker request for a verified case, and the largest output it may answer."""
    rec = case.record
    basis = case.expected.nbytes if case.expected is not None else sum(a.nbytes for a in case.operands)
    limit = max(OUTPUT_MIN_LIMIT, OUTPUT_SLACK * basis)
    return Request(rec.name, rec.dtype, case.model, case.inputs), limit


@dataclass
class Validation:
    """Everything ``results.json`` holds."""

    suite: str
    runtimes: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    suite_problems: list[str] = field(default_factory=list)
    case_problems: dict[str, str] = field(default_factory=dict)
    unexpected: list[dict] = field(default_factory=list)
    stale_expectations: list[dict] = field(default_factory=list)
    selected: int = 0
    complete: bool = True
    # (case, runtime) pairs the selection names that ended without a record (complete is then False)
    missing: list[dict] = field(default_factory=list)
    interrupted: bool = False
    allow_unavailable: bool = False
    started: str = ""
    seconds: float = 0.0
    tensors_root: str = ""  # where --save-tensors wrote (records' "tensors" paths are relative to it)

    def to_dict(self) -> dict:
        return {
            "tensors_root": self.tensors_root,
            "opref_version": __version__,
            "suite": self.suite,
            "suite_path": str(Path(self.suite).absolute()),
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "selected": self.selected,
            "missing": self.missing,
            "allow_unavailable": self.allow_unavailable,
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
            },
            "runtimes": self.runtimes,
            "suite_problems": self.suite_problems,
            "case_problems": self.case_problems,
            "records": self.records,
            "unexpected": self.unexpected,
            "stale_expectations": self.stale_expectations,
        }

    def write(self, out: str | Path) -> Path:
        """Write ``out/results.json`` through a temporary file of its own, renamed into place, so
        that a reader never sees half a file and two writers never share a temporary."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".results.json.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(dumps(self.to_dict()))
            return Path(tmp).replace(out / "results.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def unavailable(self) -> list[dict]:
        return [rt for rt in self.runtimes if not rt["available"]]

    @property
    def exit_code(self) -> int:
        if not self.complete:
            return 130 if self.interrupted else 1
        failed = self.unexpected or self.suite_problems or self.case_problems or self.selected == 0
        return 1 if failed or (self.unavailable and not self.allow_unavailable) else 0


def _prepare(suite: Path, records) -> Callable[[str], Job]:
    def prepare(name: str) -> Job:
        try:
            case = read_case(suite, records[name])
        except SuiteError as exc:  # changed since it was verified: the suite's fault, not the runtime's
            return Job((name, None), None, problem=f"changed during the run: {exc}")
        request, limit = request_for(case)
        return Job((name, case), request, limit)

    return prepare


def _record(rec, spec: str, info, judgement: dict, suite: str) -> dict:
    return {
        "case": rec.name,
        "runtime": spec,
        "runtime_name": info.name,
        "runtime_version": info.version,
        "dtype": rec.dtype,
        "opset": rec.opset,
        "family": rec.family,
        "x_shape": list(rec.x_shape),
        "w_shape": list(rec.w_shape),
        "attributes": dict(rec.attributes),
        "ambiguities": list(rec.ambiguities),
        "expect": rec.expect,
        **judgement,
        "reproduce": reproduce_command(suite, spec, rec.name),
    }


def _opref_fault(rec, spec: str, info, suite: str, why: str) -> dict:
    """The ``error`` record of a pair opref itself failed to run or judge: never a runtime's
    verdict (``opref_fault``), never hidden by a known-failures line."""
    record = _record(rec, spec, info, Judgement(Verdict.ERROR, why, 0.0).to_dict(), suite)
    record["opref_fault"] = True
    return record


def _judged(
    job: Job, answer, spec: str, info, suite: str, save: tuple[str, Path | None], max_memory: int | None
) -> dict:
    """The judged record of one answer (with its tensors saved if asked); an error record with
    the reason if judging or saving fails."""
    _, case = job.item
    dtype = case.record.dtype
    declared = declared_unit_roundoff(spec, dtype)
    try:
        judgement = judge(case, answer, declared, max_memory=max_memory).to_dict()
    except Exception as exc:  # opref's own failure: never the runtime's verdict
        return _opref_fault(
            case.record, spec, info, suite, f"opref could not judge it: {type(exc).__name__}: {exc}"
        )
    record = _record(case.record, spec, info, judgement, suite)
    # The bound's unit roundoff: the dtype's, or a looser one the spec declares (never the reply's).
    record["unit_roundoff"] = DTYPES[dtype].unit_roundoff if declared is None else declared
    record["unit_roundoff_declared"] = declared is not None
    claimed = None if answer.header is None else answer.header.unit_roundoff
    if claimed is not None and claimed != declared:
        record["unit_roundoff_claimed"] = claimed  # what the worker said, for the record only
    policy, root = save
    failed = Verdict(record["verdict"]) in NORMATIVE_FAILURES
    if root is not None and (policy == "all" or (policy == "failures" and failed)):
        try:
            record["tensors"] = save_tensors(root, spec, case, answer, record)
        except Exception as exc:  # asked for and not there: the pair is not done right
            record.update(
                judged_verdict=record["verdict"],
                verdict=str(Verdict.ERROR),
                opref_fault=True,
                message=f"judged {record['verdict']} ({record['message'][:500]}), but its tensors could "
                f"not be saved: {type(exc).__name__}: {exc}",
            )
    return record


def _take(
    result: Validation,
    entry: dict,
    rec,
    job: Job | None,
    answer,
    spec: str,
    info,
    suite: str,
    expected: Sequence[Expectation],
    used: set[Expectation],
    save: tuple[str, Path | None] = ("none", None),
    max_memory: int | None = None,
) -> None:
    """Turn one pair's outcome into its one record in ``result`` (or its case's refusal)."""
    name = rec.name
    if job is None:  # opref lost it: the answer says why
        record = _opref_fault(rec, spec, info, suite, answer.detail)
    elif answer is None or job.item[1] is None:
        result.case_problems[name] = job.problem
        return
    else:
        record = _judged(job, answer, spec, info, suite, save, max_memory)
    entry["cases"] += 1
    result.records.append(record)
    if Verdict(record["verdict"]) in NORMATIVE_FAILURES:
        hit = (
            None
            if record.get("opref_fault")
            else expectation_for(expected, spec, name, record["verdict"], record.get("diagnosis") or ())
        )
        if hit:
            record["expected_by"] = hit.key
            record["expected_reason"] = hit.reason
            used.add(hit)
        else:
            result.unexpected.append({"case": name, "runtime": spec, "verdict": record["verdict"]})


def _run_runtime(
    result,
    entry,
    pool,
    names,
    prepare,
    records,
    spec,
    info,
    suite,
    expected,
    used,
    save,
    progress,
    max_memory=None,
):
    """Run one runtime over ``names``: every name ends with one record (or its case's refusal),
    whatever fails on the way; only Ctrl-C leaves names without one."""
    pending = dict.fromkeys(names)
    why = "no answer came back"
    failing = unexpected = 0  # so far, for the progress line
    try:
        for done, (name, job, answer) in enumerate(pool.run(names, prepare), 1):
            if name not in pending:
                continue  # not ours, or answered twice: never a second record
            del pending[name]
            before = (len(result.records), len(result.unexpected))
            try:
                rec = records[name]
                _take(result, entry, rec, job, answer, spec, info, suite, expected, used, save, max_memory)
            except Exception as exc:
                why = f"opref failed recording it: {type(exc).__name__}: {exc}"
                _take(result, entry, records[name], None, _Lost(why), spec, info, suite, expected, used)
            del job, answer  # hold no case while waiting for the next one
            if progress:
                new = result.records[before[0] :]
                failing += sum(Verdict(r["verdict"]) in NORMATIVE_FAILURES for r in new)
                unexpected += len(result.unexpected) - before[1]
                progress(spec, done, len(names), failing, unexpected)
    except Exception as exc:  # the pool itself failed: what it had not answered is lost, with why
        why = f"opref's worker pool failed: {type(exc).__name__}: {exc}"
    for name in pending:
        _take(result, entry, records[name], None, _Lost(why), spec, info, suite, expected, used)


@dataclass(frozen=True)
class _Lost:
    detail: str


def validate(
    suite: str | Path,
    runtimes: Sequence[str],
    *,
    only: Sequence[str] | None = None,
    shard: tuple[int, int] | None = None,
    jobs: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    expected: Sequence[Expectation] = (),
    allow_unavailable: bool = False,
    progress: Callable[[str, int, int, int, int], None] | None = None,
    save_tensors: str = "none",
    tensors_dir: str | os.PathLike | None = None,
    variants: Sequence[str] | None = None,
    max_memory: int | None = None,
) -> Validation:
    """Validate each runtime over the suite; see :class:`Validation`.

    ``save_tensors`` ("failures", "all" or "none") writes X, W, B, the expected and the
    runtime's output of those (case, runtime) pairs under ``tensors_dir``/tensors/ (the
    directory results.json goes to); see :mod:`opref.tensors`.

    ``max_memory`` bounds the working memory of each reference computation (see
    :func:`opref.conv_transpose`); a case that cannot be judged within it is a case problem
    that says so.

    ``progress`` is called after each judged case with (runtime spec, cases done, cases
    selected, normative failures so far, unexpected ones so far); see :mod:`opref.progress`.

    Ctrl-C stops the run: the result then holds what finished and ``complete`` is False.
    """
    t0 = time.perf_counter()
    limits.count("jobs", jobs, 1, limits.MAX_JOBS)  # usage errors before any work
    limits.seconds("timeout", timeout)
    limits.seconds("start_timeout", start_timeout)
    if save_tensors not in SAVE_POLICIES:
        raise ValueError(f"save_tensors={save_tensors!r}: must be one of {list(SAVE_POLICIES)}")
    save = (save_tensors, None if tensors_dir is None or save_tensors == "none" else Path(tensors_dir))
    root = Path(suite)
    for spec in runtimes:
        check(spec)  # usage errors before any work
    manifest = read_manifest(root)
    checked = verify(root, manifest)
    result = Validation(
        str(suite),
        suite_problems=list(checked.suite_problems),
        case_problems=dict(checked.case_problems),
        allow_unavailable=allow_unavailable,
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        tensors_root="" if save[1] is None else str(save[1].absolute()),
    )
    records = checked.records
    if variants:
        records = {n: r for n, r in records.items() if r.variant in variants}
    names = select_cases(list(records), only, shard)
    result.selected = len(names)
    used: set[Expectation] = set()
    prepare = _prepare(root, checked.records)
    try:
        for spec in runtimes:
            pool = Pool(spec, jobs=jobs, timeout=timeout, start_timeout=start_timeout)
            info = pool.open()
            entry = {**asdict(info), "cases": 0}
            if not info.available:
                entry["hint"] = hint(spec, info.reason)
            result.runtimes.append(entry)
            if not info.available or not names:
                pool.close()
                continue
            _run_runtime(
                result,
                entry,
                pool,
                names,
                prepare,
                checked.records,
                spec,
                info,
                str(suite),
                expected,
                used,
                save,
                progress,
                max_memory,
            )
    except KeyboardInterrupt:
        result.interrupted = True
    result.missing = _missing(result, runtimes, names)
    result.complete = not result.missing and not result.interrupted
    ran = [rt["spec"] for rt in result.runtimes if rt["available"]]
    result.stale_expectations = (
        [
            {**asdict(e), "key": e.key, "why": why}
            for e, why in stale_lines(expected, used, ran, names, [*checked.records, *checked.case_problems])
        ]
        if result.complete
        else []
    )
    result.records.sort(key=lambda r: (r["runtime"], r["case"]))
    result.seconds = time.perf_counter() - t0
    return result


def _missing(result: Validation, runtimes: Sequence[str], names: Sequence[str]) -> list[dict]:
    """The selected pairs without a record: not judged, not a refused case, not on a runtime that
    is unavailable here."""
    have = {(r["runtime"], r["case"]) for r in result.records}
    unavailable = {rt["spec"] for rt in result.runtimes if not rt["available"]}
    return [
        {"case": n, "runtime": s}
        for s in dict.fromkeys(runtimes)
        if s not in unavailable
        for n in names
        if (s, n) not in have and n not in result.case_problems
    ]


def selection_line(result: Validation) -> str:
    """Selected pairs against what became of them."""
    specs = list(dict.fromkeys(rt["spec"] for rt in result.runtimes))
    available = {rt["spec"] for rt in result.runtimes if rt["available"]}
    unavailable = len([s for s in specs if s not in available]) * result.selected
    judged = sum(1 for r in result.records if not r.get("opref_fault"))
    faults = len(result.records) - judged
    refused = len(available) * len(set(result.case_problems))
    parts = [f"{judged} judged"]
    if faults:
        parts.append(f"{faults} opref could not run or judge (error records)")
    if refused:
        parts.append(f"{refused} of refused cases")
    if unavailable:
        parts.append(f"{unavailable} on unavailable runtimes")
    if result.missing:
        parts.append(f"{len(result.missing)} without a record")
    pairs = result.selected * len(specs)
    return f"{pairs} pairs selected ({result.selected} cases x {len(specs)} runtimes): " + ", ".join(parts)


def stale_expectation_lines(stale: Sequence[dict]) -> list[str]:
    """The stale known-failures lines in words: one line each, except the lines about runtimes
    this run did not validate, which share one line (a file shared by several runs has many)."""
    lines = []
    elsewhere = [e for e in stale if e.get("why") == NO_RUNTIME]
    for e in stale:
        if e.get("why") == NO_RUNTIME:
            continue
        why = e.get("why") or NOW_PASSES
        what = "remove the line" if why == NOW_PASSES else "mend or remove the line"
        lines.append(f"STALE expectation (line {e.get('line', '?')}): '{e.get('key', '')}' {why} - {what}")
    if elsewhere:
        numbers = ", ".join(str(e.get("line", "?")) for e in elsewhere[:20])
        more = f" and {len(elsewhere) - 20} more" if len(elsewhere) > 20 else ""
        lines.append(
            f"STALE expectations: {len(elsewhere)} lines match no runtime of this run (lines "
            f"{numbers}{more}): a misspelt runtime, or lines for runtimes not validated here"
        )
    return lines


def summary_lines(result: Validation) -> list[str]:
    """A short human summary: per runtime the verdict counts, then what needs a look; no
    terminal control sequence from a runtime's text survives in it."""
    lines = []
    for rt in result.runtimes:
        recs = [r for r in result.records if r["runtime"] == rt["spec"]]
        if not rt["available"]:
            lines.append(f"{rt['spec']}: UNAVAILABLE - {rt['reason']}")
            lines.append(f"    what to do: {rt.get('hint', '')}")
            continue
        counts = Counter(r["verdict"] for r in recs)
        body = ", ".join(f"{counts[v]} {v}" for v in Verdict if counts[v])
        lines.append(f"{rt['spec']} ({rt['name']} {rt['version']}): {len(recs)} cases: {body}")
    for problem in result.suite_problems:
        lines.append(f"suite problem: {problem}")
    for name, problem in sorted(result.case_problems.items()):
        lines.append(f"case refused: {name}: {problem}")
    for u in result.unexpected[:20]:
        lines.append(f"UNEXPECTED {u['verdict']}: {u['runtime']} {u['case']}")
    if len(result.unexpected) > 20:
        lines.append(f"... and {len(result.unexpected) - 20} more unexpected failures")
    lines += stale_expectation_lines(result.stale_expectations)
    lines.append(selection_line(result))
    if result.selected == 0:  # exit 1: "0 unexpected failures" would read as a pass
        lines.append("0 cases selected: nothing was validated (check --only / --shard / --variant)")
    else:
        lines.append(f"{len(result.unexpected)} unexpected normative failures; {result.seconds:.1f} s")
    if result.interrupted:
        lines.append("INTERRUPTED: the results hold only what finished")
    if result.missing:
        named = ", ".join(f"{m['runtime']} {m['case']}" for m in result.missing[:10])
        more = f" and {len(result.missing) - 10} more" if len(result.missing) > 10 else ""
        lines.append(f"INCOMPLETE: {len(result.missing)} selected pairs have no record: {named}{more}")
    return [visible(line) for line in lines]  # a runtime's text reaches the terminal inert
