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

from __future__ import annotations

import html
import json
import os
import re
import shlex
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from opref import readings as rd
from opref.dtypes import DTYPES, ulp
from opref.errors import SpecError
from opref.geometry import geometry
from opref.reference import conv_transpose
from opref.report import check_results, clusters
from opref.runtimes import parse, split_interpreter
from opref.tolerance import gamma, magnitude_sum
from opref.vectors import CaseData, read_case, read_manifest
from opref.version import __version__

UPSTREAM_FILE = "upstream.json"
INDEX_FILE = "index.md"

# Element types in the order a repro prefers them: every runtime feeds float32 from numpy;
# bfloat16 needs ml_dtypes (onnx's own dependency) and is taken only when nothing else fails.
_DTYPE_PREFERENCE = ("float32", "float64", "float16", "bfloat16")

_VERDICT_PHRASES = {
    "fail-values": "wrong values",
    "fail-shape": "wrong output shape",
    "error": "refuses a valid model",
    "crashed": "crashes on a valid model",
    "timeout": "hangs on a valid model",
    "accepted-invalid": "accepts an invalid model",
}


# --- how each runtime is called from a repro (data: one entry per runtime kind) -----------------


@dataclass(frozen=True)
class Runner:
    """How a repro calls one runtime kind: the pip requirement(s) and the body of
    ``run(model_bytes, feeds) -> numpy array`` (indented four spaces in the script)."""

    packages: str  # pip requirements, "{version}" filled in with the measured version
    body: str


def _ort_body(arg: str, options: Mapping[str, str]) -> str:
    from opref.runtimes.ort import provider_name

    provider = provider_name(arg)
    opts = {k: v for k, v in sorted(options.items()) if k not in ("plugin", "library", "ep_device")}
    lines = ["import onnxruntime as ort", "", "options = ort.SessionOptions()"]
    if provider != "CPUExecutionProvider":
        lines += [
            "# as an application that must not silently run on CPU: no fallback",
            'options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")',
        ]
    lines += [
        f"session = ort.InferenceSession(model_bytes, options, providers=[({provider!r}, {opts!r})])",
        "return session.run(None, feeds)[0]",
    ]
    return "\n".join(lines)


