"""Run runtimes over a vector suite in isolated worker processes and give each case a verdict.

Each runtime gets ``jobs`` worker processes started with ``spawn`` (forking after
onnxruntime or BLAS threads exist can hang). The parent never imports a runtime: it sends
case names, waits with a deadline, and turns a dead worker into ``crashed`` and a late one
into ``timeout`` before starting a fresh worker for the rest.
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np

from opref import readings as rd
from opref.dtypes import DTYPES
from opref.errors import SpecError
from opref.geometry import geometry
from opref.reference import conv_transpose
from opref.runtimes import Outcome, RuntimeInfo, Status, parse, split_interpreter
from opref.tolerance import Comparison, compare, magnitude_sum
from opref.vectors import DATA_SET, SuiteError, load_manifest, read_tensor, verify
from opref.verdicts import NORMATIVE_FAILURES, Verdict
from opref.version import __version__
from opref.worker import decode_array

DEFAULT_TIMEOUT = 60.0


# --- running: worker processes ------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """What came back for one case: an Outcome, or how the worker failed."""

    outcome: Outcome | None
    failure: Verdict | None  # CRASHED or TIMEOUT
    detail: str
    seconds: float
    unit_roundoff: float | None = None


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "worker stopped answering"
    if code < 0:
        try:
            return f"worker killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with code {code}"


def _worker_path(interpreter: str | None) -> str:
    """PYTHONPATH for a worker: this interpreter's whole sys.path, or for another environment's
    interpreter only opref's own root and the entries outside this environment (never our
    site-packages, so that it imports its own onnxruntime)."""
    root = str(Path(__file__).resolve().parent.parent)
    if interpreter is None:
        entries = [p or os.getcwd() for p in sys.path]
    else:
        prefixes = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        entries = [root] + [
            p
            for p in sys.path
            if p and "-packages" not in p and not any(str(Path(p).resolve()).startswith(x) for x in prefixes)
        ]
    return os.pathsep.join(dict.fromkeys([root, *entries]))


@dataclass
class _Worker:
    """One worker process (a fresh interpreter) serving one runtime, one case at a time."""

    process: subprocess.Popen
    conn: Connection  # answers from the worker
    outbox: Connection  # requests to the worker
    log: object  # the worker's stderr, kept for crash reports
    case: str | None = None
    deadline: float = 0.0
    started: float = 0.0

    @classmethod
    def start(cls, spec: str, suite: str) -> tuple[_Worker, RuntimeInfo | None, str]:
        interpreter = split_interpreter(spec)[1]
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = {**os.environ, "PYTHONPATH": _worker_path(interpreter)}
        log = tempfile.TemporaryFile()  # noqa: SIM115 - the worker owns it; closed in stop()
        try:
            proc = subprocess.Popen(
                [
                    interpreter or sys.executable,
                    "-m",
                    "opref.worker",
                    spec,
                    suite,
                    str(to_child_r),
                    str(from_child_w),
                ],
                pass_fds=(to_child_r, from_child_w),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                close_fds=True,
            )
        except OSError as exc:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            log.close()
            return None, None, f"cannot start {interpreter or sys.executable}: {exc}"
        os.close(to_child_r)
        os.close(from_child_w)
        worker = cls(
            proc, Connection(from_child_r, writable=False), Connection(to_child_w, readable=False), log
        )
        try:
            _, data = worker.conn.recv()
        except (EOFError, OSError):
            proc.wait(5)
            why = f"worker exited with code {proc.returncode} before reporting{worker.stderr_tail()}"
            worker.stop(kill=True)
            return None, None, why
        return worker, RuntimeInfo(**data), ""

    def stderr_tail(self, lines: int = 3) -> str:
        try:
            self.log.seek(0)
            text = self.log.read().decode(errors="replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return (": " + " | ".join(text[-lines:])) if text else ""

    def submit(self, name: str, dtype: str, timeout: float) -> bool:
        self.case, self.started = name, time.monotonic()
        self.deadline = self.started + timeout
        try:
            self.outbox.send((name, dtype))
        except OSError:
            return False
        return True

    def collect(self, ready: bool) -> Finished | None:
        """The finished case if it answered (``ready``), died, or ran out of time; else None."""
        now = time.monotonic()
        if ready:
            try:
                _, _, status, payload, message, placement, u = self.conn.recv()
                outcome = Outcome(Status(status), decode_array(payload), message, placement)
                return Finished(outcome, None, "", now - self.started, u)
            except (EOFError, OSError):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)
                why = _exit_reason(self.process.returncode) + self.stderr_tail()
                return Finished(None, Verdict.CRASHED, why, now - self.started)
        if now >= self.deadline:
            return Finished(
                None,
                Verdict.TIMEOUT,
                f"no answer within {self.deadline - self.started:g} s",
                now - self.started,
            )
        return None

    def stop(self, kill: bool = False) -> None:
        if not kill and self.process.poll() is None:
            try:
                self.outbox.send(None)
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for c in (self.conn, self.outbox):
            c.close()
        self.log.close()


def run_runtime(
    spec: str,
    suite: str | Path,
    cases: Sequence[tuple[str, str]],
    *,
    jobs: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    on_result: Callable[[str, Finished], None] | None = None,
) -> tuple[RuntimeInfo, dict[str, Finished]]:
    """Run ``cases`` ((name, dtype) pairs) on one runtime; RuntimeInfo says if it was available."""
    suite = str(Path(suite).absolute())
    pending = list(cases)
    results: dict[str, Finished] = {}
    first, info, why = _Worker.start(spec, suite)
    if info is None or not info.available:
        if first is not None:
            first.stop()
        return info or RuntimeInfo(spec, spec, "", False, why), results
    workers = [first]
    try:
        while len(workers) < min(jobs, len(pending)):
            workers.append(_start_or_raise(spec, suite))
        idle, busy = list(workers), []
        while pending or busy:
            while idle and pending:
                w = idle.pop()
                if w.submit(*pending[0], timeout):
                    pending.pop(0)
                    busy.append(w)
                else:  # died while idle: replace it and retry the case
                    w.stop(kill=True)
                    workers.remove(w)
                    w = _start_or_raise(spec, suite)
                    workers.append(w)
                    idle.append(w)
            ready = wait(
                [w.conn for w in busy], timeout=max(0.0, min(w.deadline for w in busy) - time.monotonic())
            )
            for w in list(busy):
                finished = w.collect(w.conn in ready)
                if finished is None:
                    continue
                results[w.case] = finished
                if on_result:
                    on_result(w.case, finished)
                busy.remove(w)
                if finished.failure is None:
                    idle.append(w)
                    continue
                w.stop(kill=True)  # a crashed or hung worker is replaced, never reused
                workers.remove(w)
                if pending:
                    w = _start_or_raise(spec, suite)
                    workers.append(w)
                    idle.append(w)
    finally:
        for w in workers:
            w.stop()
    return info, results


def _start_or_raise(spec: str, suite: str) -> _Worker:
    worker, _, why = _Worker.start(spec, suite)
    if worker is None:
        raise RuntimeError(f"{spec}: a replacement worker did not start: {why}")
    return worker


class CaseRunner:
    """One worker for one runtime, driven one case at a time (the pytest entry uses this)."""

    def __init__(self, spec: str, suite: str | Path, timeout: float = DEFAULT_TIMEOUT):
        self.spec, self.suite, self.timeout = spec, str(Path(suite).absolute()), timeout
        self._worker, info, why = _Worker.start(spec, self.suite)
        self.info = info or RuntimeInfo(spec, spec, "", False, why)

    def run(self, name: str, dtype: str) -> Finished:
        w = self._worker
        if not w.submit(name, dtype, self.timeout):
            finished = Finished(None, Verdict.CRASHED, _exit_reason(w.process.poll()) + w.stderr_tail(), 0.0)
        else:
            ready = wait([w.conn], timeout=self.timeout)
            finished = w.collect(bool(ready)) or Finished(
                None, Verdict.TIMEOUT, f"no answer within {self.timeout:g} s", self.timeout
            )
        if finished.failure is not None:
            w.stop(kill=True)
            self._worker = _start_or_raise(self.spec, self.suite)
        return finished

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()


# --- judging ------------------------------------------------------------------------------


@dataclass
class CaseData:
    """What the parent reads of a case to judge it (files already verified)."""

    record: dict
    inputs: list[np.ndarray]
    expected: np.ndarray | None


def load_case_data(suite: Path, record: dict) -> CaseData:
    d = suite / "node" / record["name"] / DATA_SET
    # input_0.pb, input_1.pb, ... in index order (a plain sort would put input_10 before input_2).
    count = len(list(d.glob("input_*.pb")))
    inputs = [read_tensor((d / f"input_{i}.pb").read_bytes()) for i in range(count)]
    out = d / "output_0.pb"
    return CaseData(record, inputs, read_tensor(out.read_bytes()) if out.exists() else None)


def _reference(case: CaseData, readings: dict[str, str] | None) -> np.ndarray:
    rec = case.record
    return conv_transpose(*case.inputs, **rec["attributes"], opset=rec["opset"], readings=readings)


def _matches(
    case: CaseData,
    outcome: Outcome,
    want: np.ndarray,
    u: float | None,
    readings: dict[str, str] | None = None,
) -> tuple[bool, Comparison | None]:
    """Does the runtime's output equal ``want`` (bit for bit for exact data, else within the bound)?"""
    got = outcome.output
    if got is None or got.shape != want.shape or got.dtype != want.dtype:
        return False, None
    rec = case.record
    tol = rec["tolerance"]
    magnitude = None
    if not tol["bitexact"]:
        X, W, *rest = case.inputs
        geo = geometry(X.shape, W.shape, **rec["attributes"], opset=rec["opset"], readings=readings)
        magnitude = magnitude_sum(X, W, rest[0] if rest else None, geo)
    cmp = compare(
        got,
        want,
        DTYPES[rec["dtype"]],
        bitexact=tol["bitexact"],
        magnitude=magnitude,
        terms=tol["max_terms"],
        unit_roundoff=u,
    )
    return cmp.ok, cmp


