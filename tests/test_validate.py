"""The validator catches what it must: fake runtimes that are wrong in known ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from opref import cases as cs
from opref import codec as cx
from opref import vectors as vx
from opref.cases import VARIANTS
from opref.expectations import parse_expected
from opref.runtimes import RuntimeSpecError, Status, check
from opref.runtimes.ort import OrtAdapter
from opref.validate import select_cases, summary_lines, validate

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors"
FAKE = "py:fake_runtimes:make"


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A small suite: exact and random data, an ambiguity, must-reject cases, bias."""
    out = tmp_path_factory.mktemp("suite") / "v"
    picks = [
        "seed_*",
        "onnx_convtranspose_output_shape",
        "rank2_s2_p1_bias_float32_*",
        "rank1_s2_float16_*",
        "amb_neg_total_same_upper_float32_exact",
        "amb_same_op_upper_float32_exact",
        "reject_negative_pads",
        "reject_bias_shape",
        "group2_c4_m6_float64_exact",
    ]
    vx.generate(out, cs.catalog(only=picks), {"only": picks})
    return out


def verdicts(result, runtime=None) -> dict[str, str]:
    return {r["case"]: r["verdict"] for r in result.records if runtime in (None, r["runtime"])}


def test_reference_as_runtime_passes_everything(suite):
    res = validate(suite, [FAKE])
    v = verdicts(res)
    assert set(v.values()) == {"pass", "rejected"}, v
    assert v["reject_negative_pads"] == "rejected"
    assert res.exit_code == 0 and not res.unexpected


def test_shifted_pad_is_fail_values_with_the_first_difference(suite):
    res = validate(suite, [f"{FAKE}?mode=shift-pad&only=seed_stride2_pad1"])
    rec = next(r for r in res.records if r["case"] == "seed_stride2_pad1")
    assert rec["verdict"] == "fail-values"
    assert rec["comparison"]["first_mismatch"] == [0, 0, 0, 0]
    assert "expected 0.0, got 2.0" in rec["message"]
    assert "--only seed_stride2_pad1" in rec["reproduce"]
    assert res.exit_code == 1 and res.unexpected == [
        {"case": "seed_stride2_pad1", "runtime": rec["runtime"], "verdict": "fail-values"}
    ]


def test_wrong_dtype_and_wrong_shape(suite):
    res = validate(
        suite, [f"{FAKE}?mode=wrong-dtype&only=seed_basic", f"{FAKE}?mode=wrong-shape&only=seed_basic"]
    )
    by = {(r["runtime"].split("mode=")[1].split("&")[0], r["case"]): r for r in res.records}
    assert by[("wrong-dtype", "seed_basic")]["verdict"] == "fail-values"
    assert "float64" in by[("wrong-dtype", "seed_basic")]["message"]
    assert by[("wrong-shape", "seed_basic")]["verdict"] == "fail-shape"


def test_one_ulp_fails_exact_data_but_passes_random_data(suite):
    res = validate(suite, [f"{FAKE}?mode=one-ulp&only=rank*"])
    v = verdicts(res)
    assert v["rank2_s2_p1_bias_float32_exact"] == "fail-values"
    assert v["rank2_s2_p1_bias_float32_random"] == "pass"
    rec = next(r for r in res.records if r["case"] == "rank2_s2_p1_bias_float32_random")
    assert rec["comparison"]["max_ulp"] == 1 and 0 < rec["comparison"]["max_bound_fraction"] <= 1


def test_missing_bias_is_caught_on_random_data(suite):
    res = validate(suite, [f"{FAKE}?mode=drop-bias&only=rank2_s2_p1_bias_float32_random"])
    assert verdicts(res)["rank2_s2_p1_bias_float32_random"] == "fail-values"


