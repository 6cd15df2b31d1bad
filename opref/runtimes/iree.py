"""IREE (``iree-base-compiler[onnx]`` + ``iree-base-runtime``): ``iree``, ``iree:DEVICE`` (default
``local-task``, the CPU) with options ``target`` (compiler backend, default ``llvm-cpu``) and
``demote_f64`` (default ``0``).

Each model takes the path an application takes: ``iree-import-onnx`` (run in this process, the
same entry point as the console tool) turns it into MLIR, ``iree-compile`` (IREE's compiler,
which the Python API runs as a subprocess) builds a VM module for the CPU, and IREE's runtime
runs it. IREE demotes float64 to float32 unless told not to (*measured*): float64 would then
carry float32 precision, so opref passes ``--iree-input-demote-f64-to-f32=false`` unless
``demote_f64=1`` asks for IREE's default (whose float64 results are then judged as float64).

Classification: an importer or compiler that refuses a valid model is an ``error`` with IREE's
first diagnostic. A compiler *killed by a signal* (``group=0`` makes ``iree-compile`` die with
SIGFPE, *measured* on 3.13) is a crash of the runtime, not a refusal: the adapter prints the
compiler's diagnostics and re-raises the same signal in its worker, so the validator records
``crashed`` exactly as it would for a user who compiles in-process.
"""

from __future__ import annotations

import re
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status

# Diagnostics that mean "IREE has no lowering for this form", not "this model is wrong".
_UNSUPPORTED_MARKERS = ("not implemented", "unimplemented", "not supported", "unsupported")


class IreeAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        self.device = options.get("device", "local-task")
        self.target = options.get("target", "llvm-cpu")
        self.demote_f64 = options.get("demote_f64", "0") not in ("0", "false", "False")
        try:
            import iree.compiler.tools as compiler
            import iree.runtime as runtime
            from iree.compiler.tools.import_onnx import __main__ as import_onnx
        except Exception as exc:
            self._info = RuntimeInfo(
                spec,
                "iree",
                "",
                False,
                f"cannot import iree ({exc}); build it: scripts/make-envs iree",
            )
            return
        self._compiler, self._runtime, self._import_onnx = compiler, runtime, import_onnx
        versions = {d: _version(d) for d in ("iree-base-compiler", "iree-base-runtime")}
        details = {
            "device": self.device,
            "target_backend": self.target,
            "demote_f64": self.demote_f64,
            "versions": versions,
        }
        try:
            runtime.get_device(self.device)
        except Exception as exc:
            self._info = RuntimeInfo(
                spec,
                "iree",
                versions["iree-base-runtime"],
                False,
                f"no IREE device {self.device!r}: {exc}",
                details,
            )
            return
        self._info = RuntimeInfo(spec, "iree", versions["iree-base-runtime"], True, "", details)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        # Not relaxed under demote_f64=1: float64 computed in float32 is a wrong float64 result
        # (the verdict shows the demotion), unlike TF32, which is an accumulation opted into.
        return None

    def _compile_args(self) -> list[str]:
        args = [f"--iree-input-demote-f64-to-f32={'true' if self.demote_f64 else 'false'}"]
        if self.target == "llvm-cpu":
            args.append("--iree-llvmcpu-target-cpu=host")
        return args

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="opref-iree-") as tmp:
            onnx_path, mlir_path = Path(tmp) / "model.onnx", Path(tmp) / "model.mlir"
            onnx_path.write_bytes(model)
            try:
                args = self._import_onnx.parse_arguments([str(onnx_path), "-o", str(mlir_path)])
                self._import_onnx.main(args)
            except Exception as exc:
                return _classify("iree-import-onnx", _first_lines(str(exc)), type(exc).__name__)
            try:
                vmfb = self._compiler.compile_file(
                    str(mlir_path),
                    input_type="onnx",
                    target_backends=[self.target],
                    extra_args=self._compile_args(),
                )
            except self._compiler.CompilerToolError as exc:
                code = getattr(exc, "returncode", None)
                text = str(exc)
                if code is None:
                    code = _error_code(text)
                if code is not None and code < 0:
                    _crash_like(-code, text)
                return _classify("iree-compile", _diagnostics(text), "CompilerToolError")
        try:
            return self._execute(vmfb, model, inputs)
        except Exception as exc:
            return _classify("iree runtime", _first_lines(str(exc)), type(exc).__name__)

    def _execute(self, vmfb: bytes, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        import onnx

        rt = self._runtime
        graph = onnx.load_from_string(model).graph
        config = rt.Config(self.device)
        ctx = rt.SystemContext(config=config)
        vm_module = rt.VmModule.copy_buffer(ctx.instance, vmfb)
        ctx.add_vm_module(vm_module)
        module = ctx.modules[vm_module.name]
        entry = graph.name if graph.name in vm_module.function_names else vm_module.function_names[0]
        result = module[entry](
            *[np.ascontiguousarray(inputs[i.name]) for i in graph.input if i.name in inputs]
        )
        if isinstance(result, (list, tuple)):
            result = result[0]
        return Outcome(Status.OK, np.asarray(result.to_host()), "", self.device)


def _crash_like(sig: int, text: str) -> None:
    """The compiler died of signal ``sig``: die the same way, its diagnostics on stderr first."""
    sys.stderr.write(f"iree-compile killed by signal {sig}\n{text[:4000]}\n")
    sys.stderr.flush()
    signal.raise_signal(sig)


def _error_code(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("Error code:"):
            try:
                return int(line.split(":", 1)[1])
            except ValueError:
                return None
    return None


def _diagnostics(text: str) -> str:
    """The compiler's first diagnostic lines (its message repeats the command line after them)."""
    body = text.split("Diagnostics:", 1)[-1].split("Invoked with:", 1)[0]
    # "/tmp/opref-iree-x/model.mlir:4:10: error: ..." -> "error: ..." (the path is ours, not IREE's)
    errors = [_short(ln[ln.index("error:") :].strip()) for ln in body.splitlines() if "error:" in ln]
    return " | ".join(errors[:3]) if errors else _first_lines(body)


def _short(error: str) -> str:
    """An MLIR error without the operation it dumps after ': %N = ', keeping the ONNX op's name."""
    head, sep, dump = error.partition(": %")
    if not sep:
        return error
    name = re.search(r'name = "([\w.]+)"', dump)
    return head + (f" ({name.group(1)})" if name else "")


def _first_lines(text: str, n: int = 3) -> str:
    return " | ".join([ln.strip() for ln in text.splitlines() if ln.strip()][:n])


def _classify(stage: str, reason: str, kind: str) -> Outcome:
    low = reason.lower()
    status = Status.UNSUPPORTED if any(m in low for m in _UNSUPPORTED_MARKERS) else Status.ERROR
    return Outcome(status, message=f"{stage}: {kind}: {reason}"[:2000])


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""
