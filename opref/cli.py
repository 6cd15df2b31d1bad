"""The ``opref`` command line: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence

from opref import limits
from opref import readings as rd
from opref.cases import OPSETS, VARIANTS
from opref.errors import SpecError
from opref.escape import visible
from opref.geometry import formula_lines, geometry, to_dict
from opref.version import __version__


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _memory(text: str) -> int:
    from opref.reference import parse_memory

    try:
        return parse_memory(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _reading(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected AMBIGUITY=READING, got {text!r}")
    if key not in rd.AMBIGUITIES:
        raise argparse.ArgumentTypeError(f"unknown ambiguity {key!r}; known: {', '.join(rd.AMBIGUITIES)}")
    known = rd.AMBIGUITIES[key].readings
    if value not in known:
        raise argparse.ArgumentTypeError(f"unknown reading {value!r} of {key}; known: {', '.join(known)}")
    return key, value


# Options whose value is a comma-separated list of integers, possibly negative.
_INT_LISTS = ("--x-shape", "--w-shape", "--dilations", "--kernel-shape", "--output-padding")
_INT_LISTS += ("--output-shape", "--pads", "--strides")
_INT_LISTS += ("--stride", "--dilation", "--dilation-rate", "--output-size", "--padding")
_NEGATIVE_LIST = re.compile(r"-\d+(,\s*-?\d+)*,?")


def _join_negative_lists(argv: Sequence[str]) -> list[str]:
    """``--pads -1,0`` as ``--pads=-1,0``: argparse takes a value starting with '-' that is
    not a plain negative number for an option, so the SpecError for negative pads would
    never be reached."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _INT_LISTS and i + 1 < len(argv) and _NEGATIVE_LIST.fullmatch(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _add_attribute_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--x-shape", type=_ints, required=True, help="X's shape, e.g. 1,1,3,3")
    p.add_argument("--w-shape", type=_ints, required=True, help="W's shape, e.g. 1,2,3,3")
    p.add_argument("--auto-pad", default=None, help="NOTSET (default), SAME_UPPER, SAME_LOWER or VALID")
    for name in ("dilations", "kernel_shape", "output_padding", "output_shape", "pads", "strides"):
        p.add_argument(f"--{name.replace('_', '-')}", type=_ints, default=None, dest=name)
    p.add_argument("--group", type=int, default=None, help="default 1")
    p.add_argument("--opset", type=int, choices=OPSETS, default=22, help="the ConvTranspose version")
    p.add_argument("--bias", action="store_true", help="the node has a bias input B of shape [M]")
    p.add_argument(
        "--reading",
        type=_reading,
        action="append",
        default=[],
        metavar="ID=READING",
        help=f"a non-default reading, e.g. {rd.NEGATIVE_TOTAL_PADDING}=clamp",
    )


def _attributes(args: argparse.Namespace) -> dict:
    return {
        "auto_pad": args.auto_pad or "NOTSET",
        "dilations": args.dilations,
        "group": 1 if args.group is None else args.group,
        "kernel_shape": args.kernel_shape,
        "output_padding": args.output_padding,
        "output_shape": args.output_shape,
        "pads": args.pads,
        "strides": args.strides,
    }


def _json_value(value: object) -> object:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _print_geometry(geo, pads_given: bool) -> None:
    """The explanation of a resolved geometry: the rule, the formulas with this case's
    numbers, pads, output shape and the ambiguities it touches."""
    print(f"ConvTranspose X{list(geo.x_shape)} W{list(geo.w_shape)} group={geo.group} opset={geo.opset}")
    ignored = " (pads ignored)" if geo.rule.value == "output_shape" and pads_given else ""
    print(f"rule: {geo.rule.value}{ignored}")
    for line in formula_lines(geo):
        print(line)
    print(f"pads (begins, then ends): {list(geo.pads)}")
    print(f"output shape: {list(geo.output_shape)}")
    if not geo.ambiguities:
        print("ambiguities: none (the spec text fully determines this result)")
    for aid in geo.ambiguities:
        amb = rd.AMBIGUITIES[aid]
        print(f"ambiguity {aid}: {amb.summary}")
        print(f"    computed under reading '{geo.readings[aid]}': {amb.readings[geo.readings[aid]]}")


