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
import json
from pathlib import Path

from opref.escape import visible
from opref.readings import AMBIGUITIES
from opref.report.vocabulary import CLUSTER_COLUMNS
from opref.report.vocabulary import MAX_LISTED as MAX_NOTES
from opref.verdicts import GROUP, ORDER, Group

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#212121;max-width:1600px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 6px;
vertical-align:top;text-align:left}th{background:#f5f5f5}td.n{text-align:right}
.normative{background:#ffebee}.ok{background:#e8f5e9}.skipped{background:#f5f5f5}
.unexpected{color:#b71c1c;font-weight:bold}code{font-size:12px;word-break:break-all}
.filters label{margin-right:1em}details pre{background:#fafafa;padding:.5em;overflow:auto}
img.heat{max-width:560px;display:block}.diag{font-weight:bold;color:#4a148c}
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
    shown = [v.value for v in ORDER if any(d["matrix"][rt][v.value] for rt in d["matrix"])]
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
                f"n {GROUP[type(ORDER[0])(v)].value}",
                runtime=spec,
                verdict=v,
                count=d["matrix"][spec][v],
            )
            for v in shown
        ]
        rows.append([_td(spec), _td(f"{rt['name']} {rt['version']}"), *cells])
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
    return _table(["case", *specs], rows, "disagree")


def _filters(records: list[dict]) -> str:
    out = ['<div class="filters">']
    for key in ("runtime", "verdict", "family", "dtype"):
        values = sorted({str(r.get(key, "")) for r in records})
        opts = '<option value="">all</option>' + "".join(
            f'<option value="{_e(v)}">{_e(v)}</option>' for v in values
        )
        out.append(f'<label>{key} <select data-filter="{key}">{opts}</select></label>')
    out.append(f'<span><b id="shown">{len(records)}</b> of {len(records)} shown</span></div>')
    return "".join(out)


def _cases(d: dict) -> str:
    rows, details = [], []
    failures = {(f["runtime"], f["case"]): f for f in d["failures"]}
    for i, rec in enumerate(d["records"]):
        group = GROUP[type(ORDER[0])(rec["verdict"])].value
        data = {
            "idx": i,
            "runtime": rec["runtime"],
            "verdict": rec["verdict"],
            "family": rec.get("family", ""),
            "dtype": rec["dtype"],
        }
        attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in data.items())
        f = failures.get((rec["runtime"], rec["case"]), {})
        diag = f.get("diagnosis_text", "")
        rows.append(
            f'<tr class="case-row {group}"{attrs}>{_td(rec["runtime"])}{_td(rec["case"])}'
            f"{_td(rec['verdict'])}"
            f"{_td(rec.get('family', ''))}{_td(rec['dtype'])}{_td(diag, 'diag')}"
            f'<td><a href="#d-{i}">detail</a></td></tr>'
        )
        if group == Group.OK.value and rec["verdict"] == "pass":
            continue  # passes keep their row; the details are for what needs a look
        stats = f.get("error")
        body = {
            "attributes": rec.get("attributes"),
            "x_shape": rec.get("x_shape"),
            "w_shape": rec.get("w_shape"),
            "opset": rec.get("opset"),
            "message": rec.get("message", ""),
            "reading": rec.get("reading"),
            "nearest_reading": rec.get("nearest_reading"),
            "diagnosis": rec.get("diagnosis") or [],
            "error statistics": stats,
            "known reason": rec.get("expected_reason", ""),
            "tensors": rec.get("tensors"),
        }
        details.append(
            f'<details id="d-{i}" data-idx="{i}"><summary>{_e(rec["runtime"])} · {_e(rec["case"])} · '
            f"{_e(rec['verdict'])}</summary>"
            f"<pre>{_e(json.dumps(body, indent=1, sort_keys=True, default=str))}</pre>"
            f"<pre>{_e(_geometry_text(rec))}</pre>"
            f"<p>reproduce: <code>{_e(rec['reproduce'])}</code></p></details>"
        )
    table = _table(["runtime", "case", "verdict", "family", "dtype", "diagnosis", ""], [], "cases")
    table = table.replace("<tbody></tbody>", "<tbody>" + "".join(rows) + "</tbody>")
    return table + "<h2>Case details (everything but passes)</h2>" + "".join(details)


def _notes(d: dict) -> str:
    notes = d.get("notes") or []
    if not notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in notes[:MAX_NOTES])
    extra = len(notes) - MAX_NOTES
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
            f"<p>opref {_e(d['opref_version'])}; suite {_e(srcs)}; "
            f"{len(d['records'])} (case, runtime) results. "
            f'<b id="unexpected">{d["unexpected_count"]}</b> unexpected normative failures '
            f"({len(d['failures'])} in all, {len(d['divergences'])} divergences). "
            f"Exit code {d['exit_code']}.</p>",
            "<h2>Summary</h2>",
            _summary(d),
            "<h2>Failure clusters</h2>",
            _clusters(d, out, links),
            "<h2>Ambiguities: which reading each runtime follows</h2>",
            _ambiguities(d),
            "<h2>Where the runtimes disagree</h2>",
            _disagree(d),
            _notes(d),
            "<h2>Every case</h2>",
            _filters(d["records"]),
            _cases(d),
            f"<script>{_JS}</script></body></html>",
        ]
    )
