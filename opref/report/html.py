"""report/index.html: one self-contained page (inline CSS and JavaScript, images embedded; no
network access) built from the same data as index.md.

Everything that comes from a suite or a runtime (case names, messages, runtime specs) is
untrusted: it is escaped as HTML text or attribute values and never reaches the script as code.
The script only reads ``data-*`` attributes and toggles ``hidden``; the filter state can also
be given in the address's fragment (``index.html#runtime=ort:cpu&verdict=error``).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from opref.cases import VARIANTS
from opref.escape import visible
from opref.readings import AMBIGUITIES
from opref.report.vocabulary import CLUSTER_COLUMNS, ERROR_COLUMNS, MAX_LISTED, short_label, variant_of
from opref.verdicts import GROUP, ORDER, Group, Verdict

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#212121;max-width:1600px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 6px;
vertical-align:top;text-align:left}th{background:#f5f5f5}td.n{text-align:right}
.normative{background:#ffebee}.ok{background:#e8f5e9}.skipped{background:#f5f5f5}
.unexpected{color:#b71c1c;font-weight:bold}code{font-size:12px;word-break:break-all}
.filters label{margin-right:1em}details pre{background:#fafafa;padding:.5em;overflow:auto}
img.heat{max-width:560px;display:block}.diag{font-weight:bold;color:#4a148c}
.banner{padding:.6em 1em;border-radius:4px;font-size:1.15em;margin:.5em 0}
.banner.PASS{background:#e8f5e9;border:2px solid #2e7d32}
.banner.FAIL{background:#ffebee;border:2px solid #b71c1c}
tr.known,td.known{background:#fff3e0}tr.unexpected td{background:#ffebee}td.unexpected{background:#ffcdd2}
.scroll{max-height:26em;overflow:auto;border:1px solid #ddd}.scroll table{margin:0;width:100%}
.filters{position:sticky;top:0;background:#fff;padding:.4em 0;z-index:1}
dl.case{display:grid;grid-template-columns:12em 1fr;gap:2px 1em;margin:.3em 0 .8em}
dl.case dt{font-weight:bold;color:#555}dl.case dd{margin:0}
"""

_JS = """
(function(){
  var sel = document.querySelectorAll('select[data-filter]');
  function apply(){
    var want = {};
    sel.forEach(function(s){ if (s.value) want[s.dataset.filter] = s.value; });
    var shown = 0;
    document.querySelectorAll('tr.case-row').forEach(function(tr){
      var ok = Object.keys(want).every(function(k){ return tr.dataset[k] === want[k]; });
      tr.hidden = !ok;
      var det = document.getElementById('d-' + tr.dataset.idx);
      if (det) det.hidden = !ok;
      if (ok) shown++;
    });
    document.getElementById('shown').textContent = String(shown);
  }
  var params = new URLSearchParams(location.hash.slice(1));
  sel.forEach(function(s){
    var v = params.get(s.dataset.filter);
    if (v !== null) s.value = v;
    s.addEventListener('change', apply);
  });
  apply();
})();
"""


def _e(value: object) -> str:
    """Any value as HTML text or a quoted attribute value, hidden characters made visible."""
    return html.escape(visible("" if value is None else str(value)), quote=True)


def _table(header, rows, cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: object, cls: str = "", **data: object) -> str:
    attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in data.items())
    return f'<td class="{cls}"{attrs}>{_e(value)}</td>'


