"""opref.frameworks: framework layers spelled exactly in ONNX.

Expected values never come from opref. They come from (a) the frameworks' own documented
formulas, written out below; (b) a direct scatter loop of each framework's definition,
written here from its documentation: tap k of input i lands at i*s + k*d of the full
result, of which the framework keeps the window [pad_begin, pad_begin + O), zeros past its
end; (c) numbers transcribed from the frameworks' own unit tests (the source named at each).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import opref
from opref import readings as rd
from opref.frameworks import from_keras, from_paddle, from_pytorch, from_tensorflow

# --- the frameworks' definitions, written from their documentation --------------------------


def full_scatter(X, W, strides, dilations, group=1):
    """Every product X[n, c, i] * W[c, m, k] added at i*s + k*d: the unpadded result."""
    n_, c_ = X.shape[:2]
    r = X.ndim - 2
    mg, cg = W.shape[1], c_ // group
    extent = [(X.shape[2 + i] - 1) * strides[i] + (W.shape[2 + i] - 1) * dilations[i] + 1 for i in range(r)]
    Y = np.zeros((n_, mg * group, *extent))
    for n, c in itertools.product(range(n_), range(c_)):
        g = c // cg
        for pos in itertools.product(*(range(v) for v in X.shape[2:])):
            for m in range(mg):
                for k in itertools.product(*(range(v) for v in W.shape[2:])):
                    at = tuple(pos[i] * strides[i] + k[i] * dilations[i] for i in range(r))
                    Y[(n, g * mg + m, *at)] += X[(n, c, *pos)] * W[(c, m, *k)]
    return Y


def window(Y, begins, sizes):
    """Y[..., b : b + O] per spatial axis (b >= 0), zeros where it runs past Y's end."""
    out = np.zeros((*Y.shape[:2], *sizes))
    src = tuple(slice(b, min(b + o, n)) for b, o, n in zip(begins, sizes, Y.shape[2:], strict=True))
    dst = tuple(slice(0, s.stop - s.start) for s in src)
    out[(slice(None), slice(None), *dst)] = Y[(slice(None), slice(None), *src)]
    return out


def torch_like(X, W, stride, padding, output_padding, dilation, groups=1):
    """PyTorch ConvTranspose docs: H_out = (H_in-1)*stride - 2*padding + dilation*(k-1)
    + output_padding + 1; the padding is cropped from the beginning."""
    sizes = [
        (X.shape[2 + i] - 1) * stride[i]
        - 2 * padding[i]
        + dilation[i] * (W.shape[2 + i] - 1)
        + output_padding[i]
        + 1
        for i in range(X.ndim - 2)
    ]
    return window(full_scatter(X, W, stride, dilation, groups), padding, sizes)


