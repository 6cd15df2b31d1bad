"""Time opref's float64-exact reference on benchmark shapes and real layer sizes.

Per shape, side by side in one run (medians of alternating blocks, float32 inputs):
onnxruntime CPU (float32), opref, and "f64 GEMM", one float64 matrix product with the op's
multiply-adds (roughly what any float64 method spends on the arithmetic alone: opref's floor);
PyTorch float64 when a PyTorch is at hand; onnx.reference once per shape; and opref's peak
extra memory (tracemalloc) against the output plus one GEMM result. The first line says
which BLAS library, version, kernel and thread count numpy runs. Not a test: speed is
reported here, never asserted, except by --check (a ratio within one run, exit 1 past it).

``scripts/bench.py`` is its entry point. This module imports only the standard library at the
top, so that a PyTorch environment without opref's dependencies can run it as a file
(``--torch-worker``); numpy, onnxruntime and opref are imported where they are used.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opref.bench_shapes import Shape

ROOT = Path(__file__).resolve().parent.parent
# A PyTorch in its own environment (PyTorch's float64 column), run as a subprocess.
TORCH_PYTHON = ROOT / ".venvs" / "torch" / "bin" / "python"
# Why the column is usually absent: checked with pip against the package index (2026-11).
TORCH_ABSENT = (
    "PyTorch absent: the package index's torch for Linux x86-64 is a CUDA build (torch 2.14.1:"
    " a 555 MB wheel plus cuda-toolkit, cuDNN, NCCL, triton; about 5 GB) and the index has no"
    f" CPU build; put a CPU build at {TORCH_PYTHON.relative_to(ROOT)} to get this column"
)
# The variables some machines set so that old OpenBLAS builds pick a kernel that works;
# --native-blas unsets both, for the bench's own command only.
BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
NATIVE_MARK = "OPREF_BENCH_UNSET"  # set in the re-run: what --native-blas removed
PAUSE = 0.15  # seconds between blocks; see measure()
# Issue 27's goals: every shape opref / onnxruntime float32 <= GOAL_ORT; arithmetic-bound
# shapes opref / f64 GEMM <= GOAL_FLOOR; peak extra memory <= output and W in float64 + SLACK.
GOAL_FLOOR = 1.3
GOAL_ORT = 2.0
MEMORY_SLACK = 16 * 2**20


# ---------------------------------------------------------------------------------------------
# Which BLAS runs


@dataclass(frozen=True)
class Blas:
    """One BLAS library loaded in this process, as threadpoolctl reports it."""

    library: str
    version: str
    architecture: str
    threads: int


def loaded_blas() -> list[Blas] | None:
    """numpy's BLAS (after importing numpy), or None when threadpoolctl is not installed."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl then finds)

    return [
        Blas(i.get("internal_api", "?"), i.get("version") or "?", i.get("architecture") or "?",
             int(i.get("num_threads", 0)))
        for i in threadpoolctl.threadpool_info()
        if i.get("user_api") == "blas"
    ]


def native_architecture(python: str = sys.executable) -> str | None:
    """The kernel OpenBLAS picks by itself on this CPU: asked of a fresh interpreter with
    the forcing variables unset. None when that cannot be told (no threadpoolctl, no OpenBLAS)."""
    code = (
        "import numpy, threadpoolctl\n"
        "print(next((i.get('architecture') or '' for i in threadpoolctl.threadpool_info()"
        " if i.get('internal_api') == 'openblas'), ''))"
    )
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    try:
        out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def kernel_lines(blas: list[Blas] | None, environ: Mapping[str, str], native: str | None) -> list[str]:
    """The lines that say which BLAS kernel the timings used, and whether it was forced."""
    if blas is None:
        return ["BLAS: threadpoolctl not installed (pip install threadpoolctl): kernel unknown"]
    if not blas:
        return ["BLAS: threadpoolctl finds no BLAS library loaded"]
    lines = [
        f"BLAS: {b.library} {b.version}, kernel {b.architecture}, {b.threads} threads" for b in blas
    ]
    forced = {k: environ[k] for k in BLAS_VARIABLES if k in environ}
    if NATIVE_MARK in environ:
        removed = environ[NATIVE_MARK] or f"neither of {', '.join(BLAS_VARIABLES)} was set, none"
        lines.append(f"--native-blas: {removed} unset for this command (the kernel is OpenBLAS's"
                     " own choice)")
    elif forced:
        setting = " ".join(f"{k}={v}" for k, v in forced.items())
        lines.append(f"kernel forced by the environment: {setting}")
    else:
        lines.append(f"kernel: OpenBLAS's own choice ({', '.join(BLAS_VARIABLES)} not set)")
    running = next((b.architecture for b in blas if b.library == "openblas"), None)
    if forced and native and running and native != running:
        lines.append(
            f"WARNING: the forced kernel {running} is not what this CPU runs by OpenBLAS's own"
            f" choice ({native}); the float64 timings are slower than this machine can do."
            " Run with --native-blas to time the native kernel."
        )
    return lines


