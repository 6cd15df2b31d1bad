"""OpenCV's DNN module (``opencv-python-headless``, ``cv2.dnn``): ``opencv``, with option
``engine`` = ``auto`` (default: OpenCV 5 tries its new engine, then falls back to the classic
one), ``new`` or ``classic``.

The model is read from memory by ``cv2.dnn.readNetFromONNX`` with W and B made constants (see
``opref.runtimes.frozen``: the form OpenCV is given in use), X is set as the net's input and
``forward()`` runs it on the CPU backend, as an application does.

Classification (*measured* on 5.0.0): OpenCV's ConvTranspose layer has no float64 kernel (its
forward asserts ``func != nullptr``): ``unsupported``. ``cv2`` cannot take a bfloat16 array at
all (numpy's ml_dtypes type is not a Mat): ``unsupported``. Any other refusal is an ``error``
with OpenCV's assertion. A division by zero inside OpenCV (SIGFPE on some must-reject models)
kills the worker and is recorded as ``crashed`` by the validator.
"""

from __future__ import annotations

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status
from opref.runtimes.frozen import freeze_weights

_ENGINES = {"auto": "ENGINE_AUTO", "new": "ENGINE_NEW", "classic": "ENGINE_CLASSIC"}


class OpenCvAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        engine = options.get("engine", "auto")
        try:
            import cv2
        except Exception as exc:
            self._info = RuntimeInfo(
                spec, "opencv", "", False, f"cannot import cv2 ({exc}); build it: scripts/make-envs opencv"
            )
            return
        self._cv2 = cv2
        if engine not in _ENGINES:
            self._info = RuntimeInfo(
                spec, "opencv", cv2.__version__, False, f"engine {engine!r}: one of {sorted(_ENGINES)}"
            )
            return
        self._engine = getattr(cv2.dnn, _ENGINES[engine])
        details = {"engine": engine, "backend": "OpenCV (CPU)", "weights": "constants"}
        self._info = RuntimeInfo(spec, "opencv", cv2.__version__, True, "", details)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        cv2 = self._cv2
        proto, name, x = freeze_weights(model, inputs)
        if x.dtype.name == "bfloat16":
            return Outcome(Status.UNSUPPORTED, message="cv2 takes no bfloat16 array (no such Mat depth)")
        try:
            net = cv2.dnn.readNetFromONNX(np.frombuffer(proto.SerializeToString(), np.uint8), self._engine)
        except cv2.error as exc:
            return _classify("readNetFromONNX", exc)
        try:
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            net.setInput(np.ascontiguousarray(x), name)
            out = net.forward()
        except cv2.error as exc:
            return _classify("forward", exc)
        return Outcome(Status.OK, np.asarray(out), "", "OpenCV CPU")


def _classify(stage: str, exc: Exception) -> Outcome:
    # OpenCV's message: "OpenCV(5.0.0) /path/file.cpp:N: error: (-215:Assertion failed) ... in function 'f'"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reason = next((ln for ln in lines if "error:" in ln), lines[-1] if lines else "")
    reason = reason[reason.find("error:") :] if "error:" in reason else reason
    where = next((ln.split()[1] for ln in lines if ln.startswith("OpenCV(") and len(ln.split()) > 1), "")
    status = Status.UNSUPPORTED if "func != nullptr" in reason and "convtranspose" in where else Status.ERROR
    if status is Status.UNSUPPORTED:
        reason = "no kernel for this element type (" + reason + ")"
    return Outcome(status, message=f"opencv {stage}: {reason} [{where.rsplit('/', 1)[-1]}]"[:2000])
