"""Bug models of the forms with nodes around ConvTranspose (issue 24): the mistakes a graph
optimiser or a neighbour's kernel makes, each found failing a runtime here (spec notes section 4).

A model recomputes the form's output under one wrong hypothesis and is reported when it
reproduces the runtime's failing output: the same shape, and values within the form's bound
(the case's gamma_n or bit for bit, gamma_(n+8) * S_bn for ``bn-folded``, exactly equal integers
for ``qdq``). :mod:`opref.diagnose` holds the one-node models and names these too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from opref.dtypes import DTYPES, round_from_float64
from opref.errors import SpecError
from opref.forms import QUANT_TYPES, BnForm, Form, PadForm, QdqForm
from opref.formvalues import _qdq_float, _requant_b, _requant_w, _requant_x, bn_bound
from opref.geometry import geometry
from opref.reference import conv_transpose, conv_transpose_float64
from opref.tolerance import compare, magnitude_sum, max_terms

MAX_ELEMENTS = 2**22


@dataclass(frozen=True)
class FormCase:
    """What a form model sees: the form, the node's operands and attributes."""

    form: Form
    operands: tuple[np.ndarray, ...]
    attributes: Mapping[str, object]
    opset: int
    dtype: str
    bitexact: bool


@dataclass(frozen=True)
class FormBugModel:
    id: str
    summary: str
    kind: str  # pad-fused | bn-folded | qdq: the form it applies to
    predict: Callable[[FormCase], np.ndarray | None]


def _unpadded(c: FormCase) -> np.ndarray:
    X, r = c.operands[0], c.operands[0].ndim
    pads = c.form.pads
    return X[tuple(slice(pads[i], X.shape[i] - pads[i + r]) for i in range(r))]


def _pad_fold_ignores_stride(c: FormCase) -> np.ndarray | None:
    """Pad folded into the node's pads as if the stride were 1: pads - amount instead of
    pads - amount * stride (the fold is right only where every padded axis has stride 1)."""
    form = c.form
    r = c.operands[0].ndim
    strides = list(c.attributes.get("strides") or [1] * (r - 2))
    if not form.within_node_pads or all(
        s == 1 or (form.pads[2 + i] == 0 and form.pads[r + 2 + i] == 0) for i, s in enumerate(strides)
    ):
        return None
    node = list(c.attributes.get("pads") or [0] * (2 * (r - 2)))
    amounts = [form.pads[2 + i] for i in range(r - 2)] + [form.pads[r + 2 + i] for i in range(r - 2)]
    attrs = {**c.attributes, "pads": [p - a for p, a in zip(node, amounts, strict=True)]}
    try:
        return conv_transpose(_unpadded(c), *c.operands[1:], **attrs, opset=c.opset)
    except SpecError:
        return None


def _bn_batch_statistics(c: FormCase) -> np.ndarray | None:
    """Inference-mode BatchNormalization that blends the batch's own mean and variance into the
    running ones with the momentum (0.9, the schema default): mean' = 0.9 mean + 0.1 batch mean."""
    form = c.form
    X, W, *rest = c.operands
    geo = geometry(X.shape, W.shape, **c.attributes, opset=c.opset)
    f64 = np.float64
    Y = conv_transpose_float64(X.astype(f64), W.astype(f64), rest[0].astype(f64) if rest else None, geo)
    axes = (0, *range(2, Y.ndim))
    shape = (1, -1) + (1,) * (Y.ndim - 2)
    mean = 0.9 * np.asarray(form.mean).reshape(shape) + 0.1 * Y.mean(axis=axes).reshape(shape)
    var = 0.9 * np.asarray(form.var).reshape(shape) + 0.1 * Y.var(axis=axes).reshape(shape)
    Z = (Y - mean) / np.sqrt(var + form.epsilon) * np.asarray(form.scale).reshape(shape)
    return round_from_float64(Z + np.asarray(form.bias).reshape(shape), DTYPES[c.dtype])


