"""results.json files -> a report a person reads (index.md, summary.png) and CI gates on
(report.json, junit.xml). Rendering only: every number comes from the validation records.
"""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
import warnings
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opref.boundary import read_results
from opref.cases import VARIANT_SEPARATOR, VARIANTS
from opref.readings import AMBIGUITIES
from opref.validate import dumps, reproduce_command
from opref.verdicts import GROUP, NORMATIVE_FAILURES, ORDER, SKIP_REASONS, Group, Verdict
from opref.version import __version__

SCHEMA = 1
MAX_LISTED = 200  # failure rows in index.md; report.json has them all
# The columns of the failure-cluster table, in Markdown and HTML alike.
CLUSTER_COLUMNS = (
    "#",
    "runtime",
    "verdict",
    "cases",
    "diagnosis (or message)",
    "known reason",
    "all share",
    "representative",
    "reproduce",
)


@dataclass
class Report:
    """The aggregated view of one or more results.json files (what report.json holds)."""

    data: dict

    @property
    def records(self) -> list[dict]:
        return self.data["records"]


def load_results(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Each results.json (or directory holding one) read through :func:`opref.boundary.read_results`:
    ValueError, one line, for a file that is not validation results; a record that is not what
    opref writes is left out and named in that result's ``read_notes``."""
    out = []
    for p in paths:
        results = read_results(p)
        out.append({**results.data, "read_notes": list(results.notes)})
    return out


def exit_code(data: dict) -> int:
    """What ``opref validate`` would have exited with, from the report's data."""
    if not all(s.get("complete", True) for s in data["sources"]):
        return 1
    unavailable = [rt for rt in data["runtimes"] if not rt["available"] and not data["allow_unavailable"]]
    failed = data["unexpected_count"] or data["suite_problems"] or data["case_problems"]
    failed = failed or data.get("read_notes")  # records of results.json left out: never green
    return 1 if failed or unavailable or not data["records"] else 0


def aggregate(results: Sequence[dict], out: str | os.PathLike | None = None) -> Report:
    """Merge validation results (e.g. shards, or one per runtime) into the report's data.

    With ``out`` (the report's directory), reproduce commands name the suite relative to it.
    """
    runtimes: dict[str, dict] = {}
    records: list[dict] = []
    seen = set()
    for res in results:
        suite = res.get("suite_path") or res["suite"]
        if out is not None and suite and os.path.isabs(suite):
            suite = os.path.relpath(suite, Path(out).absolute())
        for rt in res["runtimes"]:
            runtimes.setdefault(rt["spec"], rt)
        for rec in res["records"]:
            key = (rec["runtime"], rec["case"])
            if key not in seen:
                seen.add(key)
                again = reproduce_command(suite, rec["runtime"], rec["case"]) if suite else rec["reproduce"]
                records.append({**rec, "reproduce": again})
                if rec.get("tensors"):
                    records[-1]["tensors_root"] = res.get("tensors_root", "")
    records.sort(key=lambda r: (r["runtime"], r["case"]))
    matrix = {spec: {v.value: 0 for v in ORDER} for spec in runtimes}
    for rec in records:
        matrix[rec["runtime"]][rec["verdict"]] += 1
    expected = {(u["runtime"], u["case"]) for res in results for u in res.get("unexpected", [])}
    failures = [
        {**_failure_row(rec), "unexpected": (rec["runtime"], rec["case"]) in expected}
        for rec in records
        if Verdict(rec["verdict"]) in NORMATIVE_FAILURES
    ]
    ambiguities: dict[str, dict[str, dict[str, int]]] = {}
    for aid in AMBIGUITIES:
        per_rt: dict[str, Counter] = defaultdict(Counter)
        for rec in records:
            if aid not in rec.get("ambiguities", []) or rec["verdict"] in (
                "unsupported",
                "fallback",
                "crashed",
                "timeout",
            ):
                continue
            reading = (rec.get("reading") or {}).get(aid, "no documented reading")
            per_rt[rec["runtime"]][reading] += 1
        ambiguities[aid] = {rt: dict(sorted(c.items())) for rt, c in sorted(per_rt.items())}
    unsupported: dict[str, Counter] = defaultdict(Counter)
    placement: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        if rec["verdict"] == "unsupported":
            unsupported[rec["runtime"]][f"{rec['dtype']} opset {rec['opset']}"] += 1
        if rec.get("placement"):
            placement[rec["runtime"]][rec["placement"]] += 1
    data = {
        "build_matrix": _build_matrix(records, [spec for spec, rt in runtimes.items() if rt["available"]]),
        "schema": SCHEMA,
        "opref_version": __version__,
        "sources": [
            {"suite": r["suite"], "started": r["started"], "seconds": r["seconds"], "complete": r["complete"]}
            for r in results
        ],
        "allow_unavailable": all(r.get("allow_unavailable", False) for r in results) if results else False,
        "stale_expectations": [e for r in results for e in r.get("stale_expectations", [])],
        "machine": results[0]["machine"] if results else {},
        "runtimes": list(runtimes.values()),
        "matrix": matrix,
        "failures": failures,
        "unexpected_count": sum(1 for f in failures if f["unexpected"]),
        "divergences": [_failure_row(r) for r in records if r["verdict"] == "divergence"],
        "ambiguities": ambiguities,
        "unsupported": {k: dict(sorted(v.items())) for k, v in sorted(unsupported.items())},
        "placement": {k: dict(sorted(v.items())) for k, v in sorted(placement.items())},
        "suite_problems": sorted({p for r in results for p in r.get("suite_problems", [])}),
        "case_problems": {k: v for r in results for k, v in r.get("case_problems", {}).items()},
        "read_notes": [n for r in results for n in r.get("read_notes", [])],
        "records": records,
    }
    data.update(variant_views(records))
    data["exit_code"] = exit_code(data)
    _add_diagnosis(data)
    return Report(data)


# --- model variants (issue 14) ------------------------------------------------------------


def variant_of(case: str) -> tuple[str, str]:
    """(base case, variant) of a case name: ``<case>__<variant>``, or the case itself in the
    ``inputs`` form."""
    base, sep, variant = case.rpartition(VARIANT_SEPARATOR)
    if sep and variant in VARIANTS:
        return base, variant
    return case, "inputs"


def variant_views(records: Sequence[dict]) -> dict:
    """What the report says per model variant:

    - ``variant_matrix`` {runtime: {variant: {verdict: count}}};
    - ``variant_changes`` {runtime: {base case: {variant: cell}}}: the cases whose verdict (or
      reading followed) differs between variants of the same case on one runtime;
    - ``variant_ambiguities`` {ambiguity: {runtime: {variant: {reading: count}}}}, only where a
      runtime's readings differ between variants.
    """
    matrix: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    cells: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    readings: dict[str, dict[str, dict[str, Counter]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Counter))
    )
    for rec in records:
        base, variant = variant_of(rec["case"])
        matrix[rec["runtime"]][variant][rec["verdict"]] += 1
        cells[rec["runtime"]][base][variant] = _cell_of(rec)
        if rec["verdict"] in ("pass", "divergence", "fail-shape", "fail-values", "error"):
            for aid in rec.get("ambiguities", []):
                reading = (rec.get("reading") or {}).get(aid, "no documented reading")
                readings[aid][rec["runtime"]][variant][reading] += 1
    order = {v: i for i, v in enumerate(VARIANTS)}
    changes = {
        rt: {
            base: dict(sorted(by_variant.items(), key=lambda kv: order[kv[0]]))
            for base, by_variant in sorted(per_case.items())
            if len(by_variant) > 1 and len(set(by_variant.values())) > 1
        }
        for rt, per_case in sorted(cells.items())
    }
    ambiguities = {}
    for aid, per_rt in readings.items():
        differing = {
            rt: {v: dict(sorted(c.items())) for v, c in sorted(per_v.items(), key=lambda kv: order[kv[0]])}
            for rt, per_v in sorted(per_rt.items())
            if len({tuple(sorted(c)) for c in per_v.values()}) > 1
        }
        if differing:
            ambiguities[aid] = differing
    return {
        "variant_matrix": {
            rt: {
                v: {verdict: n for verdict, n in sorted(c.items())}
                for v, c in sorted(per_v.items(), key=lambda kv: order[kv[0]])
            }
            for rt, per_v in sorted(matrix.items())
        },
        "variant_changes": changes,
        "variant_ambiguities": ambiguities,
    }


