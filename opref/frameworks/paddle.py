"""Paddle ``conv*d_transpose`` (explicit, ``SAME`` and ``VALID`` padding, ``output_size``)
spelled in ONNX."""

from __future__ import annotations

from collections.abc import Sequence

from opref.errors import SpecError
from opref.frameworks.spelling import (
    FrameworkLayer,
    Spelling,
    check_group,
    check_int,
    check_shapes,
    compare_alternative,
    output_channels,
    per_axis,
    spatial_target,
    spell,
)

# --- Paddle --------------------------------------------------------------------------------


def _paddle_pads(padding: object, r: int) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Paddle's padding forms: 'SAME'/'VALID' (any case), an int, r ints, 2r ints
    (begin, end per axis in turn: top, bottom, left, right), or r (begin, end) pairs."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise SpecError("padding", padding, "must be 'SAME', 'VALID', or integers (Paddle)")
        return padding.upper(), (0,) * r, (0,) * r
    if isinstance(padding, Sequence) and padding and all(isinstance(v, Sequence) for v in padding):
        if len(padding) != r or any(len(v) != 2 for v in padding):
            raise SpecError("padding", padding, f"must have {r} (begin, end) pairs")
        flat = [check_int(f"padding[{i}][{j}]", padding[i][j]) for i in range(r) for j in (0, 1)]
    elif isinstance(padding, Sequence) and len(padding) == 2 * r:
        flat = [check_int(f"padding[{i}]", v) for i, v in enumerate(padding)]
    else:
        sym = per_axis("padding", padding, r)
        flat = [v for v in sym for _ in (0, 1)]
    if any(v < 0 for v in flat):
        raise SpecError("padding", flat, "must be >= 0")
    return "EXPLICIT", tuple(flat[0::2]), tuple(flat[1::2])


def from_paddle(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    output_size: Sequence[int] | None = None,
) -> Spelling:
    """``paddle.nn.functional.conv{1,2,3}d_transpose`` (``nn.Conv*DTranspose``) as ONNX
    attributes.

    Paddle: O = (I-1)*stride - pad_begin - pad_end + dilation*(k-1) + 1, plus
    ``output_padding`` (< max(stride, dilation)) at the end, or ``output_size`` instead
    (in [that size, that size + stride); not together with output_padding). padding='SAME'
    pads as for a *forward* convolution over X: total max((⌈I/s⌉-1)*s + k - I, 0), begin
    half rounded down, and sets dilation to 1; 'VALID' pads 0. That equals ONNX SAME
    (output I*s) only when I divides by s and k >= s.
    """
    x, w, r = check_shapes(x_shape, w_shape)
    s = per_axis("stride", stride, r, 1)
    d = per_axis("dilation", dilation, r, 1)
    a = per_axis("output_padding", output_padding, r, 0)
    group = check_group("groups", groups, x)
    mode, begins, ends = _paddle_pads(padding, r)
    notes: list[str] = []
    if mode == "SAME":
        if any(v != 1 for v in d):
            notes.append(f"Paddle's SAME sets dilation to 1: dilation {list(d)} is not used")
        d = (1,) * r
        begins, ends = [], []
        for i in range(r):
            i_size, k = x[2 + i], w[2 + i]
            total = max((-(-i_size // s[i]) - 1) * s[i] + k - i_size, 0)
            begins.append(total // 2)
            ends.append(total - total // 2)
        begins, ends = tuple(begins), tuple(ends)
    base = tuple(s[i] * (x[2 + i] - 1) - begins[i] - ends[i] + d[i] * (w[2 + i] - 1) + 1 for i in range(r))
    if output_size is not None:
        if any(a):
            raise SpecError("output_padding", list(a), "cannot be given with output_size (Paddle)")
        target = spatial_target("output_size", output_size, x, output_channels(w, group))
        for i in range(r):
            if not base[i] <= target[i] < base[i] + s[i]:
                raise SpecError(
                    f"output_size[{i}]",
                    target[i],
                    f"must lie in [{base[i]}, {base[i] + s[i]}) (Paddle: the inferred size up to "
                    "it plus stride)",
                )
        a = tuple(target[i] - base[i] for i in range(r))
    else:
        for i in range(r):
            if a[i] >= max(s[i], d[i]):
                raise SpecError(
                    f"output_padding[{i}]",
                    a[i],
                    f"must be less than max(stride, dilation) = {max(s[i], d[i])} (Paddle)",
                )
    for i in range(r):
        if base[i] + a[i] < 1:
            raise SpecError("padding", padding, f"leaves output size {base[i] + a[i]} on spatial axis {i}")
    layer = FrameworkLayer("Paddle", x, w, group, s, d, begins, ends, a)
    if mode == "SAME" and not any(a):
        same = {"strides": s, "dilations": d, "group": group, "auto_pad": "SAME_UPPER"}
        compare_alternative(layer, same, "auto_pad=SAME_UPPER", notes)
    return spell(layer, notes)


