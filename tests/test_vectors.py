"""The committed suite and the writer: layout, determinism, expected values, safety."""

from __future__ import annotations

import filecmp
import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from test_reference import SEED_CASES

import opref
from opref import cases as cs
from opref import codec as cx
from opref import suite as sx
from opref import vectors as vx
from opref.direct import direct_conv_transpose
from opref.model import ir_version_for, node_attributes
from opref.outdir import OutputError
from opref.readings import AMBIGUITIES

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())
RECORDS = {r["name"]: r for r in MANIFEST["cases"]}
# The one-node cases: the forms with nodes around ConvTranspose (a graph, their own expected output
# and bound) are checked in tests/test_forms.py.
ONE_NODE = {name: r for name, r in RECORDS.items() if "form" not in r}
CHECKER = json.loads((VECTORS / "checker.json").read_text())


SUITE = sx.read_manifest(VECTORS)


def load_case(name: str):
    """The model, the node's operands and the expected output, through opref's one case reader."""
    case = sx.read_case(VECTORS, SUITE.records[name])
    return onnx.load_from_string(case.model), list(case.operands), case.expected


def model_attributes(model: onnx.ModelProto) -> dict:
    return node_attributes(model.graph.node[0])


def test_committed_suite_regenerates_byte_for_byte(tmp_path):
    params = MANIFEST["parameters"]
    cases = cs.catalog(
        params["suite"],
        opsets=params["opsets"],
        dtypes=params["dtypes"],
        only=params["only"],
        random=params["random"],
        seed=params["seed"],
        variants=params.get("variants", ["inputs"]),
    )
    vx.generate(tmp_path / "v", cases, params)
    cmp = filecmp.dircmp(VECTORS, tmp_path / "v")
    problems = []

    def walk(c, prefix=""):
        problems.extend(prefix + n for n in c.left_only + c.right_only + c.diff_files + c.funny_files)
        # dircmp compares by stat signature first; compare contents for real.
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.same_files, shallow=False)
        problems.extend(prefix + n for n in mismatch + errors)
        for name, sub in c.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(cmp)
    assert not problems, f"regenerated suite differs in {len(problems)} files, e.g. {problems[:5]}"


def test_onnx_loader_reads_the_suite(tmp_path):
    # onnx >= 1.20 answers kind="node" from its in-package cases and ignores data_dir (its
    # on-disk node data is gone); the on-disk reader is the same code for any other kind name,
    # so the suite's node/ directory is offered to it under another name.
    from onnx.backend.test.loader import load_model_tests

    (tmp_path / "opref_node").symlink_to(VECTORS / "node")
    tests = load_model_tests(data_dir=str(tmp_path), kind="opref_node")
    assert sorted(t.name for t in tests) == sorted(RECORDS)
    assert all(t.model_dir and Path(t.model_dir, "model.onnx").is_file() for t in tests)


def test_every_case_directory_has_the_backend_layout():
    for name, rec in RECORDS.items():
        d = VECTORS / "node" / name
        listed = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
        n_inputs = 3 if rec["b_shape"] is not None else 2
        if rec["variant"] != "inputs":
            n_inputs = 1  # W and B are the model's initializers
        expected = ["model.onnx"] + [f"{cx.DATA_SET}/input_{i}.pb" for i in range(n_inputs)]
        if rec["expect"] == "output":
            expected.append(f"{cx.DATA_SET}/output_0.pb")
        assert listed == sorted(expected), name
        assert sorted(rec["files"]) == listed, name


def test_expected_outputs_equal_the_reference_on_the_stored_inputs():
    for name, rec in ONE_NODE.items():
        if rec["expect"] != "output":
            continue
        model, inputs, expected = load_case(name)
        attrs = model_attributes(model)
        got = opref.conv_transpose(*inputs, **attrs, opset=model.opset_import[0].version)
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert got.tobytes() == expected.tobytes(), name


def test_small_cases_agree_with_the_direct_loop():
    # An independent check of the suite's values, on the exact float32 cases (fast enough).
    for name, rec in RECORDS.items():
        if rec["expect"] != "output" or rec["dtype"] != "float32" or rec["ambiguities"] or rec["opset"] != 22:
            continue
        if rec["variant"] != "inputs" or rec["family"] == "layer":
            continue  # variants hold their case's output (tested below); layers are too large
        model, inputs, expected = load_case(name)
        attrs = {k: v for k, v in model_attributes(model).items() if k != "kernel_shape"}
        want = direct_conv_transpose(*inputs, **attrs).astype(np.float32)
        np.testing.assert_array_equal(expected, want, err_msg=name)


