"""The GPU check's summary: per configuration its verdicts, placement truth and the
differences from CPU, as a table on the terminal and as Markdown."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opref.gpu.common import (
    _NOT_RUN,
    CONFIGURATIONS,
    EXIT_FAILED,
    EXIT_OK,
    TABLE_ORDER,
    Configuration,
    strip_ansi,
)

# --- the summary --------------------------------------------------------------------------


def base_spec(runtime: str) -> str:
    """A record's runtime without its ``@interpreter``."""
    plain, sep, _ = runtime.rpartition("@")
    return plain if sep else runtime


def cpu_fallback_reason(attributes: Mapping[str, object]) -> str:
    """Why onnxruntime's CUDA provider hands a ConvTranspose node to CPU, or '' (spec notes
    section 4, ``ConvTransposeNeedFallbackToCPU``: asymmetric pads or any SAME_* auto_pad, as
    written in the node, whether or not output_shape makes the pads irrelevant)."""
    pads = list(attributes.get("pads") or [])
    half = len(pads) // 2
    if pads and pads[:half] != pads[half:]:
        return f"asymmetric pads {pads}"
    auto_pad = attributes.get("auto_pad")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return f"auto_pad {auto_pad}"
    return ""


def _cell(rec: dict) -> str:
    if rec["verdict"] == "divergence" and rec.get("reading"):
        return "divergence: " + ",".join(rec["reading"].values())
    return rec["verdict"]


