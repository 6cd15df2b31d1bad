"""How far a runtime's output may be from the reference: spec notes section 5.

A runtime that accumulates with unit roundoff u satisfies, element by element,
``|Y_rt - Y_ref| <= gamma_n * S + ulp(Y_ref)`` with ``S = conv_transpose(|X|, |W|) + |B|``
(exact, float64), n the most terms any output element sums, and
``gamma_n = n*u / (1 - n*u)`` (Higham). Exact-data cases allow no difference at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from opref.dtypes import DType, ordered_bits, ulp
from opref.geometry import Geometry
from opref.reference import conv_transpose_float64


def magnitude_sum(
    X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geo: Geometry, *, max_memory: int | None = None
) -> np.ndarray:
    """S = conv_transpose(|X|, |W|) + |B| in float64: the scale of every output's rounding error.

    ``max_memory`` bounds the working memory of that convolution (beyond |X|, |W| and S), as
    for :func:`opref.conv_transpose`.
    """
    with np.errstate(all="ignore"):
        return conv_transpose_float64(
            np.abs(X.astype(np.float64)),
            np.abs(W.astype(np.float64)),
            None if B is None else np.abs(B.astype(np.float64)),
            geo,
            max_memory=max_memory,
        )


def max_terms(geo: Geometry, has_bias: bool) -> int:
    """n: the most terms (products, plus the bias) summed into any one output element.

    The taps reaching an output position are a product over axes, so the most is C/group times
    the product of each axis's most (:func:`_most_on_axis`), counted without ever laying out an
    axis's input-by-kernel grid: a record at the size guard is checked in milliseconds.
    """
    most = 1
    for ax in geo.axes:
        most *= _most_on_axis(ax.input, ax.kernel, ax.stride, ax.dilation, ax.pad_begin, ax.output)
    return geo.x_shape[1] // geo.group * most + int(has_bias)


def _most_on_axis(inputs: int, kernel: int, stride: int, dilation: int, pad_begin: int, output: int) -> int:
    """The most pairs (i, k), 0 <= i < inputs, 0 <= k < kernel, that reach one output position
    p = i*stride + k*dilation - pad_begin with 0 <= p < output.

    Fix each value of the shorter of the two ranges: the other one then walks an arithmetic
    progression, which is an interval of whole steps within its residue class (modulo that
    step). The answer is the deepest overlap of those intervals, clipped to the output: time
    linear in min(inputs, kernel) (at most sqrt of the size guard), exact integer arithmetic.
    """
    if inputs <= kernel:
        fixed, fixed_step, walk, step = inputs, stride, kernel, dilation
    else:
        fixed, fixed_step, walk, step = kernel, dilation, inputs, stride
    events: dict[int, list[tuple[int, int]]] = {}
    for f in range(fixed):
        start = f * fixed_step - pad_begin  # p = start + w*step for 0 <= w < walk
        residue = start % step  # p = residue + q*step with q in [first, first + walk)
        first = (start - residue) // step
        end = -(-(output - residue) // step) if output > residue else 0  # q < end keeps p < output
        lo, hi = max(first, 0), min(first + walk, end)  # q >= 0 keeps p >= 0
        if lo < hi:
            events.setdefault(residue, []).extend(((lo, 1), (hi, -1)))
    most = 0
    for marks in events.values():
        marks.sort()  # at one q an interval's end (-1) comes before another's start: half-open
        depth = 0
        for _, change in marks:
            depth += change
            most = max(most, depth)
    return most


def gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n*u / (1 - n*u); infinite when n*u >= 1 (no bound)."""
    nu = n * u
    return float("inf") if nu >= 1 else nu / (1 - nu)


@dataclass(frozen=True)
class Comparison:
    """The verdict-relevant numbers of one output against the reference."""

    ok: bool
    bitexact_required: bool
    max_abs_error: float
    max_ulp: int
    max_bound_fraction: float  # largest |error| / bound over all elements (0 when exact)
    mismatches: int
    first_mismatch: list[int] | None
    expected_at_first: float | None
    got_at_first: float | None

    def to_dict(self) -> dict:
        return asdict(self)


# Elements compared at a time: the comparison's temporaries stay a few tens of MB whatever the
# output's size (a 25M-element output once took over 1 GB of them).
COMPARE_CHUNK = 2**20


def compare(
    got: np.ndarray,
    expected: np.ndarray,
    dtype: DType,
    *,
    bitexact: bool,
    magnitude: np.ndarray | None = None,
    terms: int = 0,
    unit_roundoff: float | None = None,
) -> Comparison:
    """Compare a runtime output with the reference output (same shape and dtype assumed).

    ``bitexact`` demands identical bits (NaN matching NaN). Otherwise each element must be
    within ``gamma_terms(u) * magnitude + ulp(expected)``; ``u`` defaults to the dtype's.
    """
    g = gamma(terms, dtype.unit_roundoff if unit_roundoff is None else unit_roundoff)
    flat_got, flat_exp = got.reshape(-1), expected.reshape(-1)
    flat_mag = None if magnitude is None else np.broadcast_to(magnitude, expected.shape).reshape(-1)
    max_err, max_ulp, max_fraction, count, first = 0.0, 0, 0.0, 0, None
    for start in range(0, flat_exp.size, COMPARE_CHUNK):
        part = slice(start, start + COMPARE_CHUNK)
        gp, ep = flat_got[part], flat_exp[part]
        exp64, got64 = ep.astype(np.float64), gp.astype(np.float64)
        both_nan = np.isnan(exp64) & np.isnan(got64)
        with np.errstate(all="ignore"):
            err = np.where(both_nan | (exp64 == got64), 0.0, np.abs(got64 - exp64))  # equal infinities
        err = np.where(np.isnan(err), np.inf, err)
        dist = np.where(both_nan, 0, np.abs(ordered_bits(gp, dtype) - ordered_bits(ep, dtype)))
        if bitexact:
            bad = dist != 0
            fraction = np.where(bad, np.inf, 0.0)
        else:
            bound = g * flat_mag[part] + ulp(exp64, dtype)
            with np.errstate(all="ignore"):
                fraction = np.where(err == 0, 0.0, err / bound)
            bad = ~(err <= bound)
        n_bad = int(bad.sum())
        if n_bad and first is None:
            first = start + int(np.flatnonzero(bad)[0])
        count += n_bad
        max_err = max(max_err, float(err.max(initial=0.0)))
        max_ulp = max(max_ulp, int(dist.max(initial=0)))
        max_fraction = max(max_fraction, float(fraction.max(initial=0.0)))
    at = None if first is None else [int(i) for i in np.unravel_index(first, expected.shape)]
    return Comparison(
        ok=count == 0,
        bitexact_required=bitexact,
        max_abs_error=max_err,
        max_ulp=max_ulp,
        max_bound_fraction=max_fraction,
        mismatches=count,
        first_mismatch=at,
        expected_at_first=None if first is None else float(flat_exp[first]),
        got_at_first=None if first is None else float(flat_got[first]),
    )
