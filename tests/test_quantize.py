"""quantize_static in the loop (issue 24): what the quantizer chose becomes qdq cases; its crashes
are tool failures, never runtime verdicts. Expected values: the issue's measured crash (per channel,
group > 1, M/group > 1, with bias) and opref's recompute of each written case."""

from __future__ import annotations

import importlib.util

import pytest

from opref import cases as cs
from opref import suite as sx
from opref import vectors as vx
from opref.validate import validate


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime")
def test_quantize_static_results_become_qdq_cases_and_its_crashes_tool_failures(tmp_path):
    from opref.quantize import quantized_cases

    picks = cs.catalog(only=["rank2_s2_p1_bias_float32_exact", "group2_c4_m6_float32_exact"])
    cases, failures, _ = quantized_cases(picks)
    # Per-channel, group > 1, M/group > 1, with bias: the quantizer raises (issue 24).
    assert [(f.case, f.mode) for f in failures] == [("group2_c4_m6_float32_exact", "per-channel")]
    assert "quantize_static raised" in failures[0].message
    names = sorted(c.name for c in cases)
    assert names == [
        "group2_c4_m6_float32_exact_static_pt__qdq",
        "rank2_s2_p1_bias_float32_exact_static_pc__qdq",
        "rank2_s2_p1_bias_float32_exact_static_pt__qdq",
    ]
    vx.generate(tmp_path / "q", cases, {"variants": ["qdq"]})
    assert sx.recompute(tmp_path / "q", sx.read_manifest(tmp_path / "q").records.values()) == {}
    res = validate(tmp_path / "q", ["ort:cpu"])
    assert {r["verdict"] for r in res.records} == {"pass"}, res.records
