"""The values of ConvTranspose: the scatter definition of spec notes section 2, vectorised.

Output positions are split by their residue modulo the stride ("phases"). Within one phase,
kernel tap k of input position i lands at phase index i + shift[k], so each phase is a plain
stride-1 correlation of X with that phase's taps, and each phase buffer is finally written
once into the strided output, rounded to X's dtype. Everything before that rounding is
float64. Two paths compute the phase buffers:

- stacked, for finite operands: X is copied once into a zero-bordered buffer laid out flat,
  where moving by a tap is adding an offset. Shifted copies of it are stacked, one per
  relative tap offset (phases share them: their taps sit at the same relative offsets), and
  each phase is one BLAS product of its taps' weights with a window of the stack, the bias
  riding along as one more row of ones. The border's zeros meet taps that fall outside X.
- scatter, when X, W or B holds an inf or NaN (a border zero times an infinite weight would
  be a NaN that the spec's sum does not have), and where the output is so much larger than
  the input that the stacked path would mostly multiply border zeros. One product per group
  gives every tap's contribution at every input position, and each tap's block is added,
  clipped to the output, into its phase buffer.

Pads (negative ones too) only shift and clip; no padded output exists.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from opref import phases
from opref.dtypes import DTYPES, DType, dtype_of
from opref.errors import BudgetError, SpecError
from opref.geometry import Geometry, geometry

# ---------------------------------------------------------------------------------------------
# Memory: a budget for the working memory, and chunks that keep to it

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_memory(text: str) -> int:
    """Bytes from ``text``: a number with an optional binary unit K, M, G or T ("512M", "2G",
    "1.5G", "1048576"); a trailing "B" or "iB" is allowed. ValueError when it is none."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not found:
        raise ValueError(f"expected a size such as 512M or 2G, got {text!r}")
    size = int(float(found.group(1)) * _UNITS[found.group(2)])
    if size < 1:
        raise ValueError(f"a memory budget must be at least 1 byte, got {text!r}")
    return size


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# Where the machine's memory cannot be read, the default budget is this.
_FALLBACK_MEMORY = 2**30


