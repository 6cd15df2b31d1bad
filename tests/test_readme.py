"""The README tells the truth about the repository: the paths it names exist in a clone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_repository_path_the_readme_names_exists():
    named = set(re.findall(r"`((?:opref|scripts|tests|results|vectors|\.ci)/[A-Za-z0-9_./-]+)`", README))
    named |= set(re.findall(r"\]\(((?:opref|scripts|tests|results)/[A-Za-z0-9_./-]+)\)", README))
    missing = sorted(p for p in named if "*" not in p and not (ROOT / p.rstrip("/")).exists())
    assert named and not missing, missing


def test_nothing_points_outside_the_clone():
    assert "shared/" not in README and "closing note" not in README


def test_the_known_failures_header_names_a_readme_section():
    header = (ROOT / "known-failures.txt").read_text().splitlines()[0]
    section = re.search(r'"([^"]+)"', header).group(1)
    assert re.search(rf"^#+ {re.escape(section)}$", README, re.M), section


def test_the_ecosystem_matrix_is_the_committed_results():
    """The README's runtime table says what results/ecosystem/report.json says, row by row:
    every runtime of the report, in its order, with its count of each verdict the table shows."""
    import json

    report = json.loads((ROOT / "results" / "ecosystem" / "report.json").read_text())
    block = README.split("<!-- ecosystem-matrix:", 1)[1].split("<!-- ecosystem-matrix: end -->", 1)[0]
    rows = [
        [c.strip() for c in ln.strip().strip("|").split("|")]
        for ln in block.splitlines()
        if ln.startswith("|")
    ]
    header, body = rows[0], rows[2:]
    assert header[0] == "runtime"
    assert len(body) == len(report["runtimes"])
    for row, runtime in zip(body, report["runtimes"], strict=True):
        counts = report["matrix"][runtime["spec"]]
        assert runtime["version"].split("-", 1)[0] in row[0], (row[0], runtime)
        assert row[0].startswith(runtime["name"]), (row[0], runtime)
        for verdict, cell in zip(header[1:], row[1:], strict=True):
            assert int(cell or 0) == counts.get(verdict, 0), (runtime["spec"], verdict)
        hidden = {v for v, n in counts.items() if n and v not in header}
        assert not hidden, (runtime["spec"], hidden)
    run = (ROOT / "results" / "ecosystem" / "run.txt").read_text()
    date = next(ln.split(": ", 1)[1][:10] for ln in run.splitlines() if ln.startswith("date: "))
    assert date in block.splitlines()[1]