def _print_spec_error(exc: SpecError) -> int:
    error = {"attribute": exc.attribute, "value": _json_value(exc.value), "rule": exc.rule}
    print(json.dumps({"error": {**error, "message": str(exc)}}, indent=2))
    return 2


def cmd_explain(args: argparse.Namespace) -> int:
    if args.framework:
        return _explain_framework(args)
    foreign = [f"--{o.replace('_', '-')}" for o in _FRAMEWORK_ONLY if getattr(args, o) is not None]
    if foreign:
        print(f"opref: error: {', '.join(foreign)}: only with --from FRAMEWORK", file=sys.stderr)
        return 2
    try:
        geo = geometry(
            args.x_shape,
            args.w_shape,
            **_attributes(args),
            opset=args.opset,
            readings=dict(args.reading),
            b_shape=[args.w_shape[1] * (args.group or 1)] if args.bias and len(args.w_shape) > 1 else None,
        )
    except SpecError as exc:
        if not args.json:
            raise
        return _print_spec_error(exc)
    if args.json:
        print(json.dumps(to_dict(geo), indent=2))
        return 0
    _print_geometry(geo, bool(args.pads))
    return 0


# explain --from: each framework's own argument names (the keywords of its opref.frameworks
# function), and the ONNX-only options that have no meaning there.
_FRAMEWORK_ARGUMENTS = {
    "pytorch": ("stride", "padding", "output_padding", "dilation", "groups", "output_size"),
    "keras": ("strides", "padding", "output_padding", "dilation_rate"),
    "tensorflow": ("output_shape", "strides", "padding", "dilations"),
    "paddle": ("stride", "padding", "output_padding", "dilation", "groups", "output_size"),
}
_FRAMEWORK_ONLY = ("stride", "padding", "dilation", "dilation_rate", "groups", "output_size")
_ONNX_ONLY = ("auto_pad", "kernel_shape", "pads", "group")
_PER_AXIS = ("stride", "strides", "output_padding", "dilation", "dilations", "dilation_rate")


def _framework_padding(framework: str, text: str) -> object:
    if re.fullmatch(r"[A-Za-z]+", text.strip()):
        return text.strip()
    values = _ints(text)
    if framework == "tensorflow":  # explicit (begin, end) pairs, written flat
        return [values[i : i + 2] for i in range(0, len(values), 2)]
    return values[0] if len(values) == 1 else values


def _framework_keywords(args: argparse.Namespace) -> dict:
    """The keywords of the framework's opref.frameworks function, from the options given.

    An option that is not that framework's (another framework's, or an ONNX attribute)
    raises ValueError: a usage error, not a rule of the spec."""
    framework = args.framework
    allowed = _FRAMEWORK_ARGUMENTS[framework]
    given = [
        o for o in (*_FRAMEWORK_ONLY, *_ONNX_ONLY, *_PER_AXIS, "output_shape") if getattr(args, o) is not None
    ]
    stray = sorted({o for o in given if o not in allowed} | ({"bias"} if args.bias else set()))
    if stray:
        names = ", ".join(f"--{o.replace('_', '-')}" for o in stray)
        known = ", ".join(f"--{o.replace('_', '-')}" for o in allowed)
        raise ValueError(f"{names}: not an argument of --from {framework} (its arguments: {known})")
    keywords = {}
    for name in allowed:
        value = getattr(args, name)
        if value is None:
            continue
        if name == "padding":
            value = _framework_padding(framework, value)
        elif name in _PER_AXIS and len(value) == 1:
            value = value[0]
        keywords[name] = value
    if framework == "tensorflow":
        missing = [
            f"--{o.replace('_', '-')}" for o in ("output_shape", "strides", "padding") if o not in keywords
        ]
        if missing:
            raise ValueError(f"--from tensorflow needs {', '.join(missing)}")
    return keywords


