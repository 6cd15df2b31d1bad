"""opref.conv_transpose against the seed examples, ONNX's backend cases and a direct loop."""

from __future__ import annotations

import warnings
from unittest import mock

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import opref
import opref.phases
import opref.reference
from opref.direct import direct_conv_transpose, direct_pads
from opref.dtypes import DTYPES
from opref.model import node_attributes

# --- the seed document's examples (shared/seed), expected arrays as printed there ---------

SEED_X = np.array([[0.0, 1.0], [2.0, 3.0]])
SEED_X9 = np.arange(9.0).reshape(1, 1, 3, 3)
SEED_K4 = np.arange(4.0).reshape(1, 1, 2, 2)

SEED_CASES = {
    "basic": (SEED_X.reshape(1, 1, 2, 2), SEED_X.reshape(1, 1, 2, 2), {}, [[0, 0, 1], [0, 4, 6], [4, 12, 9]]),
    "stride2": (
        SEED_X9,
        SEED_K4,
        {"strides": [2, 2]},
        [
            [0, 0, 0, 1, 0, 2],
            [0, 0, 2, 3, 4, 6],
            [0, 3, 0, 4, 0, 5],
            [6, 9, 8, 12, 10, 15],
            [0, 6, 0, 7, 0, 8],
            [12, 18, 14, 21, 16, 24],
        ],
    ),
    "stride2_pad1": (
        SEED_X9,
        SEED_K4,
        {"strides": [2, 2], "pads": [1, 1, 1, 1]},
        [[0, 2, 3, 4], [3, 0, 4, 0], [9, 8, 12, 10], [6, 0, 7, 0]],
    ),
    "stride2_dilation2": (
        SEED_X9,
        SEED_K4,
        {"strides": [2, 2], "dilations": [2, 2]},
        [
            [0, 0, 0, 0, 1, 0, 2],
            [0] * 7,
            [0, 0, 5, 0, 11, 0, 11],
            [0] * 7,
            [6, 0, 23, 0, 29, 0, 23],
            [0] * 7,
            [12, 0, 32, 0, 37, 0, 24],
        ],
    ),
    "two_channels": (
        np.stack([SEED_X, SEED_X]).reshape(1, 2, 2, 2),
        np.stack([SEED_X, SEED_X]).reshape(2, 1, 2, 2),
        {},
        [[0, 0, 2], [0, 8, 12], [8, 24, 18]],
    ),
}


