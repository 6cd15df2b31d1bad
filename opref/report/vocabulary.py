"""The report's shared vocabulary, lowest module of the package: the aggregated
:class:`Report`, the columns and labels every output uses, and how a case name splits into its
base case and model variant. Nothing here imports from the rest of the package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opref.cases import VARIANT_SEPARATOR, VARIANTS

SCHEMA = 1
MAX_LISTED = 200  # failure rows in index.md; report.json has them all
# The columns of the failure-cluster table, in Markdown and HTML alike.
# The columns of the error statistics of failing comparisons (Markdown and HTML).
ERROR_COLUMNS = (
    "runtime",
    "case",
    "cluster",
    "max abs",
    "max rel",
    "max ULP",
    "max fraction of bound",
    "mismatches",
)
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


def variant_of(case: str) -> tuple[str, str]:
    """(base case, variant) of a case name: ``<case>__<variant>``, or the case itself in the
    ``inputs`` form."""
    base, sep, variant = case.rpartition(VARIANT_SEPARATOR)
    if sep and variant in VARIANTS:
        return base, variant
    return case, "inputs"



def cell_of(rec: dict | None) -> str:
    if rec is None:
        return "-"
    reading = rec.get("reading") or {}
    if rec["verdict"] == "divergence" and reading:
        return "divergence: " + ",".join(reading.values())
    return rec["verdict"]



def short_label(spec: str) -> str:
    """A runtime spec for a plot axis: an interpreter path shortened to its environment's name."""
    plain, sep, interpreter = spec.rpartition("@")
    if not sep:
        return spec
    parts = Path(interpreter).parts
    env = parts[-3] if len(parts) >= 3 and parts[-2] == "bin" else interpreter
    return f"{plain}@{env}"