def _explain_framework(args: argparse.Namespace) -> int:
    from opref.frameworks import SPELLERS

    try:
        keywords = _framework_keywords(args)
    except ValueError as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.framework == "tensorflow":
            output_shape = keywords.pop("output_shape")
            spelling = SPELLERS["tensorflow"](args.x_shape, args.w_shape, output_shape, **keywords)
        else:
            spelling = SPELLERS[args.framework](args.x_shape, args.w_shape, **keywords)
        geo = geometry(
            spelling.x_shape,
            spelling.w_shape,
            **spelling.attributes,
            opset=args.opset,
            readings=dict(args.reading),
        )
    except SpecError as exc:
        if not args.json:
            raise
        return _print_spec_error(exc)
    if args.json:
        print(json.dumps({"spelling": spelling.to_dict(), "geometry": to_dict(geo)}, indent=2))
        return 0
    attributes = " ".join(
        f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in spelling.attributes.items()
    )
    print(f"{spelling.framework} layer, output {list(spelling.output_shape)}, spelled in ONNX as:")
    print(f"    {attributes}")
    depends = ", ".join(spelling.ambiguities) or "none (the spec text alone decides it)"
    print(f"spelling depends on: {depends}")
    for note in spelling.notes:
        print(f"note: {note}")
    print()
    _print_geometry(geo, True)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from opref.cases import catalog
    from opref.vectors import generate, progress_bar

    try:
        cases = catalog(
            args.suite,
            opsets=args.opset,
            dtypes=args.dtype,
            only=args.only,
            random=args.random,
            seed=args.seed,
            variants=args.variants,
        )
    except SpecError as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print("opref: error: no case matches the filters", file=sys.stderr)
        return 2
    parameters = {
        "suite": args.suite,
        "opsets": args.opset,
        "dtypes": args.dtype,
        "only": args.only,
        "random": args.random,
        "seed": args.seed,
        "variants": args.variants,
    }
    show = progress_bar if sys.stderr.isatty() and not args.quiet else None
    try:
        summary = generate(args.out, cases, parameters, progress=show)
    except ValueError as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"opref: error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(summary.line())
    return 0


def _shard(text: str) -> tuple[int, int]:
    i, sep, n = text.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = (0, 0)
    if not sep or not 1 <= shard[0] <= shard[1]:
        raise argparse.ArgumentTypeError(f"expected i/n with 1 <= i <= n, got {text!r}")
    return shard


def _positive_seconds(text: str) -> float:
    try:
        return limits.seconds("seconds", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds > 0 and <= {limits.MAX_SECONDS:g}, got {text!r}"
        ) from None


def _count(minimum: int, maximum: int):
    def parse(text: str) -> int:
        try:
            return limits.count("value", int(text), minimum, maximum)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {minimum} to {maximum}, got {text!r}"
            ) from None

    return parse


