"""opref.geometry: each rule, each ambiguity and its readings, and the must-reject list."""

from __future__ import annotations

import numpy as np
import pytest

import opref
from opref import readings as rd
from opref.direct import direct_pads
from opref.geometry import Rule, geometry

X33, W33 = (1, 1, 3, 3), (1, 2, 3, 3)


# --- the four rules, numbers worked by hand from spec notes section 2 --------------------


def test_rule_explicit_pads():
    # F = 3*(3-1) + 0 + 2 + 1 = 9 (axis 0), 2*(3-1) + 3 = 7 (axis 1); O = F - pb - pe.
    geo = geometry(X33, W33, strides=[3, 2], pads=[1, 2, 1, 2])
    assert geo.rule is Rule.PADS
    assert geo.pads == (1, 2, 1, 2)
    assert geo.output_shape == (1, 2, 7, 3)
    assert geo.total_padding == (2, 4)
    assert geo.ambiguities == ()


def test_rule_default_pads_are_zero():
    geo = geometry(X33, W33)
    assert geo.rule is Rule.PADS and geo.pads == (0, 0, 0, 0) and geo.output_shape == (1, 2, 5, 5)


def test_rule_output_shape_ignores_pads():
    # T = F - O* = 9 - 8 = 1 on axis 0 (NOTSET: the odd unit at the beginning), 7 - 7 = 0.
    geo = geometry(X33, W33, strides=[3, 2], output_shape=[8, 7], pads=[5, 5, 5, 5])
    assert geo.rule is Rule.OUTPUT_SHAPE
    assert geo.pads == (1, 0, 0, 0)
    assert geo.output_shape == (1, 2, 8, 7)


def test_rule_output_shape_same_upper_puts_odd_unit_at_end():
    geo = geometry(X33, W33, strides=[3, 2], output_shape=[8, 7], auto_pad="SAME_UPPER")
    assert geo.pads == (0, 0, 1, 0)


@pytest.mark.parametrize(("auto_pad", "pads"), [("SAME_UPPER", (0, 1)), ("SAME_LOWER", (1, 0))])
def test_rule_same(auto_pad, pads):
    # I=3, s=2, k=3: F = 7, target I*s = 6, T = 1.
    geo = geometry((1, 1, 3), (1, 1, 3), strides=[2], auto_pad=auto_pad)
    assert geo.rule is Rule.SAME
    assert geo.pads == pads and geo.output_shape == (1, 1, 6) and geo.total_padding == (1,)


def test_rule_valid():
    geo = geometry((1, 1, 3), (1, 1, 3), strides=[2], auto_pad="VALID", output_padding=[1])
    assert geo.rule is Rule.VALID and geo.pads == (0, 0) and geo.output_shape == (1, 1, 8)


def test_group_and_output_channels():
    geo = geometry((2, 6, 4), (6, 5, 2), group=3)
    assert geo.output_shape == (2, 15, 5)


# --- ambiguities: tags and every reading --------------------------------------------------

ONNX_OUTPUT_SHAPE = {"strides": [3, 2], "output_shape": [10, 8]}  # T = -1 on both axes


@pytest.mark.parametrize(
    ("reading", "pads"),
    [
        ("floor", (0, 0, -1, -1)),  # zero row at the end, as ONNX's own expected output
        ("trunc", (-1, -1, 0, 0)),
        ("clamp", (0, 0, -1, -1)),  # T clamped to 0; the larger output_shape fills the end
    ],
)
def test_negative_total_padding_with_output_shape(reading, pads):
    geo = geometry(X33, W33, **ONNX_OUTPUT_SHAPE, readings={rd.NEGATIVE_TOTAL_PADDING: reading})
    assert geo.ambiguities == (rd.NEGATIVE_TOTAL_PADDING,)
    assert geo.pads == pads and geo.output_shape == (1, 2, 10, 8)


@pytest.mark.parametrize(
    ("reading", "pads", "out"),
    [
        # I=2, s=3, k=2: F = 5, target 6, T = -1; SAME_UPPER gives pb = floor(-1/2) = -1.
        ("floor", (-1, 0), 6),
        ("trunc", (0, -1), 6),
        ("clamp", (0, 0), 5),  # onnxruntime: clamp T at 0, output F instead of I*s
    ],
)
def test_negative_total_padding_with_same_upper(reading, pads, out):
    geo = geometry(
        (1, 1, 2),
        (1, 1, 2),
        strides=[3],
        auto_pad="SAME_UPPER",
        readings={rd.NEGATIVE_TOTAL_PADDING: reading},
    )
    assert geo.ambiguities == (rd.NEGATIVE_TOTAL_PADDING,)
    assert (geo.pads, geo.output_shape[2]) == (pads, out)


