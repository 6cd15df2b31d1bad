"""PyTorch ``ConvTranspose{1,2,3}d`` (and ``output_size``) spelled in ONNX."""

from __future__ import annotations

from collections.abc import Sequence

from opref.errors import SpecError
from opref.frameworks.spelling import (
    FrameworkLayer,
    Spelling,
    check_group,
    check_shapes,
    compare_alternative,
    output_channels,
    per_axis,
    spatial_target,
    spell,
)

# --- PyTorch -----------------------------------------------------------------------------


def from_pytorch(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    output_size: Sequence[int] | None = None,
) -> Spelling:
    """``torch.nn.ConvTranspose{1,2,3}d`` (and ``F.conv_transpose*d``) as ONNX attributes.

    PyTorch: O = (I-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1, the
    ``padding`` cropped from both sides and ``output_padding`` added at the end; it requires
    output_padding < max(stride, dilation). ``output_size`` (the module's forward argument:
    spatial sizes, or N, C and them) sets output_padding = output_size - min_size with
    min_size the size at output_padding 0, and must lie in [min_size, min_size + stride - 1];
    an ``output_padding`` given with it is ignored, as PyTorch does.

    The spelling keeps pads [p, p] and output_padding; ONNX ``output_shape`` is not
    PyTorch's ``output_size`` (ONNX splits the total padding 2p - a between both sides).
    """
    x, w, r = check_shapes(x_shape, w_shape)
    s = per_axis("stride", stride, r, 1)
    p = per_axis("padding", padding, r, 0)
    d = per_axis("dilation", dilation, r, 1)
    a = per_axis("output_padding", output_padding, r, 0)
    group = check_group("groups", groups, x)
    notes: list[str] = []
    if output_size is not None:
        target = spatial_target("output_size", output_size, x, output_channels(w, group))
        low = tuple(s[i] * (x[2 + i] - 1) - 2 * p[i] + d[i] * (w[2 + i] - 1) + 1 for i in range(r))
        high = tuple(low[i] + s[i] - 1 for i in range(r))
        if any(not low[i] <= target[i] <= high[i] for i in range(r)):
            raise SpecError(
                "output_size",
                list(target),
                f"must lie between {list(low)} and {list(high)} (PyTorch: the size at "
                f"output_padding 0 up to it plus stride - 1, for an input of {list(x[2:])})",
            )
        if any(a):
            notes.append(f"output_padding {list(a)} is ignored: output_size decides it (as in PyTorch)")
        a = tuple(target[i] - low[i] for i in range(r))
    for i in range(r):
        if a[i] >= max(s[i], d[i]):
            raise SpecError(
                f"output_padding[{i}]",
                a[i],
                f"must be smaller than max(stride, dilation) = {max(s[i], d[i])} (PyTorch)",
            )
    layer = FrameworkLayer("PyTorch", x, w, group, s, d, p, p, a)
    out = layer.outputs()
    for i in range(r):
        if out[i] < 1:
            raise SpecError(
                "padding",
                list(p),
                f"leaves output size {out[i]} on spatial axis {i} (PyTorch needs >= 1)",
            )
    if output_size is not None:
        compare_alternative(
            layer,
            {"strides": s, "dilations": d, "group": group, "output_shape": out},
            f"output_shape={list(out)}",
            notes,
        )
    return spell(layer, notes)