@dataclass(frozen=True)
class ConfigSummary:
    spec: str
    required: bool
    ran: bool  # results.json exists
    available: bool
    complete: bool
    reason: str  # why unavailable or incomplete
    name: str
    version: str
    counts: dict[str, int]
    unexpected: tuple[str, ...]  # "case verdict"
    max_bound_fraction: float | None  # float32 random-data cases judged by value
    max_abs_error: float | None

    @property
    def cases(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class PlacementCheck:
    """A case the CUDA provider must refuse, and what each CUDA configuration gave it."""

    case: str
    reason: str
    verdicts: dict[str, str]  # configuration -> verdict
    violations: tuple[str, ...]  # configurations where it was not fallback


@dataclass(frozen=True)
class Difference:
    case: str
    configuration: str
    cpu: str
    gpu: str


@dataclass(frozen=True)
class Summary:
    configs: tuple[ConfigSummary, ...]
    placement: tuple[PlacementCheck, ...]
    differences: tuple[Difference, ...]
    placement_by_case: dict[str, dict[str, str]]  # case -> configuration -> placement or verdict
    unexpected_fallback: dict[str, tuple[str, ...]]  # configuration -> cases not in the rule

    def config(self, spec: str) -> ConfigSummary | None:
        return next((c for c in self.configs if c.spec == spec), None)

    @property
    def problems(self) -> list[str]:
        """Why the check fails (empty: it passes)."""
        out = []
        for c in self.configs:
            if not c.required:
                continue
            if not c.ran:
                out.append(f"{c.spec}: did not run ({c.reason})")
            elif not c.available:
                out.append(f"{c.spec}: unavailable: {c.reason}")
            elif not c.complete:
                out.append(f"{c.spec}: incomplete: {c.reason}")
            if c.unexpected:
                out.append(f"{c.spec}: {len(c.unexpected)} unexpected normative failures")
        for p in self.placement:
            for spec in p.violations:
                out.append(
                    f"{spec}: {p.case} must fall back to CPU ({p.reason}) but came out {p.verdicts[spec]}"
                )
        return out

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.problems else EXIT_OK

    def fallback_count(self, spec: str) -> int:
        c = self.config(spec)
        return c.counts.get("fallback", 0) if c else 0


def _summarize_config(cfg: Configuration, results: dict | None, note: str) -> ConfigSummary:
    if results is None:
        return ConfigSummary(cfg.spec, cfg.required, False, False, False, note, "", "", {}, (), None, None)
    rts = [rt for rt in results.get("runtimes", []) if base_spec(rt["spec"]) == cfg.spec]
    rt = rts[0] if rts else {"available": False, "reason": "not in results.json", "name": "", "version": ""}
    recs = [r for r in results.get("records", []) if base_spec(r["runtime"]) == cfg.spec]
    counts = dict(Counter(r["verdict"] for r in recs))
    unexpected = tuple(
        sorted(
            f"{u['case']} {u['verdict']}"
            for u in results.get("unexpected", [])
            if base_spec(u["runtime"]) == cfg.spec
        )
    )
    complete = (
        bool(results.get("complete", True))
        and not results.get("suite_problems")
        and not results.get("case_problems")
    )
    reason = strip_ansi(rt.get("reason", ""))
    if rt["available"] and not complete:
        problems = [*results.get("suite_problems", []), *results.get("case_problems", {})]
        reason = "results.json says the run is not complete" + (
            f" ({len(problems)} suite problems)" if problems else ""
        )
    judged = [
        r["comparison"]
        for r in recs
        if r.get("comparison")
        and r["dtype"] == "float32"
        and not r["comparison"].get("bitexact_required")
        and r["verdict"] in ("pass", "fail-values")
    ]
    fraction = max((c["max_bound_fraction"] for c in judged), default=None)
    abs_error = max((c["max_abs_error"] for c in judged), default=None)
    return ConfigSummary(
        cfg.spec,
        cfg.required,
        True,
        bool(rt["available"]),
        complete,
        reason,
        rt.get("name", ""),
        rt.get("version", ""),
        counts,
        unexpected,
        fraction,
        abs_error,
    )


def summarize(
    results: Mapping[str, dict | None],
    configurations: Sequence[Configuration] = CONFIGURATIONS,
    notes: Mapping[str, str] | None = None,
) -> Summary:
    """The check's findings from each configuration's results.json (None: it did not run)."""
    notes = notes or {}
    configs = tuple(
        _summarize_config(cfg, results.get(cfg.spec), notes.get(cfg.spec, "not run"))
        for cfg in configurations
    )
    records: dict[str, dict[str, dict]] = {}
    for cfg in configurations:
        res = results.get(cfg.spec) or {}
        for rec in res.get("records", []):
            if base_spec(rec["runtime"]) == cfg.spec:
                records.setdefault(cfg.spec, {})[rec["case"]] = rec
    truth = [c.spec for c in configurations if c.placement_truth and c.spec in records]
    cases = sorted({case for recs in records.values() for case in recs})
    placement, unexpected_fallback = [], {}
    for spec in truth:
        unexpected_fallback[spec] = tuple(
            case
            for case, rec in sorted(records[spec].items())
            if rec["verdict"] == "fallback" and not cpu_fallback_reason(rec["attributes"])
        )
    for case in cases:
        rec = next(recs[case] for recs in records.values() if case in recs)
        reason = cpu_fallback_reason(rec["attributes"])
        if not reason or rec.get("expect") != "output":
            continue  # a must-reject model may be refused before placement
        verdicts = {spec: records[spec][case]["verdict"] for spec in truth if case in records[spec]}
        violations = tuple(spec for spec, v in verdicts.items() if v not in _NOT_RUN)
        placement.append(PlacementCheck(case, reason, verdicts, violations))
    differences = []
    cpu = records.get("ort:cpu", {})
    for cfg in configurations:
        if cfg.spec == "ort:cpu" or cfg.spec not in records:
            continue
        for case, rec in sorted(records[cfg.spec].items()):
            if case in cpu and rec["verdict"] != "fallback" and _cell(rec) != _cell(cpu[case]):
                differences.append(Difference(case, cfg.spec, _cell(cpu[case]), _cell(rec)))
    by_case = {
        case: {
            spec: (recs[case].get("placement") or recs[case]["verdict"]) if case in recs else "-"
            for spec, recs in records.items()
        }
        for case in cases
    }
    return Summary(configs, tuple(placement), tuple(differences), by_case, unexpected_fallback)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def table_rows(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """The summary table: one row per configuration, the verdict columns that occur."""
    order = [
        "pass",
        "divergence",
        "rejected",
        "fallback",
        "unsupported",
        "fail-shape",
        "fail-values",
        "error",
        "accepted-invalid",
        "crashed",
        "timeout",
    ]
    shown = [v for v in order if any(c.counts.get(v) for c in summary.configs)]
    header = ["configuration", "status", *shown, "unexpected", "max err/bound f32"]
    rows = []
    specs = [s for s in TABLE_ORDER if summary.config(s)] + [
        c.spec for c in summary.configs if c.spec not in TABLE_ORDER
    ]
    for spec in specs:
        c = summary.config(spec)
        if not c.ran:
            status = "not run"
        elif not c.available:
            status = "unavailable"
        else:
            status = "ran" if c.complete else "incomplete"
        rows.append(
            [
                spec,
                status,
                *[str(c.counts.get(v, 0)) for v in shown],
                str(len(c.unexpected)),
                _fraction(c.max_bound_fraction),
            ]
        )
    return header, rows


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), *(fmt.format(*r) for r in rows)]


