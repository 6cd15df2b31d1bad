"""The README's recipes work as written: the CI step and the install from a built wheel."""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from opref import cases as cs
from opref import vectors as vx

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ci-example"


def readme_recipe() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- ci-recipe -->\n```sh\n(.*?)```\n<!-- /ci-recipe -->", text, re.S)
    assert block, "the README lost its marked CI recipe"
    return block.group(1).strip().splitlines()


def test_the_script_is_the_readme_recipe():
    body = [ln for ln in SCRIPT.read_text().splitlines() if ln and not ln.startswith("#")]
    assert body == ["set -u", *readme_recipe()]


def test_the_recipe_writes_the_report_and_fails_on_a_wrong_runtime(tmp_path):
    suite = tmp_path / "vectors"
    vx.generate(suite, cs.catalog(only=["seed_basic", "seed_stride2"]), {})
    work = tmp_path / "ci"
    work.mkdir()
    (work / "known.txt").write_text("# nothing known yet\n")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}",
        "SUITE": str(suite),
        "RUNTIME": "py:fake_runtimes:make?mode=shift-pad&only=seed_stride2",
    }
    run = subprocess.run(
        ["bash", str(SCRIPT)], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert (work / "report/index.md").is_file() and (work / "results/results.json").is_file()
    failures = ET.parse(work / "report/junit.xml").getroot().findall(".//failure")
    assert [f.get("type") for f in failures] == ["fail-values"]
    env["RUNTIME"] = "py:fake_runtimes:make"
    assert subprocess.run(["bash", str(SCRIPT)], cwd=work, env=env, capture_output=True).returncode == 0


def test_the_wheel_installs_and_runs(tmp_path):
    """The README's second install line: a wheel built from the checkout, installed, runs.
    (setuptools >= 77 comes with the test extra, so no build environment is downloaded.)"""
    dist, target = tmp_path / "dist", tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    wheel = next(dist.glob("opref-*.whl"))
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [str(target / "bin" / "opref"), "--version"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.startswith("opref "), run.stderr
    explain = subprocess.run(
        [str(target / "bin" / "opref"), "explain", "--x-shape", "1,1,3", "--w-shape", "1,1,2", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert explain.returncode == 0 and '"output_shape"' in explain.stdout
    import opref  # noqa: F401 - the installed copy, not this checkout, answered above

    assert (target / "opref" / "worker.py").is_file()


def frameworks_recipe() -> tuple[str, str]:
    """The README's opref.frameworks recipe: a doctest block and a shell transcript."""
    text = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- frameworks-recipe -->\n```python\n(.*?)```\n\n```\n(.*?)```\n<!-- /frameworks-recipe -->",
        text,
        re.S,
    )
    assert block, "the README lost its marked opref.frameworks recipe"
    return block.group(1), block.group(2)


def test_the_frameworks_recipe_runs_as_written():
    python, _ = frameworks_recipe()
    test = doctest.DocTestParser().get_doctest(python, {}, "README frameworks recipe", "README.md", 0)
    assert len(test.examples) >= 6
    runner = doctest.DocTestRunner()
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.summarize(verbose=False).failed == 0, "".join(out)


def _matches(shown: list[str], printed: list[str]) -> bool:
    """Each shown line is the next printed line; '...' skips any number of lines."""
    if not shown:
        return True
    if shown[0] == "...":
        return any(_matches(shown[1:], printed[i:]) for i in range(len(printed) + 1))
    return bool(printed) and printed[0] == shown[0] and _matches(shown[1:], printed[1:])


def test_the_frameworks_explain_transcript_is_what_opref_prints():
    _, shell = frameworks_recipe()
    commands = re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", shell, re.M)
    assert commands
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command, shown in commands:
        run = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert _matches(shown.splitlines(), run.stdout.splitlines()), (command, run.stdout)


def test_the_readme_pytest_recipe_runs_as_written(tmp_path):
    """The README's pytest recipe, line by line, in a fresh working directory holding a small
    suite as ``vectors`` and a ``known.txt``: its install line brings what ``-n auto`` needs."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- pytest-recipe -->\n```sh\n(.*?)```\n<!-- /pytest-recipe -->", text, re.S)
    assert block, "the README lost its marked pytest recipe"
    lines = block.group(1).strip().splitlines()
    assert "-n auto" in lines[-1] and "pytest-xdist" in lines[0]
    vx.generate(tmp_path / "vectors", cs.catalog(only=["seed_basic", "seed_stride2"]), {})
    (tmp_path / "known.txt").write_text("# nothing known\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PIP_NO_INDEX"] = "1"  # pytest-xdist comes with the test extra: the line must find it installed
    for line in lines:
        run = subprocess.run(
            line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, (line, run.stdout[-2000:], run.stderr[-2000:])
    cases = ET.parse(tmp_path / "j.xml").getroot().findall(".//testcase")
    assert len(cases) == 2