_RUNNERS: dict[str, Runner] = {
    "onnx-reference": Runner(
        "onnx=={version}",
        "from onnx.reference import ReferenceEvaluator\n\n"
        "return ReferenceEvaluator(onnx.load_from_string(model_bytes)).run(None, feeds)[0]",
    ),
    "openvino": Runner(
        "openvino=={version}",
        "import openvino as ov\n\n"
        "core = ov.Core()\n"
        'compiled = core.compile_model(core.read_model(model=model_bytes), "CPU", {config})\n'
        "port = compiled.outputs[0]\n"
        "out = np.asarray(compiled(feeds)[port])\n"
        "if port.get_element_type() == ov.Type.bf16 and out.dtype == np.float16:\n"
        "    import ml_dtypes  # OpenVINO hands bfloat16 out as float16-typed bits\n\n"
        "    out = out.view(np.uint16).view(ml_dtypes.bfloat16)\n"
        "return out",
    ),
    "tract": Runner(
        "tract=={version}",
        "import tract\n\n"
        "with tempfile.TemporaryDirectory() as tmp:\n"
        '    path = os.path.join(tmp, "model.onnx")  # tract loads models from a path only\n'
        '    with open(path, "wb") as fh:\n'
        "        fh.write(model_bytes)\n"
        "    model = tract.onnx().load(path)\n"
        "    names = [model.input_name(i) for i in range(model.input_count())]\n"
        "    runnable = model.into_model().into_runnable()\n"
        "    return runnable.run([feeds[n] for n in names])[0].to_numpy()",
    ),
    "tvm": Runner(
        "apache-tvm=={version}",
        "import tvm\n"
        "from tvm import relax\n"
        "from tvm.relax.frontend.onnx import from_onnx\n\n"
        "proto = onnx.load_from_string(model_bytes)\n"
        "module = from_onnx(proto, keep_params_in_input=False)\n"
        "device = tvm.cpu(0)\n"
        'vm = relax.VirtualMachine(tvm.compile(module, target="llvm"), device)\n'
        "args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[i.name]), device)\n"
        "        for i in proto.graph.input]\n"
        'out = vm["main"](*args)\n'
        'if not hasattr(out, "numpy"):  # a tuple of outputs\n'
        "    out = out[0]\n"
        "return out.numpy()",
    ),
    "tinygrad": Runner(
        "tinygrad=={version}",
        'os.environ["DEV"] = {device}  # read when tinygrad is imported\n'
        "from tinygrad.nn.onnx import OnnxRunner\n\n"
        "with tempfile.TemporaryDirectory() as tmp:\n"
        '    path = os.path.join(tmp, "model.onnx")\n'
        '    with open(path, "wb") as fh:\n'
        "        fh.write(model_bytes)\n"
        "    result = next(iter(OnnxRunner(path)(feeds).values()))\n"
        "    return result.numpy()",
    ),
    "iree": Runner(
        "iree-base-compiler[onnx]=={version} iree-base-runtime=={version}",
        "import iree.compiler.tools as compiler\n"
        "import iree.runtime as rt\n"
        "from iree.compiler.tools.import_onnx import __main__ as import_onnx\n\n"
        "with tempfile.TemporaryDirectory() as tmp:\n"
        '    onnx_path, mlir_path = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model.mlir")\n'
        '    with open(onnx_path, "wb") as fh:\n'
        "        fh.write(model_bytes)\n"
        '    import_onnx.main(import_onnx.parse_arguments([onnx_path, "-o", mlir_path]))\n'
        "    try:\n"
        "        vmfb = compiler.compile_file(\n"
        "            mlir_path,\n"
        '            input_type="onnx",\n'
        '            target_backends=["llvm-cpu"],\n'
        '            extra_args=["--iree-input-demote-f64-to-f32=false", "--iree-llvmcpu-target-cpu=host"],\n'
        "        )\n"
        "    except compiler.CompilerToolError as exc:\n"
        "        # iree-compile runs as a subprocess: a compiler killed by a signal is a crash\n"
        '        code = re.search(r"Error code: (-?\\d+)", str(exc))\n'
        "        if code and int(code.group(1)) < 0:\n"
        "            sys.stderr.write(str(exc)[:4000])\n"
        "            os.kill(os.getpid(), -int(code.group(1)))\n"
        "        raise\n"
        'ctx = rt.SystemContext(config=rt.Config("local-task"))\n'
        "vm_module = rt.VmModule.copy_buffer(ctx.instance, vmfb)\n"
        "ctx.add_vm_module(vm_module)\n"
        "graph = onnx.load_from_string(model_bytes).graph\n"
        "entry = graph.name if graph.name in vm_module.function_names else vm_module.function_names[0]\n"
        "args = [np.ascontiguousarray(feeds[i.name]) for i in graph.input]\n"
        "result = ctx.modules[vm_module.name][entry](*args)\n"
        "if isinstance(result, (list, tuple)):\n"
        "    result = result[0]\n"
        "return np.asarray(result.to_host())",
    ),
}


def runner_for(spec: str, version: str) -> tuple[str, str] | None:
    """(pip requirements, body of ``run``) for ``spec``, or None where a repro cannot call the
    runtime simply (a ``py:`` adapter, a kind without an entry)."""
    kind, arg, options = parse(spec)
    if kind == "ort":
        package = (
            "onnxruntime-openvino"
            if arg.lower() in ("openvino", "openvinoexecutionprovider")
            else "onnxruntime"
        )
        return f"{package}=={version}", _ort_body(arg, options)
    runner = _RUNNERS.get(kind)
    if runner is None:
        return None
    body = runner.body
    if kind == "openvino":
        config = {"INFERENCE_PRECISION_HINT": "f32", **{k: v for k, v in options.items() if k != "device"}}
        body = body.replace("{config}", repr(dict(sorted(config.items()))))
    if kind == "tinygrad":
        from opref.runtimes.tinygrad import DEFAULT_DEVICE

        body = body.replace("{device}", repr(options.get("device", arg or DEFAULT_DEVICE)))
    return runner.packages.replace("{version}", version), body


# --- choosing the case and writing it out ---------------------------------------------------------


def _exact(rec: dict) -> bool:
    cmp = rec.get("comparison") or {}
    if "bitexact_required" in cmp:
        return bool(cmp["bitexact_required"])
    return "_exact" in rec["case"]