def cmd_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from opref.codec import SuiteError
    from opref.expectations import read_expected
    from opref.outdir import check as check_out
    from opref.outdir import staged
    from opref.reaper import adopt_orphans
    from opref.runtimes import RuntimeSpecError, check
    from opref.validate import Validation, summary_lines, validate

    # Everything is checked before --out is touched: a usage error leaves the last run's results.
    try:
        out = check_out(args.out, "validate")
        suite = Path(args.vectors).absolute()
        if out == suite or suite in out.parents:
            raise ValueError(f"--out {out}: is inside the suite {suite}; results go elsewhere")
        for spec in args.runtime or ["ort:cpu"]:
            check(spec)
        expected = read_expected(args.expected) if args.expected else []
    except (OSError, ValueError, RuntimeSpecError) as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    adopt_orphans()  # what a dead worker's runtime left running comes back to us, and is ended
    try:
        with staged(out, "validate") as stage:
            # Until this run finishes, the staging results.json says so.
            Validation(args.vectors, complete=False).write(stage)
            result = validate(
                args.vectors,
                args.runtime or ["ort:cpu"],
                only=args.only,
                shard=args.shard,
                jobs=args.jobs,
                timeout=args.timeout,
                start_timeout=args.start_timeout,
                expected=expected,
                allow_unavailable=args.allow_unavailable,
                variants=args.variant,
                save_tensors=args.save_tensors,
                tensors_dir=stage,
                max_memory=args.max_memory,
            )
            if result.tensors_root:
                result.tensors_root = str(out)  # where the tensors are once the staging is swapped in
            result.write(stage)
    except (OSError, ValueError, RuntimeSpecError, SuiteError) as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    path = out / "results.json"
    for line in summary_lines(result):
        print(visible(line))
    print(visible(f"results: {path}" + ("" if result.complete else " (incomplete)")))
    code = result.exit_code
    if code == 0 and args.strict_expected and result.stale_expectations:
        print("opref: stale expectations fail the run (--strict-expected)", file=sys.stderr)
        code = 1
    return code


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from opref.outdir import check as check_out
    from opref.report import load_results, write_report

    try:
        check_out(args.out, "report")
        results = load_results(args.results)
        roots = [Path(p) if Path(p).is_dir() else Path(p).parent for p in args.results]
        report = write_report(results, args.out, roots=roots)
    except (OSError, ValueError) as exc:
        print(visible(f"opref: error: {exc}"), file=sys.stderr)
        return 2
    d = report.data
    counts = f"{len(report.records)} results, {d['unexpected_count']} unexpected normative failures"
    print(visible(f"report: {args.out}/index.md ({counts})"))
    if d["notes"]:
        print(visible(f"{len(d['notes'])} records could not be reported as they are; index.md lists them"))
    for e in d["stale_expectations"]:
        print(visible(f"STALE expectation (line {e['line']}): '{e['key']}' now passes - remove it"))
    code = d["exit_code"]
    if code == 0 and args.strict_expected and d["stale_expectations"]:
        code = 1
    return 0 if args.exit_zero else code


