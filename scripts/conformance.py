#!/usr/bin/env python3
"""The main job: generate the suite, validate every runtime available here, write the report.

Runtimes found automatically: onnxruntime CPU, every other execution provider the installed
onnxruntime build lists (CUDA, TensorRT, OpenVINO, ...; each proven or reported unavailable),
onnx.reference, OpenVINO when it is installed, and the runtimes of the extra environments
that ``scripts/make-envs`` (or ``--build-envs``) builds under .venvs/: onnxruntime's OpenVINO
execution provider and onnxruntime 1.16.3, each run under its own interpreter (tinygrad, tract,
TVM and IREE are scripts/ecosystem's). ``--runtime`` replaces that list.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opref.cases import VARIANTS, catalog  # noqa: E402
from opref.expectations import read_expected  # noqa: E402
from opref.outdir import check as check_out  # noqa: E402
from opref.outdir import staged  # noqa: E402
from opref.progress import Progress  # noqa: E402
from opref.report import write_report  # noqa: E402
from opref.runtimes import RuntimeSpecError, check  # noqa: E402
from opref.runtimes.ort import PROVIDER_ALIASES  # noqa: E402
from opref.validate import summary_lines, validate  # noqa: E402
from opref.vectors import generate, is_replaceable_suite  # noqa: E402

# Extra environments built by scripts/make-envs: (interpreter, runtime specs run under it).
EXTRA_ENVS = (
    (".venvs/ort-openvino/bin/python", ("ort:openvino",)),
    (".venvs/ort-1.16/bin/python", ("ort:cpu",)),
)
# tinygrad, tract, TVM and IREE (.venvs/tinygrad ... .venvs/iree, also built by make-envs) are not
# picked up here: scripts/ecosystem validates them and publishes results/ecosystem/; name them
# with --runtime to include them in this job.


def detect_runtimes() -> list[str]:
    found = ["ort:cpu"]
    for interpreter, specs in EXTRA_ENVS:
        if (ROOT / interpreter).is_file():
            found += [f"{spec}@{ROOT / interpreter}" for spec in specs]
    try:
        import onnxruntime as ort

        aliases = {v: k for k, v in PROVIDER_ALIASES.items()}
        for p in ort.get_available_providers():
            if p not in ("CPUExecutionProvider", "AzureExecutionProvider"):
                found.append(f"ort:{aliases.get(p, p)}")
    except ImportError:
        pass
    found.append("onnx-reference")
    if importlib.util.find_spec("openvino") is not None:
        found.append("openvino")
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--suite", choices=["default", "full"], default="default")
    ap.add_argument("--vectors", help="validate this existing suite instead of generating one")
    ap.add_argument("--random", type=int, default=0, help="add N seeded random cases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", metavar="GLOB")
    ap.add_argument("--runtime", action="append", help="runtimes to validate (default: all found here)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--expected", default=str(ROOT / "known-failures.txt"))
    ap.add_argument("--build", default=str(ROOT / "build"), help="where the suite and results go")
    ap.add_argument("--out", default=str(ROOT / "report"), help="the report directory")
    ap.add_argument(
        "--build-envs",
        action="store_true",
        help="first build the extra runtime environments (scripts/make-envs)",
    )
    args = ap.parse_args()
    if args.build_envs:
        subprocess.run([str(ROOT / "scripts" / "make-envs")], check=True)

    t0 = time.perf_counter()
    build = Path(args.build)
    results_dir = build / "results"
    try:  # every output directory and runtime spec is checked before anything is written
        check_out(results_dir, "validate")
        check_out(args.out, "report")
        if not args.vectors:
            check_out(build / "vectors", "generate", is_replaceable_suite)
        for spec in args.runtime or []:
            check(spec)
    except (ValueError, RuntimeSpecError) as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return 2
    if args.vectors:
        suite = Path(args.vectors)
    else:
        suite = build / "vectors"
        # Every model variant (issue 14): the runtimes' answers on constant weights and
        # symbolic dimensions are in the report next to the static-shape ones.
        variants = list(VARIANTS)
        cases = catalog(args.suite, only=args.only, random=args.random, seed=args.seed, variants=variants)
        params = {
            "suite": args.suite,
            "opsets": None,
            "dtypes": None,
            "only": args.only,
            "random": args.random,
            "seed": args.seed,
            "variants": variants,
        }
        shown = Progress()
        print(generate(suite, cases, params, lambda done, total: shown("generate", done, total)).line())
        shown.close()
    runtimes = args.runtime or detect_runtimes()
    print(f"validating {', '.join(runtimes)} with {args.jobs} jobs")
    expected = read_expected(args.expected) if args.expected else []

    tick = Progress()
    with staged(results_dir, "validate") as stage:
        result = validate(
            suite,
            runtimes,
            only=args.only if args.vectors else None,
            jobs=args.jobs,
            timeout=args.timeout,
            expected=expected,
            # Auto-detected runtimes may be missing here; runtimes named with --runtime may not.
            allow_unavailable=not args.runtime,
            progress=tick,
            save_tensors="failures",  # the report's heatmaps and the debugging artifacts
            tensors_dir=stage,
        )
        if result.tensors_root:
            result.tensors_root = str(results_dir.absolute())  # where they are after the swap
        result.write(stage)
    tick.close()
    for line in summary_lines(result):
        print(line)
    report = write_report([result.to_dict()], args.out, roots=[results_dir])
    out = Path(args.out)
    print(
        f"report: {out / 'index.md'} (also report.json, junit.xml"
        + (", summary.png)" if report.data.get("plot") else "; install the 'plot' extra for summary.png)")
    )
    print(f"main job took {time.perf_counter() - t0:.1f} s; exit {result.exit_code}")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
