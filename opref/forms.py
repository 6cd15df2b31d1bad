"""The model forms with nodes around ConvTranspose (issue 24): their values as typed records, and
the graphs opref writes for them.

Real models rarely hold a lone ConvTranspose: a zero ``Pad`` feeds it (``pad-fused``), a
``BatchNormalization`` follows it (``bn-folded``), or it sits between ``DequantizeLinear`` and
``QuantizeLinear`` (``qdq``). Graph optimisers rewrite such neighbours into the node (fold the pad
into ``pads``, the normalisation into W and B, the quantization into an integer kernel), and a
fold that is right only for some attributes is wrong where no single-node vector can look.

Each form's values (pad amounts, normalisation parameters, scales and zero points) are a frozen
record, written to the manifest as the case's ``form`` and checked field by field where it is read
(:func:`parse_form`). :func:`wrap` turns opref's one-node model into the form's graph; a case model
must be, byte for byte, what :func:`wrap` gives for its record (``opref.model.check_case_model``).
The values themselves (drawing them, the expected output, the bounds) are :mod:`opref.formvalues`'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from opref.codec import tensor_proto
from opref.dtypes import DTYPES

FORMS = ("pad-fused", "bn-folded", "qdq")

# Quantized element types: (ONNX type id, numpy type, lowest, highest).
QUANT_TYPES: Mapping[str, tuple[int, np.dtype, int, int]] = {
    "int8": (onnx.TensorProto.INT8, np.dtype(np.int8), -128, 127),
    "uint8": (onnx.TensorProto.UINT8, np.dtype(np.uint8), 0, 255),
}
_INT_TYPES: Mapping[str, int] = {
    "int8": onnx.TensorProto.INT8,
    "uint8": onnx.TensorProto.UINT8,
    "int32": onnx.TensorProto.INT32,
    "int64": onnx.TensorProto.INT64,
}


class FormError(ValueError):
    """A manifest's ``form`` that is not what opref writes."""


@dataclass(frozen=True)
class PadForm:
    """``Pad(X, pads)`` (mode constant, value 0) feeds ConvTranspose. ``pads`` is Pad's input:
    begins then ends over all of X's axes (N and C zero). ``within_node_pads``: every amount is at
    most the node's pad on its side (a fold into ``pads`` looks possible)."""

    pads: tuple[int, ...]
    within_node_pads: bool
    kind: str = "pad-fused"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "pads": list(self.pads), "within_node_pads": self.within_node_pads}

    def file_x_shape(self, x_shape: Sequence[int]) -> tuple[int, ...]:
        r = len(x_shape)
        return tuple(n - self.pads[i] - self.pads[i + r] for i, n in enumerate(x_shape))


@dataclass(frozen=True)
class BnForm:
    """``BatchNormalization`` (inference form) of ConvTranspose's output, one value per output
    channel of each parameter, in the case's element type."""

    epsilon: float
    scale: tuple[float, ...]
    bias: tuple[float, ...]
    mean: tuple[float, ...]
    var: tuple[float, ...]
    extra_roundings: int  # k of the bound gamma_(n+k) (spec notes section 5)
    kind: str = "bn-folded"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "epsilon": self.epsilon,
            "scale": list(self.scale),
            "bias": list(self.bias),
            "mean": list(self.mean),
            "var": list(self.var),
            "extra_roundings": self.extra_roundings,
        }


@dataclass(frozen=True)
class QdqForm:
    """``DequantizeLinear`` on X, W and the int32 bias, ConvTranspose in float32, ``QuantizeLinear``.

    ``w_scale`` has one value (per tensor) or one per channel of W's axis 1 (ConvTranspose's
    output-channel axis within a group); ``b_scale`` likewise one, or one per output channel
    (x_scale * w_scale of its channel, rounded to float32), and none without a bias.
    ``exact``: power-of-two scales and integer sums
    a float32 accumulator holds exactly, so the output is judged bit for bit (ties included);
    otherwise an element may be off by one where its float64 value lies within the accumulated
    bound gamma_(n+extra_roundings) * S / y_scale of a .5 tie (spec notes section 5).
    """

    quant_type: str
    per_channel: bool
    x_scale: float
    x_zero_point: int
    w_scale: tuple[float, ...]
    b_scale: tuple[float, ...]
    y_scale: float
    y_zero_point: int
    exact: bool
    extra_roundings: int
    kind: str = "qdq"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "quant_type": self.quant_type,
            "per_channel": self.per_channel,
            "x_scale": self.x_scale,
            "x_zero_point": self.x_zero_point,
            "w_scale": list(self.w_scale),
            "w_zero_point": 0,
            "b_scale": list(self.b_scale),
            "y_scale": self.y_scale,
            "y_zero_point": self.y_zero_point,
            "exact": self.exact,
            "extra_roundings": self.extra_roundings,
        }


