"""One ConvTranspose node as an ONNX model, with every field set explicitly.

Nothing here depends on the installed onnx version's defaults: the IR version is the one
that introduced the opset (spec notes section 4: a newer stamp is refused by older
runtimes), the producer is opref, attributes are written in name order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx
from onnx import helper

from opref.dtypes import dtype_of
from opref.geometry import geometry
from opref.version import __version__

# The IR version of the onnx release that first shipped each ConvTranspose opset.
# Opsets in between take the IR version of the nearest lower entry.
IR_VERSION_FOR_OPSET: Mapping[int, int] = {
    1: 3,
    9: 4,
    10: 5,
    11: 6,
    12: 7,
    15: 8,
    19: 9,
    21: 10,
    23: 11,
    24: 12,
    25: 13,
    28: 14,
}

PRODUCER = "opref"

ATTRIBUTE_NAMES = (
    "auto_pad",
    "dilations",
    "group",
    "kernel_shape",
    "output_padding",
    "output_shape",
    "pads",
    "strides",
)


def ir_version_for(opset: int) -> int:
    """The IR version to stamp on a model of ``opset`` (the lowest that supports it)."""
    known = [o for o in IR_VERSION_FOR_OPSET if o <= opset]
    if not known:
        raise ValueError(f"opset {opset} is below 1")
    return IR_VERSION_FOR_OPSET[max(known)]


def make_node(name: str, has_bias: bool, attrs: Mapping[str, object]) -> onnx.NodeProto:
    """The ConvTranspose node; ``attrs`` holds ONNX attribute names, None meaning absent."""
    node = onnx.NodeProto()
    node.op_type = "ConvTranspose"
    node.name = name
    node.input.extend(["X", "W", "B"] if has_bias else ["X", "W"])
    node.output.append("Y")
    for key in sorted(attrs):
        if key not in ATTRIBUTE_NAMES:
            raise ValueError(f"unknown ConvTranspose attribute {key!r}")
        if attrs[key] is not None:
            node.attribute.append(helper.make_attribute(key, attrs[key]))
    return node


def node_attributes(node: onnx.NodeProto) -> dict[str, object]:
    """The attributes of ``node`` as ``{ONNX name: value}``, strings decoded from bytes.

    The inverse of :func:`make_node` for the attribute types ConvTranspose has (ints, lists
    of ints, a string), so the result can be passed to ``opref.geometry``/``conv_transpose``.
    """

    def plain(value: object) -> object:
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return {a.name: plain(helper.get_attribute_value(a)) for a in node.attribute}


def make_model(
    name: str,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    b_shape: Sequence[int] | None,
    attrs: Mapping[str, object],
    dtype: str,
    opset: int,
    y_shape: Sequence[int | None] | None = None,
    w_dtype: str | None = None,
) -> onnx.ModelProto:
    """A one-node model with concrete input shapes.

    ``y_shape`` is the output's declared shape; omitted, it is computed by opref's geometry
    (so an invalid configuration must pass it, with None for unknown dimensions).
    ``w_dtype`` gives W (and B) another type than X: only for must-reject cases.
    """
    elem = dtype_of(dtype).onnx_type
    if y_shape is None:
        present = {k: v for k, v in attrs.items() if v is not None}
        y_shape = geometry(x_shape, w_shape, opset=opset, **present).output_shape
    inputs = [
        helper.make_tensor_value_info("X", elem, list(x_shape)),
        helper.make_tensor_value_info("W", elem, list(w_shape)),
    ]
    if b_shape is not None:
        inputs.append(helper.make_tensor_value_info("B", elem, list(b_shape)))
    output = helper.make_tensor_value_info("Y", elem, list(y_shape))
    graph = helper.make_graph([make_node(name, b_shape is not None, attrs)], name, inputs, [output])
    model = onnx.ModelProto()
    model.ir_version = ir_version_for(opset)
    model.producer_name = PRODUCER
    model.producer_version = __version__
    model.graph.CopyFrom(graph)
    op = model.opset_import.add()
    op.domain = ""
    op.version = opset
    return model
