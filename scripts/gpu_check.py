#!/usr/bin/env python3
"""scripts/gpu-check: validate onnxruntime's CUDA execution provider on this machine's GPU (issue 18).

One command for a machine with an NVIDIA GPU. It finds or builds an interpreter whose
onnxruntime is onnxruntime-gpu (the one given, a wheel directory, or the package index), writes
a small wrapper that puts the CUDA libraries on LD_LIBRARY_PATH, prints the GPU, the driver and
the CUDA/cuDNN versions onnxruntime loaded, then runs ``opref validate`` once per configuration
(CUDA with TF32 off, with TF32 on, with NHWC kernels, TensorRT, and CPU from the same build) and
``opref report`` over them all, and prints a summary table last.

Everything goes through the ``opref`` command line as subprocesses and is read back from
``results.json``; nothing here imports a runtime. The script's exit code: 0 when every required
configuration ran and had no unexpected normative failure and no placement-truth violation;
1 when one was unavailable (the "no CUDA GPU here" path), incomplete or failed; 2 usage errors.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# The issue's time limit for the whole check on one GPU.
DEFAULT_BUDGET_S = 480.0

# onnxruntime-gpu 1.31.1 is built for CUDA 13.0 and cuDNN 9 (its build_and_package_info.py).
DEFAULT_ORT_GPU = "onnxruntime-gpu==1.31.1"

# Verdicts after which the case ran nowhere (not "ran on the wrong provider").
_NOT_RUN = ("fallback", "unsupported")


@dataclass(frozen=True)
class Configuration:
    """One onnxruntime configuration to validate.

    ``required``: unavailable, incomplete or with unexpected failures, it fails the check.
    ``placement_truth``: onnxruntime's CUDA rule for ConvTranspose placement applies (spec
    notes section 4), so the cases it sends to CPU must come out ``fallback``.
    ``constant_weights``: run on the suite's variant with W and B as initializers (the NHWC
    kernels take constant weights).
    """

    spec: str
    required: bool
    placement_truth: bool
    constant_weights: bool = False

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_]+", "-", self.spec).strip("-")


# Run in this order: plain CUDA first, because it tells whether there is a usable GPU at all;
# TensorRT last, because it builds an engine per session and may use up what is left of the budget.
CONFIGURATIONS = (
    Configuration("ort:cuda", required=True, placement_truth=True),
    Configuration("ort:cuda?use_tf32=1", required=True, placement_truth=True),
    Configuration("ort:cuda?prefer_nhwc=1", required=True, placement_truth=True, constant_weights=True),
    Configuration("ort:cpu", required=True, placement_truth=False),
    Configuration("ort:tensorrt", required=False, placement_truth=False),
)
# The order of the summary table (the issue's build matrix: CPU vs CUDA vs CUDA-TF32 vs NHWC).
TABLE_ORDER = ("ort:cpu", "ort:cuda", "ort:cuda?use_tf32=1", "ort:cuda?prefer_nhwc=1", "ort:tensorrt")
_BY_SPEC = {c.spec: c for c in CONFIGURATIONS}


# --- text ---------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    """onnxruntime colours its log lines; a reason printed or stored must be plain text."""
    return _ANSI.sub("", text)


def tail(text: str, lines: int = 6) -> str:
    kept = [ln for ln in strip_ansi(text).strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


# --- the GPU, as the driver sees it --------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    name: str
    driver: str
    memory: str


@dataclass(frozen=True)
class GpuFacts:
    """What nvidia-smi says, or why it said nothing (``problem``)."""

    gpus: tuple[Gpu, ...] = ()
    cuda_driver: str = ""  # the highest CUDA version the driver supports ("CUDA Version" line)
    problem: str = ""

    @property
    def slug(self) -> str:
        if not self.gpus:
            return "no-gpu"
        return re.sub(r"[^a-z0-9]+", "-", self.gpus[0].name.lower()).strip("-") or "gpu"


def find_gpus(nvidia_smi: str | None = None, timeout: float = 30.0) -> GpuFacts:
    """Ask nvidia-smi (``nvidia_smi``, or the one on PATH) for the GPUs and the driver."""
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if not exe:
        return GpuFacts(problem="nvidia-smi is not on PATH (no NVIDIA driver here)")
    query = [exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    try:
        res = subprocess.run(query, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GpuFacts(problem=f"{exe} could not run: {exc}")
    if res.returncode != 0:
        why = tail(res.stdout + res.stderr, 2) or f"exit code {res.returncode}"
        return GpuFacts(problem=f"{exe} failed: {why}")
    gpus = tuple(
        Gpu(*(f.strip() for f in line.split(",")[:3]))
        for line in res.stdout.splitlines()
        if line.count(",") >= 2
    )
    if not gpus:
        return GpuFacts(problem=f"{exe} lists no GPU")
    cuda = ""
    try:
        banner = subprocess.run([exe], capture_output=True, text=True, timeout=timeout, check=False).stdout
        m = re.search(r"CUDA Version:\s*([0-9.]+)", banner)
        cuda = m.group(1) if m else ""
    except (OSError, subprocess.TimeoutExpired):
        pass
    return GpuFacts(gpus, cuda)


# --- wheels and the environment ------------------------------------------------------------

_PART = re.compile(r"^(?P<wheel>.+\.whl)\.part-?(?P<part>[A-Za-z0-9]+)$")


def find_wheels(directory: Path) -> dict[str, list[Path]]:
    """Wheel file name -> the files that make it: itself, or its split parts in name order."""
    found: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        if path.name.endswith(".whl"):
            found.setdefault(path.name, []).insert(0, path)
        elif m := _PART.match(path.name):
            found.setdefault(m.group("wheel"), []).append(path)
    # A whole wheel beside its own parts: the whole file wins.
    return {name: (files[:1] if files[0].name == name else files) for name, files in found.items()}


def pick_wheel(wheels: Mapping[str, list[Path]], python_tag: str) -> str:
    """The onnxruntime-gpu wheel for ``python_tag`` (e.g. cp312); ValueError says what was there."""
    candidates = [
        name
        for name in sorted(wheels)
        if name.lower().startswith("onnxruntime_gpu-") and (f"-{python_tag}-" in name or "-py3-" in name)
    ]
    if not candidates:
        raise ValueError(f"no onnxruntime_gpu wheel for {python_tag} among {sorted(wheels) or 'no wheels'}")
    return candidates[-1]


def assemble_wheel(parts: Sequence[Path], dest: Path) -> Path:
    """Concatenate split parts (or copy a whole wheel) into ``dest`` and check it is a zip."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
    if not zipfile.is_zipfile(tmp):
        tmp.unlink()
        raise ValueError(f"{dest.name}: its parts {[p.name for p in parts]} do not make a zip file")
    return tmp.replace(dest)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def install_target(python: str, target: Path, requirement: str, log: Path) -> str:
    """``pip install --no-deps --target`` one wheel file or requirement; '' or why it failed.

    A target already installed from the same wheel file (same sha256) is kept as it is.
    """
    wheel = Path(requirement)
    stamp = target / ".gpu-check-installed"
    key = _sha256(wheel) if wheel.is_file() else requirement
    if stamp.is_file() and stamp.read_text().strip() == key:
        return ""
    if target.exists():
        shutil.rmtree(target)
    cmd = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), requirement]
    if not wheel.is_file():
        cmd[4:4] = ["--retries", "1", "--timeout", "30"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log.write_text(f"$ {shlex.join(cmd)}\n{res.stdout}{res.stderr}")
    if res.returncode != 0:
        return f"pip install of {requirement} failed: {tail(res.stdout + res.stderr, 3)}"
    stamp.write_text(key + "\n")
    return ""


_SITE_DIRS = r"""
import json, site, sys
dirs = list(site.getsitepackages()) + [site.getusersitepackages()]
dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
print(json.dumps({"tag": "cp%d%d" % sys.version_info[:2], "site": list(dict.fromkeys(dirs))}))
"""


def interpreter_facts(python: str) -> dict:
    """The interpreter's python tag and site-packages directories."""
    res = subprocess.run([python, "-c", _SITE_DIRS], capture_output=True, text=True, check=False, timeout=60)
    if res.returncode != 0:
        raise ValueError(f"{python} does not run: {tail(res.stderr, 2)}")
    return json.loads(res.stdout)


def library_dirs(site_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """Directories of CUDA, cuDNN and TensorRT shared libraries installed as Python packages.

    NVIDIA's wheels (also those PyTorch depends on) put them under ``nvidia/<name>/lib``
    (CUDA 13's under ``nvidia/cu13/lib``); the tensorrt wheels under ``tensorrt_libs``.
    """
    out = []
    for site in site_dirs:
        base = Path(site)
        found = sorted(base.glob("nvidia/*/lib")) + sorted(base.glob("nvidia/*/lib64"))
        found += [base / "tensorrt_libs"]
        for d in found:
            if d.is_dir() and any(f.name.endswith(".so") or ".so." in f.name for f in d.iterdir()):
                out.append(str(d.resolve()))
    return list(dict.fromkeys(out))


def write_wrapper(path: Path, python: str, pythonpath: Sequence[str], libs: Sequence[str]) -> Path:
    """An executable that runs ``python`` with ``pythonpath`` first on its path and ``libs`` on
    LD_LIBRARY_PATH: the interpreter opref's workers run under (``ort:cuda@<path>``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/sh", "# Written by scripts/gpu-check: onnxruntime-gpu and the CUDA libraries it loads."]
    if libs:
        joined = shlex.quote(os.pathsep.join(libs))
        lines.append(f'export LD_LIBRARY_PATH={joined}"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"')
    if pythonpath:
        joined = shlex.quote(os.pathsep.join(pythonpath))
        lines.append(f'export PYTHONPATH={joined}"${{PYTHONPATH:+:$PYTHONPATH}}"')
    lines.append(f'exec {shlex.quote(python)} "$@"')
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


_PROBE = r"""
import json, sys
out = {"python": sys.version.split()[0]}
try:
    import onnxruntime as ort
    out.update(version=ort.__version__, file=ort.__file__, providers=ort.get_available_providers())
    try:
        from onnxruntime.capi import build_and_package_info as b
        out["build"] = {k: str(getattr(b, k)) for k in ("package_name", "cuda_version", "cudnn_version")
                        if hasattr(b, k)}
    except Exception:
        out["build"] = {}
except Exception as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(out))
"""

# Run after CUDA proved available: which CUDA libraries the provider really loaded, and their
# versions as the libraries themselves report them.
_LOADED = r"""
import ctypes, json, re
import numpy as np
import onnxruntime as ort
from opref.model import make_model
model = make_model("probe", (1, 1, 3), (1, 1, 3), None, {}, "float32", 11).SerializeToString()
so = ort.SessionOptions()
so.log_severity_level = 3
sess = ort.InferenceSession(model, so, providers=[("CUDAExecutionProvider", {})])
sess.run(None, {"X": np.ones((1, 1, 3), np.float32), "W": np.ones((1, 1, 3), np.float32)})
libs = {}
pattern = re.compile(r"/(lib(?:cudart|cublasLt|cublas|cudnn|cufft|curand|nvinfer)\.so[.0-9]*)$")
with open("/proc/self/maps") as fh:
    for line in fh:
        m = pattern.search(line.strip())
        if m:
            libs.setdefault(m.group(1), line.split()[-1])
out = {"providers": sess.get_providers(), "libraries": libs}
for name, path in libs.items():
    try:
        if name.startswith("libcudart"):
            v = ctypes.c_int()
            ctypes.CDLL(path).cudaRuntimeGetVersion(ctypes.byref(v))
            out["cudart"] = v.value
        elif name.startswith("libcudnn.so"):
            f = ctypes.CDLL(path).cudnnGetVersion
            f.restype = ctypes.c_size_t
            out["cudnn"] = f()
    except Exception as exc:
        out.setdefault("errors", []).append("%s: %s" % (name, exc))
print(json.dumps(out))
"""


def probe(python: str, script: str = _PROBE, timeout: float = 120.0) -> dict:
    """Run a probe snippet under ``python`` (opref's root on its path); its JSON, or {'error'}."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        res = subprocess.run(
            [python, "-c", script], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    if res.returncode != 0:
        return {"error": tail(res.stderr, 4) or f"exit code {res.returncode}"}
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"unreadable probe output: {tail(res.stdout, 2)!r}"}


def cuda_version_text(value: int) -> str:
    """cudaRuntimeGetVersion's 1000*major + 10*minor."""
    return f"{value // 1000}.{value % 1000 // 10}"


def cudnn_version_text(value: int) -> str:
    """cudnnGetVersion: 10000*major + 100*minor + patch from cuDNN 9 on, 1000*major + ... before."""
    if value >= 90000:
        return f"{value // 10000}.{value % 10000 // 100}.{value % 100}"
    return f"{value // 1000}.{value % 1000 // 100}.{value % 100}"


@dataclass(frozen=True)
class OrtEnvironment:
    """The interpreter opref's workers run onnxruntime-gpu under, and how it came to be."""

    interpreter: str  # the wrapper: ``ort:cuda@<interpreter>``
    python: str  # the interpreter the wrapper runs
    source: str  # where onnxruntime-gpu came from
    library_dirs: tuple[str, ...]
    onnxruntime: dict = field(default_factory=dict)  # the probe's answer


class Unavailable(Exception):
    """No onnxruntime-gpu could be found or installed here (the message says why)."""


def prepare_environment(args: argparse.Namespace, gpus: GpuFacts) -> OrtEnvironment:
    """Find or build an onnxruntime-gpu for ``args.python`` and write its wrapper."""
    python = args.python
    facts = interpreter_facts(python)
    env_dir = Path(args.env).absolute()
    target = env_dir / "site"
    own = probe(python)
    if args.wheels:
        wheels = find_wheels(Path(args.wheels))
        name = pick_wheel(wheels, facts["tag"])
        wheel = assemble_wheel(wheels[name], env_dir / "wheels" / name)
        why = install_target(python, target, str(wheel), env_dir / "pip.log")
        if why:
            raise Unavailable(why)
        source, pythonpath = f"wheel {wheel.name} from {args.wheels}", [str(target)]
    elif "CUDAExecutionProvider" in own.get("providers", []):
        source, pythonpath = f"{python}'s own onnxruntime", []
    elif gpus.gpus and not args.no_index:
        why = install_target(python, target, args.ort_gpu, env_dir / "pip.log")
        if why:
            raise Unavailable(f"{why} (give --wheels DIR on a machine without network access)")
        source, pythonpath = f"{args.ort_gpu} from the package index", [str(target)]
    else:
        have = (
            f"its onnxruntime {own['version']} lists {own['providers']}"
            if "version" in own
            else f"it has no usable onnxruntime ({own.get('error', 'unknown')})"
        )
        raise Unavailable(
            f"no onnxruntime-gpu: {python}: {have}; give --wheels DIR with the onnxruntime_gpu wheel"
        )
    libs = library_dirs([*pythonpath, *facts["site"]])
    wrapper = write_wrapper(env_dir / "python", python, pythonpath, libs)
    info = probe(str(wrapper))
    if "error" in info:
        raise Unavailable(f"onnxruntime-gpu does not import under {wrapper}: {info['error']}")
    if "CUDAExecutionProvider" not in info.get("providers", []):
        raise Unavailable(
            f"onnxruntime {info.get('version')} from {info.get('file')} does not list CUDAExecutionProvider "
            f"(it lists {info.get('providers')})"
        )
    return OrtEnvironment(str(wrapper), python, source, tuple(libs), info)


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
    # The log waits beside OUT: opref validate writes only into a directory it wrote itself, and
    # replaces it whole (a stale results.json cannot pass for this run's).
    log = out.parent / f"{out.name}.validate.log"
    code, seconds = run_opref(argv, log, budget)
    if out.is_dir():
        log = log.replace(out / "validate.log")
    return Run(cfg, spec, out, code, seconds, tail(log.read_text(errors="replace"), 8))


# --- the summary --------------------------------------------------------------------------


def base_spec(runtime: str) -> str:
    """A record's runtime without its ``@interpreter``."""
    plain, sep, _ = runtime.rpartition("@")
    return plain if sep else runtime


def cpu_fallback_reason(attributes: Mapping[str, object]) -> str:
    """Why onnxruntime's CUDA provider hands a ConvTranspose node to CPU, or '' (spec notes
    section 4, ``ConvTransposeNeedFallbackToCPU``: asymmetric pads or any SAME_* auto_pad, as
    written in the node, whether or not output_shape makes the pads irrelevant)."""
    pads = list(attributes.get("pads") or [])
    half = len(pads) // 2
    if pads and pads[:half] != pads[half:]:
        return f"asymmetric pads {pads}"
    auto_pad = attributes.get("auto_pad")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return f"auto_pad {auto_pad}"
    return ""


def _cell(rec: dict) -> str:
    if rec["verdict"] == "divergence" and rec.get("reading"):
        return "divergence: " + ",".join(rec["reading"].values())
    return rec["verdict"]


@dataclass(frozen=True)
class ConfigSummary:
    spec: str
    required: bool
    ran: bool  # results.json exists
    available: bool
    complete: bool
    reason: str  # why unavailable or incomplete
    name: str
    version: str
    counts: dict[str, int]
    unexpected: tuple[str, ...]  # "case verdict"
    max_bound_fraction: float | None  # float32 random-data cases judged by value
    max_abs_error: float | None

    @property
    def cases(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class PlacementCheck:
    """A case the CUDA provider must refuse, and what each CUDA configuration gave it."""

    case: str
    reason: str
    verdicts: dict[str, str]  # configuration -> verdict
    violations: tuple[str, ...]  # configurations where it was not fallback


@dataclass(frozen=True)
class Difference:
    case: str
    configuration: str
    cpu: str
    gpu: str


@dataclass(frozen=True)
class Summary:
    configs: tuple[ConfigSummary, ...]
    placement: tuple[PlacementCheck, ...]
    differences: tuple[Difference, ...]
    placement_by_case: dict[str, dict[str, str]]  # case -> configuration -> placement or verdict
    unexpected_fallback: dict[str, tuple[str, ...]]  # configuration -> cases not in the rule

    def config(self, spec: str) -> ConfigSummary | None:
        return next((c for c in self.configs if c.spec == spec), None)

    @property
    def problems(self) -> list[str]:
        """Why the check fails (empty: it passes)."""
        out = []
        for c in self.configs:
            if not c.required:
                continue
            if not c.ran:
                out.append(f"{c.spec}: did not run ({c.reason})")
            elif not c.available:
                out.append(f"{c.spec}: unavailable: {c.reason}")
            elif not c.complete:
                out.append(f"{c.spec}: incomplete: {c.reason}")
            if c.unexpected:
                out.append(f"{c.spec}: {len(c.unexpected)} unexpected normative failures")
        for p in self.placement:
            for spec in p.violations:
                out.append(
                    f"{spec}: {p.case} must fall back to CPU ({p.reason}) but came out {p.verdicts[spec]}"
                )
        return out

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.problems else EXIT_OK

    def fallback_count(self, spec: str) -> int:
        c = self.config(spec)
        return c.counts.get("fallback", 0) if c else 0


def _summarize_config(cfg: Configuration, results: dict | None, note: str) -> ConfigSummary:
    if results is None:
        return ConfigSummary(cfg.spec, cfg.required, False, False, False, note, "", "", {}, (), None, None)
    rts = [rt for rt in results.get("runtimes", []) if base_spec(rt["spec"]) == cfg.spec]
    rt = rts[0] if rts else {"available": False, "reason": "not in results.json", "name": "", "version": ""}
    recs = [r for r in results.get("records", []) if base_spec(r["runtime"]) == cfg.spec]
    counts = dict(Counter(r["verdict"] for r in recs))
    unexpected = tuple(
        sorted(
            f"{u['case']} {u['verdict']}"
            for u in results.get("unexpected", [])
            if base_spec(u["runtime"]) == cfg.spec
        )
    )
    complete = (
        bool(results.get("complete", True))
        and not results.get("suite_problems")
        and not results.get("case_problems")
    )
    reason = strip_ansi(rt.get("reason", ""))
    if rt["available"] and not complete:
        problems = [*results.get("suite_problems", []), *results.get("case_problems", {})]
        reason = "results.json says the run is not complete" + (
            f" ({len(problems)} suite problems)" if problems else ""
        )
    judged = [
        r["comparison"]
        for r in recs
        if r.get("comparison")
        and r["dtype"] == "float32"
        and not r["comparison"].get("bitexact_required")
        and r["verdict"] in ("pass", "fail-values")
    ]
    fraction = max((c["max_bound_fraction"] for c in judged), default=None)
    abs_error = max((c["max_abs_error"] for c in judged), default=None)
    return ConfigSummary(
        cfg.spec,
        cfg.required,
        True,
        bool(rt["available"]),
        complete,
        reason,
        rt.get("name", ""),
        rt.get("version", ""),
        counts,
        unexpected,
        fraction,
        abs_error,
    )


def summarize(
    results: Mapping[str, dict | None],
    configurations: Sequence[Configuration] = CONFIGURATIONS,
    notes: Mapping[str, str] | None = None,
) -> Summary:
    """The check's findings from each configuration's results.json (None: it did not run)."""
    notes = notes or {}
    configs = tuple(
        _summarize_config(cfg, results.get(cfg.spec), notes.get(cfg.spec, "not run"))
        for cfg in configurations
    )
    records: dict[str, dict[str, dict]] = {}
    for cfg in configurations:
        res = results.get(cfg.spec) or {}
        for rec in res.get("records", []):
            if base_spec(rec["runtime"]) == cfg.spec:
                records.setdefault(cfg.spec, {})[rec["case"]] = rec
    truth = [c.spec for c in configurations if c.placement_truth and c.spec in records]
    cases = sorted({case for recs in records.values() for case in recs})
    placement, unexpected_fallback = [], {}
    for spec in truth:
        unexpected_fallback[spec] = tuple(
            case
            for case, rec in sorted(records[spec].items())
            if rec["verdict"] == "fallback" and not cpu_fallback_reason(rec["attributes"])
        )
    for case in cases:
        rec = next(recs[case] for recs in records.values() if case in recs)
        reason = cpu_fallback_reason(rec["attributes"])
        if not reason or rec.get("expect") != "output":
            continue  # a must-reject model may be refused before placement
        verdicts = {spec: records[spec][case]["verdict"] for spec in truth if case in records[spec]}
        violations = tuple(spec for spec, v in verdicts.items() if v not in _NOT_RUN)
        placement.append(PlacementCheck(case, reason, verdicts, violations))
    differences = []
    cpu = records.get("ort:cpu", {})
    for cfg in configurations:
        if cfg.spec == "ort:cpu" or cfg.spec not in records:
            continue
        for case, rec in sorted(records[cfg.spec].items()):
            if case in cpu and rec["verdict"] != "fallback" and _cell(rec) != _cell(cpu[case]):
                differences.append(Difference(case, cfg.spec, _cell(cpu[case]), _cell(rec)))
    by_case = {
        case: {
            spec: (recs[case].get("placement") or recs[case]["verdict"]) if case in recs else "-"
            for spec, recs in records.items()
        }
        for case in cases
    }
    return Summary(configs, tuple(placement), tuple(differences), by_case, unexpected_fallback)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def table_rows(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """The summary table: one row per configuration, the verdict columns that occur."""
    order = [
        "pass",
        "divergence",
        "rejected",
        "fallback",
        "unsupported",
        "fail-shape",
        "fail-values",
        "error",
        "accepted-invalid",
        "crashed",
        "timeout",
    ]
    shown = [v for v in order if any(c.counts.get(v) for c in summary.configs)]
    header = ["configuration", "status", *shown, "unexpected", "max err/bound f32"]
    rows = []
    specs = [s for s in TABLE_ORDER if summary.config(s)] + [
        c.spec for c in summary.configs if c.spec not in TABLE_ORDER
    ]
    for spec in specs:
        c = summary.config(spec)
        if not c.ran:
            status = "not run"
        elif not c.available:
            status = "unavailable"
        else:
            status = "ran" if c.complete else "incomplete"
        rows.append(
            [
                spec,
                status,
                *[str(c.counts.get(v, 0)) for v in shown],
                str(len(c.unexpected)),
                _fraction(c.max_bound_fraction),
            ]
        )
    return header, rows


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), *(fmt.format(*r) for r in rows)]


def summary_lines(summary: Summary, limit: int = 20) -> list[str]:
    """The short summary printed last."""
    header, rows = table_rows(summary)
    lines = text_table(header, rows)
    for c in summary.configs:
        if c.ran and not c.available:
            lines.append(f"{c.spec} unavailable: {c.reason}")
    cuda = [
        c
        for c in CONFIGURATIONS
        if c.placement_truth and summary.config(c.spec) and summary.config(c.spec).ran
    ]
    must = len(summary.placement)
    bad = sum(1 for p in summary.placement if p.violations)
    for cfg in cuda:
        extra = summary.unexpected_fallback.get(cfg.spec, ())
        lines.append(
            f"{cfg.spec}: {summary.fallback_count(cfg.spec)} fallback; "
            + (
                f"{len(extra)} of them outside the CPU-placement rule"
                if extra
                else "all within the CPU-placement rule"
            )
        )
    lines.append(
        f"placement truth: {must} cases with asymmetric pads or SAME_* auto_pad must come out "
        "fallback on CUDA: " + (f"{bad} do not (see summary.md)" if bad else "all do")
    )
    off, on = summary.config("ort:cuda"), summary.config("ort:cuda?use_tf32=1")
    if off and on:
        lines.append(
            "TF32 max error / bound (float32 random data): "
            f"off {_fraction(off.max_bound_fraction)} of the fp32 bound, "
            f"on {_fraction(on.max_bound_fraction)} of the TF32 bound"
        )
    lines.append(f"CUDA vs CPU: {len(summary.differences)} (case, configuration) pairs differ")
    for d in summary.differences[:limit]:
        lines.append(f"  {d.configuration} {d.case}: cpu {d.cpu}, gpu {d.gpu}")
    if len(summary.differences) > limit:
        lines.append(f"  ... {len(summary.differences) - limit} more in summary.md")
    problems = summary.problems
    for p in problems[:limit]:
        lines.append(f"FAIL {p}")
    if len(problems) > limit:
        lines.append(f"... {len(problems) - limit} more problems in summary.md")
    lines.append(f"gpu-check: {'FAILED' if problems else 'passed'} (exit {summary.exit_code})")
    return lines


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |" for r in rows]
    return [*out, ""]


def markdown(summary: Summary, environment: Mapping[str, object]) -> str:
    """summary.md: the environment, the verdict matrix, placement truth, placement per case,
    and every case where a GPU configuration and CPU differ."""
    lines = ["# gpu-check: onnxruntime CUDA execution provider", ""]
    lines += ["## Environment", ""]
    lines += [
        f"- {k}: " + (v if isinstance(v, str) else f"`{json.dumps(v, sort_keys=True, default=str)}`")
        for k, v in environment.items()
    ]
    lines += ["", "## Verdicts per configuration", ""]
    lines += _md_table(*table_rows(summary))
    lines += [
        "`max err/bound f32`: the largest error as a fraction of the bound the case was judged by, over "
        "float32 random-data cases (the TF32 bound for `use_tf32=1`, the float32 bound otherwise).",
        "",
    ]
    for c in summary.configs:
        if c.reason:
            lines.append(f"- `{c.spec}`: {c.reason}")
        for u in c.unexpected:
            lines.append(f"- `{c.spec}` unexpected: {u}")
    lines += ["", "## Placement truth", ""]
    lines += [
        "onnxruntime's CUDA provider gives ConvTranspose nodes with asymmetric pads or a SAME_* auto_pad to "
        "the CPU provider (`ConvTransposeNeedFallbackToCPU`). With the CPU fallback disabled these cases "
        "must come out `fallback`.",
        "",
    ]
    specs = [
        c.spec
        for c in CONFIGURATIONS
        if c.placement_truth and summary.config(c.spec) and summary.config(c.spec).ran
    ]
    rows = [
        [p.case, p.reason, *[p.verdicts.get(s, "-") for s in specs], "ok" if not p.violations else "VIOLATED"]
        for p in summary.placement
    ]
    lines += _md_table(["case", "why", *specs, "truth"], rows) if rows else ["No such case ran.", ""]
    for spec, cases in summary.unexpected_fallback.items():
        if cases:
            lines += [f"`{spec}` also refused {len(cases)} cases outside that rule: {', '.join(cases)}", ""]
    lines += ["## CUDA vs CPU", ""]
    rows = [[d.case, d.configuration, d.cpu, d.gpu] for d in summary.differences]
    lines += (
        _md_table(["case", "configuration", "ort:cpu", "GPU configuration"], rows)
        if rows
        else [
            "No case differs (fallback cases aside; both passing means both within the bound, "
            "bit-identical on exact data).",
            "",
        ]
    )
    lines += ["## Placement per case", ""]
    all_specs = sorted(
        {s for row in summary.placement_by_case.values() for s in row},
        key=lambda s: (s not in TABLE_ORDER, TABLE_ORDER.index(s) if s in TABLE_ORDER else 0, s),
    )
    rows = [[case, *[row.get(s, "-") for s in all_specs]] for case, row in summary.placement_by_case.items()]
    lines += _md_table(["case", *all_specs], rows)
    if summary.problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in summary.problems] + [""]
    return "\n".join(lines)


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


if __name__ == "__main__":
    sys.exit(main())