def _elements(rec: dict) -> int:
    return sum(
        int(np.prod(s)) for s in (rec.get("x_shape"), rec.get("w_shape"), rec.get("expected_shape")) if s
    )


def choose_case(records: Sequence[dict]) -> dict:
    """The cluster member a repro shows: unambiguous before ambiguous (one right answer), exact
    data before random (small integers, compared bit for bit), then the fewest elements, then the
    element type every runtime feeds most simply, then the name."""

    def key(rec: dict) -> tuple:
        dtype = rec["dtype"]
        rank = _DTYPE_PREFERENCE.index(dtype) if dtype in _DTYPE_PREFERENCE else len(_DTYPE_PREFERENCE)
        return (bool(rec.get("ambiguities")), not _exact(rec), _elements(rec), rank, rec["case"])

    return min(records, key=key)


def _number(value: float) -> str:
    if np.isnan(value):
        return 'float("nan")'
    if np.isinf(value):
        return 'float("inf")' if value > 0 else '-float("inf")'
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value)) if value != 0 or not np.signbit(value) else "-0.0"
    return repr(float(value))


def array_literal(array: np.ndarray, indent: int = 4) -> str:
    """``array`` as a nested Python list, one innermost row per line (values exact: a float
    printed by repr reads back to the same float64, and every narrower float is a float64)."""
    a = np.asarray(array).astype(np.float64)
    if a.ndim == 0:
        return _number(float(a))
    if a.ndim == 1:
        return "[" + ", ".join(_number(float(v)) for v in a) + "]"

    def rows(sub: np.ndarray, depth: int) -> str:
        if sub.ndim == 1:
            return "[" + ", ".join(_number(float(v)) for v in sub) + "]"
        pad = " " * (indent + 4 * (depth + 1))
        inner = (",\n" + pad).join(rows(s, depth + 1) for s in sub)
        return "[\n" + pad + inner + ",\n" + " " * (indent + 4 * depth) + "]"

    return rows(a, 0)


_NP_DTYPE = {
    "float32": "np.float32",
    "float64": "np.float64",
    "float16": "np.float16",
    "bfloat16": "ml_dtypes.bfloat16",
}


def _np_array(array: np.ndarray, indent: int = 4) -> str:
    name = np.dtype(array.dtype).name
    dtype = _NP_DTYPE.get(name, f"np.{name}")
    return f"np.array({array_literal(array, indent)}, dtype={dtype})"


def _attribute_value(attr: onnx.AttributeProto) -> object:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


_ATTR_TYPES = {
    onnx.AttributeProto.INTS: "INTS",
    onnx.AttributeProto.FLOATS: "FLOATS",
    onnx.AttributeProto.STRINGS: "STRINGS",
}


def _value_info(vi: onnx.ValueInfoProto) -> str:
    tt = vi.type.tensor_type
    type_name = onnx.TensorProto.DataType.Name(tt.elem_type)
    if not tt.HasField("shape"):
        return f"helper.make_tensor_value_info({vi.name!r}, TensorProto.{type_name}, None)"
    dims = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param if d.HasField("dim_param") else None)
        for d in tt.shape.dim
    ]
    return f"helper.make_tensor_value_info({vi.name!r}, TensorProto.{type_name}, {dims!r})"


def model_code(model: onnx.ModelProto) -> str:
    """The body of ``build_model()``: ``model`` (one graph of plain nodes) rebuilt with onnx.helper."""
    g = model.graph
    lines = ["nodes = []"]
    for node in g.node:
        kwargs, empty = [], []
        for attr in node.attribute:
            value = _attribute_value(attr)
            if isinstance(value, list) and not value:
                empty.append(
                    f"helper.make_attribute({attr.name!r}, [], "
                    f"attr_type=AttributeProto.{_ATTR_TYPES[attr.type]})"
                )
            else:
                kwargs.append(f"{attr.name}={value!r}")
        extra = "".join(f", {k}" for k in kwargs)
        domain = f", domain={node.domain!r}" if node.domain else ""
        lines.append(
            f"node = helper.make_node({node.op_type!r}, {list(node.input)!r}, {list(node.output)!r}, "
            f"name={node.name!r}{domain}{extra})"
        )
        lines += [f"node.attribute.append({e})" for e in empty]
        lines.append("nodes.append(node)")
    lines.append("initializers = [")
    lines += [f"    numpy_helper.from_array(INITIALIZERS[{t.name!r}], {t.name!r})," for t in g.initializer]
    lines.append("]")
    lines.append("graph = helper.make_graph(")
    lines.append(f"    nodes, {g.name!r},")
    lines.append("    [" + ", ".join(_value_info(v) for v in g.input) + "],")
    lines.append("    [" + ", ".join(_value_info(v) for v in g.output) + "],")
    lines.append("    initializer=initializers,")
    lines.append(")")
    opsets = ", ".join(f"helper.make_opsetid({o.domain!r}, {o.version})" for o in model.opset_import)
    lines.append(f"return helper.make_model(graph, opset_imports=[{opsets}], ir_version={model.ir_version})")
    return "\n".join(lines)