Form = PadForm | BnForm | QdqForm


# --- reading a record's form ----------------------------------------------------------------


def _float(v: object, what: str, positive: bool = False) -> float:
    if type(v) not in (int, float) or not math.isfinite(v) or (positive and v <= 0):
        raise FormError(
            f"form.{what} must be a finite{' positive' if positive else ''} number, got {v!r:.60}"
        )
    return float(v)


def _floats(v: object, what: str, length: int, positive: bool = False) -> tuple[float, ...]:
    if not isinstance(v, list) or len(v) != length:
        raise FormError(f"form.{what} must be a list of {length} numbers")
    return tuple(_float(x, f"{what}[{i}]", positive) for i, x in enumerate(v))


def _integer(v: object, what: str, low: int, high: int) -> int:
    if type(v) is not int or not low <= v <= high:
        raise FormError(f"form.{what} must be an integer in [{low}, {high}], got {v!r:.60}")
    return v


def _flag(v: object, what: str) -> bool:
    if not isinstance(v, bool):
        raise FormError(f"form.{what} must be true or false")
    return v


def parse_form(
    obj: object,
    variant: str,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    b_shape: Sequence[int] | None,
    group: int,
    node_pads: Sequence[int],
) -> Form:
    """The typed form of a manifest record of ``variant`` (FormError says what is wrong)."""
    if not isinstance(obj, dict) or obj.get("kind") != variant:
        raise FormError(f"a {variant} record needs a form object of kind {variant!r}")
    m = w_shape[1] * group
    if variant == "pad-fused":
        if set(obj) != {"kind", "pads", "within_node_pads"}:
            raise FormError(f"form has the fields {sorted(obj)}")
        r = len(x_shape)
        pads = obj["pads"]
        if not isinstance(pads, list) or len(pads) != 2 * r:
            raise FormError(f"form.pads must list {2 * r} amounts (begins, then ends, of every axis of X)")
        amounts = tuple(_integer(p, f"pads[{i}]", 0, 64) for i, p in enumerate(pads))
        if any(amounts[i] or amounts[i + r] for i in (0, 1)) or not any(amounts):
            raise FormError("form.pads must pad spatial axes only, and some")
        if any(n - amounts[i] - amounts[i + r] < 1 for i, n in enumerate(x_shape)):
            raise FormError(f"form.pads {list(amounts)} leave X {list(x_shape)} without data")
        spatial = r - 2
        within = all(
            amounts[2 + i] <= node_pads[i] and amounts[r + 2 + i] <= node_pads[i + spatial]
            for i in range(spatial)
        )
        if _flag(obj["within_node_pads"], "within_node_pads") != within:
            raise FormError(f"form.within_node_pads is not {within} for pads {list(amounts)}")
        return PadForm(amounts, within)
    if variant == "bn-folded":
        if set(obj) != {"kind", "epsilon", "scale", "bias", "mean", "var", "extra_roundings"}:
            raise FormError(f"form has the fields {sorted(obj)}")
        return BnForm(
            _float(obj["epsilon"], "epsilon", positive=True),
            _floats(obj["scale"], "scale", m),
            _floats(obj["bias"], "bias", m),
            _floats(obj["mean"], "mean", m),
            _floats(obj["var"], "var", m, positive=True),
            _integer(obj["extra_roundings"], "extra_roundings", 8, 8),
        )
    if variant == "qdq":
        fields = {
            "kind",
            "quant_type",
            "per_channel",
            "x_scale",
            "x_zero_point",
            "w_scale",
            "w_zero_point",
            "b_scale",
            "y_scale",
            "y_zero_point",
            "exact",
            "extra_roundings",
        }
        if set(obj) != fields:
            raise FormError(f"form has the fields {sorted(obj)}")
        qt = obj["quant_type"]
        if not isinstance(qt, str) or qt not in QUANT_TYPES:
            raise FormError(f"form.quant_type must be one of {list(QUANT_TYPES)}")
        _, _, low, high = QUANT_TYPES[qt]
        per_channel = _flag(obj["per_channel"], "per_channel")
        _integer(obj["w_zero_point"], "w_zero_point", 0, 0)
        return QdqForm(
            qt,
            per_channel,
            _float(obj["x_scale"], "x_scale", positive=True),
            _integer(obj["x_zero_point"], "x_zero_point", low, high),
            _floats(obj["w_scale"], "w_scale", w_shape[1] if per_channel else 1, positive=True),
            _floats(
                obj["b_scale"], "b_scale", 0 if b_shape is None else (m if per_channel else 1), positive=True
            ),
            _float(obj["y_scale"], "y_scale", positive=True),
            _integer(obj["y_zero_point"], "y_zero_point", low, high),
            _flag(obj["exact"], "exact"),
            _integer(obj["extra_roundings"], "extra_roundings", 6, 6),
        )
    raise FormError(f"variant {variant!r} has no form")


