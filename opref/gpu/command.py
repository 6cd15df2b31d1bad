"""The GPU check as a command: validate each configuration through ``opref validate`` in a
subprocess, then ``opref report`` over them all (scripts/gpu-check is its entry point)."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from opref.cases import VARIANTS
from opref.gpu.common import (
    CONFIGURATIONS,
    DEFAULT_BUDGET_S,
    DEFAULT_ORT_GPU,
    EXIT_FAILED,
    EXIT_USAGE,
    ROOT,
    Configuration,
    strip_ansi,
    tail,
)
from opref.gpu.environment import (
    _LOADED,
    GpuFacts,
    Unavailable,
    cuda_version_text,
    cudnn_version_text,
    find_gpus,
    prepare_environment,
    probe,
)
from opref.gpu.summary import markdown, summarize, summary_lines

# --- the constant-weights variant of a suite ----------------------------------------------


def constant_weights_suite(suite: Path, dest: Path) -> int:
    """Copy ``suite`` to ``dest`` with W (and B) moved into each model as initializers.

    Their input files go (ONNX's layout binds input_i to the i-th graph input, and only X is
    one now; the validator reads W and B from the model). Models below IR 4 must list initializers
    as graph inputs too (then they are not constant) and are copied unchanged. Returns the
    number of models changed; the manifest's sha256 of each changed model is updated.
    """
    import onnx

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(suite, dest, symlinks=True)
    manifest_path = dest / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    changed = 0
    for rec in manifest["cases"]:
        case = dest / "node" / rec["name"]
        model = onnx.load_from_string((case / "model.onnx").read_bytes())
        if model.ir_version < 4 or len(model.graph.node) != 1:
            continue
        node = model.graph.node[0]
        graph_inputs = [i.name for i in model.graph.input]
        constant = [name for name in node.input[1:] if name in graph_inputs]
        for name in constant:
            index = graph_inputs.index(name)
            tensor = onnx.TensorProto()
            tensor.ParseFromString((case / "test_data_set_0" / f"input_{index}.pb").read_bytes())
            tensor.name = name
            model.graph.initializer.append(tensor)
        kept = [i for i in model.graph.input if i.name not in constant]
        del model.graph.input[:]
        model.graph.input.extend(kept)
        for name in constant:
            rel = f"test_data_set_0/input_{graph_inputs.index(name)}.pb"
            (case / rel).unlink()
            del rec["files"][rel]
        data = model.SerializeToString()
        (case / "model.onnx").write_bytes(data)
        rec["files"]["model.onnx"] = hashlib.sha256(data).hexdigest()
        changed += 1
    manifest.setdefault("parameters", {})["variant"] = "constant-weights"
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return changed


# --- running opref ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One ``opref validate`` call for one configuration."""

    configuration: Configuration
    spec: str  # as given to opref, with the interpreter
    out: Path
    exit_code: int | None  # None: stopped at the time budget
    seconds: float
    log_tail: str

    @property
    def results(self) -> dict | None:
        try:
            return json.loads((self.out / "results.json").read_text())
        except (OSError, ValueError):
            return None


def _opref_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def run_opref(argv: Sequence[str], log: Path, timeout: float) -> tuple[int | None, float]:
    """``python -m opref ARGV`` with output to ``log``; (exit code or None at the timeout, seconds).

    It runs in a process group of its own so that its workers go with it at the timeout.
    """
    t0 = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "opref", *argv],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_opref_env(),
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    return code, time.monotonic() - t0


def validate_configuration(
    cfg: Configuration,
    interpreter: str | None,
    suite: Path,
    out: Path,
    *,
    jobs: int,
    case_timeout: float,
    expected: str | None,
    only: Sequence[str],
    budget: float,
    spec: str | None = None,
) -> Run:
    """``opref validate`` of one configuration into ``out/results.json`` (exit 1 means failures or
    an unavailable runtime; the details are read from results.json)."""
    spec = spec or (f"{cfg.spec}@{interpreter}" if interpreter else cfg.spec)
    argv = ["validate", str(suite), "--runtime", spec, "--out", str(out), "--jobs", str(jobs)]
    argv += ["--timeout", f"{case_timeout:g}"]
    if expected:
        argv += ["--expected", expected]
    for glob in only:
        argv += ["--only", glob]
    # The forms with nodes around ConvTranspose (Pad, BatchNormalization, QDQ) are graph
    # contexts, judged on the CPU runtimes by the main job; the GPU check measures the CUDA
    # kernels of the one-node forms within its fifteen minutes.
    for name, variant in VARIANTS.items():
        if not variant.wrapped:
            argv += ["--variant", name]
    # The log waits beside OUT: opref validate writes only into a directory it wrote itself, and
    # replaces it whole (a stale results.json cannot pass for this run's).
    log = out.parent / f"{out.name}.validate.log"
    code, seconds = run_opref(argv, log, budget)
    if out.is_dir():
        log = log.replace(out / "validate.log")
    return Run(cfg, spec, out, code, seconds, tail(log.read_text(errors="replace"), 8))




