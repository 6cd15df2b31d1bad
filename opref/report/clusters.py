"""Failure clusters (one row per root cause as far as opref can tell), per-case error
statistics, and the clusters' heatmaps."""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from opref.report.vocabulary import Report
from opref.verdicts import NORMATIVE_FAILURES, Verdict

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


def _holds(test, rec: dict) -> bool:
    """A shared fact's test on one record; a value of the wrong type (a hand-edited record)
    makes the fact not hold rather than the report fail."""
    try:
        return bool(test(rec))
    except (TypeError, ValueError, AttributeError, KeyError):
        return False


def message_signature(rec: dict) -> str:
    """A failure message with its case's name, numbers, shapes and lists blanked: failures that
    share it share a cause as far as the message tells."""
    if rec["verdict"] == "accepted-invalid":
        return "returns an output for a must-reject model"
    msg = rec.get("message", "")
    # A runtime that quotes the node's or the graph's name (both are the case's) must not split
    # one behaviour into a cluster per case.
    case = rec.get("case", "")
    for name in dict.fromkeys((case, case.partition("__")[0])):
        if name:
            msg = msg.replace(name, "<case>")
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
        shared = [label for label, test in SHARED_FACTS if all(_holds(test, r) for r in recs)]
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


def add_diagnosis(data: dict) -> None:
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


def cluster_note(data: dict, rec: dict) -> str:
    cluster = next(
        (c for c in data.get("clusters", []) if c["runtime"] == rec["runtime"] and rec["case"] in c["cases"]),
        None,
    )
    if cluster is None:
        return ""
    what = cluster["diagnosis_text"] or cluster["signature"]
    return f"\ncluster {cluster['id']} ({cluster['count']} cases): {what}"




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
    fig.suptitle(textwrap.fill(title, 60).replace("$", r"\$"), fontsize=8)
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
        if want is None or got is None or want.shape != got.shape or want.ndim < 3 or 0 in want.shape:
            continue
        bound = load(root, paths, "bound")
        if bound is not None and bound.shape != want.shape:
            bound = None
        (out / "heatmaps").mkdir(exist_ok=True)
        rel = f"heatmaps/cluster-{c['id']}.png"
        title = f"cluster {c['id']}: {c['runtime']} {c['representative']} ({c['verdict']})"
        try:
            drawn = heatmap(want, got, bound, out / rel, title)
        except (ValueError, TypeError, OverflowError, MemoryError):  # saved tensors no plot can show
            drawn = False
        if drawn:
            c["heatmap"] = rel
