"""scripts/gpu-check without a GPU: argument handling, environment discovery, the no-GPU path,
the constant-weights variant, and the summary built from recorded results (issue 18).

The end-to-end tests install a stand-in for onnxruntime-gpu (a wheel built here, its module
written below) exactly as the script installs the real one, so the wheel, wrapper, validation,
report and summary steps all run; the stand-in answers as onnxruntime does: without a GPU it logs
a coloured library-load error and gives a CPU session, with ``FAKE_ORT_GPU=present`` it computes
with opref's reference and refuses the nodes onnxruntime's CUDA provider sends to CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from opref import gpu as gc

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = ROOT / "scripts" / "gpu-check"
WHEEL_NAME = "onnxruntime_gpu-1.31.1-{tag}-{tag}-manylinux_2_28_x86_64.whl"
TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"

# What onnxruntime-gpu 1.31.1 printed here without a GPU (colour codes included), as measured.
ORT_LOAD_ERROR = (
    "\x1b[1;31m2026-11-27 02:50:01.123456 [E:onnxruntime:Default, provider_bridge_ort.cc:2251 "
    "TryGetProviderInfo_CUDA] /onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1844 "
    "onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : "
    "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: "
    "cannot open shared object file: No such file or directory\x1b[m"
)


# --- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--jobs", "0"], "expected a positive integer, got '0'"),
        (["--budget", "-5"], "expected a positive number, got '-5'"),
        (["--wheels", "/nonexistent/wheels"], "--wheels /nonexistent/wheels: not a directory"),
        (["--config", "ort:rocm"], "invalid choice: 'ort:rocm'"),
        (["--vectors", "/nonexistent"], "no manifest.json"),
        (["--expected", "/nonexistent/known.txt"], "no such file"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        gc.parse_args(argv)
    assert exc.value.code == 2, argv
    assert message in capsys.readouterr().err, argv


def test_defaults():
    args = gc.parse_args([])
    assert args.python == sys.executable
    assert Path(args.vectors) == ROOT / "vectors"
    assert Path(args.expected) == ROOT / "known-failures.txt"
    assert args.budget == 480.0 and args.jobs >= 1 and args.config is None and not args.no_index


def test_configurations_are_the_issues_five():
    assert [c.spec for c in gc.CONFIGURATIONS] == [
        "ort:cuda",
        "ort:cuda?use_tf32=1",
        "ort:cuda?prefer_nhwc=1",
        "ort:cpu",
        "ort:tensorrt",
    ]
    assert [c.spec for c in gc.CONFIGURATIONS if not c.required] == ["ort:tensorrt"]
    assert [c.spec for c in gc.CONFIGURATIONS if c.constant_weights] == ["ort:cuda?prefer_nhwc=1"]
    assert len({c.slug for c in gc.CONFIGURATIONS}) == 5


def test_help_exits_0():
    res = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert "--wheels DIR" in res.stdout and "Exit 0" in res.stdout


# --- environment discovery -----------------------------------------------------------------


def test_strip_ansi_leaves_the_text():
    plain = gc.strip_ansi(ORT_LOAD_ERROR)
    assert "\x1b" not in plain
    assert plain.startswith("2026-11-27 02:50:01.123456 [E:onnxruntime:Default")
    assert plain.endswith("libcublasLt.so.13: cannot open shared object file: No such file or directory")


def _fake_exe(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def test_find_gpus_reads_nvidia_smi(tmp_path):
    exe = _fake_exe(
        tmp_path / "nvidia-smi",
        """\
        if [ "$1" = "--query-gpu=name,driver_version,memory.total" ]; then
          echo "NVIDIA H100 80GB HBM3, 580.95.05, 81559 MiB"
          exit 0
        fi
        echo "| NVIDIA-SMI 580.95.05    Driver Version: 580.95.05    CUDA Version: 13.0     |"
        """,
    )
    facts = gc.find_gpus(exe)
    assert facts.gpus == (gc.Gpu("NVIDIA H100 80GB HBM3", "580.95.05", "81559 MiB"),)
    assert facts.cuda_driver == "13.0" and facts.problem == ""
    assert facts.slug == "nvidia-h100-80gb-hbm3"


def test_find_gpus_without_a_driver(tmp_path):
    exe = _fake_exe(
        tmp_path / "nvidia-smi",
        """\
        echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        exit 9
        """,
    )
    facts = gc.find_gpus(exe)
    assert facts.gpus == () and facts.slug == "no-gpu"
    assert "couldn't communicate with the NVIDIA driver" in facts.problem
    assert "not on PATH" in gc.find_gpus(None).problem or shutil.which("nvidia-smi")


def _zip_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("onnxruntime/__init__.py", "x = 1\n" * 5000)
    return path.read_bytes()


def test_wheel_parts_are_found_and_joined_in_name_order(tmp_path):
    data = _zip_bytes(tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    name = WHEEL_NAME.format(tag="cp312")
    third = len(data) // 3
    # Written out of order: the name order (aa, ab, ac) is the order that counts.
    (wheels / f"{name}.part-ac").write_bytes(data[2 * third :])
    (wheels / f"{name}.part-aa").write_bytes(data[:third])
    (wheels / f"{name}.part-ab").write_bytes(data[third : 2 * third])
    (wheels / "onnxruntime-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl").write_bytes(data)  # CPU build
    (wheels / "README.txt").write_text("not a wheel")
    found = gc.find_wheels(wheels)
    assert [p.name[-7:] for p in found[name]] == ["part-aa", "part-ab", "part-ac"]
    assert gc.pick_wheel(found, "cp312") == name
    with pytest.raises(ValueError, match="no onnxruntime_gpu wheel for cp311"):
        gc.pick_wheel(found, "cp311")
    joined = gc.assemble_wheel(found[name], tmp_path / "out" / name)
    assert joined.read_bytes() == data


def test_a_truncated_wheel_is_refused(tmp_path):
    data = _zip_bytes(tmp_path)
    part = tmp_path / "w.whl.part-aa"
    part.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="do not make a zip file"):
        gc.assemble_wheel([part], tmp_path / "out" / "w.whl")
    assert not (tmp_path / "out" / "w.whl").exists()


def test_library_dirs_are_nvidia_package_lib_folders(tmp_path):
    site = tmp_path / "site-packages"
    for d, lib in [
        ("nvidia/cu13/lib", "libcublasLt.so.13"),
        ("nvidia/cudnn/lib", "libcudnn.so.9"),
        ("nvidia/nccl/lib", "libnccl.so.2"),
        ("tensorrt_libs", "libnvinfer.so.10"),
    ]:
        (site / d).mkdir(parents=True)
        (site / d / lib).write_bytes(b"")
    (site / "nvidia" / "empty" / "lib").mkdir(parents=True)  # no library: left out
    (site / "torch" / "lib").mkdir(parents=True)
    found = gc.library_dirs([site, tmp_path / "missing"])
    assert found == [
        str((site / d).resolve())
        for d in ("nvidia/cu13/lib", "nvidia/cudnn/lib", "nvidia/nccl/lib", "tensorrt_libs")
    ]


def test_wrapper_runs_the_interpreter_with_paths_first(tmp_path):
    wrapper = gc.write_wrapper(
        tmp_path / "env" / "python", sys.executable, ["/x/site"], ["/x/lib1", "/x/lib 2"]
    )
    env = {**os.environ, "LD_LIBRARY_PATH": "/old", "PYTHONPATH": "/oldpy"}
    res = subprocess.run(
        [str(wrapper), "-c", "import os, sys; print(os.environ['LD_LIBRARY_PATH']); print(sys.path[1:3])"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    lines = res.stdout.splitlines()
    assert lines[0] == "/x/lib1:/x/lib 2:/old"
    assert lines[1] == "['/x/site', '/oldpy']"


def test_probe_reports_a_cpu_only_onnxruntime():
    import onnxruntime

    info = gc.probe(sys.executable)
    assert info["version"] == onnxruntime.__version__
    assert info["providers"] == onnxruntime.get_available_providers()


@pytest.mark.parametrize(
    "fn, value, text",
    [
        (gc.cuda_version_text, 13000, "13.0"),
        (gc.cuda_version_text, 12080, "12.8"),
        (gc.cudnn_version_text, 91300, "9.13.0"),
        (gc.cudnn_version_text, 90100, "9.1.0"),
        (gc.cudnn_version_text, 8907, "8.9.7"),
    ],
)
def test_library_version_numbers(fn, value, text):
    # cudaRuntimeGetVersion: 1000*major + 10*minor; cudnnGetVersion (cuDNN 9): 10000*major +
    # 100*minor + patch, (cuDNN 8) 1000*major + 100*minor + patch -- NVIDIA's documentation.
    assert fn(value) == text


# --- placement truth ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes, reason",
    [
        ({}, ""),
        ({"pads": [1, 2, 1, 2], "strides": [3, 2]}, ""),
        ({"pads": [0, 1, 2, 0]}, "asymmetric pads [0, 1, 2, 0]"),
        ({"pads": [2, 0]}, "asymmetric pads [2, 0]"),
        ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, "auto_pad SAME_UPPER"),
        ({"auto_pad": "SAME_LOWER", "output_shape": [5]}, "auto_pad SAME_LOWER"),
        ({"auto_pad": "VALID"}, ""),
        ({"auto_pad": "NOTSET", "output_shape": [10, 8]}, ""),
        # Written pads count even where output_shape makes them irrelevant.
        ({"pads": [0, 1], "output_shape": [7]}, "asymmetric pads [0, 1]"),
    ],
)
def test_cpu_fallback_rule(attributes, reason):
    assert gc.cpu_fallback_reason(attributes) == reason


# --- the summary from recorded results ---------------------------------------------------


def _record(case, runtime, verdict, attributes=None, *, placement="", cmp=None, dtype="float32", **extra):
    return {
        "case": case,
        "runtime": runtime,
        "verdict": verdict,
        "attributes": attributes or {},
        "dtype": dtype,
        "opset": 22,
        "expect": extra.pop("expect", "output"),
        "placement": placement,
        "comparison": cmp,
        "message": "",
        "reading": extra.pop("reading", None),
        **extra,
    }


def _cmp(fraction, abs_error, bitexact=False):
    return {
        "bitexact_required": bitexact,
        "max_bound_fraction": fraction,
        "max_abs_error": abs_error,
        "ok": True,
    }


def _results(spec, records, *, available=True, reason="", unexpected=(), complete=None):
    data = {
        "runtimes": [
            {
                "spec": spec,
                "name": "onnxruntime",
                "version": "1.31.1",
                "available": available,
                "reason": reason,
            }
        ],
        "records": records,
        "unexpected": [{"case": c, "runtime": spec, "verdict": v} for c, v in unexpected],
        "suite_problems": [],
        "case_problems": {},
    }
    if complete is not None:
        data["complete"] = complete
    return data


CUDA = "ort:cuda@/env/python"
TF32 = "ort:cuda?use_tf32=1@/env/python"
NHWC = "ort:cuda?prefer_nhwc=1@/env/python"
CPU = "ort:cpu@/env/python"
TRT = "ort:tensorrt@/env/python"
SAME = {"auto_pad": "SAME_UPPER", "strides": [2, 2]}
ASYM = {"pads": [0, 1, 2, 0]}
P_CUDA, P_CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def synthetic() -> dict[str, dict]:
    """Recorded results as a GPU run writes them: five cases, five configurations."""
    cpu = [
        _record("a_plain", CPU, "pass", placement=P_CPU, cmp=_cmp(0.0, 0.0, True)),
        _record("b_random", CPU, "pass", placement=P_CPU, cmp=_cmp(0.02, 1e-6)),
        _record("c_same", CPU, "pass", SAME, placement=P_CPU),
        _record("d_asym", CPU, "pass", ASYM, placement=P_CPU),
        _record("e_double", CPU, "unsupported", dtype="float64"),
        _record("f_amb", CPU, "divergence", reading={"negative-total-padding": "clamp"}, placement=P_CPU),
    ]
    cuda = [
        _record("a_plain", CUDA, "pass", placement=P_CUDA, cmp=_cmp(0.0, 0.0, True)),
        _record("b_random", CUDA, "pass", placement=P_CUDA, cmp=_cmp(0.05, 2e-6)),
        _record("c_same", CUDA, "fallback", SAME),
        _record("d_asym", CUDA, "fallback", ASYM),
        _record("e_double", CUDA, "pass", dtype="float64", placement=P_CUDA, cmp=_cmp(0.5, 1e-15)),
        _record("f_amb", CUDA, "divergence", reading={"negative-total-padding": "clamp"}, placement=P_CUDA),
    ]
    tf32 = [
        _record("a_plain", TF32, "pass", placement=P_CUDA, cmp=_cmp(0.0, 0.0, True)),
        _record("b_random", TF32, "pass", placement=P_CUDA, cmp=_cmp(0.25, 4e-4)),
        _record("c_same", TF32, "fallback", SAME),
        _record("d_asym", TF32, "fallback", ASYM),
        _record("e_double", TF32, "pass", dtype="float64", placement=P_CUDA, cmp=_cmp(0.5, 1e-15)),
        _record("f_amb", TF32, "divergence", reading={"negative-total-padding": "clamp"}, placement=P_CUDA),
    ]
    nhwc = [
        _record("a_plain", NHWC, "fail-values", placement=P_CUDA, cmp=_cmp(float("inf"), 1.0, True)),
        _record("b_random", NHWC, "pass", placement=P_CUDA, cmp=_cmp(0.125, 3e-6)),
        _record("c_same", NHWC, "fallback", SAME),
        _record("d_asym", NHWC, "pass", ASYM, placement=P_CUDA),  # a placement-truth violation
        _record("e_double", NHWC, "fallback", dtype="float64"),  # outside the rule: informational
        _record("f_amb", NHWC, "divergence", reading={"negative-total-padding": "clamp"}, placement=P_CUDA),
    ]
    return {
        "ort:cpu": _results(CPU, cpu),
        "ort:cuda": _results(CUDA, cuda),
        "ort:cuda?use_tf32=1": _results(TF32, tf32),
        "ort:cuda?prefer_nhwc=1": _results(NHWC, nhwc, unexpected=[("a_plain", "fail-values")]),
        "ort:tensorrt": _results(
            TRT, [], available=False, reason="\x1b[1;31mlibnvinfer.so.10: cannot open\x1b[m"
        ),
    }


def test_summary_counts_and_fractions():
    s = gc.summarize(synthetic())
    cpu, cuda, tf32 = s.config("ort:cpu"), s.config("ort:cuda"), s.config("ort:cuda?use_tf32=1")
    assert cpu.counts == {"pass": 4, "unsupported": 1, "divergence": 1}
    assert cuda.counts == {"pass": 3, "fallback": 2, "divergence": 1}
    assert s.fallback_count("ort:cuda") == 2 and s.fallback_count("ort:cuda?prefer_nhwc=1") == 2
    # Only float32 random-data cases count: b_random (exact and float64 cases are left out).
    assert (cuda.max_bound_fraction, cuda.max_abs_error) == (0.05, 2e-6)
    assert (tf32.max_bound_fraction, tf32.max_abs_error) == (0.25, 4e-4)
    trt = s.config("ort:tensorrt")
    assert not trt.available and trt.reason == "libnvinfer.so.10: cannot open"
    assert all(c.complete for c in s.configs if c.available)


def test_summary_placement_truth_and_differences():
    s = gc.summarize(synthetic())
    assert [(p.case, p.reason) for p in s.placement] == [
        ("c_same", "auto_pad SAME_UPPER"),
        ("d_asym", "asymmetric pads [0, 1, 2, 0]"),
    ]
    assert [p.violations for p in s.placement] == [(), ("ort:cuda?prefer_nhwc=1",)]
    assert s.unexpected_fallback["ort:cuda?prefer_nhwc=1"] == ("e_double",)
    assert s.unexpected_fallback["ort:cuda"] == ()
    # Fallback cells are left out (placement truth covers them); a float64 case CPU has no kernel for
    # but CUDA runs differs, and so does NHWC's wrong value.
    assert [(d.case, d.configuration, d.cpu, d.gpu) for d in s.differences] == [
        ("e_double", "ort:cuda", "unsupported", "pass"),
        ("e_double", "ort:cuda?use_tf32=1", "unsupported", "pass"),
        ("a_plain", "ort:cuda?prefer_nhwc=1", "pass", "fail-values"),
    ]
    assert s.placement_by_case["c_same"] == {
        "ort:cpu": P_CPU,
        "ort:cuda": "fallback",
        "ort:cuda?use_tf32=1": "fallback",
        "ort:cuda?prefer_nhwc=1": "fallback",
    }


def test_summary_exit_code_and_problems():
    s = gc.summarize(synthetic())
    assert s.exit_code == 1
    assert s.problems == [
        "ort:cuda?prefer_nhwc=1: 1 unexpected normative failures",
        "ort:cuda?prefer_nhwc=1: d_asym must fall back to CPU (asymmetric pads [0, 1, 2, 0]) "
        "but came out pass",
    ]
    good = synthetic()
    good["ort:cuda?prefer_nhwc=1"] = _results(
        NHWC, [r | {"runtime": NHWC} for r in good["ort:cuda"]["records"]]
    )
    assert gc.summarize(good).problems == [] and gc.summarize(good).exit_code == 0


def test_unavailable_or_incomplete_required_configuration_fails():
    res = synthetic()
    res["ort:cuda"] = _results(CUDA, [], available=False, reason="libcublasLt.so.13: cannot open")
    res["ort:cpu"]["complete"] = False
    s = gc.summarize(res, notes={})
    assert s.problems[0] == "ort:cuda: unavailable: libcublasLt.so.13: cannot open"
    assert "ort:cpu: incomplete: results.json says the run is not complete" in s.problems
    s = gc.summarize({}, notes={"ort:cuda": "stopped at the time budget after 470 s"})
    assert "ort:cuda: did not run (stopped at the time budget after 470 s)" in s.problems


def test_summary_table_and_markdown():
    s = gc.summarize(synthetic())
    lines = gc.summary_lines(s)
    header = lines[0].split()
    assert header[:2] == ["configuration", "status"]
    assert header[2:-4] == ["pass", "divergence", "fallback", "unsupported", "fail-values"]
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[1:6]}
    assert list(rows) == [
        "ort:cpu",
        "ort:cuda",
        "ort:cuda?use_tf32=1",
        "ort:cuda?prefer_nhwc=1",
        "ort:tensorrt",
    ]
    assert rows["ort:cuda"] == ["ran", "3", "1", "2", "0", "0", "0", "0.05"]
    assert rows["ort:cuda?use_tf32=1"][-1] == "0.25"
    assert rows["ort:tensorrt"][0] == "unavailable"
    text = "\n".join(lines)
    assert (
        "TF32 max error / bound (float32 random data): off 0.05 of the fp32 bound, on 0.25 of the TF32 bound"
        in text
    )
    assert (
        "placement truth: 2 cases with asymmetric pads or SAME_* auto_pad must come out fallback "
        "on CUDA: 1 do not" in text
    )
    assert "CUDA vs CPU: 3 (case, configuration) pairs differ" in text
    assert lines[-1] == "gpu-check: FAILED (exit 1)"
    md = gc.markdown(s, {"gpus": "none"})
    assert "| d_asym | asymmetric pads [0, 1, 2, 0] | fallback | fallback | pass | VIOLATED |" in md
    assert "| e_double | ort:cuda | unsupported | pass |" in md
    assert "`ort:cuda?prefer_nhwc=1` also refused 1 cases outside that rule: e_double" in md
    assert "\x1b" not in md


# --- the constant-weights variant --------------------------------------------------------


def test_constant_weights_variant_validates_like_the_suite(tmp_path):
    """W and B become initializers; onnxruntime CPU then gives the same verdicts as on the suite."""
    import onnx

    only = [
        "onnx_convtranspose_group_2",
        "rank1_s2_pads_asym_float32_random",
        "amb_opset1_output_shape_odd_*",
    ]
    suite = ROOT / "vectors"
    changed = gc.constant_weights_suite(suite, tmp_path / "cw")
    opset1 = sum(1 for r in json.loads((suite / "manifest.json").read_text())["cases"] if r["opset"] == 1)
    assert opset1 == 12
    records = json.loads((suite / "manifest.json").read_text())["cases"]
    cases = sum(1 for r in records if "form" not in r)  # the forms around ConvTranspose are graphs
    assert changed == cases - opset1  # every one-node model but those of IR version 3 (opset 1)
    model = onnx.load(str(tmp_path / "cw" / "node" / "onnx_convtranspose_group_2" / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["X"]
    assert sorted(t.name for t in model.graph.initializer) == ["W"]
    original = onnx.load(str(suite / "node" / "onnx_convtranspose_group_2" / "model.onnx"))
    w = onnx.load_tensor(
        str(suite / "node" / "onnx_convtranspose_group_2" / "test_data_set_0" / "input_1.pb")
    )
    assert np.array_equal(
        onnx.numpy_helper.to_array(model.graph.initializer[0]), onnx.numpy_helper.to_array(w)
    )
    assert model.graph.node[0] == original.graph.node[0]
    verdicts = {}
    for name, path in (("suite", suite), ("cw", tmp_path / "cw")):
        out = tmp_path / f"out-{name}"
        argv = ["validate", str(path), "--runtime", "ort:cpu", "--out", str(out)]
        for g in only:
            argv += ["--only", g]
        code, _ = gc.run_opref(argv, tmp_path / f"{name}.log", 300)
        assert code == 0, (tmp_path / f"{name}.log").read_text()
        recs = json.loads((out / "results.json").read_text())["records"]
        verdicts[name] = {r["case"]: r["verdict"] for r in recs}
    assert verdicts["cw"] == verdicts["suite"] and len(verdicts["cw"]) == 4


# --- the whole script, without a GPU -----------------------------------------------------


def _script(*argv, env=None, timeout=300):
    return subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def test_no_gpu_here_for_real(tmp_path):
    """This machine: no nvidia-smi and a CPU-only onnxruntime."""
    import onnxruntime

    if shutil.which("nvidia-smi") or "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine may have a GPU")
    res = _script("--env", str(tmp_path / "env"), "--out", str(tmp_path / "out"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "no CUDA GPU here" in res.stdout
    assert "nvidia-smi is not on PATH" in res.stdout
    assert f"its onnxruntime {onnxruntime.__version__} lists" in res.stdout
    assert "give --wheels DIR" in res.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "env").exists()


FAKE_ORT = r'''
"""A stand-in for onnxruntime-gpu (tests/test_gpu_check.py): see that file's docstring."""
import json, os, sys, tempfile
import numpy as np
import onnx
from onnx import helper, numpy_helper

