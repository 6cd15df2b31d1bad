"""The CLI's explain command, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opref", *args], capture_output=True, text=True, check=False)


ONNX_OUTPUT_SHAPE = [
    "--x-shape",
    "1,1,3,3",
    "--w-shape",
    "1,2,3,3",
    "--strides",
    "3,2",
    "--output-shape",
    "10,8",
]


def test_explain_text():
    res = run("explain", *ONNX_OUTPUT_SHAPE)
    assert res.returncode == 0, res.stderr
    assert "rule: output_shape" in res.stdout
    assert "F = s*(I-1) + a + (k-1)*d + 1 = 3*(3-1) + 0 + (3-1)*1 + 1 = 9" in res.stdout
    assert "T = F - output_shape = 9 - 10 = -1" in res.stdout
    assert "pads (begins, then ends): [0, 0, -1, -1]" in res.stdout
    assert "output shape: [1, 2, 10, 8]" in res.stdout
    assert "negative-total-padding" in res.stdout


def test_explain_json_and_reading():
    res = run("explain", *ONNX_OUTPUT_SHAPE, "--json", "--reading", "negative-total-padding=trunc")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["pads"] == [-1, -1, 0, 0]
    assert data["output_shape"] == [1, 2, 10, 8]
    assert data["rule"] == "output_shape"
    assert data["ambiguities"] == ["negative-total-padding"]
    assert data["readings"] == {"negative-total-padding": "trunc"}


def test_explain_unambiguous():
    res = run("explain", "--x-shape", "1,1,3", "--w-shape", "1,1,3", "--pads", "1,1")
    assert res.returncode == 0 and "ambiguities: none" in res.stdout


def test_explain_invalid_exits_2_with_the_rule():
    res = run(
        "explain",
        "--x-shape",
        "1,1,3,3",
        "--w-shape",
        "1,2,3,3",
        "--strides",
        "2,2",
        "--output-padding",
        "2,0",
    )
    assert res.returncode == 2
    assert "output_padding[0]=2 must be less than max(stride, dilation)=2" in res.stderr
    assert res.stdout == ""


def test_console_script_version():
    res = run("--version")
    assert res.returncode == 0 and res.stdout.startswith("opref ")