def native_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the kernel-forcing variables, marked with what was removed."""
    env = {k: v for k, v in environ.items() if k not in BLAS_VARIABLES}
    removed = [f"{k}={environ[k]}" for k in BLAS_VARIABLES if k in environ]
    env[NATIVE_MARK] = " ".join(removed)
    return env


# ---------------------------------------------------------------------------------------------
# Timing


def block_times(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def alternate(fns: Sequence[Callable[[], object]], repeat: int, rounds: int) -> list[float]:
    """Median time of each of ``fns``, timed in alternating blocks of ``repeat`` calls.

    Alternating lets drift hit all alike. The pause matters: after a call, OpenBLAS's and
    onnxruntime's worker threads keep spinning for tens of milliseconds, and on a 2-core
    machine the other side's first ~50 ms then run at half speed or worse (measured:
    onnxruntime 7.8 ms 10-50 ms after a numpy product, 3.1 ms after 100 ms).
    """
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, t in zip(fns, times, strict=True):
            t += block_times(fn, repeat)
            time.sleep(PAUSE)
    return [statistics.median(t) for t in times]


def calls_per_block(single: float, repeat: int, rounds: int, budget: float) -> int:
    """At most ``repeat`` calls per block, fewer where one side would take over ``budget`` s."""
    return max(1, min(repeat, int(budget / (rounds * max(single, 1e-9)))))


def peak_extra_bytes(fn: Callable[[], object]) -> int:
    """Peak memory that ``fn`` allocates beyond what was allocated before it (tracemalloc).

    Run in a fresh thread, so that opref's per-thread scratch buffers start empty and count.
    """
    result: list[int] = []

    def run() -> None:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            fn()
            result.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return result[0]


@dataclass
class Row:
    shape: Shape
    ort: float
    opref: float
    gemm64: float
    max_abs_diff: float
    peak: int
    allowance: int
    calls: int
    onnx_reference: float | None = None
    torch: float | None = None
    parts: dict[str, float] = field(default_factory=dict)


def floor_operands(shape: Shape):
    """The f64 GEMM: per group (M/group x C/group*taps) . (C/group*taps x N*input positions)."""
    import numpy as np

    g = shape.group
    k = shape.w[0] // g * math.prod(shape.w[2:])
    other = np.random.RandomState(1)
    a = other.standard_normal((g, shape.w[1], k))
    b = other.standard_normal((g, k, shape.x[0] * math.prod(shape.x[2:])))
    return a, b, np.empty((g, shape.w[1], b.shape[2]))


def measure(shape: Shape, args: argparse.Namespace) -> Row:
    import numpy as np
    import onnxruntime as ort

    import opref
    from opref.model import make_model

    rng = np.random.RandomState(0)
    x = rng.standard_normal(shape.x).astype(np.float32)
    w = rng.standard_normal(shape.w).astype(np.float32)
    model = make_model("bench", shape.x, shape.w, None, dict(shape.attrs), "float32", 22)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if args.threads:
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    a, b, c = floor_operands(shape)

    def run_ort():
        return sess.run(None, {"X": x, "W": w})[0]

    def run_opref():
        return opref.conv_transpose(x, w, **shape.attrs)

    def run_gemm():
        return np.matmul(a, b, out=c)

    ort_y, ref_y = run_ort(), run_opref()
    assert ort_y.shape == ref_y.shape == shape.output, (ort_y.shape, ref_y.shape, shape.output)
    single = max(min(block_times(fn, 2)) for fn in (run_ort, run_opref, run_gemm))
    calls = calls_per_block(single, args.repeat, args.rounds, args.budget)
    t_ort, t_ref, t_gemm = alternate([run_ort, run_opref, run_gemm], calls, args.rounds)
    peak = peak_extra_bytes(run_opref)
    allowance = allowed_bytes(shape)
    row = Row(shape, t_ort, t_ref, t_gemm, float(np.max(np.abs(ort_y.astype(np.float64) - ref_y))),
              peak, allowance, calls)
    if args.breakdown:
        row.parts = breakdown(run_opref, calls * args.rounds)
    if args.onnx_reference:
        from onnx.reference import ReferenceEvaluator

        ev = ReferenceEvaluator(model)
        t0 = time.perf_counter()
        ev.run(None, {"X": x, "W": w})
        row.onnx_reference = time.perf_counter() - t0
    return row


def allowed_bytes(shape: Shape) -> int:
    """The memory goal: the output and W in float64, plus MEMORY_SLACK."""
    return 8 * (math.prod(shape.output) + math.prod(shape.w)) + MEMORY_SLACK


def breakdown(run_opref: Callable[[], object], calls: int) -> dict[str, float]:
    """Where opref's time goes: medians, per call, of the whole call (timed again here, with
    the timers in place), its BLAS products, the rest of the phase computation (layout, stack
    copies), the assembly into the output, and the remainder (argument checks, geometry).
    Reads opref.reference's internals: when they are renamed it says so instead of guessing.
    """
    import numpy as np

    from opref import phases as reference  # the fast path's machinery: products and assembly

    needed = ("accumulate", "assemble")
    if not all(hasattr(reference, n) for n in needed) or getattr(reference, "np", None) is not np:
        return {"unavailable": float("nan")}
    spent = {"products": 0.0, "accumulate": 0.0, "assemble": 0.0}

    def timed(fn, key):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t0

        return wrapper

    class Numpy:  # numpy as opref.reference sees it, with matmul timed
        matmul = staticmethod(timed(np.matmul, "products"))

        def __getattr__(self, name):
            return getattr(np, name)

    saved = {n: getattr(reference, n) for n in (*needed, "np")}
    samples: dict[str, list[float]] = {
        "total": [], "products": [], "stack, copies": [], "assemble": [], "other": []
    }
    try:
        reference.accumulate = timed(saved["accumulate"], "accumulate")
        reference.assemble = timed(saved["assemble"], "assemble")
        reference.np = Numpy()
        for _ in range(calls):
            for k in spent:
                spent[k] = 0.0
            t0 = time.perf_counter()
            run_opref()
            total = time.perf_counter() - t0
            samples["total"].append(total)
            samples["products"].append(spent["products"])
            samples["stack, copies"].append(spent["accumulate"] - spent["products"])
            samples["assemble"].append(spent["assemble"])
            samples["other"].append(total - spent["accumulate"] - spent["assemble"])
    finally:
        for n, v in saved.items():
            setattr(reference, n, v)
    return {k: statistics.median(v) for k, v in samples.items()}


# ---------------------------------------------------------------------------------------------
# PyTorch float64, in this interpreter or in its own environment


def torch_worker(request: dict) -> dict:
    """Median float64 time per shape label, by PyTorch; runs where torch is importable."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(request["threads"])
    torch.manual_seed(0)
    out: dict = {"version": torch.__version__, "threads": torch.get_num_threads(), "times": {}}
    for s in request["shapes"]:
        r = len(s["x"]) - 2
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[r]
        x = torch.randn(s["x"], dtype=torch.float64)
        w = torch.randn(s["w"], dtype=torch.float64)
        a = s["attrs"]
        kw = {"stride": a["strides"], "padding": a["pads"][:r], "groups": a.get("group", 1),
              "output_padding": a.get("output_padding", [0] * r)}

        def call(fn=fn, x=x, w=w, kw=kw):
            return fn(x, w, **kw)

        call()
        with torch.inference_mode():
            (t,) = alternate([call], s["calls"], request["rounds"])
        out["times"][s["label"]] = t
    return out


