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


# --- explain --from: a framework layer's ONNX spelling, then its explanation --------------


def test_explain_from_pytorch_output_size(capsys):
    # PyTorch: O = (3-1)*3 - 2*1 + (3-1) + a + 1 = 7 + a; output_size 9 sets a = 2.
    args = ["--from", "pytorch", "--x-shape", "1,1,3", "--w-shape", "1,1,3"]
    code, out, _ = explain(capsys, *args, "--stride", "3", "--padding", "1", "--output-size", "9")
    assert code == 0, out
    assert "PyTorch layer, output [1, 1, 9]" in out
    assert "pads=[1, 1] output_padding=[2]" in out
    assert "spelling depends on: none" in out
    assert "note: output_shape=[9] would differ" in out
    assert "rule: pads" in out and "output shape: [1, 1, 9]" in out
    assert _check_numbers(out) >= 2


def test_explain_from_keras_same_with_a_small_kernel(capsys):
    args = [
        "--from",
        "keras",
        "--x-shape",
        "1,1,3",
        "--w-shape",
        "1,1,1",
        "--strides",
        "2",
        "--padding",
        "same",
    ]
    code, out, _ = explain(capsys, *args)
    assert code == 0
    assert "pads=[0, 0] output_padding=[1]" in out and "output shape: [1, 1, 6]" in out
    assert "auto_pad=SAME_UPPER would differ" in out and "only under reading(s) trunc" in out


def test_explain_from_tensorflow_json(capsys):
    args = ["--from", "tensorflow", "--x-shape", "1,1,1,2", "--w-shape", "1,1,3,3", "--json"]
    code, out, _ = explain(capsys, *args, "--output-shape", "3,4", "--strides", "3", "--padding", "SAME")
    assert code == 0
    doc = json.loads(out)
    # TFLite's AccuracyTest layer: width 4 from 2 inputs at stride 3, begin pad 1.
    assert doc["spelling"]["attributes"]["pads"] == [0, 1, 0, 1]
    assert doc["spelling"]["ambiguities"] == []
    assert doc["geometry"]["output_shape"] == [1, 1, 3, 4]


def test_explain_from_paddle_same(capsys):
    args = [
        "--from",
        "paddle",
        "--x-shape",
        "1,1,5",
        "--w-shape",
        "1,1,3",
        "--stride",
        "2",
        "--padding",
        "SAME",
    ]
    code, out, _ = explain(capsys, *args)
    assert code == 0
    # pad_sum = max((3-1)*2 + 3 - 5, 0) = 2: pads 1, 1; O = 4*2 - 2 + 3 = 9 (ONNX SAME: 10).
    assert "pads=[1, 1]" in out and "output shape: [1, 1, 9]" in out
    assert "auto_pad=SAME_UPPER would differ" in out


def test_explain_from_pytorch_burn_layer_names_the_ambiguity(capsys):
    args = ["--from", "pytorch", "--x-shape", "1,1,4", "--w-shape", "1,1,3", "--dilation", "2"]
    code, out, _ = explain(capsys, *args, "--output-padding", "1")
    assert code == 0
    assert "spelling depends on: output-padding-bound" in out
    code, _, err = explain(capsys, *args, "--output-padding", "1", "--reading", "output-padding-bound=stride")
    assert code == 2 and "output_padding[0]=1 must be less than stride=1" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "keras", "--stride", "2"], "--stride: not an argument of --from keras"),
        (["--from", "pytorch", "--pads", "0,0"], "--pads: not an argument of --from pytorch"),
        (["--from", "tensorflow", "--strides", "2"], "--from tensorflow needs --output-shape, --padding"),
        (["--stride", "2"], "--stride: only with --from FRAMEWORK"),
        (
            ["--from", "pytorch", "--stride", "2", "--output-padding", "2"],
            "must be smaller than max(stride, dilation)",
        ),
        (["--from", "pytorch", "--padding", "-1"], "padding=-1 must be >= 0"),
        (["--from", "keras", "--padding", "full"], "must be 'valid' or 'same'"),
    ],
)
def test_explain_from_usage_and_framework_errors_exit_2(capsys, args, message):
    code, out, err = explain(capsys, "--x-shape", "1,1,3", "--w-shape", "1,1,3", *args)
    assert code == 2 and message in err, (out, err)


