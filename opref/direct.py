"""The independent check of opref's reference: ConvTranspose as a direct loop (gather form).

The tests judge :mod:`opref.geometry` and :mod:`opref.reference` against this module, so it
must not share their code: it imports neither, and is written from the formulas of spec
notes section 2 alone — its own pad resolution (the default readings only), its own loop
over every output position and kernel tap, exact float64 sums through math.fsum. It costs
one step per output element per tap per input channel: small shapes only (large strides or
dilations are fine, they do not enter the cost).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np


def direct_pads(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    output_padding: Sequence[int] | None = None,
    output_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> tuple[list[int], list[int], list[int]]:
    """(pads_begin, pads_end, out_sizes) straight from spec notes section 2."""
    r = len(x_shape) - 2
    s = strides or [1] * r
    d = dilations or [1] * r
    a = output_padding or [0] * r
    begins, ends, outs = [], [], []
    for i in range(r):
        full = s[i] * (x_shape[2 + i] - 1) + a[i] + (w_shape[2 + i] - 1) * d[i] + 1
        if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            target = output_shape[i] if output_shape is not None else x_shape[2 + i] * s[i]
            total = full - target
            small, large = total // 2, total - total // 2  # floor, exact at any size
            b, e = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        elif auto_pad == "VALID":
            b = e = 0
        else:
            p = pads or [0] * (2 * r)
            b, e = p[i], p[i + r]
        begins.append(b)
        ends.append(e)
        outs.append(full - b - e)
    return begins, ends, outs


def direct_conv_transpose(
    X: np.ndarray,
    W: np.ndarray,
    B: np.ndarray | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    output_padding: Sequence[int] | None = None,
    output_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> np.ndarray:
    """Float64 output of ConvTranspose by the gather formula, summed exactly.

    No checks: the arguments must be a valid configuration (``kernel_shape`` is W's).
    """
    X = np.asarray(X).astype(np.float64)
    W = np.asarray(W).astype(np.float64)
    r = X.ndim - 2
    s = strides or [1] * r
    d = dilations or [1] * r
    begins, _, outs = direct_pads(
        X.shape, W.shape, auto_pad, dilations, output_padding, output_shape, pads, strides
    )
    n, c = X.shape[:2]
    cg, mg = c // group, W.shape[1]
    Y = np.zeros((n, mg * group, *outs))
    for b, oc in itertools.product(range(n), range(mg * group)):
        g, m = divmod(oc, mg)
        for o in itertools.product(*(range(v) for v in outs)):
            terms = [] if B is None else [float(B[oc])]
            for kappa in itertools.product(*(range(k) for k in W.shape[2:])):
                # o + pad_begin = i*s + kappa*d must hold on every axis for an integer i.
                idx = []
                for ax in range(r):
                    num = o[ax] + begins[ax] - kappa[ax] * d[ax]
                    if num % s[ax] or not 0 <= num // s[ax] < X.shape[2 + ax]:
                        break
                    idx.append(num // s[ax])
                else:
                    for ci in range(cg):
                        # Python floats: inf * 0 is NaN, without numpy's warning.
                        terms.append(float(X[(b, g * cg + ci, *idx)]) * float(W[(g * cg + ci, m, *kappa)]))
            # fsum refuses inf - inf; when a term is not finite, IEEE addition in any order
            # gives the one possible result (inf, -inf or NaN).
            Y[(b, oc, *o)] = math.fsum(terms) if np.isfinite(terms).all() else sum(terms)
    return Y
