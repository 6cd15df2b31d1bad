"""Bug models: the mistakes ConvTranspose implementations make, as data, and the matching of a
failing output against each of them.

Every bug model recomputes the operator under one wrong hypothesis, with opref's own
arithmetic: a *placement* model moves the output window over the full scatter (the spec's
pads, output_shape and output_padding rules of spec notes section 2, applied wrongly); a
*weights* model feeds the spec's geometry other weights or bias (group mix-ups, W's layout, a
flipped kernel); a *geometry* model changes stride or dilation; a *precision* model computes a
wider element type with narrower operands and accumulation. A failing (case, runtime) is
*diagnosed* with every model whose recomputation reproduces the runtime's output within the
tolerance (spec notes section 5): the same shape, and values within the bound.

A model is tried only where it applies and where it predicts an output the spec's tolerance
rejects (a mistake that changes nothing on a case cannot explain its failure), and only when
its recomputation stays small (:data:`MAX_ELEMENTS`): diagnosis runs on failures only and must
stay cheap.

Not modelled, because the tolerance cannot see it: accumulating float16/bfloat16 in their own
type, and adding the bias after rounding to a lower type instead of before. Both stay within
the gamma_n bound by construction (the bound is the worst case of any summation order in the
element type), and on exact data every partial sum is representable, so neither can fail a case.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from opref.dtypes import DTYPES, DType, round_from_float64
from opref.errors import SpecError
from opref.geometry import Geometry, Rule, geometry
from opref.reference import conv_transpose_float64
from opref.tolerance import Comparison, compare, magnitude_sum, max_terms

# Largest recomputation (output or full-scatter elements) a bug model may cost; larger ones
# are skipped. The default suite's largest output has 2**14 elements.
MAX_ELEMENTS = 2**22


@dataclass(frozen=True)
class Problem:
    """The inputs of one case, as the node reads them, and its resolved geometry."""

    X: np.ndarray
    W: np.ndarray
    B: np.ndarray | None
    attributes: Mapping[str, object]
    opset: int
    readings: Mapping[str, str]
    geo: Geometry
    bitexact: bool
    max_terms: int

    @property
    def dtype(self) -> DType:
        return DTYPES[str(self.X.dtype)]


@dataclass(frozen=True)
class Prediction:
    """What a runtime with the bug would output, and the bound to judge it by."""

    output: np.ndarray
    unit_roundoff: float | None = None  # None: the element type's
    # Operands the magnitude sum S is taken over (precision models round them).
    operands: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None


@dataclass(frozen=True)
class BugModel:
    """One mistake an implementation makes; ``predict`` gives its output, or None where the
    model does not apply to the case."""

    id: str
    summary: str  # what a person reads next to a failure: "bias of group 0 added in every group"
    kind: str  # placement | weights | geometry | precision
    predict: Callable[[Problem], Prediction | None]


# --- the scatter and its window -------------------------------------------------------------


def _full_scatter(X: np.ndarray, W: np.ndarray, strides, dilations, group: int) -> np.ndarray | None:
    """Every output position any input reaches, no padding, no bias, in float64 (None if too large)."""
    try:
        geo0 = geometry(X.shape, W.shape, strides=list(strides), dilations=list(dilations), group=group)
    except SpecError:
        return None
    if math.prod(geo0.output_shape) > MAX_ELEMENTS:
        return None
    with np.errstate(all="ignore"):
        return conv_transpose_float64(X.astype(np.float64), W.astype(np.float64), None, geo0)


def _window(
    scatter: np.ndarray, B: np.ndarray | None, begins: Sequence[int], sizes: Sequence[int], dt: DType
) -> np.ndarray | None:
    """The output ``sizes`` starting at ``begins`` (negative: before the scatter) of the infinite
    output plane: the scatter where it reaches, zero elsewhere, plus the bias everywhere."""
    n, m = scatter.shape[:2]
    if any(s <= 0 for s in sizes) or n * m * math.prod(sizes) > MAX_ELEMENTS:
        return None
    out = np.zeros((n, m, *sizes))
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for b, size, full in zip(begins, sizes, scatter.shape[2:], strict=True):
        lo, hi = max(b, 0), min(b + size, full)
        if lo >= hi:
            src = None
            break
        src.append(slice(lo, hi))
        dst.append(slice(lo - b, hi - b))
    if src is not None:
        out[tuple(dst)] = scatter[tuple(src)]
    if B is not None:
        out += B.astype(np.float64).reshape(1, m, *[1] * len(sizes))
    return round_from_float64(out, dt)


def _split(total: int, upper: bool) -> int:
    """pad_begin for total padding T: SAME_UPPER puts the odd unit at the end (floor reading)."""
    return total // 2 if upper else total - total // 2


def _placed(
    p: Problem, full: Sequence[int], strides: Sequence[int] | None = None
) -> tuple[list[int], list[int]]:
    """(begins, sizes) of the output under the case's own rule, for full extents ``full`` (and,
    for SAME, the target a runtime using ``strides`` computes: input * stride)."""
    geo, upper = p.geo, p.geo.auto_pad == "SAME_UPPER"
    begins, sizes = [], []
    for i, (ax, f) in enumerate(zip(geo.axes, full, strict=True)):
        target = ax.target
        if geo.rule is Rule.SAME and strides is not None:
            target += ax.input * (strides[i] - ax.stride)
        if geo.rule in (Rule.OUTPUT_SHAPE, Rule.SAME):
            begins.append(_split(f - target, upper))
            sizes.append(target)
        else:
            begins.append(ax.pad_begin)
            sizes.append(f - ax.pad_begin - ax.pad_end)
    return begins, sizes


def _scatter_of(p: Problem) -> np.ndarray | None:
    g = p.geo
    return _full_scatter(p.X, p.W, g.strides, g.dilations, g.group)


def _placement(begins_sizes: Callable[[Problem], tuple[list[int], list[int]] | None]):
    def predict(p: Problem) -> Prediction | None:
        where = begins_sizes(p)
        if where is None:
            return None
        scatter = _scatter_of(p)
        if scatter is None:
            return None
        out = _window(scatter, p.B, *where, p.dtype)
        return None if out is None else Prediction(out)

    return predict


def _full(p: Problem) -> list[int]:
    return [ax.full_extent for ax in p.geo.axes]


def _odd_unit_wrong_side(p: Problem):
    g = p.geo
    if g.rule not in (Rule.OUTPUT_SHAPE, Rule.SAME) or all(ax.total_padding % 2 == 0 for ax in g.axes):
        return None
    return [ax.pad_end for ax in g.axes], [ax.output for ax in g.axes]


def _pads_with_output_shape(p: Problem):
    pads = p.attributes.get("pads")
    if p.geo.rule is not Rule.OUTPUT_SHAPE or not pads or not any(pads):
        return None
    r = len(p.geo.axes)
    begins = list(pads[:r])
    # The pads decide where the window starts; the requested output_shape how far it goes.
    return begins, [ax.output for ax in p.geo.axes]


def _output_shape_as_full_extent(p: Problem):
    g = p.geo
    if g.rule is not Rule.OUTPUT_SHAPE or not any(ax.total_padding for ax in g.axes):
        return None
    return [0] * len(g.axes), _full(p)


def _same_as_full_extent(p: Problem):
    g = p.geo
    if g.rule is not Rule.SAME or not any(ax.total_padding > 0 for ax in g.axes):
        return None
    return [0] * len(g.axes), _full(p)


def _output_padding(times: int):
    def where(p: Problem):
        a = [ax.output_padding for ax in p.geo.axes]
        if not any(a):
            return None
        return _placed(p, [ax.full_extent + (times - 1) * ax.output_padding for ax in p.geo.axes])

    return where


def _output_padding_both_sides(p: Problem):
    g = p.geo
    if g.rule not in (Rule.PADS, Rule.VALID) or not any(ax.output_padding for ax in g.axes):
        return None
    return (
        [ax.pad_begin - ax.output_padding for ax in g.axes],
        [ax.output + ax.output_padding for ax in g.axes],
    )


# --- weights and bias -----------------------------------------------------------------------


def _weights(transform: Callable[[Problem], tuple[np.ndarray, np.ndarray | None] | None]):
    """A model that runs the spec's geometry on other weights (and bias)."""

    def predict(p: Problem) -> Prediction | None:
        got = transform(p)
        if got is None:
            return None
        W, B = got
        g = p.geo
        scatter = _full_scatter(p.X, W, g.strides, g.dilations, g.group)
        if scatter is None:
            return None
        begins, sizes = [ax.pad_begin for ax in g.axes], [ax.output for ax in g.axes]
        out = _window(scatter, B, begins, sizes, p.dtype)
        return None if out is None else Prediction(out)

    return predict


