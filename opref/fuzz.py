"""Differential fuzzing of a runtime: draw valid ConvTranspose configurations, run each in the
runtime's worker, judge it exactly as ``validate`` does, and shrink every distinct failure to a
minimal configuration that fails the same way.

The search and the shrinking are hypothesis's own: one ``@given`` property per round, seeded
(``@seed``), with no example database, so a seed reproduces a run. The property raises one
exception class per failure *signature* (the verdict and its message with numbers and the case
name taken out), and hypothesis shrinks each interesting origin separately, so a shrink never
trades one failure for another. Signatures already shrunk in an earlier round are recorded but no
longer raised; the next round (a seed derived from the first) searches on for new ones.

Each minimal failure is written as a case of an ONNX-layout suite (``DIR/vectors``, with its
inputs exactly as run), replayed there with :func:`opref.validate.validate` (``DIR/results.json``,
which ``opref report`` reads), and listed in ``DIR/fuzz.json`` and ``DIR/summary.md``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, reject, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from opref import limits
from opref.cases import Case, _freeze
from opref.codec import SuiteError, read_tensor
from opref.dtypes import DTYPES
from opref.errors import SpecError
from opref.expectations import Expectation
from opref.judge import Judgement, judge
from opref.model import check_case_model
from opref.outdir import check as check_out
from opref.outdir import staged
from opref.pool import DEFAULT_START_TIMEOUT, CaseRunner
from opref.runtimes import RuntimeInfo, declared_unit_roundoff
from opref.suite import CaseData, parse_record
from opref.validate import Validation, dumps, reproduce_command, request_for, validate
from opref.vectors import build_case, case_inputs, generate
from opref.verdicts import NORMATIVE_FAILURES, Verdict
from opref.version import __version__

# Only the input variant exists so far (issue 14 adds initializers and symbolic dimensions).
VARIANTS = ("inputs",)
# Simplest first: hypothesis shrinks a sampled choice toward the first element.
DTYPE_ORDER = ("float32", "float16", "float64", "bfloat16")
OPSET_ORDER = (22, 11)
DEFAULT_MAX_ELEMENTS = 4096
FUZZ_NAME = "fuzz"  # the node name while searching (the data does not depend on it)
# Each round ends when hypothesis has shrunk what it found; a round that finds nothing new ends
# the search, and no run has more rounds than this (every round restarts the search).
MAX_ROUNDS = 50


class StopFuzz(BaseException):
    """The time budget ran out: stops hypothesis at once (it never catches a BaseException)."""


# --- drawing a configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """A drawn configuration: the case (inputs included) and the key its result is cached under."""

    case: Case
    key: tuple


def _axis(draw) -> tuple[int, int, int, int, int]:
    """(I, k, s, d, a) of one spatial axis; a at 0, at its bound max(s, d) - 1, or between."""
    size = draw(st.integers(1, 5))
    kernel = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    dilation = draw(st.integers(1, 3))
    bound = max(stride, dilation) - 1
    pad_out = draw(st.one_of(st.just(0), st.just(bound), st.integers(0, bound)))
    return size, kernel, stride, dilation, pad_out


@st.composite
def configurations(
    draw,
    dtypes: Sequence[str] = DTYPE_ORDER,
    opsets: Sequence[int] = OPSET_ORDER,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Draw:
    """A valid configuration: rank 1-3 (sometimes 4), groups with C/g and M/g up to 3, every
    auto_pad mode, output_shape with total padding T of either sign and parity (pads present
    or not: they must be ignored), asymmetric pads, dilation, output_padding at its bounds,
    bias, every dtype and opset, exact or random data. Everything shrinks toward the simplest
    value (rank 1, one channel, size 1, stride 1, no padding, float32, opset 22, exact data)."""
    rank = draw(st.sampled_from((1, 2, 3, 1, 2, 3, 4)))
    group = draw(st.integers(1, 3))
    cg, mg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch = draw(st.integers(1, 2))
    axes = [_axis(draw) for _ in range(rank)]
    sizes, kernels, strides, dilations, pad_outs = (list(v) for v in zip(*axes, strict=True))
    attrs: dict[str, object] = {}
    if any(s != 1 for s in strides):
        attrs["strides"] = strides
    if any(d != 1 for d in dilations):
        attrs["dilations"] = dilations
    if any(pad_outs):
        attrs["output_padding"] = pad_outs
    if group != 1:
        attrs["group"] = group
    if draw(st.booleans()):
        attrs["kernel_shape"] = kernels
    mode = draw(st.sampled_from(("NOTSET", "pads", "VALID", "SAME_UPPER", "SAME_LOWER", "output_shape")))
    if mode == "pads":
        attrs["pads"] = [draw(st.integers(0, 3)) for _ in range(2 * rank)]
    elif mode == "output_shape":
        auto_pad = draw(st.sampled_from(("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")))
        if auto_pad != "NOTSET":
            attrs["auto_pad"] = auto_pad
        elif draw(st.booleans()):
            attrs["pads"] = [draw(st.integers(0, 2)) for _ in range(2 * rank)]  # ignored by the spec
        full = [
            s * (i - 1) + a + (k - 1) * d + 1
            for i, k, s, d, a in zip(sizes, kernels, strides, dilations, pad_outs, strict=True)
        ]
        totals = [draw(st.integers(-3, 4)) for _ in range(rank)]
        attrs["output_shape"] = [f - t for f, t in zip(full, totals, strict=True)]
    elif mode != "NOTSET":
        attrs["auto_pad"] = mode
    bias = draw(st.booleans())
    dtype = draw(st.sampled_from(tuple(dtypes)))
    opset = draw(st.sampled_from(tuple(opsets)))
    if dtype == "bfloat16" and opset < 22:
        opset = 22  # bfloat16 exists from opset 22 on; a lower one would be must-reject
    data = draw(st.sampled_from(("exact", "random")))
    data_key = draw(st.integers(0, 2**16))
    x_shape = (batch, cg * group, *sizes)
    w_shape = (cg * group, mg, *kernels)
    case = Case(FUZZ_NAME, "fuzz", x_shape, w_shape, bias, _freeze(attrs), dtype, opset, data)
    try:
        geo = case.geometry()
    except SpecError:
        reject()  # an O <= 0 on some axis: not a valid configuration
    elements = [int(np.prod(s)) for s in (x_shape, w_shape, geo.output_shape)]
    if max(elements) > max_elements:
        reject()
    try:
        # The data comes from a name of its own, so that renaming the case keeps its inputs.
        inputs = case_inputs(dataclasses.replace(case, name=f"opref-fuzz-data-{data_key}"))
    except SuiteError:
        reject()  # no exactly summable integer data for this size (bfloat16, many terms)
    return Draw(dataclasses.replace(case, inputs=inputs), (case, data_key))


def case_data(case: Case) -> CaseData:
    """A case built in memory and read back as a suite reader would (the same checks)."""
    files, raw = build_case(case)
    record = parse_record(raw)
    arrays = [read_tensor(files[rel]) for rel in record.input_files]
    names, operands = check_case_model(files["model.onnx"], record, arrays)
    expected = read_tensor(files["test_data_set_0/output_0.pb"]) if record.expect == "output" else None
    return CaseData(record, files["model.onnx"], tuple(zip(names, arrays, strict=True)), operands, expected)


# --- failure signatures ---------------------------------------------------------------------

_NO_READING = "matches no documented reading; "
_NUMBER = re.compile(r"-?\b\d+(\.\d+)?([eE][-+]?\d+)?\b")
_NUMPY_SCALAR = re.compile(r"np\.\w+\(([^()]*)\)")
_NUMBER_LIST = re.compile(r"[\[{(][#\s,x.\[\]]*[\]})]")


def message_signature(message: str, case_name: str = "") -> str:
    """A judgement message with what varies between configurations taken out: the case name,
    numbers, lists of numbers (numpy prints a 2-D one over several lines), numpy scalar wrappers.
    Two failures with the same verdict and signature are taken for the same failure (until the
    diagnosis catalog, issue 15, can say more). At most 160 characters."""
    text = " ".join((message or "").split())
    # The judge prefixes this on ambiguous cases; the failure itself is the same one.
    text = text.removeprefix(_NO_READING)
    if case_name:
        text = text.replace(case_name, "<case>")
    text = _NUMPY_SCALAR.sub(r"\1", text)
    text = _NUMBER.sub("#", text)
    text = _NUMBER_LIST.sub("[...]", text)
    return text[:160]


def signature(verdict: str, message: str, case_name: str = "") -> tuple[str, str] | None:
    """(verdict, message signature) of a normative failure; None for anything that is not one."""
    if Verdict(verdict) not in NORMATIVE_FAILURES:
        return None
    return str(verdict), message_signature(message, case_name)


def size_of(case: Case) -> tuple:
    """How large a configuration is (what "minimal" means among failures of one signature)."""
    attrs = case.attributes
    geo = case.geometry()
    magnitude = sum(
        abs(v) if isinstance(v, int) else sum(abs(x) for x in v) for k, v in attrs.items() if k != "auto_pad"
    )
    elements = int(np.prod(case.x_shape)) + int(np.prod(case.w_shape)) + int(np.prod(geo.output_shape))
    return (
        len(case.x_shape),
        elements,
        magnitude,
        int(case.bias),
        DTYPE_ORDER.index(case.dtype),
        OPSET_ORDER.index(case.opset) if case.opset in OPSET_ORDER else 9,
        case.data != "exact",
    )


# --- one runtime --------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """One distinct failure: its signature and the smallest configuration that shows it."""

    verdict: str
    signature: str
    case: Case
    message: str
    first_seen: int  # the property call that first met it


@dataclass
class RuntimeFuzz:
    """What fuzzing one runtime gave."""

    spec: str
    info: RuntimeInfo
    calls: int = 0  # property calls (generation and shrinking)
    runtime_calls: int = 0  # distinct configurations sent to the runtime
    rounds: int = 0
    seconds: float = 0.0
    runtime_seconds: float = 0.0
    stopped: str = ""  # why the search ended
    verdicts: dict[str, int] = field(default_factory=dict)  # per distinct configuration
    found: list[Found] = field(default_factory=list)

    @property
    def examples_per_second(self) -> float:
        return self.runtime_calls / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class FuzzSettings:
    """The knobs of a fuzz run (the CLI's options)."""

    examples: int = 200
    seed: int = 0
    time_budget: float | None = None  # seconds per runtime
    dtypes: tuple[str, ...] = DTYPE_ORDER
    opsets: tuple[int, ...] = OPSET_ORDER
    variants: tuple[str, ...] = VARIANTS
    max_elements: int = DEFAULT_MAX_ELEMENTS
    timeout: float = 20.0  # seconds per case before "timeout"
    start_timeout: float = DEFAULT_START_TIMEOUT

    def __post_init__(self):
        limits.count("examples", self.examples, 1, limits.MAX_EXAMPLES)
        limits.count("max_elements", self.max_elements, 1, limits.MAX_ELEMENTS)
        if self.time_budget is not None:
            limits.seconds("time_budget", self.time_budget)
        limits.seconds("timeout", self.timeout)
        limits.seconds("start_timeout", self.start_timeout)


def _hypothesis_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        derandomize=False,  # @seed decides; derandomize would hash the function instead
        report_multiple_bugs=True,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        print_blob=False,
    )


