"""``opref diff OLD NEW``: what changed between two validation runs, case by case.

Records are paired by case and by runtime: the runtimes of the two sides are paired by spec,
or, when each side holds exactly one runtime, those two whatever their specs (two versions of
one runtime: ``ort:cpu`` today against ``ort:cpu@.venvs/ort-1.16/bin/python``). Each pair is

- *newly failing*: a normative failure in NEW that was not one in OLD;
- *newly passing*: a normative failure in OLD that is not one in NEW;
- *changed*: any other change of verdict or of the reading followed (a failure of another
  kind, a divergence that became a pass, a case that became unsupported, ...);
- unchanged otherwise.

Changes are grouped by cluster: runtime pair, the verdicts and the failure's diagnosis (or its
message with the numbers blanked, as the report's clusters are). Both sides pass
:mod:`opref.report.intake` first, as every report does: a record that is not what opref writes
is left out and named in ``notes``; the Markdown escapes outside text as index.md does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from opref.report import intake
from opref.report.clusters import message_signature
from opref.report.markdown import Md, _code, _table, _text
from opref.report.vocabulary import cell_of
from opref.verdicts import NORMATIVE_FAILURES, Verdict

KINDS = ("newly_failing", "newly_passing", "changed")
TITLES = {
    "newly_failing": "Newly failing",
    "newly_passing": "Newly passing",
    "changed": "Changed verdict or reading",
}
MAX_CASES = 50  # cases listed per cluster in Markdown; the JSON has them all


def _failing(rec: dict) -> bool:
    return Verdict(rec["verdict"]) in NORMATIVE_FAILURES


def _by_runtime(results: Sequence[dict]) -> dict[str, dict[str, dict]]:
    """{runtime spec: {case: record}} over every input of one side (later inputs win nothing:
    a (runtime, case) held twice on one side is refused)."""
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for res in results:
        for rec in res["records"]:
            if rec["case"] in out[rec["runtime"]]:
                raise ValueError(
                    f"one side holds two results for runtime {rec['runtime']!r} on case {rec['case']!r}"
                )
            out[rec["runtime"]][rec["case"]] = rec
    return dict(out)


def _versions(results: Sequence[dict]) -> dict[str, str]:
    return {
        rt["spec"]: f"{rt.get('name', '')} {rt.get('version', '')}".strip()
        for res in results
        for rt in res["runtimes"]
    }


def pair_runtimes(old: Sequence[str], new: Sequence[str]) -> list[tuple[str, str]]:
    """(old spec, new spec) pairs: one runtime on each side pairs whatever the names; otherwise
    by equal spec."""
    if len(old) == 1 and len(new) == 1:
        return [(old[0], new[0])]
    return [(spec, spec) for spec in old if spec in new]


def _cluster(rec: dict) -> str:
    from opref.diagnose import summary

    if not _failing(rec):
        return cell_of(rec)
    diagnosis = summary(rec.get("diagnosis") or ())
    return f"{rec['verdict']}: {diagnosis or message_signature(rec)}"


def _kind(before: dict, after: dict) -> str | None:
    if _failing(after) and not _failing(before):
        return "newly_failing"
    if _failing(before) and not _failing(after):
        return "newly_passing"
    if cell_of(before) != cell_of(after):
        return "changed"
    return None


def diff(old: Sequence[object], new: Sequence[object]) -> dict:
    """The comparison of two sides (each a list of results.json dicts); see the module's text.
    ``exit_code`` is 1 when anything newly fails, and when the comparison cannot say so (notes:
    records left out, an incomplete side, failures NEW alone holds, nothing in common)."""
    notes: list[str] = []
    sides = []
    for label, side in (("OLD", old), ("NEW", new)):
        names = [f"{label} {i + 1}" for i in range(len(side))]
        taken, said = intake.results(side, names)
        notes += said
        for name, res in zip(names, taken, strict=True):
            if res is None:
                raise ValueError(f"{name}: not validation results")
            notes += [f"{name}: {n}" for n in res.get("read_notes", ())]
        sides.append([res for res in taken if res is not None])
    old, new = sides
    before, after = _by_runtime(old), _by_runtime(new)
    pairs = pair_runtimes(sorted(before), sorted(after))
    paired_old, paired_new = {a for a, _ in pairs}, {b for _, b in pairs}
    old_versions, new_versions = _versions(old), _versions(new)
    groups: dict[str, dict[tuple, list[dict]]] = {k: defaultdict(list) for k in KINDS}
    counts = dict.fromkeys((*KINDS, "unchanged", "only_old", "only_new"), 0)
    only: dict[str, list[str]] = {"only_old": [], "only_new": []}
    fresh: list[str] = []  # failing cases NEW holds and OLD does not
    for a, b in pairs:
        olds, news = before[a], after[b]
        for case in sorted(set(olds) | set(news)):
            if case not in news:
                counts["only_old"] += 1
                only["only_old"].append(f"{a} {case}")
                continue
            if case not in olds:
                counts["only_new"] += 1
                only["only_new"].append(f"{b} {case}")
                if _failing(news[case]):
                    fresh.append(f"{b} {case}")
                continue
            was, now = olds[case], news[case]
            kind = _kind(was, now)
            if kind is None:
                counts["unchanged"] += 1
                continue
            counts[kind] += 1
            if kind == "changed":  # what it was matters as much as what it is now
                cluster = f"{cell_of(was)} -> {cell_of(now)}"
            else:
                cluster = _cluster(now if kind == "newly_failing" else was)
            row = {
                "case": case,
                "old": cell_of(was),
                "new": cell_of(now),
                "known": bool(now.get("expected_by")),
                "message": (now if kind != "newly_passing" else was).get("message", "")[:300],
                "reproduce": now.get("reproduce", ""),
            }
            groups[kind][(a, b, cluster)].append(row)
    changes = {
        kind: [
            {
                "old_runtime": a,
                "new_runtime": b,
                "cluster": cluster,
                "count": len(rows),
                "cases": rows,
            }
            for (a, b, cluster), rows in sorted(per.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ]
        for kind, per in groups.items()
    }
    # What NEW does not show cannot be called unchanged: an incomplete run, failures on cases or
    # runtimes OLD never had, and two sides with nothing in common never give a green diff.
    for label, side in (("OLD", old), ("NEW", new)):
        for res in side:
            if not res.get("complete", True) or res.get("missing"):
                notes.append(f"{label}: an incomplete run ({len(res.get('missing') or [])} pairs missing)")
    if fresh:
        notes.append(f"{len(fresh)} failing cases only in NEW, e.g. {fresh[0]}")
    unpaired = sorted(set(after) - paired_new)
    for spec in unpaired:
        failing = sum(1 for rec in after[spec].values() if _failing(rec))
        if failing:
            notes.append(f"NEW runtime {spec} pairs with no OLD runtime and has {failing} failures")
    if before and after and not any(case in after[b] for a, b in pairs for case in before[a]):
        notes.append("OLD and NEW have no (runtime, case) in common: nothing was compared")
    return {
        "old": [res.get("suite", "") for res in old],
        "new": [res.get("suite", "") for res in new],
        "pairs": [
            {
                "old": a,
                "new": b,
                "old_version": old_versions.get(a, ""),
                "new_version": new_versions.get(b, ""),
            }
            for a, b in pairs
        ],
        "unpaired_old": sorted(set(before) - paired_old),
        "unpaired_new": unpaired,
        "counts": counts,
        "changes": changes,
        "only": only,
        "notes": notes,
        # Records left out on reading (notes) could hide a new failure: never a green diff then.
        "exit_code": 1 if counts["newly_failing"] or notes else 0,
    }


def summary_line(d: dict) -> str:
    c = d["counts"]
    return (
        f"{c['newly_failing']} newly failing, {c['newly_passing']} newly passing, "
        f"{c['changed']} changed verdict or reading, {c['unchanged']} unchanged; "
        f"cases only in OLD: {c['only_old']}, only in NEW: {c['only_new']}"
    )


def diff_markdown(d: dict) -> str:
    lines = ["# opref diff", ""]
    for p in d["pairs"]:
        lines.append(
            f"- OLD {_code(p['old'])} ({_text(p['old_version'])}) against NEW {_code(p['new'])}"
            f" ({_text(p['new_version'])})"
        )
    for side in ("old", "new"):
        for spec in d[f"unpaired_{side}"]:
            lines.append(f"- only in {side.upper()}, not compared: {_code(spec)}")
    if not d["pairs"]:
        lines.append("- no runtime to compare: the sides share no runtime spec and do not hold one each")
    lines += [f"- NOTE: {_text(n)}" for n in d["notes"]]
    lines += ["", f"**{summary_line(d)}**", ""]
    for kind in KINDS:
        groups = d["changes"][kind]
        lines += [f"## {TITLES[kind]} ({sum(g['count'] for g in groups)})", ""]
        if not groups:
            lines += ["None.", ""]
            continue
        for g in groups:
            pair = (
                _code(g["new_runtime"])
                if g["old_runtime"] == g["new_runtime"]
                else f"{_code(g['old_runtime'])} -> {_code(g['new_runtime'])}"
            )
            lines += [f"### {g['count']} x {_code(g['cluster'])} ({pair})", ""]
            rows = [
                [r["case"], r["old"], Md(_text(r["new"]) + (" (known)" * r["known"])), r["message"][:160]]
                for r in g["cases"][:MAX_CASES]
            ]
            lines += _table(["case", "OLD", "NEW", "message"], rows)
            if g["count"] > MAX_CASES:
                lines += [f"... {g['count'] - MAX_CASES} more in the JSON output.", ""]
    return "\n".join(lines) + "\n"
