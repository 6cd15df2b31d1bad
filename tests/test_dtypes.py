"""opref.dtypes: single rounding to bfloat16, ULP spacing and ULP distance."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opref.dtypes import DTYPES, dtype_of, ordered_bits, round_from_float64, ulp
from opref.errors import SpecError

BF16 = DTYPES["bfloat16"]


def bf16_round_exact(value: float) -> float:
    """Round to bfloat16 (8 significant bits, normals only) with rational arithmetic."""
    if value == 0:
        return 0.0
    q = Fraction(value)
    exp = abs(q).numerator.bit_length() - abs(q).denominator.bit_length()
    while Fraction(2) ** exp > abs(q):
        exp -= 1
    while Fraction(2) ** (exp + 1) <= abs(q):
        exp += 1
    step = Fraction(2) ** (exp - 7)
    k, rem = divmod(q / step, 1)
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and k % 2):
        k += 1
    return float(k * step)


@given(st.floats(min_value=1e-30, max_value=1e30) | st.floats(min_value=-1e30, max_value=-1e-30))
def test_bfloat16_rounds_once(value):
    got = float(round_from_float64(np.array([value]), BF16)[0])
    assert got == bf16_round_exact(value), value


def test_bfloat16_double_rounding_case():
    value = 1 + 2.0**-8 + 2.0**-30  # float32 rounding first would land on the tie
    assert float(round_from_float64(np.array([value]), BF16)[0]) == 1 + 2.0**-7


def test_bfloat16_overflow_and_specials():
    out = round_from_float64(np.array([1e39, -1e39, np.inf, np.nan, 0.0]), BF16).astype(np.float64)
    assert out[0] == np.inf and out[1] == -np.inf and out[2] == np.inf and np.isnan(out[3]) and out[4] == 0


@pytest.mark.parametrize("name", ["float16", "float32", "float64", "bfloat16"])
def test_ulp_is_the_gap_to_the_next_value(name):
    dt = DTYPES[name]
    values = np.array([1.0, 1.5, 3.0, 1000.0, 2.0**-3], dtype=dt.numpy)
    nxt = (ordered_bits(values, dt) + 1).astype(np.int64)
    # Rebuild the next float from its bits: non-negative floats order like their bit patterns.
    width = dt.numpy.itemsize * 8
    up = nxt.astype(f"int{width}").view(dt.numpy).astype(np.float64)
    np.testing.assert_array_equal(up - values.astype(np.float64), ulp(values.astype(np.float64), dt))


@pytest.mark.parametrize("name", ["float16", "float32", "bfloat16"])
def test_ordered_bits_distance_across_zero(name):
    dt = DTYPES[name]
    tiny = float(ulp(np.array([0.0]), dt)[0])  # the smallest subnormal
    vals = np.array([-tiny, 0.0, tiny], dtype=np.float64).astype(dt.numpy)
    assert list(np.diff(ordered_bits(vals, dt))) == [1, 1]
    assert ordered_bits(np.array([-0.0], dtype=dt.numpy), dt)[0] == 0


def test_dtype_of_rejects_other_types():
    with pytest.raises(SpecError, match=r"X\.dtype"):
        dtype_of(np.zeros(1, np.int8))
    assert dtype_of("bfloat16") is BF16


def test_unit_roundoff_table():
    # Spec notes section 5: u per type.
    assert {n: d.unit_roundoff for n, d in DTYPES.items()} == {
        "float16": 2.0**-11,
        "float32": 2.0**-24,
        "float64": 2.0**-53,
        "bfloat16": 2.0**-8,
    }