def _image(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError:
        return ""
    return f'<img class="heat" alt="heatmap" src="data:image/png;base64,{base64.b64encode(raw).decode()}">'


def _geometry_text(rec: dict) -> str:
    from opref.errors import SpecError
    from opref.geometry import formula_lines, geometry

    if "x_shape" not in rec or rec.get("expect") == "reject":
        return ""
    try:
        geo = geometry(
            rec["x_shape"],
            rec["w_shape"],
            **rec["attributes"],
            opset=rec["opset"],
            readings=rec.get("reading"),
        )
    except (SpecError, TypeError, ValueError, OverflowError, MemoryError) as exc:  # a hand-edited record
        return f"(geometry: {type(exc).__name__}: {exc})"
    return "\n".join(formula_lines(geo))


def _summary(d: dict) -> str:
    """Verdict counts per runtime: a failure count amber when every one of them is a listed,
    known failure, red when any is not."""
    shown = [v.value for v in ORDER if any(d["matrix"][rt][v.value] for rt in d["matrix"])]
    new = {(f["runtime"], f["verdict"]) for f in d["failures"] if f["unexpected"]}

    def paint(spec: str, v: str) -> str:
        group = GROUP[Verdict(v)]
        if not d["matrix"][spec][v]:
            return "n"  # nothing to paint: a zero is neither red nor green
        return "n known" if group is Group.NORMATIVE and (spec, v) not in new else f"n {group.value}"

    rows = []
    for rt in d["runtimes"]:
        spec = rt["spec"]
        if not rt["available"]:
            rows.append(
                [_td(spec), _td("unavailable: " + str(rt.get("reason", ""))), *[_td("") for _ in shown]]
            )
            continue
        cells = [
            _td(
                d["matrix"][spec][v],
                paint(spec, v),
                runtime=spec,
                verdict=v,
                count=d["matrix"][spec][v],
            )
            for v in shown
        ]
        rows.append([_rt(spec), _td(f"{rt['name']} {rt['version']}"), *cells])
    return _table(["runtime", "version", *shown], rows, "matrix")


def _clusters(d: dict, out: Path | None, links=None) -> str:
    from opref.bugreport.publish import html_cell, html_paragraph  # the floor above's: no circle

    cl = d.get("clusters", [])
    if not cl:
        return "<p>No normative failures.</p>"
    parts = [
        f"<p>{len(d['failures'])} normative failures in {len(cl)} clusters (runtime, verdict, diagnosis "
        "or message signature); the representative is the smallest case.</p>",
        html_paragraph(links),
    ]
    rows = []
    for c in cl:
        known = "; ".join(f"{k} ({n})" for k, n in c["known_reasons"].items()) or "NOT LISTED"
        what = c["diagnosis_text"] or c["signature"]
        heat = _image(out / c["heatmap"]) if out is not None and c.get("heatmap") else ""
        rows.append(
            [
                _td(c["id"], "n"),
                _td(c["runtime"]),
                _td(c["verdict"]),
                _td(c["count"], "n"),
                f'<td class="{"diag" if c["diagnosis"] else ""}">{_e(what)}</td>',
                _td(known, "" if c["known_reasons"] else "unexpected"),
                _td(", ".join(c["shared"])),
                f"<td><code>{_e(c['representative'])}</code>{heat}</td>",
                f"<td><code>{_e(c['reproduce'])}</code></td>",
                *([html_cell(links, c["id"])] if links is not None else []),
            ]
        )
    parts.append(
        _table(
            [*CLUSTER_COLUMNS, *(["bug report"] if links is not None else [])],
            rows,
            "clusters",
        )
    )
    return "".join(parts)


def _ambiguities(d: dict) -> str:
    parts = []
    for aid, amb in AMBIGUITIES.items():
        per_rt = d["ambiguities"].get(aid, {})
        parts.append(f"<h3>{_e(aid)}</h3><p>{_e(amb.summary)}</p>")
        if not per_rt:
            parts.append("<p>No runtime produced a comparable result on these cases.</p>")
            continue
        names = [*list(amb.readings), "no documented reading"]
        hdr = [f"{n} (default)" if n == amb.default else n for n in names]
        rows = [[_td(rt), *[_td(per_rt[rt].get(n, ""), "n") for n in names]] for rt in per_rt]
        parts.append(_table(["runtime", *hdr], rows, "ambiguity"))
    return "".join(parts)


def _disagree(d: dict) -> str:
    specs = [rt["spec"] for rt in d["runtimes"] if rt["available"]]
    if len(specs) < 2:
        return "<p>One runtime: nothing to compare.</p>"
    if not d["build_matrix"]:
        return "<p>They agree on every case they all ran.</p>"
    rows = [[_td(case), *[_td(cells[s]) for s in specs]] for case, cells in d["build_matrix"].items()]
    return _table(["case", *[short_label(s) for s in specs]], rows, "disagree")


# --- the user's view (issue 26): banner, per-runtime row, filterable cases, details ---


def _rt(spec: str) -> str:
    """A runtime's cell: its short name (an interpreter path shortened to its environment), the
    full spec as the tooltip."""
    return f'<td title="{_e(spec)}"><code>{_e(short_label(spec))}</code></td>'


def banner_html(d: dict) -> str:
    b = d["banner"]
    reasons = "".join(f"<li>{_e(r)}</li>" for r in b["reasons"])
    return (
        f'<div class="banner {_e(b["status"])}" id="banner"><b>{_e(b["status"])}</b> '
        f"(exit status {_e(b['exit_code'])})<ul>{reasons}</ul></div>"
    )


def stale_html(d: dict) -> str:
    """index.md's stale known-failures lines."""
    if not d["stale_expectations"]:
        return ""
    items = "".join(
        f"<li>line {_e(e['line'])}: <code>{_e(e['key'])}</code> {_e(e.get('why') or 'now passes')}"
        f" - {_e(e['reason'])}</li>"
        for e in d["stale_expectations"]
    )
    return f"<h2>Stale known-failures lines (remove or mend them)</h2><ul>{items}</ul>"


def runtime_rows_html(d: dict) -> str:
    rows = []
    for rt in d["runtimes"]:
        counts = d["runtime_rows"].get(rt["spec"], {})
        version = (
            f"{rt['name']} {rt['version']}"
            if rt["available"]
            else "unavailable: " + str(rt.get("reason", ""))
        )
        cells = [
            _td(n, f"n {col if n and col in ('unexpected', 'known') else ''}", runtime=rt["spec"], column=col)
            for col, n in counts.items()
        ]
        rows.append([_rt(rt["spec"]), _td(version), *cells])
    return _table(["runtime", "version", "pass", "unexpected", "known", "other"], rows, "rows")


def _status(rec: dict, unexpected: set) -> str:
    group = GROUP[Verdict(rec["verdict"])]
    if group is Group.NORMATIVE:
        return "unexpected" if (rec["runtime"], rec["case"]) in unexpected else "known"
    return "ok" if group is Group.OK else "skipped"


def case_filters(d: dict) -> str:
    records = d["records"]
    choices = {
        "runtime": [(spec, short_label(spec)) for spec in sorted({r["runtime"] for r in records})],
        "verdict": [(v.value, v.value) for v in ORDER if any(r["verdict"] == v.value for r in records)],
        "status": [(v, v) for v in ("unexpected", "known", "ok", "skipped")],
        "form": [(v, v) for v in VARIANTS if any(variant_of(r["case"])[1] == v for r in records)],
    }
    out = ['<div class="filters">']
    for key, values in choices.items():
        opts = '<option value="">all</option>' + "".join(
            f'<option value="{_e(v)}">{_e(text)}</option>' for v, text in values
        )
        out.append(f'<label>{key} <select data-filter="{key}">{opts}</select></label>')
    out.append(f'<span><b id="shown">{len(records)}</b> of {len(records)} shown</span></div>')
    return "".join(out)


def case_table(d: dict) -> str:
    """Every (case, runtime) result, one row each, in a box of its own so that the sections below
    stay in reach; known failures amber, unexpected ones red."""
    unexpected = {(f["runtime"], f["case"]) for f in d["failures"] if f["unexpected"]}
    failures = {(f["runtime"], f["case"]): f for f in d["failures"]}
    rows = []
    for i, rec in enumerate(d["records"]):
        status = _status(rec, unexpected)
        form = variant_of(rec["case"])[1]
        data = {
            "idx": i,
            "runtime": rec["runtime"],
            "verdict": rec["verdict"],
            "status": status,
            "form": form,
        }
        attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in data.items())
        diag = failures.get((rec["runtime"], rec["case"]), {}).get("diagnosis_text", "")
        link = "" if rec["verdict"] == "pass" else f'<a href="#d-{i}">detail</a>'
        group = GROUP[Verdict(rec["verdict"])].value
        rows.append(
            f'<tr class="case-row {group} {status}"{attrs}>{_rt(rec["runtime"])}'
            f"<td><code>{_e(rec['case'])}</code></td>"
            f"{_td(form)}{_td(rec['verdict'])}{_td(status, status)}{_td(diag, 'diag')}<td>{link}</td></tr>"
        )
    table = _table(["runtime", "case", "form", "verdict", "status", "diagnosis", ""], [], "cases")
    return (
        '<div class="scroll">'
        + table.replace("<tbody></tbody>", "<tbody>" + "".join(rows) + "</tbody>")
        + "</div>"
    )