class _Failure(Exception):
    """Base of the per-signature exception classes the property raises."""


def fuzz_runtime(
    spec: str,
    options: FuzzSettings,
    progress: Callable[[RuntimeFuzz], None] | None = None,
) -> RuntimeFuzz:
    """Search ``spec`` for failures within the example and time budgets; shrink each."""
    t0 = time.perf_counter()
    runner = CaseRunner(spec, timeout=options.timeout, start_timeout=options.start_timeout)
    result = RuntimeFuzz(spec, runner.info)
    if not runner.info.available:
        runner.close()
        result.stopped = "unavailable"
        return result
    cache: dict[tuple, tuple[str, str]] = {}  # configuration -> (verdict, message)
    classes: dict[tuple[str, str], type[_Failure]] = {}
    raised: dict[tuple[str, str], list[tuple[int, Case, str]]] = {}
    shrunk: set[tuple[str, str]] = set()
    # The budget is for examples: it starts once the runtime is up, and the first example always
    # runs (a loaded machine that takes the whole budget to start a worker still fuzzes).
    deadline = None if options.time_budget is None else time.perf_counter() + options.time_budget
    strategy = configurations(options.dtypes, options.opsets, options.max_elements)

    def run_one(drawn: Draw) -> tuple[str, str]:
        if drawn.key not in cache:
            case = case_data(drawn.case)
            request, limit = request_for(case)
            r0 = time.perf_counter()
            u = declared_unit_roundoff(spec, case.record.dtype)
            judgement: Judgement = judge(case, runner.run(request, limit), u)
            result.runtime_seconds += time.perf_counter() - r0
            result.runtime_calls += 1
            cache[drawn.key] = (str(judgement.verdict), judgement.message)
            result.verdicts[str(judgement.verdict)] = result.verdicts.get(str(judgement.verdict), 0) + 1
            if progress:
                progress(result)
        return cache[drawn.key]

    def prop(drawn: Draw) -> None:
        if deadline is not None and result.calls and time.perf_counter() > deadline:
            raise StopFuzz
        result.calls += 1
        verdict, message = run_one(drawn)
        sig = signature(verdict, message, drawn.case.name)
        if sig is None or sig in shrunk:
            return
        raised.setdefault(sig, []).append((result.calls, drawn.case, message))
        cls = classes.setdefault(sig, type(f"Failure{len(classes)}", (_Failure,), {}))
        raise cls(f"{sig[0]}: {sig[1]}")

    try:
        while result.calls < options.examples and result.rounds < MAX_ROUNDS:
            before = set(raised)
            test = seed(options.seed * 1000 + result.rounds)(
                _hypothesis_settings(options.examples - result.calls)(given(strategy)(prop))
            )
            result.rounds += 1
            try:
                test()
            except StopFuzz:
                result.stopped = "time budget"
                break
            except (_Failure, ExceptionGroup, HypothesisException):
                pass  # the failures are in `raised`; a flaky replay (a runtime that varies) too
            new = set(raised) - before
            shrunk |= set(raised)
            if not new:
                result.stopped = "example budget" if result.calls >= options.examples else "no new failure"
                break
        else:
            result.stopped = "example budget" if result.calls >= options.examples else "round limit"
    finally:
        runner.close()
    for sig, seen in raised.items():
        first = min(call for call, _, _ in seen)
        _, case, message = min(seen, key=lambda item: size_of(item[1]))
        result.found.append(Found(sig[0], sig[1], case, message, first))
    result.found.sort(key=lambda f: f.first_seen)
    result.seconds = time.perf_counter() - t0
    return result