def default_max_memory() -> int:
    """The default budget: a quarter of this machine's physical memory (1 GiB if unknown)."""
    total = _physical_memory()
    return max(1, total // 4) if total else _FALLBACK_MEMORY


@dataclass(frozen=True)
class Chunks:
    """How one layer is computed within ``max_memory``: chunks of ``images`` images, ``groups``
    groups and ``channels`` output channels per group; ``nbytes`` is the working memory of the
    largest chunk (float64 buffers, beyond the operands and the output), ``stacked`` the path."""

    images: int
    groups: int
    channels: int
    nbytes: int
    stacked: bool
    max_memory: int

    def count(self, geo: Geometry) -> int:
        """How many chunks ``geo`` is computed in."""
        n, groups, mg = geo.x_shape[0], geo.group, geo.w_shape[1]
        return -(-n // self.images) * -(-groups // self.groups) * -(-mg // self.channels)


def _part(geo: Geometry, images: int, groups: int, channels: int) -> Geometry:
    """The geometry of one chunk: ``images`` images, ``groups`` groups of ``channels`` output
    channels each, with every spatial axis as in ``geo`` (a chunk is the same layer, smaller)."""
    cg = geo.x_shape[1] // geo.group
    return dataclasses.replace(
        geo,
        x_shape=(images, groups * cg, *geo.x_shape[2:]),
        w_shape=(groups * cg, channels, *geo.w_shape[2:]),
        group=groups,
        output_shape=(images, groups * channels, *geo.output_shape[2:]),
    )


def working_bytes(geo: Geometry, *, stacked: bool, dtype: DType | str = "float64") -> int:
    """The working memory (bytes) of computing ``geo`` in one piece: every float64 buffer opref
    allocates beyond the operands and the output (bfloat16 adds the rounding's temporaries)."""
    dt = DTYPES[dtype] if isinstance(dtype, str) else dtype
    if stacked:
        st = phases.stack_plan(geo.axes)
        need = phases.stacked_layout(geo).nbytes(geo, st)
        largest = math.prod(geo.output_shape)  # a bound on one phase buffer's size
    else:
        need = phases.scattered_bytes(geo)
        largest = math.prod(geo.output_shape)
    if dt.name == "bfloat16":  # round_from_float64's float64 temporaries, one phase at a time
        need += 6 * 8 * largest
    return need


def _largest(fits, most: int) -> int:
    """The largest k in 1..most with fits(k) (fits is monotone: true up to some k); 0 if none."""
    if not fits(1):
        return 0
    lo, hi = 1, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


# Below the budget, a layer is also cut where that keeps its working memory to one float64 copy
# of W, what the output's float64 values take beyond the output itself, and this much: the
# bench's memory goal (issue 27), at the cost of building the stack once per chunk. 12, not 16:
# small temporaries the accounting leaves out came to 2 MiB (bench, bilinear x2 depthwise).
_SOFT_BYTES = 12 * 2**20


def _preferred_bytes(geo: Geometry, dtype: DType) -> int:
    output = math.prod(geo.output_shape)
    return 8 * math.prod(geo.w_shape) + output * (8 - np.dtype(dtype.numpy).itemsize) + _SOFT_BYTES


def chunks(geo: Geometry, *, max_memory: int | None = None, finite: bool = True,
           dtype: DType | str = "float64") -> Chunks:
    """The chunks that compute ``geo`` within ``max_memory`` bytes of working memory (default:
    :func:`default_max_memory`): the whole layer if it fits, else chunks of images, then of
    groups (one image), then of output channels (one image, one group). Within the budget, the
    chunks are smaller still where that keeps the working memory to W and the output's values in
    float64 plus 16 MiB. BudgetError when one output channel of one image does not fit the
    budget. Pure arithmetic: nothing is allocated."""
    dt = DTYPES[dtype] if isinstance(dtype, str) else dtype
    budget = default_max_memory() if max_memory is None else int(max_memory)
    stacked = phases.use_stacked(geo, finite)
    n, groups, mg = geo.x_shape[0], geo.group, geo.w_shape[1]

    def need(images: int, g: int, m: int) -> int:
        return working_bytes(_part(geo, images, g, m), stacked=stacked, dtype=dt)

    if n == 0:
        return Chunks(1, groups, mg, need(0, groups, mg), stacked, budget)
    for limit in dict.fromkeys((min(budget, _preferred_bytes(geo, dt)), budget)):
        if images := _largest(lambda k, limit=limit: need(k, groups, mg) <= limit, n):
            return Chunks(images, groups, mg, need(images, groups, mg), stacked, budget)
        if g := _largest(lambda k, limit=limit: need(1, k, mg) <= limit, groups):
            return Chunks(1, g, mg, need(1, g, mg), stacked, budget)
        if m := _largest(lambda k, limit=limit: need(1, 1, k) <= limit, mg):
            return Chunks(1, 1, m, need(1, 1, m), stacked, budget)
    what = f"the smallest chunk (one image, one output channel: output {[1, 1, *geo.output_shape[2:]]})"
    raise BudgetError(need(1, 1, 1), budget, what)


def _compute(X, W, B, geo: Geometry, dtype: DType, out: np.ndarray, max_memory: int | None) -> np.ndarray:
    """Fill ``out`` with the layer's values, rounded to ``dtype``, chunk by chunk (see chunks()).

    Every output element is summed by the same products whatever the chunking: a chunk cuts
    only images and output channels, never the sum over input channels and taps.
    """
    ch = chunks(geo, max_memory=max_memory, finite=phases.finite(X, W, B), dtype=dtype)
    n, groups, mg = geo.x_shape[0], geo.group, geo.w_shape[1]
    cg = geo.x_shape[1] // groups
    if ch.count(geo) == 1:
        parts, plans = phases.accumulate(X, W, B, geo, ch.stacked)
        phases.assemble(parts, plans, geo, dtype, out)
        return out
    bias = None if B is None else B.reshape(groups, mg)
    for n0 in range(0, n, ch.images):
        images = min(ch.images, n - n0)
        for g0 in range(0, groups, ch.groups):
            gs = min(ch.groups, groups - g0)
            for m0 in range(0, mg, ch.channels):
                ms = min(ch.channels, mg - m0)
                part = _part(geo, images, gs, ms)
                x = X[n0 : n0 + images, g0 * cg : (g0 + gs) * cg]
                w = W[g0 * cg : (g0 + gs) * cg, m0 : m0 + ms]
                b = None if bias is None else bias[g0 : g0 + gs, m0 : m0 + ms].reshape(-1)
                channels = slice(g0 * mg + m0, g0 * mg + m0 + gs * ms)
                parts, plans = phases.accumulate(x, w, b, part, ch.stacked)
                phases.assemble(parts, plans, part, dtype, out[n0 : n0 + images, channels])
    return out


def conv_transpose_float64(
    X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geo: Geometry, *, max_memory: int | None = None
) -> np.ndarray:
    """The output of ``geo`` on float64 operands, in float64 (no rounding to X's dtype).

    ``max_memory`` bounds the working memory beyond the operands and the output (see chunks()).
    """
    out = np.empty(geo.output_shape, dtype=np.float64)
    return _compute(X, W, B, geo, DTYPES["float64"], out, max_memory)


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
    max_memory: int | None = None,
) -> np.ndarray:
    """ONNX ConvTranspose: Y = X (*)^T W + B, N-d, any group, exactly as the spec defines it.

    X, W (and B) must share one dtype: float16, float32, float64, or bfloat16 (opset >= 22).
    The result has X's dtype and is the float64 result rounded once. ``readings`` selects
    a non-default reading of an ambiguity (``{"negative-total-padding": "clamp"}``); see
    :data:`opref.readings.AMBIGUITIES`. Anything on the must-reject list raises SpecError.

    ``max_memory`` (bytes; default a quarter of this machine's memory) bounds the working memory
    beyond the operands and the output: a larger layer is computed in chunks of images, groups or
    output channels, with the same values; BudgetError when even one output channel of one image
    does not fit.
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
        return _compute(X, W, B, geo, dt, np.empty(geo.output_shape, dtype=dt.numpy), max_memory)

