"""Model variants, real layers and the output-shape-rank ambiguity (issue 14).

Expected facts come from the spec notes (section 3, output-shape-rank), ONNX's IR rules
(initializers, dim_param) and the published layer sizes, never from the code under test.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import opref
from opref import cases as cs
from opref import codec as cx
from opref import suite as sx
from opref import vectors as vx
from opref.catalog import LAYERS
from opref.report import aggregate, markdown, variant_of, variant_views
from opref.validate import validate

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors"
FAKE = "py:fake_runtimes:make"
ALL = [v for v, form in cs.VARIANTS.items() if not form.wrapped]  # issue 14's four forms


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("variants") / "v"
    picks = [
        "rank2_s2_p1_bias_float32_random",
        "autopad_same_upper_odd_float32_exact",
        "autopad_notset_output_shape_odd_float32_exact",
        "opset1_pads_float32_exact_opset1",
        "reject_output_shape_full_rank*",
        "seed_basic",
    ]
    cases = cs.catalog(only=[p + suffix for p in picks for suffix in ("", "__*")], variants=ALL)
    vx.generate(out, cases, {"variants": ALL})
    return out


def _model(suite: Path, name: str) -> onnx.ModelProto:
    return onnx.load(str(suite / "node" / name / "model.onnx"))


def _dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_each_variant_is_its_own_case_directory_with_the_same_expected_output(suite):
    base = "rank2_s2_p1_bias_float32_random"
    records = sx.read_manifest(suite).records
    expected = (suite / "node" / base / cx.OUTPUT_FILE).read_bytes()
    x = (suite / "node" / base / f"{cx.DATA_SET}/input_0.pb").read_bytes()
    for variant in ALL:
        name = base if variant == "inputs" else f"{base}__{variant}"
        rec = records[name]
        assert (rec.variant, rec.base_case) == (variant, base), name
        assert (suite / "node" / name / cx.OUTPUT_FILE).read_bytes() == expected, name
        assert (suite / "node" / name / f"{cx.DATA_SET}/input_0.pb").read_bytes() == x, name
        n_inputs = 3 if variant == "inputs" else 1  # X, W, B inputs; or X alone
        assert len(rec.input_files) == n_inputs, name
        onnx.checker.check_model(_model(suite, name), full_check=True)


def test_constant_weights_variants_hold_the_cases_w_and_b_as_initializers(suite):
    base = "rank2_s2_p1_bias_float32_random"
    inputs = sx.read_case(suite, sx.read_manifest(suite).records[base])
    for variant in ALL[1:]:
        model = _model(suite, f"{base}__{variant}")
        assert [i.name for i in model.graph.input] == ["X"]
        consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        assert sorted(consts) == ["B", "W"]
        np.testing.assert_array_equal(consts["W"], inputs.operands[1])
        np.testing.assert_array_equal(consts["B"], inputs.operands[2])


def test_symbolic_dimensions_are_declared_as_dim_params(suite):
    base = "rank2_s2_p1_bias_float32_random"  # X [1, 2, 4, 4] -> Y [1, 3, 7, 7]
    static = _model(suite, f"{base}__constant-weights")
    assert _dims(static.graph.input[0]) == [1, 2, 4, 4] and _dims(static.graph.output[0]) == [1, 3, 7, 7]
    batch = _model(suite, f"{base}__dynamic-batch")
    assert _dims(batch.graph.input[0]) == ["N", 2, 4, 4] and _dims(batch.graph.output[0]) == ["N", 3, 7, 7]
    spatial = _model(suite, f"{base}__dynamic-spatial")
    assert _dims(spatial.graph.input[0]) == ["N", 2, "D1", "D2"]
    assert _dims(spatial.graph.output[0]) == ["N", 3, "O1", "O2"]


def test_opset1_and_must_reject_cases_keep_only_the_inputs_form(suite):
    names = set(sx.read_manifest(suite).records)
    # IR 3 (opset 1) makes every initializer a graph input too: there is no constant form.
    assert "opset1_pads_float32_exact_opset1" in names
    assert not [n for n in names if n.startswith("opset1_pads") and "__" in n]
    assert not [n for n in names if n.startswith("reject_") and "__" in n]


def test_reader_gives_every_variant_the_same_operands(suite):
    records = sx.read_manifest(suite).records
    base = sx.read_case(suite, records["seed_basic"])
    for variant in ALL[1:]:
        case = sx.read_case(suite, records[f"seed_basic__{variant}"])
        assert [a.tobytes() for a in case.operands] == [a.tobytes() for a in base.operands]
        assert [n for n, _ in case.inputs] == ["X"]


def test_a_manifest_record_with_an_unknown_variant_is_refused():
    rec = json.loads((VECTORS / "manifest.json").read_text())["cases"][0]
    with pytest.raises(sx.RecordError, match="variant"):
        sx.parse_record({**rec, "variant": "weights-as-attributes"})
    with pytest.raises(sx.RecordError, match="base_case"):
        sx.parse_record({**rec, "variant": "dynamic-batch"})  # its name is the base case's


def test_onnxruntime_gives_no_variant_another_verdict(suite):
    res = validate(suite, ["ort:cpu"])
    views = variant_views(res.records)
    assert views["variant_changes"] == {"ort:cpu": {}}
    assert set(views["variant_matrix"]["ort:cpu"]) == set(ALL)
    assert {r["verdict"] for r in res.records} <= {"pass", "rejected"}, res.records


def test_committed_suite_holds_all_four_variants_of_every_case_they_apply_to():
    records = sx.read_manifest(VECTORS).records
    bases = {r.base_case for r in records.values()}
    by_variant = {v: {r.base_case for r in records.values() if r.variant == v} for v in ALL}
    assert by_variant["inputs"] == bases
    applicable = {
        r.name for r in records.values() if r.variant == "inputs" and r.expect == "output" and r.opset >= 11
    }
    for variant in ALL[1:]:
        assert by_variant[variant] == applicable, variant


# --- real layers -------------------------------------------------------------------------------


def test_layers_cover_the_networks_the_issue_names_at_their_published_sizes():
    layers = {la.name: la for la in LAYERS}
    # (X, W, attributes) as published: FCN's score upsampling (21 classes), U-Net's first
    # up-conv, DCGAN's projection, Mask R-CNN's mask head, a 3-D U-Net and HiFi-GAN's upsamplers.
    assert layers["fcn8s_upscore8"].w == (21, 21, 16, 16) and layers["fcn8s_upscore8"].attrs["strides"] == [
        8,
        8,
    ]
    assert layers["fcn8s_upscore2"].w == (21, 21, 4, 4)
    assert layers["fcn32s_upscore"].w == (21, 21, 64, 64)
    assert layers["fcn8s_upscore8_depthwise"].attrs["group"] == 21
    assert layers["unet_upconv1"].x == (1, 1024, 28, 28) and layers["unet_upconv1"].w == (1024, 512, 2, 2)
    assert layers["dcgan_g1_project"].x[1:] == (100, 1, 1) and layers["dcgan_g1_project"].w[2:] == (4, 4)
    assert layers["maskrcnn_mask_head"].x[1:] == (256, 14, 14)
    assert layers["cyclegan_up1"].attrs["output_padding"] == [1, 1]
    assert layers["nnunet3d_upconv"].x[2:] == (32, 32, 32)
    assert layers["hifigan_up1"].w[2:] == (16,) and layers["hifigan_up1"].attrs["pads"] == [4, 4]
    assert layers["bilinear_x2_depthwise"].attrs["group"] == layers["bilinear_x2_depthwise"].x[1]
    for la in LAYERS:
        assert la.citation, la.name
        if la.small is not None:  # the committed size keeps channels, kernel and attributes
            assert la.small[1] == la.x[1] and len(la.small) == len(la.x), la.name
    # Every output shape follows section 2's formula on the real sizes (no SpecError, O >= 1).
    assert opref.geometry((1, 21, 70, 70), (21, 21, 16, 16), strides=[8, 8]).output_shape == (1, 21, 568, 568)


def test_full_suite_has_every_layer_at_its_real_size_and_the_default_suite_the_small_ones():
    full = {c.name: c for c in cs.layer_cases("full")}
    assert len(full) == 2 * len(LAYERS)
    assert full["layer_unet_upconv1_float32_exact"].x_shape == (1, 1024, 28, 28)
    default = cs.layer_cases("default")
    assert {c.name for c in default} == {
        f"layer_{la.name}{'' if la.small == la.x else '_small'}_float32_exact"
        for la in LAYERS
        if la.small is not None
    }
    assert all(
        c.description.startswith(next(la.citation for la in LAYERS if la.name in c.name)) for c in default
    )


def test_committed_layer_cases_are_bit_exact_integer_data():
    records = sx.read_manifest(VECTORS).records
    layers = [r for r in records.values() if r.family == "layer" and r.form is None]  # one node
    assert len(layers) >= 4 * 8
    assert all(r.tolerance.bitexact for r in layers)


# --- output-shape-rank -------------------------------------------------------------------------


def test_full_rank_output_shape_is_refused_by_default_and_read_as_its_tail_under_full_rank():
    x, w = (1, 1, 3, 3), (1, 2, 3, 3)  # N = 1, M = 2
    with pytest.raises(opref.SpecError, match="spatial sizes only"):
        opref.geometry(x, w, output_shape=[1, 2, 5, 5])
    geo = opref.geometry(x, w, output_shape=[1, 2, 5, 5], readings={"output-shape-rank": "full-rank"})
    assert geo.output_shape == (1, 2, 5, 5) and geo.ambiguities == ("output-shape-rank",)
    assert opref.geometry(x, w, output_shape=[5, 5]).ambiguities == ()
    # N or C entries that contradict X and W stay must-reject under either reading.
    for wrong in ([1, 3, 5, 5], [2, 2, 5, 5]):
        for reading in ("spatial-only", "full-rank"):
            with pytest.raises(opref.SpecError, match=r"are not \[N, M\]"):
                opref.geometry(x, w, output_shape=wrong, readings={"output-shape-rank": reading})


def test_full_rank_reject_cases_carry_the_ambiguity_only_when_n_and_c_match():
    records = sx.read_manifest(VECTORS).records
    assert records["reject_output_shape_full_rank"].ambiguities == ("output-shape-rank",)
    assert records["reject_output_shape_full_rank_mismatch"].ambiguities == ()
    assert all(not r.ambiguities for n, r in records.items() if r.expect == "reject" and "full_rank" not in n)


def test_a_runtime_that_reads_the_full_rank_output_shape_diverges_and_one_that_mismatches_fails(suite):
    spec = f"{FAKE}?reading.output-shape-rank=full-rank"
    res = validate(suite, [spec, f"{FAKE}?mode=accept-all&only=reject_output_shape_full_rank_mismatch"])
    got = {(r["runtime"], r["case"]): r for r in res.records}
    diverged = got[(spec, "reject_output_shape_full_rank")]
    assert diverged["verdict"] == "divergence", diverged
    assert diverged["reading"] == {"output-shape-rank": "full-rank"}
    mismatch = [r for (rt, c), r in got.items() if c == "reject_output_shape_full_rank_mismatch"]
    assert {r["verdict"] for r in mismatch} == {"rejected", "accepted-invalid"}


# --- the report -------------------------------------------------------------------------------


def _rec(case, runtime, verdict, ambiguities=(), reading=None):
    return {
        "case": case,
        "runtime": runtime,
        "verdict": verdict,
        "dtype": "float32",
        "opset": 22,
        "reproduce": "",
        "attributes": {},
        "ambiguities": list(ambiguities),
        "reading": reading,
    }


def test_report_lists_the_cases_whose_verdict_depends_on_the_model_form():
    amb = ("same-with-output-padding",)
    records = [
        *(_rec(f"a{s}", "ov", v) for s, v in (("", "pass"), ("__dynamic-batch", "fail-shape"))),
        *(_rec(f"a{s}", "ort", "pass") for s in ("", "__dynamic-batch")),
        _rec("b", "ov", "pass", amb, {amb[0]: "in-total"}),
        _rec("b__dynamic-batch", "ov", "divergence", amb, {amb[0]: "added"}),
    ]
    results = {"suite": "s", "started": "", "seconds": 0, "complete": True, "machine": {}}
    results["runtimes"] = [
        {"spec": s, "name": s, "version": "1", "available": True, "reason": ""} for s in ("ort", "ov")
    ]
    results["records"] = records
    report = aggregate([results])
    d = report.data
    assert d["variant_changes"]["ort"] == {}
    assert d["variant_changes"]["ov"] == {
        "a": {"inputs": "pass", "dynamic-batch": "fail-shape"},
        "b": {"inputs": "pass", "dynamic-batch": "divergence: added"},
    }
    assert d["variant_matrix"]["ov"]["dynamic-batch"] == {"divergence": 1, "fail-shape": 1}
    assert d["variant_ambiguities"][amb[0]]["ov"] == {
        "inputs": {"in-total": 1},
        "dynamic-batch": {"added": 1},
    }
    text = markdown(report)
    assert "## Where the form of the model changes the answer" in text
    assert "| ort | no case changes verdict |" in text and "| ov | **2 cases change verdict** |" in text
    assert text.index("changes the answer") < text.index("## Normative failures")


def test_report_lists_a_verdict_that_changes_with_a_form_around_convtranspose():
    # Issue 24: a Pad folded at stride > 1 (OpenVINO) changes the verdict of pad-fused only.
    records = [
        _rec("s2", "ov", "pass"),
        _rec("s2__pad-fused", "ov", "fail-shape"),
        _rec("s2__bn-folded", "ov", "pass"),
        _rec("s2__qdq", "ov", "pass"),
    ]
    results = {"suite": "s", "started": "", "seconds": 0, "complete": True, "machine": {}}
    results["runtimes"] = [{"spec": "ov", "name": "ov", "version": "1", "available": True, "reason": ""}]
    results["records"] = records
    report = aggregate([results])
    assert report.data["variant_changes"]["ov"] == {
        "s2": {"inputs": "pass", "pad-fused": "fail-shape", "bn-folded": "pass", "qdq": "pass"}
    }
    text = markdown(report)
    section = text[text.index("## Where the form of the model changes the answer") :]
    assert "| ov | **1 cases change verdict** |" in section
    assert "| case | inputs | pad-fused | bn-folded | qdq |" in section
    assert "`pad-fused`, `bn-folded`, `qdq`) feed it through them" in section


def test_variant_names_split_only_on_known_variants():
    assert variant_of("x__dynamic-batch") == ("x", "dynamic-batch")
    assert variant_of("x__other") == ("x__other", "inputs")
    assert variant_of("seed_basic") == ("seed_basic", "inputs")


# --- OpenVINO: a real runtime whose answer changes with symbolic dimensions ---------------------


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
def test_opref_detects_openvinos_symbolic_batch_failures(suite):
    # Spec notes section 4 (measured on OpenVINO 2026.4 CPU): with a symbolic batch, SAME_UPPER
    # without output_shape gives the full extent F = 7 instead of I*s = 6, and with output_shape
    # all of an odd T goes to the end; the static-shape models pass.
    res = validate(suite, ["openvino"])
    assert res.runtimes[0]["available"], res.runtimes
    got = {r["case"]: r for r in res.records}
    same = "autopad_same_upper_odd_float32_exact"
    split = "autopad_notset_output_shape_odd_float32_exact"
    for base in (same, split):
        assert got[base]["verdict"] == "pass", got[base]
        assert got[f"{base}__constant-weights"]["verdict"] == "pass", got[f"{base}__constant-weights"]
    shape = got[f"{same}__dynamic-batch"]
    assert shape["verdict"] == "fail-shape" and shape["got_shape"] == [1, 1, 7, 7], shape
    values = got[f"{split}__dynamic-batch"]
    assert values["verdict"] == "fail-values", values
    changes = variant_views(res.records)["variant_changes"]["openvino"]
    assert {same, split} <= set(changes)