def summary_lines(summary: Summary, limit: int = 20) -> list[str]:
    """The short summary printed last."""
    header, rows = table_rows(summary)
    lines = text_table(header, rows)
    for c in summary.configs:
        if c.ran and not c.available:
            lines.append(f"{c.spec} unavailable: {c.reason}")
    cuda = [
        c
        for c in CONFIGURATIONS
        if c.placement_truth and summary.config(c.spec) and summary.config(c.spec).ran
    ]
    must = len(summary.placement)
    bad = sum(1 for p in summary.placement if p.violations)
    for cfg in cuda:
        extra = summary.unexpected_fallback.get(cfg.spec, ())
        lines.append(
            f"{cfg.spec}: {summary.fallback_count(cfg.spec)} fallback; "
            + (
                f"{len(extra)} of them outside the CPU-placement rule"
                if extra
                else "all within the CPU-placement rule"
            )
        )
    lines.append(
        f"placement truth: {must} cases with asymmetric pads or SAME_* auto_pad must come out "
        "fallback on CUDA: " + (f"{bad} do not (see summary.md)" if bad else "all do")
    )
    off, on = summary.config("ort:cuda"), summary.config("ort:cuda?use_tf32=1")
    if off and on:
        lines.append(
            "TF32 max error / bound (float32 random data): "
            f"off {_fraction(off.max_bound_fraction)} of the fp32 bound, "
            f"on {_fraction(on.max_bound_fraction)} of the TF32 bound"
        )
    lines.append(f"CUDA vs CPU: {len(summary.differences)} (case, configuration) pairs differ")
    for d in summary.differences[:limit]:
        lines.append(f"  {d.configuration} {d.case}: cpu {d.cpu}, gpu {d.gpu}")
    if len(summary.differences) > limit:
        lines.append(f"  ... {len(summary.differences) - limit} more in summary.md")
    problems = summary.problems
    for p in problems[:limit]:
        lines.append(f"FAIL {p}")
    if len(problems) > limit:
        lines.append(f"... {len(problems) - limit} more problems in summary.md")
    lines.append(f"gpu-check: {'FAILED' if problems else 'passed'} (exit {summary.exit_code})")
    return lines


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |" for r in rows]
    return [*out, ""]


def markdown(summary: Summary, environment: Mapping[str, object]) -> str:
    """summary.md: the environment, the verdict matrix, placement truth, placement per case,
    and every case where a GPU configuration and CPU differ."""
    lines = ["# gpu-check: onnxruntime CUDA execution provider", ""]
    lines += ["## Environment", ""]
    lines += [
        f"- {k}: " + (v if isinstance(v, str) else f"`{json.dumps(v, sort_keys=True, default=str)}`")
        for k, v in environment.items()
    ]
    lines += ["", "## Verdicts per configuration", ""]
    lines += _md_table(*table_rows(summary))
    lines += [
        "`max err/bound f32`: the largest error as a fraction of the bound the case was judged by, over "
        "float32 random-data cases (the TF32 bound for `use_tf32=1`, the float32 bound otherwise).",
        "",
    ]
    for c in summary.configs:
        if c.reason:
            lines.append(f"- `{c.spec}`: {c.reason}")
        for u in c.unexpected:
            lines.append(f"- `{c.spec}` unexpected: {u}")
    lines += ["", "## Placement truth", ""]
    lines += [
        "onnxruntime's CUDA provider gives ConvTranspose nodes with asymmetric pads or a SAME_* auto_pad to "
        "the CPU provider (`ConvTransposeNeedFallbackToCPU`). With the CPU fallback disabled these cases "
        "must come out `fallback`.",
        "",
    ]
    specs = [
        c.spec
        for c in CONFIGURATIONS
        if c.placement_truth and summary.config(c.spec) and summary.config(c.spec).ran
    ]
    rows = [
        [p.case, p.reason, *[p.verdicts.get(s, "-") for s in specs], "ok" if not p.violations else "VIOLATED"]
        for p in summary.placement
    ]
    lines += _md_table(["case", "why", *specs, "truth"], rows) if rows else ["No such case ran.", ""]
    for spec, cases in summary.unexpected_fallback.items():
        if cases:
            lines += [f"`{spec}` also refused {len(cases)} cases outside that rule: {', '.join(cases)}", ""]
    lines += ["## CUDA vs CPU", ""]
    rows = [[d.case, d.configuration, d.cpu, d.gpu] for d in summary.differences]
    lines += (
        _md_table(["case", "configuration", "ort:cpu", "GPU configuration"], rows)
        if rows
        else [
            "No case differs (fallback cases aside; both passing means both within the bound, "
            "bit-identical on exact data).",
            "",
        ]
    )
    lines += ["## Placement per case", ""]
    all_specs = sorted(
        {s for row in summary.placement_by_case.values() for s in row},
        key=lambda s: (s not in TABLE_ORDER, TABLE_ORDER.index(s) if s in TABLE_ORDER else 0, s),
    )
    rows = [[case, *[row.get(s, "-") for s in all_specs]] for case, row in summary.placement_by_case.items()]
    lines += _md_table(["case", *all_specs], rows)
    if summary.problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in summary.problems] + [""]
    return "\n".join(lines)