def tf_like(X, W, out_sizes, strides, padding, dilations):
    """tf.nn.conv_transpose: the gradient of the forward convolution of an out_sizes input.
    TF's padding definition for SAME: pad_along = max((out - 1)*s + K - in, 0) with in the
    forward input (our output) and out = ceil(in / s); pad_before = pad_along // 2."""
    begins = []
    for i, o in enumerate(out_sizes):
        k_eff = (W.shape[2 + i] - 1) * dilations[i] + 1
        if padding == "SAME":
            forward_out = -(-o // strides[i])
            begins.append(max((forward_out - 1) * strides[i] + k_eff - o, 0) // 2)
        elif padding == "VALID":
            begins.append(0)
        else:  # explicit (begin, end) pairs: the forward convolution's own padding
            begins.append(padding[i][0])
    return window(full_scatter(X, W, strides, dilations), begins, out_sizes)


def keras_length(i, k, padding, output_padding, stride, dilation):
    """Keras' deconv_output_length."""
    k = k + (k - 1) * (dilation - 1)
    if output_padding is None:
        return i * stride + max(k - stride, 0) if padding == "valid" else i * stride
    pad = k // 2 if padding == "same" else 0
    return (i - 1) * stride + k - 2 * pad + output_padding


def keras_jax_like(X, W, strides, padding, output_padding, dilation):
    """Keras' JAX backend (keras/src/backend/common/backend_utils.py): the input dilated by
    the stride, padded (left, right) and correlated with the flipped kernel. 'valid':
    left = K-1, right = K-1 + a (a defaulting to max(K, s) - K); 'same': a total of
    s + K - 2 (a None) or K + K mod 2 - 2 + a, left = min(ceil(total/2), K-1). Output
    position 0 is scatter position K-1-left."""
    begins, sizes = [], []
    for i in range(X.ndim - 2):
        k_eff, s = (W.shape[2 + i] - 1) * dilation[i] + 1, strides[i]
        a = None if output_padding is None else output_padding[i]
        if padding == "valid":
            left, right = k_eff - 1, k_eff - 1 + (max(k_eff, s) - k_eff if a is None else a)
        else:
            total = s + k_eff - 2 if a is None else k_eff + k_eff % 2 - 2 + a
            left = min(-(-total // 2), k_eff - 1)
            right = total - left
        begins.append(k_eff - 1 - left)
        sizes.append((X.shape[2 + i] - 1) * s + 1 + left + right - k_eff + 1)
    return window(full_scatter(X, W, strides, dilation), begins, sizes)


def paddle_pads_and_base(x_shape, w_shape, stride, padding, dilation):
    """Paddle conv2d_transpose docs: H_out = (H_in-1)*stride - pad_top - pad_bottom
    + dilation*(k-1) + 1. padding='SAME': pad_sum = max((ceil(I/s)-1)*s + k - I, 0),
    pad_top = pad_sum // 2, dilation 1 (Paddle's own test reference,
    test_conv2d_transpose_op.py); 'VALID': 0."""
    r = len(x_shape) - 2
    if padding == "SAME":
        dilation = [1] * r
        pairs = []
        for i in range(r):
            size, k, s = x_shape[2 + i], w_shape[2 + i], stride[i]
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pairs.append((total // 2, total - total // 2))
    elif padding == "VALID":
        pairs = [(0, 0)] * r
    else:
        pairs = padding
    base = [
        (x_shape[2 + i] - 1) * stride[i] - pairs[i][0] - pairs[i][1] + dilation[i] * (w_shape[2 + i] - 1) + 1
        for i in range(r)
    ]
    return pairs, base, dilation


def paddle_like(X, W, stride, padding, output_padding, dilation, output_size=None, groups=1):
    """Paddle's result: the base size plus output_padding at the end, or output_size (in
    [base, base + stride)) instead."""
    pairs, base, dilation = paddle_pads_and_base(X.shape, W.shape, stride, padding, dilation)
    sizes = (
        list(output_size)
        if output_size is not None
        else [b + a for b, a in zip(base, output_padding, strict=True)]
    )
    return window(full_scatter(X, W, stride, dilation, groups), [p[0] for p in pairs], sizes)


def arrays(seed, x_shape, w_shape):
    # Small integers: every sum is exact in float64, so equality is exact.
    rng = np.random.default_rng(seed)
    X = rng.integers(-3, 4, size=x_shape).astype(np.float64)
    W = rng.integers(-3, 4, size=w_shape).astype(np.float64)
    return X, W


def spelled(X, W, spelling, **kw):
    return opref.conv_transpose(X, W, **spelling.attributes, **kw)


def assert_same(got, want, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_array_equal(got, want, err_msg=what)


# --- the scatter loop itself, by hand --------------------------------------------------------


def test_the_test_loop_by_hand():
    # X = [1, 2], W = [1, 10], stride 2: [1, 10, 2, 20]; PyTorch padding 1 crops one each side.
    X = np.array([1.0, 2.0]).reshape(1, 1, 2)
    W = np.array([1.0, 10.0]).reshape(1, 1, 2)
    np.testing.assert_array_equal(torch_like(X, W, [2], [0], [0], [1])[0, 0], [1, 10, 2, 20])
    np.testing.assert_array_equal(torch_like(X, W, [2], [1], [1], [1])[0, 0], [10, 2, 20])
    np.testing.assert_array_equal(torch_like(X, W, [2], [0], [1], [1])[0, 0], [1, 10, 2, 20, 0])


# --- drawn layers against the loops ------------------------------------------------------------

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def torch_layers(draw):
    r = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 2))
    c, mg = groups * draw(st.integers(1, 2)), draw(st.integers(1, 2))
    axes = []
    for _ in range(r):
        size, k, s, d = (
            draw(st.integers(1, 4)),
            draw(st.integers(1, 4)),
            draw(st.integers(1, 3)),
            draw(st.integers(1, 3)),
        )
        a = draw(st.integers(0, max(s, d) - 1))
        full = (size - 1) * s + d * (k - 1) + 1 + a
        p = draw(st.integers(0, max(0, (full - 1) // 2)))
        axes.append((size, k, s, d, a, p))
    use_size = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return r, groups, c, mg, axes, use_size, seed


@SETTINGS
@given(torch_layers())
def test_pytorch_spelling_computes_what_pytorch_does(layer):
    r, groups, c, mg, axes, use_size, seed = layer
    x_shape = (2, c, *(a[0] for a in axes))
    w_shape = (c, mg, *(a[1] for a in axes))
    _, _, s, d, a, p = (list(v) for v in zip(*axes, strict=True))
    X, W = arrays(seed, x_shape, w_shape)
    want = torch_like(X, W, s, p, a, d, groups)
    kw = dict(stride=s, padding=p, dilation=d, groups=groups)
    if use_size and all(a[i] < s[i] for i in range(r)):
        sp = from_pytorch(x_shape, w_shape, **kw, output_size=list(want.shape[2:]))
    else:
        sp = from_pytorch(x_shape, w_shape, **kw, output_padding=a)
    what = f"X{x_shape} W{w_shape} {kw} output_padding={a}: {dict(sp.attributes)}"
    assert_same(spelled(X, W, sp), want, what)
    assert sp.output_shape == want.shape, what
    bound = any(s[i] <= sp.attributes["output_padding"][i] < d[i] for i in range(r))
    assert sp.ambiguities == ((rd.OUTPUT_PADDING_BOUND,) if bound else ()), what


@st.composite
def tf_layers(draw):
    r = draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["SAME", "VALID", "EXPLICIT"]))
    axes, pairs = [], []
    for _ in range(r):
        size, k, s, d = (
            draw(st.integers(1, 4)),
            draw(st.integers(1, 4)),
            draw(st.integers(1, 4)),
            draw(st.integers(1, 2)),
        )
        k_eff = (k - 1) * d + 1
        # The output sizes TF accepts: those whose forward convolution gives X's size.
        if padding == "SAME":
            o = draw(st.integers((size - 1) * s + 1, size * s))
        elif padding == "VALID":
            o = draw(st.integers((size - 1) * s + k_eff, (size - 1) * s + k_eff + s - 1))
        else:
            b, e = draw(st.integers(0, 2)), draw(st.integers(0, 2))
            low = (size - 1) * s + k_eff - b - e
            assume(low + s - 1 >= 1)
            o = draw(st.integers(max(low, 1), low + s - 1))
            pairs.append([b, e])
        axes.append((size, k, s, d, o))
    return r, pairs if padding == "EXPLICIT" else padding, axes, draw(st.integers(0, 2**16))


@SETTINGS
@given(tf_layers())
def test_tensorflow_spelling_computes_what_tensorflow_does(layer):
    _, padding, axes, seed = layer
    size, k, s, d, o = (list(v) for v in zip(*axes, strict=True))
    x_shape, w_shape = (1, 2, *size), (2, 3, *k)
    X, W = arrays(seed, x_shape, w_shape)
    sp = from_tensorflow(x_shape, w_shape, o, strides=s, padding=padding, dilations=d)
    what = f"X{x_shape} W{w_shape} output {o} strides={s} {padding} dilations={d}: {dict(sp.attributes)}"
    assert_same(spelled(X, W, sp), tf_like(X, W, o, s, padding, d), what)
    assert sp.ambiguities == (), what


@st.composite
def keras_layers(draw):
    r = draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["same", "valid"]))
    axes = [
        (draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 2)))
        for _ in range(r)
    ]
    given_padding = draw(st.booleans())
    out_pad = [draw(st.integers(0, ax[2] - 1)) for ax in axes] if given_padding else None
    return r, padding, axes, out_pad, draw(st.integers(0, 2**16))


@SETTINGS
@given(keras_layers())
def test_keras_spelling_computes_what_keras_does(layer):
    r, padding, axes, out_pad, seed = layer
    size, k, s, d = (list(v) for v in zip(*axes, strict=True))
    x_shape, w_shape = (1, 1, *size), (1, 2, *k)
    lengths = [
        keras_length(size[i], k[i], padding, None if out_pad is None else out_pad[i], s[i], d[i])
        for i in range(r)
    ]
    if min(lengths) < 1:
        with pytest.raises(opref.SpecError):
            from_keras(x_shape, w_shape, strides=s, padding=padding, output_padding=out_pad, dilation_rate=d)
        return
    X, W = arrays(seed, x_shape, w_shape)
    sp = from_keras(x_shape, w_shape, strides=s, padding=padding, output_padding=out_pad, dilation_rate=d)
    what = f"X{x_shape} W{w_shape} strides={s} {padding} output_padding={out_pad} dilation={d}"
    want = keras_jax_like(X, W, s, padding, out_pad, d)
    assert want.shape[2:] == tuple(lengths), what
    assert_same(spelled(X, W, sp), want, what)
    assert sp.ambiguities == (), what
    # Where TensorFlow accepts the output size (its forward convolution gives X back), the
    # TensorFlow backend computes the same.
    k_eff = [(k[i] - 1) * d[i] + 1 for i in range(r)]
    if padding == "same":
        fits = all(-(-lengths[i] // s[i]) == size[i] for i in range(r))
    else:
        fits = all(
            lengths[i] >= k_eff[i] and (lengths[i] - k_eff[i]) // s[i] + 1 == size[i] for i in range(r)
        )
    if fits:
        assert_same(want, tf_like(X, W, lengths, s, padding.upper(), d), what + " (TF backend)")


@st.composite
def paddle_layers(draw):
    r = draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["SAME", "VALID", "pairs"]))
    axes = []
    for _ in range(r):
        size, k, s, d = (
            draw(st.integers(1, 5)),
            draw(st.integers(1, 4)),
            draw(st.integers(1, 3)),
            draw(st.integers(1, 3)),
        )
        pair = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        axes.append((size, k, s, d, pair))
    mode = draw(st.sampled_from(["none", "output_padding", "output_size"]))
    extra = [draw(st.integers(0, max(ax[2], ax[3]) - 1)) for ax in axes]
    return r, kind, axes, mode, extra, draw(st.integers(0, 2**16))


@SETTINGS
@given(paddle_layers())
def test_paddle_spelling_computes_what_paddle_does(layer):
    r, kind, axes, mode, extra, seed = layer
    size, k, s, d, pairs = (list(v) for v in zip(*axes, strict=True))
    x_shape, w_shape = (1, 2, *size), (2, 1, *k)
    X, W = arrays(seed, x_shape, w_shape)
    padding = kind if kind != "pairs" else pairs
    zero = [0] * r
    flat = padding if kind != "pairs" else [v for pair in pairs for v in pair]
    _, base, _ = paddle_pads_and_base(x_shape, w_shape, s, padding, d)
    if min(base) < 1:
        with pytest.raises(opref.SpecError, match="output size"):
            from_paddle(x_shape, w_shape, stride=s, padding=flat, dilation=d)
        return
    out_pad, out_size = zero, None
    if mode == "output_padding":
        # Paddle's bound is max(stride, dilation) with the dilation it uses: 1 under SAME.
        out_pad = [e % s[i] for i, e in enumerate(extra)] if kind == "SAME" else extra
    elif mode == "output_size":
        out_size = [base[i] + extra[i] % s[i] for i in range(r)]
    sp = from_paddle(
        x_shape, w_shape, stride=s, padding=flat, output_padding=out_pad, dilation=d, output_size=out_size
    )
    want = paddle_like(X, W, s, padding, out_pad, d, out_size)
    what = f"X{x_shape} W{w_shape} stride={s} padding={padding} dilation={d} {mode}={extra}"
    assert_same(spelled(X, W, sp), want, what)
    assert rd.NEGATIVE_TOTAL_PADDING not in sp.ambiguities, what


# --- the facts the spellings rest on --------------------------------------------------------


def test_pytorch_output_size_is_not_onnx_output_shape():
    # in 3, k 3, stride 3, padding 1, output_size 9: output_padding a = 9 - 7 = 2. PyTorch
    # crops 1 at the beginning; ONNX output_shape splits T = 2p - a = 0: begin pad p - a//2 = 0.
    x_shape, w_shape = (1, 1, 3), (1, 1, 3)
    X, W = arrays(1, x_shape, w_shape)
    want = torch_like(X, W, [3], [1], [2], [1])
    sp = from_pytorch(x_shape, w_shape, stride=3, padding=1, output_size=[9])
    assert dict(sp.attributes)["pads"] == (1, 1) and sp.attributes["output_padding"] == (2,)
    assert_same(spelled(X, W, sp), want, "explicit spelling")
    naive = opref.conv_transpose(X, W, strides=[3], output_shape=[9])
    assert naive.shape == want.shape and not np.array_equal(naive, want)
    assert any("output_shape=[9] would differ" in n and "pad_begin [0]" in n for n in sp.notes), sp.notes


def test_pytorch_output_size_under_negative_total_padding_depends_on_the_reading():
    # padding 0, output_padding 1: T = -1. ONNX output_shape matches under floor and clamp,
    # not under trunc (its begin pad would be -1).
    x_shape, w_shape = (1, 1, 3), (1, 1, 2)
    X, W = arrays(2, x_shape, w_shape)
    want = torch_like(X, W, [2], [0], [1], [1])
    sp = from_pytorch(x_shape, w_shape, stride=2, output_size=[7])
    assert sp.ambiguities == ()
    matching = []
    for reading in ("floor", "trunc", "clamp"):
        got = opref.conv_transpose(
            X, W, strides=[2], output_shape=[7], readings={rd.NEGATIVE_TOTAL_PADDING: reading}
        )
        if got.shape == want.shape and np.array_equal(got, want):
            matching.append(reading)
    assert matching == ["floor", "clamp"]
    assert any("floor, clamp" in n for n in sp.notes), sp.notes


@pytest.mark.parametrize(
    ("kernel", "stride", "matching"),
    [(1, 2, ["trunc"]), (2, 4, []), (3, 6, []), (1, 4, []), (3, 2, ["floor", "trunc", "clamp"])],
)
def test_tf_same_is_onnx_same_upper_only_when_the_kernel_reaches_the_stride(kernel, stride, matching):
    # TF SAME, output I*s: total padding max(K - s, 0), zeros at the end. ONNX SAME_UPPER
    # has T = K - s: -1 matches only 'trunc', -2 and -3 match no reading.
    x_shape, w_shape = (1, 1, 3), (1, 1, kernel)
    X, W = arrays(3, x_shape, w_shape)
    want = tf_like(X, W, [3 * stride], [stride], "SAME", [1])
    sp = from_tensorflow(x_shape, w_shape, [3 * stride], strides=stride, padding="SAME")
    assert sp.ambiguities == ()
    assert_same(spelled(X, W, sp), want, "explicit spelling")
    found = []
    for reading in ("floor", "trunc", "clamp"):
        readings = {rd.NEGATIVE_TOTAL_PADDING: reading}
        got = opref.conv_transpose(X, W, strides=[stride], auto_pad="SAME_UPPER", readings=readings)
        if got.shape == want.shape and np.array_equal(got, want):
            found.append(reading)
    assert found == matching
    keras = from_keras(x_shape, w_shape, strides=stride, padding="same")
    assert dict(keras.attributes) == dict(sp.attributes)


def test_paddle_same_equals_onnx_same_only_when_the_input_divides_by_the_stride():
    for size, stride, kernel in itertools.product(range(1, 7), range(1, 4), range(1, 5)):
        x_shape, w_shape = (1, 1, size), (1, 1, kernel)
        X, W = arrays(size * 100 + stride * 10 + kernel, x_shape, w_shape)
        want = paddle_like(X, W, [stride], "SAME", [0], [1])
        onnx = opref.conv_transpose(X, W, strides=[stride], auto_pad="SAME_UPPER")
        equal = onnx.shape == want.shape and np.array_equal(onnx, want)
        assert equal == (size % stride == 0 and kernel >= stride), (size, stride, kernel)
        sp = from_paddle(x_shape, w_shape, stride=stride, padding="SAME")
        assert_same(spelled(X, W, sp), want, f"{(size, stride, kernel)}")


def test_paddle_same_ignores_dilation():
    X, W = arrays(4, (1, 1, 4), (1, 1, 3))
    sp = from_paddle((1, 1, 4), (1, 1, 3), stride=2, padding="same", dilation=3)
    assert sp.attributes["dilations"] == (1,)
    assert_same(spelled(X, W, sp), paddle_like(X, W, [2], "SAME", [0], [3]), "SAME, dilation 3")
    assert any("dilation to 1" in n for n in sp.notes)


def test_burn_stride_1_dilation_2_output_padding_1_touches_output_padding_bound():
    x_shape, w_shape = (1, 1, 4), (1, 1, 3)
    X, W = arrays(5, x_shape, w_shape)
    sp = from_pytorch(x_shape, w_shape, stride=1, dilation=2, output_padding=1)
    assert sp.ambiguities == (rd.OUTPUT_PADDING_BOUND,)
    assert_same(spelled(X, W, sp), torch_like(X, W, [1], [0], [1], [2]), "bound 'max'")
    with pytest.raises(opref.SpecError, match="less than stride"):
        spelled(X, W, sp, readings={rd.OUTPUT_PADDING_BOUND: "stride"})
    # With a padding to absorb it, the output_padding moves into the end pad: no ambiguity.
    padded = from_pytorch(x_shape, w_shape, stride=1, dilation=2, output_padding=1, padding=1)
    assert padded.ambiguities == () and dict(padded.attributes)["pads"] == (1, 0)
    assert_same(spelled(X, W, padded), torch_like(X, W, [1], [1], [1], [2]), "moved into pads")


def test_keras_torch_backend_difference_is_noted():
    # Keras' torch backend maps 'same' k=3 s=2 to padding 1, output_padding 1 (its own
    # backend_utils_test): a begin crop of 1, where TF and JAX crop 0.
    sp = from_keras((1, 1, 5), (1, 1, 3), strides=2, padding="same")
    assert dict(sp.attributes)["pads"] == (0, 1)
    assert any("torch backend crops [1]" in n for n in sp.notes), sp.notes


# --- framework-invalid inputs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: from_pytorch((1, 1, 3), (1, 1, 3), stride=2, output_padding=2),
            "max\\(stride, dilation\\) = 2",
        ),
        (lambda: from_pytorch((1, 1, 3), (1, 1, 3), padding=-1), "padding"),
        (lambda: from_pytorch((1, 1, 3), (1, 1, 3), stride=0), "stride"),
        (lambda: from_pytorch((1, 1, 3), (1, 1, 3), padding=3), "output size"),
        (lambda: from_pytorch((1, 1, 3), (1, 1, 3), output_size=[1, 2, 3]), "output_size"),
        (lambda: from_pytorch((1, 1, 3), (1, 1, 3), stride=(1, 2)), "1 entries"),
        (lambda: from_pytorch((1, 2, 3), (2, 1, 3), groups=3), "divide"),
        (lambda: from_keras((1, 1, 3), (1, 1, 3), strides=2, output_padding=2), "less than strides=2"),
        (lambda: from_keras((1, 1, 3), (1, 1, 3), padding="full"), "'valid' or 'same'"),
        (
            lambda: from_tensorflow((1, 1, 3), (1, 1, 3), [7], strides=2, padding="SAME"),
            "forward convolution",
        ),
        (
            lambda: from_tensorflow((1, 1, 3), (1, 1, 3), [5], strides=2, padding="VALID"),
            "forward convolution",
        ),
        (lambda: from_tensorflow((1, 1, 3), (1, 1, 3), [6], strides=2, padding="FULL"), "'SAME', 'VALID'"),
        (
            lambda: from_paddle((1, 1, 3), (1, 1, 3), stride=2, output_padding=1, output_size=[8]),
            "output_size",
        ),
        (lambda: from_paddle((1, 1, 3), (1, 1, 3), stride=2, output_size=[9]), "\\[7, 9\\)"),
        (lambda: from_paddle((1, 1, 3), (1, 1, 3), padding="FULL"), "'SAME', 'VALID'"),
        (
            lambda: from_paddle((1, 1, 3), (1, 1, 3), stride=1, output_padding=1),
            "max\\(stride, dilation\\) = 1",
        ),
    ],
)
def test_framework_invalid_input_is_a_specific_error(call, match):
    with pytest.raises(opref.SpecError, match=match):
        call()