# --- what a right answer is ------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One right answer: under which reading, the output, and the elementwise bound on |error|
    (None: bit for bit)."""

    reading: str
    output: np.ndarray
    bound: np.ndarray | None


def _bound(case: CaseData, want: np.ndarray, readings: Mapping[str, str] | None) -> np.ndarray | None:
    """The judge's per-element bound gamma_n * S + ulp (spec notes section 5); None on exact data."""
    rec = case.record
    if rec.tolerance is None or rec.tolerance.bitexact:
        return None
    X, W, *rest = case.operands
    geo = geometry(X.shape, W.shape, **rec.attributes, opset=rec.opset, readings=readings)
    dtype = DTYPES[rec.dtype]
    magnitude = magnitude_sum(X, W, rest[0] if rest else None, geo)
    g = gamma(rec.tolerance.max_terms, dtype.unit_roundoff)
    return np.broadcast_to(g * magnitude + ulp(want.astype(np.float64), dtype), want.shape).astype(np.float64)


def right_answers(case: CaseData) -> tuple[list[Answer], bool]:
    """Every documented reading's output for ``case`` (the suite's own output first), and whether
    some reading makes the node invalid (so that refusing it is right too)."""
    rec = case.record
    if case.expected is None:
        return [], True
    answers = [Answer("the spec (opref's default reading)", case.expected, _bound(case, case.expected, None))]
    reject_ok = False
    ids = [aid for aid in rd.AMBIGUITIES if aid in rec.ambiguities]
    if ids:
        import itertools

        for combo in itertools.product(*(rd.AMBIGUITIES[aid].readings for aid in ids)):
            readings = dict(zip(ids, combo, strict=True))
            label = ", ".join(f"{k}={v}" for k, v in readings.items())
            try:
                want = conv_transpose(*case.operands, **rec.attributes, opset=rec.opset, readings=readings)
            except SpecError:
                reject_ok = True
                continue
            same = next(
                (
                    a
                    for a in answers
                    if a.output.shape == want.shape and np.array_equal(a.output, want, equal_nan=True)
                ),
                None,
            )
            if same is None:
                answers.append(Answer(label, want, _bound(case, want, readings)))
    return answers, reject_ok


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


def title_of(cluster: dict) -> str:
    return f"ConvTranspose {_VERDICT_PHRASES.get(cluster['verdict'], cluster['verdict'])}: {_what(cluster)}"


def load_upstream(path: str | os.PathLike) -> dict[str, dict]:
    """The hand-kept upstream status: ``{key: {"status": "reported" | "not found", "links":
    [...], "note": "...", "searched": [...]}}``, keyed ``<runtime>/<slug>`` (no version, no
    number: the status belongs to the behaviour). A missing file is an empty status."""
    p = Path(path)
    if not p.exists():
        return {}
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{p}: expected an object of objects keyed <runtime>/<slug>")
    for key, entry in data.items():
        if entry.get("status") not in ("reported", "not found"):
            raise ValueError(f"{p}: {key}: status must be 'reported' or 'not found'")
    return data


