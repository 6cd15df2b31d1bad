"""index.md: the report a person reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from opref.cases import VARIANTS
from opref.escape import visible
from opref.readings import AMBIGUITIES
from opref.report.vocabulary import CLUSTER_COLUMNS, ERROR_COLUMNS, MAX_LISTED, Report
from opref.verdicts import ORDER


def variant_markdown(d: dict) -> list[str]:
    """ "Where the form of the model changes the answer": per runtime, the cases whose verdict
    differs between model variants, then the verdicts per variant and the readings per variant
    where they differ."""
    if not any(len(per_v) > 1 for per_v in d.get("variant_matrix", {}).values()):
        return []
    lines = ["## Where the form of the model changes the answer", ""]
    lines += [
        "The same case as different model forms (`" + "`, `".join(VARIANTS) + "`; README, "
        '"Model variants"): same inputs, same expected output; the forms with nodes around '
        "ConvTranspose (" + ", ".join(f"`{v}`" for v, x in VARIANTS.items() if x.wrapped) + ") feed it "
        "through them, each with its own expected output and bound.",
        "",
    ]
    rows = []
    for rt, changes in d["variant_changes"].items():
        if d["variant_matrix"].get(rt) and len(d["variant_matrix"][rt]) > 1:
            verdict = Md(f"**{len(changes)} cases change verdict**") if changes else "no case changes verdict"
            rows.append([rt, verdict])
    lines += _table(["runtime", "between its variants"], rows)
    for rt, changes in d["variant_changes"].items():
        if not changes:
            continue
        lines += [f"### {_code(rt)}: {len(changes)} cases whose verdict depends on the model's form", ""]
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


class Md(str):
    """Markdown built here from escaped parts: a table cell takes it as it is."""


# What would make outside text Markdown or HTML: a code span, emphasis, a table cell's end, a
# backslash escape, a closing bracket that would complete a link or an image (which a viewer
# may fetch), an opening one that could start a link definition; raw tags and entities are
# written as entities.
_MARKUP = re.compile(r"([\\`*|]|\](?=[(\[])|\]$|^\[)")


def _text(value: object) -> Md:
    """Outside text as Markdown that shows exactly that text, on one line."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    text = visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Md(_MARKUP.sub(r"\\\1", text).replace("\r", " ").replace("\n", " "))


def _code(value: object) -> Md:
    """Outside text as a code span on one line: fenced by more backticks than it holds in a
    row; its pipes escaped, which tables need (index.md's code spans outside tables never
    hold outside text with a pipe but reproduce commands, which quote it)."""
    text = visible(str(value)).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return Md(f"{fence}{pad}{text}{pad}{fence}")


