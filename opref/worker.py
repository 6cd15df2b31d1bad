"""The code a validation worker process runs: build one adapter, then run cases on request.

Kept small and free of the validator's imports: it is what a ``spawn``-started process
(possibly under another interpreter) imports first.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
import onnx

from opref.runtimes import Outcome, RuntimeInfo, Status, create
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


def serve(conn, spec: str, suite: str) -> None:
    """Worker main loop: send RuntimeInfo, then answer (case, dtype) requests until None."""
    try:
        adapter = create(spec)
        info = adapter.info()
    except Exception as exc:
        conn.send(
            (
                "info",
                RuntimeInfo(
                    spec,
                    spec,
                    "",
                    False,
                    f"adapter failed to start: {exc!r}",
                    {"traceback": traceback.format_exc()},
                ),
            )
        )
        return
    conn.send(("info", info))
    if not info.available:
        return
    root = Path(suite) / "node"
    while True:
        request = conn.recv()
        if request is None:
            return
        name, dtype = request
        outcome = run_case(adapter, root / name)
        conn.send(("outcome", name, outcome, adapter.unit_roundoff(dtype)))