def variant_markdown(d: dict) -> list[str]:
    """ "Where the form of the model changes the answer": per runtime, the cases whose verdict
    differs between model variants, then the verdicts per variant and the readings per variant
    where they differ."""
    if not any(len(per_v) > 1 for per_v in d.get("variant_matrix", {}).values()):
        return []
    lines = ["## Where the form of the model changes the answer", ""]
    lines += [
        "The same case as different model forms (`" + "`, `".join(VARIANTS) + "`; README, "
        '"Model variants"): same inputs, same expected output.',
        "",
    ]
    rows = []
    for rt, changes in d["variant_changes"].items():
        if d["variant_matrix"].get(rt) and len(d["variant_matrix"][rt]) > 1:
            verdict = f"**{len(changes)} cases change verdict**" if changes else "no case changes verdict"
            rows.append([rt, verdict])
    lines += _table(["runtime", "between its variants"], rows)
    for rt, changes in d["variant_changes"].items():
        if not changes:
            continue
        lines += [f"### `{rt}`: {len(changes)} cases whose verdict depends on the model's form", ""]
        variants = [v for v in VARIANTS if any(v in c for c in changes.values())]
        shown = list(changes.items())[:MAX_LISTED]
        lines += _table(
            ["case", *variants], [[base, *[c.get(v, "-") for v in variants]] for base, c in shown]
        )
        if len(changes) > MAX_LISTED:
            lines += [f"... {len(changes) - MAX_LISTED} more in report.json (variant_changes).", ""]
    lines += ["### Verdicts per variant", ""]
    shown_verdicts = [
        v.value
        for v in ORDER
        if any(c.get(v.value) for per_v in d["variant_matrix"].values() for c in per_v.values())
    ]
    rows = [
        [rt, variant, *[c.get(v, "") for v in shown_verdicts]]
        for rt, per_v in d["variant_matrix"].items()
        for variant, c in per_v.items()
    ]
    lines += _table(["runtime", "variant", *shown_verdicts], rows)
    for aid, per_rt in d["variant_ambiguities"].items():
        lines += [f"### {aid}: readings per variant (they differ)", ""]
        rows = [
            [rt, variant, ", ".join(f"{r}: {n}" for r, n in c.items())]
            for rt, per_v in per_rt.items()
            for variant, c in per_v.items()
        ]
        lines += _table(["runtime", "variant", "reading: cases"], rows)
    return lines


