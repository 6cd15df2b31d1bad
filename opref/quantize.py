"""``quantize_static`` in the loop (issue 24): quantize float cases the way users do, and turn what
the quantizer chose into ``qdq`` cases that any runtime is then validated on.

For each float32 case (W and B constants, like a real model), onnxruntime's
``onnxruntime.quantization.quantize_static`` runs with a small calibration reader (the case's X,
X/2 and -X), QDQ format, uint8 activations and int8 weights, per tensor and per channel. Its
model must be the QDQ pattern around the case's node (Q/DQ on X, DQ on W and B, Q/DQ on Y); its
scales, zero points and quantized W and B become a ``qdq`` case named
``<case>_static_pt__qdq`` (per tensor) or ``<case>_static_pc__qdq`` (per channel), whose input is
X quantized by the quantizer's X scale (round half to even, as QuantizeLinear does) and whose
expected output is opref's exact one (:mod:`opref.formvalues`).

A quantizer that raises, or writes another graph, is a *tool failure* of that case: it is
reported (and listed in the suite's manifest, ``parameters.quantizer.failures``), never a
runtime verdict.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import onnx

from opref.cases import VARIANT_SEPARATOR, Case
from opref.forms import QdqForm, node_operands
from opref.formvalues import QDQ_EXTRA_ROUNDINGS, FormValues, qdq_expected
from opref.geometry import geometry
from opref.tolerance import magnitude_sum

MODES = {"per-tensor": ("pt", False), "per-channel": ("pc", True)}


@dataclass(frozen=True)
class ToolFailure:
    """A case the quantizer could not quantize (or quantized into another graph)."""

    case: str
    mode: str
    message: str

    def to_dict(self) -> dict:
        return {"case": self.case, "mode": self.mode, "message": self.message}


def eligible(case: Case) -> bool:
    """Float32 output cases of opset >= 13 without an ambiguity (the forms' own rule)."""
    if case.reject or case.dtype != "float32" or case.opset < 13 or case.variant != "inputs":
        return False
    return not case.geometry().ambiguities


def _float_model(case: Case, inputs) -> onnx.ModelProto:
    from opref.codec import tensor_proto
    from opref.model import make_model

    _, W, *rest = inputs
    constants = [tensor_proto(W, "W")] + ([tensor_proto(rest[0], "B")] if rest else [])
    return make_model(
        case.name,
        case.x_shape,
        case.w_shape,
        case.b_shape,
        case.attributes,
        "float32",
        case.opset,
        initializers=constants,
    )


def _run_quantizer(model: onnx.ModelProto, X: np.ndarray, per_channel: bool) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter([{"X": X}, {"X": X * np.float32(0.5)}, {"X": -X}])

        def get_next(self):
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(prefix="opref-quantize-") as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "qdq.onnx")
        onnx.save(model, src)
        quantize_static(
            src,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return onnx.load(dst)


class UnexpectedGraph(ValueError):
    """The quantizer wrote something other than the QDQ pattern around the node."""


def _parameters(q: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The QDQ pattern's tensors by role (x_scale, x_zero_point, W_q, w_scale, w_zero_point,
    B_q, b_scale, y_scale, y_zero_point) and DequantizeLinear's axis on W."""
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    nodes = list(q.graph.node)
    ops = sorted(n.op_type for n in nodes)
    conv = [n for n in nodes if n.op_type == "ConvTranspose"]
    if len(conv) != 1 or ops.count("QuantizeLinear") != 2 or len(nodes) not in (6, 7):
        raise UnexpectedGraph(f"nodes {ops}")
    producer = {o: n for n in nodes for o in n.output}
    conv = conv[0]

    def dq_of(name: str) -> onnx.NodeProto:
        node = producer.get(name)
        if node is None or node.op_type != "DequantizeLinear":
            raise UnexpectedGraph(f"ConvTranspose input {name!r} is not a DequantizeLinear output")
        return node

    out: dict[str, np.ndarray] = {}
    dq_x = dq_of(conv.input[0])
    q_x = producer.get(dq_x.input[0])
    if q_x is None or q_x.op_type != "QuantizeLinear" or q_x.input[0] != q.graph.input[0].name:
        raise UnexpectedGraph("X does not go through QuantizeLinear then DequantizeLinear")
    out["x_scale"], out["x_zero_point"] = init[dq_x.input[1]], init[dq_x.input[2]]
    dq_w = dq_of(conv.input[1])
    out["W_q"], out["w_scale"], out["w_zero_point"] = (init[n] for n in dq_w.input[:3])
    out["w_axis"] = np.array([a.i for a in dq_w.attribute if a.name == "axis"] or [1])
    if len(conv.input) > 2:
        dq_b = dq_of(conv.input[2])
        out["B_q"], out["b_scale"] = init[dq_b.input[0]], init[dq_b.input[1]]
        if len(dq_b.input) > 2 and np.any(init[dq_b.input[2]]):
            raise UnexpectedGraph("the bias has a nonzero zero point")
    q_y = [n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] == conv.output[0]]
    if not q_y:
        raise UnexpectedGraph("ConvTranspose's output does not go to QuantizeLinear")
    out["y_scale"], out["y_zero_point"] = init[q_y[0].input[1]], init[q_y[0].input[2]]
    return out


