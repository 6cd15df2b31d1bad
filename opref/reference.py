"""The values of ConvTranspose: the scatter definition of spec notes section 2, vectorised.

Per group, the channel contraction is one BLAS matrix product in float64 giving every kernel
tap's contribution at every input position. Output positions are then split by their
residue modulo the stride ("phases"): within one phase every tap lands on a contiguous,
shifted block, so the taps are accumulated with contiguous adds into one buffer per phase,
and each phase buffer is written once into the strided output, rounded to X's dtype.
Pads (negative ones too) only shift and clip those blocks; no padded buffer exists.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from opref.dtypes import DTYPES, DType, dtype_of, round_from_float64
from opref.errors import SpecError
from opref.geometry import Axis, Geometry, geometry

# Scratch memory kept between calls (per thread, up to this many bytes): fresh pages cost
# a page fault on first touch, which for the GEMM result was a third of the run time.
_SCRATCH_LIMIT = 64 * 2**20
_CACHE_BYTES = 2**20
_scratch = threading.local()


def _workspace(slot: str, shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float64 array of ``shape``, reusing this thread's buffer ``slot``."""
    size = int(np.prod(shape))
    if size * 8 > _SCRATCH_LIMIT:
        return np.empty(shape, dtype=np.float64)
    buf = getattr(_scratch, slot, None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=np.float64)
        setattr(_scratch, slot, buf)
    return buf[:size].reshape(shape)


@dataclass(frozen=True)
class _AxisPlan:
    """Where each kernel tap of one axis writes, in phase coordinates.

    Output position o has phase (o + pad_begin) mod stride; phase p holds the outputs
    ``first[p], first[p] + stride, ...`` (``count[p]`` of them). Tap k of input i lands in
    phase ``tap_phase[k]`` at index ``i + tap_shift[k]``.
    """

    first: tuple[int, ...]
    count: tuple[int, ...]
    tap_phase: tuple[int, ...]
    tap_shift: tuple[int, ...]
    input: int

    def window(self, tap: int) -> tuple[slice, slice] | None:
        """(input slice, phase-buffer slice) of ``tap``, clipped to the output; None if empty."""
        shift, count = self.tap_shift[tap], self.count[self.tap_phase[tap]]
        lo, hi = max(0, -shift), min(self.input, count - shift)
        if hi <= lo:
            return None
        return slice(lo, hi), slice(lo + shift, hi + shift)