def test_crash_and_hang_are_isolated(suite):
    res = validate(
        suite,
        [f"{FAKE}?mode=crash&only=seed_basic", f"{FAKE}?mode=hang&only=seed_stride2"],
        timeout=10,  # for the case that never answers; the others answer in milliseconds
        jobs=2,
    )
    crash = verdicts(res, f"{FAKE}?mode=crash&only=seed_basic")
    hang = verdicts(res, f"{FAKE}?mode=hang&only=seed_stride2")
    assert crash.pop("seed_basic") == "crashed" and hang.pop("seed_stride2") == "timeout"
    assert set(crash.values()) == set(hang.values()) == {"pass", "rejected"}
    rec = next(r for r in res.records if r["verdict"] == "crashed")
    assert "SIGABRT" in rec["message"]
    assert res.exit_code == 1  # crashed is normative, and so is a case that never answered
    assert {u["verdict"] for u in res.unexpected} == {"crashed", "timeout"}


def test_accepting_invalid_models(suite):
    res = validate(suite, [f"{FAKE}?mode=accept-all"])
    v = verdicts(res)
    assert v["reject_negative_pads"] == v["reject_bias_shape"] == "accepted-invalid"


def test_other_reading_is_a_divergence_naming_it(suite):
    res = validate(suite, [f"{FAKE}?reading.negative-total-padding=clamp"])
    rec = next(r for r in res.records if r["case"] == "amb_neg_total_same_upper_float32_exact")
    assert rec["verdict"] == "divergence"
    assert rec["reading"] == {"negative-total-padding": "clamp"}
    assert "'clamp' for negative-total-padding" in rec["message"]
    assert res.exit_code == 0
    passing = next(r for r in res.records if r["case"] == "amb_same_op_upper_float32_exact")
    assert passing["verdict"] == "pass" and passing["reading"] == {"same-with-output-padding": "in-total"}


def test_unsupported_fallback_and_unavailable_are_not_passes(suite):
    res = validate(suite, [f"{FAKE}?mode=unsupported", f"{FAKE}?mode=fallback", f"{FAKE}?mode=unavailable"])
    counts = Counter((r["runtime"].split("=")[1], r["verdict"]) for r in res.records)
    assert counts[("unsupported", "pass")] == counts[("fallback", "pass")] == 0
    assert counts[("unsupported", "unsupported")] > 0 and counts[("fallback", "fallback")] > 0
    unavailable = next(rt for rt in res.runtimes if rt["spec"].endswith("unavailable"))
    assert not unavailable["available"] and "libfake.so" in unavailable["reason"]
    assert not [r for r in res.records if r["runtime"].endswith("unavailable")]
    assert res.exit_code == 1  # a runtime asked for by name that cannot run is no green build
    tolerant = validate(suite, [f"{FAKE}?mode=unavailable"], allow_unavailable=True)
    assert tolerant.exit_code == 0 and tolerant.unavailable


def test_expected_file_turns_known_failures_into_exit_0(suite):
    spec = f"{FAKE}?mode=shift-pad&only=seed_*"
    expected = parse_expected(f"{spec} seed_* fail-values # known pad bug, upstream #1\n\n")
    res = validate(suite, [spec], expected=expected)
    assert res.exit_code == 0 and all(
        "expected_by" in r for r in res.records if r["verdict"] == "fail-values"
    )
    lines = parse_expected(
        f"{FAKE} seed_basic crashed # fixed long ago\n"
        "ort:cuda seed_basic crashed # a runtime this run did not validate (or a misspelt one)\n"
        f"{FAKE} nothing_* crashed # no such case in the suite\n"
        f"{FAKE} seed_* crashed # names cases of the suite, not of this run (--only)\n"
    )
    res = validate(suite, [FAKE], expected=lines, only=["reject_*"])
    assert [e["line"] for e in res.stale_expectations] == [2, 3] and res.exit_code == 0
    assert [e["why"] for e in res.stale_expectations] == [
        "matches no runtime of this run",
        "matches no case of the suite",
    ]
    res = validate(suite, [FAKE], expected=lines)
    assert [(e["line"], e["why"]) for e in res.stale_expectations] == [
        (1, "now passes"),
        (2, "matches no runtime of this run"),
        (3, "matches no case of the suite"),
        (4, "now passes"),
    ]
    lines = summary_lines(res)
    assert "STALE expectation (line 3): " in "\n".join(lines) and "matches no case of the suite" in "\n".join(
        lines
    )
    assert any(
        line.startswith("STALE expectations: 1 lines match no runtime of this run (lines 2)")
        for line in lines
    )