def test_seed_cases_hold_the_seed_documents_outputs():
    for key, (_, _, _, printed) in SEED_CASES.items():
        _, _, y = load_case(f"seed_{key}")
        np.testing.assert_array_equal(y[0, 0], np.array(printed, dtype=np.float32), err_msg=key)


def test_onnx_cases_hold_onnxs_own_expected_outputs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        theirs = {c.name.replace("test_", "onnx_", 1): c for c in collect_testcases("ConvTranspose")}
    assert len(theirs) == 11
    for name, case in theirs.items():
        _, inputs, y = load_case(name)
        their_inputs, their_outputs = case.data_sets[0]
        for mine, their in zip(inputs, their_inputs, strict=True):
            np.testing.assert_array_equal(mine, their, err_msg=name)
        np.testing.assert_array_equal(y, their_outputs[0], err_msg=name)


def test_models_carry_explicit_fields():
    for name, rec in ONE_NODE.items():
        model, inputs, _ = load_case(name)
        assert model.ir_version == rec["ir_version"] == ir_version_for(rec["opset"]), name
        assert model.producer_name == "opref" and model.producer_version == opref.__version__
        assert [(o.domain, o.version) for o in model.opset_import] == [("", rec["opset"])]
        assert model.graph.node[0].name == name
        declared = [
            [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input
        ]
        want: list[list] = [list(a.shape) for a in inputs]
        if rec["variant"] != "inputs":
            want = want[:1]  # W and B are initializers: X is the only graph input
        if rec["variant"] in ("dynamic-batch", "dynamic-spatial"):
            want[0][0] = "N"
        if rec["variant"] == "dynamic-spatial":
            want[0][2:] = [f"D{i}" for i in range(1, len(want[0]) - 1)]
        assert declared == want, name
        if rec["expect"] == "output" and not rec["ambiguities"] and rec["family"] != "random":
            assert CHECKER["cases"][name] == "ok", name
            onnx.checker.check_model(model, full_check=True)


def test_ir_versions_match_onnxs_release_table():
    for opset in (1, 7, 11, 13, 17, 21, 22, 23):
        first_release = min((row for row in helper.VERSION_TABLE if row[2] >= opset), key=lambda r: r[2])
        assert ir_version_for(opset) == first_release[1], opset


def test_must_reject_cases_carry_inputs_but_no_output_and_opref_refuses_them():
    rejects = [r for r in RECORDS.values() if r["expect"] == "reject"]
    assert len(rejects) >= 20
    for rec in rejects:
        model, inputs, y = load_case(rec["name"])
        assert y is None and len(inputs) >= 2 and rec["reject_rule"] and rec["reject_message"]
        with pytest.raises(opref.SpecError):
            opref.conv_transpose(*inputs, **model_attributes(model), opset=rec["opset"])


def test_exact_cases_are_exactly_summable():
    for rec in ONE_NODE.values():
        if rec["expect"] == "output" and rec["data"] == "exact":
            tol = rec["tolerance"]
            limit = 2 ** round(-np.log2(tol["unit_roundoff"]))
            assert tol["bitexact"] and tol["max_magnitude_sum"] <= limit, rec["name"]


def test_random_cases_are_not_integers_and_not_bitexact():
    randoms = [r for r in ONE_NODE.values() if r["data"] == "random"]
    assert randoms and not any(r["tolerance"]["bitexact"] for r in randoms)
    _, inputs, _ = load_case(randoms[0]["name"])
    assert not np.array_equal(inputs[0], np.round(inputs[0]))


def test_suite_covers_what_the_catalog_promises():
    recs = [r for r in RECORDS.values() if r["variant"] == "inputs"]
    families = Counter(r["family"] for r in recs)
    assert families["seed"] == 5 and families["onnx"] == 11 and families["reject"] >= 20
    assert {r["dtype"] for r in recs} >= {"float16", "float32", "float64", "bfloat16"}
    assert {r["opset"] for r in recs} >= {1, 11, 22}
    assert {r["data"] for r in recs} == {"exact", "random", "given"}
    tags = Counter(a for r in recs for a in r["ambiguities"])
    for aid in AMBIGUITIES:
        assert tags[aid] >= 3, (aid, tags)
    features = Counter(f for r in recs for f in r["features"])
    for f in (
        "group",
        "bias",
        "kernel_shape",
        "auto_pad",
        "output_shape",
        "pads_ignored",
        "odd_total_padding",
        "even_total_padding",
        "non_square_kernel",
        "batch",
        "dilations",
        "output_padding",
        "strides",
    ):
        assert features[f] >= 2, f
    ranks = {len(r["x_shape"]) - 2 for r in recs if r["expect"] == "output"}
    assert {1, 2, 3} <= ranks
    groups = [r for r in recs if r["expect"] == "output" and r["attributes"].get("group", 1) > 1]
    assert any(r["x_shape"][1] // r["attributes"]["group"] > 1 and r["w_shape"][1] > 1 for r in groups)
    assert len(recs) >= 300 and sum(p.stat().st_size for p in VECTORS.rglob("*") if p.is_file()) < 20e6


def test_generation_is_deterministic_and_random_family_seeded(tmp_path):
    a = cs.catalog(only=["rank2_*float16*", "random_*"], random=6, seed=3)
    vx.generate(tmp_path / "a", a, {})
    vx.generate(tmp_path / "b", cs.catalog(only=["rank2_*float16*", "random_*"], random=6, seed=3), {})
    for p in (tmp_path / "a").rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes(), p
    r3 = [c.name for c in cs.random_cases(6, 3)]
    assert r3 == [c.name for c in a if c.family == "random"]
    assert [c.attrs for c in cs.random_cases(6, 3)] != [c.attrs for c in cs.random_cases(6, 4)]


def test_refuses_a_directory_that_is_not_a_suite(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(OutputError, match="holds files opref did not write"):
        vx.generate(tmp_path, cs.catalog(only=["seed_basic"]), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_failed_run_leaves_previous_suite_intact(tmp_path, monkeypatch):
    out = tmp_path / "suite"
    vx.generate(out, cs.catalog(only=["seed_*"]), {})
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = vx.build_case
    calls = []

    def failing(case):
        calls.append(case.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(case)

    monkeypatch.setattr(vx, "build_case", failing)
    with pytest.raises(KeyboardInterrupt):
        vx.generate(out, cs.catalog(only=["onnx_*"]), {})
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite"]


def test_stale_temporary_and_moved_aside_suite_are_recovered(tmp_path):
    out = tmp_path / "suite"
    vx.generate(out, cs.catalog(only=["seed_basic"]), {})
    # As if killed between the two renames of the swap, with a dead process's staging left.
    out.rename(tmp_path / ".suite.opref-old-999999999")
    (tmp_path / ".suite.opref-staging-999999999").mkdir()
    vx.generate(tmp_path / "other", cs.catalog(only=["seed_basic"]), {})
    vx.generate(out, cs.catalog(only=["seed_stride2"]), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "suite"]
    assert vx.is_suite(out) and [p.name for p in (out / "node").iterdir()] == ["seed_stride2"]


def test_cli_generate_filters(tmp_path):
    from opref.cli import main

    assert (
        main(
            ["generate", "--out", str(tmp_path / "s"), "--only", "rank1_*", "--dtype", "bfloat16", "--quiet"]
        )
        == 0
    )
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert m["case_count"] > 0 and all(
        c["dtype"] == "bfloat16" and c["name"].startswith("rank1_") for c in m["cases"]
    )
    assert main(["generate", "--out", str(tmp_path / "t"), "--only", "no_such_case*"]) == 2
    assert main(["generate", "--out", str(tmp_path / "t"), "--dtype", "int8"]) == 2


def test_every_bias_is_drawn_without_a_zero_element():
    for case in cs.catalog():
        if case.b_shape is None or case.inputs is not None:
            continue
        B = vx.case_inputs(case)[2]
        assert np.all(B != 0), case.name
    case = next(c for c in cs.catalog(only=["rank3_kernel_1x2x3_bias_float32_exact_opset11"]))
    assert np.all(vx.case_inputs(case)[2] != 0)


