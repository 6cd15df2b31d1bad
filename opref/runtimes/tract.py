"""Sonos tract (the ``tract`` Python package, Rust underneath): ``tract``.

tract's Python bindings load ONNX from a path only, so each model goes through a temporary file.
A Rust panic inside tract (e.g. "not yet implemented: Unsupported padding ... SameUpper") aborts
the worker process (SIGABRT, *measured* on 0.23.9): that is the worker's crash, recorded by the
validator, not something this adapter can catch. tract has no bfloat16 datum type: those cases
are ``unsupported``.

The model runs as an application gets it: ``load`` -> ``into_model`` -> ``into_runnable``.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status

# What tract says when it has no implementation for a datum type or an operator form.
_UNSUPPORTED_MARKERS = ("unsupported datum type", "bfloat16", "bf16", "not yet implemented", "unimplemented")


class TractAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        try:
            import tract
        except Exception as exc:
            self._info = RuntimeInfo(
                spec, "tract", "", False, f"cannot import tract ({exc}); build it: scripts/make-envs tract"
            )
            return
        self._tract = tract
        self._onnx = tract.onnx()
        self._info = RuntimeInfo(
            spec,
            "tract",
            str(tract.version()),
            True,
            "",
            {"device": "CPU", "bindings": "tract (Python, ctypes over libtract)"},
        )

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        if any(a.dtype.name == "bfloat16" for a in inputs.values()):
            return Outcome(Status.UNSUPPORTED, message="tract has no bfloat16 datum type")
        fd, path = tempfile.mkstemp(prefix="opref-tract-", suffix=".onnx")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(model)
            try:
                inference = self._onnx.load(path)
                names = [inference.input_name(i) for i in range(inference.input_count())]
                runnable = inference.into_model().into_runnable()
            except Exception as exc:
                return _classify("load", exc)
            try:
                out = runnable.run([inputs[n] for n in names])[0].to_numpy()
            except Exception as exc:
                return _classify("run", exc)
        finally:
            os.unlink(path)
        return Outcome(Status.OK, np.asarray(out), "", "CPU")


def _classify(stage: str, exc: Exception) -> Outcome:
    # tract appends a Rust stack backtrace to its errors; the reason is what comes before it.
    text = " ".join(str(exc).split("Stack backtrace:")[0].split())
    low = text.lower()
    status = Status.UNSUPPORTED if any(m in low for m in _UNSUPPORTED_MARKERS) else Status.ERROR
    return Outcome(status, message=f"tract {stage}: {type(exc).__name__}: {text}")
