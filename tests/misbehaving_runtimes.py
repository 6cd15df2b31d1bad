"""Runtimes that misbehave as a process, not as arithmetic (``py:misbehaving_runtimes:make``).

``mode`` says how; the validator must turn each into a per-case verdict (or an unavailable
runtime) within its deadlines, and leave no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import time
from pathlib import Path

import numpy as np
import onnx  # here, not in run(): a first case must not pay for the import

import opref
from opref.model import node_attributes
from opref.runtimes import Outcome, RuntimeInfo, Status


def _answer_fd() -> int:
    return int(sys.argv[-1])  # python -m opref.worker SPEC IN_FD OUT_FD


class Misbehaving:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec, self.mode, self.options = spec, options.get("mode", ""), options
        self.case = options.get("only", "")
        if self.mode == "hang-factory":
            time.sleep(3600)
        if self.mode == "restart-fails" and Path(options["marker"]).exists():
            raise RuntimeError("the accelerator is gone")

    def info(self) -> RuntimeInfo:
        if self.mode == "hang-info":
            time.sleep(3600)
        details = {"version": np.float32(1.5), "handle": object()} if self.mode == "odd-details" else {}
        return RuntimeInfo(self.spec, "misbehaving", "0", True, "", details)

    def unit_roundoff(self, dtype: str) -> float | None:
        return 0.25 if self.mode == "loose-roundoff" else None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        parsed = onnx.load_from_string(model)
        node = parsed.graph.node[0]
        if self.case and node.name != self.case:
            y = opref.conv_transpose(
                *(inputs[n] for n in node.input),
                **node_attributes(node),
                opset=parsed.opset_import[0].version,
            )
            return Outcome(Status.OK, y, "", "cpu")
        mode = self.mode
        if mode == "half-message":
            os.write(_answer_fd(), struct.pack("<Q", 1000) + b'{"kind": "re')
            time.sleep(3600)
        if mode == "garbage":
            os.write(_answer_fd(), struct.pack("<Q", 5) + b"\xff\xfe{[(")
            time.sleep(3600)
        if mode in _RAW_REPLIES:  # a frame the worker's own checks would never let through
            header = _RAW_REPLIES[mode](node.name)
            frame = header if isinstance(header, bytes) else json.dumps(header).encode()
            os.write(_answer_fd(), struct.pack("<Q", len(frame)) + frame + struct.pack("<Q", 0))
            time.sleep(3600)
        if mode == "loose-roundoff":  # off by 2**-10 relative: wrong for float32, and it says u = 0.25
            y = opref.conv_transpose(
                *(inputs[n] for n in node.input),
                **node_attributes(node),
                opset=parsed.opset_import[0].version,
            )
            return Outcome(Status.OK, (y * (1 + 2.0**-10)).astype(y.dtype), "", "cpu")
        if mode == "daemon":  # a helper that double-forks and leaves the session, then `then`
            if "pidfile" in self.options:
                _daemonize(Path(self.options["pidfile"]))
            then = self.options.get("then", "answer")
            if then == "hang":
                time.sleep(3600)
            if then == "abort":
                os.abort()
            if then == "signal-parent":  # then answers right: the signal must cost nothing more
                os.kill(os.getppid(), getattr(signal, self.options.get("signal", "SIGINT")))
            if then == "signal-group":  # its own process group: itself included
                os.killpg(0, signal.SIGTERM)
            return Outcome(
                Status.OK,
                opref.conv_transpose(
                    *(inputs[n] for n in node.input),
                    **node_attributes(node),
                    opset=parsed.opset_import[0].version,
                ),
                "",
                "cpu",
            )
        if mode == "fork-abort":
            if os.fork() == 0:  # the child keeps the answer pipe open, and would outlive the run
                Path(self.options["pidfile"]).write_text(str(os.getpid()))
                time.sleep(3600)
                os._exit(0)
            time.sleep(0.3)
            os.abort()
        if mode == "restart-fails":
            Path(self.options["marker"]).write_text("x")
            os.abort()
        if mode == "object-array":
            return Outcome(Status.OK, np.array([object()], dtype=object))
        if mode == "not-an-array":
            return Outcome(Status.OK, lambda: None)
        if mode == "unknown-status":
            return Outcome("bogus", np.zeros(1, np.float32))
        if mode == "ok-without-output":
            return Outcome(Status.OK, None)
        if mode == "not-an-outcome":
            return {"status": "ok"}
        if mode == "huge-output":
            return Outcome(Status.OK, np.zeros(2**24, np.float32))
        raise ValueError(f"unknown mode {mode!r}")


def _daemonize(pidfile: Path) -> None:
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:
            pidfile.write_text(str(os.getpid()))
            time.sleep(3600)
        os._exit(0)
    os.waitpid(child, 0)
    for _ in range(6000):
        if pidfile.exists() and pidfile.read_text():
            return
        time.sleep(0.01)


def _reply(case: str, shape: list[int]) -> dict:
    output = {"dtype": "float32", "shape": shape}
    return {
        "kind": "reply",
        "case": case,
        "status": "ok",
        "message": "",
        "placement": "",
        "unit_roundoff": None,
        "output": output,
    }


_RAW_REPLIES = {
    "deep-header": lambda case: (
        b'{"kind": "reply", "case": '
        + json.dumps(case).encode()
        + b', "x": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}"
    ),
    "zero-dims-65": lambda case: _reply(case, [0] * 65),
    "zero-huge-dims": lambda case: _reply(case, [0, 2**61, 2**61]),
}


def make(spec: str, options: dict[str, str]) -> Misbehaving:
    return Misbehaving(spec, options)
