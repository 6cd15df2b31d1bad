"""Attributes and shapes -> resolved pads, output shape, the deciding rule and ambiguity tags.

Pure integer arithmetic; no arrays. Formulas are those of section 2 of
``opref/SPEC.md``; rule violations are those of its must-reject list and
raise :class:`opref.SpecError`; ambiguity ids and readings come from :mod:`opref.readings`.
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from opref import readings as rd
from opref.dtypes import dtype_of
from opref.errors import SpecError

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


class Rule(enum.StrEnum):
    """What decided the pads (section 2 of the spec notes)."""

    PADS = "pads"  # explicit pads (or their default of zeros)
    OUTPUT_SHAPE = "output_shape"  # T = F - output_shape; pads ignored
    SAME = "auto_pad SAME"  # T = F - input * stride
    VALID = "auto_pad VALID"  # no padding


@dataclass(frozen=True)
class Axis:
    """The arithmetic of one spatial axis, every number the formulas use."""

    input: int  # I
    kernel: int  # k
    stride: int  # s
    dilation: int  # d
    output_padding: int  # a
    full_extent: int  # F = s*(I-1) + a + (k-1)*d + 1
    target: int | None  # O* for output_shape, I*s (+a) for SAME, else None
    total_padding: int  # T
    pad_begin: int
    pad_end: int
    output: int


@dataclass(frozen=True)
class Geometry:
    """Everything about a ConvTranspose configuration that does not depend on values."""

    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    group: int
    auto_pad: str
    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    output_padding: tuple[int, ...]
    pads: tuple[int, ...]  # resolved, ONNX order: all begins, then all ends
    output_shape: tuple[int, ...]  # full: N, M, spatial...
    total_padding: tuple[int, ...]
    rule: Rule
    ambiguities: tuple[str, ...]  # ids from opref.readings, in table order
    readings: Mapping[str, str]
    opset: int
    axes: tuple[Axis, ...]


def _as_int(name: str, value: object) -> int:
    # bool is an int subclass, and floats such as 2.0 are not attribute values in ONNX.
    if isinstance(value, bool):
        raise SpecError(name, value, "must be an integer")
    try:
        return operator.index(value)
    except TypeError:
        raise SpecError(name, value, "must be an integer") from None


def _int_tuple(name: str, value: object, length: int | None, what: str) -> tuple[int, ...]:
    if isinstance(value, str | bytes | Mapping):
        raise SpecError(name, value, "must be a list of integers")
    try:
        seq = list(value)
    except TypeError:
        raise SpecError(name, value, "must be a list of integers") from None
    items = tuple(_as_int(f"{name}[{i}]", v) for i, v in enumerate(seq))
    if length is not None and len(items) != length:
        raise SpecError(name, list(items), f"must have {length} entries ({what})")
    return items


def _at_least(name: str, values: tuple[int, ...], minimum: int) -> None:
    for i, v in enumerate(values):
        if v < minimum:
            raise SpecError(f"{name}[{i}]", v, f"must be >= {minimum}")


def _check_shapes(x_shape, w_shape, group, b_shape):
    x = _int_tuple("X.shape", x_shape, None, "")
    if len(x) < 3:
        raise SpecError("X.shape", list(x), "must have rank >= 3 (N, C, at least one spatial axis)")
    if x[0] < 0:
        raise SpecError("X.shape[0]", x[0], "must be >= 0")
    for i, v in enumerate(x[1:], start=1):
        if v < 1:
            raise SpecError(f"X.shape[{i}]", v, "must be >= 1")
    w = _int_tuple("W.shape", w_shape, None, "")
    if len(w) > len(x):
        # Both are well-formed on their own: the shorter one most likely lost an axis (a typo),
        # so name it, and say what the other has.
        raise SpecError(
            "X.shape",
            list(x),
            f"must have the rank of W.shape {list(w)}, {len(w)} ({len(w) - 2} spatial axes), "
            f"not {len(x)}: X and W must have the same number of spatial axes",
        )
    w = _int_tuple("W.shape", w, len(x), f"the rank of X, {len(x)}")
    for i, v in enumerate(w):
        if v < 1:
            raise SpecError(f"W.shape[{i}]", v, "must be >= 1")
    if w[0] != x[1]:
        raise SpecError("W.shape[0]", w[0], f"must equal the input channels C = X.shape[1] = {x[1]}")
    group = _as_int("group", group)
    if group < 1:
        raise SpecError("group", group, "must be >= 1")
    if x[1] % group:
        raise SpecError("group", group, f"must divide the input channels C = {x[1]}")
    m = w[1] * group
    if b_shape is not None:
        b = _int_tuple("B.shape", b_shape, None, "")
        if b != (m,):
            raise SpecError("B.shape", list(b), f"must be [M] = [{m}] (W.shape[1] * group)")
    return x, w, group


@dataclass(frozen=True)
class _Attributes:
    """Checked attributes and shapes: every must-reject rule that needs no arithmetic passed."""

    x: tuple[int, ...]
    w: tuple[int, ...]
    group: int
    auto_pad: str
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    output_padding: tuple[int, ...]
    pads: tuple[int, ...] | None  # as given (None: absent)
    output_shape: tuple[int, ...] | None  # O*, spatial (None: absent)
    opset: int
    readings: Mapping[str, str]
    full_rank_output_shape: bool = False  # output_shape listed N and C too (output-shape-rank)


def _check_attributes(
    x_shape,
    w_shape,
    *,
    auto_pad,
    dilations,
    group,
    kernel_shape,
    output_padding,
    output_shape,
    pads,
    strides,
    opset,
    readings,
    b_shape,
    dtype,
) -> _Attributes:
    """The must-reject list of spec notes section 3 that needs no arithmetic, in a fixed order.

    Defaults are filled in (strides, dilations 1; output_padding 0; kernel from W). Raises
    SpecError for the first rule broken; output-padding-bound is checked under the chosen
    reading.
    """
    chosen = rd.resolve_readings(readings)
    opset = _as_int("opset", opset)
    if opset < 1:
        raise SpecError("opset", opset, "must be >= 1")
    if dtype is not None:
        dt = dtype_of(dtype)
        if opset < dt.min_opset:
            raise SpecError("opset", opset, f"must be >= {dt.min_opset} for {dt.name} inputs")
    x, w, group = _check_shapes(x_shape, w_shape, group, b_shape)
    r = len(x) - 2
    spatial = f"one per spatial axis, {r}"

    if kernel_shape is None:
        kernel = w[2:]
    else:
        kernel = _int_tuple("kernel_shape", kernel_shape, r, spatial)
        _at_least("kernel_shape", kernel, 1)
        if kernel != w[2:]:
            raise SpecError("kernel_shape", list(kernel), f"must equal W's spatial shape {list(w[2:])}")
    s = _int_tuple("strides", strides if strides is not None else [1] * r, r, spatial)
    _at_least("strides", s, 1)
    d = _int_tuple("dilations", dilations if dilations is not None else [1] * r, r, spatial)
    _at_least("dilations", d, 1)
    a = _int_tuple("output_padding", output_padding if output_padding is not None else [0] * r, r, spatial)
    _at_least("output_padding", a, 0)
    for i in range(r):
        if chosen[rd.OUTPUT_PADDING_BOUND] == "stride":
            if a[i] >= s[i]:
                raise SpecError(f"output_padding[{i}]", a[i], f"must be less than stride={s[i]}")
        elif a[i] >= max(s[i], d[i]):
            raise SpecError(
                f"output_padding[{i}]", a[i], f"must be less than max(stride, dilation)={max(s[i], d[i])}"
            )

    if not isinstance(auto_pad, str) or auto_pad not in AUTO_PADS:
        raise SpecError("auto_pad", auto_pad, f"must be one of {list(AUTO_PADS)}")
    p = None
    if pads is not None:
        if auto_pad != "NOTSET":
            raise SpecError(
                "pads",
                list(pads) if not isinstance(pads, str) else pads,
                f"cannot be used together with auto_pad={auto_pad}",
            )
        p = _int_tuple("pads", pads, 2 * r, f"a begin and an end for each of {r} spatial axes")
        _at_least("pads", p, 0)
    o_star, full_rank = None, False
    if output_shape is not None:
        o_star = _int_tuple("output_shape", output_shape, None, "")
        if len(o_star) == r + 2:
            o_star, full_rank = (
                _full_rank_tail(o_star, x[0], w[1] * group, chosen[rd.OUTPUT_SHAPE_RANK]),
                True,
            )
        if len(o_star) != r:
            raise SpecError("output_shape", list(o_star), f"must have {r} entries ({spatial})")
        _at_least("output_shape", o_star, 1)
    return _Attributes(x, w, group, auto_pad, kernel, s, d, a, p, o_star, opset, chosen, full_rank)


def _full_rank_tail(o_star: tuple[int, ...], n: int, m: int, reading: str) -> tuple[int, ...]:
    """The spatial tail of an output_shape that also lists N and C (output-shape-rank).

    The text says output_shape "should not include" them: under ``spatial-only`` (the default)
    such an output_shape is refused; under ``full-rank`` one whose N and C entries are X's N
    and the output channels M is read as its spatial tail. Entries that contradict N or M are
    refused under either reading.
    """
    r = len(o_star) - 2
    if o_star[:2] != (n, m):
        raise SpecError(
            "output_shape",
            list(o_star),
            f"must list the {r} spatial sizes only; its N, C entries {list(o_star[:2])} "
            f"are not [N, M] = {[n, m]}",
        )
    if reading != "full-rank":
        raise SpecError("output_shape", list(o_star), f"must list the {r} spatial sizes only, not N and C")
    return o_star[2:]


def _rule(att: _Attributes) -> Rule:
    """What decides the pads: output_shape first (pads are then ignored), then auto_pad."""
    if att.output_shape is not None:
        return Rule.OUTPUT_SHAPE
    if att.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return Rule.SAME
    if att.auto_pad == "VALID":
        return Rule.VALID
    return Rule.PADS


def _upper(auto_pad: str, opset: int, readings: Mapping[str, str]) -> bool:
    """Whether pad_begin gets the smaller half T//2 (section 2: SAME_UPPER), the v1 text of
    opset 1 read literally (opset1-split ``v1-text``) flipping it."""
    upper = auto_pad == "SAME_UPPER"
    if opset < 11 and readings[rd.OPSET1_SPLIT] == "v1-text":
        upper = not upper
    return upper


def _split_text(total: int, upper: bool, reading: str, rule: Rule) -> str:
    """What :func:`_split` does with ``total`` under ``reading``, in words (``opref explain``)."""
    small, large = ("pad_begin", "pad_end") if upper else ("pad_end", "pad_begin")
    if total >= 0:
        return f"an odd unit goes to the {'end' if upper else 'beginning'}"
    if reading == "floor":
        return f"T < 0 read as floor: {small} = T//2, {large} = T - T//2"
    if reading == "trunc":
        return f"T < 0 read as trunc: {small} = T/2 rounded toward zero, {large} = the rest"
    if reading == "clamp":
        if rule is Rule.OUTPUT_SHAPE:
            return "T < 0 read as clamp: T is split as 0, output_shape extends the end"
        return "T < 0 read as clamp: T is split as 0, the output is the full extent F"
    return f"T < 0 read as {reading}"  # reject raised before any text is asked for


def _split(total: int, upper: bool, reading: str, blame: tuple[str, object], axis: int) -> tuple[int, int]:
    """(pad_begin, the total actually split) of total padding T, under ``reading``.

    Section 2: SAME_UPPER gives pad_begin = T/2, every other auto_pad T - T/2 (``upper``
    says which; opset1-split may have flipped it). For T < 0 the halving follows the
    reading of negative-total-padding (section 3):

    - floor: T//2, so the side given the smaller half extends past the full extent;
    - trunc: T/2 rounded toward zero;
    - clamp: T is split as 0 (pad_begin 0); the caller keeps output_shape's size, which
      extends the end, or under SAME outputs the full extent;
    - reject: T < 0 raises SpecError, naming ``blame`` (attribute, value).
    """
    if total < 0 and reading == "reject":
        raise SpecError(
            *blame,
            f"gives total padding {total} < 0 on spatial axis {axis} "
            "(reading 'reject' of negative-total-padding)",
        )
    split = max(total, 0) if reading == "clamp" else total
    half = -(-split // 2) if reading == "trunc" and split < 0 else split // 2  # exact for any size
    return (half if upper else split - half), split


def _resolve_axis(att: _Attributes, rule: Rule, i: int) -> tuple[Axis, set[str]]:
    """One spatial axis, read against spec notes section 2 line by line, and its ambiguity tags.

    - K = (k - 1)*d + 1 and F = s*(I - 1) + a + K (the full extent);
    - rule ``pads``: O = F - pb - pe;
    - rule ``auto_pad VALID``: pb = pe = 0, O = F;
    - rule ``output_shape``: T = F - O*; rule ``auto_pad SAME``: T = F - I*s (the target
      I*s + a under reading ``added`` of same-with-output-padding);
      then the split of T (:func:`_split`: negative-total-padding, opset1-split) and
      O = F - pb - pe.

    Tags: output-padding-bound where s <= a < d. Raises SpecError when O < 1.
    """
    x, s, d, a = att.x[2 + i], att.strides[i], att.dilations[i], att.output_padding[i]
    r = len(att.x) - 2
    tags: set[str] = set()
    k_eff = (att.kernel[i] - 1) * d + 1
    full = s * (x - 1) + a + k_eff
    if s <= a < d:
        tags.add(rd.OUTPUT_PADDING_BOUND)
    target = None
    if rule is Rule.PADS:
        p = att.pads or (0,) * (2 * r)
        pb, pe = p[i], p[i + r]
        total = pb + pe
        out = full - total
    elif rule is Rule.VALID:
        pb = pe = total = 0
        out = full
    else:
        if rule is Rule.SAME:
            target = x * s
            if a > 0:
                tags.add(rd.SAME_WITH_OUTPUT_PADDING)
                if att.readings[rd.SAME_WITH_OUTPUT_PADDING] == "added":
                    target += a
            blame = ("auto_pad", att.auto_pad)
        else:
            target = att.output_shape[i]
            blame = ("output_shape", list(att.output_shape))
        total = full - target
        if total < 0:
            tags.add(rd.NEGATIVE_TOTAL_PADDING)
        if att.opset < 11 and total % 2:
            tags.add(rd.OPSET1_SPLIT)
        upper = _upper(att.auto_pad, att.opset, att.readings)
        pb, split = _split(total, upper, att.readings[rd.NEGATIVE_TOTAL_PADDING], blame, i)
        out = target if rule is Rule.OUTPUT_SHAPE else full - split
        pe = full - pb - out
    if out < 1:
        cause = {Rule.PADS: "pads", Rule.VALID: "auto_pad"}.get(rule, "output_shape")
        value = {
            "pads": list(att.pads or ()),
            "auto_pad": att.auto_pad,
            "output_shape": list(att.output_shape or ()),
        }[cause]
        raise SpecError(cause, value, f"leaves output size {out} on spatial axis {i}; it must be >= 1")
    return Axis(x, att.kernel[i], s, d, a, full, target, total, pb, pe, out), tags


def nonzero_size(dims: Sequence[int]) -> int:
    """The product of the nonzero sizes in ``dims`` (exact): what a shape holding a zero-size
    dimension would hold without it, the bound every size guard checks."""
    return math.prod(d for d in dims if d)


def geometry(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
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
    b_shape: Sequence[int] | None = None,
    dtype: object | None = None,
) -> Geometry:
    """Resolve a ConvTranspose configuration (spec notes section 2) or raise SpecError.

    ``readings`` picks a non-default reading per ambiguity id (see :mod:`opref.readings`);
    ``b_shape`` and ``dtype``, when given, are checked too (B must be [M]; bfloat16 needs
    opset 22).
    """
    att = _check_attributes(
        x_shape,
        w_shape,
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
        b_shape=b_shape,
        dtype=dtype,
    )
    rule = _rule(att)
    axes, tags = [], set()
    for i in range(len(att.x) - 2):
        ax, found = _resolve_axis(att, rule, i)
        axes.append(ax)
        tags |= found
    if att.full_rank_output_shape:
        tags.add(rd.OUTPUT_SHAPE_RANK)
    # Any size Python's integers hold: this is arithmetic, and nothing here allocates by it.
    full_out = (att.x[0], att.w[1] * att.group, *(ax.output for ax in axes))
    return Geometry(
        x_shape=att.x,
        w_shape=att.w,
        group=att.group,
        auto_pad=att.auto_pad,
        kernel_shape=att.kernel,
        strides=att.strides,
        dilations=att.dilations,
        output_padding=att.output_padding,
        pads=tuple(ax.pad_begin for ax in axes) + tuple(ax.pad_end for ax in axes),
        output_shape=full_out,
        total_padding=tuple(ax.total_padding for ax in axes),
        rule=rule,
        ambiguities=tuple(aid for aid in rd.AMBIGUITIES if aid in tags),
        readings=MappingProxyType(att.readings),
        opset=att.opset,
        axes=tuple(axes),
    )


def to_dict(geo: Geometry) -> dict:
    """A JSON-ready view of a Geometry (used by ``opref explain --json`` and manifests)."""
    return {
        "x_shape": list(geo.x_shape),
        "w_shape": list(geo.w_shape),
        "group": geo.group,
        "auto_pad": geo.auto_pad,
        "kernel_shape": list(geo.kernel_shape),
        "strides": list(geo.strides),
        "dilations": list(geo.dilations),
        "output_padding": list(geo.output_padding),
        "pads": list(geo.pads),
        "output_shape": list(geo.output_shape),
        "total_padding": list(geo.total_padding),
        "full_extent": [ax.full_extent for ax in geo.axes],
        "rule": geo.rule.value,
        "ambiguities": list(geo.ambiguities),
        "readings": {k: geo.readings[k] for k in geo.ambiguities},
        "opset": geo.opset,
    }


def _num(value: int) -> str:
    # A negative operand in parentheses, so that "9 - (-1)" reads (and evaluates) as meant.
    return f"({value})" if value < 0 else str(value)


def formula_lines(geo: Geometry) -> list[str]:
    """Per spatial axis, the spec notes' section-2 formulas with this case's numbers.

    Every "= numbers = result" evaluates, as written, to its result; the split line says
    what the reading in force does with T.
    """
    lines = []
    upper = _upper(geo.auto_pad, geo.opset, geo.readings)
    v1 = ", v1 text of opset 1" if upper != (geo.auto_pad == "SAME_UPPER") else ""
    for i, ax in enumerate(geo.axes):
        lines.append(
            f"axis {i}: F = s*(I-1) + a + (k-1)*d + 1 = {ax.stride}*({ax.input}-1) + "
            f"{ax.output_padding} + ({ax.kernel}-1)*{ax.dilation} + 1 = {ax.full_extent}"
        )
        if geo.rule is Rule.VALID:
            lines.append(f"        VALID: no padding, O = F = {ax.output}")
            continue
        if geo.rule is Rule.OUTPUT_SHAPE:
            numbers = f"{ax.full_extent} - {ax.target} = {ax.total_padding}"
            lines.append(f"        T = F - output_shape = {numbers}")
        elif geo.rule is Rule.SAME:
            if ax.target == ax.input * ax.stride:
                what, numbers = "input*stride", f"{ax.input}*{ax.stride}"
            else:  # same-with-output-padding read as "added"
                what = "(input*stride + output_padding)"
                numbers = f"({ax.input}*{ax.stride} + {ax.output_padding})"
            lines.append(f"        T = F - {what} = {ax.full_extent} - {numbers} = {ax.total_padding}")
        if geo.rule is not Rule.PADS:
            how = _split_text(ax.total_padding, upper, geo.readings[rd.NEGATIVE_TOTAL_PADDING], geo.rule)
            pads = f"pad_begin = {ax.pad_begin}, pad_end = {ax.pad_end}"
            lines.append(f"        split ({geo.auto_pad}{v1}: {how}): {pads}")
        lines.append(
            f"        O = F - pad_begin - pad_end = {ax.full_extent} - {_num(ax.pad_begin)} - "
            f"{_num(ax.pad_end)} = {ax.output}"
        )
    return lines


def reject_ambiguities(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    attributes: Mapping[str, object],
    opset: int,
    b_shape: Sequence[int] | None,
    dtype: str,
) -> list[str]:
    """The ambiguities under another reading of which a must-reject node is valid: a runtime
    that follows that reading and runs it diverges, it does not accept an invalid model
    (output-shape-rank: a full-rank output_shape whose N and C entries match). Empty when the
    geometry accepts the node under the default readings (mixed element types)."""

    def valid(readings: Mapping[str, str]) -> bool:
        try:
            geometry(
                x_shape, w_shape, **attributes, opset=opset, b_shape=b_shape, dtype=dtype, readings=readings
            )
        except SpecError:
            return False
        return True

    if valid({}):
        return []
    return [aid for aid, amb in rd.AMBIGUITIES.items() if any(valid({aid: r}) for r in amb.readings)]