# --- the command --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/gpu-check",
        description="Validate onnxruntime's CUDA execution provider on this machine's GPU "
        "(README, 'Validating on a GPU'). Exit 0: every required configuration ran with no unexpected "
        "normative failure; 1: unavailable (no CUDA GPU here), incomplete or failing; 2: usage error.",
    )
    p.add_argument(
        "--wheels",
        metavar="DIR",
        help="a directory with the onnxruntime_gpu wheel (or its split parts *.whl.part-aa ...)",
    )
    p.add_argument(
        "--python", default=None, help="the interpreter for onnxruntime's workers (default: this one)"
    )
    p.add_argument(
        "--env", default=str(ROOT / ".venvs" / "gpu-check"), help="where the environment and its wrapper go"
    )
    p.add_argument(
        "--ort-gpu",
        default=DEFAULT_ORT_GPU,
        help="the requirement to install from the index when a GPU is found",
    )
    p.add_argument("--no-index", action="store_true", help="never install from the package index")
    p.add_argument("--nvidia-smi", default=None, help="the nvidia-smi to ask (default: the one on PATH)")
    p.add_argument(
        "--vectors", default=str(ROOT / "vectors"), help="the suite (default: the committed vectors/)"
    )
    p.add_argument(
        "--only", action="append", default=[], metavar="GLOB", help="only cases whose name matches"
    )
    p.add_argument(
        "--config",
        action="append",
        choices=[c.spec for c in CONFIGURATIONS],
        help="run only these configurations (repeatable; default: all)",
    )
    p.add_argument(
        "--expected", default=str(ROOT / "known-failures.txt"), help="known failures ('' for none)"
    )
    p.add_argument("--out", help="the output directory (default: results/gpu/<date>-<gpu>/)")
    p.add_argument("--jobs", type=_positive_int, default=max(1, min(8, (os.cpu_count() or 2) // 2)))
    p.add_argument("--timeout", type=_positive_float, default=120.0, help="seconds per case")
    p.add_argument(
        "--budget", type=_positive_float, default=DEFAULT_BUDGET_S, help="seconds for the whole check"
    )
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.python = args.python or sys.executable
    if args.wheels and not Path(args.wheels).is_dir():
        parser.error(f"--wheels {args.wheels}: not a directory")
    if not (Path(args.vectors) / "manifest.json").is_file():
        parser.error(f"--vectors {args.vectors}: no manifest.json (not an opref suite)")
    if args.expected and not Path(args.expected).is_file():
        parser.error(f"--expected {args.expected}: no such file")
    if "@" in str(Path(args.env).absolute()):
        parser.error(f"--env {args.env}: the path may not contain '@' (it ends a runtime spec)")
    return args


def _say(line: str = "") -> None:
    print(line, flush=True)


def default_out(gpus: GpuFacts) -> Path:
    return ROOT / "results" / "gpu" / f"{datetime.date.today().isoformat()}-{gpus.slug}"


def no_gpu(reasons: Sequence[str]) -> int:
    _say("no CUDA GPU here (or none onnxruntime can use):")
    for r in reasons:
        for i, line in enumerate(strip_ansi(r).splitlines()):
            _say(("  - " if i == 0 else "    ") + line)
    _say("gpu-check: FAILED (exit 1): nothing was validated on a GPU")
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    deadline = t0 + args.budget
    # A configuration asked for by name is required, TensorRT included.
    wanted = (
        [replace(c, required=True) for c in CONFIGURATIONS if c.spec in args.config]
        if args.config
        else list(CONFIGURATIONS)
    )

    gpus = find_gpus(args.nvidia_smi)
    for g in gpus.gpus:
        _say(
            f"GPU: {g.name}, driver {g.driver}, {g.memory}; "
            f"the driver supports CUDA {gpus.cuda_driver or '?'}"
        )
    if gpus.problem:
        _say(f"GPU: none found: {gpus.problem}")
    try:
        env = prepare_environment(args, gpus)
    except Unavailable as exc:
        return no_gpu([r for r in (gpus.problem, str(exc)) if r])
    except ValueError as exc:  # a wheel directory without a usable wheel, a broken interpreter
        print(f"gpu-check: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    ort = env.onnxruntime
    build = ort.get("build", {})
    built = ", ".join(
        f"{k} {build[v]}" for k, v in (("CUDA", "cuda_version"), ("cuDNN", "cudnn_version")) if v in build
    )
    _say(
        f"onnxruntime {ort.get('version')} ({env.source}); built for {built or 'no CUDA version it names'}; "
        f"workers run {env.interpreter}"
    )
    if env.library_dirs:
        _say(f"CUDA libraries from: {', '.join(env.library_dirs)}")

    suite = Path(args.vectors).absolute()
    staging = Path(tempfile.mkdtemp(prefix="opref-gpu-check-"))
    runs: dict[str, Run] = {}
    notes: dict[str, str] = {}
    environment: dict[str, object] = {
        "gpus": [asdict(g) for g in gpus.gpus] or gpus.problem,
        "driver_cuda": gpus.cuda_driver,
        "onnxruntime": ort,
        "source": env.source,
        "interpreter": env.interpreter,
        "library_dirs": list(env.library_dirs),
        "suite": str(suite),
        "only": args.only,
        "jobs": args.jobs,
    }
    out: Path | None = None
    try:
        for cfg in wanted:
            left = deadline - time.monotonic()
            if left < 5:
                notes[cfg.spec] = "the time budget was spent before it started"
                continue
            cfg_suite = suite
            if cfg.constant_weights:
                cfg_suite = staging / "constant-weights"
                if not cfg_suite.exists():
                    changed = constant_weights_suite(suite, cfg_suite)
                    _say(f"constant-weights variant: W and B as initializers in {changed} models")
            where = (out / "runs" / cfg.slug) if out else (staging / "runs" / cfg.slug)
            _say(f"validating {cfg.spec} ({left:.0f} s left) ...")
            run = validate_configuration(
                cfg,
                env.interpreter,
                cfg_suite,
                where,
                jobs=args.jobs,
                case_timeout=args.timeout,
                expected=args.expected or None,
                only=args.only,
                budget=left,
            )
            runs[cfg.spec] = run
            results = run.results
            if run.exit_code is None:
                notes[cfg.spec] = f"stopped at the time budget after {run.seconds:.0f} s"
            elif results is None:
                notes[cfg.spec] = (
                    f"opref validate exited {run.exit_code} without results.json: {run.log_tail}"
                )
            rt = next((r for r in (results or {}).get("runtimes", [])), None)
            state = "unavailable" if rt and not rt["available"] else f"exit {run.exit_code}"
            _say(f"  {cfg.spec}: {state}, {run.seconds:.0f} s")
            if out is None:
                if cfg.placement_truth and (rt is None or not rt["available"]):
                    why = strip_ansi(rt["reason"]) if rt else notes.get(cfg.spec, "no result")
                    return no_gpu([r for r in (gpus.problem, f"{cfg.spec}: {why}") if r])
                out = Path(args.out) if args.out else default_out(gpus)
                out.mkdir(parents=True, exist_ok=True)
                (out / "runs").mkdir(exist_ok=True)
                if (out / "runs" / cfg.slug).exists():  # an earlier check's, into the same --out
                    shutil.rmtree(out / "runs" / cfg.slug)
                shutil.move(str(where), str(out / "runs" / cfg.slug))
                runs[cfg.spec] = Run(
                    cfg, run.spec, out / "runs" / cfg.slug, run.exit_code, run.seconds, run.log_tail
                )
                if "CUDAExecutionProvider" in ort.get("providers", []):
                    loaded = probe(env.interpreter, _LOADED)
                    environment["loaded"] = loaded
                    _say(loaded_line(loaded))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if out is None:
        return no_gpu([gpus.problem or "no configuration ran"])
    summary = summarize({spec: run.results for spec, run in runs.items()}, wanted, notes)
    report_dirs = [str(run.out) for run in runs.values() if run.results is not None]
    if report_dirs:
        # opref report writes only into a directory of its own: there, then its files into OUT.
        written = Path(tempfile.mkdtemp(prefix="opref-gpu-report-"))
        try:
            code, _ = run_opref(
                ["report", *report_dirs, "--out", str(written / "report")],
                out / "report.log",
                max(30.0, deadline - time.monotonic() + 60),
            )
            for item in sorted((written / "report").glob("*")):
                if not item.name.startswith("."):  # not the marker of opref.outdir
                    if (out / item.name).is_dir():
                        shutil.rmtree(out / item.name)
                    shutil.move(str(item), str(out / item.name))
        finally:
            shutil.rmtree(written, ignore_errors=True)
        if code != 0:
            _say(f"opref report exited {code}; see {out / 'report.log'}")
    environment["seconds"] = round(time.monotonic() - t0, 1)
    (out / "environment.json").write_text(
        json.dumps(environment, indent=1, sort_keys=True, default=str) + "\n"
    )
    (out / "summary.md").write_text(markdown(summary, environment))
    lines = summary_lines(summary)
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    _say(f"report: {out / 'index.md'}; summary: {out / 'summary.md'}; {environment['seconds']} s in all")
    _say()
    for line in lines:
        _say(line)
    return summary.exit_code


def loaded_line(loaded: Mapping[str, object]) -> str:
    if "error" in loaded:
        return f"CUDA libraries loaded: could not tell ({loaded['error']})"
    parts = []
    if "cudart" in loaded:
        parts.append(f"CUDA runtime {cuda_version_text(int(loaded['cudart']))}")
    if "cudnn" in loaded:
        parts.append(f"cuDNN {cudnn_version_text(int(loaded['cudnn']))}")
    libs = loaded.get("libraries") or {}
    parts.append(
        "libraries " + ", ".join(f"{k} ({v})" for k, v in sorted(libs.items()))
        if libs
        else "no CUDA library found mapped"
    )
    return "onnxruntime loaded: " + "; ".join(parts)