def _bias_of_group0(p: Problem):
    G = p.geo.group
    if G == 1 or p.B is None:
        return None
    mg = p.W.shape[1]
    return p.W, np.tile(p.B[:mg], G)


def _group_blocks_reversed(p: Problem):
    G = p.geo.group
    if G == 1:
        return None
    blocks = p.W.reshape(G, p.W.shape[0] // G, *p.W.shape[1:])
    return blocks[::-1].reshape(p.W.shape), p.B


def _w_as_m_by_c(p: Problem):
    """W's buffer read in Conv's (M, C/group, k...) layout: weight (c, m) taken from W'[m, c]."""
    G, (C, mg, *k) = p.geo.group, p.W.shape
    cg = C // G
    conv = p.W.reshape(G, mg, cg, *k)  # the same bytes, as group blocks of (M/group, C/group)
    return np.swapaxes(conv, 1, 2).reshape(C, mg, *k), p.B


def _kernel_flipped(p: Problem):
    axes = tuple(range(2, p.W.ndim))
    return np.flip(p.W, axis=axes), p.B


# --- stride and dilation --------------------------------------------------------------------


def _geometry_variant(strides: Callable[[Geometry], tuple], dilations: Callable[[Geometry], tuple]):
    def predict(p: Problem) -> Prediction | None:
        g = p.geo
        s, d = strides(g), dilations(g)
        if (s, d) == (g.strides, g.dilations):
            return None
        scatter = _full_scatter(p.X, p.W, s, d, g.group)
        if scatter is None:
            return None
        full = [
            si * (ax.input - 1) + ax.output_padding + (ax.kernel - 1) * di + 1
            for si, di, ax in zip(s, d, g.axes, strict=True)
        ]
        out = _window(scatter, p.B, *_placed(p, full, s), p.dtype)
        return None if out is None else Prediction(out)

    return predict


# --- precision ------------------------------------------------------------------------------


def _tf32(values: np.ndarray) -> np.ndarray:
    """Round to TF32's 10 stored mantissa bits (float32's exponent range), ties to even."""
    v = values.astype(np.float64)
    _, exp = np.frexp(v)
    step = np.ldexp(1.0, exp - 11)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(v), np.rint(v / step) * step, v)