def read_results(path: str | os.PathLike) -> tuple[dict, Path]:
    """What ``opref report`` reads: a results directory (its report.json or results.json) or one
    of those files. Returns the checked data and the directory it was in."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json" if (p / "report.json").exists() else p / "results.json"
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: cannot read validation results ({exc})") from None
    return check_results(data, str(p)), p.parent


def _suite_of(data: dict, where: Path) -> Path:
    """The suite the results were validated on: where the reproduce commands point."""
    for rec in data["records"]:
        words = shlex.split(rec["reproduce"])
        if len(words) > 2 and words[:2] == ["opref", "validate"]:
            suite = Path(words[2])
            return suite if suite.is_absolute() else where / suite
    raise ValueError("the results name no suite; pass suite=")


def write_bug_reports(
    results: str | os.PathLike,
    out: str | os.PathLike,
    *,
    suite: str | os.PathLike | None = None,
    upstream: str | os.PathLike | None = None,
) -> list[BugReport]:
    """Write one report per failure cluster of ``results`` into ``out`` (see the module's text).

    ``suite`` is the vectors the results were validated on (default: the suite their reproduce
    commands name); ``upstream`` the status file (default: ``out/upstream.json``).
    """
    data, where = read_results(results)
    suite_path = Path(suite) if suite is not None else _suite_of(data, where)
    out = Path(out)
    status = load_upstream(upstream if upstream is not None else out / UPSTREAM_FILE)
    manifest = read_manifest(suite_path)
    versions = {rt["spec"]: rt for rt in data["runtimes"]}
    by_key = {(r["runtime"], r["case"]): r for r in data["records"]}
    found = clusters(data["records"])
    directories = report_directories(found, data["runtimes"])
    reports = []
    for cluster in found:
        spec = cluster["runtime"]
        rt = versions.get(spec, {})
        version = str(rt.get("version", ""))
        recs = [by_key[(spec, c)] for c in cluster["cases"]]
        rec = choose_case(recs)
        rel = directories[cluster["id"]]
        key = f"{_head(spec)}/{slug(_what(cluster))}"
        case = read_case(suite_path, manifest.records[rec["case"]])
        runner = runner_for(spec, version)
        entry = status.get(key, {})
        report = BugReport(
            spec,
            rel,
            title_of(cluster),
            cluster["verdict"],
            cluster["count"],
            rec["case"],
            key,
            entry,
            runner is not None,
        )
        target = out / rel
        target.mkdir(parents=True, exist_ok=True)
        (target / "repro.py").write_text(repro_script(report, cluster, rec, case, rt, runner))
        (target / "ISSUE.md").write_text(
            issue_text(report, cluster, rec, case, rt, runner, suite_path, where)
        )
        reports.append(report)
    (out / INDEX_FILE).write_text(index_text(reports, data))
    return reports


# --- repro.py -----------------------------------------------------------------------------------------

_REPRO = '''\
#!/usr/bin/env python3
"""{title}

Runtime: {runtime} ({spec}). Needs only: numpy, onnx, {packages}
Run: python repro.py -- exit status 1 while the bug is present, 0 once it is fixed{exit2}.

The model is opref's case `{case}`, the smallest of the {count} cases of this cluster
(see ISSUE.md beside this file). Generated by opref {opref_version}.
"""

import os
import re
import subprocess
import sys
import tempfile

{imports}import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

# {must_reject_note}
MUST_REJECT = {must_reject}
# {reject_ok_note}
REJECTING_IS_RIGHT = {reject_ok}

INPUTS = {{
{inputs}}}

INITIALIZERS = {{
{initializers}}}

# The right answer(s): (which reading, expected output, elementwise bound on |error| or None
# for bit-for-bit equality on these exact data).
ANSWERS = [
{answers}]


def build_model():
    {model_code}


def run(model_bytes, feeds):
    """The runtime, called as an application calls it."""
    {run_body}


def child(path):
    out = np.asarray(run(build_model().SerializeToString(), INPUTS))
    np.savez(path, values=out.astype(np.float64), dtype=np.array(str(out.dtype)))


def equal(got, want, bound):
    both_nan = np.isnan(got) & np.isnan(want)
    if bound is None:
        same = (got == want) & (np.signbit(got) == np.signbit(want))
    else:
        with np.errstate(all="ignore"):
            same = np.abs(got - want) <= bound
    return same | both_nan


def show(label, array):
    print(f"{{label}} {{list(array.shape)}}:")
    print(np.array2string(array, threshold=200, max_line_width=120))


def main():
    model = build_model()
    expected_kind = "an error (the model is invalid)" if MUST_REJECT else "an output"
    opset = model.opset_import[0].version
    op = model.graph.node[0].op_type
    print(f"{{op}} {{model.graph.name!r}}, opset {{opset}}; expected: {{expected_kind}}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.npz")
        child_command = [sys.executable, os.path.abspath(__file__), "--child", path]
        proc = subprocess.run(child_command, capture_output=True, text=True)
        if proc.returncode < 0:
            print(f"BUG: the runtime crashed (killed by signal {{-proc.returncode}})")
            print(proc.stderr[-3000:])
            return 1
        if proc.returncode == 2 and "RUNTIME NOT CALLED" in proc.stderr:
            print(proc.stderr[-3000:])
            return 2
        if proc.returncode != 0:
            print("the runtime raised:")
            print(proc.stderr[-3000:])
            if MUST_REJECT or REJECTING_IS_RIGHT:
                print("OK: the runtime rejects the model")
                return 0
            print("BUG: the runtime refuses a valid model")
            return 1
        result = np.load(path)
        got, got_dtype = result["values"], str(result["dtype"])
    if MUST_REJECT:
        show("BUG: the runtime accepted an invalid model and returned", got)
        return 1
    for reading, want, bound in ANSWERS:
        same_kind = got.shape == want.shape and got_dtype == str(want.dtype)
        if same_kind and equal(got, want.astype(np.float64), bound).all():
            print(f"OK: the output is right ({{reading}})")
            return 0
    reading, want, bound = ANSWERS[0]
    want_dtype = str(want.dtype)
    show(f"expected ({{want_dtype}})", want)
    show(f"got ({{got_dtype}})", got)
    if got.shape != want.shape:
        print(f"BUG: output shape {{list(got.shape)}}, expected {{list(want.shape)}}")
    elif got_dtype != want_dtype:
        print(f"BUG: output element type {{got_dtype}}, expected {{want_dtype}}")
    else:
        bad = np.argwhere(~equal(got, want.astype(np.float64), bound))
        print(f"BUG: {{len(bad)}} of {{want.size}} elements differ; the first:")
        for index in bad[:10]:
            at = tuple(int(i) for i in index)
            print(f"  at {{list(at)}}: expected {{float(want[at])!r}}, got {{float(got[at])!r}}")
    if len(ANSWERS) > 1:
        others = "; ".join(a[0] for a in ANSWERS[1:])
        print(f"(no documented reading of the spec gives this output either: {{others}})")
    return 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        sys.exit(main())
'''


def _indent(code: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join((pad + line) if line else "" for line in code.splitlines()).lstrip()


def repro_script(
    report: BugReport, cluster: dict, rec: dict, case: CaseData, rt: Mapping, runner: tuple[str, str] | None
) -> str:
    model = onnx.load_from_string(case.model)
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    answers, reject_ok = right_answers(case)
    arrays = [a for _, a in case.inputs] + list(initializers.values()) + [a.output for a in answers]
    needs_ml_dtypes = any(np.dtype(a.dtype).name == "bfloat16" for a in arrays)
    if runner is None:
        packages = f"{rt.get('name', report.runtime)} {rt.get('version', '')}".strip()
        body = (
            "sys.stderr.write(\"RUNTIME NOT CALLED: opref cannot write this runtime's call here; "
            'replace run() with it\\n")\nsys.exit(2)'
        )
    else:
        packages, body = runner
    answer_lines = "".join(
        f"    (\n        {a.reading!r},\n        {_np_array(a.output, 8)},\n"
        f"        {'None' if a.bound is None else _np_array(a.bound, 8)},\n    ),\n"
        for a in answers
    )
    must_reject = case.record.expect == "reject"
    return _REPRO.format(
        title=report.title,
        runtime=f"{rt.get('name', '')} {rt.get('version', '')}".strip(),
        spec=f"opref runtime spec `{report.runtime}`",
        packages=packages,
        exit2="" if runner is not None else " (2: fill in run() first)",
        case=rec["case"],
        count=cluster["count"],
        opref_version=__version__,
        imports="import ml_dtypes  # bfloat16 for numpy (an onnx dependency)\n" if needs_ml_dtypes else "",
        must_reject_note=(
            f"The spec makes this model invalid: {case.record.reject_message}"
            if must_reject
            else "A valid model: the runtime must return the output below."
        ),
        must_reject=must_reject,
        reject_ok_note="Whether some documented reading of an ambiguous spec text makes this node invalid.",
        reject_ok=bool(reject_ok) and not must_reject,
        inputs="".join(f"    {n!r}: {_np_array(a, 4)},\n" for n, a in case.inputs),
        initializers="".join(f"    {n!r}: {_np_array(a, 4)},\n" for n, a in initializers.items()),
        answers=answer_lines,
        model_code=_indent(model_code(model), 4),
        run_body=_indent(body, 4),
    )


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


def _expected_vs_got(rec: dict) -> list[str]:
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
        rows.append(("expected", f"output of shape {rec.get('expected_shape')}, {rec['dtype']}"))
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
    what = f"{name} {_VERDICT_PHRASES.get(cluster['verdict'], cluster['verdict'])}"
    if cluster["diagnosis"]:
        what += f". opref's bug model that reproduces its output exactly: **{cluster['diagnosis_text']}**"
    reasons = "; ".join(f"{k} ({n})" for k, n in cluster["known_reasons"].items())
    lines += [what + ".", ""]
    if reasons:
        lines += [f"As opref's known-failures list describes it: {reasons}.", ""]
    if r.expect == "reject":
        lines += [f"The model is invalid: {r.reject_message}", ""]
    if r.ambiguities:
        ids = ", ".join(r.ambiguities)
        lines += [
            f"The case touches an ambiguous part of the spec ({ids}); the output matches none of its "
            "documented readings (repro.py accepts any of them).",
            "",
        ]
    lines += ["## Expected vs got", "", *_expected_vs_got(rec)]
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


# --- the hook for the report ---------------------------------------------------------------------------

BUGS_DIRECTORY = "bugs"  # where the reports are published, inside a report's directory


def report_directories(found: Sequence[dict], runtimes: Sequence[Mapping]) -> dict[int, str]:
    """{cluster id: its report's directory, relative to the reports' root}: ``<runtime>-<version>/
    <nn>-<slug>``, numbered per runtime in the clusters' order (largest first)."""
    versions = {rt["spec"]: str(rt.get("version", "")) for rt in runtimes}
    per_runtime: dict[str, int] = defaultdict(int)
    out = {}
    for cluster in found:
        spec = cluster["runtime"]
        per_runtime[spec] += 1
        name = slug(_what(cluster))
        runtime = runtime_directory(spec, versions.get(spec, ""))
        out[cluster["id"]] = f"{runtime}/{per_runtime[spec]:02d}-{name}"
    return out


def report_link(bugs_dir: str | os.PathLike, report_dir: str | os.PathLike) -> str | None:
    """The relative link from a report's directory to the bug reports' index, or None when there
    is none."""
    index = Path(bugs_dir) / INDEX_FILE
    if not index.exists():
        return None
    return os.path.relpath(index, Path(report_dir)).replace(os.sep, "/")


@dataclass(frozen=True)
class Links:
    """What a report shows of the published bug reports: the index, and each cluster's ISSUE.md
    (relative to the report's directory; only those that exist)."""

    index: str
    clusters: Mapping[int, str]


def published_links(report_dir: str | os.PathLike, data: Mapping) -> Links | None:
    """The links from a report (its directory and its data: ``clusters`` and ``runtimes``) to the
    bug reports published beside it in ``<report_dir>/bugs``; None when there are none."""
    bugs = Path(report_dir) / BUGS_DIRECTORY
    index = report_link(bugs, report_dir)
    if index is None:
        return None
    dirs = report_directories(data.get("clusters", []), data.get("runtimes", []))
    issues = {
        cid: f"{BUGS_DIRECTORY}/{rel}/ISSUE.md"
        for cid, rel in dirs.items()
        if (bugs / rel / "ISSUE.md").exists()
    }
    return Links(index, issues)


def markdown_lines(links: Links | None) -> list[str]:
    """index.md's sentence under "Failure clusters" (nothing without published reports)."""
    if links is None:
        return []
    return [
        f"Ready-to-file upstream bug reports, one per cluster (ISSUE.md + a repro.py that needs only numpy, "
        f"onnx and the runtime): [{links.index}]({links.index}).",
        "",
    ]


def html_paragraph(links: Links | None) -> str:
    """index.html's counterpart of :func:`markdown_lines`."""
    if links is None:
        return ""
    href = html.escape(links.index, quote=True)
    return (
        "<p>Ready-to-file upstream bug reports, one per cluster (ISSUE.md + a repro.py that needs only "
        f'numpy, onnx and the runtime): <a href="{href}">{html.escape(links.index)}</a>.</p>'
    )
