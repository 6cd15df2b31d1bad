"""What every framework spelling shares: the frozen :class:`Spelling`, the layer in ONNX terms
(begin pads and output size), argument checks, and the comparison with the look-alike spellings
(``output_shape``, ``auto_pad``) that the notes report."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from opref import readings as rd
from opref.errors import SpecError
from opref.geometry import geometry

FRAMEWORKS = ("pytorch", "keras", "tensorflow", "paddle")


@dataclass(frozen=True)
class Spelling:
    """A framework layer as ONNX ConvTranspose attributes.

    ``opref.conv_transpose(X, W, **attributes)`` equals the framework's output for X, W of
    ``x_shape``, ``w_shape`` (ONNX layout); ``ambiguities`` lists the ids of
    :data:`opref.readings.AMBIGUITIES` that this answer depends on (empty: the spec text
    alone determines it); ``notes`` say why, and which tempting spelling would differ.
    """

    framework: str
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    attributes: Mapping[str, object]
    ambiguities: tuple[str, ...]
    notes: tuple[str, ...]
    output_shape: tuple[int, ...]  # N, M, spatial: the framework's output shape

    def to_dict(self) -> dict:
        """A JSON-ready view (``opref explain --from ... --json``)."""
        return {
            "framework": self.framework,
            "x_shape": list(self.x_shape),
            "w_shape": list(self.w_shape),
            "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in self.attributes.items()},
            "ambiguities": list(self.ambiguities),
            "notes": list(self.notes),
            "output_shape": list(self.output_shape),
        }


@dataclass(frozen=True)
class FrameworkLayer:
    """One layer reduced to what decides its values: the scatter and, per axis, the pads."""

    framework: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    group: int
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pad_begin: tuple[int, ...]  # >= 0: output position 0 is scatter position pad_begin
    pad_end: tuple[int, ...]  # >= 0
    output_padding: tuple[int, ...]  # >= 0; O = F + output_padding - pad_begin - pad_end

    def full_extent(self, i: int) -> int:
        return self.strides[i] * (self.x[2 + i] - 1) + (self.w[2 + i] - 1) * self.dilations[i] + 1

    def outputs(self) -> tuple[int, ...]:
        return tuple(
            self.full_extent(i) + self.output_padding[i] - self.pad_begin[i] - self.pad_end[i]
            for i in range(len(self.strides))
        )


def check_int(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise SpecError(name, value, "must be an integer")
    try:
        return operator.index(value)
    except TypeError:
        raise SpecError(name, value, "must be an integer") from None


def per_axis(name: str, value: object, r: int, minimum: int | None = None) -> tuple[int, ...]:
    """One int for every spatial axis, or a sequence of exactly ``r`` ints."""
    if isinstance(value, str | bytes | Mapping):
        raise SpecError(name, value, f"must be an integer or {r} integers")
    if isinstance(value, Sequence):
        values = tuple(check_int(f"{name}[{i}]", v) for i, v in enumerate(value))
        if len(values) != r:
            raise SpecError(name, list(values), f"must have {r} entries (one per spatial axis)")
    else:
        values = (check_int(name, value),) * r
    if minimum is not None:
        for i, v in enumerate(values):
            if v < minimum:
                raise SpecError(name if len(set(values)) == 1 else f"{name}[{i}]", v, f"must be >= {minimum}")
    return values


def check_shapes(x_shape: object, w_shape: object) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """X and W shapes as int tuples and the number of spatial axes; the rest of their rules
    (channels, group) are checked by :func:`opref.geometry` on the spelling."""
    if isinstance(x_shape, str | bytes) or not isinstance(x_shape, Sequence):
        raise SpecError("x_shape", x_shape, "must be a sequence of integers (N, C, spatial...)")
    if isinstance(w_shape, str | bytes) or not isinstance(w_shape, Sequence):
        raise SpecError("w_shape", w_shape, "must be a sequence of integers (C, M/group, kernel...)")
    x = tuple(check_int(f"x_shape[{i}]", v) for i, v in enumerate(x_shape))
    w = tuple(check_int(f"w_shape[{i}]", v) for i, v in enumerate(w_shape))
    if len(x) < 3:
        raise SpecError("x_shape", list(x), "must have rank >= 3 (N, C, at least one spatial axis)")
    if len(w) != len(x):
        raise SpecError("w_shape", list(w), f"must have the rank of x_shape, {len(x)}")
    for name, shape in (("x_shape", x[1:]), ("w_shape", w)):
        if any(v < 1 for v in shape):
            raise SpecError(name, list(x if name == "x_shape" else w), "must have sizes >= 1 (N may be 0)")
    return x, w, len(x) - 2


def spatial_target(name: str, value: object, x: tuple[int, ...], m: int) -> tuple[int, ...]:
    """An output size list: the spatial sizes, or N, C and the spatial sizes."""
    r = len(x) - 2
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise SpecError(name, value, f"must list {r} spatial sizes (or N, C and them)")
    sizes = tuple(check_int(f"{name}[{i}]", v) for i, v in enumerate(value))
    if len(sizes) == r + 2:
        if sizes[:2] != (x[0], m):
            raise SpecError(name, list(sizes), f"lists N, C = {list(sizes[:2])}, not [N, M] = {[x[0], m]}")
        sizes = sizes[2:]
    if len(sizes) != r:
        raise SpecError(name, list(sizes), f"must have {r} entries (or {r + 2} with N and C)")
    for i, v in enumerate(sizes):
        if v < 1:
            raise SpecError(f"{name}[{i}]", v, "must be >= 1")
    return sizes


def output_channels(w: tuple[int, ...], group: int) -> int:
    return w[1] * group


def check_group(name: str, value: object, x: tuple[int, ...]) -> int:
    group = check_int(name, value)
    if group < 1:
        raise SpecError(name, group, "must be >= 1")
    if x[1] % group:
        raise SpecError(name, group, f"must divide the input channels {x[1]}")
    return group


def _attributes(layer: FrameworkLayer, pad_end: Sequence[int], output_padding: Sequence[int]) -> dict:
    return {
        "strides": layer.strides,
        "dilations": layer.dilations,
        "group": layer.group,
        "pads": tuple(layer.pad_begin) + tuple(pad_end),
        "output_padding": tuple(output_padding),
    }


def spell(layer: FrameworkLayer, notes: list[str]) -> Spelling:
    """The explicit spelling of ``layer``: its pads, its output_padding where that is below
    the stride; an output_padding >= stride is moved into the end pad as far as the end pad
    goes (the same output: one more row uncovered, one less cropped), since at or above the
    stride it depends on the ``output-padding-bound`` reading."""
    pad_end, out_pad = list(layer.pad_end), list(layer.output_padding)
    for i, s in enumerate(layer.strides):
        if out_pad[i] >= s:
            moved = min(out_pad[i] - s + 1, pad_end[i])
            if moved:
                notes.append(
                    f"axis {i}: output_padding {out_pad[i]} >= stride {s}; {moved} of it is "
                    f"spelled as {moved} less end pad (output_padding {out_pad[i] - moved}, "
                    f"end pad {pad_end[i] - moved}), which gives the same output without "
                    f"depending on {rd.OUTPUT_PADDING_BOUND}"
                )
                out_pad[i] -= moved
                pad_end[i] -= moved
    attributes = _attributes(layer, pad_end, out_pad)
    geo = geometry(layer.x, layer.w, **attributes)
    expected = layer.outputs()
    if geo.output_shape[2:] != expected:  # the arithmetic above and geometry's must agree
        raise AssertionError(f"{layer}: ONNX output {geo.output_shape[2:]} != framework {expected}")
    for i, ax in enumerate(geo.axes):
        if ax.stride <= ax.output_padding < ax.dilation:
            notes.append(
                f"axis {i}: output_padding {ax.output_padding} >= stride {ax.stride} (below "
                f"dilation {ax.dilation}) is valid in {layer.framework} and under the default "
                f"reading 'max' of {rd.OUTPUT_PADDING_BOUND}, refused under 'stride' "
                "(onnxruntime); no spelling avoids it here: pads cannot be negative, and "
                "output_shape would make the total padding negative "
                f"({rd.NEGATIVE_TOTAL_PADDING})"
            )
    return Spelling(
        framework=layer.framework,
        x_shape=layer.x,
        w_shape=layer.w,
        attributes=MappingProxyType(attributes),
        ambiguities=geo.ambiguities,
        notes=tuple(notes),
        output_shape=geo.output_shape,
    )


def _split_readings(layer: FrameworkLayer, alternative: Mapping[str, object]) -> tuple[list[str], object]:
    """The readings of negative-total-padding under which ``alternative`` (attributes with
    output_shape or auto_pad) gives ``layer``'s pads and output size, and the geometry it has
    under the default reading (None where refused)."""
    matching, default = [], None
    begins, outs = layer.pad_begin, layer.outputs()
    for reading in rd.AMBIGUITIES[rd.NEGATIVE_TOTAL_PADDING].readings:
        try:
            geo = geometry(layer.x, layer.w, **alternative, readings={rd.NEGATIVE_TOTAL_PADDING: reading})
        except SpecError:
            continue
        if reading == rd.AMBIGUITIES[rd.NEGATIVE_TOTAL_PADDING].default:
            default = geo
        if geo.output_shape[2:] == outs and geo.pads[: len(begins)] == begins:
            matching.append(reading)
    return matching, default


def compare_alternative(layer: FrameworkLayer, alternative: dict, what: str, notes: list[str]) -> None:
    """A note on whether the tempting spelling ``what`` (the attributes ``alternative``)
    computes what ``layer`` does, and under which readings of negative-total-padding."""
    matching, default = _split_readings(layer, alternative)
    r = len(layer.strides)
    negative = default is None or any(t < 0 for t in default.total_padding)
    if not negative and matching:
        notes.append(f"{what} would give the same result here")
        return
    if default is None:
        shown = "is refused under the default readings"
    else:
        shown = (
            f"puts pad_begin {list(default.pads[:r])}, output {list(default.output_shape[2:])} "
            f"(total padding {list(default.total_padding)})"
        )
    if not negative:
        where = ""
    elif matching:
        where = f"; it matches only under reading(s) {', '.join(matching)} of {rd.NEGATIVE_TOTAL_PADDING}"
    else:
        where = f"; it matches under no reading of {rd.NEGATIVE_TOTAL_PADDING}"
    notes.append(
        f"{what} would differ here: it {shown}, where {layer.framework} has pad_begin "
        f"{list(layer.pad_begin)}, output {list(layer.outputs())}{where}"
    )


