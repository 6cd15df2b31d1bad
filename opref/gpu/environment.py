"""The GPU as the driver sees it, and an interpreter whose onnxruntime is onnxruntime-gpu:
find or assemble the wheel, install it apart, put the CUDA libraries on the loader path, probe
what onnxruntime loaded."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from opref.gpu.common import ROOT, tail

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