__version__ = "1.31.1"
_PRESENT = os.environ.get("FAKE_ORT_GPU", "") .startswith("present")
_NO_RULE = os.environ.get("FAKE_ORT_GPU", "") == "present-no-fallback-rule"
_ERROR = ("\x1b[1;31m2026-11-27 [E:onnxruntime:Default, provider_bridge_ort.cc:2251] Failed to load library "
          "libonnxruntime_providers_{lib}.so with error: {so}: cannot open shared object file: "
          "No such file or directory\x1b[m\n")


def get_available_providers():
    return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def get_device():
    return "GPU"


class SessionOptions:
    def __init__(self):
        self.log_severity_level = 2
        self.enable_profiling = False
        self.profile_file_prefix = "onnxruntime_profile_"
        self.config = {}

    def add_session_config_entry(self, key, value):
        self.config[key] = value


def _needs_cpu(node):
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    pads = list(attrs.get("pads", []))
    if pads and pads[: len(pads) // 2] != pads[len(pads) // 2 :]:
        return True
    return attrs.get("auto_pad", b"") in (b"SAME_UPPER", b"SAME_LOWER")


class InferenceSession:
    def __init__(self, model, so=None, providers=None):
        so = so or SessionOptions()
        name = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        self._model = onnx.load_from_string(model)
        self._so = so
        if name == "TensorrtExecutionProvider" or (name == "CUDAExecutionProvider" and not _PRESENT):
            trt = name.startswith("Tensorrt")
            lib, so_name = ("tensorrt", "libnvinfer.so.10") if trt else ("cuda", "libcublasLt.so.13")
            os.write(2, _ERROR.format(lib=lib, so=so_name).encode())
            name = "CPUExecutionProvider"
        elif name == "CUDAExecutionProvider" and not _NO_RULE and _needs_cpu(self._model.graph.node[0]):
            if so.config.get("session.disable_cpu_ep_fallback") == "1":
                raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : This session contains graph nodes "
                                   "that are assigned to the default CPU EP, but fallback to CPU EP has "
                                   "been explicitly disabled by the user.")
        self._providers = [name] + ([] if name == "CPUExecutionProvider" else ["CPUExecutionProvider"])

    def get_providers(self):
        return self._providers

    def run(self, outputs, feeds):
        import opref
        node = self._model.graph.node[0]
        values = dict(feeds)
        values.update({t.name: numpy_helper.to_array(t) for t in self._model.graph.initializer})
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        y = opref.conv_transpose(*[values[i] for i in node.input], **attrs,
                                 opset=self._model.opset_import[0].version)
        return [y]

    def end_profiling(self):
        fd, path = tempfile.mkstemp(suffix=".json", prefix=self._so.profile_file_prefix)
        with os.fdopen(fd, "w") as fh:
            json.dump([{"cat": "Node", "name": "n", "args": {"provider": self._providers[0]}}], fh)
        return path