def _reading_combinations(ids: Iterable[str]) -> list[dict[str, str]]:
    ids = [aid for aid in rd.AMBIGUITIES if aid in set(ids)]
    combos = itertools.product(*(rd.AMBIGUITIES[aid].readings for aid in ids))
    return [dict(zip(ids, c, strict=True)) for c in combos]


def followed_readings(case: CaseData, outcome: Outcome | None, u: float | None) -> list[dict[str, str]]:
    """Every reading combination of the case's ambiguities whose answer the runtime reproduced."""
    ids = case.record.get("ambiguities") or []
    found = []
    for combo in _reading_combinations(ids):
        try:
            want = _reference(case, combo)
        except SpecError:
            if outcome is not None and outcome.status is Status.ERROR:
                found.append(combo)
            continue
        if outcome is not None and outcome.status is Status.OK and _matches(case, outcome, want, u, combo)[0]:
            found.append(combo)
    return found


def _describe(combo: dict[str, str]) -> str:
    return ", ".join(f"'{r}' for {a}" for a, r in combo.items())


def judge(case: CaseData, finished: Finished) -> dict:
    """The verdict of one (case, runtime) run, with the numbers behind it."""
    rec = case.record
    out: dict = {
        "verdict": None,
        "message": finished.detail,
        "comparison": None,
        "reading": None,
        "placement": "",
        "seconds": round(finished.seconds, 4),
    }
    if finished.failure is not None:
        out["verdict"] = finished.failure
        return out
    oc = finished.outcome
    out["placement"] = oc.placement
    out["message"] = oc.message
    if oc.output is not None:
        out["got_shape"], out["got_dtype"] = list(oc.output.shape), str(oc.output.dtype)
    if rec["expect"] == "reject":
        verdict = {Status.OK: Verdict.ACCEPTED_INVALID, Status.FALLBACK: Verdict.FALLBACK}.get(
            oc.status, Verdict.REJECTED
        )
        out["verdict"] = verdict
        if verdict is Verdict.ACCEPTED_INVALID:
            out["message"] = (
                f"produced an output of shape {list(oc.output.shape)}; must refuse: {rec['reject_message']}"
            )
        return out
    want = case.expected
    out["expected_shape"] = list(want.shape)
    if oc.status is Status.UNSUPPORTED:
        verdict = Verdict.UNSUPPORTED
    elif oc.status is Status.FALLBACK:
        verdict = Verdict.FALLBACK
    elif oc.status is Status.ERROR:
        verdict = Verdict.ERROR
    elif oc.output.shape != want.shape:
        verdict = Verdict.FAIL_SHAPE
        out["message"] = f"output shape {list(oc.output.shape)}, expected {list(want.shape)}"
    elif oc.output.dtype != want.dtype:
        verdict = Verdict.FAIL_VALUES
        out["message"] = f"output element type {oc.output.dtype}, expected {want.dtype}"
    else:
        ok, cmp = _matches(case, oc, want, finished.unit_roundoff)
        out["comparison"] = cmp.to_dict()
        verdict = Verdict.PASS if ok else Verdict.FAIL_VALUES
        if not ok:
            out["message"] = (
                f"{cmp.mismatches} elements out of tolerance; first at {list(cmp.first_mismatch)}: "
                f"expected {cmp.expected_at_first!r}, got {cmp.got_at_first!r}"
            )
    if rec.get("ambiguities") and verdict in (
        Verdict.PASS,
        Verdict.FAIL_SHAPE,
        Verdict.FAIL_VALUES,
        Verdict.ERROR,
    ):
        followed = followed_readings(case, oc, finished.unit_roundoff)
        out["readings_followed"] = followed
        if verdict is Verdict.PASS:
            out["reading"] = {aid: rd.AMBIGUITIES[aid].default for aid in rec["ambiguities"]}
        elif followed:
            out["reading"] = followed[0]
            also = "".join(f"; equally '{_describe(c)}'" for c in followed[1:])
            out["message"] = f"follows {_describe(followed[0])}{also} ({out['message']})"
            verdict = Verdict.DIVERGENCE
        else:
            out["message"] = "matches no documented reading; " + out["message"]
    out["verdict"] = verdict
    return out


