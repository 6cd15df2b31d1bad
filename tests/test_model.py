"""opref.model: one node's attributes, written and read back."""

from __future__ import annotations

import onnx
from onnx import helper

from opref.model import make_model, make_node, node_attributes


def test_node_attributes_reads_back_what_make_node_wrote():
    attrs = {"auto_pad": "SAME_UPPER", "group": 2, "strides": [3, 2], "dilations": [1, 2], "pads": None}
    node = make_node("n", False, attrs)
    got = node_attributes(node)
    # auto_pad is stored as bytes in the proto; it comes back a str, and absent ones stay absent.
    assert got == {"auto_pad": "SAME_UPPER", "group": 2, "strides": [3, 2], "dilations": [1, 2]}, got
    assert isinstance(got["auto_pad"], str)


def test_node_attributes_of_a_node_built_by_onnx():
    node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], auto_pad="VALID", output_shape=[10, 8])
    assert node_attributes(node) == {"auto_pad": "VALID", "output_shape": [10, 8]}


def test_node_attributes_through_a_serialised_model():
    model = make_model(
        "m", (1, 1, 3), (1, 2, 3), None, {"strides": [2], "output_padding": [1]}, "float32", 22
    )
    node = onnx.load_from_string(model.SerializeToString()).graph.node[0]
    assert node_attributes(node) == {"output_padding": [1], "strides": [2]}