def test_spelling_is_frozen_and_json_ready():
    sp = from_pytorch((1, 1, 3), (1, 1, 3), stride=2)
    with pytest.raises(AttributeError):
        sp.notes = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        sp.attributes["pads"] = (0, 0)  # type: ignore[index]
    assert sp.to_dict()["attributes"]["pads"] == [0, 0]


# --- the frameworks' documented output sizes ------------------------------------------------


@pytest.mark.parametrize(
    ("size", "k", "s", "p", "a", "d"),
    [(5, 3, 2, 1, 1, 1), (7, 4, 2, 1, 0, 1), (4, 5, 3, 2, 2, 1), (6, 3, 1, 0, 1, 2), (1, 1, 1, 0, 0, 1)],
)
def test_pytorch_documented_output_size(size, k, s, p, a, d):
    sp = from_pytorch((1, 1, size, size), (1, 1, k, k), stride=s, padding=p, output_padding=a, dilation=d)
    expected = (size - 1) * s - 2 * p + d * (k - 1) + a + 1
    assert sp.output_shape == (1, 1, expected, expected)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize(("size", "k", "s", "d"), [(5, 3, 2, 1), (4, 1, 3, 1), (3, 2, 2, 2), (6, 5, 1, 1)])
@pytest.mark.parametrize("out_pad", [None, 0])
def test_keras_documented_output_length(padding, size, k, s, d, out_pad):
    expected = keras_length(size, k, padding, out_pad, s, d)
    sp = from_keras(
        (1, 1, size), (1, 1, k), strides=s, padding=padding, output_padding=out_pad, dilation_rate=d
    )
    assert sp.output_shape == (1, 1, expected)


