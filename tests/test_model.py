"""opref.model: one node's attributes, written and read back."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest
from onnx import helper

from opref import cases as cs
from opref import codec as cx
from opref import suite as sx
from opref import vectors as vx
from opref.model import make_model, make_node, node_attributes
from opref.validate import validate


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


# --- issue 22, guarantee 6: a model opref did not write is that case's refusal ----------------------

HOSTILE_CASES = [
    "seed_basic",
    "group3_depthwise_float32_exact",
    "autopad_same_upper_rank1_odd_float32_exact",
]


@pytest.fixture(scope="module")
def hostile_suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("g6") / "v"
    vx.generate(out, cs.catalog(only=HOSTILE_CASES), {})
    return out


def _attribute(model: onnx.ModelProto, name: str) -> onnx.AttributeProto:
    return next(a for a in model.graph.node[0].attribute if a.name == name)


def _not_utf8(model: onnx.ModelProto, setter) -> bytes:
    """The model with one string field holding invalid UTF-8 (same length, so the protobuf's
    length prefixes stay right)."""
    setter(model, "QQQQQQ")
    data = model.SerializeToString()
    assert data.count(b"QQQQQQ") == 1
    return data.replace(b"QQQQQQ", b"\xff\xfeQ\xed\xa0\x80")  # a stray byte and an encoded surrogate


def _edit(change):
    def edited(model: onnx.ModelProto) -> bytes:
        change(model)
        return model.SerializeToString()

    return edited


def _sequence_output(m: onnx.ModelProto) -> None:
    m.graph.output[0].type.CopyFrom(helper.make_sequence_type_proto(helper.make_tensor_type_proto(1, None)))


GROUP = "group3_depthwise_float32_exact"
AUTOPAD = "autopad_same_upper_rank1_odd_float32_exact"


@pytest.mark.parametrize(
    ("case", "attack", "words"),
    [
        (
            GROUP,
            _edit(lambda m: m.graph.node[0].attribute.append(_attribute(m, "strides"))),
            "more than once",
        ),
        (GROUP, _edit(lambda m: _attribute(m, "group").floats.append(1.0)), "also sets ['floats']"),
        (GROUP, _edit(lambda m: setattr(_attribute(m, "group"), "s", b"3")), "also sets ['s']"),
        (GROUP, _edit(lambda m: _attribute(m, "strides").t.CopyFrom(onnx.TensorProto())), "also sets ['t']"),
        (GROUP, _edit(lambda m: setattr(_attribute(m, "group"), "ref_attr_name", "g")), "ref_attr_name"),
        (GROUP, _edit(lambda m: setattr(_attribute(m, "strides"), "f", 0.0)), "also sets ['f']"),
        (AUTOPAD, _edit(lambda m: _attribute(m, "auto_pad").ints.append(1)), "also sets ['ints']"),
        (
            "seed_basic",
            _edit(lambda m: setattr(m.graph.output[0].type.tensor_type, "elem_type", 11)),
            "output is declared as a tensor of element type 11",
        ),
        ("seed_basic", _edit(_sequence_output), "output is declared as a sequence_type"),
        ("seed_basic", _edit(lambda m: setattr(m.opset_import[0], "domain", "ai.onnx")), 'spells ""'),
        ("seed_basic", _edit(lambda m: setattr(m.graph.node[0], "domain", "ai.onnx")), "not ConvTranspose"),
        ("seed_basic", _edit(lambda m: setattr(m, "ir_version", 99)), "has ir_version 99; opref writes 10"),
        ("seed_basic", _edit(lambda m: setattr(m, "ir_version", 3)), "has ir_version 3"),
        ("seed_basic", lambda m: _not_utf8(m, lambda m, s: setattr(m.graph, "doc_string", s)), "doc_string"),
        ("seed_basic", lambda m: _not_utf8(m, lambda m, s: setattr(m, "producer_name", s)), "producer_name"),
        (
            "seed_basic",
            lambda m: _not_utf8(m, lambda m, s: setattr(m.graph.node[0], "name", s)),
            "node[0].name",
        ),
        (
            "seed_basic",
            lambda m: _not_utf8(m, lambda m, s: m.metadata_props.add(key="k", value=s)),
            "metadata_props[0].value",
        ),
        (
            AUTOPAD,
            lambda m: _not_utf8(m, lambda m, s: setattr(_attribute(m, "auto_pad"), "s", s.encode())),
            "UTF-8",
        ),
    ],
)
def test_a_model_opref_never_writes_is_refused_as_that_case_s_problem(
    hostile_suite, tmp_path, case, attack, words
):
    suite = tmp_path / "v"
    shutil.copytree(hostile_suite, suite)
    path = suite / "node" / case / "model.onnx"
    data = attack(onnx.load_from_string(path.read_bytes()))
    path.write_bytes(data)
    manifest = json.loads((suite / "manifest.json").read_text())
    next(r for r in manifest["cases"] if r["name"] == case)["files"]["model.onnx"] = cx.sha256(data)
    (suite / "manifest.json").write_text(json.dumps(manifest))

    res = validate(suite, ["py:fake_runtimes:make"], timeout=60)  # no SuiteError: a case problem
    verdicts = {r["case"]: r["verdict"] for r in res.records}
    assert words in res.case_problems.get(case, ""), res.case_problems
    assert case not in verdicts, "the runtime must never see it"
    assert verdicts == {c: "pass" for c in HOSTILE_CASES if c != case}
    assert res.exit_code == 1


def test_the_suite_opref_writes_passes_the_stricter_checks(hostile_suite):
    checked = sx.verify(hostile_suite)
    assert not checked.case_problems and sorted(checked.records) == sorted(HOSTILE_CASES)