def test_output_padding_bound_readings():
    attrs = {"strides": [1], "dilations": [2], "output_padding": [1]}
    geo = geometry((1, 1, 3), (1, 1, 2), **attrs)
    assert geo.ambiguities == (rd.OUTPUT_PADDING_BOUND,)
    assert geo.output_shape == (1, 1, 3 - 1 + 1 + 2 + 1)
    with pytest.raises(opref.SpecError) as err:
        geometry((1, 1, 3), (1, 1, 2), **attrs, readings={rd.OUTPUT_PADDING_BOUND: "stride"})
    assert err.value.attribute == "output_padding[0]" and "stride=1" in str(err.value)


def test_same_with_output_padding_readings():
    # I=3, s=2, k=3, a=1: F = 8. in-total: T = 8 - 6 = 2, O = 6. added: T = 8 - 1 - 6 = 1, O = 7.
    attrs = {"strides": [2], "output_padding": [1], "auto_pad": "SAME_UPPER"}
    geo = geometry((1, 1, 3), (1, 1, 3), **attrs)
    assert geo.ambiguities == (rd.SAME_WITH_OUTPUT_PADDING,)
    assert geo.pads == (1, 1) and geo.output_shape[2] == 6
    geo = geometry((1, 1, 3), (1, 1, 3), **attrs, readings={rd.SAME_WITH_OUTPUT_PADDING: "added"})
    assert geo.pads == (0, 1) and geo.output_shape[2] == 7


def test_same_with_output_padding_not_tagged_with_output_shape():
    geo = geometry(
        (1, 1, 3), (1, 1, 3), strides=[2], output_padding=[1], auto_pad="SAME_UPPER", output_shape=[6]
    )
    assert rd.SAME_WITH_OUTPUT_PADDING not in geo.ambiguities


def test_opset1_split_readings():
    # I=3, s=2, k=3: T = 1 (odd). Opset-11 text: SAME_UPPER -> (0, 1); v1 text: (1, 0).
    base = {"strides": [2], "auto_pad": "SAME_UPPER"}
    assert geometry((1, 1, 3), (1, 1, 3), **base, opset=11).ambiguities == ()
    geo = geometry((1, 1, 3), (1, 1, 3), **base, opset=1)
    assert geo.ambiguities == (rd.OPSET1_SPLIT,) and geo.pads == (0, 1)
    geo = geometry((1, 1, 3), (1, 1, 3), **base, opset=1, readings={rd.OPSET1_SPLIT: "v1-text"})
    assert geo.pads == (1, 0)


def test_even_total_padding_at_opset1_is_not_ambiguous():
    geo = geometry((1, 1, 3), (1, 1, 2), strides=[2], auto_pad="SAME_UPPER", opset=1)
    assert geo.total_padding == (0,) and geo.ambiguities == ()


def test_unknown_reading_is_refused():
    with pytest.raises(opref.SpecError, match="readings"):
        geometry(X33, W33, readings={"no-such-ambiguity": "x"})
    with pytest.raises(opref.SpecError, match="readings"):
        geometry(X33, W33, readings={rd.NEGATIVE_TOTAL_PADDING: "round"})


def test_every_ambiguity_has_its_default_among_its_readings():
    for amb in rd.AMBIGUITIES.values():
        assert amb.default in amb.readings, amb.id
        assert len(amb.readings) >= 2, amb.id


@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("target", [None, [4], [7], [9], [12]])
def test_pads_agree_with_direct_formulas(auto_pad, target):
    attrs = {"auto_pad": auto_pad, "strides": [3], "output_padding": [1], "output_shape": target}
    begins, ends, outs = direct_pads((1, 1, 3), (1, 1, 2), **attrs)
    geo = geometry((1, 1, 3), (1, 1, 2), **attrs)
    assert (geo.pads, geo.output_shape[2:]) == ((begins[0], ends[0]), tuple(outs))


# --- the must-reject list -----------------------------------------------------------------

