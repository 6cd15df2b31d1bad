"""The reports' names and texts: the runtime's directory, a cluster's slug and title, the
upstream status file, ISSUE.md and the index."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from opref.bugreport.runners import verdict_phrase
from opref.runtimes import split_interpreter
from opref.suite import CaseData
from opref.version import __version__

# --- the reports -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BugReport:
    """One cluster's report, as written."""

    runtime: str  # the spec
    directory: str  # relative to the output directory
    title: str
    verdict: str
    count: int
    case: str
    upstream_key: str
    upstream: Mapping[str, object]
    runnable: bool
    invalid: int = 0  # how many of the cluster's cases are models the spec makes invalid

    @property
    def phrase(self) -> str:
        """What the verdict says of the runtime, by the validity of the cluster's models."""
        expects = ["reject"] * self.invalid + ["output"] * (self.count - self.invalid)
        return verdict_phrase(self.verdict, expects)


def _short_version(version: str) -> str:
    return re.match(r"[0-9A-Za-z.+]*", version).group(0) or "unknown"


def runtime_directory(spec: str, version: str) -> str:
    """``ort:cpu@.venvs/ort-1.16/bin/python`` + ``1.16.3`` -> ``ort-cpu-1.16.3``."""
    return f"{_head(spec)}-{_short_version(version)}"


def _head(spec: str) -> str:
    head = split_interpreter(spec)[0]
    return re.sub(r"[^0-9A-Za-z.]+", "-", head.lower()).strip("-")


_SYMBOLS = {"<=": " le ", ">=": " ge ", "<": " lt ", ">": " gt ", "=": " eq "}


def slug(text: str, limit: int = 48) -> str:
    """A directory name from ``text``: lower-case words joined by '-', comparisons spelt out."""
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    words = re.findall(r"[0-9a-z]+", text.lower())
    out = ""
    for w in words:
        if len(out) + len(w) + 1 > limit:
            break
        out = f"{out}-{w}" if out else w
    return out or "failure"


