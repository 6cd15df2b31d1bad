"""Facts about the four ConvTranspose element types, declared once.

Unit roundoffs and exact-integer limits are those of section 5 of the spec notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import ml_dtypes
import numpy as np

from opref.errors import SpecError


@dataclass(frozen=True)
class DType:
    """One element type: its names, its ONNX type id and its rounding facts.

    ``mantissa_bits`` counts the implicit bit (float32: 24). ``exact_limit`` is the largest
    magnitude up to which every integer is representable (2**mantissa_bits).
    """

    name: str
    numpy: np.dtype
    onnx_type: int  # onnx.TensorProto.DataType value
    mantissa_bits: int
    min_exponent: int  # exponent of the smallest normal number
    max_finite: float
    min_opset: int

    @property
    def unit_roundoff(self) -> float:
        return 2.0**-self.mantissa_bits

    @property
    def exact_limit(self) -> int:
        return 2**self.mantissa_bits


DTYPES: Mapping[str, DType] = MappingProxyType(
    {
        d.name: d
        for d in (
            DType("float16", np.dtype(np.float16), 10, 11, -14, 65504.0, 1),
            DType("float32", np.dtype(np.float32), 1, 24, -126, float(np.finfo(np.float32).max), 1),
            DType("float64", np.dtype(np.float64), 11, 53, -1022, float(np.finfo(np.float64).max), 1),
            DType(
                "bfloat16",
                np.dtype(ml_dtypes.bfloat16),
                16,
                8,
                -126,
                float(ml_dtypes.finfo(ml_dtypes.bfloat16).max),
                22,
            ),
        )
    }
)

# TF32 is not a storage type; it only changes the unit roundoff of a CUDA accumulation.
TF32_UNIT_ROUNDOFF = 2.0**-11


def dtype_of(array_or_dtype: object, what: str = "X") -> DType:
    """The DType of an array, numpy dtype or name; SpecError for anything else."""
    if isinstance(array_or_dtype, DType):
        return array_or_dtype
    dt = array_or_dtype.dtype if isinstance(array_or_dtype, np.ndarray | np.generic) else array_or_dtype
    if isinstance(dt, str) and dt in DTYPES:
        return DTYPES[dt]
    try:
        dt = np.dtype(dt)
    except TypeError:
        raise SpecError(f"{what}.dtype", dt, f"must be one of {list(DTYPES)}") from None
    for d in DTYPES.values():
        if d.numpy == dt:
            return d
    raise SpecError(f"{what}.dtype", str(dt), f"must be one of {list(DTYPES)}")


def round_from_float64(values: np.ndarray, dtype: DType) -> np.ndarray:
    """Round float64 values to ``dtype`` once, to nearest, ties to even.

    numpy rounds float64 to float16/float32 correctly; ml_dtypes goes float64 -> float32 ->
    bfloat16, which rounds twice, so bfloat16 is rounded here on the float64 value.
    """
    values = np.asarray(values, dtype=np.float64)
    if dtype.name != "bfloat16":
        with np.errstate(over="ignore"):
            return values.astype(dtype.numpy)
    with np.errstate(over="ignore", invalid="ignore"):
        _, exp = np.frexp(values)
        # Spacing of the target format at each value; subnormals share the smallest one.
        exp = np.maximum(exp, dtype.min_exponent + 1)
        step = np.ldexp(1.0, exp - dtype.mantissa_bits)
        rounded = np.rint(values / step) * step  # np.rint rounds ties to even
        rounded = np.where(np.isfinite(values), rounded, values)
        too_big = np.abs(rounded) > dtype.max_finite
        rounded = np.where(too_big, np.copysign(np.inf, values), rounded)
        # Every value is now exactly representable, so the casts below do not round.
        return rounded.astype(np.float32).astype(dtype.numpy)


def ulp(values: np.ndarray, dtype: DType) -> np.ndarray:
    """The spacing of ``dtype`` at each (float64) value: one unit in the last place."""
    values = np.abs(np.asarray(values, dtype=np.float64))
    _, exp = np.frexp(values)
    # frexp gives 0 for zero; zero's neighbours are the smallest subnormals, like tiny values.
    exp = np.where(values == 0, dtype.min_exponent + 1, np.maximum(exp, dtype.min_exponent + 1))
    return np.ldexp(1.0, exp - dtype.mantissa_bits)


def ordered_bits(values: np.ndarray, dtype: DType) -> np.ndarray:
    """Map values of ``dtype`` to int64 so that adjacent floats differ by 1 (ULP distance)."""
    width = dtype.numpy.itemsize * 8
    signed = np.ascontiguousarray(values, dtype=dtype.numpy).view(f"int{width}").astype(np.int64)
    lowest = np.int64(-(2 ** (width - 1)))
    # Negative floats have the sign bit set and grow in magnitude as their bits grow.
    return np.where(signed < 0, lowest - signed, signed)