def _cell(value: object) -> str:
    return value if isinstance(value, Md) else _text(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _head(d: dict) -> list[str]:
    lines = ["# opref ConvTranspose conformance report", ""]
    srcs = ", ".join(f"{_code(s['suite'])} ({_text(s['started'])})" for s in d["sources"])
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
        lines += ["## Stale known-failures lines (remove or mend them)", ""]
        lines += [
            f"- line {_text(e['line'])}: {_code(e['key'])} {_text(e.get('why') or 'now passes')}"
            f" - {_text(e['reason'])}"
            for e in d["stale_expectations"]
        ]
        lines.append("")

    return lines


def _summary(d: dict) -> list[str]:
    lines = ["## Summary", ""]
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
            what = f" What to do: {_text(rt['hint'])}." if rt.get("hint") else ""
            lines.append(f"- {_code(rt['spec'])} **unavailable**: {_text(rt['reason'])}.{what}")
    lines += ["", "Reproduce commands below are relative to this report's directory.", ""]
    return lines


def _failures(d: dict) -> list[str]:
    lines = ["## Normative failures", ""]
    if d.get("platform_dependent_count"):
        lines += [
            f"{d['platform_dependent_count']} of them depend on the machine (known-failures lines with "
            "`when=`, CPU features): platform-dependent, not bugs of the runtime.",
            "",
        ]
    if not d["failures"]:
        lines += ["None.", ""]
    else:
        rows = [
            [
                Md(_known(f) + f["verdict"]),
                f["runtime"],
                f["case"],
                f["attributes"],
                f"{f['dtype']} / {f['opset']}",
                f"{f['expected_shape']} / {f['got_shape']}",
                _first_difference(f),
                _code(f["reproduce"]),
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

    return lines


def _ambiguities(d: dict) -> list[str]:
    lines = [
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
        hdr = [Md(f"**{n}**") if n == amb.default else n for n in names]
        rows = [[rt, *[per_rt[rt].get(n, "") for n in names]] for rt in per_rt]
        lines += _table(["runtime", *hdr], rows)
        for rt, counts in per_rt.items():
            top = max(counts.items(), key=lambda kv: kv[1])
            lines.append(
                f"- {_code(rt)} follows {_code(top[0])} for {aid} ({top[1]} of {sum(counts.values())} cases)"
            )
        lines.append("")

    return lines


def _disagreement(d: dict) -> list[str]:
    lines: list[str] = []
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

    return lines


def _divergences(d: dict) -> list[str]:
    lines: list[str] = []
    if d["divergences"]:
        lines += ["## Divergent cases", ""]
        rows = [
            [f["runtime"], f["case"], f["reading"], f["message"][:160]] for f in d["divergences"][:MAX_LISTED]
        ]
        lines += _table(["runtime", "case", "reading followed", "detail"], rows)

    return lines


def _unsupported_and_placement(d: dict) -> list[str]:
    lines = ["## Unsupported (not failures: the runtime says it has no kernel)", ""]
    rows = [[rt, ", ".join(f"{k}: {v}" for k, v in c.items())] for rt, c in d["unsupported"].items()]
    lines += _table(["runtime", "dtype / opset: cases"], rows) if rows else ["None.", ""]

    lines += ["## Placement (where the node really ran)", ""]
    rows = [[rt, ", ".join(f"{k}: {v}" for k, v in c.items())] for rt, c in d["placement"].items()]
    lines += _table(["runtime", "placement: cases"], rows) if rows else ["No placement was reported.", ""]

    return lines


def _problems(d: dict) -> list[str]:
    lines: list[str] = []
    if d["suite_problems"] or d["case_problems"]:
        lines += ["## Suite problems (files that failed verification; those cases were not run)", ""]
        lines += [f"- {_text(p)}" for p in d["suite_problems"]]
        lines += [f"- {_code(k)}: {_text(v)}" for k, v in sorted(d["case_problems"].items())]
        lines.append("")
    if d["read_notes"]:
        lines += ["## Records left out (results.json held what opref does not write)", ""]
        lines += [f"- {_cell(n)}" for n in d["read_notes"]]
        lines.append("")

    return lines


def _notes(d: dict) -> list[str]:
    notes = d.get("notes") or []
    if not notes:
        return []
    lines = ["## Records not shown as they were (results.json held something else)", ""]
    lines += [f"- {_text(n)}" for n in notes[:MAX_LISTED]]
    if len(notes) > MAX_LISTED:
        lines.append(f"- ... {len(notes) - MAX_LISTED} more in report.json (notes).")
    return [*lines, ""]


def _machine(d: dict) -> list[str]:
    lines = ["## Runtimes and machine", ""]
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
    lines += [f"- {_text(k)}: {_text(v)}" for k, v in d["machine"].items()]
    lines += ["", "Plot: ![summary](summary.png)" if d.get("plot") else "", ""]
    return lines


def markdown(report: Report, links=None) -> str:
    """index.md, section by section (``links``: see :func:`cluster_lines`)."""
    d = report.data
    sections = (
        banner_lines(d),
        _head(d)[1:],  # its title is the banner's
        runtime_row_lines(d),
        _summary(d),
        variant_markdown(d),
        cluster_lines(d, links),
        _failures(d),
        error_stat_lines(d),
        _ambiguities(d),
        _disagreement(d),
        _divergences(d),
        _unsupported_and_placement(d),
        _problems(d),
        _notes(d),
        _machine(d),
    )
    return "\n".join(line for section in sections for line in section)


def banner_lines(d: dict) -> list[str]:
    """The report's first lines: the title, then the verdict: exit status and why."""
    b = d["banner"]
    reasons = "; ".join(_text(r) for r in b["reasons"])
    lines = ["# opref ConvTranspose conformance report", ""]
    return [*lines, f"> **{b['status']}** (exit status {b['exit_code']}): {reasons}.", ""]


def runtime_row_lines(d: dict) -> list[str]:
    """One row per runtime: right, unexpected (fails the run), known (listed), other."""
    rows = [
        [
            rt["spec"],
            f"{rt['name']} {rt['version']}" if rt["available"] else "unavailable",
            *[
                (Md(f"**{n}**") if col == "unexpected" and n else n)
                for col, n in d["runtime_rows"].get(rt["spec"], {}).items()
            ],
        ]
        for rt in d["runtimes"]
    ]
    return [
        "## Verdict per runtime",
        "",
        "pass: right (or a must-reject model refused); unexpected: a normative failure the known-failures "
        "file does not list (these fail the run); known: listed there, with its reason; other: a "
        "documented but non-default reading, or skipped (no kernel, provider fallback).",
        "",
        *_table(["runtime", "version", "pass", "unexpected", "known", "other"], rows),
    ]


def _known(f: dict) -> Md:
    if f["unexpected"]:
        return Md("**unexpected** ")
    if f.get("platform"):
        return Md(f"platform-dependent (when {_text(f['platform'])}: {_text(f['known_reason'])}) ")
    return Md(f"known ({_text(f['known_reason'])}) ")


def _first_difference(f: dict) -> str:
    if f["first_mismatch"] is not None:
        return f"at {f['first_mismatch']}: expected {f['expected_value']!r}, got {f['got_value']!r}"
    return f["message"][:200]


# --- JUnit --------------------------------------------------------------------------------


def cluster_lines(d: dict, links=None) -> list[str]:
    """index.md's failure clusters: one row per root cause as far as opref can tell; with
    ``links`` (the bug reports published beside the report: opref.bugreport's ``Links``), each
    row links its cluster's ISSUE.md and repro.py."""
    from opref.bugreport.publish import markdown_cell, markdown_lines  # the floor above's: no circle

    cl = d.get("clusters", [])
    lines = ["## Failure clusters", ""]
    if not cl:
        return [*lines, "None.", ""]
    lines += [
        f"{len(d['failures'])} normative failures in {len(cl)} clusters: grouped by runtime, verdict and "
        "diagnosis (the bug models of opref/diagnose.py that reproduce the output) or, without one, "
        "the message with its numbers blanked. The representative is the cluster's smallest case.",
        "",
        *markdown_lines(links),
    ]
    rows = []
    for c in cl:
        known = Md("; ".join(f"{_text(k)} ({n})" for k, n in c["known_reasons"].items()) or "**not listed**")
        what = Md(f"**{_text(c['diagnosis_text'])}**" if c["diagnosis_text"] else _code(c["signature"]))
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
                Md(f"{_code(c['representative'])}{heat}"),
                _code(c["reproduce"]),
                *([Md(markdown_cell(links, c["id"]))] if links is not None else []),
            ]
        )
    lines += _table([*CLUSTER_COLUMNS, *(["bug report"] if links is not None else [])], rows)
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
            list(ERROR_COLUMNS),
            rows[:MAX_LISTED],
        ),
    ]
