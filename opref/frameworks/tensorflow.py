"""TensorFlow ``tf.nn.conv*d_transpose``, TFLite ``TRANSPOSE_CONV`` and Keras ``Conv*DTranspose``
spelled in ONNX."""

from __future__ import annotations

from collections.abc import Sequence

from opref.errors import SpecError
from opref.frameworks.spelling import (
    FrameworkLayer,
    Spelling,
    check_int,
    check_shapes,
    compare_alternative,
    per_axis,
    spatial_target,
    spell,
)

# --- TensorFlow, TFLite and Keras ----------------------------------------------------------


def _tf_layer(
    framework: str,
    x: tuple[int, ...],
    w: tuple[int, ...],
    target: tuple[int, ...],
    s: tuple[int, ...],
    d: tuple[int, ...],
    padding: object,
) -> FrameworkLayer:
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
            b, e = check_int(f"padding[{i}][0]", pair[0]), check_int(f"padding[{i}][1]", pair[1])
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
    return FrameworkLayer(framework, x, w, 1, s, d, tuple(begins), tuple(ends), tuple(extra))


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
    x, w, r = check_shapes(x_shape, w_shape)
    s = per_axis("strides", strides, r, 1)
    d = per_axis("dilations", dilations, r, 1)
    target = spatial_target("output_shape", output_shape, x, w[1])
    layer = _tf_layer("TensorFlow", x, w, target, s, d, padding)
    notes: list[str] = []
    _compare_same(layer, padding, notes)
    return spell(layer, notes)


def _compare_same(layer: FrameworkLayer, padding: object, notes: list[str]) -> None:
    """For SAME with output I*s: whether ONNX SAME_UPPER would compute the same."""
    if not (isinstance(padding, str) and padding.upper() == "SAME"):
        return
    r = len(layer.strides)
    if layer.outputs() == tuple(layer.x[2 + i] * layer.strides[i] for i in range(r)):
        base = {"strides": layer.strides, "dilations": layer.dilations, "group": layer.group}
        compare_alternative(layer, {**base, "auto_pad": "SAME_UPPER"}, "auto_pad=SAME_UPPER", notes)


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
    x, w, r = check_shapes(x_shape, w_shape)
    s = per_axis("strides", strides, r, 1)
    d = per_axis("dilation_rate", dilation_rate, r, 1)
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise SpecError("padding", padding, "must be 'valid' or 'same' (Keras)")
    mode = padding.lower()
    a = None if output_padding is None else per_axis("output_padding", output_padding, r, 0)
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
    layer = FrameworkLayer("Keras", x, w, 1, s, d, tuple(begins), tuple(ends), tuple(extra))
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
    return spell(layer, notes)


def _keras_torch_padding(k: int, s: int, d: int, mode: str, a: int | None) -> int:
    """The begin pad of Keras' torch backend, which maps 'same' to a symmetric torch padding
    P = max(-⌊(K mod 2 - K + a)/2⌋, 0), a defaulting to s - K mod 2, plus output_padding."""
    if mode == "valid":
        return 0
    k_eff = (k - 1) * d + 1
    a = s - k_eff % 2 if a is None else a
    return max(-((k_eff % 2 - k_eff + a) // 2), 0)


