"""The verdict at a glance (issue 26): the banner that opens every report (the exit status and
every reason for it, in words) and one row per runtime of pass / unexpected / known / other, so
that a listed, known failure never reads like a new one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from opref.verdicts import NORMATIVE_FAILURES, Verdict

# What the per-runtime row counts: right answers, failures not listed, failures listed as known,
# and everything else (a documented but non-default reading, no kernel, provider fallback).
ROW_COLUMNS = ("pass", "unexpected", "known", "other")


def runtime_rows(records: Sequence[dict], failures: Sequence[dict], specs: Sequence[str]) -> dict:
    """{runtime: {pass, unexpected, known, other}}: ``pass`` counts pass and rejected (a
    must-reject case refused), ``other`` divergences and skipped cases."""
    rows = {spec: dict.fromkeys(ROW_COLUMNS, 0) for spec in specs}
    unexpected = {(f["runtime"], f["case"]) for f in failures if f["unexpected"]}
    for rec in records:
        row = rows.setdefault(rec["runtime"], dict.fromkeys(ROW_COLUMNS, 0))
        verdict = Verdict(rec["verdict"])
        if verdict in NORMATIVE_FAILURES:
            row["unexpected" if (rec["runtime"], rec["case"]) in unexpected else "known"] += 1
        elif verdict in (Verdict.PASS, Verdict.REJECTED):
            row["pass"] += 1
        else:
            row["other"] += 1
    return rows


def banner(data: dict) -> dict:
    """The report's first line: the exit status and every reason for it, in words."""
    reasons = []
    if not all(s.get("complete", True) for s in data["sources"]):
        reasons.append("a validation run was interrupted or left pairs without a record")
    per_rt = Counter(f["runtime"] for f in data["failures"] if f["unexpected"])
    if per_rt:
        where = ", ".join(f"{n} on {rt}" for rt, n in per_rt.items())
        reasons.append(f"{sum(per_rt.values())} unexpected normative failures ({where})")
    if data["suite_problems"] or data["case_problems"]:
        n = len(data["suite_problems"]) + len(data["case_problems"])
        reasons.append(f"{n} suite problems (files that failed verification)")
    if not data["allow_unavailable"]:
        missing = [rt["spec"] for rt in data["runtimes"] if not rt["available"]]
        if missing:
            reasons.append(f"runtime unavailable: {', '.join(missing)}")
    if data.get("read_notes") or data.get("notes"):
        reasons.append("records of results.json could not be read as they are (see the notes)")
    if not data["records"]:
        reasons.append("no case was validated")
    known = sum(1 for f in data["failures"] if not f["unexpected"])
    if not reasons and data["exit_code"] == 0:
        reasons.append(
            f"every normative failure is a listed known failure ({known})"
            if known
            else "every case ran and was right (or followed a documented reading, or was skipped)"
        )
    elif not reasons:
        reasons.append("see the sections below")
    return {
        "exit_code": data["exit_code"],
        "status": "PASS" if data["exit_code"] == 0 else "FAIL",
        "reasons": reasons,
    }
