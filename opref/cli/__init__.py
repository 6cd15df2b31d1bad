"""The ``opref`` command line: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from opref import limits
from opref.cases import VARIANTS
from opref.cli.args import count, ints, join_negative_lists, memory, positive_seconds, shard
from opref.cli.commands import (
    cmd_bugreport,
    cmd_diff,
    cmd_fuzz,
    cmd_generate,
    cmd_quantize,
    cmd_report,
    cmd_validate,
    cmd_verify,
)
from opref.cli.explain import add_attribute_options, cmd_explain
from opref.errors import SpecError
from opref.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opref", description="ONNX ConvTranspose reference, vectors and validator"
    )
    parser.add_argument("--version", action="version", version=f"opref {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="resolve pads and output shape for shapes and attributes")
    add_attribute_options(p)
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
        p.add_argument(f"--{name.replace('_', '-')}", type=ints, default=None, dest=name)
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
        type=count(0, limits.MAX_RANDOM_CASES),
        default=0,
        metavar="N",
        help="add N seeded random configurations",
    )
    p.add_argument(
        "--seed", type=count(0, limits.MAX_SEED), default=0, metavar="S", help="the seed of --random"
    )
    p.add_argument(
        "--variants",
        type=lambda t: [v for v in t.split(",") if v],
        default=list(VARIANTS),
        metavar="V,V,...",
        help=f"model variants of each case (default all: {','.join(VARIANTS)})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "quantize",
        help="quantize float32 cases with onnxruntime's quantize_static (QDQ) into a suite of qdq cases",
    )
    p.add_argument("--out", required=True, help="the suite directory (replaced atomically)")
    p.add_argument("--suite", choices=["default", "full"], default="default")
    p.add_argument("--only", action="append", metavar="GLOB", help="keep only cases whose name matches")
    p.add_argument(
        "--mode",
        action="append",
        choices=["per-tensor", "per-channel"],
        help="quantization modes (default both)",
    )
    p.set_defaults(func=cmd_quantize)

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
    p.add_argument("--jobs", type=count(1, limits.MAX_JOBS), default=1, help="worker processes per runtime")
    p.add_argument("--shard", type=shard, help="run only shard i of n, e.g. 2/4")
    p.add_argument("--timeout", type=positive_seconds, default=60.0, help="seconds per case before 'timeout'")
    p.add_argument(
        "--start-timeout",
        type=positive_seconds,
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
        type=memory,
        metavar="SIZE",
        help="working memory of each reference computation, e.g. 512M or 2G (default: a quarter of"
        " this machine's memory); a larger layer is computed in chunks",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
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

    p = sub.add_parser("diff", help="compare two validation runs: newly failing, newly passing, changed")
    p.add_argument("old", help="the earlier results (a results directory or results.json)")
    p.add_argument("new", help="the later results")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON instead of Markdown")
    p.add_argument("--out", help="also write diff.md and diff.json into this directory")
    p.set_defaults(func=cmd_diff)

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
        type=count(1, limits.MAX_EXAMPLES),
        default=200,
        metavar="N",
        help="examples per runtime",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the same seed draws the same examples")
    p.add_argument("--out", required=True, help="directory for vectors/, results.json, fuzz.json, summary.md")
    p.add_argument(
        "--time-budget", type=positive_seconds, metavar="SECONDS", help="stop each runtime after this long"
    )
    p.add_argument("--dtype", action="append", choices=["float32", "float16", "float64", "bfloat16"])
    p.add_argument("--opset", type=int, action="append", choices=[11, 22])
    p.add_argument(
        "--variants",
        action="append",
        choices=["inputs"],
        help="model variants (fuzzing draws the 'inputs' form; validate runs the others)",
    )
    p.add_argument(
        "--max-elements", type=count(1, limits.MAX_ELEMENTS), default=4096, metavar="E", help="per tensor"
    )
    p.add_argument("--timeout", type=positive_seconds, default=20.0, help="seconds per case")
    p.add_argument("--baseline", metavar="RESULTS", help="a results.json: mark failures it already shows")
    p.add_argument(
        "--expected",
        help="known failures ('runtime case-glob verdict # reason'; fuzz cases are fuzz_<runtime>_NNN): "
        "a failure whose replay a line lists does not fail the run",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=cmd_fuzz)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_lists(sys.argv[1:] if argv is None else argv))
    from opref.codec import SuiteError

    try:
        return args.func(args)
    except (SpecError, SuiteError) as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("opref: interrupted", file=sys.stderr)
        return 130
