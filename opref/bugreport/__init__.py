"""Validation results -> one ready-to-file upstream bug report per failure cluster (issue 25).

For every cluster of every runtime (the clusters of the report, computed by
``opref.report.clusters``) this writes ``<out>/<runtime>/<nn>-<slug>/``:

- ``repro.py``: a script that needs only numpy, onnx and that runtime. It builds the cluster's
  smallest case inline (attributes, shapes and the tensors written out as literals), runs it with
  the runtime's own Python API in a child process (so a crash is seen, not suffered), compares
  with the expected output written in the file, and exits 1 while the bug is present, 0 once it
  is fixed (2 when the runtime could not be called at all).
- ``ISSUE.md``: title, runtime and version, the ONNX schema text that decides the answer, expected
  vs got, the cluster's cases and the opref command that re-runs them all.

and ``<out>/index.md`` listing them. The upstream status of each report (already filed or not)
is read from a small hand-kept file, ``upstream.json`` (see :func:`load_upstream`).
Generated files are deterministic: the same results and suite give byte-identical files.
"""

from opref.bugreport.issue import load_upstream
from opref.bugreport.publish import (
    Links,
    html_paragraph,
    markdown_lines,
    published_links,
    read_results,
    report_link,
    write_bug_reports,
)

__all__ = [
    "Links",
    "html_paragraph",
    "load_upstream",
    "markdown_lines",
    "published_links",
    "read_results",
    "report_link",
    "write_bug_reports",
]