def _what(cluster: dict) -> str:
    """The cluster's cause in words: its diagnosis, else its commonest known reason, else its message."""
    if cluster["diagnosis"]:
        return cluster["diagnosis_text"]
    # By count, then name: report.json stores known_reasons with its keys sorted, not by count.
    reasons = sorted(cluster["known_reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
    reasons = [r for r, _ in reasons if not r.startswith("same")]
    if reasons:
        return reasons[0]
    return cluster["signature"]


def title_of(cluster: dict, expects: Sequence[str]) -> str:
    """The report's title: the verdict's phrase for the validity of the cluster's models
    (``expects``: each case's ``expect``, ``output`` or ``reject``) and the cause."""
    return f"ConvTranspose {verdict_phrase(cluster['verdict'], expects)}: {_what(cluster)}"


# "not searched": the report is published, its tracker not yet searched (said, never implied).
UPSTREAM_STATUSES = ("reported", "not found", "not searched")


def load_upstream(path: str | os.PathLike) -> dict[str, dict]:
    """The hand-kept upstream status: ``{key: {"status": "reported" | "not found" | "not searched", "links":
    [...], "note": "...", "searched": [...]}}``, keyed ``<runtime>/<slug>`` (no version, no
    number: the status belongs to the behaviour). A missing file is an empty status."""
    p = Path(path)
    if not p.exists():
        return {}
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{p}: expected an object of objects keyed <runtime>/<slug>")
    for key, entry in data.items():
        if entry.get("status") not in UPSTREAM_STATUSES:
            raise ValueError(f"{p}: {key}: status must be one of {list(UPSTREAM_STATUSES)}")
    return data




# --- ISSUE.md -------------------------------------------------------------------------------------------


def spec_text(opset: int, attributes: Sequence[str]) -> list[str]:
    """The ONNX schema text that decides a ConvTranspose case: the operator's doc (its shape
    equations) and the description of each attribute the node sets, for the model's opset."""
    schema = onnx.defs.get_schema("ConvTranspose", opset)
    lines = [
        f"From the ONNX operator schema ConvTranspose-{schema.since_version} (the version in force at "
        f"opset {opset}; onnx {onnx.__version__}):",
        "",
    ]
    lines += ["> " + ln.rstrip() if ln.strip() else ">" for ln in schema.doc.strip().splitlines()]
    for name in sorted(attributes):
        if name in schema.attributes:
            lines += [">", f"> **{name}**: {schema.attributes[name].description.strip()}"]
    types = ", ".join(t for c in schema.type_constraints for t in c.allowed_type_strs)
    lines += [">", f"> **T** (X, W, B, Y): {types}"]
    return lines


def _expected_vs_got(rec: dict, output_shape: Sequence[int] | None = None) -> list[str]:
    """The table of ISSUE.md; ``output_shape``: the suite's, for a result that has none (a crash)."""
    rows = [("verdict", f"`{rec['verdict']}`")]
    if rec.get("expect") == "reject":
        rows.append(("expected", "the model is refused (an error)"))
        rows.append(
            (
                "got",
                f"an output of shape {rec.get('got_shape')}"
                if rec.get("got_shape")
                else rec.get("message", ""),
            )
        )
    else:
        shape = rec.get("expected_shape") or (list(output_shape) if output_shape else None)
        rows.append(("expected", f"output of shape {shape}, {rec['dtype']}"))
        if rec.get("got_shape") is not None:
            rows.append(("got", f"output of shape {rec['got_shape']}, {rec.get('got_dtype')}"))
        cmp = rec.get("comparison") or {}
        if cmp.get("first_mismatch") is not None:
            rows.append(
                (
                    "first difference",
                    f"at {cmp['first_mismatch']}: expected {cmp['expected_at_first']!r}, "
                    f"got {cmp['got_at_first']!r} "
                    f"({cmp.get('mismatches')} elements differ; max abs error {cmp.get('max_abs_error')})",
                )
            )
        rows.append(
            ("message", "`" + " ".join(str(rec.get("message", "")).split())[:600].replace("`", "'") + "`")
        )
    return ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]


def _suite_argument(suite: Path) -> str:
    """The suite as the re-run command names it: relative to the working directory when inside it
    (from a checkout: ``vectors``), else as given."""
    here = Path.cwd().resolve()
    full = suite.resolve()
    return os.path.relpath(full, here) if full.is_relative_to(here) else str(suite)


def _cluster_command(suite: str, spec: str, cases: Sequence[str]) -> str:
    only = " ".join(f"--only {shlex.quote(c)}" for c in cases)
    return f"opref validate {shlex.quote(suite)} --runtime {shlex.quote(spec)} {only} --out opref-cluster"


def issue_text(
    report: BugReport,
    cluster: dict,
    rec: dict,
    case: CaseData,
    rt: Mapping,
    runner: tuple[str, str] | None,
    suite: Path,
    where: Path,
) -> str:
    r = case.record
    name = f"{rt.get('name', '')} {rt.get('version', '')}".strip()
    attrs = json.dumps(dict(r.attributes), sort_keys=True)
    lines = [f"# {report.title}", ""]
    lines += [
        f"- **Runtime**: {name} (opref runtime spec `{report.runtime}`)",
        f"- **Operator**: ConvTranspose, model opset {r.opset}, {r.dtype}",
        f"- **Case**: `{rec['case']}` — attributes `{attrs}`, X {list(r.x_shape)}, W {list(r.w_shape)}"
        + (f", B {list(r.b_shape)}" if r.b_shape else ""),
        f"- **Cluster**: {cluster['count']} failing cases (verdict `{cluster['verdict']}`); "
        "this is the smallest",
        f"- **Upstream**: {upstream_line(report.upstream)}",
        "",
        "## What happens",
        "",
    ]
    what = f"{name} {report.phrase}"
    if cluster["diagnosis"]:
        what += f". opref's bug model that reproduces its output exactly: **{cluster['diagnosis_text']}**"
    reasons = "; ".join(f"{k} ({n})" for k, n in cluster["known_reasons"].items())
    lines += [what + ".", ""]
    if reasons:
        lines += [f"As opref's known-failures list describes it: {reasons}.", ""]
    if r.expect == "reject":
        lines += [f"The model is invalid: {r.reject_message}", ""]
    if report.invalid and cluster["verdict"] in ("crashed", "timeout"):
        valid = report.count - report.invalid
        mix = f"{report.invalid} of the cluster's {report.count} models are" if valid else "The models are"
        lines += [
            f"{mix} invalid by the spec, so no output is wanted from them; the bug is that the runtime "
            "does not reject them with an error"
            + (" but dies on them." if cluster["verdict"] == "crashed" else " but never answers.")
            + (f" The other {valid} are valid models." if valid else ""),
            "",
        ]
    if r.ambiguities:
        ids = ", ".join(r.ambiguities)
        lines += [
            f"The case touches an ambiguous part of the spec ({ids}); the output matches none of its "
            "documented readings (repro.py accepts any of them).",
            "",
        ]
    lines += ["## Expected vs got", "", *_expected_vs_got(rec, r.output_shape)]
    lines += ["## Reproduce", ""]
    if runner is None:
        lines += [
            f"opref calls {name} through an adapter that a short script cannot express, so `repro.py` "
            "holds the model, its inputs and the expected output, but its `run()` must be filled in "
            "with the runtime's call (it exits 2 until then).",
            "",
        ]
    else:
        lines += [
            f"`python repro.py` (needs numpy, onnx and `{runner[0]}`) exits 1 while the bug is present, "
            "0 once fixed.",
            "",
        ]
    lines += ["## What the spec says", "", *spec_text(r.opset, list(r.attributes)), ""]
    lines += [
        "## The cluster",
        "",
        f"{cluster['count']} cases fail the same way"
        + (f"; all share: {', '.join(cluster['shared'])}" if cluster["shared"] else "")
        + ":",
        "",
        ", ".join(f"`{c}`" for c in cluster["cases"]),
        "",
        "Re-run the whole cluster with opref (from an opref checkout, whose `vectors/` are the suite):",
        "",
        "```",
        _cluster_command(_suite_argument(suite), report.runtime, cluster["cases"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def upstream_line(entry: Mapping[str, object]) -> str:
    if not entry:
        return "not searched yet"
    links = entry.get("links") or []
    text = str(entry["status"])
    if links:
        text += ": " + ", ".join(f"<{u}>" for u in links)
    if entry.get("note"):
        text += f" ({entry['note']})"
    return text


def index_text(reports: Sequence[BugReport], data: dict) -> str:
    lines = [
        "# Upstream bug reports, one per failure cluster",
        "",
        f"Generated by `opref bugreport` (opref {__version__}) from {len(data['records'])} (case, runtime) "
        "results. Each directory holds `ISSUE.md` (ready to file) and `repro.py` (needs only numpy, onnx and "
        "the runtime; exits 1 while the bug is present, 0 once fixed).",
        "",
        "| report | runtime | verdict | cases | smallest case | upstream |",
        "|---|---|---|---|---|---|",
    ]
    for r in reports:
        lines.append(
            f"| [{r.title}]({r.directory}/ISSUE.md) | `{r.runtime}` | {r.verdict} | {r.count} | `{r.case}` | "
            f"{upstream_line(r.upstream)} |"
        )
    lines.append("")
    return "\n".join(lines)


