"""How far a runtime's output may be from the reference: spec notes section 5.

A runtime that accumulates with unit roundoff u satisfies, element by element,
``|Y_rt - Y_ref| <= gamma_n * S + ulp(Y_ref)`` with ``S = conv_transpose(|X|, |W|) + |B|``
(exact, float64), n the most terms any output element sums, and
``gamma_n = n*u / (1 - n*u)`` (Higham). Exact-data cases allow no difference at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from opref.dtypes import DType, ordered_bits, ulp
from opref.geometry import Geometry
from opref.reference import conv_transpose_float64


def magnitude_sum(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geo: Geometry) -> np.ndarray:
    """S = conv_transpose(|X|, |W|) + |B| in float64: the scale of every output's rounding error."""
    with np.errstate(all="ignore"):
        return conv_transpose_float64(
            np.abs(X.astype(np.float64)),
            np.abs(W.astype(np.float64)),
            None if B is None else np.abs(B.astype(np.float64)),
            geo,
        )


def max_terms(geo: Geometry, has_bias: bool) -> int:
    """n: the most terms (products, plus the bias) summed into any one output element."""
    # Counting with all-ones operands; the batch size does not change the count.
    one = replace(geo, x_shape=(1, *geo.x_shape[1:]), output_shape=(1, *geo.output_shape[1:]))
    counts = conv_transpose_float64(np.ones(one.x_shape), np.ones(one.w_shape), None, one)
    return int(counts.max(initial=0)) + int(has_bias)


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
    exp64 = expected.astype(np.float64)
    got64 = got.astype(np.float64)
    both_nan = np.isnan(exp64) & np.isnan(got64)
    with np.errstate(all="ignore"):
        err = np.where(both_nan, 0.0, np.abs(got64 - exp64))
        err = np.where((exp64 == got64), 0.0, err)  # equal infinities
    err = np.where(np.isnan(err), np.inf, err)
    dist = np.abs(ordered_bits(got, dtype) - ordered_bits(expected, dtype))
    dist = np.where(both_nan, 0, dist)
    if bitexact:
        bad = dist != 0
        fraction = np.where(bad, np.inf, 0.0)
    else:
        u = dtype.unit_roundoff if unit_roundoff is None else unit_roundoff
        bound = gamma(terms, u) * magnitude + ulp(exp64, dtype)
        with np.errstate(all="ignore"):
            fraction = np.where(err == 0, 0.0, err / bound)
        bad = ~(err <= bound)
    count = int(bad.sum())
    first = [int(i) for i in np.argwhere(bad)[0]] if count else None
    return Comparison(
        ok=count == 0,
        bitexact_required=bitexact,
        max_abs_error=float(err.max(initial=0.0)),
        max_ulp=int(dist.max(initial=0)),
        max_bound_fraction=float(fraction.max(initial=0.0)),
        mismatches=count,
        first_mismatch=first,
        expected_at_first=None if first is None else float(exp64[tuple(first)]),
        got_at_first=None if first is None else float(got64[tuple(first)]),
    )