def _quantized(c: FormCase, rounding: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    form = c.form
    X, W, *rest = c.operands
    geo = geometry(X.shape, W.shape, **c.attributes, opset=c.opset)
    B = _requant_b(form, rest[0]) if rest else None
    v = _qdq_float(form, _requant_x(form, X), _requant_w(form, W), B, geo) / form.y_scale
    _, qdtype, low, high = QUANT_TYPES[form.quant_type]
    return np.clip(rounding(v, form.y_zero_point), low, high).astype(qdtype)


def _zero_point_before_rounding(c: FormCase) -> np.ndarray | None:
    """QuantizeLinear as round(x / y_scale + zero point): an odd zero point moves every .5 tie
    to the other neighbour (the spec rounds first, then adds the zero point)."""
    if c.form.y_zero_point % 2 == 0:
        return None
    return _quantized(c, lambda v, z: np.rint(v + z))


FORM_CATALOG: Mapping[str, FormBugModel] = MappingProxyType(
    {
        m.id: m
        for m in (
            FormBugModel(
                "pad-fold-ignores-stride",
                "a preceding Pad folded into pads as pads - amount, ignoring the stride "
                "(right at stride 1 only)",
                "pad-fused",
                _pad_fold_ignores_stride,
            ),
            FormBugModel(
                "bn-batch-statistics",
                "BatchNormalization mixes the batch's own mean and variance into the running ones "
                "(momentum 0.9)",
                "bn-folded",
                _bn_batch_statistics,
            ),
            FormBugModel(
                "qdq-zero-point-before-rounding",
                "QuantizeLinear adds the zero point before rounding: odd zero points move .5 ties",
                "qdq",
                _zero_point_before_rounding,
            ),
        )
    }
)


def _reproduces(c: FormCase, got: np.ndarray, predicted: np.ndarray) -> bool:
    if got.shape != predicted.shape or got.dtype != predicted.dtype:
        return False
    if isinstance(c.form, QdqForm):
        return bool(np.array_equal(got, predicted))
    X, W, *rest = c.operands
    if np.array_equal(got, predicted):
        return True
    return _within(c, got, predicted, X, W, rest)


def _within(c: FormCase, got, predicted, X, W, rest) -> bool:
    if isinstance(c.form, PadForm):
        X = _unpadded(c)  # the model's own operands: the bound of the node it computes
        attrs = dict(c.attributes)
        r = X.ndim
        node = list(attrs.get("pads") or [0] * (2 * (r - 2)))
        amounts = [c.form.pads[2 + i] for i in range(r - 2)] + [c.form.pads[r + 2 + i] for i in range(r - 2)]
        attrs["pads"] = [p - a for p, a in zip(node, amounts, strict=True)]
    else:
        attrs = dict(c.attributes)
    try:
        geo = geometry(X.shape, W.shape, **attrs, opset=c.opset)
    except SpecError:
        return False
    B = rest[0] if rest else None
    S = magnitude_sum(X, W, B, geo)
    terms = max_terms(geo, B is not None)
    if isinstance(c.form, BnForm):
        S, terms = bn_bound(c.form, S), terms + c.form.extra_roundings
    return compare(got, predicted, DTYPES[c.dtype], bitexact=False, magnitude=S, terms=terms).ok


def diagnose_form(
    form: Form,
    operands: Sequence[np.ndarray],
    attributes: Mapping[str, object],
    opset: int,
    dtype: str,
    bitexact: bool,
    got: np.ndarray,
) -> tuple[str, ...]:
    """The ids of the form models whose output reproduces ``got`` (a failing output)."""
    if got.size > MAX_ELEMENTS or any(o.size > MAX_ELEMENTS for o in operands):
        return ()
    c = FormCase(form, tuple(operands), MappingProxyType(dict(attributes)), opset, dtype, bitexact)
    found = []
    for model in FORM_CATALOG.values():
        if model.kind != form.kind:
            continue
        predicted = model.predict(c)
        if predicted is not None and _reproduces(c, got, predicted):
            found.append(model.id)
    return tuple(found)
