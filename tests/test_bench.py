"""opref.bench and its entry point scripts/bench.py: arguments, kernel lines, shapes, --check."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opref import bench
from opref.bench_shapes import SHAPES

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bench.py"

OPENBLAS = bench.Blas("openblas", "0.3.31", "Haswell", 2)


def test_kernel_line_names_library_version_kernel_threads():
    lines = bench.kernel_lines([OPENBLAS], {}, None)
    assert lines[0] == "BLAS: openblas 0.3.31, kernel Haswell, 2 threads", lines
    assert "own choice" in lines[1], lines


def test_kernel_lines_without_threadpoolctl_say_so():
    (line,) = bench.kernel_lines(None, {}, None)
    assert "threadpoolctl not installed" in line


def test_forced_kernel_older_than_native_warns():
    env = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    lines = bench.kernel_lines([OPENBLAS], env, "SkylakeX")
    assert any("OPENBLAS_CORETYPE=Haswell" in line and "forced" in line for line in lines), lines
    warning = [line for line in lines if line.startswith("WARNING")]
    assert len(warning) == 1 and "SkylakeX" in warning[0] and "--native-blas" in warning[0], lines


def test_forced_kernel_equal_to_native_does_not_warn():
    lines = bench.kernel_lines([OPENBLAS], {"OPENBLAS_CORETYPE": "Haswell"}, "Haswell")
    assert not any(line.startswith("WARNING") for line in lines), lines


def test_native_environment_unsets_both_variables_and_says_which():
    env = bench.native_environment({"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "A": "1"})
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env and env["A"] == "1"
    lines = bench.kernel_lines([OPENBLAS], env, None)
    assert "OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=1048576 unset" in lines[1], lines
    lines = bench.kernel_lines([OPENBLAS], bench.native_environment({}), None)
    assert "--native-blas: neither of OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE was set" in lines[1], lines


def test_threads_must_be_positive():
    with pytest.raises(SystemExit):
        bench.parse(["--threads", "0"])
    assert bench.parse(["--threads", "1"]).threads == 1


def test_native_architecture_is_asked_without_the_variables(monkeypatch):
    # A kernel older than any CPU this runs on, forced here, must not reach the fresh interpreter.
    pytest.importorskip("threadpoolctl")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")
    native = bench.native_architecture()
    assert native and native.lower() != "prescott", native


@pytest.mark.parametrize(
    "argv",
    [["--repeat", "0"], ["--rounds", "0"], ["--budget", "0"], ["--only", "no such shape"], ["--nope"]],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        bench.parse(argv)
    assert e.value.code == 2, argv


def test_only_selects_by_glob():
    labels = [s.label for s in bench.selected(["FCN-8s*", "1 *"])]
    assert labels[0].startswith("1 2-D") and len(labels) == 5 and all("FCN" in x for x in labels[1:]), labels


def test_shapes_multiply_adds_and_bound_by_hand():
    shapes = {s.label.split()[0]: s for s in SHAPES}
    # Shape 1: 64 input channels x 32 output channels x 16 taps x 56*56 inputs; each output
    # element takes 64 channels x 4 taps (k4 s2) = 256 >= 128 multiply-adds.
    assert shapes["1"].macs == 64 * 32 * 16 * 56 * 56 and shapes["1"].bound == "arithmetic"
    # Shape 4: 32 channels x 2 taps (k8 s4) = 64 per output: memory-bound.
    assert shapes["4"].bound == "memory"
    unet = next(s for s in SHAPES if s.label.startswith("U-Net"))
    assert unet.output == (1, 512, 56, 56)  # U-Net Fig. 1: 28x28x1024 -> 56x56x512
    fcn = next(s for s in SHAPES if s.label.startswith("FCN-8s upscore8 C21"))
    assert fcn.output == (1, 21, 568, 568)  # (70 - 1) * 8 + 16
    hifi = next(s for s in SHAPES if s.label.startswith("HiFi-GAN up1"))
    assert hifi.output == (1, 256, 86 * 8)  # padding (k - u)/2 makes the length exactly u times


def test_every_shape_cites_a_source_and_sets_a_check_limit():
    for s in SHAPES:
        assert s.source and s.check > 1, s


def _row(label_prefix: str, opref: float, gemm: float):
    shape = next(s for s in SHAPES if s.label.startswith(label_prefix))
    return bench.Row(shape, ort=1.0, opref=opref, gemm64=gemm, max_abs_diff=0.0, peak=0, allowance=1, calls=1)


def test_check_fails_only_past_the_shapes_limit():
    limit = next(s for s in SHAPES if s.label.startswith("1 ")).check
    assert bench.failed_checks([_row("1 ", limit * 0.99, 1.0)]) == []
    (failure,) = bench.failed_checks([_row("1 ", limit * 1.01, 1.0)])
    assert failure.startswith("1 2-D") and f"> {limit}" in failure


def test_torch_column_absent_says_why():
    assert "CUDA build" in bench.TORCH_ABSENT and ".venvs/torch/bin/python" in bench.TORCH_ABSENT


def test_list_prints_kernel_line_and_shapes():
    env = {k: v for k, v in os.environ.items() if k != bench.NATIVE_MARK}
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--list", "--only", "U-Net*"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("BLAS: ") or "threadpoolctl not installed" in lines[0], lines
    assert lines[-1].startswith("U-Net up-conv") and "Ronneberger" in lines[-1], lines


def test_torch_column_from_its_own_environment(tmp_path, monkeypatch):
    # A stand-in for .venvs/torch/bin/python: answers the worker protocol without torch.
    fake = tmp_path / "python"
    answer = {"version": "9.9+cpu", "threads": 2, "times": {"U-Net up-conv C1024->512 28x28 k2 s2": 0.5}}
    fake.write_text(f"#!/bin/sh\ncat > /dev/null\necho '{json.dumps(answer)}'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(bench, "TORCH_PYTHON", fake)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if this interpreter had no torch
    args = bench.parse(["--rounds", "3"])
    times, line = bench.torch_times([_row("U-Net", 1.0, 1.0)], args, 2)
    assert times == {"U-Net up-conv C1024->512 28x28 k2 s2": 0.5}, times
    assert line.startswith("PyTorch 9.9+cpu float64, 2 threads") and str(fake) in line, line


def test_torch_column_absent_without_an_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "TORCH_PYTHON", tmp_path / "none")
    monkeypatch.setitem(sys.modules, "torch", None)
    times, line = bench.torch_times([_row("U-Net", 1.0, 1.0)], bench.parse([]), 2)
    assert times == {} and line == bench.TORCH_ABSENT


def test_memory_budget_is_output_and_w_in_float64_plus_16_mib():
    dcgan = next(s for s in SHAPES if s.label.startswith("DCGAN G2"))
    # Output 8x512x8x8 and W 1024x512x4x4, 8 bytes each (issue 27), plus 16 MiB.
    assert bench.allowed_bytes(dcgan) == 8 * (8 * 512 * 8 * 8 + 1024 * 512 * 16) + 16 * 2**20
    row = bench.Row(dcgan, ort=1.0, opref=1.9, gemm64=1.0, max_abs_diff=0.0, peak=2**20,
                    allowance=bench.allowed_bytes(dcgan), calls=1)
    (line,) = bench.verdicts([row])
    assert "opref/ort 1.90 <= 2.0 met" in line and "opref/GEMM 1.90 > 1.3 MISSED" in line, line
    assert "peak/budget" in bench.table([row])[0]
