"""A runtime whose worker sends frames no honest worker sends (``py:hostile_frames:make``).

``mode`` picks the frame; ``only`` names the case it is sent for (the others are answered by
opref's reference), so a test can check that the run goes on past it.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time

import numpy as np

import opref
from opref.model import node_attributes
from opref.runtimes import Outcome, RuntimeInfo, Status


def _frame(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + data


def _reply(case: str, output: dict) -> bytes:
    header = {"kind": "reply", "case": case, "status": "ok", "message": "", "placement": "cpu"}
    return _frame(json.dumps({**header, "unit_roundoff": None, "output": output}).encode())


# Text as a native runtime prints it: colours, a cursor move, a title escape, a bell, a lone
# surrogate, a C1 control and a bidirectional override.
NASTY = "\x1b[1;31merror\x1b[0m: bad\x1b[2K\x1b]0;title\x07 \ud800 \x85 \u202eevil\x00 line\r\nnext\tcol"


class HostileFrames:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec, self.mode, self.case = spec, options.get("mode", ""), options.get("only", "")

    def info(self) -> RuntimeInfo:
        details: object = {}
        if self.mode == "deep-details":
            for _ in range(40):
                details = {"d": details}
        if self.mode == "nasty-info":
            return RuntimeInfo(self.spec, NASTY, NASTY, True, "", {NASTY: NASTY})
        return RuntimeInfo(self.spec, "hostile-frames", "0", True, "", details)

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        import onnx

        parsed = onnx.load_from_string(model)
        node = parsed.graph.node[0]
        if node.name != self.case:
            y = opref.conv_transpose(
                *(inputs[n] for n in node.input),
                **node_attributes(node),
                opset=parsed.opset_import[0].version,
            )
            return Outcome(Status.OK, y, "", "cpu")
        out = int(sys.argv[-1])  # python -m opref.worker SPEC IN_FD OUT_FD
        if self.mode == "deep-header":
            os.write(out, _frame(b"[" * 5000 + b"]" * 5000))
        elif self.mode == "deep-object":
            os.write(out, _frame(b'{"a":' * 5000 + b"1" + b"}" * 5000))
        elif self.mode == "zero-dims-65":
            os.write(out, _reply(node.name, {"dtype": "float32", "shape": [0] * 65}) + _frame(b""))
        elif self.mode == "zero-batch-huge":
            shape = [0, 2**61, 2**61]
            os.write(out, _reply(node.name, {"dtype": "float32", "shape": shape}) + _frame(b""))
        elif self.mode == "nan-constant":
            os.write(out, _frame(b'{"kind": "reply", "unit_roundoff": NaN}'))
        elif self.mode == "nasty-message":
            return Outcome(Status.ERROR, None, NASTY * 10_000, NASTY)
        else:
            raise ValueError(f"unknown mode {self.mode!r}")
        time.sleep(3600)  # the parent must stop this worker, not wait for it
        raise AssertionError("unreachable")


def make(spec: str, options: dict[str, str]) -> HostileFrames:
    return HostileFrames(spec, options)
