"""The forms with nodes around ConvTranspose (issue 24): pad-fused, bn-folded, qdq; their judging,
their bug models, quantize_static in the loop, and platform-dependent known failures.

Expected values come from opref's direct loop (written apart from the reference), from the
formulas of BatchNormalization and QuantizeLinear computed here with Python's own arithmetic
(``round`` is half to even), and from the ONNX operator definitions, never from opref.formvalues.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from opref import cases as cs
from opref import codec as cx
from opref import suite as sx
from opref import vectors as vx
from opref.direct import direct_conv_transpose
from opref.formdiagnose import diagnose_form
from opref.forms import QUANT_TYPES, QdqForm
from opref.formvalues import compare_quantized
from opref.geometry import geometry
from opref.validate import validate

FORMS = ["pad-fused", "bn-folded", "qdq"]
PICKS = [
    "rank1_s2_pads_asym_float32_exact",  # stride 2, pads [2, 0]: Pad within the node's pads
    "rank3_d2_pads_asym_float32_exact",  # stride 1, within
    "rank2_s2_p1_bias_float32_exact",  # stride 2, bias, Pad larger than the pads
    "group2_c4_m6_float32_exact",  # grouped, M/group > 1, bias
    "group3_depthwise_float32_exact",
    "rank2_basic_float16_exact",  # bn-folded in float16 (no pad-fused: no pads; no qdq: not float32)
    "rank2_basic_float32_exact_opset11",  # BatchNormalization-9
    "onnx_convtranspose",  # given data
]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("forms") / "v"
    cases = cs.catalog("full", only=[p + "__*" for p in PICKS], variants=FORMS)
    vx.generate(out, cases, {"variants": FORMS})
    return out


def _records(suite):
    return sx.read_manifest(suite).records


def _files(suite, name):
    rec = _records(suite)[name]
    return sx.read_case(suite, rec), rec


def test_the_forms_are_case_directories_named_after_their_base_case(suite):
    names = set(_records(suite))
    assert "rank1_s2_pads_asym_float32_exact__pad-fused" in names
    assert "rank2_basic_float16_exact__bn-folded" in names
    assert "group2_c4_m6_float32_exact__qdq" in names
    # Pad folds into explicit pads only; qdq is float32 between (de)quantization.
    assert "rank2_basic_float16_exact__qdq" not in names
    assert "onnx_convtranspose_autopad_same__pad-fused" not in names
    for name in names:
        onnx.checker.check_model(onnx.load(str(suite / "node" / name / "model.onnx")), full_check=True)


def test_pad_fused_expected_output_is_the_direct_loop_on_the_zero_padded_x(suite):
    for name, rec in _records(suite).items():
        if rec.variant != "pad-fused":
            continue
        case, _ = _files(suite, name)
        x_file = case.inputs[0][1]
        r = x_file.ndim
        amounts = rec.form.pads
        X = np.pad(x_file.astype(np.float64), [(amounts[i], amounts[i + r]) for i in range(r)])
        W, *B = (a.astype(np.float64) for a in case.operands[1:])
        want = direct_conv_transpose(X, W, B[0] if B else None, **rec.attributes)
        np.testing.assert_array_equal(case.expected.astype(np.float64), want, err_msg=name)
        model = onnx.load_from_string(case.model)
        assert [n.op_type for n in model.graph.node] == ["Pad", "ConvTranspose"], name
        node_pads = list(rec.attributes.get("pads") or [0] * (2 * (r - 2)))
        spatial = [amounts[2 + i] for i in range(r - 2)] + [amounts[r + 2 + i] for i in range(r - 2)]
        assert rec.form.within_node_pads == all(a <= p for a, p in zip(spatial, node_pads, strict=True))


def test_a_zero_pad_folds_as_pads_minus_amount_times_stride_not_minus_amount():
    # The fact the pad-fold-ignores-stride model rests on, from the direct loop alone.
    rng = np.random.RandomState(3)
    X, W = rng.randint(-3, 4, (1, 1, 4)).astype(float), rng.randint(-3, 4, (1, 1, 3)).astype(float)
    padded = np.pad(X, [(0, 0), (0, 0), (1, 0)])
    for s in (1, 2, 3):
        want = direct_conv_transpose(padded, W, strides=[s], pads=[s + 1, 0])
        right = direct_conv_transpose(X, W, strides=[s], pads=[1, 0])  # (s + 1) - 1*s
        np.testing.assert_array_equal(want, right)
        naive = direct_conv_transpose(X, W, strides=[s], pads=[s, 0])  # (s + 1) - 1
        assert (naive.shape == want.shape) == (s == 1), s


def test_bn_folded_expected_output_is_the_normalisation_formula_of_the_direct_loop(suite):
    for name, rec in _records(suite).items():
        if rec.variant != "bn-folded":
            continue
        case, _ = _files(suite, name)
        f = rec.form
        X, W, *B = (a.astype(np.float64) for a in case.operands)
        Y = direct_conv_transpose(X, W, B[0] if B else None, **rec.attributes)
        want = np.empty_like(Y)
        for m in range(Y.shape[1]):
            want[:, m] = (Y[:, m] - f.mean[m]) / np.sqrt(f.var[m] + f.epsilon) * f.scale[m] + f.bias[m]
        got = case.expected.astype(np.float64)
        spacing = np.spacing(np.abs(want).astype(case.expected.dtype)).astype(np.float64)
        assert np.all(np.abs(got - want) <= spacing / 2 * 1.0001), name  # rounded once, to nearest
        a = np.array(f.scale) / np.sqrt(np.array(f.var) + f.epsilon)
        assert np.all(a != 1) or (len(a) == 1 and abs(a[0]) != 1), name  # a normalisation that does something
        model = onnx.load_from_string(case.model)
        assert [n.op_type for n in model.graph.node] == ["ConvTranspose", "BatchNormalization"], name


def _quantize_by_hand(v: float, zero_point: int, low: int, high: int) -> int:
    return min(max(round(v) + zero_point, low), high)  # Python's round: half to even


def test_qdq_expected_output_is_dequantize_direct_loop_quantize(suite):
    seen = set()
    for name, rec in _records(suite).items():
        if rec.variant != "qdq":
            continue
        case, _ = _files(suite, name)
        f = rec.form
        _, qtype, low, high = QUANT_TYPES[f.quant_type]
        model = onnx.load_from_string(case.model)
        consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        xq = case.inputs[0][1]
        assert xq.dtype == qtype and case.expected.dtype == qtype, name
        X = (xq.astype(np.float64) - f.x_zero_point) * f.x_scale
        ws = np.array(f.w_scale).reshape((1, -1) + (1,) * (xq.ndim - 2))
        W = consts["W_q"].astype(np.float64) * ws
        B = None
        if "B_q" in consts:
            assert np.all(consts["B_q"] != 0), name
            B = consts["B_q"].astype(np.float64) * np.array(f.b_scale)
        Y = direct_conv_transpose(X, W, B, **rec.attributes)
        want = np.array(
            [_quantize_by_hand(y / f.y_scale, f.y_zero_point, low, high) for y in Y.reshape(-1)]
        ).reshape(Y.shape)
        np.testing.assert_array_equal(case.expected.astype(np.int64), want, err_msg=name)
        dq_w = next(n for n in model.graph.node if n.name.endswith("_dq_w"))
        assert [a.i for a in dq_w.attribute if a.name == "axis"] == ([1] if f.per_channel else []), name
        seen.add((f.quant_type, f.per_channel, f.exact))
    assert len(seen) >= 2, seen


def test_the_committed_suite_covers_every_quantized_configuration_the_issue_asks_for():
    records = sx.read_manifest(Path(__file__).resolve().parent.parent / "vectors").records
    qdq = [r.form for r in records.values() if r.variant == "qdq"]
    assert {(f.quant_type, f.per_channel) for f in qdq} == {
        ("int8", False),
        ("int8", True),
        ("uint8", False),
        ("uint8", True),
    }
    powers = [f for f in qdq if f.exact and f.y_zero_point % 2 and f.x_zero_point % 2]
    assert powers and all(np.log2(f.y_scale).is_integer() for f in powers)
    assert [f for f in qdq if f.quant_type == "int8" and f.x_zero_point == 0 and f.exact]
    pads = [r for r in records.values() if r.variant == "pad-fused"]
    assert {r.form.within_node_pads for r in pads} == {True, False}

    def strided(r):
        return any(s > 1 for s in r.attributes.get("strides", [1]))

    # A Pad within the node's pads (a fold is possible) at stride 1 and at stride > 1, and beyond.
    assert {(r.form.within_node_pads, strided(r)) for r in pads} == {
        (True, True),
        (True, False),
        (False, True),
        (False, False),
    }
    assert {len(r.x_shape) - 2 for r in pads} == {1, 2, 3}
    assert {r.attributes.get("group", 1) > 1 for r in pads} == {True, False}


def _qdq_one(exact: bool, zero_point: int) -> tuple[QdqForm, tuple, object]:
    # exact: power-of-two scales; otherwise x_scale 0.625 (X = 5.0 is still the integer 8)
    form = QdqForm("int8", False, 1.0 if exact else 0.625, 0, (1.0,), (), 2.0, zero_point, exact, 6)
    X = np.array([[[5.0]]])  # y = 5, v = 2.5: an exact tie
    W = np.array([[[1.0]]])
    return form, (X, W), geometry(X.shape, W.shape)


def test_an_exact_tie_must_round_half_to_even_before_the_zero_point():
    form, operands, geo = _qdq_one(exact=True, zero_point=1)
    want = np.array([[[3]]], dtype=np.int8)  # round(2.5) = 2, + 1
    assert compare_quantized(want, want, form, operands, geo, 1).ok
    for wrong in (4,):  # round(2.5 + 1) = 4 (zero point first), or half away from zero: 3 + 1
        got = np.array([[[wrong]]], dtype=np.int8)
        cmp = compare_quantized(got, want, form, operands, geo, 1)
        assert not cmp.ok and cmp.mismatches == 1 and cmp.got_at_first == wrong


def test_exactness_is_the_datas_not_the_manifests():
    """Review: a manifest saying ``exact: false`` of power-of-two data must not buy an off-by-one
    at an exact tie (the zero-point rounding bug would pass)."""
    exact_form, operands, geo = _qdq_one(exact=True, zero_point=1)
    from dataclasses import replace

    lying = replace(exact_form, exact=False)
    want = np.array([[[3]]], dtype=np.int8)
    assert not compare_quantized(np.array([[[4]]], dtype=np.int8), want, lying, operands, geo, 1).ok


def test_off_by_one_is_allowed_only_within_the_accumulated_bound_of_a_tie():
    form, operands, geo = _qdq_one(exact=False, zero_point=0)
    want = np.array([[[2]]], dtype=np.int8)
    assert compare_quantized(np.array([[[3]]], dtype=np.int8), want, form, operands, geo, 1).ok
    assert not compare_quantized(np.array([[[4]]], dtype=np.int8), want, form, operands, geo, 1).ok
    far = (np.array([[[4.6]]]), operands[1])  # v = 2.3: no tie within the bound
    want = np.array([[[2]]], dtype=np.int8)
    assert not compare_quantized(np.array([[[3]]], dtype=np.int8), want, form, far, geo, 1).ok


def test_every_form_passes_on_onnxruntime_at_every_optimisation_level(suite):
    specs = ["ort:cpu"] + [
        f"ort:cpu?graph_optimization_level={lv}" for lv in ("disable", "basic", "extended")
    ]
    res = validate(suite, specs)
    assert res.case_problems == {} and res.suite_problems == []
    assert {r["verdict"] for r in res.records} == {"pass"}, [
        (r["runtime"], r["case"], r["message"]) for r in res.records if r["verdict"] != "pass"
    ]


def _tamper(suite: Path, name: str, edit) -> dict:
    """The record of ``name`` after ``edit`` changed its model (digest updated to match)."""
    path = suite / "node" / name / "model.onnx"
    model = onnx.load(str(path))
    edit(model)
    data = model.SerializeToString()
    raw = json.loads((suite / "manifest.json").read_text())
    rec = next(r for r in raw["cases"] if r["name"] == name)
    return rec, data


@pytest.mark.parametrize(
    ("name", "edit", "why"),
    [
        (
            "rank2_s2_p1_bias_float32_exact__bn-folded",
            lambda m: m.graph.node[1].attribute.append(onnx.helper.make_attribute("momentum", 0.5)),
            "graph",
        ),
        (
            "rank2_s2_p1_bias_float32_exact__bn-folded",
            lambda m: m.graph.node[1].attribute[0].__setattr__("f", 0.5),
            "graph",
        ),
        (
            "rank2_s2_p1_bias_float32_exact__pad-fused",
            lambda m: m.graph.node[0].attribute[0].__setattr__("s", b"reflect"),
            "graph",
        ),
        (
            "rank2_s2_p1_bias_float32_exact__qdq",
            lambda m: m.graph.node.append(onnx.helper.make_node("Relu", ["Y"], ["Z"])),
            "graph",
        ),
        (
            "rank2_s2_p1_bias_float32_exact__qdq",
            lambda m: m.graph.initializer[-1].__setattr__("raw_data", b"\x05"),
            "graph",
        ),
    ],
)
def test_a_form_model_other_than_the_one_opref_writes_is_refused(suite, name, edit, why):
    from opref.model import check_case_model

    rec, data = _tamper(suite, name, edit)
    record = sx.parse_record(rec)
    case = sx.read_case(suite, record)
    check_case_model(case.model, record, [a for _, a in case.inputs])  # the original is accepted
    with pytest.raises(cx.SuiteError, match=why):
        check_case_model(data, record, [a for _, a in case.inputs])


def test_a_form_record_that_lies_about_its_values_is_refused(suite):
    raw = json.loads((suite / "manifest.json").read_text())
    rec = next(r for r in raw["cases"] if r["name"] == "rank1_s2_pads_asym_float32_exact__pad-fused")
    with pytest.raises(sx.RecordError, match="within_node_pads"):
        sx.parse_record({**rec, "form": {**rec["form"], "within_node_pads": False}})
    with pytest.raises(sx.RecordError, match="form"):
        sx.parse_record({**rec, "variant": "inputs", "base_case": rec["name"]})
    qdq = next(r for r in raw["cases"] if r["variant"] == "qdq")
    with pytest.raises(sx.RecordError, match="y_zero_point"):
        sx.parse_record({**qdq, "form": {**qdq["form"], "y_zero_point": 300}})
    with pytest.raises(sx.RecordError, match="quant_type"):  # not a string: no TypeError
        sx.parse_record({**qdq, "form": {**qdq["form"], "quant_type": ["int8"]}})


def test_the_pad_fold_bug_model_recognises_a_runtime_that_folds_ignoring_the_stride(suite):
    case, rec = _files(suite, "rank1_s2_pads_asym_float32_exact__pad-fused")
    x_file = case.inputs[0][1]
    got = direct_conv_transpose(x_file, *case.operands[1:], strides=[2], pads=[0, 0]).astype(np.float32)
    assert got.shape != case.expected.shape  # pads [2, 0] - Pad [2, 0]: the stride forgotten
    found = diagnose_form(rec.form, case.operands, rec.attributes, rec.opset, rec.dtype, True, got)
    assert found == ("pad-fold-ignores-stride",)
    assert (
        diagnose_form(rec.form, case.operands, rec.attributes, rec.opset, rec.dtype, True, case.expected)
        == ()
    )


def test_the_batch_statistics_bug_model_recognises_momentum_blended_statistics(suite):
    case, rec = _files(suite, "rank2_basic_float32_exact_opset11__bn-folded")
    f = rec.form
    Y = direct_conv_transpose(*case.operands, **rec.attributes)
    got = np.empty_like(Y)
    for m in range(Y.shape[1]):
        mean = 0.9 * f.mean[m] + 0.1 * Y[:, m].mean()
        var = 0.9 * f.var[m] + 0.1 * Y[:, m].var()
        got[:, m] = (Y[:, m] - mean) / np.sqrt(var + f.epsilon) * f.scale[m] + f.bias[m]
    found = diagnose_form(
        f, case.operands, rec.attributes, rec.opset, rec.dtype, False, got.astype(np.float32)
    )
    assert found == ("bn-batch-statistics",)


def test_the_zero_point_bug_model_recognises_rounding_after_adding_it(suite):
    for name, rec in _records(suite).items():
        f = rec.form
        if rec.variant != "qdq" or not f.exact or f.y_zero_point % 2 == 0:
            continue
        case, _ = _files(suite, name)
        _, qtype, low, high = QUANT_TYPES[f.quant_type]
        model = onnx.load_from_string(case.model)
        consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        X = (case.inputs[0][1].astype(np.float64) - f.x_zero_point) * f.x_scale
        W = consts["W_q"] * np.array(f.w_scale).reshape((1, -1) + (1,) * (X.ndim - 2))
        B = consts["B_q"] * np.array(f.b_scale) if "B_q" in consts else None
        v = direct_conv_transpose(X, W, B, **rec.attributes) / f.y_scale
        if not np.any(v % 1 == 0.5):
            continue
        got = np.clip(np.vectorize(round)(v + f.y_zero_point), low, high).astype(qtype)
        found = diagnose_form(f, case.operands, rec.attributes, rec.opset, rec.dtype, True, got)
        assert found == ("qdq-zero-point-before-rounding",), name
        return
    pytest.skip("no exact tie with an odd zero point among the picked cases")


def test_the_cli_writes_only_the_forms_asked_for_and_reproducibly(tmp_path, capsys):
    from opref.cli import main

    args = ["generate", "--variants", "pad-fused,bn-folded,qdq", "--only", "seed_stride2*", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    names = sorted(p.name for p in (tmp_path / "a" / "node").iterdir())
    # seed_stride2 and seed_stride2_dilation2 have no pads: a Pad larger than them; _pad1 has pads.
    assert names == sorted(
        f"{b}__{f}" for b in ("seed_stride2", "seed_stride2_dilation2", "seed_stride2_pad1") for f in FORMS
    )
    for path in sorted((tmp_path / "a").rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes(), path


def test_opref_quantize_reports_a_quantizer_crash_as_a_tool_failure_not_a_verdict(tmp_path, capsys):
    pytest.importorskip("onnxruntime.quantization")
    from opref.cli import main

    # Per channel, group 2, M/group 3, with bias: quantize_static raises (issue 24); nothing is written.
    rc = main(
        [
            "quantize",
            "--out",
            str(tmp_path / "q"),
            "--only",
            "group2_c4_m6_float32_exact",
            "--mode",
            "per-channel",
        ]
    )
    out = capsys.readouterr()
    assert rc == 1 and "no case was quantized" in out.err
    assert (
        "TOOL FAILURE (quantizer, not a runtime verdict): group2_c4_m6_float32_exact per-channel" in out.out
    )
    assert not (tmp_path / "q").exists()
