"""Run in .venvs/mnn by tests/test_ecosystem.py: one MNN conversion through opref's adapter (or,
with --unguarded, a bare import of MNN's telemetry module), every process start audited."""

import json
import sys

events = []


def audit(event, args):
    if event in ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork"):
        events.append([event, repr(args)[:300]])


sys.addaudithook(audit)
if "--unguarded" in sys.argv:
    try:
        import MNN.tools.utils.log  # noqa: F401
    except Exception as exc:
        events.append(["import", f"{type(exc).__name__}: {exc}"[:300]])
else:
    import numpy as np
    from onnx import TensorProto, helper

    from opref.runtimes.mnn import MnnAdapter

    adapter = MnnAdapter("mnn", {})
    node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"])
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 2, 2]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, [1, 1, 2, 2]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 3, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    x = np.array([[[[1, 2], [3, 4]]]], np.float32)
    outcome = adapter.run(model.SerializeToString(), {"X": x, "W": np.ones((1, 1, 2, 2), np.float32)})
    # the wrapper module a user would import: its telemetry import must fail quietly
    import MNN.tools.mnnconvert as wrapper

    events.append(
        [
            "result",
            outcome.status.value,
            outcome.output.tolist() if outcome.output is not None else None,
            wrapper.mnn_logger is None,
        ]
    )
print("OPREF-PROBE " + json.dumps(events))
