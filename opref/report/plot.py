"""summary.png: how close each runtime's answers come to the bound, and its verdicts."""

from __future__ import annotations

import math
from pathlib import Path

from opref.report.vocabulary import Report, short_label
from opref.verdicts import ORDER

CLIP = 1e3  # the error plot's right edge: larger fractions of the bound are drawn there


def _label(spec: str) -> str:
    """A runtime spec as plain text on an axis: matplotlib reads text between dollar signs as
    mathematics and fails on what it cannot parse."""
    return short_label(spec).replace("$", r"\$")


def _drawn(fraction: float, floor: float) -> float:
    """Where a fraction of the bound is drawn: NaN (a runtime that answered NaN) and infinity
    are past every bound, drawn at the clip edge with the other clipped values."""
    if math.isnan(fraction):
        return CLIP
    return min(max(fraction, floor), CLIP)


def plot(report: Report, path: Path) -> bool:
    """summary.png: error as a fraction of the bound per runtime, and verdict counts. False
    when matplotlib (the 'plot' extra) is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    d = report.data
    specs = [rt["spec"] for rt in d["runtimes"] if rt["available"]]
    if not specs:
        return False  # nothing ran: nothing to draw
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 1.6 + 0.7 * max(len(specs), 2)))
    floor = 1e-4
    labels: list[str] = []
    for i, spec in enumerate(specs):
        # Divergences are judged against another reading; only normative comparisons are drawn.
        judged = [
            r
            for r in report.records
            if r["runtime"] == spec and r.get("comparison") and r["verdict"] in ("pass", "fail-values")
        ]
        fr = [
            r["comparison"]["max_bound_fraction"] for r in judged if not r["comparison"]["bitexact_required"]
        ]
        exact = [r for r in judged if r["comparison"]["bitexact_required"]]
        vals = [_drawn(f, floor) for f in fr if isinstance(f, int | float)]
        jitter = [i + 0.3 * ((k * 37 % 17) / 17 - 0.5) for k in range(len(vals))]
        ax1.scatter(vals, jitter, s=9, alpha=0.6)
        ok_exact = sum(1 for r in exact if r["comparison"]["ok"])
        labels.append(f"{_label(spec)}\nexact data {ok_exact}/{len(exact)} bit-exact")
    ax1.axvline(1.0, color="red", lw=1)
    ax1.set_xscale("log")
    ax1.set_xlim(floor / 2, CLIP * 2)
    ax1.axvspan(CLIP * 0.8, CLIP * 2, color="#eeeeee", zorder=0)
    ax1.text(
        CLIP * 1.25,
        0.02,
        "clipped",
        transform=ax1.get_xaxis_transform(),
        ha="center",
        va="bottom",
        rotation=90,
        fontsize=7,
        color="#424242",
    )
    ax1.set_yticks(range(len(specs)), labels, fontsize=8)
    ax1.set_xlabel(
        "max |error| / bound per random-data case (1 = at the bound; 0 drawn at 1e-4)\n"
        f"values past {CLIP:.0e} are clipped: drawn at {CLIP:.0e}, in the grey band"
    )
    ax1.set_title("How close to the tolerance bound")
    colors = {
        "pass": "#2e7d32",
        "rejected": "#66bb6a",
        "divergence": "#fdd835",
        "unsupported": "#bdbdbd",
        "fallback": "#9e9e9e",
        "timeout": "#8d6e63",
        # Two failures a reader must tell apart: a red and a clearly different orange-brown.
        "fail-shape": "#b71c1c",
        "fail-values": "#ff6f00",
        "error": "#ad1457",
        "accepted-invalid": "#6a1b9a",
        "crashed": "#000000",
    }
    left = [0] * len(specs)
    for v in ORDER:
        counts = [d["matrix"][s][v.value] for s in specs]
        if any(counts):
            ax2.barh(range(len(specs)), counts, left=left, color=colors.get(v.value), label=v.value)
            left = [a + b for a, b in zip(left, counts, strict=True)]
    ax2.set_yticks(range(len(specs)), [_label(sp) for sp in specs], fontsize=8)
    ax2.set_xlabel("cases")
    ax2.set_title("Verdicts")
    ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

