"""Deliberately wrong runtimes for the validator's own tests (``py:fake_runtimes:make``).

Each computes opref's reference from the model it is given, then breaks it as its ``mode``
option says, on the cases whose node name matches the ``only`` glob (default: all).
"""

from __future__ import annotations

import fnmatch
import os
import time

import numpy as np
import onnx

import opref
from opref.model import node_attributes
from opref.runtimes import Outcome, RuntimeInfo, Status
from opref.vectors import read_tensor


class FakeRuntime:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        self.mode = options.get("mode", "good")
        self.only = options.get("only", "*")
        self.readings = {k[len("reading.") :]: v for k, v in options.items() if k.startswith("reading.")}

    def info(self) -> RuntimeInfo:
        if self.mode == "unavailable":
            return RuntimeInfo(self.spec, "fake", "0", False, "libfake.so: cannot open shared object file")
        return RuntimeInfo(self.spec, "fake", "0", True)

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model_bytes: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        model = onnx.load_from_string(model_bytes)
        node = model.graph.node[0]
        attrs = node_attributes(node)
        constants = {t.name: read_tensor(t.SerializeToString()) for t in model.graph.initializer}
        args = [inputs[i] if i in inputs else constants[i] for i in node.input]
        active = fnmatch.fnmatchcase(node.name, self.only)
        if active and self.mode == "crash":
            os.abort()
        if active and self.mode == "hang":
            time.sleep(3600)
        try:
            y = opref.conv_transpose(
                *args, **attrs, opset=model.opset_import[0].version, readings=self.readings
            )
        except opref.SpecError as exc:
            if active and self.mode == "accept-all":
                return Outcome(Status.OK, np.zeros((1,), dtype=np.float32), "", "fake")
            return Outcome(Status.ERROR, message=str(exc))
        if not active:
            return Outcome(Status.OK, y, "", "fake")
        if self.mode == "shift-pad":
            # As if pad_begin on the last axis were one larger: everything moves by one.
            y = np.roll(y, -1, axis=-1)
            y[..., -1] = 0
        elif self.mode == "wrong-dtype":
            y = y.astype(np.float64)
        elif self.mode == "wrong-shape":
            y = y[..., :-1]
        elif self.mode == "one-ulp":
            y = np.nextafter(y, np.inf)
        elif self.mode == "drop-bias":
            if len(args) > 2:
                y = opref.conv_transpose(*args[:2], **attrs, opset=model.opset_import[0].version)
        elif self.mode == "error":
            return Outcome(Status.ERROR, message="RuntimeError: kernel failed")
        elif self.mode == "unsupported":
            return Outcome(Status.UNSUPPORTED, message="NOT_IMPLEMENTED: no kernel")
        elif self.mode == "fallback":
            return Outcome(Status.FALLBACK, message="assigned to the default CPU EP")
        return Outcome(Status.OK, y, "", "fake")


def make(spec: str, options: dict[str, str]) -> FakeRuntime:
    return FakeRuntime(spec, options)