def _narrow(name: str, wide: tuple[str, ...], u: float, rounding: Callable[[np.ndarray], np.ndarray]):
    """A wider type computed with operands rounded to a narrower one and accumulated in it
    (unit roundoff u). Judged on random data only: on exact data the suite's integers make any
    rounding look like a precision bug."""

    def predict(p: Problem) -> Prediction | None:
        if p.dtype.name not in wide or p.bitexact:
            return None
        X, W = rounding(p.X), rounding(p.W)
        B = None if p.B is None else p.B.astype(np.float64)
        if math.prod(p.geo.output_shape) > MAX_ELEMENTS:
            return None
        with np.errstate(all="ignore"):
            y = conv_transpose_float64(X, W, B, p.geo)
        return Prediction(round_from_float64(y, p.dtype), u, (X, W, B))

    return predict


def _rounded_to(name: str) -> Callable[[np.ndarray], np.ndarray]:
    dt = DTYPES[name]
    return lambda a: round_from_float64(a.astype(np.float64), dt).astype(np.float64)


CATALOG: Mapping[str, BugModel] = MappingProxyType(
    {
        m.id: m
        for m in (
            BugModel(
                "odd-unit-wrong-side",
                "odd unit of the total padding on the wrong side",
                "placement",
                _placement(_odd_unit_wrong_side),
            ),
            BugModel(
                "pads-with-output-shape",
                "pads used although output_shape is given",
                "placement",
                _placement(_pads_with_output_shape),
            ),
            BugModel(
                "output-shape-as-full-extent",
                "output_shape ignored: the full extent (T = 0)",
                "placement",
                _placement(_output_shape_as_full_extent),
            ),
            BugModel(
                "same-as-full-extent",
                "SAME target computed as the full extent (T = 0)",
                "placement",
                _placement(_same_as_full_extent),
            ),
            BugModel(
                "output-padding-ignored",
                "output_padding ignored",
                "placement",
                _placement(_output_padding(0)),
            ),
            BugModel(
                "output-padding-twice",
                "output_padding added twice",
                "placement",
                _placement(_output_padding(2)),
            ),
            BugModel(
                "output-padding-both-sides",
                "output_padding applied on both sides",
                "placement",
                _placement(_output_padding_both_sides),
            ),
            BugModel(
                "bias-of-group-0",
                "bias of group 0 added in every group",
                "weights",
                _weights(_bias_of_group0),
            ),
            BugModel(
                "group-blocks-reversed",
                "W's group blocks taken in the wrong order",
                "weights",
                _weights(_group_blocks_reversed),
            ),
            BugModel(
                "w-as-m-by-c",
                "W read as (M, C/group) instead of (C, M/group)",
                "weights",
                _weights(_w_as_m_by_c),
            ),
            BugModel(
                "kernel-flipped",
                "kernel flipped (correlation instead of transposed convolution)",
                "weights",
                _weights(_kernel_flipped),
            ),
            BugModel(
                "dilation-ignored",
                "dilations ignored",
                "geometry",
                _geometry_variant(lambda g: g.strides, lambda g: (1,) * len(g.dilations)),
            ),
            BugModel(
                "stride-dilation-swapped",
                "strides and dilations swapped",
                "geometry",
                _geometry_variant(lambda g: g.dilations, lambda g: g.strides),
            ),
            BugModel(
                "computed-in-float16",
                "computed in float16 (operands and accumulation)",
                "precision",
                _narrow(
                    "float16", ("float32", "float64"), DTYPES["float16"].unit_roundoff, _rounded_to("float16")
                ),
            ),
            BugModel(
                "computed-in-bfloat16",
                "computed in bfloat16 (operands and accumulation)",
                "precision",
                _narrow(
                    "bfloat16",
                    ("float32", "float64"),
                    DTYPES["bfloat16"].unit_roundoff,
                    _rounded_to("bfloat16"),
                ),
            ),
            BugModel(
                "computed-in-tf32",
                "float32 computed in TF32 (operands rounded to 10 mantissa bits)",
                "precision",
                _narrow("tf32", ("float32",), DTYPES["float32"].unit_roundoff, _tf32),
            ),
            BugModel(
                "computed-in-float32",
                "float64 computed in float32",
                "precision",
                _narrow("float32", ("float64",), DTYPES["float32"].unit_roundoff, _rounded_to("float32")),
            ),
        )
    }
)