def _attributes_text(attributes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(attributes.items())) or "none (defaults)"


def _error_text(stats: dict | None) -> str:
    if not stats:
        return ""
    keys = ("max_abs_error", "max_rel_error", "max_ulp", "max_bound_fraction", "mismatches")
    return ", ".join(f"{k.replace('_', ' ')} {_num(stats.get(k))}" for k in keys if stats.get(k) is not None)


def _shapes_text(rec: dict) -> str:
    want, got = rec.get("expected_shape"), rec.get("got_shape")
    return "" if want is None and got is None else f"{want} / {got}"


def _num(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _readings_text(reading: dict | None) -> str:
    return ", ".join(f"{k}: {v}" for k, v in (reading or {}).items())


def case_details(d: dict) -> str:
    """One block per result that is not a pass, in words: what was asked, what came back, why it
    is judged so, and how to rerun it."""
    failures = {(f["runtime"], f["case"]): f for f in d["failures"]}
    unexpected = {k for k, f in failures.items() if f["unexpected"]}
    out = []
    for i, rec in enumerate(d["records"]):
        if rec["verdict"] == "pass":
            continue  # passes keep their row; the details are for what needs a look
        f = failures.get((rec["runtime"], rec["case"]), {})
        cmp = rec.get("comparison") or {}
        first = ""
        if cmp.get("first_mismatch") is not None:
            first = (
                f"at index {cmp['first_mismatch']}: expected {cmp.get('expected_at_first')!r}, "
                f"got {cmp.get('got_at_first')!r}"
            )
        items = [
            ("status", _status(rec, unexpected)),
            ("runtime", rec["runtime"]),
            ("case", rec["case"]),
            ("form", variant_of(rec["case"])[1]),
            ("dtype / opset", f"{rec.get('dtype')} / opset {rec.get('opset')}"),
            ("X, W shapes", f"X {rec.get('x_shape')}, W {rec.get('w_shape')}"),
            ("attributes", _attributes_text(rec.get("attributes") or {})),
            ("expected / got shape", _shapes_text(rec)),
            ("first difference", first),
            ("message", rec.get("message", "")),
            ("reading followed", _readings_text(rec.get("reading"))),
            (
                "nearest reading",
                _readings_text(rec.get("nearest_reading"))
                if isinstance(rec.get("nearest_reading"), dict)
                else rec.get("nearest_reading") or "",
            ),
            ("diagnosis", f.get("diagnosis_text", "")),
            ("error statistics", _error_text(f.get("error"))),
            ("known reason", rec.get("expected_reason", "")),
            (
                "saved tensors",
                ", ".join(str(v) for v in (rec.get("tensors") or {}).values())
                if isinstance(rec.get("tensors"), dict)
                else rec.get("tensors") or "",
            ),
        ]
        body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items if v not in ("", None))
        geometry_text = _geometry_text(rec)
        out.append(
            f'<details id="d-{i}" data-idx="{i}"><summary>{_e(short_label(rec["runtime"]))} · '
            f"{_e(rec['case'])} · {_e(rec['verdict'])}</summary>"
            f'<dl class="case">{body}</dl>'
            + (f"<pre>{_e(geometry_text)}</pre>" if geometry_text else "")
            + f"<p>reproduce: <code>{_e(rec['reproduce'])}</code></p></details>"
        )
    return "".join(out) or "<p>Every result is a pass.</p>"


