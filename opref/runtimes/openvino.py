"""OpenVINO itself (the ``openvino`` extra), CPU device, f32 inference precision unless asked.

Its CPU plugin's default precision on CPUs with bf16 support is bf16 (spec notes section 4),
so ``INFERENCE_PRECISION_HINT`` is pinned to f32; ``openvino?INFERENCE_PRECISION_HINT=bf16``
overrides it.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status
from opref.runtimes.roundoff import unit_roundoff_for


class OpenVinoAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        self.device = options.pop("device", "CPU")
        self.config = {"INFERENCE_PRECISION_HINT": "f32", **options}
        try:
            import openvino as ov
        except Exception as exc:
            self._info = RuntimeInfo(
                spec, "openvino", "", False, f"cannot import openvino ({exc}); install the 'openvino' extra"
            )
            return
        self._ov = ov
        self._core = ov.Core()
        devices = self._core.available_devices
        if self.device not in devices:
            self._info = RuntimeInfo(
                spec, "openvino", ov.__version__, False, f"device {self.device} not in {devices}"
            )
            return
        self._info = RuntimeInfo(
            spec, "openvino", ov.__version__, True, "", {"device": self.device, "config": self.config}
        )

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return unit_roundoff_for("openvino", "", self.config, dtype)

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        try:
            ov_model = self._core.read_model(model=model)
            compiled = self._core.compile_model(ov_model, self.device, self.config)
            result = compiled(inputs)
            port = compiled.outputs[0]
            out = np.asarray(result[port])
            if port.get_element_type() == self._ov.Type.bf16 and out.dtype != ml_dtypes.bfloat16:
                # OpenVINO's Python API hands bfloat16 data out as a float16-typed array of the
                # same bits; reinterpret it rather than report a wrong element type.
                out = out.view(np.uint16).view(ml_dtypes.bfloat16)
        except Exception as exc:
            low = str(exc).lower()
            unsupported = ("not supported", "unsupported", "wasn't fully converted", "opconversionfailure")
            status = Status.UNSUPPORTED if any(m in low for m in unsupported) else Status.ERROR
            return Outcome(status, message=f"{type(exc).__name__}: {exc}")
        return Outcome(Status.OK, out, "", self.device)