def _values(case: Case, X: np.ndarray, p: Mapping[str, np.ndarray], per_channel: bool) -> FormValues:
    if (
        p["x_zero_point"].dtype != np.uint8
        or p["y_zero_point"].dtype != np.uint8
        or np.any(p["w_zero_point"])
    ):
        raise UnexpectedGraph("not uint8 activations with symmetric int8 weights")
    if per_channel and int(p["w_axis"][0]) != 1:
        raise UnexpectedGraph(f"per-channel W on axis {int(p['w_axis'][0])}, not 1")
    sx, zx = float(p["x_scale"]), int(p["x_zero_point"])
    # QuantizeLinear of the float X, as the spec computes it: float32 division, half to even.
    xq = np.clip(np.rint(X.astype(np.float32) / np.float32(sx)) + zx, 0, 255).astype(np.uint8)
    W_q = p["W_q"].astype(np.int8)
    B_q = p["B_q"].astype(np.int32) if "B_q" in p else None
    form = QdqForm(
        "uint8",
        per_channel,
        sx,
        zx,
        tuple(float(v) for v in np.atleast_1d(p["w_scale"])),
        () if B_q is None else tuple(float(v) for v in np.atleast_1d(p["b_scale"])),
        float(p["y_scale"]),
        int(p["y_zero_point"]),
        False,
        QDQ_EXTRA_ROUNDINGS,
    )
    geo = geometry(case.x_shape, case.w_shape, **case.attributes, opset=case.opset)
    operands = node_operands(form, xq, W_q, B_q)
    magnitude_sum(*operands[:2], operands[2] if len(operands) > 2 else None, geo)  # finite: checked here
    return FormValues(
        form,
        xq,
        {"W_q": W_q, **({"B_q": B_q} if B_q is not None else {})},
        operands,
        qdq_expected(form, xq, W_q, B_q, geo),
    )


def quantized_cases(
    cases: Iterable[Case], modes: Iterable[str] = tuple(MODES)
) -> tuple[list[Case], list[ToolFailure], str]:
    """The ``qdq`` cases quantize_static's choices give, the tool failures, and its version."""
    import onnxruntime

    from opref.vectors import case_inputs

    out, failures = [], []
    for case in cases:
        if not eligible(case):
            continue
        inputs = case_inputs(case)
        model = _float_model(case, inputs)
        for mode in modes:
            tag, per_channel = MODES[mode]
            try:
                q = _run_quantizer(model, inputs[0], per_channel)
            except Exception as exc:  # whatever the quantizer raises is its failure, not a verdict
                failures.append(
                    ToolFailure(case.name, mode, f"quantize_static raised {type(exc).__name__}: {exc}")
                )
                continue
            try:
                values = _values(case, inputs[0], _parameters(q), per_channel)
            except (UnexpectedGraph, KeyError, ValueError, TypeError) as exc:
                failures.append(
                    ToolFailure(case.name, mode, f"quantize_static wrote an unexpected graph: {exc}")
                )
                continue
            name = f"{case.name}_static_{tag}"
            out.append(
                replace(
                    case,
                    name=name + VARIANT_SEPARATOR + "qdq",
                    variant="qdq",
                    features=tuple(sorted({*case.features, "quantize_static", mode})),
                    description=f"onnxruntime.quantization.quantize_static, QDQ, {mode}, of {case.name}",
                    prepared=values,
                )
            )
    return out, failures, onnxruntime.__version__