# --- the graphs -----------------------------------------------------------------------------


def int_tensor(array: np.ndarray, name: str, kind: str) -> onnx.TensorProto:
    """An integer TensorProto (raw little-endian data), built field by field."""
    t = onnx.TensorProto()
    t.name = name
    t.data_type = _INT_TYPES[kind]
    t.dims.extend(int(d) for d in np.shape(array))
    t.raw_data = np.ascontiguousarray(array, dtype=np.dtype(kind).newbyteorder("<")).tobytes()
    return t


def read_int_tensor(t: onnx.TensorProto, kind: str) -> np.ndarray:
    """The values of an integer initializer written by :func:`int_tensor`; ValueError if it is not."""
    dt = np.dtype(kind)
    if t.data_type != _INT_TYPES[kind] or not t.HasField("raw_data"):
        raise ValueError(f"initializer {t.name!r} is not {kind} raw data")
    shape = tuple(t.dims)
    if len(t.raw_data) != dt.itemsize * math.prod(shape):
        raise ValueError(f"initializer {t.name!r}: {len(t.raw_data)} bytes for {kind} {list(shape)}")
    return np.frombuffer(t.raw_data, dtype=dt.newbyteorder("<")).astype(dt).reshape(shape)


def _scalar_or_vector(values: Sequence[float], name: str, dtype: str) -> onnx.TensorProto:
    arr = np.array(values, dtype=DTYPES[dtype].numpy)
    return tensor_proto(arr.reshape(()) if len(values) == 1 else arr, name)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def wrap(
    model: onnx.ModelProto,
    form: Form,
    *,
    x_file_shape: Sequence[int],
    constants: Mapping[str, np.ndarray],
) -> onnx.ModelProto:
    """The form's graph around the one-node ``model`` (written with W and B as initializers).

    ``constants`` are the form's integer data (``W_q``, ``B_q`` of ``qdq``); the nodes are named
    after the case. The result is what a case model of this form must be, byte for byte.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    core = g.node[0]
    name = core.name
    if isinstance(form, PadForm):
        x = g.input[0]
        _rename(g, "X", "X_padded")
        dims = x.type.tensor_type.shape.dim
        for d, n in zip(dims, x_file_shape, strict=True):
            d.dim_value = int(n)
        pad = helper.make_node("Pad", ["X", "pads"], ["X_padded"], name=f"{name}_pad", mode="constant")
        g.initializer.append(int_tensor(np.array(form.pads, dtype=np.int64), "pads", "int64"))
        g.node.insert(0, pad)
    elif isinstance(form, BnForm):
        _rename(g, "Y", "Y_conv")
        dtype = _elem_name(g.output[0].type.tensor_type.elem_type)
        for field in ("scale", "bias", "mean", "var"):
            g.initializer.append(
                tensor_proto(np.array(getattr(form, field), dtype=DTYPES[dtype].numpy), f"bn_{field}")
            )
        bn = helper.make_node(
            "BatchNormalization",
            ["Y_conv", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
            ["Y"],
            name=f"{name}_bn",
            epsilon=form.epsilon,
        )
        g.node.append(bn)
        g.output[0].name = "Y"
    else:
        qtype, _, _, _ = QUANT_TYPES[form.quant_type]
        has_bias = "B" in core.input
        del g.initializer[:]
        _rename(g, "X", "X_f")
        _rename(g, "W", "W_f")
        _rename(g, "B", "B_f")
        _rename(g, "Y", "Y_f")
        g.input[0].name = "X_q"
        g.input[0].type.tensor_type.elem_type = qtype
        g.output[0].type.tensor_type.elem_type = qtype
        zero = np.zeros((), dtype=np.int64)
        inits = [
            _scalar_or_vector([form.x_scale], "x_scale", "float32"),
            int_tensor(zero + form.x_zero_point, "x_zero_point", form.quant_type),
            int_tensor(constants["W_q"], "W_q", "int8"),
            _scalar_or_vector(form.w_scale, "w_scale", "float32"),
            int_tensor(
                np.zeros(() if len(form.w_scale) == 1 else len(form.w_scale), np.int64),
                "w_zero_point",
                "int8",
            ),
        ]
        nodes = [
            helper.make_node(
                "DequantizeLinear", ["X_q", "x_scale", "x_zero_point"], ["X_f"], name=f"{name}_dq_x"
            ),
            helper.make_node(
                "DequantizeLinear",
                ["W_q", "w_scale", "w_zero_point"],
                ["W_f"],
                name=f"{name}_dq_w",
                **({"axis": 1} if form.per_channel else {}),
            ),
        ]
        if has_bias:
            inits += [
                int_tensor(constants["B_q"], "B_q", "int32"),
                _scalar_or_vector(form.b_scale, "b_scale", "float32"),
            ]
            nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    ["B_q", "b_scale"],
                    ["B_f"],
                    name=f"{name}_dq_b",
                    **({"axis": 0} if len(form.b_scale) > 1 else {}),
                )
            )
        inits += [
            _scalar_or_vector([form.y_scale], "y_scale", "float32"),
            int_tensor(zero + form.y_zero_point, "y_zero_point", form.quant_type),
        ]
        g.initializer.extend(inits)
        quant = helper.make_node(
            "QuantizeLinear", ["Y_f", "y_scale", "y_zero_point"], ["Y"], name=f"{name}_q_y"
        )
        rest = list(g.node)
        del g.node[:]
        g.node.extend([*nodes, *rest, quant])
    return out


def _elem_name(elem: int) -> str:
    return next(d.name for d in DTYPES.values() if d.onnx_type == elem)


def constant_names(form: Form) -> tuple[str, str]:
    """The initializers that hold the case's weights and bias in this form's graph."""
    return ("W_q", "B_q") if isinstance(form, QdqForm) else ("W", "B")


def file_x_shape(form: Form, x_shape: Sequence[int]) -> tuple[int, ...]:
    """The shape of ``input_0.pb`` (the graph's input) for a node whose X is ``x_shape``."""
    return form.file_x_shape(x_shape) if isinstance(form, PadForm) else tuple(x_shape)


def file_x_type(form: Form, dtype: str) -> np.dtype:
    """The element type of ``input_0.pb`` and ``output_0.pb``."""
    return QUANT_TYPES[form.quant_type][1] if isinstance(form, QdqForm) else DTYPES[dtype].numpy


def node_operands(
    form: Form, x_file: np.ndarray, W: np.ndarray, B: np.ndarray | None
) -> tuple[np.ndarray, ...]:
    """X, W[, B] as the ConvTranspose node reads them: X padded (``pad-fused``); dequantized,
    exactly, in float64 (``qdq``: every value (q - zero point) * scale is exact there)."""
    if isinstance(form, PadForm):
        r = x_file.ndim
        X = np.pad(x_file, [(form.pads[i], form.pads[i + r]) for i in range(r)])
        return (X, W) if B is None else (X, W, B)
    if isinstance(form, QdqForm):
        X = (x_file.astype(np.float64) - form.x_zero_point) * form.x_scale
        shape = (1, -1) + (1,) * (W.ndim - 2)
        Wf = W.astype(np.float64) * np.asarray(form.w_scale, dtype=np.float64).reshape(shape)
        if B is None:
            return X, Wf
        return X, Wf, B.astype(np.float64) * np.asarray(form.b_scale, dtype=np.float64)
    return (x_file, W) if B is None else (x_file, W, B)
