"""The tolerance model's counts, against the direct loop (an implementation written apart)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from opref.direct import direct_conv_transpose
from opref.errors import SpecError
from opref.geometry import geometry
from opref.tolerance import _most_on_axis, max_terms


@st.composite
def configs(draw):
    r = draw(st.integers(1, 3))
    g = draw(st.integers(1, 3))
    x = (1, g * draw(st.integers(1, 2)), *(draw(st.integers(1, 5)) for _ in range(r)))
    w = (x[1], draw(st.integers(1, 2)), *(draw(st.integers(1, 4)) for _ in range(r)))
    attrs = {
        "strides": [draw(st.integers(1, 4)) for _ in range(r)],
        "dilations": [draw(st.integers(1, 3)) for _ in range(r)],
        "group": g,
        "pads": [draw(st.integers(0, 3)) for _ in range(2 * r)],
    }
    return x, w, attrs


@settings(max_examples=150, deadline=None)
@given(configs(), st.booleans())
def test_max_terms_is_the_most_products_any_output_sums(config, bias):
    x, w, attrs = config
    try:
        geo = geometry(x, w, **attrs)
    except SpecError:
        return
    # With all-ones operands each output of the direct loop is its number of products.
    counts = direct_conv_transpose(np.ones(x), np.ones(w), **attrs)
    assert max_terms(geo, bias) == int(counts.max(initial=0)) + bias, (x, w, attrs)


def test_max_terms_by_hand():
    # Stride 1, kernel 3, 5 inputs: a middle output sums all 3 taps of each of C/group = 2 channels.
    assert max_terms(geometry((1, 4, 5), (4, 2, 3), group=2), has_bias=True) == 2 * 3 + 1
    # Stride 3 >= kernel 3: no two taps of a channel overlap.
    assert max_terms(geometry((1, 1, 5, 5), (1, 1, 3, 3), strides=[3, 3]), has_bias=False) == 1


# Issue 22: a record at the size guard is counted without laying out an axis's grid.


def test_max_terms_at_the_guard_is_the_count_by_hand():
    # Stride 1, 2**13 inputs, kernel 2**14: a middle output is reached by every input once.
    assert max_terms(geometry([1, 3, 2**13], [3, 1, 2**14]), has_bias=True) == 3 * 2**13 + 1
    # Stride 2**20 > kernel: no two taps ever meet.
    assert max_terms(geometry([1, 1, 64], [1, 1, 3], strides=[2**20]), has_bias=False) == 1


def _bincount_most(n, k, s, d, pb, out):
    counts = [0] * out
    for i in range(n):
        for j in range(k):
            p = i * s + j * d - pb
            if 0 <= p < out:
                counts[p] += 1
    return max(counts, default=0)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 12),
    st.integers(1, 6),
    st.integers(1, 5),
    st.integers(-8, 30),
    st.integers(0, 80),
)
def test_the_per_axis_count_agrees_with_a_direct_loop(n, k, s, d, pb, out):
    assert _most_on_axis(n, k, s, d, pb, out) == _bincount_most(n, k, s, d, pb, out)


def test_magnitude_sum_keeps_to_its_budget():
    import pytest

    from opref.reference import BudgetError, _part, chunks, working_bytes
    from opref.tolerance import magnitude_sum

    rng = np.random.RandomState(3)
    # Small integers: every sum exact, so chunked and whole must agree bit for bit.
    X, W = rng.randint(-9, 10, (3, 4, 6, 6)).astype(np.float64), rng.randint(-9, 10, (4, 5, 3, 3)) * 1.0
    geo = geometry(X.shape, W.shape, strides=[2, 2])
    whole = magnitude_sum(X, W, None, geo)
    budget = max(working_bytes(_part(geo, 1, 1, 1), stacked=s) for s in (True, False))
    assert chunks(geo, max_memory=budget).count(geo) > 1
    assert magnitude_sum(X, W, None, geo, max_memory=budget).tobytes() == whole.tobytes()
    np.testing.assert_array_equal(whole, direct_conv_transpose(np.abs(X), np.abs(W), None, strides=[2, 2]))
    with pytest.raises(BudgetError):
        magnitude_sum(X, W, None, geo, max_memory=100)
