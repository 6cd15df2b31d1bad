"""Publishing the reports: read the results, write every cluster's repro.py and ISSUE.md and the
index, and the links the report shows."""

from __future__ import annotations

import html
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from opref import boundary
from opref.bugreport.cases import choose_case
from opref.bugreport.issue import (
    BugReport,
    _head,
    _what,
    index_text,
    issue_text,
    load_upstream,
    runtime_directory,
    slug,
    title_of,
)
from opref.bugreport.repro import repro_script
from opref.bugreport.runners import INDEX_FILE, UPSTREAM_FILE, runner_for
from opref.report import clusters
from opref.suite import read_case, read_manifest

# A report.json of the published matrix is about 7 MB; nothing near this cap is results.
MAX_RESULTS_BYTES = 512 * 2**20


def read_results(path: str | os.PathLike) -> tuple[dict, Path]:
    """What ``opref report`` reads: a results directory (its report.json or results.json) or one
    of those files. Returns the checked data and the directory it was in."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json" if (p / "report.json").exists() else p / "results.json"
    try:
        data = boundary.load_json(p.read_bytes(), str(p), max_bytes=MAX_RESULTS_BYTES)
    except (OSError, boundary.BoundaryError) as exc:
        raise ValueError(f"{p}: cannot read validation results ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runtimes"), list) or not isinstance(
        data.get("records"), list
    ):
        raise ValueError(f"{p}: not opref validation results (no 'runtimes' and 'records' lists)")
    return data, p.parent


def _suite_of(data: dict, where: Path) -> Path:
    """The suite the results were validated on: where the reproduce commands point."""
    if (suite := boundary.suite_of_reproduce(data["records"], where)) is not None:
        return suite
    raise ValueError("the results name no suite; pass suite=")


def write_bug_reports(
    results: str | os.PathLike,
    out: str | os.PathLike,
    *,
    suite: str | os.PathLike | None = None,
    upstream: str | os.PathLike | None = None,
) -> list[BugReport]:
    """Write one report per failure cluster of ``results`` into ``out`` (see the module's text).

    ``suite`` is the vectors the results were validated on (default: the suite their reproduce
    commands name); ``upstream`` the status file (default: ``out/upstream.json``).
    """
    data, where = read_results(results)
    suite_path = Path(suite) if suite is not None else _suite_of(data, where)
    out = Path(out)
    status = load_upstream(upstream if upstream is not None else out / UPSTREAM_FILE)
    manifest = read_manifest(suite_path)
    versions = {rt["spec"]: rt for rt in data["runtimes"]}
    by_key = {(r["runtime"], r["case"]): r for r in data["records"]}
    found = clusters(data["records"])
    directories = report_directories(found, data["runtimes"])
    reports = []
    for cluster in found:
        spec = cluster["runtime"]
        rt = versions.get(spec, {})
        version = str(rt.get("version", ""))
        recs = [by_key[(spec, c)] for c in cluster["cases"]]
        rec = choose_case(recs)
        rel = directories[cluster["id"]]
        key = f"{_head(spec)}/{slug(_what(cluster))}"
        case = read_case(suite_path, manifest.records[rec["case"]])
        runner = runner_for(spec, version, rt.get("details"))
        entry = status.get(key, {})
        expects = [manifest.records[c].expect for c in cluster["cases"]]  # the suite's, not the results'
        report = BugReport(
            spec,
            rel,
            title_of(cluster, expects),
            cluster["verdict"],
            cluster["count"],
            rec["case"],
            key,
            entry,
            runner is not None,
            expects.count("reject"),
        )
        target = out / rel
        target.mkdir(parents=True, exist_ok=True)
        (target / "repro.py").write_text(repro_script(report, cluster, rec, case, rt, runner))
        (target / "ISSUE.md").write_text(
            issue_text(report, cluster, rec, case, rt, runner, suite_path, where)
        )
        reports.append(report)
    (out / INDEX_FILE).write_text(index_text(reports, data))
    return reports




# --- the hook for the report ---------------------------------------------------------------------------

BUGS_DIRECTORY = "bugs"  # where the reports are published, inside a report's directory


def report_directories(found: Sequence[dict], runtimes: Sequence[Mapping]) -> dict[int, str]:
    """{cluster id: its report's directory, relative to the reports' root}: ``<runtime>-<version>/
    <nn>-<slug>``, numbered per runtime in the clusters' order (largest first)."""
    versions = {rt["spec"]: str(rt.get("version", "")) for rt in runtimes}
    per_runtime: dict[str, int] = defaultdict(int)
    out = {}
    for cluster in found:
        spec = cluster["runtime"]
        per_runtime[spec] += 1
        name = slug(_what(cluster))
        runtime = runtime_directory(spec, versions.get(spec, ""))
        out[cluster["id"]] = f"{runtime}/{per_runtime[spec]:02d}-{name}"
    return out


def report_link(bugs_dir: str | os.PathLike, report_dir: str | os.PathLike) -> str | None:
    """The relative link from a report's directory to the bug reports' index, or None when there
    is none."""
    index = Path(bugs_dir) / INDEX_FILE
    if not index.exists():
        return None
    return os.path.relpath(index, Path(report_dir)).replace(os.sep, "/")


@dataclass(frozen=True)
class Links:
    """What a report shows of the published bug reports: the index, and each cluster's ISSUE.md
    and repro.py (relative to the report's directory; only those that exist)."""

    index: str
    clusters: Mapping[int, str]
    repros: Mapping[int, str] = field(default_factory=dict)


def published_links(report_dir: str | os.PathLike, data: Mapping) -> Links | None:
    """The links from a report (its directory and its data: ``clusters`` and ``runtimes``) to the
    bug reports published beside it in ``<report_dir>/bugs``; None when there are none."""
    bugs = Path(report_dir) / BUGS_DIRECTORY
    index = report_link(bugs, report_dir)
    if index is None:
        return None
    dirs = report_directories(data.get("clusters", []), data.get("runtimes", []))
    issues = {
        cid: f"{BUGS_DIRECTORY}/{rel}/ISSUE.md"
        for cid, rel in dirs.items()
        if (bugs / rel / "ISSUE.md").exists()
    }
    repros = {
        cid: f"{BUGS_DIRECTORY}/{rel}/repro.py"
        for cid, rel in dirs.items()
        if (bugs / rel / "repro.py").exists()
    }
    return Links(index, issues, repros)


def markdown_cell(links: Links | None, cluster_id: int) -> str:
    """A cluster's row in index.md: links to its ISSUE.md and repro.py ('' without a report)."""
    if links is None or cluster_id not in links.clusters:
        return ""
    cell = f"[ISSUE.md]({links.clusters[cluster_id]})"
    if cluster_id in links.repros:
        cell += f" · [repro.py]({links.repros[cluster_id]})"
    return cell


def html_cell(links: Links | None, cluster_id: int) -> str:
    """index.html's counterpart of :func:`markdown_cell` (a whole ``<td>``)."""
    if links is None or cluster_id not in links.clusters:
        return "<td></td>"
    parts = [(links.clusters[cluster_id], "ISSUE.md")]
    if cluster_id in links.repros:
        parts.append((links.repros[cluster_id], "repro.py"))
    anchors = " · ".join(f'<a href="{html.escape(href, quote=True)}">{name}</a>' for href, name in parts)
    return f"<td>{anchors}</td>"


def markdown_lines(links: Links | None) -> list[str]:
    """index.md's sentence under "Failure clusters" (nothing without published reports)."""
    if links is None:
        return []
    return [
        f"Ready-to-file upstream bug reports, one per cluster (ISSUE.md + a repro.py that needs only numpy, "
        f"onnx and the runtime): [{links.index}]({links.index}).",
        "",
    ]


def html_paragraph(links: Links | None) -> str:
    """index.html's counterpart of :func:`markdown_lines`."""
    if links is None:
        return ""
    href = html.escape(links.index, quote=True)
    return (
        "<p>Ready-to-file upstream bug reports, one per cluster (ISSUE.md + a repro.py that needs only "
        f'numpy, onnx and the runtime): <a href="{href}">{html.escape(links.index)}</a>.</p>'
    )

