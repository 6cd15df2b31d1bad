"""The CLI's explain command, run as a user would."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from opref.cli import main


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


# --- explain: what each reading does, errors as the user sees them ------------------------

_EXPR = re.compile(r"= ([-0-9*() +]+) = (-?\d+)$")


def explain(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _check_numbers(text: str) -> int:
    # Every "= numbers = result" must evaluate, as printed, to its result.
    checked = 0
    for line in text.splitlines():
        found = _EXPR.search(line)
        if found:
            assert eval(found.group(1)) == int(found.group(2)), line  # digits, + - * ( ) only
            checked += 1
    return checked


SAME_A1 = ["--x-shape", "1,1,3", "--w-shape", "1,1,3", "--strides", "2", "--output-padding", "1"]


def test_explain_same_with_output_padding_added_is_parenthesised(capsys):
    # F = 2*2 + 1 + 2 + 1 = 8; added: T = 8 - (3*2 + 1) = 1.
    args = [*SAME_A1, "--auto-pad", "SAME_UPPER", "--reading", "same-with-output-padding=added"]
    code, out, _ = explain(capsys, *args)
    assert code == 0
    assert "T = F - (input*stride + output_padding) = 8 - (3*2 + 1) = 1" in out, out
    assert _check_numbers(out) == 3, out


NEG_T = ["--x-shape", "1,1,2", "--w-shape", "1,1,2", "--strides", "3"]  # F = 5, I*s = 6: T = -1


@pytest.mark.parametrize(
    ("auto_pad", "reading", "split"),
    [
        # SAME_UPPER: pad_begin takes the smaller half.
        (
            "SAME_UPPER",
            "floor",
            "T < 0 read as floor: pad_begin = T//2, pad_end = T - T//2): pad_begin = -1, pad_end = 0",
        ),
        (
            "SAME_UPPER",
            "trunc",
            "T < 0 read as trunc: pad_begin = T/2 rounded toward zero, pad_end = the "
            "rest): pad_begin = 0, pad_end = -1",
        ),
        (
            "SAME_UPPER",
            "clamp",
            "T < 0 read as clamp: T is split as 0, the output is the full extent F): "
            "pad_begin = 0, pad_end = 0",
        ),
        (
            "SAME_LOWER",
            "floor",
            "T < 0 read as floor: pad_end = T//2, pad_begin = T - T//2): pad_begin = 0, pad_end = -1",
        ),
    ],
)
def test_explain_split_line_says_what_the_reading_does(capsys, auto_pad, reading, split):
    code, out, _ = explain(
        capsys, *NEG_T, "--auto-pad", auto_pad, "--reading", f"negative-total-padding={reading}"
    )
    assert code == 0
    assert split in out, out
    assert "odd unit" not in out, out
    assert _check_numbers(out) == 3, out


def test_explain_clamp_with_output_shape(capsys):
    code, out, _ = explain(capsys, *ONNX_OUTPUT_SHAPE, "--reading", "negative-total-padding=clamp")
    assert code == 0
    assert (
        "T < 0 read as clamp: T is split as 0, output_shape extends the end): pad_begin = 0, pad_end = -1"
        in out
    )
    assert "O = F - pad_begin - pad_end = 9 - 0 - (-1) = 10" in out
    assert _check_numbers(out) == 6, out


def test_explain_json_error_on_invalid_input(capsys):
    code, out, _ = explain(
        capsys, *ONNX_OUTPUT_SHAPE[:4], "--strides", "2,2", "--output-padding", "2,0", "--json"
    )
    assert code == 2
    assert json.loads(out) == {
        "error": {
            "attribute": "output_padding[0]",
            "value": 2,
            "rule": "must be less than max(stride, dilation)=2",
            "message": "output_padding[0]=2 must be less than max(stride, dilation)=2",
        }
    }


def test_explain_opset_outside_convtranspose_versions_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", *ONNX_OUTPUT_SHAPE, "--opset", "99"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "usage:" in err and "99" in err, err
    assert explain(capsys, *ONNX_OUTPUT_SHAPE, "--opset", "11")[0] == 0


def test_explain_negative_pads_reach_the_spec_rule(capsys):
    code, _, err = explain(capsys, "--x-shape", "1,1,3,3", "--w-shape", "1,1,2,2", "--pads", "-1,0,0,0")
    assert code == 2
    assert err.strip() == "opref: error: pads[0]=-1 must be >= 0", err


def test_explain_negative_pads_from_the_command_line():
    res = run("explain", "--x-shape", "1,1,3", "--w-shape", "1,1,2", "--pads", "0,-2")
    assert res.returncode == 2 and "pads[1]=-2 must be >= 0" in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("reading", "named"),
    [
        ("no-such-ambiguity=floor", "negative-total-padding, output-padding-bound"),
        ("negative-total-padding=round", "floor, trunc, clamp, reject"),
    ],
)
def test_explain_unknown_reading_is_a_usage_error(capsys, reading, named):
    with pytest.raises(SystemExit) as exc:
        main(["explain", *ONNX_OUTPUT_SHAPE, "--reading", reading])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "usage:" in err and named in err, err


def test_validate_max_memory_takes_a_size_and_refuses_anything_else(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["validate", str(tmp_path), "--out", str(tmp_path / "out"), "--max-memory", "lots"])
    assert e.value.code == 2
    assert "expected a size such as 512M or 2G, got 'lots'" in capsys.readouterr().err