def problem(
    operands: Sequence[np.ndarray],
    attributes: Mapping[str, object],
    opset: int,
    readings: Mapping[str, str] | None = None,
    *,
    bitexact: bool,
) -> Problem | None:
    """The case as the bug models see it (None when the readings make it invalid)."""
    X, W, *rest = operands
    B = rest[0] if rest else None
    try:
        geo = geometry(
            X.shape,
            W.shape,
            **attributes,
            opset=opset,
            readings=readings,
            b_shape=None if B is None else B.shape,
        )
    except SpecError:
        return None
    return Problem(
        X,
        W,
        B,
        MappingProxyType(dict(attributes)),
        opset,
        geo.readings,
        geo,
        bitexact,
        max_terms(geo, B is not None),
    )


def _judge(
    p: Problem,
    got: np.ndarray,
    want: np.ndarray,
    magnitude: np.ndarray | None,
    terms: int,
    unit_roundoff: float | None = None,
) -> Comparison | None:
    if got.shape != want.shape or got.dtype != want.dtype:
        return None
    return compare(
        got,
        want,
        p.dtype,
        bitexact=p.bitexact,
        magnitude=None if p.bitexact else magnitude,
        terms=terms,
        unit_roundoff=unit_roundoff,
    )


def _spec_bound(p: Problem) -> np.ndarray | None:
    return None if p.bitexact else magnitude_sum(p.X, p.W, p.B, p.geo)


