"""Writers escape for their own format (issue 22, guarantee 2, the writers' half): a runtime's
ANSI-coloured message, a lone surrogate, markup in a case name give a well-formed junit.xml, a
complete index.md whose tables keep their columns, an index.html with no element the data did
not ask for, and a terminal summary with no control character."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from opref import cases as cs
from opref import vectors as vx
from opref.escape import visible
from opref.validate import Validation, dumps, summary_lines, validate

ROOT = Path(__file__).resolve().parent.parent
FAKE = "py:fake_runtimes:make"
# What native runtimes print, and what a hostile suite or hand-edited file may hold.
HOSTILE = (
    "\x1b[31mred\x1b[0m \udcff \x00\x07\x08 \ufffe \u202etxt.exe "
    "</script><script>alert(1)</script> <img src=x onerror=alert(2)> ]]> <!-- "
    "a|b `code` ``x`` **bold** ![img](http://example.invalid/x.png) [link](http://example.invalid) "
    "line\nbreak\r\n# heading & &amp;"
)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e]")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """`opref report` over real results in which every outside string holds HOSTILE: the
    results.json is written with JSON escapes, as a runtime's message would be."""
    base = tmp_path_factory.mktemp("escape")
    vx.generate(base / "v", cs.catalog(only=["seed_basic", "seed_stride2"]), {})
    runtimes = [f"{FAKE}?mode=shift-pad", f"{FAKE}?mode=error", f"{FAKE}?mode=unavailable"]
    data = json.loads(dumps(validate(base / "v", runtimes).to_dict()))
    for rt in data["runtimes"]:
        rt["reason"] = HOSTILE
        rt["details"] = {HOSTILE: HOSTILE}
    for rec in data["records"]:
        rec["message"] = HOSTILE
        rec["expected_reason"] = HOSTILE
    evil = copy.deepcopy(data["records"][0])
    evil.update(case=HOSTILE, runtime=data["records"][0]["runtime"], reproduce=HOSTILE)
    data["records"].append(evil)
    data["case_problems"] = {HOSTILE: HOSTILE}
    data["suite_problems"] = [HOSTILE]
    data["stale_expectations"] = [{"line": 1, "key": HOSTILE, "reason": HOSTILE}]
    data["machine"] = {"python": HOSTILE}
    data["suite"] = data["suite_path"] = HOSTILE
    (base / "r").mkdir()
    # ensure_ascii: the lone surrogate travels as the JSON escape \\udcff, as in a real file.
    (base / "r" / "results.json").write_text(json.dumps(data, ensure_ascii=True))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "opref", "report", str(base / "r"), "--out", str(base / "rep")]
    run = subprocess.run(cmd, capture_output=True, env=env, timeout=300, check=False)
    assert run.returncode == 1 and b"Traceback" not in run.stderr, run.stderr.decode(errors="replace")
    return base / "rep", run


def test_junit_is_well_formed_xml_with_the_message_visible(report_dir):
    out, _ = report_dir
    root = ET.fromstring((out / "junit.xml").read_bytes())  # expat: strict XML 1.0
    texts = [el.text or "" for el in root.iter()] + [v for el in root.iter() for v in el.attrib.values()]
    # The boundary removed the escape sequence and made the lone surrogate U+FFFD; the words stay.
    assert any("red" in t and "txt.exe" in t and "\x1b" not in t for t in texts)
    assert not any(CONTROL.search(t.replace("\n", "").replace("\t", "")) for t in texts)
    failures = [el for el in root.iter("failure")]
    assert failures and all("red" in f.get("message", "") for f in failures)


def test_index_md_is_complete_and_its_tables_keep_their_columns(report_dir):
    out, _ = report_dir
    md = (out / "index.md").read_bytes().decode("utf-8")  # strict: no surrogate got through
    assert "## Runtimes and machine" in md and "- python: " in md
    assert not CONTROL.search(md.replace("\n", "")), "a raw control character in index.md"
    prose = "\n".join(_outside_code(line) for line in md.splitlines())
    for raw in ("<img", "<script", "\x1b"):
        assert raw not in prose, raw  # inside a code span, markup is shown as it is
    # No link or image but opref's own (the plot, the heatmaps).
    assert not re.search(r"(?<!\\)\]\((?!summary\.png\)|heatmaps/)", prose), "an unescaped link or image"
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            want = lines[i - 1].count("|")
            for row in lines[i + 1 :]:
                if not row.startswith("|"):
                    break
                cells = len(re.findall(r"(?<!\\)\|", row))
                assert cells == want, (lines[i - 1], row)
    # The hostile case name is shown, its escape sequence removed at the boundary, not lost.
    assert "red" in md and "txt.exe" in md


def _outside_code(line: str) -> str:
    """A Markdown line without its code spans (CommonMark: a run of n backticks up to the next
    run of exactly n), backslash-escaped backticks not opening one."""
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\":
            out.append(line[i : i + 2])
            i += 2
            continue
        if line[i] == "`":
            n = len(line[i:]) - len(line[i:].lstrip("`"))
            close = re.compile(rf"(?<!`)`{{{n}}}(?!`)").search(line, i + n)
            if close:
                i = close.end()
                continue
            out.append(line[i : i + n])
            i += n
            continue
        out.append(line[i])
        i += 1
    return "".join(out)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_index_html_holds_only_the_elements_opref_writes(report_dir):
    out, _ = report_dir
    page = (out / "index.html").read_bytes().decode("utf-8")
    parser = _Elements()
    parser.feed(page)
    assert [t for t, _ in parser.tags].count("script") == 1
    assert not [t for t, a in parser.tags if t == "img" and not a.get("src", "").startswith("data:")]
    assert not [a for _, a in parser.tags if any(k.startswith("on") for k in a)]
    assert not CONTROL.search(page.replace("\n", ""))
    assert any("</script><script>alert(1)</script>" in t for t in parser.text)  # shown as text


def test_cli_prints_no_control_character(report_dir):
    _, run = report_dir
    for stream in (run.stdout, run.stderr):
        assert not CONTROL.search(stream.decode("utf-8").replace("\n", ""))
    assert b"STALE expectation" in run.stdout and b"txt.exe" in run.stdout


def test_summary_lines_show_a_runtime_text_inert():
    result = Validation("s", selected=1)
    result.runtimes = [{"spec": "x\x1b]0;title\x07", "available": False, "reason": HOSTILE, "hint": HOSTILE}]
    result.case_problems = {HOSTILE: HOSTILE}
    result.unexpected = [{"verdict": "error", "runtime": HOSTILE, "case": HOSTILE}]
    lines = summary_lines(result)
    assert lines and not any(CONTROL.search(line) for line in lines), lines
    assert any("\\x1b]0;title\\x07" in line for line in lines)


def test_visible_leaves_ordinary_text_alone():
    text = "tab\tnewline\n ümlaut 日本 emoji 🙂 [0, 1] a_b"
    assert visible(text) == text
    assert visible("\x1b\x7f\x85\udcff\u202e") == "\\x1b\\x7f\\x85\\udcff\\u202e"
