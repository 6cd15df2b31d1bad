"""results.json files -> a report a person reads (index.md, index.html, summary.png) and CI
gates on (report.json, junit.xml); one module per output, the shared vocabulary lowest:

    vocabulary -> clusters -> aggregate -> markdown, junit, plot, html -> write_report (here)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from opref.report.aggregate import aggregate, exit_code, load_results, variant_views
from opref.report.clusters import clusters, heatmaps
from opref.report.html import page
from opref.report.junit import junit
from opref.report.markdown import markdown
from opref.report.plot import plot
from opref.report.vocabulary import CLUSTER_COLUMNS, Report, variant_of
from opref.validate import dumps


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
    (out / "index.html").write_text(page(report, out), encoding="utf-8")
    return report


# --- failure clusters, error statistics, heatmaps ------------------------------------------


__all__ = [
    "CLUSTER_COLUMNS",
    "Report",
    "aggregate",
    "clusters",
    "exit_code",
    "junit",
    "load_results",
    "markdown",
    "plot",
    "variant_of",
    "variant_views",
    "write_report",
]
