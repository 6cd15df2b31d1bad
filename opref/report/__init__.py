"""results.json files -> a report a person reads (index.md, index.html, summary.png) and CI
gates on (report.json, junit.xml); one module per output, the shared vocabulary lowest:

    vocabulary -> clusters -> aggregate -> markdown, junit, plot, html -> write_report (here)
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

from opref.outdir import staged
from opref.report.aggregate import aggregate, exit_code, load_results, variant_views
from opref.report.clusters import clusters, heatmaps
from opref.report.html import page
from opref.report.junit import junit
from opref.report.markdown import markdown
from opref.report.plot import plot
from opref.report.vocabulary import CLUSTER_COLUMNS, Report, variant_of
from opref.validate import dumps


def write_report(
    results: Sequence[object],
    out: str | os.PathLike,
    roots: Sequence[str | os.PathLike] | None = None,
) -> Report:
    """Write index.md, index.html, report.json, junit.xml and (with matplotlib) summary.png and
    the clusters' heatmaps/ into ``out``, replacing a report opref wrote there whole
    (:mod:`opref.outdir`). ``roots``: the directories the results were read from (see
    :func:`aggregate`). Whatever the records hold, a report is written; records it cannot
    show as they are get a note.

    Bug reports published beside the report (``opref bugreport OUT --out OUT/bugs``) are kept
    when the report is rewritten, and each failure cluster that has one links to it."""
    from opref.bugreport.publish import BUGS_DIRECTORY, published_links  # the floor above's: no circle

    out = Path(out)
    with staged(out, "report") as stage:
        if (out / BUGS_DIRECTORY).is_dir() and not (out / BUGS_DIRECTORY).is_symlink():
            shutil.copytree(out / BUGS_DIRECTORY, stage / BUGS_DIRECTORY, symlinks=True)
        report = aggregate(results, out, roots)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # matplotlib's layout notes are not the user's business
            try:
                report.data["plot"] = plot(report, stage / "summary.png")
            except (ValueError, TypeError, OverflowError, RuntimeError) as exc:  # a picture, not the report
                report.data["plot"] = False
                report.data["notes"].append(f"summary.png not drawn: {type(exc).__name__}: {exc}")
            heatmaps(report, stage)
        (stage / "report.json").write_text(dumps(report.data), encoding="utf-8")
        (stage / "junit.xml").write_bytes(junit(report))
        links = published_links(stage, report.data)
        (stage / "index.md").write_text(markdown(report, links), encoding="utf-8")
        (stage / "index.html").write_text(page(report, stage, links), encoding="utf-8")
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
