"""report/index.html in a real browser: headless Chromium (Debian's ``chromium``) renders the
page from real validation results, its DOM is dumped after the page's script ran, and a
screenshot is taken. Skipped, saying why, where no browser is installed (``scripts/test``
installs one when it can); under CI (``CI`` set) a missing browser fails instead.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import subprocess

import pytest

from opref import cases as cs
from opref import vectors as vx
from opref.report import write_report
from opref.validate import validate

F = "py:fake_runtimes:make"
HOSTILE = (
    '<script>document.body.dataset.pwned="1"</script><img src=x onerror="document.body.dataset.pwned=2">'
)


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    reason = (
        "no headless Chromium on this machine (apt-get install chromium; scripts/test installs it "
        "when it runs as root with a package index)"
    )
    if os.environ.get("CI"):
        pytest.fail("CI must have a browser: " + reason)
    pytest.skip(reason)


def _run(browser: str, *args: str) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """A report from real validation results (a right, a wrong and a raising runtime), plus one
    record whose case name and message hold markup, as a hostile suite would."""
    base = tmp_path_factory.mktemp("html")
    suite = base / "v"
    picks = ["seed_basic", "seed_stride2", "group2_bias_float32_random", "reject_negative_pads"]
    vx.generate(suite, cs.catalog(only=picks), {})
    runtimes = [f"{F}?mode=good", f"{F}?mode=shift-pad", f"{F}?mode=error&only=seed_*"]
    result = validate(suite, runtimes, jobs=1, save_tensors="failures", tensors_dir=base / "results")
    data = result.to_dict()
    evil = copy.deepcopy(next(r for r in data["records"] if r["verdict"] == "fail-values"))
    evil["case"], evil["message"] = HOSTILE, HOSTILE
    data["records"].append(evil)
    out = base / "report"
    write_report([data], out)
    return out


def test_counts_filter_and_escaping_in_chromium(report_dir):
    browser = _browser()
    page = (report_dir / "index.html").resolve()
    report = json.loads((report_dir / "report.json").read_text())

    dom = _run(browser, "--dump-dom", page.as_uri())
    cells = re.findall(r'data-runtime="([^"]*)" data-verdict="([^"]*)" data-count="(\d+)"', dom)
    assert cells, "no summary cells in the rendered page"
    for runtime, verdict, count in cells:
        assert int(count) == report["matrix"][html.unescape(runtime)][verdict], (runtime, verdict)
    shown = {(html.unescape(r), v) for r, v, _ in cells}
    nonzero = {(rt, v) for rt, counts in report["matrix"].items() for v, n in counts.items() if n}
    assert nonzero <= shown
    rows = re.findall(r'<tr class="case-row[^"]*"([^>]*)>', dom)
    assert len(rows) == len(report["records"])
    assert not any(" hidden" in r for r in rows)

    # The script never ran: no attribute it would have set, and the name is shown as text.
    assert "data-pwned" not in dom
    assert "&lt;script&gt;document.body.dataset.pwned" in dom

    # The filter (its state from the address's fragment) hides every row of another verdict.
    filtered = _run(browser, "--dump-dom", page.as_uri() + "#verdict=fail-values")
    rows = re.findall(r'<tr class="case-row[^"]*"([^>]*)>', filtered)
    visible = [r for r in rows if " hidden" not in r]
    want = sum(c["fail-values"] for c in report["matrix"].values())
    assert len(visible) == want > 0
    assert all('data-verdict="fail-values"' in r for r in visible)
    assert re.search(rf'<b id="shown">{want}</b>', filtered)

    shot = report_dir / "screenshot.png"
    _run(browser, f"--screenshot={shot}", "--window-size=1400,1600", page.as_uri())
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_is_self_contained(report_dir):
    text = (report_dir / "index.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<link" not in text and "@import" not in text and "@font-face" not in text
    assert "data:image/png;base64," in text  # the clusters' heatmaps are embedded, not linked