@pytest.mark.parametrize("name", sorted(SEED_CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_seed_examples(name, dtype):
    x, w, attrs, expected = SEED_CASES[name]
    dt = DTYPES[dtype].numpy
    y = opref.conv_transpose(x.astype(dt), w.astype(dt), **attrs)
    assert y.dtype == dt
    np.testing.assert_array_equal(
        y.astype(np.float64)[0, 0],
        np.array(expected, dtype=np.float64),
        err_msg=f"seed {name} {attrs} {dtype}",
    )


# --- ONNX's own backend cases, from the installed onnx package ----------------------------


def _onnx_cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        cases = collect_testcases("ConvTranspose")
    out = []
    for case in cases:
        node = case.model.graph.node[0]
        attrs = node_attributes(node)
        inputs, outputs = case.data_sets[0]
        out.append(pytest.param(inputs, outputs[0], attrs, id=case.name))
    return out


ONNX_CASES = _onnx_cases()


def test_all_eleven_onnx_cases_found():
    assert len(ONNX_CASES) == 11, [p.id for p in ONNX_CASES]


@pytest.mark.parametrize(("inputs", "expected", "attrs"), ONNX_CASES)
def test_onnx_backend_case(inputs, expected, attrs):
    y = opref.conv_transpose(*inputs, **attrs)
    assert y.dtype == expected.dtype
    np.testing.assert_array_equal(y, expected, err_msg=f"attrs={attrs}")


# --- property test against the direct loop ------------------------------------------------


@st.composite
def configs(draw):
    r = draw(st.integers(1, 3))
    small = r == 3
    n = draw(st.integers(1, 2))
    group = draw(st.integers(1, 3))
    cg, mg = draw(st.integers(1, 2)), draw(st.integers(1, 2 if small else 3))
    x_sp = [draw(st.integers(1, 3 if small else 5)) for _ in range(r)]
    k = [draw(st.integers(1, 2 if small else 3)) for _ in range(r)]
    s = [draw(st.integers(1, 3)) for _ in range(r)]
    d = [draw(st.integers(1, 3)) for _ in range(r)]
    a = [draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d, strict=True)]
    attrs = {"strides": s, "dilations": d, "group": group}
    if draw(st.booleans()):
        attrs["output_padding"] = a
    if draw(st.booleans()):
        attrs["kernel_shape"] = k
    mode = draw(
        st.sampled_from(
            ["NOTSET", "pads", "output_shape", "SAME_UPPER", "SAME_LOWER", "VALID", "output_shape+SAME_UPPER"]
        )
    )
    if mode == "pads":
        attrs["pads"] = [draw(st.integers(0, 3)) for _ in range(2 * r)]
    elif mode.startswith("output_shape"):
        attrs["output_shape"] = [draw(st.integers(1, 14)) for _ in range(r)]
        if "+" in mode:
            attrs["auto_pad"] = "SAME_UPPER"
    elif mode != "NOTSET":
        attrs["auto_pad"] = mode
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return (n, cg * group, *x_sp), (cg * group, mg, *k), bias, attrs, dtype, seed


def _grid_values(rng, shape, dtype):
    # Multiples of 1/4 of at most 4 significant bits: every float64 sum below is exact and
    # fits float32, so rounding the fsum through float32 rounds once for every dtype.
    ints = rng.randint(-15, 16, size=shape)
    return (ints / 4.0).astype(DTYPES[dtype].numpy)


def _check_against_direct_loop(cfg, specials: bool = False):
    x_shape, w_shape, bias, attrs, dtype, seed = cfg
    rng = np.random.RandomState(seed)
    X, W = _grid_values(rng, x_shape, dtype), _grid_values(rng, w_shape, dtype)
    B = _grid_values(rng, (w_shape[1] * attrs["group"],), dtype) if bias else None
    if specials:  # one inf, -inf or NaN somewhere in X, W or B
        target = [X, W] + ([B] if bias else [])
        a = target[rng.randint(len(target))]
        a.flat[rng.randint(a.size)] = [np.inf, -np.inf, np.nan][rng.randint(3)]
    plain = {k: v for k, v in attrs.items() if k not in ("group", "kernel_shape")}
    outs = direct_pads(x_shape, w_shape, **plain)[2]
    if min(outs) < 1:
        with pytest.raises(opref.SpecError):
            opref.conv_transpose(X, W, B, **attrs)
        return
    y = opref.conv_transpose(X, W, B, **attrs)
    expected = direct_conv_transpose(X, W, B, **attrs).astype(np.float32).astype(DTYPES[dtype].numpy)
    assert y.dtype == X.dtype
    assert y.shape == expected.shape, f"{x_shape} {w_shape} {attrs}"
    # Compared as float64 (exact for every dtype): numpy's testing sees no NaN in bfloat16.
    where = f"X{x_shape} W{w_shape} B={bias} {attrs} {dtype}"
    np.testing.assert_array_equal(y.astype(np.float64), expected.astype(np.float64), err_msg=where)


@given(configs())
def test_matches_direct_loop(cfg):
    _check_against_direct_loop(cfg)


# The two paths of opref.reference, each forced (small shapes mostly take the scatter path).
STACKED = mock.patch.multiple(opref.phases, _MAX_WASTE=float("inf"), _W_PER_OUTPUT=float("inf"))
SCATTER = mock.patch.object(opref.phases, "_MAX_WASTE", -1.0)


@given(configs())
def test_stacked_path_matches_direct_loop(cfg):
    with STACKED:
        _check_against_direct_loop(cfg)


@given(configs())
def test_stacked_path_matches_direct_loop_in_column_chunks(cfg):
    # Many narrow chunks instead of the one chunk small inputs get.
    with (
        STACKED,
        mock.patch.object(opref.phases, "_STACK_BYTES", 1),
        mock.patch.object(opref.phases, "_MIN_COLUMNS", 3),
    ):
        _check_against_direct_loop(cfg)


@given(configs())
def test_scatter_path_matches_direct_loop(cfg):
    with SCATTER:
        _check_against_direct_loop(cfg)


@given(configs())
def test_matches_direct_loop_with_inf_or_nan(cfg):
    # Border zeros must never meet an infinite weight: 0 * inf is a NaN the spec's sum lacks.
    with STACKED:  # even where the stacked path would be taken for finite values
        _check_against_direct_loop(cfg, specials=True)


def test_result_is_float64_sum_rounded_once():
    # 1 + 2**-9 + 2**-30 lies above the bfloat16 midpoint 1 + 2**-8 only by 2**-30; rounding
    # through float32 would land on the midpoint and then tie to 1.0.
    X = np.array([1.0, 2.0**-8, 2.0**-30], dtype=np.float32).reshape(1, 3, 1)
    W = np.ones((3, 1, 1), dtype=np.float32)
    assert float(opref.conv_transpose(X, W)[0, 0, 0]) == np.float32(1 + 2.0**-8 + 2.0**-30)
    Xb, Wb = X.astype(ml_dtypes.bfloat16), W.astype(ml_dtypes.bfloat16)
    assert float(Xb[0, 2, 0]) == 2.0**-30
    y = opref.conv_transpose(Xb, Wb)
    assert float(y[0, 0, 0]) == 1 + 2.0**-7, float(y[0, 0, 0])


def test_infinities_and_nans_propagate():
    # IEEE arithmetic over every term of the scatter sum: inf*0 and inf-inf are NaN.
    X = np.array([np.inf, 1.0, 2.0], dtype=np.float32).reshape(1, 1, 3)
    W = np.array([1.0, 2.0], dtype=np.float32).reshape(1, 1, 2)
    np.testing.assert_array_equal(opref.conv_transpose(X, W)[0, 0], [np.inf, np.inf, 4.0, 4.0])
    X = np.array([-np.inf, np.inf, np.nan], dtype=np.float32).reshape(1, 1, 3)
    W = np.array([1.0, 1.0], dtype=np.float32).reshape(1, 1, 2)
    y = opref.conv_transpose(X, W)[0, 0]
    assert y[0] == -np.inf and np.isnan(y[1:]).all(), y


def test_group_bias_is_per_output_channel():
    X = np.ones((1, 4, 1), dtype=np.float32)
    W = np.ones((4, 2, 1), dtype=np.float32)
    B = np.array([10, 20, 30, 40], dtype=np.float32)
    y = opref.conv_transpose(X, W, B, group=2)
    np.testing.assert_array_equal(y[0, :, 0], [12, 22, 32, 42])


def test_rank_five_input():
    rng = np.random.RandomState(3)
    X = _grid_values(rng, (1, 2, 2, 1, 2, 2, 1), "float64")
    W = _grid_values(rng, (2, 1, 2, 1, 1, 2, 2), "float64")
    attrs = {"strides": [1, 2, 1, 2, 1], "pads": [0, 0, 1, 0, 0, 1, 0, 0, 0, 1]}
    np.testing.assert_array_equal(opref.conv_transpose(X, W, **attrs), direct_conv_transpose(X, W, **attrs))


# --- strides and dilations far beyond the output: the cost follows the output, not them ------

# Run in a fresh interpreter whose address space is capped: a table with one entry per stride
# step (2**40 of them) fails with MemoryError there instead of filling the machine.
_BOUNDED = """
import resource, sys
import numpy as np
import opref
from opref.tolerance import magnitude_sum, max_terms
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
one = np.ones((1, 1, 1), np.float32)
assert opref.conv_transpose(one, one, strides=[2**40]).tolist() == [[[1.0]]]
X = np.arange(1.0, 13.0).reshape(1, 2, 3, 2)
W = np.arange(1.0, 25.0).reshape(2, 2, 2, 3)
kw = dict(strides=[2**30, 3], pads=[2**30 - 1, 1, 2**30 - 1, 0])
geo = opref.geometry(X.shape, W.shape, **kw)
y = opref.conv_transpose(X, W, **kw)
assert y.shape == geo.output_shape == (1, 2, 4, 5), y.shape
# stride >= kernel on both axes: one tap per output position and axis, times C = 2.
assert max_terms(geo, False) == 2, max_terms(geo, False)
assert magnitude_sum(X, W, None, geo).shape == y.shape
print("ok")
"""


def test_huge_stride_needs_no_memory_per_stride_step():
    import os
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c", _BOUNDED], capture_output=True, text=True, check=False, env=os.environ
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_huge_stride_by_hand():
    # 1-D, stride 2**30: input i lands at i*2**30 + k; pads 2**30 - 1 at the beginning put
    # o = 0 at position 2**30 - 1 (nothing), o = 1 at 2**30 (X[1]*W[0]), o = 2 at 2**30 + 1
    # (X[1]*W[1]); pad_end 2**30 - 1 leaves F = 2**31 + 2 minus 2**31 - 2: O = 4, o = 3 empty.
    X = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 3)
    W = np.array([10.0, 100.0]).reshape(1, 1, 2)
    attrs = {"strides": [2**30], "pads": [2**30 - 1, 2**30 - 1]}
    for path in (STACKED, SCATTER):
        with path:
            np.testing.assert_array_equal(opref.conv_transpose(X, W, **attrs)[0, 0], [0, 20, 200, 0])