def test_expected_file_errors_name_the_line():
    with pytest.raises(ValueError, match=r"known.txt:2: unknown verdict 'broken'"):
        parse_expected("ort:cpu a* pass\nort:cpu b* broken\n", "known.txt")
    with pytest.raises(ValueError, match=r"known.txt:1: expected"):
        parse_expected("ort:cpu onlytwo\n", "known.txt")


def test_shards_partition_the_suite():
    names = [f"c{i}" for i in range(10)]
    parts = [select_cases(names, None, (i, 3)) for i in (1, 2, 3)]
    assert sorted(n for part in parts for n in part) == sorted(names) and all(parts)
    assert select_cases(names, ["c1*"], None) == ["c1"]


def test_tampered_file_is_named_and_the_case_not_run(suite, tmp_path):
    import shutil

    copy = tmp_path / "v"
    shutil.copytree(suite, copy)
    target = copy / "node" / "seed_basic" / cx.DATA_SET / "output_0.pb"
    target.write_bytes(target.read_bytes()[:-1] + b"\x01")
    (copy / "node" / "seed_basic" / "extra.txt").write_text("x")
    res = validate(copy, [FAKE])
    assert (
        "seed_basic" in res.case_problems and "output_0.pb: sha256 differs" in res.case_problems["seed_basic"]
    )
    assert any("extra.txt" in p for p in res.suite_problems)
    assert "seed_basic" not in verdicts(res) and res.exit_code == 1


def test_cuda_on_this_machine_is_never_a_pass():
    res = validate(VECTORS, ["ort:cuda"], only=["seed_*"])
    rt = res.runtimes[0]
    v = set(verdicts(res).values())
    # Without a GPU: unavailable. With one: a real run, where fallback is possible, never silent.
    assert (not rt["available"] and rt["reason"] and not v) or rt["available"], rt
    if not rt["available"]:
        assert "CUDAExecutionProvider" in rt["reason"]


def test_onnx_reference_group_bug_is_exposed():
    res = validate(
        VECTORS,
        ["onnx-reference"],
        only=[
            "group2_c4_m6_float32_exact",
            "group3_depthwise_float32_exact",
            "autopad_output_shape_ignores_pads_float32_exact",
        ],
    )
    v = verdicts(res)
    assert v["group2_c4_m6_float32_exact"] in ("fail-values", "error")
    assert v["group3_depthwise_float32_exact"] in ("fail-values", "error")
    assert v["autopad_output_shape_ignores_pads_float32_exact"] == "fail-values"


def test_onnxruntime_cpu_on_its_documented_behaviour():
    res = validate(
        VECTORS,
        ["ort:cpu"],
        only=[
            "onnx_*",
            "seed_*",
            "rank1_basic_float64_exact",
            "amb_neg_total_same_upper_float32_exact",
            "reject_*",
        ],
    )
    v = verdicts(res)
    assert all(v[n] == "pass" for n in v if n.startswith(("onnx_", "seed_")))
    assert v["rank1_basic_float64_exact"] == "unsupported"  # no float64 kernel: not a failure
    assert all(v[n] == "rejected" for n in v if n.startswith("reject_"))
    rec = next(r for r in res.records if r["case"] == "amb_neg_total_same_upper_float32_exact")
    assert rec["verdict"] == "divergence" and rec["reading"] == {"negative-total-padding": "clamp"}


# --- the onnxruntime adapter's no-silent-fallback logic, with a stand-in onnxruntime module ---


