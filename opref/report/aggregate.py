"""results.json files -> the report's data (what report.json holds): one aggregation that
every output renders. Every number comes from the validation records."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from opref.boundary import read_results
from opref.cases import VARIANTS
from opref.readings import AMBIGUITIES
from opref.report import intake
from opref.report.clusters import add_diagnosis
from opref.report.glance import banner, runtime_rows
from opref.report.vocabulary import SCHEMA, Report, cell_of, variant_of
from opref.validate import reproduce_command
from opref.verdicts import NORMATIVE_FAILURES, ORDER, Verdict
from opref.version import __version__


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
    # Records of results.json left out, or fields that could not be taken: never green.
    failed = failed or data.get("read_notes") or data.get("notes")
    return 1 if failed or unavailable or not data["records"] else 0


def aggregate(
    results: Sequence[object],
    out: str | os.PathLike | None = None,
    roots: Sequence[str | os.PathLike] | None = None,
) -> Report:
    """Merge validation results (e.g. shards, or one per runtime) into the report's data.

    With ``out`` (the report's directory), reproduce commands name the suite relative to it.
    ``roots`` are the directories the results were read from: saved tensors are looked for
    there, and nowhere else (without them, in the ``tensors_root`` the results name). Records
    of the wrong shape cost themselves (or a field), with a note in ``notes``, never the report.
    """
    names = None if roots is None else [str(Path(r) / "results.json") for r in roots]
    taken, notes = intake.results(results, names)
    declared = [(res or {}).get("tensors_root", "") for res in taken]
    tensor_roots = [str(r) for r in roots] if roots is not None else declared
    results = [res for res in taken if res is not None]
    tensor_roots = [root for root, res in zip(tensor_roots, taken, strict=True) if res is not None]
    runtimes: dict[str, dict] = {}
    records: list[dict] = []
    seen = set()
    refuse_overlap(results)
    for res, tensors_root in zip(results, tensor_roots, strict=True):
        suite = res.get("suite_path") or res["suite"]
        if out is not None and suite and os.path.isabs(suite):
            suite = os.path.relpath(suite, Path(out).absolute())
        for rt in res["runtimes"]:
            runtimes.setdefault(rt["spec"], rt)
        for rec in res["records"]:
            key = (rec["runtime"], rec["case"])
            if key in seen:
                # One file holding a pair twice is not what opref writes: never green, and a
                # failing record is never hidden behind a passing one.
                notes.append(f"{rec['runtime']} {rec['case']}: a second record of the pair; the worse kept")
                at = next(i for i, r in enumerate(records) if (r["runtime"], r["case"]) == key)
                if Verdict(rec["verdict"]) in NORMATIVE_FAILURES:
                    records[at] = {**rec, "reproduce": records[at]["reproduce"]}
                continue
            seen.add(key)
            spec = rec["runtime"] if out is None else spec_from(rec["runtime"], out)
            again = reproduce_command(suite, spec, rec["case"]) if suite else rec["reproduce"]
            records.append({**rec, "reproduce": again})
            if rec.get("tensors"):
                records[-1]["tensors_root"] = tensors_root
    records.sort(key=lambda r: (r["runtime"], r["case"]))
    matrix = {spec: {v.value: 0 for v in ORDER} for spec in runtimes}
    for rec in records:
        matrix[rec["runtime"]][rec["verdict"]] += 1
    # Green is earned record by record: a normative failure is known only when the run's own
    # record names the known-failures line that covers it and the run did not list it as
    # unexpected. A results file whose 'unexpected' list is missing or was trimmed (a report.json
    # passed as results, a hand edit) cannot turn a failure green.
    unexpected = {(u["runtime"], u["case"]) for res in results for u in res.get("unexpected", [])}
    for runtime, case in sorted(unexpected - seen):
        notes.append(f"{runtime} {case}: listed as an unexpected failure, but its record is missing")
    unexpected |= {
        (rec["runtime"], rec["case"])
        for rec in records
        if Verdict(rec["verdict"]) in NORMATIVE_FAILURES and not rec.get("expected_by")
    }
    failures = [
        {**_failure_row(rec), "unexpected": (rec["runtime"], rec["case"]) in unexpected}
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
        "stale_expectations": merged_stale(results),
        "machine": results[0]["machine"] if results else {},
        "runtimes": list(runtimes.values()),
        "matrix": matrix,
        "failures": failures,
        "unexpected_count": sum(1 for f in failures if f["unexpected"]),
        "platform_dependent_count": sum(1 for f in failures if f["platform"]),
        "divergences": [_failure_row(r) for r in records if r["verdict"] == "divergence"],
        "ambiguities": ambiguities,
        "unsupported": {k: dict(sorted(v.items())) for k, v in sorted(unsupported.items())},
        "placement": {k: dict(sorted(v.items())) for k, v in sorted(placement.items())},
        "suite_problems": sorted({p for r in results for p in r.get("suite_problems", [])}),
        "case_problems": {k: v for r in results for k, v in r.get("case_problems", {}).items()},
        "read_notes": [n for r in results for n in r.get("read_notes", [])],
        "records": records,
        "notes": notes,
    }
    data.update(variant_views(records))
    data["exit_code"] = exit_code(data)
    data["runtime_rows"] = runtime_rows(records, failures, list(runtimes))
    data["banner"] = banner(data)
    add_diagnosis(data)
    return Report(data)


# --- model variants (issue 14) ------------------------------------------------------------


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
        cells[rec["runtime"]][base][variant] = cell_of(rec)
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


def refuse_overlap(results: Sequence[dict]) -> None:
    """ValueError when two inputs hold a result for the same (runtime, case): merging them would
    keep one and drop the other. Shards of one run never overlap; two runs of one runtime are
    compared with ``opref diff``, not merged."""
    owner: dict[tuple[str, str], int] = {}
    clash: dict[str, tuple[int, int, int]] = {}
    for i, res in enumerate(results):
        for rec in res["records"]:
            key = (rec["runtime"], rec["case"])
            first = owner.setdefault(key, i)
            if first != i:
                a, b, n = clash.get(rec["runtime"], (first, i, 0))
                clash[rec["runtime"]] = (a, b, n + 1)
    if clash:
        what = "; ".join(
            f"runtime {spec!r} in inputs {a + 1} and {b + 1} ({n} cases in both)"
            for spec, (a, b, n) in clash.items()
        )
        raise ValueError(
            f"two inputs hold results for the same runtime and case ({what}): a merged report would "
            "drop one of them. Compare two runs with 'opref diff OLD NEW'; merge only shards or "
            "different runtimes"
        )


def spec_from(spec: str, out: str | os.PathLike) -> str:
    """``spec`` as a command run from the report's directory ``out`` must spell it: a relative
    interpreter path (``ort:cpu@.venvs/x/bin/python``, relative to where validate ran) made
    relative to ``out``."""
    plain, sep, interpreter = spec.rpartition("@")
    if not sep or not interpreter or os.path.isabs(interpreter) or "/" not in interpreter:
        return spec
    return f"{plain}@{os.path.relpath(Path(interpreter).absolute(), Path(out).absolute())}"


def merged_stale(results: Sequence[dict]) -> list[dict]:
    """The known-failures lines stale in every input (runs over different runtimes with one file:
    a line about the runtime of one run names no runtime of the other, and is not stale), each
    with its most telling reason."""
    rank = {"now passes": 0, "matches no case of the suite": 1, "matches no runtime of this run": 2}
    seen: dict[tuple, list[dict]] = defaultdict(list)
    for res in results:
        for e in res.get("stale_expectations", []):
            seen[(e.get("line"), e.get("key"))].append(e)
    return [
        min(entries, key=lambda e: rank.get(e.get("why") or "now passes", 0))
        for entries in seen.values()
        if len(entries) == len(results)
    ]


def _build_matrix(records: list[dict], specs: list[str]) -> dict:
    """The cases on which the runtimes (builds, providers) do not all agree: case -> {runtime: cell}.

    Unsupported/fallback cells do not count as disagreement on their own.
    """
    by_case: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in records:
        by_case[rec["case"]][rec["runtime"]] = rec
    out = {}
    for case, recs in sorted(by_case.items()):
        cells = {spec: cell_of(recs.get(spec)) for spec in specs}
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
        # A known-failures line with when=: the failure depends on the machine, not a bug.
        "platform": rec.get("expected_by", "").partition(" when=")[2],
        "reproduce": rec["reproduce"],
    }


# --- Markdown -----------------------------------------------------------------------------