def test_huge_dilation_with_output_shape_by_hand():
    # k = 2, d = s = 2**40, I = 2: taps land at 0, 2**40 (X[0]*W[1] and X[1]*W[0]) and 2**41.
    # F = 2**41 + 1; output_shape [3]: T = 2**41 - 2, NOTSET pb = T - T//2 = 2**40 - 1, so
    # the output is positions 2**40 - 1 .. 2**40 + 1: [0, 1*100 + 2*10, 0].
    X = np.array([1.0, 2.0]).reshape(1, 1, 2)
    W = np.array([10.0, 100.0]).reshape(1, 1, 2)
    attrs = {"strides": [2**40], "dilations": [2**40], "output_shape": [3]}
    geo = opref.geometry(X.shape, W.shape, **attrs)
    assert geo.pads == (2**40 - 1, 2**40 - 1)
    for path in (STACKED, SCATTER):
        with path:
            np.testing.assert_array_equal(opref.conv_transpose(X, W, **attrs)[0, 0], [0, 120, 0])
    from opref.tolerance import max_terms

    assert max_terms(geo, has_bias=True) == 3


LARGE = [
    # (X shape, W shape, attributes): strides/dilations far beyond the output on some axis.
    ((1, 2, 3, 2), (2, 2, 2, 3), {"strides": [2**30, 3], "pads": [2**30 - 1, 1, 2**30 - 1, 0]}),
    ((1, 2, 3, 2), (2, 2, 2, 3), {"strides": [2**30, 3], "output_shape": [5, 6]}),
    ((1, 2, 3, 2), (2, 2, 2, 3), {"strides": [2**30, 3], "output_shape": [5, 6], "auto_pad": "SAME_UPPER"}),
    # Windows around input 1 of every axis: pads 2**s - 1 before it.
    ((2, 4, 2, 3), (4, 1, 3, 2), {"strides": [2**33, 2**35], "pads": [2**33 - 1, 2**35 - 1, 0, 2**35 - 1]}),
    (
        (2, 4, 2, 3),
        (4, 1, 3, 2),
        {"strides": [2**33, 2**35], "group": 2, "pads": [2**33 - 1, 2**35 - 1, 0, 2**35 - 1]},
    ),
    # F = 2**41 + 7, T = 2**41 - 2: the window starts at 2**40 - 1, around input 1's taps.
    ((1, 1, 3), (1, 2, 3), {"strides": [2**40], "dilations": [3], "output_shape": [9]}),
    ((1, 1, 1, 3), (1, 1, 2, 2), {"dilations": [2**40, 1], "pads": [2**40 - 2, 0, 0, 0]}),
    ((1, 2, 2), (2, 1, 3), {"strides": [5], "dilations": [2**41], "pads": [2**41 - 2, 2**41 - 1]}),
]


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), LARGE)
@pytest.mark.parametrize("path", ["stacked", "scatter", "inf"])
def test_large_strides_and_dilations_match_direct_loop(x_shape, w_shape, attrs, path):
    rng = np.random.RandomState(len(x_shape) + len(attrs))
    X, W = _grid_values(rng, x_shape, "float64"), _grid_values(rng, w_shape, "float64")
    B = _grid_values(rng, (w_shape[1] * attrs.get("group", 1),), "float64")
    if path == "inf":
        X.flat[0] = np.inf
    expected = direct_conv_transpose(X, W, B, **attrs)
    assert 0 < expected.size <= 1000, expected.shape
    with STACKED if path == "stacked" else SCATTER:
        y = opref.conv_transpose(X, W, B, **attrs)
    np.testing.assert_array_equal(y, expected, err_msg=f"X{x_shape} W{w_shape} {attrs} {path}")


