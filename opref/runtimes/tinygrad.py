"""tinygrad's ONNX frontend (``tinygrad.nn.onnx.OnnxRunner``): ``tinygrad``, ``tinygrad:DEVICE``.

The device is tinygrad's ``DEV`` setting, read when tinygrad is imported, so the adapter sets it
in its own (worker) process before the import. The default, ``CPU:X86``, is tinygrad's CPU device
with its own x86 code generator: the CPU device's default generator compiles C with clang, and
Debian 12's clang 14 has no ``__bf16`` (*measured*); both still need the ``clang`` package
(``scripts/make-envs`` installs it when it can). ``tinygrad:PYTHON`` is tinygrad's pure-Python
device: no compiler at all, much slower.
"""

from __future__ import annotations

import os
import tempfile

import ml_dtypes
import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status

DEFAULT_DEVICE = "CPU:X86"


class TinygradAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        self.device = options.get("device", DEFAULT_DEVICE)
        os.environ["DEV"] = self.device
        try:
            from tinygrad import Tensor, dtypes
            from tinygrad.nn.onnx import OnnxRunner
        except Exception as exc:
            self._info = RuntimeInfo(
                spec,
                "tinygrad",
                "",
                False,
                f"cannot import tinygrad ({exc}); build it: scripts/make-envs tinygrad",
            )
            return
        self._runner = OnnxRunner
        self._bfloat16 = dtypes.bfloat16
        version = _version("tinygrad")
        details = {"device": self.device}
        try:
            # A one-element computation proves the device and its compiler work here.
            probe = (Tensor([1.0, 2.0]) * 2).tolist()
            if probe != [2.0, 4.0]:
                raise RuntimeError(f"probe computed {probe}")
            details["device_resolved"] = str(Tensor([1.0]).device)
        except Exception as exc:
            self._info = RuntimeInfo(
                spec,
                "tinygrad",
                version,
                False,
                f"device {self.device} does not work here: {type(exc).__name__}: {_one_line(exc)[:400]}"
                + (" (the CPU device needs clang: apt-get install clang)" if "clang" in str(exc) else ""),
                details,
            )
            return
        self._info = RuntimeInfo(spec, "tinygrad", version, True, "", details)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        fd, path = tempfile.mkstemp(prefix="opref-tinygrad-", suffix=".onnx")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(model)
            try:
                runner = self._runner(path)
                result = next(iter(runner(inputs).values()))
                out = result.numpy()
                if result.dtype == self._bfloat16 and out.dtype != ml_dtypes.bfloat16:
                    # tinygrad hands bfloat16 to numpy widened to float32 (numpy has no bfloat16);
                    # the widening was exact, so narrowing back gives tinygrad's own values.
                    out = out.astype(ml_dtypes.bfloat16)
            except NotImplementedError as exc:
                return Outcome(Status.UNSUPPORTED, message=f"NotImplementedError: {exc}")
            except Exception as exc:
                return Outcome(Status.ERROR, message=f"{type(exc).__name__}: {_one_line(exc)}")
        finally:
            os.unlink(path)
        return Outcome(Status.OK, np.asarray(out), "", self.device)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""