def _fake_ort(session_providers, raise_on_create=None, profile=None, tmp_path=None):
    class Session:
        def __init__(self, model, so=None, providers=None):
            if raise_on_create and so is not None and getattr(so, "fallback_disabled", False):
                raise type("Fail", (Exception,), {})(raise_on_create)
            self._providers = session_providers

        def get_providers(self):
            return self._providers

        def run(self, _, inputs):
            return [np.zeros((1, 1, 5), np.float32)]

        def end_profiling(self):
            path = tmp_path / "profile.json"
            path.write_text(json.dumps(profile or []))
            return str(path)

    class SessionOptions:
        log_severity_level = 0
        enable_profiling = False
        profile_file_prefix = ""

        def add_session_config_entry(self, key, value):
            if key == "session.disable_cpu_ep_fallback" and value == "1":
                self.fallback_disabled = True

    return types.SimpleNamespace(
        __version__="9.9",
        get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        get_device=lambda: "GPU",
        InferenceSession=Session,
        SessionOptions=SessionOptions,
    )


def _adapter_with(monkeypatch, fake):
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    return OrtAdapter("ort:cuda", "cuda", {})


def test_gpu_build_without_a_gpu_is_unavailable(monkeypatch, tmp_path):
    # onnxruntime-gpu lists CUDA, then quietly builds the session on CPU.
    adapter = _adapter_with(monkeypatch, _fake_ort(["CPUExecutionProvider"], tmp_path=tmp_path))
    info = adapter.info()
    assert not info.available and "could not be created" in info.reason
    assert adapter.options["use_tf32"] == "0"


def test_node_refused_by_provider_is_fallback(monkeypatch, tmp_path):
    fake = _fake_ort(
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        raise_on_create="nodes assigned to the default CPU EP, but fallback to CPU EP has been "
        "explicitly disabled by the user",
        tmp_path=tmp_path,
    )
    adapter = _adapter_with(monkeypatch, fake)
    assert adapter.info().available
    assert adapter.run(b"", {}).status is Status.FALLBACK


def test_placement_comes_from_the_profile(monkeypatch, tmp_path):
    node = {
        "cat": "Node",
        "name": "n",
        "args": {"op_name": "ConvTranspose", "provider": "CPUExecutionProvider"},
    }
    adapter = _adapter_with(
        monkeypatch, _fake_ort(["CUDAExecutionProvider"], profile=[node], tmp_path=tmp_path)
    )
    out = adapter.run(b"", {})
    assert out.status is Status.FALLBACK and out.placement == "CPUExecutionProvider"
    node["args"]["provider"] = "CUDAExecutionProvider"
    adapter = _adapter_with(
        monkeypatch, _fake_ort(["CUDAExecutionProvider"], profile=[node], tmp_path=tmp_path)
    )
    out = adapter.run(b"", {})
    assert out.status is Status.OK and out.placement == "CUDAExecutionProvider"


