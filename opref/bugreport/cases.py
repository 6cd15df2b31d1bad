"""Choosing a cluster's case and writing it out as Python: the smallest unambiguous member,
its tensors as literals, its model as onnx.helper calls, and what a right answer is."""

from __future__ import annotations

import keyword
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from opref import readings as rd
from opref.bugreport.runners import _DTYPE_PREFERENCE
from opref.dtypes import DTYPES, ulp
from opref.errors import SpecError
from opref.geometry import geometry
from opref.reference import conv_transpose
from opref.suite import CaseData
from opref.tolerance import gamma, magnitude_sum

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
            if not attr.name.isidentifier() or keyword.iskeyword(attr.name):
                # a name from the model that is not a keyword argument: passed as a string
                empty.append(f"helper.make_attribute({attr.name!r}, {value!r})")
            elif isinstance(value, list) and not value:
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


