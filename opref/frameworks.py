"""Framework transposed-convolution layers spelled exactly as ONNX ConvTranspose attributes.

Each ``from_*`` function takes a layer in its framework's own terms and returns a
:class:`Spelling`: ONNX attributes under which :func:`opref.conv_transpose` computes exactly
what the framework computes, the ids of the ambiguities (:mod:`opref.readings`) that result
depends on, and notes on the spellings that look equivalent and are not.

Every framework here computes the same scatter (spec notes section 2): tap ``k`` of input
position ``i`` lands at ``i*s + k*d - pad_begin`` of the output. They differ only in how they
choose ``pad_begin`` and the output size ``O``. Given those, the exact ONNX spelling is
explicit: ``pads`` begin ``pad_begin``, and at the end what the full extent
``F = s*(I-1) + (k-1)*d + 1`` leaves beyond ``pad_begin + O`` — or, where the output reaches
past ``F``, ``output_padding`` for the difference. Explicit pads never split a total padding,
so the spelling is free of ``negative-total-padding`` and ``opset1-split``; ``output_shape``
and ``auto_pad`` are used by no spelling, because they would (notes say where they differ).

Shapes are in ONNX layout: X is (N, C, spatial...) and W is (C, M/group, kernel...). From a
framework's own layout:

- PyTorch and Paddle (NCHW): X and W already are (``ConvTranspose*d.weight`` is
  (C_in, C_out/groups, k...)).
- TensorFlow ``tf.nn.conv*d_transpose`` (NHWC; filter (k..., M, C)):
  ``x_shape = (N, x.shape[-1], *x.shape[1:-1])``,
  ``w_shape = (w.shape[-1], w.shape[-2], *w.shape[:-2])``.
- Keras ``Conv*DTranspose`` (channels_last; kernel (k..., M, C)): as TensorFlow.
- TFLite ``TRANSPOSE_CONV`` (input NHWC, weights OHWI = (M, kh, kw, C)):
  ``w_shape = (w.shape[3], w.shape[0], w.shape[1], w.shape[2])``.

Arrays move the same way (``np.moveaxis``/``transpose`` with the permutation above). Integer
arguments are one int for every spatial axis or one per axis. A framework argument the
framework itself refuses raises :class:`opref.SpecError` (a ValueError) naming it.
"""

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
class _Layer:
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