def test_tf32_switches_the_unit_roundoff(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", _fake_ort(["CUDAExecutionProvider"], tmp_path=tmp_path))
    assert OrtAdapter("ort:cuda?use_tf32=1", "cuda", {"use_tf32": "1"}).unit_roundoff("float32") == 2.0**-11
    assert OrtAdapter("ort:cuda", "cuda", {}).unit_roundoff("float32") is None


def test_cli_validate_writes_results_and_exit_codes(suite, tmp_path):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "opref", "validate", str(suite), *args],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        )

    res = cli("--runtime", "ort:cpu", "--out", str(tmp_path / "r"), "--jobs", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert {r["runtime"] for r in data["records"]} == {"ort:cpu"}
    assert all(r["runtime_version"] and r["reproduce"].startswith("opref validate") for r in data["records"])
    res = cli("--runtime", f"{FAKE}?mode=shift-pad", "--out", str(tmp_path / "r2"))
    assert res.returncode == 1 and "UNEXPECTED fail-values" in res.stdout
    assert cli("--runtime", "bogus", "--out", str(tmp_path / "r3")).returncode == 2
    assert cli("--shard", "3/2", "--out", str(tmp_path / "r3")).returncode == 2


def test_openvino_adapter_when_installed():
    pytest.importorskip("openvino", reason="the 'openvino' extra is not installed")
    res = validate(
        VECTORS,
        ["openvino"],
        only=["seed_*", "rank1_basic_bfloat16_exact", "rank4_s2_float32_exact", "reject_group_zero"],
    )
    v = verdicts(res)
    # The one-node seed cases (OpenVINO fails seed_stride2_pad1__pad-fused: spec notes section 4).
    forms = tuple("__" + name for name, form in VARIANTS.items() if form.wrapped)
    assert all(v[n] == "pass" for n in v if n.startswith("seed_") and not n.endswith(forms))
    assert v["rank1_basic_bfloat16_exact"] == "pass"  # bfloat16 output bits reinterpreted, not float16
    assert v["rank4_s2_float32_exact"] == "unsupported"  # 4 spatial axes: OpenVINO cannot convert it
    assert v["reject_group_zero"] == "accepted-invalid"  # measured: it accepts group = 0


# --- runtimes in another interpreter (issue 7) ---------------------------------------------


def test_fake_runtime_in_a_second_interpreter(suite):
    spec = f"{FAKE}?mode=shift-pad&only=seed_basic@{sys.executable}"
    res = validate(suite, [spec, FAKE])
    v = verdicts(res, spec)
    assert v["seed_basic"] == "fail-values" and v["seed_stride2"] == "pass"
    assert res.runtimes[0]["spec"] == spec and res.runtimes[0]["available"]


def test_another_interpreter_gets_none_of_our_site_packages():
    from opref.pool import worker_path as _worker_path

    entries = _worker_path("/elsewhere/bin/python").split(os.pathsep)
    assert entries[0] == str(ROOT)
    assert str(Path(__file__).parent) in entries  # where py:fake_runtimes lives
    assert not [e for e in entries if "-packages" in e]
    assert any("-packages" in e for e in _worker_path(None).split(os.pathsep))


def test_missing_interpreter_is_unavailable(suite):
    res = validate(suite, [f"ort:cpu@{suite}/no/such/python"])
    rt = res.runtimes[0]
    assert not rt["available"] and "cannot start" in rt["reason"] and not res.records


def test_the_parent_never_imports_a_runtime(suite):
    code = (
        "import sys; from opref.validate import validate; "
        f"r = validate({str(suite)!r}, ['ort:cpu', 'onnx-reference'], only=['seed_basic']); "
        "assert [x['verdict'] for x in r.records] == ['pass', 'pass'], r.records; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'openvino')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


OPENVINO_ENV = ROOT / ".venvs" / "ort-openvino" / "bin" / "python"


@pytest.mark.skipif(not OPENVINO_ENV.is_file(), reason="run scripts/make-envs to build .venvs/ort-openvino")
def test_onnxruntime_openvino_provider_for_real():
    spec = f"ort:openvino@{OPENVINO_ENV}"
    res = validate(
        VECTORS,
        [spec],
        only=["seed_*", "rank2_basic_float64_exact", "autopad_notset_output_shape_odd_float32_exact"],
    )
    by = {r["case"]: r for r in res.records}
    assert (
        res.runtimes[0]["version"] and res.runtimes[0]["details"]["provider"] == "OpenVINOExecutionProvider"
    )
    for name in ("seed_basic", "seed_stride2_pad1", "seed_two_channels"):
        assert by[name]["verdict"] == "pass" and by[name]["placement"] == "OpenVINOExecutionProvider", by[
            name
        ]
    assert by["rank2_basic_float64_exact"]["verdict"] == "fallback"  # the provider does not take float64
    assert (
        by["autopad_notset_output_shape_odd_float32_exact"]["verdict"] == "fail-values"
    )  # measured divergence


def test_graph_optimization_level_is_validated_like_the_other_options():
    check("ort:cpu?graph_optimization_level=extended")
    with pytest.raises(RuntimeSpecError, match="graph_optimization_level"):
        check("ort:cpu?graph_optimization_level=fast")


