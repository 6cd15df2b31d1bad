"""Output directories never lose a run (issue 22, guarantee 3): every command checks before it
touches --out, writes beside it and swaps the result in whole, holds a lock while it runs, and
refuses a directory opref did not write. Saved-tensor paths read back stay inside their
results directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from opref import cases as cs
from opref import suite as sx
from opref import vectors as vx
from opref.cli import main as cli_main
from opref.outdir import MARKER, OutputError, check, staged
from opref.tensors import load

ROOT = Path(__file__).resolve().parent.parent
FAKE = "py:fake_runtimes:make"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("outdir") / "vectors"
    vx.generate(out, cs.catalog(only=["seed_basic", "seed_stride2"]), {})
    return out


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _opref(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "opref", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_usage_error_keeps_the_previous_results(suite, tmp_path, capsys):
    out = tmp_path / "r"
    assert cli_main(["validate", str(suite), "--runtime", f"{FAKE}?mode=good", "--out", str(out)]) == 0
    before = _files(out)
    assert json.loads(before["results.json"])["complete"] is True
    for argv in (
        ["--runtime", "ort:cpuu"],
        ["--runtime", f"{FAKE}?mode=good", "--expected", str(tmp_path / "no-such-file")],
    ):
        assert cli_main(["validate", str(suite), *argv, "--out", str(out)]) == 2, argv
        assert "opref: error:" in capsys.readouterr().err
        assert _files(out) == before, argv
    # A suite that is not there is found only once validation starts: still nothing is lost.
    assert cli_main(["validate", str(tmp_path / "none"), "--runtime", f"{FAKE}?mode=good", "--out", str(out)])
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no staging or lock file left


def test_out_pointing_at_the_suite_is_refused(suite, tmp_path, capsys):
    before = _files(suite)
    for argv in (
        ["validate", str(suite), "--runtime", f"{FAKE}?mode=good", "--out", str(suite)],
        ["validate", str(suite), "--runtime", f"{FAKE}?mode=good", "--out", str(suite / "results")],
        ["report", str(tmp_path), "--out", str(suite)],
        ["fuzz", "--runtime", f"{FAKE}?mode=good", "--examples", "1", "--out", str(suite)],
    ):
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "opref: error:" in err and "Traceback" not in err, (argv, err)
    assert _files(suite) == before and sx.verify(suite).records


def test_fuzz_out_in_a_checkout_is_refused(suite, tmp_path, monkeypatch, capsys):
    checkout = tmp_path / "checkout"
    vx.generate(checkout / "vectors", cs.catalog(only=["seed_basic"]), {})
    (checkout / "README.md").write_text("# a checkout\n")
    before = _files(checkout)
    monkeypatch.chdir(checkout)
    for out in (".", str(checkout), "vectors"):
        code = cli_main(["fuzz", "--runtime", f"{FAKE}?mode=good", "--examples", "1", "--out", out])
        assert code == 2, out
        assert "opref: error: --out" in capsys.readouterr().err
    assert _files(checkout) == before


def test_a_directory_opref_did_not_write_is_refused_never_cleaned(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text('{"someone": "else"}')
    with pytest.raises(OutputError, match="holds files opref did not write"):
        check(mine, "validate")
    with pytest.raises(OutputError, match="holds files opref did not write"), staged(mine, "test"):
        pass
    assert _files(mine) == {"results.json": b'{"someone": "else"}'}
    # A marker that is not opref's (a link to one, or other JSON) does not make it opref's.
    (mine / MARKER).write_text('{"written_by": "someone", "command": "validate"}')
    with pytest.raises(OutputError):
        check(mine, "validate")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        check(tmp_path / "file", "validate")


def test_an_opref_directory_is_replaced_whole(suite, tmp_path):
    out = tmp_path / "r"
    argv = ["validate", str(suite), "--runtime", f"{FAKE}?mode=shift-pad", "--out", str(out)]
    assert cli_main([*argv, "--save-tensors", "all"]) == 1
    assert (out / "tensors").is_dir() and (out / MARKER).is_file()
    data = json.loads((out / "results.json").read_text())
    # The tensors are named where they are now, not where they were staged.
    assert data["tensors_root"] == str(out.absolute())
    rec = data["records"][0]
    assert load(out, rec["tensors"], "output") is not None
    assert cli_main(argv) == 1
    assert not (out / "tensors").exists()  # the last run's tensors are not this run's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_one_command_never_replaces_another_commands_output(suite, tmp_path, capsys):
    """`opref report r --out r` would replace the results it reads with the report."""
    out = tmp_path / "r"
    assert cli_main(["validate", str(suite), "--runtime", f"{FAKE}?mode=good", "--out", str(out)]) == 0
    before = _files(out)
    assert cli_main(["report", str(out), "--out", str(out)]) == 2
    assert "holds the output of opref validate, not of opref report" in capsys.readouterr().err
    assert cli_main(["fuzz", "--runtime", f"{FAKE}?mode=good", "--examples", "1", "--out", str(out)]) == 2
    assert _files(out) == before
    assert cli_main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    assert cli_main(["validate", str(suite), "--runtime", FAKE, "--out", str(tmp_path / "rep")]) == 2
    assert (tmp_path / "rep" / "index.md").is_file()


def test_an_error_inside_the_block_leaves_out_as_it_was(tmp_path):
    out = tmp_path / "o"
    with staged(out, "test") as stage:
        (stage / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), staged(out, "test") as stage:
        (stage / "a.txt").write_text("second")
        raise RuntimeError("half way")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_the_current_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in (".", str(tmp_path), str(tmp_path.parent)):
        with pytest.raises(OutputError, match="current directory"):
            check(out, "report")


def test_a_second_run_is_refused_while_the_first_holds_the_lock(suite, tmp_path):
    """Two real processes: the first is held by a runtime that never answers; the second is
    refused and changes nothing; SIGTERM makes the first keep its partial results, marked
    incomplete; after it the lock is free."""
    out = tmp_path / "r"
    first = _opref(
        "validate", str(suite), "--runtime", f"{FAKE}?mode=hang", "--timeout", "600", "--out", str(out)
    )
    try:
        for _ in range(1200):  # until the first run has staged its results (it then sits on a hang)
            if list(tmp_path.glob(".r.opref-staging-*/results.json")) or first.poll() is not None:
                break
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        second = _opref("validate", str(suite), "--runtime", f"{FAKE}?mode=good", "--out", str(out))
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and "another opref run is writing it" in err, err
        assert not out.exists()
        first.send_signal(signal.SIGTERM)
        stdout, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 130, (stdout, err)
    data = json.loads((out / "results.json").read_text())
    assert data["complete"] is False and data["records"] == [] and "INTERRUPTED" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert cli_main(["validate", str(suite), "--runtime", f"{FAKE}?mode=good", "--out", str(out)]) == 0


def test_saved_tensor_paths_are_confined_to_the_results_directory(tmp_path):
    root = tmp_path / "results"
    (root / "tensors").mkdir(parents=True)
    np.save(root / "tensors" / "good.npy", np.ones((1, 1, 2, 2), np.float32))
    outside = tmp_path / "outside.npy"
    np.save(outside, np.ones((1, 1, 2, 2), np.float32))
    (root / "tensors" / "link.npy").symlink_to(outside)
    (root / "tensors" / "inner-link.npy").symlink_to(root / "tensors" / "good.npy")
    (root / "tensors" / "zero.npy").symlink_to("/dev/zero")
    os.mkfifo(root / "tensors" / "fifo.npy")
    (root / "tensors" / "dir.npy").mkdir()
    (root / "tensors" / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    paths = {
        "good": "tensors/good.npy",
        "up": "../outside.npy",
        "abs": str(outside),
        "dev": "../../../../../../../../dev/zero",
        "link": "tensors/link.npy",
        "inner-link": "tensors/inner-link.npy",
        "zero": "tensors/zero.npy",
        "fifo": "tensors/fifo.npy",
        "dir": "tensors/dir.npy",
        "junk": "tensors/junk.npy",
        "nul": "tensors/good.npy\x00x",
        "root": ".",
        "not-text": 7,
        "missing": "tensors/none.npy",
    }
    assert load(root, paths, "good") is not None  # the one that may be read is read
    refused = {name: load(root, paths, name) for name in paths if name != "good"}
    assert all(v is None for v in refused.values()), refused
