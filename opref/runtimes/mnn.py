"""Alibaba MNN (the ``MNN`` wheel): ``mnn``.

Each model goes the way an application ships it: MNN's converter turns the ONNX model (W and B
made constants, see ``opref.runtimes.frozen``) into an ``.mnn`` file, and MNN's runtime loads
that file as a module (``MNN.nn.load_module_from_file``) and runs X through it on the CPU.

The converter is MNN's native one, ``_tools.mnnconvert`` (the compiled extension the
``mnnconvert`` console script calls), called with the console script's argument list. The
Python wrapper around it is never imported: ``MNN.tools.mnnconvert`` imports
``MNN.tools.utils.log``, a telemetry module that, when the ``aliyun`` package is missing, runs
``pip install -U aliyun-log-python-sdk`` through ``os.system`` at import time (into whatever
Python is on PATH; it installed ten packages into the machine's Python here) and then reports
each conversion to a remote log service. Before anything of MNN is imported, ``block_telemetry``
installs an import hook that refuses that module and ``aliyun`` (an ImportError, which the
wrapper already tolerates), so no code path can reach it; tests/test_ecosystem.py runs a
conversion under an audit hook and a recording ``pip`` on PATH and checks nothing is run.

Classification: a converter that fails on a valid model is an ``error`` with the converter's
output; on a must-reject model the same refusal is what the case wants (``rejected``). MNN's
runtime computes float32 (its CPU backend may use float16/bfloat16 internally only when asked);
models of another element type are ``unsupported``. A segfault inside MNN kills the worker and
is recorded as ``crashed``.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status
from opref.runtimes.frozen import freeze_weights, version_of

# Modules MNN's Python wrapper would import for telemetry (and to install its client).
BLOCKED = ("MNN.tools.utils.log", "aliyun")


class _TelemetryBlocker(importlib.abc.MetaPathFinder):
    """Refuses to import MNN's telemetry module and the log client it would install."""

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == b or fullname.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"opref blocks {fullname!r} (MNN telemetry: pip install and remote logging)")
        return None


def block_telemetry() -> None:
    """Make MNN's telemetry module unimportable in this process (idempotent)."""
    for name in list(sys.modules):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise RuntimeError(f"{name} is already imported: MNN's telemetry ran before opref could block it")
    if not any(isinstance(f, _TelemetryBlocker) for f in sys.meta_path):
        sys.meta_path.insert(0, _TelemetryBlocker())


class MnnAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        try:
            block_telemetry()
            import _tools
            import MNN
            import MNN.expr
            import MNN.nn
        except Exception as exc:
            self._info = RuntimeInfo(
                spec, "mnn", "", False, f"cannot import MNN ({exc}); build it: scripts/make-envs mnn"
            )
            return
        self._tools, self._mnn = _tools, MNN
        details = {"converter": "_tools.mnnconvert (native)", "backend": "CPU", "weights": "constants"}
        self._info = RuntimeInfo(spec, "mnn", version_of("MNN"), True, "", details)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def convert(self, onnx_path: Path, mnn_path: Path) -> str:
        """Run MNN's native converter; returns its output (stdout and stderr) when it fails."""
        argv = [
            "mnnconvert",
            "-f",
            "ONNX",
            "--modelFile",
            str(onnx_path),
            "--MNNModel",
            str(mnn_path),
            "--bizCode",
            "opref",
        ]
        with _captured_fds() as log:
            self._tools.mnnconvert(argv)
        if mnn_path.is_file() and mnn_path.stat().st_size > 0:
            return ""
        return log.read_text(errors="replace")

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        proto, name, x = freeze_weights(model, inputs)
        if x.dtype != np.float32:
            return Outcome(Status.UNSUPPORTED, message=f"mnn: runs float32 models only, not {x.dtype}")
        out_name = proto.graph.output[0].name
        with tempfile.TemporaryDirectory(prefix="opref-mnn-") as tmp:
            onnx_path, mnn_path = Path(tmp) / "model.onnx", Path(tmp) / "model.mnn"
            onnx_path.write_bytes(proto.SerializeToString())
            failure = self.convert(onnx_path, mnn_path)
            if failure:
                return Outcome(Status.ERROR, message=f"mnnconvert: {_last_lines(failure)}"[:2000])
            try:
                F, nn = self._mnn.expr, self._mnn.nn
                module = nn.load_module_from_file(str(mnn_path), [name], [out_name])
                var = F.const(np.ascontiguousarray(x).ravel().tolist(), list(x.shape), F.NCHW, F.float)
                y = module.forward(var)
                if isinstance(y, (list, tuple)):
                    y = y[0]
                y = F.convert(y, F.NCHW)
                shape = list(y.shape)
            except Exception as exc:
                return Outcome(Status.ERROR, message=f"mnn run: {type(exc).__name__}: {exc}"[:2000])
            try:
                out = np.array(y.read(), dtype=np.float32).reshape(shape)
            except Exception as exc:  # e.g. an output shape with a 0 in it (3-D, measured on 3.6.1)
                return Outcome(
                    Status.ERROR, message=f"mnn: cannot read its output of shape {shape} ({exc})"[:2000]
                )
        return Outcome(Status.OK, out, "", "MNN CPU")


@contextlib.contextmanager
def _captured_fds():
    """stdout and stderr of native code (file descriptors 1 and 2) go to a file while inside."""
    with tempfile.TemporaryDirectory(prefix="opref-mnn-log-") as tmp:
        log = Path(tmp) / "log.txt"
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        fd = os.open(log, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            yield log
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for f in (*saved, fd):
                os.close(f)


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "not support" in ln.lower()]
    return " | ".join((errors or lines)[-n:]) or "no .mnn file written"
