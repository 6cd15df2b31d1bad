"""onnx's ReferenceEvaluator: a runtime to validate (it has known ConvTranspose bugs), not an oracle."""

from __future__ import annotations

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status


class OnnxReferenceAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        try:
            import onnx
            from onnx.reference import ReferenceEvaluator
        except Exception as exc:
            self._info = RuntimeInfo(
                spec, "onnx.reference", "", False, f"cannot import onnx.reference: {exc}"
            )
            return
        self._evaluator = ReferenceEvaluator
        self._onnx = onnx
        self._info = RuntimeInfo(spec, "onnx.reference", onnx.__version__, True)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        try:
            ev = self._evaluator(self._onnx.load_from_string(model))
            out = ev.run(None, inputs)[0]
        except NotImplementedError as exc:
            return Outcome(Status.UNSUPPORTED, message=f"NotImplementedError: {exc}")
        except Exception as exc:
            return Outcome(Status.ERROR, message=f"{type(exc).__name__}: {exc}")
        return Outcome(Status.OK, np.asarray(out), "", "python")
