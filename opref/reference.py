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
import functools
import itertools
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from opref.dtypes import DTYPES, DType, dtype_of, round_from_float64
from opref.errors import BudgetError, SpecError
from opref.geometry import Axis, Geometry, geometry

# Scratch memory kept between calls (per thread, up to this many bytes): fresh pages cost
# a page fault on first touch, which for a product's result was a third of the run time.
_SCRATCH_LIMIT = 64 * 2**20
# The stack is built in chunks of at most this many bytes (columns, at least _MIN_COLUMNS of
# them, and groups), so its size does not grow with the number of taps times the input.
_STACK_BYTES = 16 * 2**20
_MIN_COLUMNS = 512
# The stacked path computes every output position from every tap of its phase, so where
# the output is much larger than the input (large dilation, large kernel on a small input)
# it multiplies mostly border zeros; past this waste the scatter path is faster (measured:
# waste 4, dilation 8 on 32x32, 3x slower; waste 1.9, bench shape 3, 2x faster).
_MAX_WASTE = 2.5
# The scatter path takes images in batches whose product fits in cache.
_CACHE_BYTES = 2**20
_scratch = threading.local()


def _workspace(slot: str, shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float64 array of ``shape``, reusing this thread's buffer ``slot``."""
    size = math.prod(shape)
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

    Output position o has residue (o + pad_begin) mod stride. Only residues that some output
    position has get a phase, at most min(stride, output) of them, numbered by increasing
    residue: phase p holds the outputs ``first[p], first[p] + stride, ...`` (``count[p]`` of
    them). Tap k of input i lands in phase ``tap_phase[k]`` (-1: no output position has its
    residue) at index ``i + tap_shift[k]``.
    """

    first: tuple[int, ...]
    count: tuple[int, ...]
    tap_phase: tuple[int, ...]
    tap_shift: tuple[int, ...]
    input: int

    def window(self, tap: int) -> tuple[slice, slice] | None:
        """(input slice, phase-buffer slice) of ``tap``, clipped to the output; None if empty."""
        phase = self.tap_phase[tap]
        if phase < 0:
            return None
        shift, count = self.tap_shift[tap], self.count[phase]
        lo, hi = max(0, -shift), min(self.input, count - shift)
        if hi <= lo:
            return None
        return slice(lo, hi), slice(lo + shift, hi + shift)

    def reaching(self, phase: int) -> tuple[int, ...]:
        """The taps that put something into ``phase``, by decreasing shift."""
        taps = [k for k, p in enumerate(self.tap_phase) if p == phase and self.window(k)]
        return tuple(sorted(taps, key=lambda k: -self.tap_shift[k]))


def _plan(ax: Axis) -> _AxisPlan:
    s, pb = ax.stride, ax.pad_begin
    # The first min(s, O) output positions have distinct residues, and they are all the
    # residues the output has: a stride far beyond the output costs nothing.
    first = tuple(sorted(range(min(s, ax.output)), key=lambda f: (f + pb) % s))
    count = tuple(-(-(ax.output - f) // s) for f in first)
    phase_of = {(f + pb) % s: p for p, f in enumerate(first)}
    phase, shift = [], []
    for q in (k * ax.dilation for k in range(ax.kernel)):
        p = phase_of.get(q % s, -1)
        phase.append(p)
        # o = i*s + q - pad_begin = first[p] + s*(i + shift); the division is exact.
        shift.append((q - pb - first[p]) // s if p >= 0 else 0)
    return _AxisPlan(first, count, tuple(phase), tuple(shift), ax.input)


def _phase_keys(plans: Sequence[_AxisPlan]) -> list[tuple[int, ...]]:
    """The phases (one per axis): each holds at least one output position."""
    return list(itertools.product(*(range(len(p.count)) for p in plans)))


@dataclass(frozen=True)
class _Product:
    """One BLAS product of the stacked path: the phases that read the same run of blocks.

    It multiplies the stack's first ``blocks`` blocks, from column ``base`` on, by the
    weights of the phases ``keys``, whose output rows follow each other. Phase ``keys[i]``
    reads from column ``bases[i]``, so its values start ``bases[i] - base`` columns into its
    rows; the product is ``span`` columns wider than one phase to cover all of them.
    ``taps[i][b]`` is the flat kernel tap whose weights meet block b in phase ``keys[i]``;
    -1 means zero weights (a block of the run that this phase has no tap for).
    """

    blocks: int
    keys: tuple[tuple[int, ...], ...]
    bases: tuple[int, ...]
    taps: tuple[tuple[int, ...], ...]

    @property
    def base(self) -> int:
        return min(self.bases)

    @property
    def span(self) -> int:
        return max(self.bases) - self.base


@dataclass(frozen=True)
class _Stack:
    """The stacked path's layout for one set of axes (cached: it depends on no values).

    X sits in a flat buffer of extent ``extent`` per axis at index x + ``border[axis]``;
    block b of the stack is that buffer moved by ``offsets[b]``. Blocks run over every
    combination of relative tap offsets, the last axis fastest; a phase uses a run of them
    from block 0, with zero weights for the blocks in the run it has no tap for.
    ``idle`` are the phases that no tap reaches: they hold the bias alone.
    """

    plans: tuple[_AxisPlan, ...]
    extent: tuple[int, ...]
    border: tuple[int, ...]
    offsets: tuple[int, ...]
    products: tuple[_Product, ...]
    idle: tuple[tuple[int, ...], ...]
    waste: float  # multiply-adds done per one the scatter path does (zero weights, border)
    reach: int  # how far past a column any product reads: the largest base of any phase
    span: int  # the widest product's extra columns

    @property
    def keys(self) -> list[tuple[int, ...]]:
        """Every phase, in the order of the phase buffers."""
        return [k for p in self.products for k in p.keys] + list(self.idle)

    @property
    def starts(self) -> list[int]:
        """Per phase (in the order of ``keys``), the column of its rows where its values start."""
        return [b - p.base for p in self.products for b in p.bases] + [0] * len(self.idle)


@functools.lru_cache(maxsize=128)
def _stack(axes: tuple[Axis, ...]) -> _Stack:
    """The stacked path's layout for ``axes``: buffer extents, blocks, products (see _Stack)."""
    plans = tuple(_plan(ax) for ax in axes)
    keys = _phase_keys(plans)
    reaching = [{k: p.reaching(k) for k in {key[a] for key in keys}} for a, p in enumerate(plans)]
    shifts = [
        [p.tap_shift[k] for taps in r.values() for k in taps] for p, r in zip(plans, reaching, strict=True)
    ]
    border = tuple(max(s, default=0) for s in shifts)
    extent = tuple(
        max(p.count) + b - min(s, default=0) for p, b, s in zip(plans, border, shifts, strict=True)
    )
    step = [math.prod(extent[a + 1 :]) for a in range(len(axes))]
    # Within a phase, successive taps are stride/gcd apart, so their shifts differ by this:
    gap = [ax.dilation // math.gcd(ax.stride, ax.dilation) for ax in axes]
    most = [max(map(len, r.values()), default=1) or 1 for r in reaching]
    blocks = list(itertools.product(*(range(n) for n in most)))
    offsets = tuple(sum(i * g * st for i, g, st in zip(b, gap, step, strict=True)) for b in blocks)
    kernel = tuple(ax.kernel for ax in axes)
    runs, idle = [], []
    for key in keys:
        taps = [reaching[a][k] for a, k in enumerate(key)]
        if not all(taps):
            idle.append(key)
            continue
        # The blocks it uses: a run from block 0, to the end of the first axis with two taps.
        split = next((a for a, t in enumerate(taps) if len(t) > 1), len(axes) - 1)
        used = len(taps[split]) * math.prod(most[split + 1 :])
        flat = tuple(
            int(np.ravel_multi_index([t[i] for t, i in zip(taps, b, strict=True)], kernel))
            if all(i < len(t) for t, i in zip(taps, b, strict=True))
            else -1
            for b in blocks[:used]
        )
        base = sum((border[a] - plans[a].tap_shift[t[0]]) * step[a] for a, t in enumerate(taps))
        runs.append((base, used, key, flat))
    # Phases that read the same blocks share one product, their weight rows stacked: one tall
    # product beats several flat ones, most of all when M/group is small (measured, bench
    # shape 1: four products of 32 rows 3.1 ms, one of 128 rows 2.8 ms). Where they read from
    # different columns, the product is as much wider, and each phase's values start later.
    shared: dict[int, list[tuple]] = {}
    for run in runs:
        shared.setdefault(run[1], []).append(run)
    products = []
    for used, members in shared.items():
        bases, _, phases, taps = zip(*members, strict=True)
        products.append(_Product(used, phases, bases, taps))
    products = tuple(products)
    # Per image (an upper bound: the span is paid once per product, not once per image).
    done = sum(len(p.keys) * p.blocks * (math.prod(extent) + p.span) for p in products)
    needed = math.prod(kernel) * math.prod(ax.input for ax in axes)
    reach = max((max(p.bases) for p in products), default=0)
    span = max((p.span for p in products), default=0)
    return _Stack(plans, extent, border, offsets, products, tuple(idle), done / max(1, needed), reach, span)


@dataclass(frozen=True)
class _StackedLayout:
    """Sizes of the stacked path's buffers for one geometry (see _stacked)."""

    columns: int  # product columns: every position of the flat buffer, every image
    spill: int  # the flat buffer's zero tail beyond its last image
    rows: int  # per group: a row of ones (the bias's partner), then the blocks, C/group rows each
    batch: int  # groups per stack chunk
    width: int  # columns per stack chunk
    whole: bool  # one chunk: X goes straight into block 0 of the stack, no separate flat copy

    def nbytes(self, geo: Geometry, st: _Stack) -> int:
        """float64 working memory of the stacked path (beyond the operands and the output)."""
        groups, mg, cg = geo.group, geo.w_shape[1], geo.x_shape[1] // geo.group
        if self.whole:
            stack, flat = groups * self.rows * (self.columns + self.spill), 0
        else:
            stack = self.batch * self.rows * (self.width + st.reach)
            flat = groups * cg * (self.columns + self.spill)
        space = groups * len(st.keys) * mg * (self.columns + st.span)
        weights = sum(groups * len(p.keys) * mg * (1 + p.blocks * cg) for p in st.products)
        gather = max((groups * cg * mg * p.blocks for p in st.products), default=0)  # one phase's taps
        return 8 * (stack + flat + space + weights + gather)


def _stacked_layout(geo: Geometry) -> _StackedLayout:
    n, groups, cg = geo.x_shape[0], geo.group, geo.x_shape[1] // geo.group
    st = _stack(geo.axes)
    columns = n * math.prod(st.extent)
    spill = st.reach + max(st.offsets)
    rows = 1 + len(st.offsets) * cg
    if groups * rows * (columns + spill) * 8 <= _STACK_BYTES:
        return _StackedLayout(columns, spill, rows, groups, max(1, columns), True)
    # chunks of columns, and of groups where even one column chunk of all is too much
    width = min(columns, max(_MIN_COLUMNS, _STACK_BYTES // (8 * rows) - st.reach))
    batch = max(1, min(groups, _STACK_BYTES // (8 * rows * (width + st.reach))))
    return _StackedLayout(columns, spill, rows, batch, width, False)


def _stacked_weights(W: np.ndarray, B: np.ndarray | None, geo: Geometry, st: _Stack) -> list[np.ndarray]:
    """Per product, its weights laid out straight from W into float64: rows (phase, M/group),
    columns the bias's, then (block, C/group), the stack's order. No other copy of W is made."""
    groups, mg = geo.group, geo.w_shape[1]
    cg = geo.x_shape[1] // groups
    w = W.reshape(groups, cg, mg, -1)
    weights = []
    for pr in st.products:
        wp = np.empty((groups, len(pr.keys), mg, 1 + pr.blocks * cg))
        wp[..., 0] = 0.0 if B is None else B.reshape(groups, 1, mg)
        blocks = wp[..., 1:].reshape(groups, len(pr.keys), mg, pr.blocks, cg)
        for i, taps in enumerate(pr.taps):
            index = np.array(taps)
            # (G, cg, mg, blocks) -> (G, mg, blocks, cg); tap -1 gets zero weights
            blocks[:, i] = w[..., np.maximum(index, 0)].transpose(0, 2, 3, 1)
            blocks[:, i, :, index < 0] = 0.0
        weights.append(wp.reshape(groups, len(pr.keys) * mg, 1 + pr.blocks * cg))
    return weights


def _stacked(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geo: Geometry):
    """float64 phase buffers {phase: array (group, M/group, N, count...)} of finite operands."""
    n, c = geo.x_shape[:2]
    groups, mg = geo.group, geo.w_shape[1]
    cg = c // groups
    st = _stack(geo.axes)
    lay = _stacked_layout(geo)
    columns, spill, rows, batch, width = lay.columns, lay.spill, lay.rows, lay.batch, lay.width

    if lay.whole:  # X goes straight into block 0, the other blocks copy it
        copied = 1
        stack = _workspace("stack", (groups, rows, columns + spill))
        flat = stack[:, 1 : 1 + cg]
    else:
        copied = 0
        stack = _workspace("stack", (batch, rows, width + st.reach))
        flat = _workspace("x", (groups, cg, columns + spill))
    stack[:, 0] = 1.0
    inside = tuple(
        slice(max(0, -b), max(0, -b, min(ax.input, e - b)))
        for ax, b, e in zip(geo.axes, st.border, st.extent, strict=True)
    )
    moved = tuple(slice(s.start + b, s.stop + b) for s, b in zip(inside, st.border, strict=True))
    grid = flat[:, :, :columns].reshape(groups, cg, n, *st.extent)
    x = X.reshape(n, groups, cg, *geo.x_shape[2:]).transpose(1, 2, 0, *range(3, 3 + len(geo.axes)))
    lead = (slice(None),) * 3
    grid[(*lead, *moved)] = x[(*lead, *inside)]
    for a, where in enumerate(moved):  # zeros around X: one slab before and one after, per axis
        axis = (*lead, *(slice(None),) * a)
        grid[(*axis, slice(0, where.start))] = 0.0
        grid[(*axis, slice(where.stop, None))] = 0.0
    flat[:, :, columns:] = 0.0  # feeds only discarded columns: keep stale NaN or subnormals out

    bias = 0.0 if B is None else B.astype(np.float64).reshape(groups, 1, mg, 1)
    keys = st.keys
    space = _workspace("phases", (groups, len(keys), mg, columns + st.span))
    phases = {}
    for i, (k, start) in enumerate(zip(keys, st.starts, strict=True)):
        counts = (slice(0, p.count[j]) for p, j in zip(st.plans, k, strict=True))
        rows_i = space[:, i, :, start : start + columns]
        phases[k] = rows_i.reshape(groups, mg, n, *st.extent)[(..., *counts)]
    space[:, len(keys) - len(st.idle) :] = bias  # phases no tap reaches: the bias alone
    # Without a bias, the weights' first column and the stack's row of ones are left out.
    first = 0 if B is not None else 1
    weights = [wp[:, :, first:] for wp in _stacked_weights(W, B, geo, st)]

    blocks = stack[:, 1:].reshape(batch, len(st.offsets), cg, -1)
    for g0 in range(0, groups, batch):
        part = slice(g0, min(groups, g0 + batch))
        size = part.stop - g0
        for q0 in range(0, columns, width):
            wide = min(width, columns - q0)
            for b in range(copied, len(st.offsets)):
                off = q0 + st.offsets[b]
                blocks[:size, b, :, : wide + st.reach] = flat[part, :, off : off + wide + st.reach]
            row = 0
            for pr, wp in zip(st.products, weights, strict=True):
                # A product wider than one phase recomputes `span` columns of the next chunk.
                end = pr.base + wide + pr.span
                operand = stack[:size, first : 1 + pr.blocks * cg, pr.base : end]
                result = space[part, row : row + len(pr.keys)].reshape(size, len(pr.keys) * mg, -1)
                np.matmul(wp[part], operand, out=result[:, :, q0 : q0 + wide + pr.span])
                row += len(pr.keys)
    return phases, st.plans


def _scattered(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geo: Geometry):
    """float64 phase buffers {phase: array (group, M/group, N, count...)}: any operands, inf, NaN."""
    n, c = geo.x_shape[:2]
    cg, mg, m = c // geo.group, geo.w_shape[1], geo.output_shape[1]
    kernel = geo.kernel_shape
    ntaps = int(np.prod(kernel))
    plans = [_plan(ax) for ax in geo.axes]
    keys = _phase_keys(plans)
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
    per_image = ntaps * mg * spatial * 8
    batch = max(1, min(n, _CACHE_BYTES // max(1, per_image)))
    if n * per_image <= _STACK_BYTES:
        # All images in one product: each product reads all of W, and where W is large (DCGAN
        # G2: 64 MiB against 8 MiB of product) one pass over it beats a cache-resident result.
        batch = n
    for g in range(geo.group):
        # W's own layout, transposed in place (BLAS reads it as such): rows (M/group, tap). The
        # float64 copy is the only one; laying it out tap-major cost more than the product on
        # layers with a large W (measured: DCGAN G2, HiFi-GAN up1).
        w_g = W[g * cg : (g + 1) * cg].astype(np.float64).reshape(cg, mg * ntaps).T
        channels = slice(g * mg, (g + 1) * mg)
        for n0 in range(0, n, batch):
            nb = min(batch, n - n0)
            cols = _workspace("cols", (ntaps * mg, nb * spatial))
            np.matmul(w_g, x_cn[g * cg : (g + 1) * cg, n0 : n0 + nb].reshape(cg, nb * spatial), out=cols)
            taps = cols.reshape(mg, ntaps, nb, *geo.x_shape[2:])
            images = slice(n0, n0 + nb)
            for t, key, src, dst in windows:
                phases[key][(channels, images, *dst)] += taps[(slice(None), t, slice(None), *src)]
    grouped = {k: b.reshape(geo.group, mg, *b.shape[1:]) for k, b in phases.items()}
    return grouped, plans


def _scattered_bytes(geo: Geometry) -> int:
    """float64 working memory of the scatter path (beyond the operands and the output)."""
    n, c = geo.x_shape[:2]
    mg, ntaps, spatial = geo.w_shape[1], math.prod(geo.kernel_shape), math.prod(geo.x_shape[2:])
    per_image = ntaps * mg * spatial * 8
    batch = n if n * per_image <= _STACK_BYTES else max(1, min(n, _CACHE_BYTES // max(1, per_image)))
    cg = c // geo.group
    phases, x_cn = math.prod(geo.output_shape), c * n * spatial
    return 8 * (phases + x_cn + ntaps * mg * batch * spatial + cg * mg * ntaps)


def _finite(*arrays: np.ndarray | None) -> bool:
    return all(a is None or bool(np.isfinite(a).all()) for a in arrays)


# The stacked path lays W out again per product (a transposed copy), the scatter path adds each
# tap's block into the output; where W has at least this many times the output's elements, the
# scatter path is faster (measured, 1 thread: HiFi-GAN up1 92 against 121 ms, U-Net up-conv 268
# against 284 ms; the 3-D U-Net, W 1/250 of the output, 631 against 1195 ms).
_W_PER_OUTPUT = 1.0


def _use_stacked(geo: Geometry, finite: bool) -> bool:
    small_w = math.prod(geo.w_shape) < _W_PER_OUTPUT * math.prod(geo.output_shape)
    return finite and small_w and _stack(geo.axes).waste <= _MAX_WASTE


def _accumulate(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geo: Geometry, stacked: bool):
    """float64 phase buffers {phase: array (group, M/group, N, count...)} and the axis plans.

    X, W and B may have any float dtype; they are widened to float64 on the way in. ``stacked``
    (finite operands only) picks the stacked path, else the scatter path.
    """
    return _stacked(X, W, B, geo) if stacked else _scattered(X, W, B, geo)


def _assemble(phases, plans, geo: Geometry, dtype: DType, out: np.ndarray) -> None:
    """Interleave the phase buffers into ``out`` (N, M, spatial...), rounded to ``dtype``."""
    n, m, *spatial = geo.output_shape
    grouped = out.reshape(n, geo.group, m // geo.group, *spatial)
    order = (2, 0, 1, *range(3, 3 + len(spatial)))  # (group, M/group, N, ...) -> (N, group, M/group, ...)
    for key, buf in phases.items():
        # A stride beyond the output gives one position per phase; numpy needs a step it can
        # index with, and any step of at least the output's size takes just that one.
        where = tuple(
            slice(p.first[k], None, min(ax.stride, ax.output))
            for p, k, ax in zip(plans, key, geo.axes, strict=True)
        )
        if dtype.name == "bfloat16":
            buf = round_from_float64(buf, dtype)
        # numpy's float64 -> float16/float32 assignment rounds once, to nearest even.
        grouped[(slice(None), slice(None), slice(None), *where)] = buf.transpose(order)


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
        st = _stack(geo.axes)
        need = _stacked_layout(geo).nbytes(geo, st)
        largest = math.prod(geo.output_shape)  # a bound on one phase buffer's size
    else:
        need = _scattered_bytes(geo)
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
    stacked = _use_stacked(geo, finite)
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
    ch = chunks(geo, max_memory=max_memory, finite=_finite(X, W, B), dtype=dtype)
    n, groups, mg = geo.x_shape[0], geo.group, geo.w_shape[1]
    cg = geo.x_shape[1] // groups
    if ch.count(geo) == 1:
        phases, plans = _accumulate(X, W, B, geo, ch.stacked)
        _assemble(phases, plans, geo, dtype, out)
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
                phases, plans = _accumulate(x, w, b, part, ch.stacked)
                _assemble(phases, plans, part, dtype, out[n0 : n0 + images, channels])
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
