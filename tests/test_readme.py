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