f32 = np.float32
REJECT = [
    # (id, X shape, W shape, B shape or None, attributes, attribute named)
    ("pads-with-auto-pad", X33, W33, None, {"pads": [0, 0, 0, 0], "auto_pad": "VALID"}, "pads"),
    ("negative-pads", X33, W33, None, {"pads": [0, -1, 0, 0]}, "pads[1]"),
    ("group-divides-c", (1, 3, 3), (3, 1, 3), None, {"group": 2}, "group"),
    ("w-rows-equal-c", (1, 2, 3), (3, 1, 3), None, {}, "W.shape[0]"),
    ("bias-shape", X33, W33, (3,), {}, "B.shape"),
    ("strides-length", X33, W33, None, {"strides": [1]}, "strides"),
    ("dilations-length", X33, W33, None, {"dilations": [1, 1, 1]}, "dilations"),
    ("pads-length", X33, W33, None, {"pads": [0, 0]}, "pads"),
    ("output-padding-length", X33, W33, None, {"output_padding": [0]}, "output_padding"),
    ("kernel-shape-length", X33, W33, None, {"kernel_shape": [3]}, "kernel_shape"),
    ("stride-zero", X33, W33, None, {"strides": [1, 0]}, "strides[1]"),
    ("dilation-zero", X33, W33, None, {"dilations": [0, 1]}, "dilations[0]"),
    ("kernel-zero", (1, 1, 3), (1, 1, 0), None, {}, "W.shape[2]"),
    ("group-zero", X33, W33, None, {"group": 0}, "group"),
    ("kernel-shape-mismatch", X33, W33, None, {"kernel_shape": [3, 2]}, "kernel_shape"),
    (
        "output-padding-too-large",
        X33,
        W33,
        None,
        {"strides": [2, 2], "output_padding": [2, 0]},
        "output_padding[0]",
    ),
    ("output-padding-negative", X33, W33, None, {"output_padding": [0, -1]}, "output_padding[1]"),
    ("output-shape-full-rank", X33, W33, None, {"output_shape": [1, 2, 5, 5]}, "output_shape"),
    ("output-shape-length", X33, W33, None, {"output_shape": [5]}, "output_shape"),
    ("output-shape-zero", X33, W33, None, {"output_shape": [5, 0]}, "output_shape[1]"),
    ("computed-output-nonpositive", X33, W33, None, {"pads": [3, 0, 2, 0]}, "pads"),
    ("x-rank-two", (1, 3), (3, 1), None, {}, "X.shape"),
    ("w-rank", X33, (1, 2, 3), None, {}, "W.shape"),
    ("auto-pad-unknown", X33, W33, None, {"auto_pad": "SAME"}, "auto_pad"),
    ("float-attribute", X33, W33, None, {"strides": [1.5, 1]}, "strides[0]"),
]


@pytest.mark.parametrize(
    ("x", "w", "b", "attrs", "attribute"), [r[1:] for r in REJECT], ids=[r[0] for r in REJECT]
)
def test_must_reject(x, w, b, attrs, attribute):
    with pytest.raises(opref.SpecError) as err:
        geometry(x, w, b_shape=b, **attrs)
    assert err.value.attribute == attribute, str(err.value)
    assert str(err.value).startswith(attribute), str(err.value)
    # The array API refuses the same input; it never returns an output.
    if np.prod(x) <= 2**20 and min(x) >= 0 and min(w) >= 0 and len(x) == len(w) >= 3:
        with pytest.raises(opref.SpecError):
            opref.conv_transpose(
                np.zeros(x, f32), np.zeros(w, f32), None if b is None else np.zeros(b, f32), **attrs
            )


def test_mixed_dtypes_rejected():
    with pytest.raises(opref.SpecError) as err:
        opref.conv_transpose(np.zeros(X33, np.float32), np.zeros(W33, np.float16))
    assert err.value.attribute == "W.dtype"
    with pytest.raises(opref.SpecError) as err:
        opref.conv_transpose(np.zeros(X33, np.float32), np.zeros(W33, np.float32), np.zeros(2, np.float64))
    assert err.value.attribute == "B.dtype"


def test_integer_inputs_rejected():
    with pytest.raises(opref.SpecError) as err:
        opref.conv_transpose(np.zeros(X33, np.int32), np.zeros(W33, np.int32))
    assert err.value.attribute == "X.dtype"