def _int(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise SpecError(name, value, "must be an integer")
    try:
        return operator.index(value)
    except TypeError:
        raise SpecError(name, value, "must be an integer") from None


def _per_axis(name: str, value: object, r: int, minimum: int | None = None) -> tuple[int, ...]:
    """One int for every spatial axis, or a sequence of exactly ``r`` ints."""
    if isinstance(value, str | bytes | Mapping):
        raise SpecError(name, value, f"must be an integer or {r} integers")
    if isinstance(value, Sequence):
        values = tuple(_int(f"{name}[{i}]", v) for i, v in enumerate(value))
        if len(values) != r:
            raise SpecError(name, list(values), f"must have {r} entries (one per spatial axis)")
    else:
        values = (_int(name, value),) * r
    if minimum is not None:
        for i, v in enumerate(values):
            if v < minimum:
                raise SpecError(name if len(set(values)) == 1 else f"{name}[{i}]", v, f"must be >= {minimum}")
    return values


def _shapes(x_shape: object, w_shape: object) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """X and W shapes as int tuples and the number of spatial axes; the rest of their rules
    (channels, group) are checked by :func:`opref.geometry` on the spelling."""
    if isinstance(x_shape, str | bytes) or not isinstance(x_shape, Sequence):
        raise SpecError("x_shape", x_shape, "must be a sequence of integers (N, C, spatial...)")
    if isinstance(w_shape, str | bytes) or not isinstance(w_shape, Sequence):
        raise SpecError("w_shape", w_shape, "must be a sequence of integers (C, M/group, kernel...)")
    x = tuple(_int(f"x_shape[{i}]", v) for i, v in enumerate(x_shape))
    w = tuple(_int(f"w_shape[{i}]", v) for i, v in enumerate(w_shape))
    if len(x) < 3:
        raise SpecError("x_shape", list(x), "must have rank >= 3 (N, C, at least one spatial axis)")
    if len(w) != len(x):
        raise SpecError("w_shape", list(w), f"must have the rank of x_shape, {len(x)}")
    for name, shape in (("x_shape", x[1:]), ("w_shape", w)):
        if any(v < 1 for v in shape):
            raise SpecError(name, list(x if name == "x_shape" else w), "must have sizes >= 1 (N may be 0)")
    return x, w, len(x) - 2


def _spatial_target(name: str, value: object, x: tuple[int, ...], m: int) -> tuple[int, ...]:
    """An output size list: the spatial sizes, or N, C and the spatial sizes."""
    r = len(x) - 2
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise SpecError(name, value, f"must list {r} spatial sizes (or N, C and them)")
    sizes = tuple(_int(f"{name}[{i}]", v) for i, v in enumerate(value))
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


def _output_channels(w: tuple[int, ...], group: int) -> int:
    return w[1] * group


def _group(name: str, value: object, x: tuple[int, ...]) -> int:
    group = _int(name, value)
    if group < 1:
        raise SpecError(name, group, "must be >= 1")
    if x[1] % group:
        raise SpecError(name, group, f"must divide the input channels {x[1]}")
    return group


def _attributes(layer: _Layer, pad_end: Sequence[int], output_padding: Sequence[int]) -> dict:
    return {
        "strides": layer.strides,
        "dilations": layer.dilations,
        "group": layer.group,
        "pads": tuple(layer.pad_begin) + tuple(pad_end),
        "output_padding": tuple(output_padding),
    }


def _spell(layer: _Layer, notes: list[str]) -> Spelling:
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


def _split_readings(layer: _Layer, alternative: Mapping[str, object]) -> tuple[list[str], object]:
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


def _compare(layer: _Layer, alternative: dict, what: str, notes: list[str]) -> None:
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
    x, w, r = _shapes(x_shape, w_shape)
    s = _per_axis("stride", stride, r, 1)
    p = _per_axis("padding", padding, r, 0)
    d = _per_axis("dilation", dilation, r, 1)
    a = _per_axis("output_padding", output_padding, r, 0)
    group = _group("groups", groups, x)
    notes: list[str] = []
    if output_size is not None:
        target = _spatial_target("output_size", output_size, x, _output_channels(w, group))
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
    layer = _Layer("PyTorch", x, w, group, s, d, p, p, a)
    out = layer.outputs()
    for i in range(r):
        if out[i] < 1:
            raise SpecError(
                "padding",
                list(p),
                f"leaves output size {out[i]} on spatial axis {i} (PyTorch needs >= 1)",
            )
    if output_size is not None:
        _compare(
            layer,
            {"strides": s, "dilations": d, "group": group, "output_shape": out},
            f"output_shape={list(out)}",
            notes,
        )
    return _spell(layer, notes)


# --- TensorFlow, TFLite and Keras ----------------------------------------------------------


def _tf_layer(
    framework: str,
    x: tuple[int, ...],
    w: tuple[int, ...],
    target: tuple[int, ...],
    s: tuple[int, ...],
    d: tuple[int, ...],
    padding: object,
) -> _Layer:
    """TensorFlow's conv_transpose: the gradient of the forward convolution of an input of
    size ``target`` that gives X, so pad_begin is that convolution's: for SAME,
    ⌊max((⌈O/s⌉-1)*s + K - O, 0)/2⌋ (K = (k-1)*d + 1); for VALID, 0; explicit pairs as given.
    X's size must be that convolution's output size, as TensorFlow checks."""
    r = len(s)
    begins, expected = [], []
    if isinstance(padding, str) and padding.upper() in ("SAME", "VALID"):
        mode = padding.upper()
        pairs = None
    elif isinstance(padding, Sequence) and not isinstance(padding, str | bytes):
        mode = "EXPLICIT"
        pairs = []
        if len(padding) != r:
            raise SpecError("padding", padding, f"must be 'SAME', 'VALID' or {r} (begin, end) pairs")
        for i, pair in enumerate(padding):
            if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise SpecError(f"padding[{i}]", pair, "must be a (begin, end) pair")
            b, e = _int(f"padding[{i}][0]", pair[0]), _int(f"padding[{i}][1]", pair[1])
            if b < 0 or e < 0:
                raise SpecError(f"padding[{i}]", [b, e], "must be >= 0")
            pairs.append((b, e))
    else:
        raise SpecError("padding", padding, f"must be 'SAME', 'VALID' or {r} (begin, end) pairs")
    for i in range(r):
        k_eff = (w[2 + i] - 1) * d[i] + 1
        o = target[i]
        if mode == "SAME":
            forward = -(-o // s[i])
            begins.append(max((forward - 1) * s[i] + k_eff - o, 0) // 2)
        elif mode == "VALID":
            forward = (o - k_eff) // s[i] + 1 if o >= k_eff else 0
            begins.append(0)
        else:
            b, e = pairs[i]
            forward = (o + b + e - k_eff) // s[i] + 1 if o + b + e >= k_eff else 0
            begins.append(b)
        expected.append(forward)
    if tuple(expected) != x[2:]:
        raise SpecError(
            "output_shape",
            list(target),
            f"does not fit the input: a forward convolution ({mode}) of this size gives "
            f"{expected}, not X's {list(x[2:])} ({framework} refuses it; TFLite's "
            "TRANSPOSE_CONV does not check it; opref spells only what TensorFlow accepts)",
        )
    ends, extra = [], []
    for i in range(r):
        full = s[i] * (x[2 + i] - 1) + (w[2 + i] - 1) * d[i] + 1
        rest = full - begins[i] - target[i]
        ends.append(max(rest, 0))
        extra.append(max(-rest, 0))
    return _Layer(framework, x, w, 1, s, d, tuple(begins), tuple(ends), tuple(extra))


def from_tensorflow(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    output_shape: Sequence[int],
    *,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    dilations: int | Sequence[int] = 1,
) -> Spelling:
    """``tf.nn.conv{1,2,3}d_transpose`` / ``tf.nn.conv_transpose`` and TFLite
    ``TRANSPOSE_CONV`` as ONNX attributes.

    ``output_shape`` is the op's output shape: its spatial sizes, or N, M and them (ONNX
    order; TensorFlow's own is NHWC). ``padding`` is 'SAME', 'VALID' or one (begin, end)
    pair per spatial axis. TensorFlow defines the op as the gradient of the forward
    convolution of an ``output_shape`` input, so the begin pad is that convolution's (SAME:
    total max((⌈O/s⌉-1)*s + K - O, 0), the odd unit at the end) and X must have that
    convolution's output size. ``strides``/``dilations`` are the spatial entries.

    ONNX ``auto_pad=SAME_UPPER`` is not TensorFlow's SAME where K < stride: ONNX's total
    padding K - s is then negative, TensorFlow's zero (the extra rows are zeros at the end).
    """
    x, w, r = _shapes(x_shape, w_shape)
    s = _per_axis("strides", strides, r, 1)
    d = _per_axis("dilations", dilations, r, 1)
    target = _spatial_target("output_shape", output_shape, x, w[1])
    layer = _tf_layer("TensorFlow", x, w, target, s, d, padding)
    notes: list[str] = []
    _compare_same(layer, padding, notes)
    return _spell(layer, notes)


def _compare_same(layer: _Layer, padding: object, notes: list[str]) -> None:
    """For SAME with output I*s: whether ONNX SAME_UPPER would compute the same."""
    if not (isinstance(padding, str) and padding.upper() == "SAME"):
        return
    r = len(layer.strides)
    if layer.outputs() == tuple(layer.x[2 + i] * layer.strides[i] for i in range(r)):
        base = {"strides": layer.strides, "dilations": layer.dilations, "group": layer.group}
        _compare(layer, {**base, "auto_pad": "SAME_UPPER"}, "auto_pad=SAME_UPPER", notes)


def from_keras(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: str = "valid",
    output_padding: int | Sequence[int] | None = None,
    dilation_rate: int | Sequence[int] = 1,
) -> Spelling:
    """Keras ``Conv{1,2,3}DTranspose`` as ONNX attributes.

    Keras sets the output size (its ``deconv_output_length``; K = (k-1)*dilation + 1):
    'valid' gives (I-1)*s + K + output_padding, output_padding defaulting to
    max(K, s) - K; 'same' gives I*s, or (I-1)*s + K mod 2 + output_padding when
    output_padding is given. It then runs TensorFlow's conv_transpose with that output
    shape (begin pad ⌊max((I-1)*s + K - O, 0)/2⌋ for 'same', 0 for 'valid'); the JAX backend's
    padding gives the same. Its torch backend crops a symmetric padding instead and can
    differ (a note says where). Keras requires output_padding < strides.
    """
    x, w, r = _shapes(x_shape, w_shape)
    s = _per_axis("strides", strides, r, 1)
    d = _per_axis("dilation_rate", dilation_rate, r, 1)
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise SpecError("padding", padding, "must be 'valid' or 'same' (Keras)")
    mode = padding.lower()
    a = None if output_padding is None else _per_axis("output_padding", output_padding, r, 0)
    if a is not None:
        for i in range(r):
            if a[i] >= s[i]:
                raise SpecError(f"output_padding[{i}]", a[i], f"must be less than strides={s[i]} (Keras)")
    target = []
    for i in range(r):
        i_size, k_eff = x[2 + i], (w[2 + i] - 1) * d[i] + 1
        if mode == "valid":
            extra = max(k_eff, s[i]) - k_eff if a is None else a[i]
            target.append((i_size - 1) * s[i] + k_eff + extra)
        elif a is None:
            target.append(i_size * s[i])
        else:
            target.append((i_size - 1) * s[i] + k_eff % 2 + a[i])
    for i, o in enumerate(target):
        if o < 1:
            raise SpecError(f"output_padding[{i}]", a[i], f"leaves output size {o} on spatial axis {i}")
    begins, ends, extra = [], [], []
    for i in range(r):
        full = s[i] * (x[2 + i] - 1) + (w[2 + i] - 1) * d[i] + 1
        b = max(full - target[i], 0) // 2 if mode == "same" else 0
        rest = full - b - target[i]
        begins.append(b)
        ends.append(max(rest, 0))
        extra.append(max(-rest, 0))
    layer = _Layer("Keras", x, w, 1, s, d, tuple(begins), tuple(ends), tuple(extra))
    notes: list[str] = []
    if mode == "same" and a is not None:
        fits = all(-(-target[i] // s[i]) == x[2 + i] for i in range(r))
        if not fits:
            notes.append(
                f"Keras' TensorFlow backend refuses this output_padding (its output {target} "
                "does not give X under a forward SAME convolution); the value spelled is the "
                "JAX backend's"
            )
    torch_begins = [
        _keras_torch_padding(w[2 + i], s[i], d[i], mode, None if a is None else a[i]) for i in range(r)
    ]
    if tuple(torch_begins) != layer.pad_begin:
        notes.append(
            f"Keras' torch backend crops {torch_begins} at the beginning here, not {list(layer.pad_begin)} "
            "(Keras warns of inconsistencies across backends): this spelling is the TensorFlow "
            "and JAX backends' result"
        )
    _compare_same(layer, mode, notes)
    return _spell(layer, notes)


def _keras_torch_padding(k: int, s: int, d: int, mode: str, a: int | None) -> int:
    """The begin pad of Keras' torch backend, which maps 'same' to a symmetric torch padding
    P = max(-⌊(K mod 2 - K + a)/2⌋, 0), a defaulting to s - K mod 2, plus output_padding."""
    if mode == "valid":
        return 0
    k_eff = (k - 1) * d + 1
    a = s - k_eff % 2 if a is None else a
    return max(-((k_eff % 2 - k_eff + a) // 2), 0)


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
        flat = [_int(f"padding[{i}][{j}]", padding[i][j]) for i in range(r) for j in (0, 1)]
    elif isinstance(padding, Sequence) and len(padding) == 2 * r:
        flat = [_int(f"padding[{i}]", v) for i, v in enumerate(padding)]
    else:
        sym = _per_axis("padding", padding, r)
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
    x, w, r = _shapes(x_shape, w_shape)
    s = _per_axis("stride", stride, r, 1)
    d = _per_axis("dilation", dilation, r, 1)
    a = _per_axis("output_padding", output_padding, r, 0)
    group = _group("groups", groups, x)
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
        target = _spatial_target("output_size", output_size, x, _output_channels(w, group))
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
    layer = _Layer("Paddle", x, w, group, s, d, begins, ends, a)
    if mode == "SAME" and not any(a):
        same = {"strides": s, "dilations": d, "group": group, "auto_pad": "SAME_UPPER"}
        _compare(layer, same, "auto_pad=SAME_UPPER", notes)
    return _spell(layer, notes)


SPELLERS = MappingProxyType(
    {"pytorch": from_pytorch, "keras": from_keras, "tensorflow": from_tensorflow, "paddle": from_paddle}
)