# --- memory: a budget, chunks, and geometry without a size limit ---------------------------

CHUNKED = [
    # (X shape, W shape, attributes, bias): images, groups and channels to cut, both paths.
    ((3, 4, 5, 6), (4, 3, 3, 2), {"strides": [2, 3], "pads": [1, 0, 0, 1]}, True),
    ((2, 6, 7), (6, 2, 4), {"strides": [3], "group": 3, "output_padding": [1]}, True),
    ((4, 2, 3, 3, 2), (2, 5, 2, 3, 2), {"strides": [2, 1, 2], "dilations": [1, 2, 1]}, False),
    ((2, 4, 9, 9), (4, 4, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1], "group": 2}, True),
]


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs", "bias"), CHUNKED)
@pytest.mark.parametrize("path", ["stacked", "scatter"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_chunked_is_bit_identical_to_unchunked(x_shape, w_shape, attrs, bias, path, dtype):
    # float32 and bfloat16 from random values: the float64 sums are rounded once, and a chunk cuts
    # only images and output channels, never a sum. float64 output shows the float64 sum itself,
    # whose last bit OpenBLAS may change with the matrix's size (it has kernels for small
    # matrices), so float64 takes grid values, exactly summable in any order.
    rng = np.random.RandomState(sum(x_shape))
    t = DTYPES[dtype].numpy
    if dtype == "float64":
        X, W = _grid_values(rng, x_shape, dtype), _grid_values(rng, w_shape, dtype)
    else:
        X, W = rng.standard_normal(x_shape).astype(t), rng.standard_normal(w_shape).astype(t)
    B = rng.standard_normal(w_shape[1] * attrs.get("group", 1)).astype(t) if bias else None
    geo = opref.geometry(x_shape, w_shape, **attrs)
    stacked = path == "stacked"
    with STACKED if stacked else SCATTER:
        whole = opref.conv_transpose(X, W, B, **attrs, max_memory=2**30)
        g, mg = geo.group, w_shape[1]
        for images, groups, channels in [(1, g, mg), (1, 1, mg), (1, 1, 1)]:
            part = opref.reference._part(geo, images, groups, channels)
            budget = opref.reference.working_bytes(part, stacked=stacked, dtype=dtype)
            ch = opref.reference.chunks(geo, max_memory=budget, dtype=dtype)
            assert ch.count(geo) > 1 and ch.nbytes <= budget, (ch, budget)
            y = opref.conv_transpose(X, W, B, **attrs, max_memory=budget)
            where = f"X{x_shape} W{w_shape} {attrs} {path} {dtype} chunks {ch}"
            assert y.tobytes() == whole.tobytes(), where


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs", "bias"), CHUNKED)
@pytest.mark.parametrize("path", ["stacked", "scatter"])
def test_working_bytes_bound_what_is_allocated(x_shape, w_shape, attrs, bias, path):
    # The accounting the chunks rest on, checked against what numpy really allocates
    # (tracemalloc, first call in a fresh thread so that no scratch buffer is reused).
    import threading
    import tracemalloc

    rng = np.random.RandomState(1)
    X, W = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    B = rng.standard_normal(w_shape[1] * attrs.get("group", 1)) if bias else None
    geo = opref.geometry(x_shape, w_shape, **attrs)
    stacked = path == "stacked"
    out_bytes = 8 * int(np.prod(geo.output_shape))
    peak = []

    def run():
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            opref.conv_transpose(X, W, B, **attrs, max_memory=2**30)
            peak.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()

    with STACKED if stacked else SCATTER:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    need = opref.reference.working_bytes(geo, stacked=stacked)
    # Allowed beyond the estimate: the output itself and small objects (plans, views, lists).
    assert peak[0] <= need + out_bytes + 64 * 2**10, (peak[0], need, out_bytes, x_shape, w_shape, attrs, path)


def test_large_layer_is_chunked_within_the_budget_without_computing_it():
    # The acceptance layer: a 2 GiB float64 output under a 512 MiB budget. Only the
    # accounting runs here (the computation takes minutes): every chunk fits, and they cover it.
    x_shape, w_shape = (16, 16, 256, 256), (16, 64, 4, 4)
    attrs = {"strides": [2, 2], "pads": [1, 1, 1, 1]}
    geo = opref.geometry(x_shape, w_shape, **attrs)
    assert geo.output_shape == (16, 64, 512, 512)  # (256 - 1) * 2 + 4 - 2
    assert 8 * np.prod(geo.output_shape, dtype=np.int64) == 2 * 2**30
    budget = opref.reference.parse_memory("512M")
    for stacked in (True, False):
        ch = opref.reference.chunks(geo, max_memory=budget, finite=stacked)
        assert ch.nbytes <= budget < opref.reference.working_bytes(geo, stacked=ch.stacked), ch
        assert ch.count(geo) >= 4, ch  # the phases alone are the output's size: 2 GiB
        part = opref.reference._part(geo, ch.images, ch.groups, ch.channels)
        assert opref.reference.working_bytes(part, stacked=ch.stacked) == ch.nbytes


def test_budget_too_small_for_one_channel_of_one_image_says_the_numbers():
    X, W = np.zeros((2, 3, 40, 40), np.float32), np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(opref.reference.BudgetError) as err:
        opref.conv_transpose(X, W, max_memory=1000)
    e = err.value
    assert e.max_memory == 1000 and e.needed > 1000, e
    text = str(e)
    assert "max_memory=1000 bytes" in text and f"needs {e.needed} bytes" in text and "[1, 1, 42, 42]" in text


@pytest.mark.parametrize(
    ("text", "size"),
    [("512M", 512 * 2**20), ("2G", 2 * 2**30), ("1.5g", 3 * 2**29), ("100", 100), ("64KiB", 2**16)],
)
def test_parse_memory(text, size):
    assert opref.reference.parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "M", "-1G", "2X", "0"])
def test_parse_memory_refuses(text):
    with pytest.raises(ValueError):
        opref.reference.parse_memory(text)


def test_default_budget_is_a_quarter_of_physical_memory():
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    # sysconf and /proc/meminfo may differ by the kernel's reserved pages: within 5%.
    assert abs(opref.reference.default_max_memory() - total / 4) <= 0.05 * total / 4
