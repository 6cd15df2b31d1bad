"""A validation worker: a fresh interpreter that builds one adapter, then runs cases on request.

Started as ``<python> -m opref.worker SPEC SUITE IN_FD OUT_FD`` (a new process image, like
``spawn``: nothing of the parent's onnxruntime or BLAS threads is inherited). The interpreter
may be another environment's: the parent never imports a runtime. Messages are pickled tuples
of plain values only (arrays travel as dtype name, shape and bytes), so the two sides may run
different numpy versions.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import onnx

from opref.runtimes import Outcome, Status, create, split_interpreter
from opref.vectors import DATA_SET, read_tensor


def load_inputs(case_dir: Path, model: bytes) -> dict[str, np.ndarray]:
    """input_i.pb bound to the model's i-th graph input, as ONNX's backend runners do."""
    graph_inputs = [i.name for i in onnx.load_from_string(model).graph.input]
    inputs = {}
    for i, name in enumerate(graph_inputs):
        path = case_dir / DATA_SET / f"input_{i}.pb"
        if path.exists():
            inputs[name] = read_tensor(path.read_bytes())
    return inputs


def run_case(adapter, case_dir: Path) -> Outcome:
    model = (case_dir / "model.onnx").read_bytes()
    try:
        inputs = load_inputs(case_dir, model)
    except Exception as exc:
        return Outcome(Status.ERROR, message=f"opref could not read the case's inputs: {exc}")
    try:
        return adapter.run(model, inputs)
    except Exception as exc:  # an adapter bug must not take the worker down
        return Outcome(Status.ERROR, message=f"adapter raised {type(exc).__name__}: {exc}")


def encode_array(a: np.ndarray | None) -> tuple[str, tuple[int, ...], bytes] | None:
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    return str(a.dtype), tuple(int(d) for d in a.shape), a.tobytes()


def decode_array(payload) -> np.ndarray | None:
    if payload is None:
        return None
    from opref.dtypes import DTYPES

    name, shape, data = payload
    dtype = DTYPES[name].numpy if name in DTYPES else np.dtype(name)
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def serve(inbox: Connection, outbox: Connection, spec: str, suite: str) -> None:
    """Send the runtime's info, then answer (case, dtype) requests until None."""
    try:
        adapter = create(split_interpreter(spec)[0])
        info = adapter.info()
    except Exception as exc:
        outbox.send(
            (
                "info",
                {
                    "spec": spec,
                    "name": spec,
                    "version": "",
                    "available": False,
                    "reason": f"adapter failed to start: {exc!r}",
                    "details": {"traceback": traceback.format_exc()},
                },
            )
        )
        return
    outbox.send(
        (
            "info",
            {
                "spec": spec,
                "name": info.name,
                "version": info.version,
                "available": info.available,
                "reason": info.reason,
                "details": dict(info.details),
            },
        )
    )
    if not info.available:
        return
    root = Path(suite) / "node"
    while True:
        request = inbox.recv()
        if request is None:
            return
        name, dtype = request
        oc = run_case(adapter, root / name)
        outbox.send(
            (
                "outcome",
                name,
                str(oc.status),
                encode_array(oc.output),
                oc.message,
                oc.placement,
                adapter.unit_roundoff(dtype),
            )
        )


def main(argv: list[str] | None = None) -> int:
    spec, suite, in_fd, out_fd = (argv if argv is not None else sys.argv[1:])[:4]
    inbox = Connection(int(in_fd), writable=False)
    outbox = Connection(int(out_fd), readable=False)
    with contextlib.suppress(EOFError, BrokenPipeError):  # the parent went away
        serve(inbox, outbox, spec, suite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