# --- numbers transcribed from the frameworks' own tests ---------------------------------------


def test_pytorch_conv_transpose2d_output_size_range():
    # pytorch/pytorch test/nn/test_convolution.py, test_ConvTranspose2d_output_size:
    # ConvTranspose2d(3, 4, 3, 3, 0, 2) on (2, 3, 6, 6): sizes 18..20 work, 15..17 and 21 raise.
    layer = {"stride": 3, "padding": 0, "output_padding": 2}
    for h, w in itertools.product(range(15, 22), repeat=2):
        if 18 <= h <= 20 and 18 <= w <= 20:
            assert from_pytorch((2, 3, 6, 6), (3, 4, 3, 3), **layer, output_size=(h, w)).output_shape[2:] == (
                h,
                w,
            )
        else:
            with pytest.raises(opref.SpecError, match="output_size"):
                from_pytorch((2, 3, 6, 6), (3, 4, 3, 3), **layer, output_size=(h, w))


def test_pytorch_downsample_then_upsample_restores_the_size():
    # pytorch/pytorch test/nn/test_convolution.py,
    # test_ConvTranspose2d_output_size_downsample_upsample: t_conv(conv(i), output_size=i.shape)
    # has i's size for h 13..23, w 13..16, k 2..4, d 1..4, s 1..3, p 0..2.
    for h, w, k, d, s, p in itertools.product(
        range(13, 24), range(13, 17), range(2, 5), range(1, 5), range(1, 4), range(3)
    ):
        down = [(v + 2 * p - d * (k - 1) - 1) // s + 1 for v in (h, w)]
        sp = from_pytorch(
            (2, 2, *down), (2, 3, k, k), stride=s, padding=p, dilation=d, output_size=(2, 3, h, w)
        )
        assert sp.output_shape == (2, 3, h, w), (h, w, k, d, s, p)


def test_pytorch_conv_transpose3d_takes_a_5d_output_size():
    # pytorch/pytorch test/nn/test_convolution.py, test_ConvTranspose3d_correct_output_size.
    sp = from_pytorch((1, 2, 1, 1, 1), (2, 2, 2, 2, 2), output_size=(1, 2, 2, 2, 2))
    assert sp.output_shape == (1, 2, 2, 2, 2)


def test_keras_backend_utils_numbers():
    # keras-team/keras keras/src/backend/common/backend_utils_test.py: input 5, kernel 3,
    # strides 2 gives 11 ('valid'), 10 ('same'), 12 ('valid', output_padding 1); JAX pads
    # (left, right) (2, 2) for 'valid' and (2, 1) for 'same' — the ONNX pads are K-1-left
    # at the beginning and K-1-right at the end.
    assert from_keras((1, 1, 5), (1, 1, 3), strides=2, padding="valid").output_shape[2] == 11
    assert from_keras((1, 1, 5), (1, 1, 3), strides=2, padding="same").output_shape[2] == 10
    assert (
        from_keras((1, 1, 5), (1, 1, 3), strides=2, padding="valid", output_padding=1).output_shape[2] == 12
    )
    for padding, (left, right) in (("valid", (2, 2)), ("same", (2, 1))):
        sp = from_keras((1, 1, 5, 5), (1, 1, 3, 3), strides=2, padding=padding)
        assert sp.attributes["pads"] == (2 - left, 2 - left, 2 - right, 2 - right)


def _ones_tf(y_hw, strides, padding):
    # tensorflow/tensorflow tensorflow/python/kernel_tests/nn_ops/conv2d_transpose_test.py:
    # x ones [2, 6, 4, 3] (NHWC), filter ones [3, 3, 2, 3] (H, W, out, in).
    X, W = np.ones((2, 3, 6, 4)), np.ones((3, 2, 3, 3))
    sp = from_tensorflow(X.shape, W.shape, y_hw, strides=strides, padding=padding)
    return spelled(X, W, sp)


def test_tensorflow_conv2d_transpose_single_stride():
    # testConv2DTransposeSingleStride, SAME, stride 1, y [2, 6, 4, 2]: 12 at the corners,
    # 18 on the borders, 27 inside.
    row_edge, row_in = [12, 18, 18, 12], [18, 27, 27, 18]
    want = np.array([row_edge] + [row_in] * 4 + [row_edge], dtype=float)
    got = _ones_tf([6, 4], 1, "SAME")
    assert got.shape == (2, 2, 6, 4)
    assert (got == want).all()


def test_tensorflow_conv2d_transpose_same_stride_2():
    # testConv2DTransposeSame, SAME, stride 2, y [2, 12, 8, 2]: 3, plus 3 on the even rows or
    # columns strictly inside, plus 9 where both are.
    a, b = [3, 3, 6, 3, 6, 3, 6, 3], [6, 6, 12, 6, 12, 6, 12, 6]
    want = np.array([a, a, b, a, b, a, b, a, b, a, b, a], dtype=float)
    got = _ones_tf([12, 8], 2, "SAME")
    assert got.shape == (2, 2, 12, 8)
    assert (got == want).all()


TF_VALID_13x9 = np.array(
    [
        [3, 3, 6, 3, 6, 3, 6, 3, 3],
        [3, 3, 6, 3, 6, 3, 6, 3, 3],
        [6, 6, 12, 6, 12, 6, 12, 6, 6],
        [3, 3, 6, 3, 6, 3, 6, 3, 3],
        [6, 6, 12, 6, 12, 6, 12, 6, 6],
        [3, 3, 6, 3, 6, 3, 6, 3, 3],
        [6, 6, 12, 6, 12, 6, 12, 6, 6],
        [3, 3, 6, 3, 6, 3, 6, 3, 3],
        [6, 6, 12, 6, 12, 6, 12, 6, 6],
        [3, 3, 6, 3, 6, 3, 6, 3, 3],
        [6, 6, 12, 6, 12, 6, 12, 6, 6],
        [3, 3, 6, 3, 6, 3, 6, 3, 3],
        [3, 3, 6, 3, 6, 3, 6, 3, 3],
    ],
    dtype=float,
)


def test_tensorflow_conv2d_transpose_valid_stride_2():
    # testConv2DTransposeValid, VALID, stride 2, y [2, 13, 9, 2]: the table its rule gives.
    got = _ones_tf([13, 9], 2, "VALID")
    assert got.shape == (2, 2, 13, 9)
    assert (got == TF_VALID_13x9).all()


# tensorflow/tensorflow tensorflow/lite/kernels/transpose_conv_test.cc, float cases:
# (name, output_shape NHWC, filter OHWI, filter data, input NHWC, input data, padding, stride,
#  expected output NHWC).
TFLITE_CASES = [
    (
        "SimpleTest",
        [1, 4, 4, 1],
        [1, 3, 3, 1],
        list(range(1, 10)),
        [1, 4, 4, 1],
        list(range(1, 17)),
        "SAME",
        1,
        [29, 62, 83, 75, 99, 192, 237, 198, 207, 372, 417, 330, 263, 446, 485, 365],
    ),
    (
        "TwoFiltersTest",
        [1, 4, 4, 1],
        [1, 3, 3, 2],
        list(range(1, 19)),
        [1, 4, 4, 2],
        list(range(1, 33)),
        "SAME",
        1,
        [184, 412, 568, 528, 678, 1347, 1689, 1434, 1494, 2715, 3057, 2442, 1968, 3352, 3652, 2760],
    ),
    (
        "PaddingValidTest",
        [1, 6, 6, 1],
        [1, 3, 3, 2],
        list(range(1, 19)),
        [1, 4, 4, 2],
        list(range(1, 33)),
        "VALID",
        1,
        [
            5,
            22,
            59,
            101,
            114,
            83,
            52,
            184,
            412,
            568,
            528,
            344,
            237,
            678,
            1347,
            1689,
            1434,
            879,
            597,
            1494,
            2715,
            3057,
            2442,
            1431,
            856,
            1968,
            3352,
            3652,
            2760,
            1548,
            689,
            1534,
            2543,
            2729,
            2010,
            1103,
        ],
    ),
    (
        "StrideValidTest",
        [1, 5, 5, 1],
        [1, 3, 3, 1],
        list(range(1, 10)),
        [1, 2, 2, 1],
        [1, 2, 3, 4],
        "VALID",
        2,
        [1, 2, 5, 4, 6, 4, 5, 14, 10, 12, 10, 14, 36, 24, 30, 12, 15, 34, 20, 24, 21, 24, 55, 32, 36],
    ),
    (
        "MultiChannelTest",
        [1, 5, 5, 2],
        [2, 3, 3, 1],
        [1, 3, 5, 7, 9, 11, 13, 15, 17, 2, 4, 6, 8, 10, 12, 14, 16, 18],
        [1, 2, 2, 1],
        [1, 2, 3, 4],
        "VALID",
        2,
        [
            1,
            2,
            3,
            4,
            7,
            10,
            6,
            8,
            10,
            12,
            7,
            8,
            9,
            10,
            25,
            28,
            18,
            20,
            22,
            24,
            16,
            20,
            24,
            28,
            62,
            72,
            42,
            48,
            54,
            60,
            21,
            24,
            27,
            30,
            61,
            68,
            36,
            40,
            44,
            48,
            39,
            42,
            45,
            48,
            103,
            110,
            60,
            64,
            68,
            72,
        ],
    ),
    (
        "AccuracyTest",
        [1, 3, 4, 1],
        [1, 3, 3, 1],
        [9, 5, 6, 9, 8, 5, 3, 1, 4],
        [1, 1, 2, 1],
        [323, 521],
        "SAME",
        3,
        [1615, 1938, 4689, 2605, 2584, 1615, 4689, 4168, 323, 1292, 1563, 521],
    ),
]


@pytest.mark.parametrize("case", TFLITE_CASES, ids=[c[0] for c in TFLITE_CASES])
def test_tflite_transpose_conv(case):
    _, out_shape, w_shape, w_data, x_shape, x_data, padding, stride, expected = case
    X = np.array(x_data, dtype=np.float32).reshape(x_shape).transpose(0, 3, 1, 2)  # NHWC -> NCHW
    W = np.array(w_data, dtype=np.float32).reshape(w_shape).transpose(3, 0, 1, 2)  # OHWI -> (C, M, H, W)
    sp = from_tensorflow(X.shape, W.shape, out_shape[1:3], strides=stride, padding=padding)
    got = spelled(X, W, sp).transpose(0, 2, 3, 1)  # back to NHWC
    assert got.shape == tuple(out_shape)
    np.testing.assert_array_equal(got.ravel(), np.array(expected, dtype=np.float32))


# paddle/PaddlePaddle test/legacy_test/test_conv2d_transpose_op.py: the configurations of its
# test classes (input NCHW, filter (C, M/groups, kh, kw), pad, stride, dilation, groups,
# padding_algorithm, output_size, output_padding), checked against the loop above.
PADDLE_CASES = [
    ("TestConv2DTransposeOp", [2, 3, 5, 5], [3, 6, 3, 3], [0, 0], [1, 1], [1, 1], 1, None, None, None),
    ("TestWithSymmetricPad", [2, 3, 5, 5], [3, 6, 3, 3], [1, 1], [1, 1], [1, 1], 1, None, None, None),
    ("TestWithAsymmetricPad", [2, 3, 5, 5], [3, 6, 3, 3], [1, 0, 1, 2], [1, 1], [1, 1], 1, None, None, None),
    ("TestWithSAMEPad", [2, 3, 6, 5], [3, 6, 4, 3], [0, 0], [2, 1], [1, 2], 1, "SAME", None, None),
    ("TestWithVALIDPad", [2, 3, 5, 5], [3, 6, 3, 3], [0, 0], [1, 1], [1, 1], 1, "VALID", None, None),
    ("TestWithGroups", [2, 4, 5, 5], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1], 2, None, None, None),
    ("TestWithStride", [2, 3, 5, 5], [3, 6, 3, 3], [1, 1], [2, 2], [1, 1], 1, None, None, None),
    ("TestWithDilation", [2, 3, 5, 5], [3, 6, 3, 3], [1, 1], [1, 1], [2, 2], 1, None, None, None),
    ("TestWithEvenUpsample", [2, 3, 7, 7], [3, 6, 5, 5], [2, 2], [2, 2], [1, 1], 1, None, [14, 14], None),
    (
        "TestWithEvenUpsampleOutputPadding",
        [2, 3, 7, 7],
        [3, 6, 5, 5],
        [2, 2],
        [2, 2],
        [1, 1],
        1,
        None,
        None,
        [1, 1],
    ),
]


@pytest.mark.parametrize("case", PADDLE_CASES, ids=[c[0] for c in PADDLE_CASES])
def test_paddle_conv2d_transpose_op_configurations(case):
    _, x_shape, w_shape, pad, stride, dilation, groups, algorithm, out_size, out_pad = case
    X, W = arrays(7, x_shape, w_shape)
    padding = algorithm or pad
    sp = from_paddle(
        x_shape, w_shape, stride=stride, padding=padding, output_padding=out_pad or 0,
        dilation=dilation, groups=groups, output_size=out_size,
    )  # fmt: skip
    pairs = algorithm or ([(p, p) for p in pad] if len(pad) == 2 else [(pad[0], pad[1]), (pad[2], pad[3])])
    want = paddle_like(X, W, stride, pairs, out_pad or [0, 0], dilation, out_size, groups)
    assert_same(spelled(X, W, sp), want, case[0])