# --- the whole validation -----------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    runtime: str
    case_glob: str
    verdict: str
    reason: str


def parse_expected(text: str, source: str = "expected file") -> list[Expectation]:
    """Lines of ``runtime case-glob verdict # reason``; ValueError names a bad line."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line, _, reason = raw.partition("#")
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(
                f"{source}:{n}: expected 'runtime case-glob verdict # reason', got {raw.strip()!r}"
            )
        if fields[2] not in {v.value for v in Verdict}:
            raise ValueError(
                f"{source}:{n}: unknown verdict {fields[2]!r}; one of {[v.value for v in Verdict]}"
            )
        out.append(Expectation(fields[0], fields[1], fields[2], reason.strip()))
    return out


def expectation_for(
    expectations: Sequence[Expectation], runtime: str, case: str, verdict: str
) -> Expectation | None:
    for e in expectations:
        if (
            fnmatch.fnmatchcase(runtime, e.runtime)
            and fnmatch.fnmatchcase(case, e.case_glob)
            and e.verdict == verdict
        ):
            return e
    return None


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
    started: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "opref_version": __version__,
            "suite": self.suite,
            "started": self.started,
            "seconds": round(self.seconds, 3),
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
        """Write ``out/results.json`` (through a temporary file, so a reader never sees half)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "results.json.tmp"
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True, default=str) + "\n")
        return tmp.replace(out / "results.json")

    @property
    def exit_code(self) -> int:
        return 1 if self.unexpected or self.suite_problems or self.case_problems else 0


