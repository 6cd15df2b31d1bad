"""Hypothesis strategies for fuzzing: arbitrary, mostly wrong, attribute values and shapes."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import opref
from opref.dtypes import DTYPES

_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.integers(-(2**70), 2**70),
)
_small = st.integers(-3, 6)
_int_list = st.lists(st.one_of(_small, st.integers(-(2**40), 2**40), _junk), max_size=8)
attribute_value = st.one_of(st.none(), _int_list, st.lists(_small, min_size=1, max_size=6), _junk)


@st.composite
def shapes(draw):
    """(x_shape, w_shape): mostly plausible (rank 3-5, W.shape[0] = C), sometimes anything."""
    if draw(st.integers(0, 4)) == 0:
        dims = st.one_of(st.integers(0, 4), st.integers(-2, 0), st.integers(2**20, 2**40))
        return [draw(dims) for _ in range(draw(st.integers(0, 7)))], [
            draw(dims) for _ in range(draw(st.integers(0, 7)))
        ]
    r = draw(st.integers(1, 3))
    group = draw(st.integers(1, 3))
    c = group * draw(st.integers(1, 2))
    x = [draw(st.integers(0, 2)), c, *[draw(st.integers(1, 4)) for _ in range(r)]]
    w = [c, draw(st.integers(1, 2)), *[draw(st.integers(1, 3)) for _ in range(r)]]
    if draw(st.integers(0, 9)) == 0:
        x[draw(st.integers(0, r + 1))] = draw(st.integers(-1, 2**31))
    return x, w


@st.composite
def attributes(draw, rank=None):
    """Attribute dicts: mostly the right lengths with small (sometimes invalid) values, sometimes junk."""
    r = rank if rank is not None else draw(st.integers(1, 3))
    names = ["dilations", "kernel_shape", "output_padding", "output_shape", "pads", "strides"]
    attrs = {}
    for n in names:
        if not draw(st.booleans()):
            continue
        length = 2 * r if n == "pads" else r
        if draw(st.integers(0, 5)):
            attrs[n] = draw(st.lists(st.integers(-1, 4), min_size=length, max_size=length))
        else:
            attrs[n] = draw(attribute_value)
    if draw(st.booleans()):
        attrs["auto_pad"] = draw(
            st.one_of(
                st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]), st.text(max_size=12), _junk
            )
        )
    if draw(st.booleans()):
        attrs["group"] = draw(st.one_of(st.integers(1, 3), _small, _junk))
    return attrs


@st.composite
def configurations(draw):
    """(x_shape, w_shape, attrs, dtype, opset, seed, special) for the fuzz property."""
    x, w = draw(shapes())
    attrs = draw(attributes(rank=max(len(x) - 2, 1)))
    if "group" not in attrs and len(x) > 1 and isinstance(x[1], int) and len(w) > 1:
        attrs["group"] = draw(st.sampled_from([1, 1, 2, 3]))
    dtype = draw(st.sampled_from(["float16", "float32", "float64", "bfloat16"]))
    opset = draw(st.sampled_from([22, 22, 11, 1, 0]))
    return x, w, attrs, dtype, opset, draw(st.integers(0, 2**31 - 1)), draw(st.booleans())


def small_array(rng: np.random.RandomState, shape, dtype: str, special: bool) -> np.ndarray:
    """Values for a shape that is small enough to allocate; NaN and inf sprinkled when asked."""
    vals = rng.randint(-3, 4, size=shape).astype(np.float64)
    if special and vals.size:
        flat = vals.reshape(-1)
        flat[rng.randint(0, flat.size)] = [np.nan, np.inf, -np.inf][rng.randint(0, 3)]
    return vals.astype(DTYPES[dtype].numpy)


def allocatable(shape) -> bool:
    return all(isinstance(d, int) and 0 <= d <= 16 for d in shape) and int(np.prod(shape or [1])) <= 4096


def outcome_of(x_shape, w_shape, attrs, dtype="float32", opset=22, seed=0, special=False):
    """Run geometry, and conv_transpose when the shapes can be allocated. Returns a label;
    anything but a result or SpecError propagates (that is the bug a fuzzer looks for)."""
    try:
        opref.geometry(x_shape, w_shape, **attrs, opset=opset)
    except opref.SpecError as exc:
        return f"SpecError:{exc.attribute.split('[')[0]}"
    if not (allocatable(x_shape) and allocatable(w_shape)):
        return "geometry-only"
    rng = np.random.RandomState(seed)
    X, W = small_array(rng, x_shape, dtype, special), small_array(rng, w_shape, dtype, special)
    try:
        y = opref.conv_transpose(X, W, **attrs, opset=opset)
    except opref.SpecError as exc:
        return f"SpecError:{exc.attribute.split('[')[0]}"
    assert y.dtype == X.dtype and y.ndim == X.ndim
    return "result"