_RUN_WORKER = (
    "import runpy, sys; sys.argv = [sys.argv[1], '--torch-worker'];"
    " runpy.run_path(sys.argv[0], run_name='__main__')"
)


def torch_times(rows: list[Row], args: argparse.Namespace, threads: int) -> tuple[dict, str]:
    """PyTorch float64 medians {label: seconds} and a line saying which PyTorch, or why none."""
    request = {
        "threads": threads,
        "rounds": args.rounds,
        "shapes": [
            {"label": r.shape.label, "x": r.shape.x, "w": r.shape.w, "attrs": dict(r.shape.attrs),
             "calls": r.calls}
            for r in rows
            if r.shape.attrs["pads"][: len(r.shape.x) - 2] == r.shape.attrs["pads"][len(r.shape.x) - 2 :]
        ],
    }
    try:
        import torch  # noqa: F401

        answer, where = torch_worker(request), "this interpreter"
    except ImportError:
        if not TORCH_PYTHON.exists():
            return {}, TORCH_ABSENT
        # This file run by path, without importing the opref package (whose dependencies that
        # environment may lack) and without putting opref/ itself on sys.path.
        proc = subprocess.run([str(TORCH_PYTHON), "-I", "-c", _RUN_WORKER, __file__],
                              input=json.dumps(request), capture_output=True, text=True)
        if proc.returncode != 0:
            return {}, f"PyTorch absent: {TORCH_PYTHON} failed: {proc.stderr.strip()[-300:]}"
        answer, where = json.loads(proc.stdout), str(TORCH_PYTHON)
    return answer["times"], f"PyTorch {answer['version']} float64, {answer['threads']} threads ({where})"