def test_bfloat16_needs_opset_22():
    import ml_dtypes

    x, w = np.zeros(X33, ml_dtypes.bfloat16), np.zeros(W33, ml_dtypes.bfloat16)
    with pytest.raises(opref.SpecError) as err:
        opref.conv_transpose(x, w, opset=11)
    assert err.value.attribute == "opset" and "bfloat16" in str(err.value)
    assert opref.conv_transpose(x, w, opset=22).shape == (1, 2, 5, 5)


def test_error_message_names_value_and_rule():
    with pytest.raises(opref.SpecError) as err:
        geometry((1, 1, 3), (1, 1, 3), strides=[2], dilations=[2], output_padding=[2])
    assert str(err.value) == "output_padding[0]=2 must be less than max(stride, dilation)=2"


# --- the split of T: one function for every reading of negative-total-padding --------------


@pytest.mark.parametrize(
    ("total", "upper", "reading", "expected"),
    [
        # T = 3: every reading halves as section 2 says (SAME_UPPER: pb = T//2 = 1, else 2).
        *((3, True, how, (1, 3)) for how in ("floor", "trunc", "clamp", "reject")),
        *((3, False, how, (2, 3)) for how in ("floor", "trunc", "clamp", "reject")),
        # T = -3: floor halves to -2, trunc to -1; the other side gets T minus that.
        (-3, True, "floor", (-2, -3)),
        (-3, False, "floor", (-1, -3)),
        (-3, True, "trunc", (-1, -3)),
        (-3, False, "trunc", (-2, -3)),
        # clamp splits 0 instead of T, whichever side.
        (-3, True, "clamp", (0, 0)),
        (-3, False, "clamp", (0, 0)),
    ],
)
def test_split_of_total_padding(total, upper, reading, expected):
    from opref.geometry import _split

    assert _split(total, upper, reading, ("auto_pad", "SAME_UPPER"), 0) == expected, (total, upper, reading)


def test_split_rejects_negative_total_under_reject():
    from opref.geometry import _split

    with pytest.raises(opref.SpecError) as err:
        _split(-1, True, "reject", ("output_shape", [10]), 2)
    assert err.value.attribute == "output_shape" and err.value.value == [10]
    assert "axis 2" in err.value.rule


def test_ambiguities_hold_policy_not_claims_about_runtimes():
    # Which reading a runtime follows is measured by the validator; a declared table went
    # unused and was wrong (it said onnx.reference follows floor; measured, it clamps or
    # raises, spec notes section 3).
    import dataclasses

    assert [f.name for f in dataclasses.fields(rd.Ambiguity)] == ["id", "summary", "default", "readings"]


def test_trunc_split_is_exact_for_any_size():
    # T = -(2**60 + 3): trunc halves to -(2**59 + 1); through a float it would be -2**59.
    from opref.geometry import _split

    total = -(2**60 + 3)
    assert _split(total, True, "trunc", ("auto_pad", "SAME_UPPER"), 0) == (-(2**59 + 1), total)


HUGE_EXPLAIN = r"""
import resource, sys
from opref.cli import main

def vm_size():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))

# From here on, nothing may allocate more than 64 MiB in all.
limit = vm_size() + 64 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for argv in sys.argv[1:]:
    assert main(["explain", "--json", *argv.split()]) == 0
"""


def test_huge_geometries_explain_without_allocating_by_their_size():
    # benchdnn's AlexNet deconv1 at batch 256 (X 256x96x55x55, W 96x3x11x11, stride 4: O = 4*54 + 11),
    # a 3-D layer with output (1, 32, 224, 224, 160), and a batch of 2**60 with 2**40 channels.
    import json
    import subprocess
    import sys

    layers = [
        "--x-shape 256,96,55,55 --w-shape 96,3,11,11 --strides 4,4",
        "--x-shape 1,64,112,112,80 --w-shape 64,32,2,2,2 --strides 2,2,2",
        f"--x-shape {2**60},{2**40},1000,1000 --w-shape {2**40},{2**40},3,3 --pads 1,1,1,1",
    ]
    argv = [sys.executable, "-c", HUGE_EXPLAIN, *layers]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    shapes = [json.loads(doc)["output_shape"] for doc in out.stdout.replace("}\n{", "}\x00{").split("\x00")]
    assert shapes == [[256, 3, 227, 227], [1, 32, 224, 224, 160], [2**60, 2**40, 1000, 1000]], shapes
