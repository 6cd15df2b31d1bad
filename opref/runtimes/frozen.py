"""What the deployment runtimes share: a model whose weights are constants, written to disk.

OpenCV, ncnn (through pnnx), MNN, onnx2tf and onnx2torch are built for trained networks: the
weights of a ConvTranspose are constants that the converter or loader folds, repacks and stores
in its own format. A model whose W and B are graph inputs is not what they are given in use
(pnnx and onnx2tf want every input's shape fixed up front; MNN and OpenCV prepack the kernel at
load time). So their adapters first turn every graph input but X into an initializer holding the
value the case feeds it, then hand the runtime that model and X alone. The expected output does
not change: the case's W and B are the same numbers either way (the suite's ``constant-weights``
variant is this same model, written by opref).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def freeze_weights(model: bytes, inputs: dict[str, np.ndarray]) -> tuple[onnx.ModelProto, str, np.ndarray]:
    """``model`` with every graph input after the first made a constant of its value in
    ``inputs``; returns the model, the first input's name and its array."""
    proto = onnx.load_from_string(model)
    graph = proto.graph
    constant = {t.name for t in graph.initializer}
    feeds = [i for i in graph.input if i.name not in constant]
    first, rest = feeds[0], feeds[1:]
    for value in rest:
        graph.initializer.append(numpy_helper.from_array(np.asarray(inputs[value.name]), value.name))
    if proto.ir_version >= 4:  # IR 3 (opset 1) requires every initializer to stay a graph input
        keep = [i for i in graph.input if i.name not in {v.name for v in rest}]
        del graph.input[:]
        graph.input.extend(keep)
    return proto, first.name, np.asarray(inputs[first.name])


def output_dims(proto: onnx.ModelProto) -> int | None:
    """The rank the model declares for its output, or None when it declares none."""
    out = proto.graph.output[0].type.tensor_type
    return len(out.shape.dim) if out.HasField("shape") else None


def version_of(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""
