"""Issue 22, guarantee 5: a runtime cannot loosen its own judge. The unit roundoff of a record's
bound is the dtype's, or a looser one its runtime spec declares; what a worker says is recorded,
never used."""

from __future__ import annotations

import pytest

from opref import cases as cs
from opref import validate as va
from opref import vectors as vx
from opref.runtimes import declared_unit_roundoff

BAD = "py:misbehaving_runtimes:make"
CASE = "rank2_s2_p1_bias_float32_random"  # random data: judged within a bound, not bit for bit
FLOAT32_U = 2.0**-24  # IEEE 754 binary32: 24-bit significand, round to nearest


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite") / "v"
    vx.generate(out, cs.catalog(only=[CASE]), {})
    return out


def test_a_worker_claiming_a_loose_unit_roundoff_is_judged_with_the_dtype_s(suite):
    res = va.validate(suite, [f"{BAD}?mode=loose-roundoff&only={CASE}"])
    (rec,) = res.records
    assert rec["verdict"] == "fail-values", rec
    assert rec["unit_roundoff"] == FLOAT32_U and rec["unit_roundoff_declared"] is False
    assert rec["unit_roundoff_claimed"] == 0.25  # kept for the record, not used
    assert res.exit_code == 1


def test_a_spec_that_declares_a_looser_unit_roundoff_is_judged_with_it(suite, monkeypatch):
    # A py: adapter cannot declare one (only ort's use_tf32 and OpenVINO's precision hint do), so
    # stand in for a declaring spec: the parent's derivation is what decides.
    monkeypatch.setattr(va, "declared_unit_roundoff", lambda spec, dtype: 2.0**-8)
    res = va.validate(suite, [f"{BAD}?mode=loose-roundoff&only={CASE}"])
    (rec,) = res.records
    assert rec["verdict"] == "pass" and rec["unit_roundoff"] == 2.0**-8 and rec["unit_roundoff_declared"]


@pytest.mark.parametrize(
    ("spec", "dtype", "u"),
    [
        ("ort:cuda?use_tf32=1", "float32", 2.0**-11),  # TF32: 10 stored mantissa bits
        ("ort:CUDAExecutionProvider?use_tf32=1", "float32", 2.0**-11),
        ("ort:cuda?use_tf32=1@/usr/bin/python3", "float32", 2.0**-11),
        ("ort:cuda?use_tf32=1", "float16", None),
        ("ort:cuda?use_tf32=0", "float32", None),
        ("ort:cuda", "float32", None),
        ("ort:cpu?use_tf32=1", "float32", None),
        ("openvino?INFERENCE_PRECISION_HINT=bf16", "float32", 2.0**-8),
        ("openvino:CPU?INFERENCE_PRECISION_HINT=f16", "float32", 2.0**-11),
        ("openvino", "float32", None),
        ("py:fake_runtimes:make?use_tf32=1", "float32", None),
        ("py:misbehaving_runtimes:make?mode=loose-roundoff", "float32", None),
    ],
)
def test_only_the_spec_declares_a_looser_unit_roundoff(spec, dtype, u):
    assert declared_unit_roundoff(spec, dtype) == u
