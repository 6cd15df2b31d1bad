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
from opref.expectations import parse_expected
from opref.report import write_report
from opref.validate import validate

F = "py:fake_runtimes:make"
FAR = f"{F}?mode=good@/opt/builds/nightly/2026-12-06/environments/onnxruntime-1.16/bin/python3.11"
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
    known = parse_expected(f"{F}?mode=error&only=seed_* seed_* error # raises on seed cases (known)\n")
    result = validate(
        suite, runtimes, jobs=1, save_tensors="failures", tensors_dir=base / "results", expected=known
    )
    data = result.to_dict()
    evil = copy.deepcopy(next(r for r in data["records"] if r["verdict"] == "fail-values"))
    evil["case"], evil["message"] = HOSTILE, HOSTILE
    data["records"].append(evil)
    # A runtime in an environment of its own, named by an absolute interpreter path (as a user's
    # run names it): the page must not let the path push the columns off-screen.
    far = copy.deepcopy(next(rt for rt in data["runtimes"] if rt["spec"] == f"{F}?mode=good"))
    far["spec"] = FAR
    data["runtimes"].append(far)
    for rec in [r for r in data["records"] if r["runtime"] == f"{F}?mode=good"]:
        data["records"].append({**copy.deepcopy(rec), "runtime": FAR})
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


def test_first_screen_verdict_filter_known_apart_and_readable_details(report_dir):
    """Issue 26: the page opens with the verdict and the per-runtime row, the filter sits above
    the cases, known failures are told apart from new ones, runtime names are short, and a
    case's details are words, not JSON."""
    browser = _browser()
    page = (report_dir / "index.html").resolve()
    report = json.loads((report_dir / "report.json").read_text())
    dom = _run(browser, "--dump-dom", page.as_uri())
    body = dom[dom.index("<body") :]

    # Order on the page: banner, per-runtime row, filter, cases; the rest below.
    marks = ('id="banner"', 'class="rows"', 'data-filter="status"', 'class="case-row')
    order = [body.index(m) for m in marks]
    assert order == sorted(order), order
    assert body.index('class="case-row') < body.index("<h2>Failure clusters</h2>")
    banner = re.search(r'<div class="banner (\w+)" id="banner">(.*?)</div>', body, re.S)
    unexpected = [f for f in report["failures"] if f["unexpected"]]
    known = [f for f in report["failures"] if not f["unexpected"]]
    assert known and unexpected
    assert banner.group(1) == "FAIL" and "exit status 1" in banner.group(2)
    assert f"{len(unexpected)} unexpected normative failures" in html.unescape(banner.group(2))

    # The per-runtime row: pass / unexpected / known / other, from the records themselves.
    for spec in {r["runtime"] for r in report["records"]}:
        recs = [r for r in report["records"] if r["runtime"] == spec]
        n_known = sum(1 for f in known if f["runtime"] == spec)
        cell = re.search(
            rf'data-runtime="{re.escape(html.escape(spec))}" data-column="known">(\d+)</td>', body
        )
        assert cell and int(cell.group(1)) == n_known, spec
        n_pass = sum(1 for r in recs if r["verdict"] in ("pass", "rejected"))
        cell = re.search(
            rf'data-runtime="{re.escape(html.escape(spec))}" data-column="pass">(\d+)</td>', body
        )
        assert int(cell.group(1)) == n_pass, spec

    # In the verdict-count table, the raising runtime's errors (all listed) are amber, not red.
    listed = re.search(
        r'<td class="n ([a-z]+)" data-runtime="[^"]*mode=error[^"]*" data-verdict="error"', body
    )
    assert listed and listed.group(1) == "known", listed
    wrong = re.search(
        r'<td class="n ([a-z]+)" data-runtime="[^"]*shift-pad[^"]*" data-verdict="fail-values"', body
    )
    assert wrong and wrong.group(1) == "normative", wrong

    # Known failures apart: the status filter shows exactly the listed ones, painted as known.
    shown = _run(browser, "--dump-dom", page.as_uri() + "#status=known")
    rows = re.findall(r'<tr class="case-row ([^"]*)"([^>]*)>', shown)
    visible = [(cls, attrs) for cls, attrs in rows if " hidden" not in attrs]
    assert len(visible) == len(known) and all("known" in cls.split() for cls, _ in visible)
    assert re.search(rf'<b id="shown">{len(known)}</b>', shown)

    # Short runtime names: in the tables the interpreter path is only a tooltip (a case's details
    # and its reproduce command, which must run, keep the full spec).
    tables = re.sub(r"<details.*?</details>", "", body, flags=re.S)
    assert "/opt/builds/nightly" not in re.sub(r'(title|data-runtime|value)="[^"]*"', "", tables)
    assert "@onnxruntime-1.16</code>" in body

    # Details in words: a definition list, no JSON object dumped.
    details = re.findall(r"<details id=\"d-\d+\".*?</details>", body, re.S)
    assert details and all('<dl class="case">' in d and "{&quot;" not in d for d in details)
    assert any("<dt>known reason</dt><dd>raises on seed cases (known)</dd>" in d for d in details)

    # Everything index.md has: each of its sections is a section of the page, or (its failure
    # and divergence lists, its per-runtime row) the rows of the case table.
    headings = {html.unescape(h) for h in re.findall(r"<h2>([^<]*)</h2>", body)}
    in_table = {"Normative failures", "Divergent cases", "Verdict per runtime"}
    for line in (report_dir / "index.md").read_text().splitlines():
        if line.startswith("## ") and line[3:] not in in_table:
            title = line[3:].split(" (")[0]
            assert any(h.startswith(title) for h in headings), (line, headings)
    assert "<h2>Runtimes and machine</h2>" in body and "<h2>Error statistics" in body
    for f in [*report["failures"], *report["divergences"]]:
        assert html.escape(f["case"], quote=False) in body

    shot = report_dir / "first-screen.png"
    _run(browser, f"--screenshot={shot}", "--window-size=1400,900", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