# --- a whole run: several runtimes, then the written suite and its replay --------------------


def runtime_label(spec: str) -> str:
    """A runtime spec as a fragment of a case name: ``ort:cpu`` -> ``ort_cpu``."""
    label = re.sub(r"[^A-Za-z0-9]+", "_", spec.split("@")[0]).strip("_")
    return label[:40] or "runtime"


def _failure_case(found: Found, spec: str, label: str, index: int, options: FuzzSettings) -> Case:
    description = f"found by opref fuzz --seed {options.seed} on {spec}: {found.verdict}: {found.signature}"
    return dataclasses.replace(
        found.case,
        name=f"fuzz_{label}_{index:03d}",
        family="fuzz",
        features=("fuzz", found.verdict),
        description=description,
    )


def baseline_signatures(results: Mapping[str, object]) -> dict[str, set[tuple[str, str]]]:
    """{runtime spec: failure signatures} of a results.json (the committed suite's, say)."""
    out: dict[str, set[tuple[str, str]]] = {}
    for rec in results.get("records", []):
        sig = signature(rec["verdict"], rec.get("message", ""), rec["case"])
        if sig is not None:
            out.setdefault(rec["runtime"], set()).add(sig)
    return out


@dataclass
class FuzzRun:
    """Everything ``fuzz.json`` holds, and the written cases."""

    options: FuzzSettings
    runtimes: list[RuntimeFuzz]
    cases: dict[str, tuple[str, Found]] = field(default_factory=dict)  # name -> (spec, failure)
    replay: Validation | None = None
    baseline: dict[str, set[tuple[str, str]]] | None = None
    seconds: float = 0.0
    expected: list[Expectation] | None = None  # known-failures lines, when given

    def reproduce_command(self, out: str, spec: str, name: str) -> str:
        return reproduce_command(str(Path(out) / "vectors"), spec, name)

    def replayed(self, spec: str, name: str) -> dict | None:
        if self.replay is None:
            return None
        for rec in self.replay.records:
            if rec["runtime"] == spec and rec["case"] == name:
                return rec
        return None

    def failures(self, out: str) -> list[dict]:
        rows = []
        for name, (spec, found) in self.cases.items():
            case = found.case
            rec = self.replayed(spec, name)
            rows.append(
                {
                    "case": name,
                    "runtime": spec,
                    "verdict": found.verdict,
                    "signature": found.signature,
                    "message": found.message,
                    "x_shape": list(case.x_shape),
                    "w_shape": list(case.w_shape),
                    "bias": case.bias,
                    "attributes": case.attributes,
                    "dtype": case.dtype,
                    "opset": case.opset,
                    "data": case.data,
                    "first_seen": found.first_seen,
                    "replayed": None if rec is None else rec["verdict"],
                    "reproduced": None
                    if rec is None
                    else signature(rec["verdict"], rec["message"], name) == (found.verdict, found.signature),
                    "known": None if self.expected is None or rec is None else "expected_by" in rec,
                    "in_baseline": None
                    if self.baseline is None
                    else (found.verdict, found.signature) in self.baseline.get(spec, set()),
                    "reproduce": self.reproduce_command(out, spec, name),
                }
            )
        return rows

    def to_dict(self, out: str) -> dict:
        opts = dataclasses.asdict(self.options)
        return {
            "opref_version": __version__,
            "kind": "fuzz",
            "settings": opts,
            "seconds": round(self.seconds, 3),
            "runtimes": [
                {
                    "spec": r.spec,
                    "name": r.info.name,
                    "version": r.info.version,
                    "available": r.info.available,
                    "reason": r.info.reason,
                    "calls": r.calls,
                    "examples": r.runtime_calls,
                    "rounds": r.rounds,
                    "seconds": round(r.seconds, 3),
                    "runtime_seconds": round(r.runtime_seconds, 3),
                    "examples_per_second": round(r.examples_per_second, 2),
                    "stopped": r.stopped,
                    "verdicts": dict(sorted(r.verdicts.items())),
                    "failures": sum(1 for spec, _ in self.cases.values() if spec == r.spec),
                }
                for r in self.runtimes
            ],
            "failures": self.failures(out),
        }

    @property
    def exit_code(self) -> int:
        unavailable = any(not r.info.available for r in self.runtimes)
        # With known failures, a failure fails the run unless its replay is listed.
        listed = self.expected is not None
        unknown = [r for r in self.failures("") if not r["known"]] if listed else self.cases
        return 1 if unknown or unavailable else 0


