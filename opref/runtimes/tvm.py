"""Apache TVM (the ``apache-tvm`` wheel): ``tvm``, ``tvm:TARGET`` (default ``llvm``, the CPU).

Each model goes through TVM's Relax ONNX frontend (``tvm.relax.frontend.onnx.from_onnx``), is
compiled for the target with ``tvm.compile`` and run by Relax's virtual machine, as an
application would. A frontend that says it has no conversion (``NotImplementedError``,
``OpNotImplemented``: more than 3 spatial axes, say) is ``unsupported``; any other refusal of a
valid model is an ``error`` with TVM's message.
"""

from __future__ import annotations

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status

_UNSUPPORTED_TYPES = ("NotImplementedError", "OpNotImplemented")


class TvmAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        self.target = options.get("target", "llvm")
        try:
            import onnx
            import tvm
            from tvm import relax
            from tvm.relax.frontend.onnx import from_onnx
        except Exception as exc:
            self._info = RuntimeInfo(
                spec, "tvm", "", False, f"cannot import tvm ({exc}); build it: scripts/make-envs tvm"
            )
            return
        self._onnx, self._tvm, self._relax, self._from_onnx = onnx, tvm, relax, from_onnx
        kind = self.target.split()[0]
        # A target names a code generator; the device that runs its code is the CPU for llvm/c.
        self._device = tvm.cpu(0) if kind in ("llvm", "c") else tvm.device(kind, 0)
        details = {"target": self.target, "device": str(self._device)}
        if not self._device.exist:
            self._info = RuntimeInfo(
                spec, "tvm", str(tvm.__version__), False, f"no {kind} device here", details
            )
            return
        if kind == "llvm" and not tvm.runtime.enabled("llvm"):
            self._info = RuntimeInfo(
                spec, "tvm", str(tvm.__version__), False, "this TVM build has no LLVM code generator", details
            )
            return
        self._info = RuntimeInfo(spec, "tvm", str(tvm.__version__), True, "", details)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        tvm, relax = self._tvm, self._relax
        try:
            proto = self._onnx.load_from_string(model)
            names = [i.name for i in proto.graph.input]
            mod = self._from_onnx(proto, keep_params_in_input=False)
            executable = tvm.compile(mod, target=self.target)
            vm = relax.VirtualMachine(executable, self._device)
        except Exception as exc:
            return _classify("import/compile", exc)
        try:
            args = [tvm.runtime.tensor(np.ascontiguousarray(inputs[n]), self._device) for n in names]
            out = vm["main"](*args)
            if isinstance(out, (list, tuple)) or type(out).__name__ in ("Array", "ADT", "Tuple"):
                out = out[0]
            result = out.numpy()
        except Exception as exc:
            return _classify("run", exc)
        return Outcome(Status.OK, np.asarray(result), "", str(self._device))


def _classify(stage: str, exc: Exception) -> Outcome:
    # TVM's errors carry a C++ traceback; the reason is the last non-empty line.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reason = lines[-1] if lines else ""
    status = Status.UNSUPPORTED if type(exc).__name__ in _UNSUPPORTED_TYPES else Status.ERROR
    return Outcome(status, message=f"tvm {stage}: {type(exc).__name__}: {reason}"[:2000])