def _cell_of(rec: dict | None) -> str:
    if rec is None:
        return "-"
    reading = rec.get("reading") or {}
    if rec["verdict"] == "divergence" and reading:
        return "divergence: " + ",".join(reading.values())
    return rec["verdict"]


def _build_matrix(records: list[dict], specs: list[str]) -> dict:
    """The cases on which the runtimes (builds, providers) do not all agree: case -> {runtime: cell}.

    Unsupported/fallback cells do not count as disagreement on their own.
    """
    by_case: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in records:
        by_case[rec["case"]][rec["runtime"]] = rec
    out = {}
    for case, recs in sorted(by_case.items()):
        cells = {spec: _cell_of(recs.get(spec)) for spec in specs}
        judged = {c for c in cells.values() if c not in ("-", "unsupported", "fallback")}
        if len(specs) > 1 and len(judged) > 1:
            out[case] = cells
    return out


def _failure_row(rec: dict) -> dict:
    cmp = rec.get("comparison") or {}
    return {
        "case": rec["case"],
        "runtime": rec["runtime"],
        "verdict": rec["verdict"],
        "attributes": rec["attributes"],
        "dtype": rec["dtype"],
        "opset": rec["opset"],
        "expected_shape": rec.get("expected_shape"),
        "got_shape": rec.get("got_shape"),
        "first_mismatch": cmp.get("first_mismatch"),
        "expected_value": cmp.get("expected_at_first"),
        "got_value": cmp.get("got_at_first"),
        "reading": rec.get("reading"),
        "message": rec.get("message", ""),
        "known_reason": rec.get("expected_reason", ""),
        "reproduce": rec["reproduce"],
    }


# --- Markdown -----------------------------------------------------------------------------