def cmd_bugreport(args: argparse.Namespace) -> int:
    from opref.bugreport import write_bug_reports
    from opref.vectors import SuiteError

    try:
        reports = write_bug_reports(args.results, args.out, suite=args.suite, upstream=args.upstream)
    except (OSError, ValueError, SuiteError) as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    print(f"bug reports: {args.out}/index.md ({len(reports)} reports)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from opref.suite import recompute, verify

    checked = verify(args.vectors)
    problems = dict(checked.case_problems)
    if args.recompute:
        problems.update(recompute(args.vectors, checked.records.values()))
    for line in checked.suite_problems:
        print(f"suite problem: {line}")
    for name, why in sorted(problems.items()):
        print(f"case problem: {name}: {why}")
    good = len(checked.records) - len(set(problems) & set(checked.records))
    what = "files, records and recomputed outputs" if args.recompute else "files and records"
    print(f"{good} of {len(checked.records) + len(checked.case_problems)} cases verified ({what})")
    return 1 if problems or checked.suite_problems else 0


def cmd_fuzz(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from opref.fuzz import DTYPE_ORDER, OPSET_ORDER, FuzzSettings, fuzz
    from opref.outdir import check as check_out
    from opref.reaper import adopt_orphans
    from opref.runtimes import RuntimeSpecError, check

    try:
        out = check_out(args.out, "fuzz")
        for spec in args.runtime:
            check(spec)
        baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    except (OSError, ValueError, RuntimeSpecError) as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    options = FuzzSettings(
        examples=args.examples,
        seed=args.seed,
        time_budget=args.time_budget,
        dtypes=tuple(args.dtype or DTYPE_ORDER),
        opsets=tuple(args.opset or OPSET_ORDER),
        variants=tuple(args.variants or ["inputs"]),
        max_elements=args.max_elements,
        timeout=args.timeout,
    )

    def show(r) -> None:
        if sys.stderr.isatty() and r.runtime_calls % 25 == 0:
            sys.stderr.write(f"\r{r.spec}: {r.runtime_calls} examples, {dict(sorted(r.verdicts.items()))}")
            sys.stderr.flush()

    adopt_orphans()
    try:
        run = fuzz(args.runtime, out, options, baseline=baseline, progress=show)
    except (OSError, ValueError) as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(visible((out / "summary.md").read_text(encoding="utf-8")), end="")
    print(f"fuzz results: {out / 'fuzz.json'}")
    return run.exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opref", description="ONNX ConvTranspose reference, vectors and validator"
    )
    parser.add_argument("--version", action="version", version=f"opref {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="resolve pads and output shape for shapes and attributes")
    _add_attribute_options(p)
    p.add_argument("--json", action="store_true", help="print the resolved geometry as JSON")
    p.add_argument(
        "--from",
        dest="framework",
        choices=["pytorch", "keras", "tensorflow", "paddle"],
        help="spell a framework layer in ONNX first; takes that framework's argument names "
        "(pytorch/paddle: --stride --padding --output-padding --dilation --groups --output-size; "
        "keras: --strides --padding --output-padding --dilation-rate; tensorflow: --output-shape "
        "--strides --padding --dilations); shapes in ONNX layout",
    )
    for name in ("stride", "dilation", "dilation_rate", "output_size"):
        p.add_argument(f"--{name.replace('_', '-')}", type=_ints, default=None, dest=name)
    p.add_argument("--padding", default=None, help="with --from: an int list, or same/valid")
    p.add_argument("--groups", type=int, default=None)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("generate", help="write a conformance suite in ONNX's backend-test layout")
    p.add_argument("--out", required=True, help="the suite directory (replaced atomically)")
    p.add_argument("--suite", choices=["default", "full"], default="default")
    p.add_argument("--opset", type=int, action="append", help="keep only cases of this opset (repeatable)")
    p.add_argument("--dtype", action="append", help="keep only cases of this dtype (repeatable)")
    p.add_argument("--only", action="append", metavar="GLOB", help="keep only cases whose name matches")
    p.add_argument(
        "--random",
        type=_count(0, limits.MAX_RANDOM_CASES),
        default=0,
        metavar="N",
        help="add N seeded random configurations",
    )
    p.add_argument(
        "--seed", type=_count(0, limits.MAX_SEED), default=0, metavar="S", help="the seed of --random"
    )
    p.add_argument(
        "--variants",
        type=lambda t: [v for v in t.split(",") if v],
        default=list(VARIANTS),
        metavar="V,V,...",
        help=f"model variants of each case (default all: {','.join(VARIANTS)})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("validate", help="run runtimes over a suite and give each case a verdict")
    p.add_argument("vectors", help="a suite directory (opref generate's output, e.g. vectors/)")
    p.add_argument(
        "--runtime",
        action="append",
        metavar="SPEC",
        help="ort:cpu (default), ort:cuda?use_tf32=0, ort:<Provider>, onnx-reference, openvino, "
        "py:MODULE:FACTORY; repeatable",
    )
    p.add_argument("--out", required=True, help="directory for results.json")
    p.add_argument("--expected", help="file of known failures: 'runtime case-glob verdict # reason' lines")
    p.add_argument("--only", action="append", metavar="GLOB", help="only cases whose name matches")
    p.add_argument(
        "--variant",
        action="append",
        choices=list(VARIANTS),
        help="only cases of this model variant (repeatable; default: every variant in the suite)",
    )
    p.add_argument("--jobs", type=_count(1, limits.MAX_JOBS), default=1, help="worker processes per runtime")
    p.add_argument("--shard", type=_shard, help="run only shard i of n, e.g. 2/4")
    p.add_argument(
        "--timeout", type=_positive_seconds, default=60.0, help="seconds per case before 'timeout'"
    )
    p.add_argument(
        "--start-timeout",
        type=_positive_seconds,
        default=120.0,
        help="seconds a worker may take to start (import the runtime, build the adapter)",
    )
    p.add_argument(
        "--allow-unavailable",
        action="store_true",
        help="a runtime that cannot run here does not fail the run (for auto-detected runtimes)",
    )
    p.add_argument(
        "--strict-expected",
        action="store_true",
        help="a known-failures line that no longer fails makes the run fail",
    )
    p.add_argument(
        "--save-tensors",
        choices=["failures", "all", "none"],
        default="none",
        help="write X, W, B, the expected and the runtime's output (.npy and .pb) under OUT/tensors/ "
        "for failing (case, runtime) pairs, for all, or for none (default)",
    )
    p.add_argument(
        "--max-memory",
        type=_memory,
        metavar="SIZE",
        help="working memory of each reference computation, e.g. 512M or 2G (default: a quarter of"
        " this machine's memory); a larger layer is computed in chunks",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("verify", help="check a suite's files and records (and recompute its outputs)")
    p.add_argument("vectors", help="a suite directory")
    p.add_argument(
        "--recompute",
        action="store_true",
        help="re-derive every expected output with opref's reference and compare it with output_0.pb",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("report", help="render results.json files as index.md, report.json, junit.xml, a plot")
    p.add_argument("results", nargs="+", help="results.json files or the directories holding them")
    p.add_argument("--out", required=True, help="the report directory")
    p.add_argument(
        "--exit-zero",
        action="store_true",
        help="exit 0 even when the results hold unexpected failures (default: validate's exit code)",
    )
    p.add_argument("--strict-expected", action="store_true", help="stale known-failures lines fail too")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bugreport", help="one upstream bug report (ISSUE.md + repro.py) per failure cluster")
    p.add_argument("results", help="a results directory (report.json or results.json) or one of those files")
    p.add_argument("--out", required=True, help="the directory for <runtime>/<nn>-<slug>/ and index.md")
    p.add_argument("--suite", help="the vectors the results ran on (default: the suite their commands name)")
    p.add_argument("--upstream", help="the upstream status file (default: OUT/upstream.json)")
    p.set_defaults(func=cmd_bugreport)

    p = sub.add_parser("fuzz", help="search a runtime for failures on drawn configurations; shrink each")
    p.add_argument("--runtime", action="append", required=True, metavar="SPEC", help="as for validate")
    p.add_argument(
        "--examples",
        type=_count(1, limits.MAX_EXAMPLES),
        default=200,
        metavar="N",
        help="examples per runtime",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the same seed draws the same examples")
    p.add_argument("--out", required=True, help="directory for vectors/, results.json, fuzz.json, summary.md")
    p.add_argument(
        "--time-budget", type=_positive_seconds, metavar="SECONDS", help="stop each runtime after this long"
    )
    p.add_argument("--dtype", action="append", choices=["float32", "float16", "float64", "bfloat16"])
    p.add_argument("--opset", type=int, action="append", choices=[11, 22])
    p.add_argument(
        "--variants", action="append", choices=["inputs"], help="model variants (only 'inputs' exists yet)"
    )
    p.add_argument(
        "--max-elements", type=_count(1, limits.MAX_ELEMENTS), default=4096, metavar="E", help="per tensor"
    )
    p.add_argument("--timeout", type=_positive_seconds, default=20.0, help="seconds per case")
    p.add_argument("--baseline", metavar="RESULTS", help="a results.json: mark failures it already shows")
    p.set_defaults(func=cmd_fuzz)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_lists(sys.argv[1:] if argv is None else argv))
    from opref.codec import SuiteError

    try:
        return args.func(args)
    except (SpecError, SuiteError) as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("opref: interrupted", file=sys.stderr)
        return 130