def _model_bound(model: BugModel, p: Problem, pred: Prediction) -> tuple[np.ndarray | None, int]:
    """(S, n) of the tolerance for a model's own output: the model applied to |X|, |W|, |B| and
    to all-ones operands (a placement or stride change moves which terms each element sums)."""
    if model.kind == "precision":
        X, W, B = pred.operands
        mag = None if p.bitexact else magnitude_sum(X, W, B, p.geo)
        return mag, p.max_terms
    f64 = np.float64

    def variant(X, W, B) -> np.ndarray | None:
        q = replace(p, X=X.astype(f64), W=W.astype(f64), B=None if B is None else B.astype(f64))
        got = model.predict(q)
        return None if got is None else got.output

    mag = (
        None
        if p.bitexact
        else variant(
            np.abs(p.X.astype(f64)), np.abs(p.W.astype(f64)), None if p.B is None else np.abs(p.B.astype(f64))
        )
    )
    ones = variant(np.ones(p.X.shape), np.ones(p.W.shape), None)
    terms = p.max_terms if ones is None else int(ones.max(initial=0)) + int(p.B is not None)
    return mag, terms


def predictions(p: Problem, expected: np.ndarray) -> dict[str, Prediction]:
    """Every bug model that applies to the case and predicts an output the tolerance rejects."""
    out = {}
    spec = _spec_bound(p)
    for model in CATALOG.values():
        pred = model.predict(p)
        if pred is None:
            continue
        if pred.unit_roundoff is None:
            cmp = _judge(p, pred.output, expected, spec, p.max_terms)
            if cmp is not None and cmp.ok:
                continue  # the mistake changes nothing here that the tolerance can see
        out[model.id] = pred
    return out


def diagnose(p: Problem, got: np.ndarray, expected: np.ndarray) -> tuple[str, ...]:
    """The ids of every bug model whose output reproduces ``got`` (a failing output) within the
    tolerance, in catalog order; empty when none does or when ``got`` is right."""
    right = _judge(p, got, expected, _spec_bound(p), p.max_terms)
    if right is not None and right.ok:
        return ()
    found = []
    for mid, pred in predictions(p, expected).items():
        if pred.output.shape != got.shape or pred.output.dtype != got.dtype:
            continue
        mag, terms = _model_bound(CATALOG[mid], p, pred)
        cmp = _judge(p, got, pred.output, mag, terms, pred.unit_roundoff)
        if cmp is not None and cmp.ok:
            found.append(mid)
    return tuple(found)


def summary(ids: Sequence[str]) -> str:
    """A person's line for a diagnosis: the models' summaries joined (the forms' models too)."""
    from opref.formdiagnose import FORM_CATALOG

    known = {**CATALOG, **FORM_CATALOG}
    return "; or ".join(known[i].summary for i in ids if i in known)