# ---------------------------------------------------------------------------------------------
# The table


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:.2f}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def table(rows: list[Row]) -> list[str]:
    head = ("shape", "bound", "ort f32 ms", "opref ms", "opref/ort", "f64 GEMM ms", "opref/GEMM",
            "torch f64 ms", "opref/torch", "onnx.ref ms", "peak MiB", "allowed MiB", "peak/budget",
            "max|diff|")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = (
            r.shape.label, r.shape.bound, _ms(r.ort), _ms(r.opref), _x(r.opref / r.ort), _ms(r.gemm64),
            _x(r.opref / r.gemm64), _ms(r.torch), _x(r.torch and r.opref / r.torch),
            _ms(r.onnx_reference), f"{r.peak / 2**20:.1f}", f"{r.allowance / 2**20:.1f}",
            f"{r.peak / r.allowance:.2f}", f"{r.max_abs_diff:.1e}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdicts(rows: list[Row]) -> list[str]:
    """Each shape against each goal of issue 27 item 3 (ratios within this run)."""
    lines = []
    for r in rows:
        said = []
        v = r.opref / r.ort
        said.append(f"opref/ort {v:.2f} {'<=' if v <= GOAL_ORT else '>'} {GOAL_ORT} "
                    f"{'met' if v <= GOAL_ORT else 'MISSED'}")
        if r.shape.bound == "arithmetic":
            v = r.opref / r.gemm64
            said.append(f"opref/GEMM {v:.2f} {'<=' if v <= GOAL_FLOOR else '>'} {GOAL_FLOOR} "
                        f"{'met' if v <= GOAL_FLOOR else 'MISSED'}")
        if r.torch is not None:
            said.append(f"vs torch f64 {'faster: met' if r.opref < r.torch else 'slower: MISSED'}")
        said.append(f"memory {r.peak / 2**20:.1f} {'<=' if r.peak <= r.allowance else '>'}"
                    f" {r.allowance / 2**20:.1f} MiB {'met' if r.peak <= r.allowance else 'MISSED'}")
        lines.append(f"- {r.shape.label}: " + "; ".join(said))
    return lines


def breakdown_lines(rows: list[Row]) -> list[str]:
    keys = ("total", "products", "stack, copies", "assemble", "other")
    lines = ["| shape | opref ms | " + " | ".join(f"{k} ms" for k in keys) + " |", "|" + "---|" * 7]
    for r in rows:
        if "unavailable" in r.parts:
            lines.append(f"| {r.shape.label} | {_ms(r.opref)} | opref.reference internals renamed |")
            continue
        lines.append(f"| {r.shape.label} | {_ms(r.opref)} | "
                     + " | ".join(_ms(r.parts.get(k)) for k in keys) + " |")
    return lines


def failed_checks(rows: list[Row]) -> list[str]:
    """The shapes whose opref / f64 GEMM is past their ``check`` limit."""
    return [
        f"{r.shape.label}: opref/GEMM {r.opref / r.gemm64:.2f} > {r.shape.check}"
        for r in rows
        if r.opref / r.gemm64 > r.shape.check
    ]


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=10, help="most calls per block (default 10)")
    parser.add_argument("--rounds", type=int, default=10, help="blocks per side, alternating (default 10)")
    parser.add_argument("--budget", type=float, default=1.5,
                        help="seconds per side per shape: slow shapes get fewer calls per block"
                        " (default 1.5)")
    parser.add_argument("--only", action="append", metavar="GLOB",
                        help="shapes whose label matches GLOB (fnmatch; repeatable)")
    parser.add_argument("--native-blas", action="store_true",
                        help=f"re-run with {' and '.join(BLAS_VARIABLES)} unset: OpenBLAS picks"
                        " its own kernel")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when opref / f64 GEMM of any shape is past that shape's limit")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for numpy's BLAS, onnxruntime and PyTorch alike (default: each"
                        " library's own; on a loaded machine 1 keeps spinning threads out of the ratios)")
    parser.add_argument("--breakdown", action="store_true", help="where opref's time goes, per shape")
    parser.add_argument("--onnx-reference", action="store_true", help="time onnx.reference once per shape")
    parser.add_argument("--list", action="store_true",
                        help="print the BLAS lines and the shapes, run nothing")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("repeat", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.budget <= 0:
        parser.error("--budget must be positive")
    if args.only and not selected(args.only):
        parser.error(f"--only {' '.join(args.only)} matches no shape; see --list")
    return args


def selected(patterns: Sequence[str] | None) -> tuple[Shape, ...]:
    from opref.bench_shapes import SHAPES  # here, not above: the torch worker runs this file bare

    if not patterns:
        return SHAPES
    return tuple(s for s in SHAPES if any(fnmatch.fnmatchcase(s.label, p) for p in patterns))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.torch_worker:
        print(json.dumps(torch_worker(json.load(sys.stdin))))
        return 0
    if args.native_blas and NATIVE_MARK not in os.environ:
        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--native-blas"]
        env = native_environment(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return subprocess.call([sys.executable, "-m", "opref.bench", *rest], env=env)
    if args.threads:
        try:
            import threadpoolctl
        except ImportError:
            print("--threads needs threadpoolctl (pip install threadpoolctl)", file=sys.stderr)
            return 2
        import numpy  # noqa: F401  (loads the BLAS to limit)

        threadpoolctl.threadpool_limits(limits=args.threads, user_api="blas")
    blas = loaded_blas()
    native = native_architecture() if blas and any(k in os.environ for k in BLAS_VARIABLES) else None
    for line in kernel_lines(blas, os.environ, native):
        print(line)
    shapes = selected(args.only)
    if args.list:
        for s in shapes:
            print(f"{s.label:45} {s.bound:10} {s.macs / 1e6:9.1f} M multiply-adds  check <= {s.check}x"
                  f"  [{s.source}]")
        return 0
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__} CPU float32"
          f" ({args.threads or 'its default'} intra-op threads); opref float64-exact on float32 inputs;"
          f" medians of {args.rounds} alternating blocks")
    print(f"load average at start: {load()} ({os.cpu_count()} CPUs): other jobs skew every column")
    rows = []
    for s in shapes:
        rows.append(measure(s, args))
        print(f"  measured {s.label}", file=sys.stderr, flush=True)
    threads = args.threads or next(
        (b.threads for b in blas or [] if b.library == "openblas"), os.cpu_count() or 1
    )
    times, torch_line = torch_times(rows, args, threads)
    for r in rows:
        r.torch = times.get(r.shape.label)
    print(torch_line)
    print(f"load average at end: {load()}")
    print()
    print("\n".join(table(rows)))
    print()
    from opref.bench_shapes import ARITHMETIC_MACS_PER_OUTPUT

    print(f"bound: arithmetic when the op takes >= {ARITHMETIC_MACS_PER_OUTPUT} multiply-adds per output"
          " element, else memory. allowed MiB (the budget): the output and W in float64 plus"
          f" {MEMORY_SLACK // 2**20} MiB; peak: tracemalloc, first call in a fresh thread.")
    print(f"goals: every shape opref/ort <= {GOAL_ORT}; arithmetic-bound opref/GEMM <= {GOAL_FLOOR};"
          " faster than PyTorch float64; peak/budget <= 1")
    print("\n".join(verdicts(rows)))
    if args.breakdown:
        print()
        print("\n".join(breakdown_lines(rows)))
    if args.check:
        failed = failed_checks(rows)
        print()
        print("check: " + ("; ".join(failed) if failed else "every shape within its opref/GEMM limit"))
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