def _cell(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def markdown(report: Report) -> str:
    d = report.data
    lines = ["# opref ConvTranspose conformance report", ""]
    srcs = ", ".join(f"`{s['suite']}` ({s['started']})" for s in d["sources"])
    lines += [f"opref {d['opref_version']}; suite {srcs}; {len(d['records'])} (case, runtime) results.", ""]
    lines += [
        f"**{d['unexpected_count']} unexpected normative failures** "
        f"({len(d['failures'])} normative failures in all, {len(d['divergences'])} divergences). "
        f"Exit code: {d['exit_code']}.",
        "",
    ]
    if not all(src["complete"] for src in d["sources"]):
        lines += [
            "**INCOMPLETE: a validation run was interrupted; these results hold only what finished.**",
            "",
        ]
    if d["stale_expectations"]:
        lines += ["## Known failures that no longer fail (remove these lines)", ""]
        lines += [
            f"- line {e.get('line', '?')}: `{e.get('key', '')}` now passes - {e.get('reason', '')}"
            for e in d["stale_expectations"]
        ]
        lines.append("")

    lines += ["## Summary", ""]
    shown = [v.value for v in ORDER if any(d["matrix"][rt][v.value] for rt in d["matrix"])]
    rows = []
    for rt in d["runtimes"]:
        spec = rt["spec"]
        if not rt["available"]:
            rows.append([spec, "unavailable", *["" for _ in shown]])
        else:
            rows.append([spec, f"{rt['name']} {rt['version']}", *[d["matrix"][spec][v] or "" for v in shown]])
    lines += _table(["runtime", "version", *shown], rows)
    for rt in d["runtimes"]:
        if not rt["available"]:
            what = f" What to do: {rt['hint']}." if rt.get("hint") else ""
            lines.append(f"- `{rt['spec']}` **unavailable**: {rt['reason']}.{what}")
    lines += ["", "Reproduce commands below are relative to this report's directory.", ""]
    lines += variant_markdown(d)

    lines += cluster_lines(d)
    lines += ["## Normative failures", ""]
    if not d["failures"]:
        lines += ["None.", ""]
    else:
        rows = [
            [
                ("**unexpected** " if f["unexpected"] else f"known ({f['known_reason']}) ") + f["verdict"],
                f["runtime"],
                f["case"],
                f["attributes"],
                f"{f['dtype']} / {f['opset']}",
                f"{f['expected_shape']} / {f['got_shape']}",
                _first_difference(f),
                f"`{f['reproduce']}`",
            ]
            for f in d["failures"][:MAX_LISTED]
        ]
        lines += _table(
            [
                "verdict",
                "runtime",
                "case",
                "attributes",
                "dtype / opset",
                "expected / got shape",
                "first difference or message",
                "reproduce",
            ],
            rows,
        )
        if len(d["failures"]) > MAX_LISTED:
            lines += [f"... {len(d['failures']) - MAX_LISTED} more in report.json.", ""]

    lines += error_stat_lines(d)
    lines += [
        "## Ambiguities: which reading each runtime follows",
        "",
        "Counts of cases per reading; opref's default is in bold. See the policy table in README.md.",
        "",
    ]
    for aid, amb in AMBIGUITIES.items():
        per_rt = d["ambiguities"].get(aid, {})
        lines += [f"### {aid}", "", amb.summary, ""]
        if not per_rt:
            lines += ["No runtime produced a comparable result on these cases.", ""]
            continue
        names = [*list(amb.readings), "no documented reading"]
        hdr = [f"**{n}**" if n == amb.default else n for n in names]
        rows = [[rt, *[per_rt[rt].get(n, "") for n in names]] for rt in per_rt]
        lines += _table(["runtime", *hdr], rows)
        for rt, counts in per_rt.items():
            top = max(counts.items(), key=lambda kv: kv[1])
            lines.append(f"- `{rt}` follows `{top[0]}` for {aid} ({top[1]} of {sum(counts.values())} cases)")
        lines.append("")

    if len([rt for rt in d["runtimes"] if rt["available"]]) > 1:
        lines += ["## Where the runtimes disagree (one column per runtime, build or provider)", ""]
        specs = [rt["spec"] for rt in d["runtimes"] if rt["available"]]
        rows = [
            [case, *[cells[s] for s in specs]] for case, cells in list(d["build_matrix"].items())[:MAX_LISTED]
        ]
        if rows:
            lines += _table(["case", *specs], rows)
            if len(d["build_matrix"]) > MAX_LISTED:
                lines += [
                    f"... {len(d['build_matrix']) - MAX_LISTED} more in report.json (build_matrix).",
                    "",
                ]
        else:
            lines += ["They agree on every case they all ran.", ""]

    if d["divergences"]:
        lines += ["## Divergent cases", ""]
        rows = [
            [f["runtime"], f["case"], f["reading"], f["message"][:160]] for f in d["divergences"][:MAX_LISTED]
        ]
        lines += _table(["runtime", "case", "reading followed", "detail"], rows)

    lines += ["## Unsupported (not failures: the runtime says it has no kernel)", ""]
    rows = [[rt, ", ".join(f"{k}: {v}" for k, v in c.items())] for rt, c in d["unsupported"].items()]
    lines += _table(["runtime", "dtype / opset: cases"], rows) if rows else ["None.", ""]

    lines += ["## Placement (where the node really ran)", ""]
    rows = [[rt, ", ".join(f"{k}: {v}" for k, v in c.items())] for rt, c in d["placement"].items()]
    lines += _table(["runtime", "placement: cases"], rows) if rows else ["No placement was reported.", ""]

    if d["suite_problems"] or d["case_problems"]:
        lines += ["## Suite problems (files that failed verification; those cases were not run)", ""]
        lines += [f"- {p}" for p in d["suite_problems"]]
        lines += [f"- `{k}`: {v}" for k, v in sorted(d["case_problems"].items())]
        lines.append("")
    if d["read_notes"]:
        lines += ["## Records left out (results.json held what opref does not write)", ""]
        lines += [f"- {_cell(n)}" for n in d["read_notes"]]
        lines.append("")

    lines += ["## Runtimes and machine", ""]
    rows = [
        [
            rt["spec"],
            rt["name"],
            rt["version"],
            "yes" if rt["available"] else "no",
            json.dumps(rt.get("details", {}), sort_keys=True)[:200],
        ]
        for rt in d["runtimes"]
    ]
    lines += _table(["spec", "name", "version", "available", "details"], rows)
    lines += [f"- {k}: {v}" for k, v in d["machine"].items()]
    lines += ["", "Plot: ![summary](summary.png)" if d.get("plot") else "", ""]
    return "\n".join(lines)


def _first_difference(f: dict) -> str:
    if f["first_mismatch"] is not None:
        return f"at {f['first_mismatch']}: expected {f['expected_value']!r}, got {f['got_value']!r}"
    return f["message"][:200]


# --- JUnit --------------------------------------------------------------------------------


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
            text += _cluster_note(report.data, rec)
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


def short_label(spec: str) -> str:
    """A runtime spec for a plot axis: an interpreter path shortened to its environment's name."""
    plain, sep, interpreter = spec.rpartition("@")
    if not sep:
        return spec
    parts = Path(interpreter).parts
    env = parts[-3] if len(parts) >= 3 and parts[-2] == "bin" else interpreter
    return f"{plain}@{env}"


CLIP = 1e3  # the error plot's right edge: larger fractions of the bound are drawn there


def plot(report: Report, path: Path) -> bool:
    """summary.png: error as a fraction of the bound per runtime, and verdict counts. False
    when matplotlib (the 'plot' extra) is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    d = report.data
    specs = [rt["spec"] for rt in d["runtimes"] if rt["available"]]
    if not specs:
        return False  # nothing ran: nothing to draw
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 1.6 + 0.7 * max(len(specs), 2)))
    floor = 1e-4
    labels: list[str] = []
    for i, spec in enumerate(specs):
        # Divergences are judged against another reading; only normative comparisons are drawn.
        judged = [
            r
            for r in report.records
            if r["runtime"] == spec and r.get("comparison") and r["verdict"] in ("pass", "fail-values")
        ]
        fr = [
            r["comparison"]["max_bound_fraction"] for r in judged if not r["comparison"]["bitexact_required"]
        ]
        exact = [r for r in judged if r["comparison"]["bitexact_required"]]
        vals = [min(max(f, floor), CLIP) for f in fr]
        jitter = [i + 0.3 * ((k * 37 % 17) / 17 - 0.5) for k in range(len(vals))]
        ax1.scatter(vals, jitter, s=9, alpha=0.6)
        ok_exact = sum(1 for r in exact if r["comparison"]["ok"])
        labels.append(f"{short_label(spec)}\nexact data {ok_exact}/{len(exact)} bit-exact")
    ax1.axvline(1.0, color="red", lw=1)
    ax1.set_xscale("log")
    ax1.set_xlim(floor / 2, CLIP * 2)
    ax1.axvspan(CLIP * 0.8, CLIP * 2, color="#eeeeee", zorder=0)
    ax1.text(
        CLIP * 1.25,
        0.02,
        "clipped",
        transform=ax1.get_xaxis_transform(),
        ha="center",
        va="bottom",
        rotation=90,
        fontsize=7,
        color="#424242",
    )
    ax1.set_yticks(range(len(specs)), labels, fontsize=8)
    ax1.set_xlabel(
        "max |error| / bound per random-data case (1 = at the bound; 0 drawn at 1e-4)\n"
        f"values past {CLIP:.0e} are clipped: drawn at {CLIP:.0e}, in the grey band"
    )
    ax1.set_title("How close to the tolerance bound")
    colors = {
        "pass": "#2e7d32",
        "rejected": "#66bb6a",
        "divergence": "#fdd835",
        "unsupported": "#bdbdbd",
        "fallback": "#9e9e9e",
        "timeout": "#8d6e63",
        # Two failures a reader must tell apart: a red and a clearly different orange-brown.
        "fail-shape": "#b71c1c",
        "fail-values": "#ff6f00",
        "error": "#ad1457",
        "accepted-invalid": "#6a1b9a",
        "crashed": "#000000",
    }
    left = [0] * len(specs)
    for v in ORDER:
        counts = [d["matrix"][s][v.value] for s in specs]
        if any(counts):
            ax2.barh(range(len(specs)), counts, left=left, color=colors.get(v.value), label=v.value)
            left = [a + b for a, b in zip(left, counts, strict=True)]
    ax2.set_yticks(range(len(specs)), [short_label(sp) for sp in specs], fontsize=8)
    ax2.set_xlabel("cases")
    ax2.set_title("Verdicts")
    ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(results: Sequence[dict], out: str | os.PathLike) -> Report:
    """Write index.md, index.html, report.json, junit.xml and (with matplotlib) summary.png and
    the clusters' heatmaps/ into ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    report = aggregate(results, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib's layout notes are not the user's business
        report.data["plot"] = plot(report, out / "summary.png")
        heatmaps(report, out)
    (out / "report.json").write_text(dumps(report.data))
    (out / "junit.xml").write_bytes(junit(report))
    (out / "index.md").write_text(markdown(report))
    from opref.html import page

    (out / "index.html").write_text(page(report, out), encoding="utf-8")
    return report


# --- failure clusters, error statistics, heatmaps ------------------------------------------

# Facts a cluster's cases may all share, as data: (label, test on a record).
SHARED_FACTS: tuple[tuple[str, object], ...] = (
    ("group > 1", lambda r: r["attributes"].get("group", 1) > 1),
    ("output_shape given", lambda r: "output_shape" in r["attributes"]),
    ("pads given", lambda r: any(r["attributes"].get("pads") or [])),
    ("output_padding > 0", lambda r: any(r["attributes"].get("output_padding") or [])),
    ("dilations > 1", lambda r: any(d > 1 for d in r["attributes"].get("dilations") or [])),
    ("strides > 1", lambda r: any(s > 1 for s in r["attributes"].get("strides") or [])),
    ("auto_pad SAME_*", lambda r: str(r["attributes"].get("auto_pad", "")).startswith("SAME")),
    ("auto_pad VALID", lambda r: r["attributes"].get("auto_pad") == "VALID"),
    ("ambiguous", lambda r: bool(r.get("ambiguities"))),
    ("opset 1", lambda r: r["opset"] == 1),
)


def message_signature(rec: dict) -> str:
    """A failure message with its numbers, shapes and lists blanked: failures that share it
    share a cause as far as the message tells."""
    if rec["verdict"] == "accepted-invalid":
        return "returns an output for a must-reject model"
    msg = rec.get("message", "")
    msg = re.sub(r"^matches no documented reading; ", "", msg)
    msg = re.sub(r"^under .*? \(the nearest documented reading\): ", "", msg)
    msg = re.sub(r"\[[^\]]*\]|\([^)]*\)", "…", msg)
    msg = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", msg)
    return msg.split("\n")[0][:90]


def _size(rec: dict) -> int:
    shape = rec.get("expected_shape") or rec.get("got_shape") or []
    return math.prod(shape) if shape else 0


def clusters(records: Sequence[dict]) -> list[dict]:
    """Normative failures grouped by (runtime, verdict, diagnosis or, without one, message
    signature); largest first. Each names its count, known reasons, the facts all its cases
    share, and its smallest case as the representative with its reproduce command."""
    from opref.diagnose import summary

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in records:
        if Verdict(rec["verdict"]) not in NORMATIVE_FAILURES:
            continue
        diag = tuple(rec.get("diagnosis") or ())
        key = (rec["runtime"], rec["verdict"], diag, "" if diag else message_signature(rec))
        groups[key].append(rec)
    out = []
    for (runtime, verdict, diag, signature), recs in groups.items():
        rep = min(recs, key=lambda r: (_size(r), r["case"]))
        reasons = Counter(r.get("expected_reason", "") for r in recs if r.get("expected_reason"))
        shared = [label for label, test in SHARED_FACTS if all(test(r) for r in recs)]
        for field, name in (("dtype", "dtype"), ("family", "family")):
            values = {r.get(field) for r in recs}
            if len(values) == 1 and None not in values:
                shared.append(f"{name} {values.pop()}")
        out.append(
            {
                "runtime": runtime,
                "verdict": verdict,
                "diagnosis": list(diag),
                "diagnosis_text": summary(diag),
                "signature": signature,
                "count": len(recs),
                "unexpected": sum(1 for r in recs if "expected_by" not in r),
                "known_reasons": dict(reasons.most_common()),
                "shared": shared,
                "cases": sorted(r["case"] for r in recs),
                "representative": rep["case"],
                "reproduce": rep["reproduce"],
                "heatmap": None,
            }
        )
    out.sort(key=lambda c: (-c["count"], c["runtime"], c["verdict"], c["signature"], c["diagnosis"]))
    for i, c in enumerate(out, 1):
        c["id"] = i
    return out


def error_stats(rec: dict) -> dict | None:
    """Per-case error statistics of a failing comparison (None when there was none)."""
    cmp = rec.get("comparison")
    if not cmp or cmp.get("ok"):
        return None
    return {
        "max_abs_error": cmp.get("max_abs_error"),
        "max_rel_error": rec.get("max_rel_error"),
        "max_ulp": cmp.get("max_ulp"),
        "max_bound_fraction": cmp.get("max_bound_fraction"),
        "mismatches": cmp.get("mismatches"),
        "bitexact_required": cmp.get("bitexact_required"),
    }


def _add_diagnosis(data: dict) -> None:
    """Clusters into the report's data; diagnosis and error statistics into each failure row."""
    from opref.diagnose import summary

    data["clusters"] = clusters(data["records"])
    by_key = {(r["runtime"], r["case"]): r for r in data["records"]}
    cluster_of = {(c["runtime"], case): c["id"] for c in data["clusters"] for case in c["cases"]}
    for row in data["failures"]:
        rec = by_key[(row["runtime"], row["case"])]
        row["diagnosis"] = list(rec.get("diagnosis") or [])
        row["diagnosis_text"] = summary(row["diagnosis"])
        row["error"] = error_stats(rec)
        row["cluster"] = cluster_of.get((row["runtime"], row["case"]))
        row["tensors"] = rec.get("tensors")


def _cluster_note(data: dict, rec: dict) -> str:
    cluster = next(
        (c for c in data.get("clusters", []) if c["runtime"] == rec["runtime"] and rec["case"] in c["cases"]),
        None,
    )
    if cluster is None:
        return ""
    what = cluster["diagnosis_text"] or cluster["signature"]
    return f"\ncluster {cluster['id']} ({cluster['count']} cases): {what}"


def cluster_lines(d: dict) -> list[str]:
    """index.md's failure clusters: one row per root cause as far as opref can tell."""
    cl = d.get("clusters", [])
    lines = ["## Failure clusters", ""]
    if not cl:
        return [*lines, "None.", ""]
    lines += [
        f"{len(d['failures'])} normative failures in {len(cl)} clusters: grouped by runtime, verdict and "
        "diagnosis (the bug models of opref/diagnose.py that reproduce the output) or, without one, "
        "the message with its numbers blanked. The representative is the cluster's smallest case.",
        "",
    ]
    rows = []
    for c in cl:
        known = "; ".join(f"{k} ({n})" for k, n in c["known_reasons"].items()) or "**not listed**"
        what = f"**{c['diagnosis_text']}**" if c["diagnosis"] else f"`{c['signature']}`"
        heat = f" ![heatmap]({c['heatmap']})" if c.get("heatmap") else ""
        rows.append(
            [
                c["id"],
                c["runtime"],
                c["verdict"],
                c["count"],
                what,
                known,
                ", ".join(c["shared"]),
                f"`{c['representative']}`{heat}",
                f"`{c['reproduce']}`",
            ]
        )
    lines += _table(CLUSTER_COLUMNS, rows)
    return lines


def _num(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def error_stat_lines(d: dict) -> list[str]:
    """index.md's per-case error statistics of failing comparisons."""
    rows = [
        [
            f["runtime"],
            f["case"],
            f.get("cluster") or "",
            _num(e["max_abs_error"]),
            _num(e["max_rel_error"]),
            _num(e["max_ulp"]),
            "exact data" if e["bitexact_required"] else _num(e["max_bound_fraction"]),
            _num(e["mismatches"]),
        ]
        for f in d["failures"]
        if (e := f.get("error"))
    ]
    if not rows:
        return []
    return [
        "## Error statistics (failing comparisons)",
        "",
        *_table(
            [
                "runtime",
                "case",
                "cluster",
                "max abs",
                "max rel",
                "max ULP",
                "max fraction of bound",
                "mismatches",
            ],
            rows[:MAX_LISTED],
        ),
    ]


def _heat_planes(ratio: np.ndarray, bad: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, ratio plane, mismatch plane) for batch 0 and up to 4 output channels; 1-D outputs
    become one row, 3-D and more take the maximum over the leading spatial axes."""
    planes = []
    for m in range(min(ratio.shape[1], 4)):
        r, b = ratio[0, m], bad[0, m]
        if r.ndim == 1:
            r, b = r[None, :], b[None, :]
        while r.ndim > 2:
            r, b = r.max(axis=0), b.any(axis=0)
        planes.append((f"channel {m}", r, b))
    return planes


def heatmap(expected, output, bound, path: Path, title: str) -> bool:
    """A PNG of |error| / bound over the output's spatial plane(s), mismatches outlined in
    black (exact data: |error| itself, any difference a mismatch). False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
    except ImportError:
        return False
    err = np.abs(output.astype(np.float64) - expected.astype(np.float64))
    err = np.where(np.isnan(err), np.inf, err)
    exact = bound is None or not np.any(bound)
    if exact:
        bad, ratio, label = err != 0, err, "|error| (exact data: any difference fails)"
    else:
        with np.errstate(all="ignore"):
            ratio = np.where(err == 0, 0.0, err / bound)
        bad, label = ~(err <= bound), "|error| / bound (1 = at the bound)"
    ratio = np.where(np.isfinite(ratio), ratio, np.nanmax(np.where(np.isfinite(ratio), ratio, 0)) or 1.0)
    planes = _heat_planes(ratio, bad)
    fig, axes = plt.subplots(1, len(planes), figsize=(3.2 * len(planes) + 1.4, 3.4), squeeze=False)
    vmax = max(float(ratio.max(initial=0)), 1e-12)
    for ax, (name, r, b) in zip(axes[0], planes, strict=True):
        im = ax.imshow(r, cmap="magma_r", vmin=0, vmax=vmax, interpolation="nearest", aspect="auto")
        ys, xs = np.nonzero(b)
        for y, x in list(zip(ys, xs, strict=True))[:2000]:
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="#00e5ff", lw=1.2))
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    fig.subplots_adjust(top=0.78, right=0.76)
    fig.colorbar(im, cax=fig.add_axes((0.8, 0.12, 0.025, 0.62))).set_label(label, fontsize=7)
    fig.suptitle(textwrap.fill(title, 60), fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def heatmaps(report: Report, out: Path) -> None:
    """heatmaps/cluster-<id>.png for every cluster whose representative has saved tensors of
    the expected shape; the path goes into the cluster's ``heatmap``."""
    from opref.tensors import load

    by_key = {(r["runtime"], r["case"]): r for r in report.records}
    for c in report.data.get("clusters", []):
        rec = by_key.get((c["runtime"], c["representative"]))
        paths = (rec or {}).get("tensors") or {}
        root = (rec or {}).get("tensors_root", "")
        want, got = load(root, paths, "expected"), load(root, paths, "output")
        if want is None or got is None or want.shape != got.shape or want.ndim < 3:
            continue
        (out / "heatmaps").mkdir(exist_ok=True)
        rel = f"heatmaps/cluster-{c['id']}.png"
        title = f"cluster {c['id']}: {c['runtime']} {c['representative']} ({c['verdict']})"
        if heatmap(want, got, load(root, paths, "bound"), out / rel, title):
            c["heatmap"] = rel