def _attributes_text(row: Mapping[str, object]) -> str:
    attrs = " ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in row["attributes"].items())
    parts = [f"X{row['x_shape']}", f"W{row['w_shape']}", "B" if row["bias"] else "", attrs]
    parts += [row["dtype"], f"opset {row['opset']}", f"{row['data']} data"]
    return " ".join(p for p in parts if p).replace(", ", ",")


def summary_markdown(data: Mapping[str, object]) -> str:
    """The Markdown summary: per runtime the throughput, then one line per distinct failure."""
    lines = ["# opref fuzz", ""]
    s = data["settings"]
    lines.append(
        f"seed {s['seed']}, up to {s['examples']} examples"
        + (f" or {s['time_budget']:g} s" if s["time_budget"] else "")
        + f" per runtime; dtypes {', '.join(s['dtypes'])}; opsets {', '.join(map(str, s['opsets']))}; "
        f"variants {', '.join(s['variants'])}; at most {s['max_elements']} elements per tensor"
    )
    header = ["runtime", "examples", "examples/s", "rounds", "stopped by", "distinct failures"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in data["runtimes"]:
        if not r["available"]:
            lines.append(f"| {r['spec']} | unavailable: {r['reason']} | | | | |")
            continue
        lines.append(
            f"| {r['spec']} ({r['name']} {r['version']}) | {r['examples']} | {r['examples_per_second']:.1f} "
            f"| {r['rounds']} | {r['stopped']} | {r['failures']} |"
        )
    lines += ["", "## Failures", ""]
    if not data["failures"]:
        lines.append("None.")
    for row in data["failures"]:
        new = {None: "", True: " (in the baseline)", False: " **new**"}[row["in_baseline"]]
        new += {None: "", True: " (known: listed in --expected)", False: " **not listed**"}[row.get("known")]
        replay = " (did NOT reproduce on replay)" if row["reproduced"] is False else ""
        lines.append(
            f"- `{row['case']}` {row['runtime']}: **{row['verdict']}**{new}{replay} — "
            f"{_attributes_text(row)} — {row['signature']} — `{row['reproduce']}`"
        )
    return "\n".join(lines) + "\n"


def _moved(replay: Validation, suite: Path) -> Validation:
    """The replay as it reads once the staging directory is swapped in: the suite is
    ``suite``, and so are the reproduce commands."""
    replay.suite = str(suite)
    for rec in replay.records:
        rec["reproduce"] = reproduce_command(str(suite), rec["runtime"], rec["case"])
    return replay


def fuzz(
    runtimes: Sequence[str],
    out: str | Path,
    options: FuzzSettings,
    *,
    baseline: Mapping[str, object] | None = None,
    progress: Callable[[RuntimeFuzz], None] | None = None,
    expected: Sequence[Expectation] | None = None,
) -> FuzzRun:
    """Fuzz each runtime, write the minimal failures as ``out/vectors`` and replay them there
    (``out/results.json``), then write ``out/fuzz.json`` and ``out/summary.md``. With ``expected``
    (known-failures lines: fuzz cases are ``fuzz_<runtime>_NNN``), listed failures pass."""
    for v in options.variants:
        if v not in VARIANTS:
            raise SpecError("variants", v, f"must be one of {list(VARIANTS)} (model variants: issue 14)")
    for d in options.dtypes:
        if d not in DTYPES:
            raise SpecError("dtype", d, f"must be one of {list(DTYPES)}")
    t0 = time.perf_counter()
    out = Path(out)
    check_out(out, "fuzz")  # refused now, not after the search
    signatures = None if baseline is None else baseline_signatures(baseline)
    run = FuzzRun(options, [], baseline=signatures, expected=None if expected is None else list(expected))
    labels: set[str] = set()
    for k, spec in enumerate(runtimes):
        result = fuzz_runtime(spec, options, progress)
        run.runtimes.append(result)
        label = runtime_label(spec)
        label = label if label not in labels else f"{label}_{k}"  # two specs alike to 40 characters
        labels.add(label)
        for i, found in enumerate(result.found):
            case = _failure_case(found, spec, label, i, options)
            run.cases[case.name] = (spec, dataclasses.replace(found, case=case))
    # Written into a staging directory swapped in whole (opref.outdir): an earlier run's cases
    # and replay are not this run's, and a directory opref did not write is refused, not cleaned.
    with staged(out, "fuzz") as stage:
        if run.cases:
            suite = stage / "vectors"
            parameters = {"fuzz_seed": options.seed, "runtimes": list(runtimes), "examples": options.examples}
            generate(suite, [found.case for _, found in run.cases.values()], parameters)
            specs = [r.spec for r in run.runtimes if r.info.available]
            timing = {"timeout": options.timeout, "start_timeout": options.start_timeout}
            replay = validate(suite, specs, **timing, expected=expected or ())
            run.replay = _moved(replay, out / "vectors")
            run.replay.write(stage)
        run.seconds = time.perf_counter() - t0
        data = run.to_dict(str(out))
        (stage / "fuzz.json").write_text(dumps(data))
        (stage / "summary.md").write_text(summary_markdown(data), encoding="utf-8")
    return run