def reproduce_command(suite: str, spec: str, case: str) -> str:
    return (
        f"opref validate {shlex.quote(suite)} --runtime {shlex.quote(spec)} --only {shlex.quote(case)} "
        f"--out /tmp/opref-repro"
    )


def validate(
    suite: str | Path,
    runtimes: Sequence[str],
    *,
    only: Sequence[str] | None = None,
    shard: tuple[int, int] | None = None,
    jobs: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    expected: Sequence[Expectation] = (),
    progress: Callable[[str, int, int], None] | None = None,
) -> Validation:
    """Validate each runtime over the (verified) suite; see :class:`Validation`."""
    t0 = time.perf_counter()
    root = Path(suite)
    for spec in runtimes:
        parse(spec)  # usage errors before any work
    manifest = load_manifest(root)
    checked = verify(root, manifest)
    result = Validation(
        str(suite),
        suite_problems=list(checked.suite_problems),
        case_problems=dict(checked.case_problems),
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    names = select_cases(list(checked.records), only, shard)
    data: dict[str, CaseData] = {}
    for name in names:
        try:
            data[name] = load_case_data(root, checked.records[name])
        except (SuiteError, OSError, ValueError) as exc:
            result.case_problems[name] = f"unreadable: {exc}"
    names = [n for n in names if n in data]
    seen: set[tuple[str, str, str]] = set()
    for spec in runtimes:
        done = Counter()

        def tick(case, finished, spec=spec, done=done):
            done["n"] += 1
            if progress:
                progress(spec, done["n"], len(names))

        info, finished = run_runtime(
            spec,
            root,
            [(n, data[n].record["dtype"]) for n in names],
            jobs=jobs,
            timeout=timeout,
            on_result=tick,
        )
        entry = asdict(info)
        entry["cases"] = len(finished)
        result.runtimes.append(entry)
        for name in names:
            if name not in finished:
                continue
            verdict_info = judge(data[name], finished[name])
            rec = data[name].record
            record = {
                "case": name,
                "runtime": spec,
                "runtime_name": info.name,
                "runtime_version": info.version,
                "dtype": rec["dtype"],
                "opset": rec["opset"],
                "family": rec["family"],
                "attributes": rec["attributes"],
                "ambiguities": rec.get("ambiguities") or [],
                "expect": rec["expect"],
                **verdict_info,
                "reproduce": reproduce_command(str(suite), spec, name),
            }
            record["verdict"] = str(record["verdict"])
            result.records.append(record)
            if Verdict(record["verdict"]) in NORMATIVE_FAILURES:
                hit = expectation_for(expected, spec, name, record["verdict"])
                if hit:
                    record["expected_by"] = f"{hit.runtime} {hit.case_glob} {hit.verdict}"
                    seen.add((hit.runtime, hit.case_glob, hit.verdict))
                else:
                    result.unexpected.append({"case": name, "runtime": spec, "verdict": record["verdict"]})
    result.stale_expectations = [
        asdict(e) for e in expected if (e.runtime, e.case_glob, e.verdict) not in seen
    ]
    result.seconds = time.perf_counter() - t0
    return result


def summary_lines(result: Validation) -> list[str]:
    """A short human summary: per runtime the verdict counts, then what needs a look."""
    lines = []
    for rt in result.runtimes:
        recs = [r for r in result.records if r["runtime"] == rt["spec"]]
        if not rt["available"]:
            lines.append(f"{rt['spec']}: unavailable - {rt['reason']}")
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
    lines.append(f"{len(result.unexpected)} unexpected normative failures; {result.seconds:.1f} s")
    return lines