def _plan(ax: Axis) -> _AxisPlan:
    s = ax.stride
    first = tuple((p - ax.pad_begin) % s for p in range(s))
    count = tuple(max(0, -(-(ax.output - f) // s)) for f in first)
    taps = [k * ax.dilation for k in range(ax.kernel)]
    # o = i*s + k*d - pad_begin = first[p] + s*(i + shift); the division is exact.
    phase = tuple(q % s for q in taps)
    shift = tuple((q - ax.pad_begin - first[q % s]) // s for q in taps)
    return _AxisPlan(first, count, phase, shift, ax.input)


def _accumulate(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geo: Geometry):
    """float64 phase buffers {phase tuple: array (M, N, count...)} of the output.

    X, W and B may have any float dtype; they are widened to float64 on the way in.
    """
    n, c = geo.x_shape[:2]
    cg, mg, m = c // geo.group, geo.w_shape[1], geo.output_shape[1]
    kernel = geo.kernel_shape
    ntaps = int(np.prod(kernel))
    plans = [_plan(ax) for ax in geo.axes]
    keys = [
        key
        for key in itertools.product(*(range(ax.stride) for ax in geo.axes))
        if all(p.count[k] for p, k in zip(plans, key, strict=True))
    ]
    # All phase buffers share one workspace: together they are exactly the output's size.
    space = _workspace("phases", (int(np.prod(geo.output_shape)),))
    phases, offset = {}, 0
    for key in keys:
        shape = (m, n, *(p.count[k] for p, k in zip(plans, key, strict=True)))
        size = int(np.prod(shape))
        phases[key] = buf = space[offset : offset + size].reshape(shape)
        offset += size
        buf[...] = 0.0 if B is None else B.astype(np.float64).reshape((m,) + (1,) * (buf.ndim - 1))
    windows = []
    for t, tap in enumerate(itertools.product(*(range(k) for k in kernel))):
        win = [p.window(k) for p, k in zip(plans, tap, strict=True)]
        if all(w is not None for w in win):
            key = tuple(p.tap_phase[k] for p, k in zip(plans, tap, strict=True))
            windows.append((t, key, tuple(w[0] for w in win), tuple(w[1] for w in win)))
    # Channels first, so that each group's operand is one (C/group, N*P) matrix: one GEMM.
    spatial = int(np.prod(geo.x_shape[2:]))
    x_cn = _workspace("x", (c, n, spatial))
    x_cn[...] = X.reshape(n, c, spatial).transpose(1, 0, 2)
    # Images are taken in batches whose product fits in cache: the product is written once and
    # read back once per tap, so keeping it cache-resident is worth more than one big GEMM.
    batch = max(1, min(n, _CACHE_BYTES // max(1, ntaps * mg * spatial * 8)))
    for g in range(geo.group):
        # Rows ordered tap-major so that each tap's block of the product is contiguous.
        w_g = W[g * cg : (g + 1) * cg].astype(np.float64).reshape(cg, mg, ntaps)
        w_g = w_g.transpose(2, 1, 0).reshape(ntaps * mg, cg)
        channels = slice(g * mg, (g + 1) * mg)
        for n0 in range(0, n, batch):
            nb = min(batch, n - n0)
            cols = _workspace("cols", (ntaps * mg, nb * spatial))
            np.matmul(w_g, x_cn[g * cg : (g + 1) * cg, n0 : n0 + nb].reshape(cg, nb * spatial), out=cols)
            taps = cols.reshape(ntaps, mg, nb, *geo.x_shape[2:])
            images = slice(n0, n0 + nb)
            for t, key, src, dst in windows:
                phases[key][(channels, images, *dst)] += taps[(t, slice(None), slice(None), *src)]
    return phases, plans


def _assemble(phases, plans, geo: Geometry, dtype: DType) -> np.ndarray:
    """Interleave the phase buffers into the (N, M, spatial...) output, rounded to ``dtype``."""
    out = np.empty(geo.output_shape, dtype=dtype.numpy)
    for key, buf in phases.items():
        where = tuple(
            slice(p.first[k], None, ax.stride) for p, k, ax in zip(plans, key, geo.axes, strict=True)
        )
        if dtype.name == "bfloat16":
            buf = round_from_float64(buf, dtype)
        # numpy's float64 -> float16/float32 assignment rounds once, to nearest even.
        out[(slice(None), slice(None), *where)] = buf.swapaxes(0, 1)
    return out


def conv_transpose_float64(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geo: Geometry) -> np.ndarray:
    """The output of ``geo`` on float64 operands, in float64 (no rounding to X's dtype)."""
    phases, plans = _accumulate(X, W, B, geo)
    return _assemble(phases, plans, geo, DTYPES["float64"])


def conv_transpose(
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
    opset: int = 22,
    readings: Mapping[str, str] | None = None,
) -> np.ndarray:
    """ONNX ConvTranspose: Y = X (*)^T W + B, N-d, any group, exactly as the spec defines it.

    X, W (and B) must share one dtype: float16, float32, float64, or bfloat16 (opset >= 22).
    The result has X's dtype and is the float64 result rounded once. ``readings`` selects
    a non-default reading of an ambiguity (``{"negative-total-padding": "clamp"}``); see
    :data:`opref.readings.AMBIGUITIES`. Anything on the must-reject list raises SpecError.
    """
    X, W = np.asarray(X), np.asarray(W)
    dt = dtype_of(X, "X")
    if W.dtype != dt.numpy:
        raise SpecError("W.dtype", str(W.dtype), f"must equal X.dtype={dt.name}")
    if B is not None:
        B = np.asarray(B)
        if B.dtype != dt.numpy:
            raise SpecError("B.dtype", str(B.dtype), f"must equal X.dtype={dt.name}")
    geo = geometry(
        X.shape,
        W.shape,
        auto_pad=auto_pad,
        dilations=dilations,
        group=group,
        kernel_shape=kernel_shape,
        output_padding=output_padding,
        output_shape=output_shape,
        pads=pads,
        strides=strides,
        opset=opset,
        readings=readings,
        b_shape=None if B is None else B.shape,
        dtype=dt,
    )
    with np.errstate(all="ignore"):  # inf/NaN inputs propagate as IEEE arithmetic says
        phases, plans = _accumulate(X, W, B, geo)
        return _assemble(phases, plans, geo, dt)
