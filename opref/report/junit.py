"""junit.xml: what CI gates on, agreeing with the exit code."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import defaultdict

from opref.escape import visible
from opref.report.clusters import cluster_note
from opref.report.vocabulary import Report
from opref.verdicts import GROUP, SKIP_REASONS, Group, Verdict

MESSAGE_LIMIT = 300  # characters of a failure's message attribute; the element text has it all


def _x(value: object) -> str:
    """Any value as text XML 1.0 may hold: ElementTree escapes markup, but writes control
    characters and lone surrogates as they are, which makes the file ill-formed (or fails to
    encode); :func:`visible` writes them as escapes first."""
    return visible("" if value is None else str(value))


def junit(report: Report) -> bytes:
    """One testcase per (case, runtime), agreeing with the exit code: an unexpected normative
    failure is a <failure>; a known one is <skipped> with its known-failures reason; unsupported
    and fallback are <skipped> with one shared reason per verdict (the detail in system-out)."""
    root = ET.Element("testsuites", name="opref")
    by_rt: dict[str, list[dict]] = defaultdict(list)
    for rec in report.records:
        by_rt[rec["runtime"]].append(rec)
    for rt in report.data["runtimes"]:
        recs = by_rt.get(rt["spec"], [])
        suite = ET.SubElement(root, "testsuite", name=_x(rt["spec"]), tests=str(len(recs)), errors="0")
        if not rt["available"]:
            ET.SubElement(suite, "properties").append(
                ET.Element("property", name="unavailable", value=_x(rt["reason"]))
            )
        failures = skipped = 0
        for rec in recs:
            seconds = rec.get("seconds", 0)
            seconds = seconds if isinstance(seconds, int | float) and math.isfinite(seconds) else 0.0
            tc = ET.SubElement(
                suite, "testcase", classname=_x(rt["spec"]), name=_x(rec["case"]), time=f"{seconds:.4f}"
            )
            verdict = Verdict(rec["verdict"])
            message = _x(rec.get("message", ""))
            text = _x(f"{verdict}: {message}\nreproduce: {rec['reproduce']}" + cluster_note(report.data, rec))
            group = GROUP[verdict]
            if group is Group.NORMATIVE and "expected_by" not in rec:
                failures += 1
                ET.SubElement(
                    tc, "failure", message=f"{verdict}: {message[:MESSAGE_LIMIT]}", type=str(verdict)
                ).text = text
            elif group is Group.NORMATIVE:
                skipped += 1
                reason = _x(rec.get("expected_reason") or rec["expected_by"])
                ET.SubElement(tc, "skipped", message=f"known failure ({verdict}): {reason}")
                ET.SubElement(tc, "system-out").text = text
            elif group is Group.SKIPPED:
                skipped += 1
                ET.SubElement(tc, "skipped", message=f"{verdict}: {SKIP_REASONS[verdict]}")
                ET.SubElement(tc, "system-out").text = text
            elif verdict is Verdict.DIVERGENCE:
                ET.SubElement(tc, "system-out").text = text
        suite.set("failures", str(failures))
        suite.set("skipped", str(skipped))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# --- plot ---------------------------------------------------------------------------------
