"""junit.xml: what CI gates on, agreeing with the exit code."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from opref.report.clusters import cluster_note
from opref.report.vocabulary import Report
from opref.verdicts import GROUP, SKIP_REASONS, Group, Verdict


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
        suite = ET.SubElement(root, "testsuite", name=rt["spec"], tests=str(len(recs)), errors="0")
        if not rt["available"]:
            ET.SubElement(suite, "properties").append(
                ET.Element("property", name="unavailable", value=rt["reason"])
            )
        failures = skipped = 0
        for rec in recs:
            tc = ET.SubElement(
                suite, "testcase", classname=rt["spec"], name=rec["case"], time=f"{rec.get('seconds', 0):.4f}"
            )
            verdict = Verdict(rec["verdict"])
            text = f"{verdict}: {rec.get('message', '')}\nreproduce: {rec['reproduce']}"
            text += cluster_note(report.data, rec)
            group = GROUP[verdict]
            if group is Group.NORMATIVE and "expected_by" not in rec:
                failures += 1
                ET.SubElement(
                    tc, "failure", message=f"{verdict}: {rec.get('message', '')[:300]}", type=str(verdict)
                ).text = text
            elif group is Group.NORMATIVE:
                skipped += 1
                reason = rec.get("expected_reason") or rec["expected_by"]
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
