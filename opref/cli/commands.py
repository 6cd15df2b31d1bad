"""The commands that read and write suites and results: generate, validate, report, bugreport,
verify and fuzz. Each parses nothing: it calls the library with what the parser gave."""

from __future__ import annotations

import argparse
import json
import sys

from opref.errors import SpecError
from opref.escape import visible


def cmd_generate(args: argparse.Namespace) -> int:
    from opref.cases import catalog
    from opref.progress import Progress
    from opref.vectors import generate

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
    shown = None if args.quiet else Progress()
    tick = shown and (lambda done, total: shown("generate", done, total))
    try:
        summary = generate(args.out, cases, parameters, progress=tick)
    except ValueError as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"opref: error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        if shown:
            shown.close()
    print(summary.line())
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from opref.cases import catalog
    from opref.quantize import MODES, quantized_cases
    from opref.vectors import generate

    modes = args.mode or list(MODES)
    try:
        cases, failures, version = quantized_cases(catalog(args.suite, only=args.only), modes)
    except ImportError as exc:
        print(f"opref: error: onnxruntime.quantization is not importable: {exc}", file=sys.stderr)
        return 2
    for f in failures:
        print(f"TOOL FAILURE (quantizer, not a runtime verdict): {f.case} {f.mode}: {f.message[:300]}")
    if not cases:
        print("opref: error: no case was quantized", file=sys.stderr)
        return 1
    parameters = {
        "suite": args.suite,
        "only": args.only,
        "variants": ["qdq"],
        "quantizer": {
            "tool": "onnxruntime.quantization.quantize_static",
            "version": version,
            "modes": modes,
            "failures": [f.to_dict() for f in failures],
        },
    }
    try:
        summary = generate(args.out, cases, parameters)
    except OSError as exc:
        print(f"opref: error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(summary.line())
    print(f"{len(failures)} tool failures (listed in the manifest's parameters.quantizer.failures)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from opref.codec import SuiteError
    from opref.expectations import read_expected
    from opref.outdir import check as check_out
    from opref.outdir import staged
    from opref.progress import Progress
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
    shown = None if args.quiet else Progress()
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
                progress=shown,
            )
            if result.tensors_root:
                result.tensors_root = str(out)  # where the tensors are once the staging is swapped in
            result.write(stage)
    except (OSError, ValueError, RuntimeSpecError, SuiteError) as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if shown:
            shown.close()
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
    from opref.validate import stale_expectation_lines

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
    for line in stale_expectation_lines(d["stale_expectations"]):
        print(visible(line))
    code = d["exit_code"]
    if code == 0 and args.strict_expected and d["stale_expectations"]:
        code = 1
    return 0 if args.exit_zero else code


def cmd_diff(args: argparse.Namespace) -> int:
    from opref.outdir import check as check_out
    from opref.outdir import staged
    from opref.report import load_results
    from opref.report.diff import diff, diff_markdown, summary_line
    from opref.validate import dumps

    try:
        if args.out:
            check_out(args.out, "diff")
        d = diff(load_results([args.old]), load_results([args.new]))
        text = dumps(d) if args.json else diff_markdown(d)
        if args.out:
            with staged(args.out, "diff") as stage:
                (stage / "diff.md").write_text(diff_markdown(d), encoding="utf-8")
                (stage / "diff.json").write_text(dumps(d), encoding="utf-8")
    except (OSError, ValueError) as exc:
        print(visible(f"opref: error: {exc}"), file=sys.stderr)
        return 2
    print(visible(text), end="" if text.endswith("\n") else "\n")
    if not args.json:
        print(visible(summary_line(d)), file=sys.stderr)
    return d["exit_code"]


def cmd_bugreport(args: argparse.Namespace) -> int:
    from opref.bugreport import write_bug_reports
    from opref.codec import SuiteError

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
    from pathlib import Path

    from opref.expectations import read_expected
    from opref.fuzz import DTYPE_ORDER, OPSET_ORDER, FuzzSettings, fuzz
    from opref.outdir import check as check_out
    from opref.progress import Progress
    from opref.reaper import adopt_orphans
    from opref.runtimes import RuntimeSpecError, check
    from opref.verdicts import NORMATIVE_FAILURES, Verdict

    try:
        out = check_out(args.out, "fuzz")
        for spec in args.runtime:
            check(spec)
        baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
        expected = read_expected(args.expected) if args.expected else None
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

    shown = None if args.quiet else Progress(unit="examples")

    def show(r) -> None:
        if shown:
            failing = sum(n for v, n in r.verdicts.items() if Verdict(v) in NORMATIVE_FAILURES)
            shown(r.spec, r.runtime_calls, options.examples, failing)

    adopt_orphans()
    try:
        run = fuzz(args.runtime, out, options, baseline=baseline, progress=show, expected=expected)
    except (OSError, ValueError) as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if shown:
            shown.close()
    print(visible((out / "summary.md").read_text(encoding="utf-8")), end="")
    print(f"fuzz results: {out / 'fuzz.json'}")
    return run.exit_code
