"""The fast path's machinery (spec notes section 2): output positions split by their residue
modulo the stride ("phases"), each phase a stride-1 correlation computed by BLAS from a stack of
shifted copies of X (the stacked path) or tap by tap into the output (the scatter path), in
float64, and the phases assembled into the strided output. :mod:`opref.reference` plans the
chunks within the memory budget and calls :func:`accumulate` and :func:`assemble`."""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from opref.dtypes import DType, round_from_float64
from opref.geometry import Axis, Geometry

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
def stack_plan(axes: tuple[Axis, ...]) -> _Stack:
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


def stacked_layout(geo: Geometry) -> _StackedLayout:
    n, groups, cg = geo.x_shape[0], geo.group, geo.x_shape[1] // geo.group
    st = stack_plan(geo.axes)
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
    st = stack_plan(geo.axes)
    lay = stacked_layout(geo)
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


def scattered_bytes(geo: Geometry) -> int:
    """float64 working memory of the scatter path (beyond the operands and the output)."""
    n, c = geo.x_shape[:2]
    mg, ntaps, spatial = geo.w_shape[1], math.prod(geo.kernel_shape), math.prod(geo.x_shape[2:])
    per_image = ntaps * mg * spatial * 8
    batch = n if n * per_image <= _STACK_BYTES else max(1, min(n, _CACHE_BYTES // max(1, per_image)))
    cg = c // geo.group
    phases, x_cn = math.prod(geo.output_shape), c * n * spatial
    return 8 * (phases + x_cn + ntaps * mg * batch * spatial + cg * mg * ntaps)


def finite(*arrays: np.ndarray | None) -> bool:
    return all(a is None or bool(np.isfinite(a).all()) for a in arrays)


# The stacked path lays W out again per product (a transposed copy), the scatter path adds each
# tap's block into the output; where W has at least this many times the output's elements, the
# scatter path is faster (measured, 1 thread: HiFi-GAN up1 92 against 121 ms, U-Net up-conv 268
# against 284 ms; the 3-D U-Net, W 1/250 of the output, 631 against 1195 ms).
_W_PER_OUTPUT = 1.0


def use_stacked(geo: Geometry, finite: bool) -> bool:
    small_w = math.prod(geo.w_shape) < _W_PER_OUTPUT * math.prod(geo.output_shape)
    return finite and small_w and stack_plan(geo.axes).waste <= _MAX_WASTE


def accumulate(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geo: Geometry, stacked: bool):
    """float64 phase buffers {phase: array (group, M/group, N, count...)} and the axis plans.

    X, W and B may have any float dtype; they are widened to float64 on the way in. ``stacked``
    (finite operands only) picks the stacked path, else the scatter path.
    """
    return _stacked(X, W, B, geo) if stacked else _scattered(X, W, B, geo)


def assemble(phases, plans, geo: Geometry, dtype: DType, out: np.ndarray) -> None:
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