def variants_html(d: dict) -> str:
    """The model-variant section of index.md: which cases change verdict with the model's form."""
    matrix = d.get("variant_matrix", {})
    if not any(len(per_v) > 1 for per_v in matrix.values()):
        return ""
    parts = [
        "<h2>Where the form of the model changes the answer</h2>",
        f"<p>The same case as different model forms ({_e(', '.join(VARIANTS))}): same inputs, "
        "same expected output.</p>",
    ]
    rows = [
        [_rt(rt), _td(f"{len(changes)} cases change verdict" if changes else "no case changes verdict")]
        for rt, changes in d["variant_changes"].items()
        if len(matrix.get(rt, {})) > 1
    ]
    parts.append(_table(["runtime", "between its variants"], rows, "variants"))
    for rt, changes in d["variant_changes"].items():
        if not changes:
            continue
        variants = [v for v in VARIANTS if any(v in c for c in changes.values())]
        shown = list(changes.items())[:MAX_LISTED]
        parts.append(
            f"<h3><code>{_e(short_label(rt))}</code>: {len(changes)} cases whose verdict depends on "
            "the form</h3>"
        )
        parts.append(
            _table(
                ["case", *variants],
                [[_td(base), *[_td(c.get(v, "-")) for v in variants]] for base, c in shown],
                "variants",
            )
        )
    verdicts = [
        v.value for v in ORDER if any(c.get(v.value) for per_v in matrix.values() for c in per_v.values())
    ]
    rows = [
        [_rt(rt), _td(variant), *[_td(c.get(v, ""), "n") for v in verdicts]]
        for rt, per_v in matrix.items()
        for variant, c in per_v.items()
    ]
    parts.append(
        "<h3>Verdicts per variant</h3>" + _table(["runtime", "variant", *verdicts], rows, "variants")
    )
    return "".join(parts)