'''

# onnxruntime-gpu 1.31.1's own file, as installed (it names no cuDNN version).
BUILD_INFO = "package_name = 'onnxruntime-gpu'\n__version__ = '1.31.1'\ncuda_version = '13.0'\n"


def _fake_wheel_dir(tmp_path: Path) -> Path:
    """The stand-in as a wheel split in two parts, the way the GPU machine receives the real one."""
    name = WHEEL_NAME.format(tag=TAG)
    dist = "onnxruntime_gpu-1.31.1.dist-info"
    files = {
        "onnxruntime/__init__.py": FAKE_ORT,
        "onnxruntime/capi/__init__.py": "",
        "onnxruntime/capi/build_and_package_info.py": BUILD_INFO,
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.31.1\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
        f"Tag: {TAG}-{TAG}-manylinux_2_28_x86_64\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{p},,\n" for p in [*files, f"{dist}/RECORD"])
    whole = tmp_path / name
    with zipfile.ZipFile(whole, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    data = whole.read_bytes()
    (wheels / f"{name}.part-aa").write_bytes(data[: len(data) // 2])
    (wheels / f"{name}.part-ab").write_bytes(data[len(data) // 2 :])
    return wheels


@pytest.fixture(scope="module")
def fake_wheels(tmp_path_factory):
    return _fake_wheel_dir(tmp_path_factory.mktemp("fake-ort-gpu"))


def _env(mode: str, tmp_path: Path) -> dict[str, str]:
    # No nvidia-smi on PATH: its absence must not stop a check that onnxruntime can run.
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    return {**os.environ, "FAKE_ORT_GPU": mode, "PATH": f"{bindir}:/usr/bin:/bin"}


def test_onnxruntime_gpu_without_a_gpu(fake_wheels, tmp_path):
    """onnxruntime-gpu installed from split wheel parts, no GPU: onnxruntime's own reason, plain text."""
    res = _script(
        "--wheels",
        str(fake_wheels),
        "--env",
        str(tmp_path / "env"),
        "--out",
        str(tmp_path / "out"),
        "--only",
        "seed_basic",
        env=_env("absent", tmp_path),
    )
    out = res.stdout
    assert res.returncode == 1, out + res.stderr
    assert "onnxruntime 1.31.1 (wheel onnxruntime_gpu-1.31.1" in out
    assert "built for CUDA 13.0;" in out
    assert "no CUDA GPU here" in out and "nvidia-smi is not on PATH" in out
    assert "ort:cuda: CUDAExecutionProvider could not be created here" in out
    assert "libcublasLt.so.13: cannot open shared object file" in out
    assert "\x1b" not in out
    assert not (tmp_path / "out").exists()  # nothing validated, nothing written
    wrapper = tmp_path / "env" / "python"
    assert wrapper.is_file() and (tmp_path / "env" / "site" / "onnxruntime" / "__init__.py").is_file()


E2E_CASES = ["onnx_*", "rank1_s2_pads_asym_float32_*", "reject_group_zero", "reject_pads_with_auto_pad"]


def test_a_simulated_gpu_run_end_to_end(fake_wheels, tmp_path):
    only = [a for g in E2E_CASES for a in ("--only", g)]
    out = tmp_path / "out"
    res = _script(
        "--wheels",
        str(fake_wheels),
        "--env",
        str(tmp_path / "env"),
        "--out",
        str(out),
        "--jobs",
        "1",
        *only,
        env=_env("present", tmp_path),
    )
    text = res.stdout
    assert res.returncode == 0, text + res.stderr
    lines = text.splitlines()
    assert lines[-1] == "gpu-check: passed (exit 0)"
    for name in ("index.md", "report.json", "junit.xml", "summary.md", "summary.txt", "environment.json"):
        assert (out / name).is_file(), name
    slugs = sorted(p.name for p in (out / "runs").iterdir())
    assert slugs == sorted(c.slug for c in gc.CONFIGURATIONS)
    results = {
        c.spec: json.loads((out / "runs" / c.slug / "results.json").read_text()) for c in gc.CONFIGURATIONS
    }
    s = gc.summarize(results)
    must = [p.case for p in s.placement]
    assert "onnx_convtranspose_autopad_same" in must and "rank1_s2_pads_asym_float32_exact" in must
    assert all(
        p.verdicts == dict.fromkeys(p.verdicts, "fallback") and len(p.verdicts) == 3 for p in s.placement
    )
    cuda = s.config("ort:cuda")
    # reject_pads_with_auto_pad (SAME_UPPER) falls back too, but must-reject cases are not asserted:
    # onnxruntime may refuse them before it places anything.
    assert "reject_pads_with_auto_pad" not in must and s.unexpected_fallback["ort:cuda"] == ()
    assert cuda.counts == {"pass": cuda.cases - len(must) - 2, "fallback": len(must) + 1, "rejected": 1}
    assert s.config("ort:tensorrt").available is False
    assert "libnvinfer.so.10" in s.config("ort:tensorrt").reason and "\x1b" not in text
    # The NHWC configuration ran on the constant-weights variant.
    nhwc = results["ort:cuda?prefer_nhwc=1"]
    assert "constant-weights" in nhwc["suite"]
    assert (
        f"{len(must)} cases with asymmetric pads or SAME_* auto_pad must come out fallback on CUDA: all do"
        in text
    )
    table = lines[lines.index(next(ln for ln in lines if ln.startswith("configuration"))) :]
    assert [ln.split()[0] for ln in table[1:6]] == list(gc.TABLE_ORDER)
    summary_md = (out / "summary.md").read_text()
    assert (
        "## Placement truth" in summary_md
        and "| onnx_convtranspose_autopad_same | auto_pad SAME_UPPER |" in summary_md
    )
    report = json.loads((out / "report.json").read_text())
    assert {gc.base_spec(r["spec"]) for r in report["runtimes"]} == set(gc.TABLE_ORDER)


def test_a_placement_violation_fails_the_check(fake_wheels, tmp_path):
    res = _script(
        "--wheels",
        str(fake_wheels),
        "--env",
        str(tmp_path / "env"),
        "--out",
        str(tmp_path / "out"),
        "--config",
        "ort:cuda",
        "--only",
        "onnx_convtranspose_autopad_same",
        "--only",
        "seed_basic",
        env=_env("present-no-fallback-rule", tmp_path),
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert (
        "FAIL ort:cuda: onnx_convtranspose_autopad_same must fall back to CPU (auto_pad SAME_UPPER) "
        "but came out pass" in res.stdout
    )
    assert res.stdout.splitlines()[-1] == "gpu-check: FAILED (exit 1)"
