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
    the product of each axis's most: counted per axis, in time and memory linear in that axis's
    input and kernel (never in the whole output).
    """
    most = 1
    for ax in geo.axes:
        i = np.arange(ax.input, dtype=np.int64)[:, None]
        kappa = np.arange(ax.kernel, dtype=np.int64)[None, :]
        pos = (i * ax.stride + kappa * ax.dilation - ax.pad_begin).reshape(-1)
        pos = pos[(pos >= 0) & (pos < ax.output)]
        most *= int(np.bincount(pos).max(initial=0)) if pos.size else 0
    return geo.x_shape[1] // geo.group * most + int(has_bias)


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