def test_explain_from_json_error(capsys):
    args = ["--from", "paddle", "--x-shape", "1,1,3", "--w-shape", "1,1,3", "--json"]
    code, out, _ = explain(capsys, *args, "--stride", "2", "--output-size", "9")
    assert code == 2
    assert json.loads(out)["error"]["attribute"] == "output_size[0]"


def test_validate_max_memory_takes_a_size_and_refuses_anything_else(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["validate", str(tmp_path), "--out", str(tmp_path / "out"), "--max-memory", "lots"])
    assert e.value.code == 2
    assert "expected a size such as 512M or 2G, got 'lots'" in capsys.readouterr().err


# --- issue 26: the small confusions -------------------------------------------------------------


def test_explain_opset_13_is_convtranspose_version_11_and_says_so():
    # ConvTranspose has versions 1, 11 and 22: a model of opset 13 uses version 11.
    done = run("explain", *ONNX_OUTPUT_SHAPE, "--opset", "13", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["opset"] == 11
    assert "opset 13: ConvTranspose is version 11 there" in done.stderr


def test_explain_rank_mismatch_blames_x_and_names_w():
    code, out, _ = explain_json("--x-shape", "1,1,3", "--w-shape", "1,1,3,3")
    assert code == 2 and out["error"]["attribute"] == "X.shape", out
    assert out["error"]["value"] == [1, 1, 3] and "[1, 1, 3, 3]" in out["error"]["rule"]


def explain_json(*args: str):
    done = run("explain", *args, "--json")
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.mark.parametrize(
    ("spec", "meant"),
    [("ort:cpux", "ort:cpu"), ("onnx_reference", "onnx-reference"), ("onnxruntime", "ort:cpu")],
)
def test_a_misspelt_runtime_gets_did_you_mean(tmp_path, spec, meant):
    done = run("validate", str(tmp_path / "no-suite"), "--runtime", spec, "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and f"did you mean {meant}?" in done.stderr, done.stderr


def test_validate_usage_errors_say_what_is_wrong(tmp_path):
    from opref import cases as cs
    from opref import vectors as vx

    vx.generate(tmp_path / "v", cs.catalog(only=["seed_basic"]), {})
    suite, out = str(tmp_path / "v"), str(tmp_path / "r")
    missing = run("validate", suite, "--expected", str(tmp_path / "missing.txt"), "--out", out)
    assert missing.returncode == 2 and "missing.txt: no such file" in missing.stderr, missing.stderr
    assert "Errno" not in missing.stderr
    nothing = run("validate", str(tmp_path / "v"), "--only", "nomatch*", "--out", str(tmp_path / "r2"))
    assert nothing.returncode == 1 and "0 cases selected" in nothing.stdout
    assert "unexpected normative failures" not in nothing.stdout, nothing.stdout


def test_out_pointing_at_the_suite_is_refused_and_the_suite_untouched(tmp_path):
    from opref import cases as cs
    from opref import vectors as vx

    suite = tmp_path / "v"
    vx.generate(suite, cs.catalog(only=["seed_basic"]), {})
    before = sorted(p.relative_to(suite) for p in suite.rglob("*"))
    assert run("validate", str(suite), "--out", str(tmp_path / "r")).returncode == 0
    for args in (
        ["validate", str(suite), "--out", str(suite)],
        ["validate", str(suite), "--out", str(suite / "node")],
        ["report", str(tmp_path / "r"), "--out", str(suite)],
        ["diff", str(tmp_path / "r"), str(tmp_path / "r"), "--out", str(suite)],
    ):
        done = run(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (args, done.stderr)
    assert sorted(p.relative_to(suite) for p in suite.rglob("*")) == before