def error_stats_html(d: dict) -> str:
    rows = [
        [
            _rt(f["runtime"]),
            _td(f["case"]),
            _td(f.get("cluster") or ""),
            *[
                _td(_num(e[k]) if e.get(k) is not None else "", "n")
                for k in ("max_abs_error", "max_rel_error", "max_ulp")
            ],
            _td("exact data" if e.get("bitexact_required") else _num(e.get("max_bound_fraction")), "n"),
            _td(e.get("mismatches", ""), "n"),
        ]
        for f in d["failures"]
        if (e := f.get("error"))
    ]
    if not rows:
        return ""
    header = list(ERROR_COLUMNS)
    return "<h2>Error statistics (failing comparisons)</h2>" + _table(header, rows[:MAX_LISTED], "errors")


def versions_html(d: dict) -> str:
    rows = [
        [
            _rt(rt["spec"]),
            _td(rt.get("name", "")),
            _td(rt.get("version", "")),
            _td("yes" if rt["available"] else "no"),
            _td(", ".join(f"{k}: {v}" for k, v in sorted((rt.get("details") or {}).items()))[:300]),
        ]
        for rt in d["runtimes"]
    ]
    machine = "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in d.get("machine", {}).items())
    return (
        "<h2>Runtimes and machine</h2>"
        + _table(["runtime", "name", "version", "available", "details"], rows, "versions")
        + f"<ul>{machine}</ul>"
    )


def unsupported_html(d: dict) -> str:
    """index.md's unsupported and placement sections, and the problems of the suite."""
    parts = []
    for key, title, column in (
        (
            "unsupported",
            "Unsupported (not failures: the runtime says it has no kernel)",
            "dtype / opset: cases",
        ),
        ("placement", "Placement (where the node really ran)", "placement: cases"),
    ):
        rows = [[_rt(rt), _td(", ".join(f"{k}: {v}" for k, v in c.items()))] for rt, c in d[key].items()]
        parts.append(
            f"<h2>{_e(title)}</h2>" + (_table(["runtime", column], rows) if rows else "<p>None.</p>")
        )
    problems = [*d["suite_problems"], *(f"{k}: {v}" for k, v in d["case_problems"].items())]
    if problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in problems[:MAX_LISTED])
        parts.append(f"<h2>Suite problems (files that failed verification)</h2><ul>{items}</ul>")
    return "".join(parts)


def _notes(d: dict) -> str:
    notes = [*(d.get("read_notes") or []), *(d.get("notes") or [])]
    if not notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in notes[:MAX_LISTED])
    extra = len(notes) - MAX_LISTED
    more = f"<li>... {extra} more in report.json (notes)</li>" if extra > 0 else ""
    return f'<h2>Records not shown as they were</h2><ul class="notes">{items}{more}</ul>'


def page(report, out: str | Path | None = None, links=None) -> str:
    """The HTML text of report/index.html (``out``: the report directory, for the heatmaps;
    ``links``: the bug reports published beside it, see opref.report.markdown.cluster_lines)."""
    d = report.data
    out = Path(out) if out is not None else None
    srcs = ", ".join(f"{s['suite']} ({s['started']})" for s in d["sources"])
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
            f"<title>opref ConvTranspose conformance report</title><style>{_CSS}</style></head><body>",
            "<h1>opref ConvTranspose conformance report</h1>",
            banner_html(d),
            f"<p>opref {_e(d['opref_version'])}; suite {_e(srcs)}; "
            f"{len(d['records'])} (case, runtime) results. "
            f'<b id="unexpected">{d["unexpected_count"]}</b> unexpected normative failures '
            f"({len(d['failures'])} in all, {len(d['divergences'])} divergences). "
            f"Exit code {d['exit_code']}.</p>",
            runtime_rows_html(d),
            stale_html(d),
            "<h2>Every case</h2>",
            case_filters(d),
            case_table(d),
            "<h2>Summary: verdicts per runtime</h2>",
            _summary(d),
            "<h2>Failure clusters</h2>",
            _clusters(d, out, links),
            variants_html(d),
            error_stats_html(d),
            "<h2>Ambiguities: which reading each runtime follows</h2>",
            _ambiguities(d),
            "<h2>Where the runtimes disagree</h2>",
            _disagree(d),
            unsupported_html(d),
            _notes(d),
            versions_html(d),
            "<h2>Case details (everything but passes)</h2>",
            case_details(d),
            f"<script>{_JS}</script></body></html>",
        ]
    )
