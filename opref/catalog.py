"""The case catalog's data: the tables :mod:`opref.cases` expands into a suite.

Each table row is a dtype-independent configuration (:class:`Config`, written ``C(...)``), a
must-reject rule with its shapes, a seed example, or a published network's layer (:class:`Layer`,
written ``L(...)``). Nothing here is code but those two row types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Config:
    """A dtype-independent configuration; the catalog crosses it with dtypes and data kinds."""

    name: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    attrs: Mapping[str, object] = field(default_factory=dict)
    bias: bool = False
    features: tuple[str, ...] = ()
    opset: int = 22


def C(name, x, w, bias=False, features=(), opset=22, **attrs) -> Config:
    return Config(name, tuple(x), tuple(w), MappingProxyType(attrs), bias, tuple(features), opset)


# --- systematic coverage ------------------------------------------------------------------
SYSTEMATIC: tuple[Config, ...] = (
    C("rank1_basic", (1, 1, 5), (1, 1, 3)),
    C("rank1_s2", (1, 1, 5), (1, 1, 3), strides=[2], features=("strides",)),
    C("rank1_s3_d2", (1, 2, 4), (2, 1, 3), strides=[3], dilations=[2], features=("strides", "dilations")),
    C("rank1_s2_op1", (1, 1, 4), (1, 2, 3), strides=[2], output_padding=[1], features=("output_padding",)),
    C("rank1_s2_pads_asym", (1, 1, 5), (1, 1, 4), strides=[2], pads=[2, 0], features=("pads", "asymmetric")),
    C("rank1_batch2_bias", (2, 3, 4), (3, 2, 3), bias=True, features=("batch", "bias")),
    C(
        "rank1_d3_op2",
        (1, 1, 4),
        (1, 1, 2),
        strides=[3],
        dilations=[3],
        output_padding=[2],
        features=("dilations", "output_padding"),
    ),
    C("rank2_basic", (1, 1, 3, 3), (1, 2, 3, 3)),
    C(
        "rank2_s2_p1_bias",
        (1, 2, 4, 4),
        (2, 3, 3, 3),
        bias=True,
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        features=("strides", "pads", "bias"),
    ),
    C(
        "rank2_s2_d2",
        (1, 1, 3, 3),
        (1, 1, 2, 2),
        strides=[2, 2],
        dilations=[2, 2],
        features=("strides", "dilations"),
    ),
    C(
        "rank2_s3x2_op1",
        (1, 1, 3, 3),
        (1, 2, 3, 3),
        strides=[3, 2],
        output_padding=[1, 1],
        features=("strides", "output_padding"),
    ),
    C(
        "rank2_s2_d2_op1_pads",
        (1, 2, 3, 4),
        (2, 2, 3, 2),
        strides=[2, 2],
        dilations=[2, 2],
        output_padding=[1, 1],
        pads=[1, 0, 0, 1],
        features=("strides", "dilations", "output_padding", "pads"),
    ),
    C("rank2_kernel_2x3", (1, 2, 3, 3), (2, 2, 2, 3), strides=[1, 2], features=("non_square_kernel",)),
    C("rank2_kernel_4x1", (1, 1, 3, 4), (1, 1, 4, 1), strides=[2, 1], features=("non_square_kernel",)),
    C(
        "rank2_pads_asym",
        (1, 1, 4, 4),
        (1, 1, 3, 3),
        strides=[2, 2],
        pads=[0, 1, 2, 0],
        features=("pads", "asymmetric"),
    ),
    C(
        "rank2_pads_crop_large",
        (1, 1, 4, 4),
        (1, 1, 3, 3),
        strides=[2, 2],
        pads=[3, 2, 3, 4],
        features=("pads",),
    ),
    C(
        "rank2_kernel_shape",
        (1, 1, 3, 3),
        (1, 2, 3, 2),
        kernel_shape=[3, 2],
        strides=[2, 1],
        features=("kernel_shape",),
    ),
    C("rank2_batch3_bias", (3, 2, 3, 3), (2, 2, 2, 2), bias=True, strides=[2, 2], features=("batch", "bias")),
    C("rank2_k1_s2", (1, 2, 3, 3), (2, 2, 1, 1), strides=[2, 2], features=("strides",)),
    C("rank2_stride_gt_kernel", (1, 1, 3, 3), (1, 1, 2, 2), strides=[3, 3], features=("strides",)),
    C(
        "rank2_s2_p1_op1_rect",
        (1, 2, 5, 3),
        (2, 2, 3, 3),
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        output_padding=[1, 0],
        features=("strides", "pads", "output_padding"),
    ),
    C("rank3_basic", (1, 1, 2, 3, 2), (1, 2, 2, 2, 2)),
    C(
        "rank3_s2_p1_op1",
        (1, 2, 3, 3, 3),
        (2, 2, 3, 3, 3),
        strides=[2, 2, 2],
        pads=[1] * 6,
        output_padding=[1, 1, 1],
        features=("strides", "pads", "output_padding"),
    ),
    C(
        "rank3_kernel_1x2x3_bias",
        (1, 2, 2, 3, 2),
        (2, 1, 1, 2, 3),
        bias=True,
        strides=[1, 2, 1],
        features=("non_square_kernel", "bias"),
    ),
    C(
        "rank3_d2_pads_asym",
        (1, 1, 3, 2, 2),
        (1, 1, 2, 2, 2),
        dilations=[2, 1, 2],
        pads=[1, 0, 0, 0, 1, 2],
        features=("dilations", "pads", "asymmetric"),
    ),
    C("rank4_s2", (1, 1, 2, 2, 2, 2), (1, 1, 2, 2, 2, 2), strides=[2, 1, 2, 1], features=("rank4",)),
    # group with C/group and M/group both > 1
    C("group2_c4_m6", (1, 4, 3, 3), (4, 3, 2, 2), bias=True, group=2, features=("group", "bias")),
    C(
        "group2_s2_p1_asym",
        (2, 4, 3, 3),
        (4, 2, 3, 3),
        group=2,
        strides=[2, 2],
        pads=[1, 0, 0, 1],
        features=("group", "batch", "strides", "pads", "asymmetric"),
    ),
    C("group3_depthwise", (1, 3, 4), (3, 2, 3), bias=True, group=3, strides=[2], features=("group", "bias")),
    C(
        "group2_rank3_d2",
        (1, 4, 2, 2, 2),
        (4, 2, 2, 2, 2),
        group=2,
        dilations=[2, 2, 2],
        features=("group", "dilations"),
    ),
    C(
        "group2_same_upper",
        (1, 4, 3, 3),
        (4, 2, 3, 3),
        group=2,
        strides=[2, 2],
        auto_pad="SAME_UPPER",
        features=("group", "auto_pad"),
    ),
    C(
        "group2_output_shape",
        (1, 4, 3, 3),
        (4, 2, 3, 3),
        bias=True,
        group=2,
        strides=[2, 2],
        output_shape=[6, 7],
        features=("group", "output_shape", "bias"),
    ),
)

# --- every auto_pad value, with and without output_shape; odd and even T ------------------
# I=3, s=2, k=3: F = 7, I*s = 6 (T = 1, odd); k=4: F = 8 (T = 2, even).
_AUTOPAD_GRID = tuple(
    C(
        f"autopad_{ap.lower()}{suffix}",
        (1, 1, 3, 3),
        (1, 1, k, k),
        auto_pad=ap,
        strides=[2, 2],
        features=("auto_pad", *extra),
        **more,
    )
    for ap in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
    for suffix, k, extra, more in (
        ("_odd", 3, ("odd_total_padding",), {}),
        ("_even", 4, ("even_total_padding",), {}),
        ("_output_shape_odd", 3, ("output_shape", "odd_total_padding"), {"output_shape": [6, 6]}),
        (
            "_output_shape_mixed",
            4,
            ("output_shape", "odd_total_padding", "even_total_padding"),
            {"output_shape": [7, 6]},
        ),
    )
)
AUTOPAD: tuple[Config, ...] = (
    *_AUTOPAD_GRID,
    C(
        "autopad_output_shape_ignores_pads",
        (1, 1, 3, 3),
        (1, 1, 3, 3),
        strides=[2, 2],
        pads=[2, 0, 0, 2],
        output_shape=[6, 5],
        features=("output_shape", "pads_ignored"),
    ),
    C(
        "autopad_same_upper_rank1_odd",
        (1, 2, 4),
        (2, 1, 4),
        strides=[3],
        auto_pad="SAME_UPPER",
        features=("auto_pad", "odd_total_padding"),
    ),
    C(
        "autopad_same_lower_rank3_odd",
        (1, 1, 2, 2, 2),
        (1, 1, 3, 2, 3),
        strides=[2, 2, 2],
        auto_pad="SAME_LOWER",
        features=("auto_pad", "odd_total_padding"),
    ),
    C(
        "autopad_same_lower_dilated",
        (1, 1, 3, 3),
        (1, 1, 2, 2),
        strides=[2, 2],
        dilations=[2, 2],
        auto_pad="SAME_LOWER",
        features=("auto_pad", "dilations", "odd_total_padding"),
    ),
)

# --- one ambiguity each, several cases each -----------------------------------------------
AMBIGUOUS: tuple[Config, ...] = (
    # negative-total-padding
    C("amb_neg_total_output_shape_odd", (1, 1, 3, 3), (1, 2, 3, 3), strides=[3, 2], output_shape=[10, 8]),
    C("amb_neg_total_output_shape_even", (1, 1, 3), (1, 1, 3), strides=[3], output_shape=[11]),
    C("amb_neg_total_output_shape_minus3", (1, 2, 3), (2, 1, 2), strides=[2], output_shape=[9]),
    C(
        "amb_neg_total_output_shape_same_upper",
        (1, 1, 3),
        (1, 1, 3),
        strides=[3],
        auto_pad="SAME_UPPER",
        output_shape=[10],
    ),
    C("amb_neg_total_same_upper", (1, 1, 2, 2), (1, 1, 2, 2), strides=[3, 3], auto_pad="SAME_UPPER"),
    C("amb_neg_total_same_lower", (1, 1, 2, 2), (1, 1, 2, 2), strides=[3, 3], auto_pad="SAME_LOWER"),
    C("amb_neg_total_same_upper_even", (1, 1, 3), (1, 1, 1), strides=[3], auto_pad="SAME_UPPER"),
    # output-padding-bound: stride <= output_padding < dilation
    C("amb_op_bound_s1_d2", (1, 1, 3), (1, 1, 2), dilations=[2], output_padding=[1]),
    C(
        "amb_op_bound_s2_d3",
        (1, 1, 3, 3),
        (1, 1, 2, 2),
        strides=[2, 1],
        dilations=[3, 1],
        output_padding=[2, 0],
    ),
    C(
        "amb_op_bound_pads",
        (1, 2, 3, 3),
        (2, 1, 2, 2),
        strides=[1, 1],
        dilations=[3, 2],
        output_padding=[2, 1],
        pads=[1, 0, 0, 1],
    ),
    # same-with-output-padding
    C("amb_same_op_upper", (1, 1, 3), (1, 1, 3), strides=[2], output_padding=[1], auto_pad="SAME_UPPER"),
    C("amb_same_op_lower", (1, 1, 3), (1, 1, 3), strides=[2], output_padding=[1], auto_pad="SAME_LOWER"),
    C(
        "amb_same_op_upper_2d",
        (1, 1, 3, 3),
        (1, 1, 3, 3),
        strides=[3, 2],
        output_padding=[2, 1],
        auto_pad="SAME_UPPER",
    ),
    C(
        "amb_same_op_lower_rank3",
        (1, 1, 2, 2, 2),
        (1, 1, 2, 2, 2),
        strides=[2, 2, 2],
        output_padding=[1, 0, 1],
        auto_pad="SAME_LOWER",
    ),
    # opset1-split: odd T at opset 1
    C("amb_opset1_same_upper_odd", (1, 1, 3), (1, 1, 3), strides=[2], auto_pad="SAME_UPPER", opset=1),
    C("amb_opset1_same_lower_odd", (1, 1, 3), (1, 1, 3), strides=[2], auto_pad="SAME_LOWER", opset=1),
    C(
        "amb_opset1_output_shape_odd",
        (1, 1, 3, 3),
        (1, 1, 3, 3),
        strides=[2, 2],
        output_shape=[6, 6],
        opset=1,
    ),
)

# Opset-1 cases whose answer the opset-1 text cannot change (no split of an odd T).
OPSET1: tuple[Config, ...] = (
    C(
        "opset1_pads",
        (1, 1, 3, 3),
        (1, 2, 3, 3),
        strides=[2, 2],
        pads=[1, 0, 1, 2],
        opset=1,
        features=("pads",),
    ),
    C(
        "opset1_same_upper_even",
        (1, 1, 3),
        (1, 1, 2),
        strides=[2],
        auto_pad="SAME_UPPER",
        opset=1,
        features=("auto_pad", "even_total_padding"),
    ),
    C(
        "opset1_group2_bias",
        (1, 4, 3),
        (4, 2, 2),
        bias=True,
        group=2,
        strides=[2],
        opset=1,
        features=("group", "bias"),
    ),
)

# --- must-reject: (rule id, X, W, B shape, attributes, dtype/w_dtype/opset overrides) -------
REJECTS: tuple[tuple, ...] = (
    (
        "pads-with-auto-pad",
        (1, 1, 3, 3),
        (1, 1, 3, 3),
        None,
        {"pads": [1, 1, 1, 1], "auto_pad": "SAME_UPPER"},
        {},
    ),
    ("pads-with-valid", (1, 1, 3), (1, 1, 3), None, {"pads": [0, 0], "auto_pad": "VALID"}, {}),
    ("negative-pads", (1, 1, 3, 3), (1, 1, 3, 3), None, {"pads": [0, -1, 0, 0]}, {}),
    ("group-does-not-divide-c", (1, 3, 3), (3, 1, 3), None, {"group": 2}, {}),
    ("w-rows-not-c", (1, 2, 3), (3, 1, 3), None, {}, {}),
    ("bias-shape", (1, 1, 3), (1, 2, 3), (3,), {}, {}),
    ("strides-length", (1, 1, 3, 3), (1, 1, 3, 3), None, {"strides": [2]}, {}),
    ("dilations-length", (1, 1, 3), (1, 1, 3), None, {"dilations": [1, 1]}, {}),
    ("pads-length", (1, 1, 3, 3), (1, 1, 3, 3), None, {"pads": [1, 1]}, {}),
    (
        "output-padding-length",
        (1, 1, 3, 3),
        (1, 1, 3, 3),
        None,
        {"strides": [2, 2], "output_padding": [1]},
        {},
    ),
    ("stride-zero", (1, 1, 3), (1, 1, 3), None, {"strides": [0]}, {}),
    ("dilation-zero", (1, 1, 3), (1, 1, 3), None, {"dilations": [0]}, {}),
    ("group-zero", (1, 1, 3), (1, 1, 3), None, {"group": 0}, {}),
    ("kernel-shape-mismatch", (1, 1, 3, 3), (1, 1, 3, 3), None, {"kernel_shape": [2, 2]}, {}),
    ("output-padding-too-large", (1, 1, 3), (1, 1, 3), None, {"strides": [2], "output_padding": [2]}, {}),
    (
        "output-padding-not-below-dilation",
        (1, 1, 3),
        (1, 1, 3),
        None,
        {"strides": [2], "dilations": [3], "output_padding": [3]},
        {},
    ),
    ("output-padding-negative", (1, 1, 3), (1, 1, 3), None, {"output_padding": [-1]}, {}),
    ("output-shape-full-rank", (1, 1, 3, 3), (1, 2, 3, 3), None, {"output_shape": [1, 2, 5, 5]}, {}),
    (
        "output-shape-full-rank-1d",
        (2, 3, 4),
        (3, 2, 3),
        (2,),
        {"output_shape": [2, 2, 6]},
        {},
    ),
    (
        "output-shape-full-rank-group2",
        (1, 4, 3, 3),
        (4, 1, 2, 2),
        None,
        {"group": 2, "strides": [2, 2], "output_shape": [1, 2, 6, 6]},
        {},
    ),
    (
        "output-shape-full-rank-mismatch",
        (1, 1, 3, 3),
        (1, 2, 3, 3),
        None,
        {"output_shape": [1, 3, 5, 5]},
        {},
    ),
    ("output-shape-length", (1, 1, 3, 3), (1, 1, 3, 3), None, {"output_shape": [5]}, {}),
    ("output-shape-zero", (1, 1, 3), (1, 1, 3), None, {"output_shape": [0]}, {}),
    ("computed-output-zero", (1, 1, 3), (1, 1, 3), None, {"pads": [3, 2]}, {}),
    ("computed-output-negative", (1, 1, 2, 2), (1, 1, 2, 2), None, {"pads": [2, 0, 3, 0]}, {}),
    ("mixed-dtypes", (1, 1, 3), (1, 1, 3), None, {}, {"w_dtype": "float16"}),
    ("bfloat16-below-opset-22", (1, 1, 3), (1, 1, 3), None, {}, {"dtype": "bfloat16", "opset": 11}),
    ("x-rank-below-3", (1, 3), (3, 1), None, {}, {}),
)

# --- the seed explainer's examples (shared/seed): inputs as printed there -------------------
_SEED_X = [[0.0, 1.0], [2.0, 3.0]]
SEED: tuple[tuple, ...] = (
    ("seed_basic", [[_SEED_X]], [[_SEED_X]], {}),
    ("seed_stride2", "arange9", "arange4", {"strides": [2, 2]}),
    ("seed_stride2_pad1", "arange9", "arange4", {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("seed_stride2_dilation2", "arange9", "arange4", {"strides": [2, 2], "dilations": [2, 2]}),
    ("seed_two_channels", [[_SEED_X, _SEED_X]], [[_SEED_X], [_SEED_X]], {}),
)



# --- real layers: the ConvTranspose layers of well-known networks ---------------------------
@dataclass(frozen=True)
class Layer:
    """A ConvTranspose layer of a published network, at its real channel counts and sizes.

    ``x`` is the real input shape (``--suite full``); ``small`` the one the committed default
    suite uses (same channels, kernel and attributes; a smaller spatial extent or batch unless
    it equals ``x``), or None where the weights alone are too large to commit (the layer is
    then in the full suite only).
    """

    name: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    attrs: Mapping[str, object]
    bias: bool
    citation: str
    small: tuple[int, ...] | None = None


def L(name, x, w, citation, small=None, bias=False, **attrs) -> Layer:
    return Layer(name, tuple(x), tuple(w), MappingProxyType(attrs), bias, citation, small and tuple(small))


_FCN = "FCN (Long, Shelhamer, Darrell, CVPR 2015), voc-fcn{} on a 500x500 image, 21 classes, no bias"
_UNET = "U-Net (Ronneberger, Fischer, Brox, MICCAI 2015), Fig. 1, 2x2 up-convolution halving the channels"
_DCGAN = "DCGAN generator (Radford, Metz, Chintala, ICLR 2016), 1024-512-256-128 channels, k4 export"
_HIFI = "HiFi-GAN V1 generator (Kong, Kim, Bae, NeurIPS 2020), 1 s of 22.05 kHz audio (86 mel frames)"
LAYERS: tuple[Layer, ...] = (
    L("fcn8s_upscore2", (1, 21, 16, 16), (21, 21, 4, 4), _FCN.format("8s"), (1, 21, 16, 16), strides=[2, 2]),
    L("fcn8s_upscore_pool4", (1, 21, 34, 34), (21, 21, 4, 4), _FCN.format("8s"), strides=[2, 2]),
    L("fcn8s_upscore8", (1, 21, 70, 70), (21, 21, 16, 16), _FCN.format("8s"), strides=[8, 8]),
    L(
        "fcn8s_upscore8_depthwise",
        (1, 21, 70, 70),
        (21, 1, 16, 16),
        _FCN.format("8s") + "; its bilinear filler as a per-class (group 21) filter",
        (1, 21, 2, 2),
        strides=[8, 8],
        group=21,
    ),
    L("fcn16s_upscore16", (1, 21, 34, 34), (21, 21, 32, 32), _FCN.format("16s"), strides=[16, 16]),
    L("fcn32s_upscore", (1, 21, 16, 16), (21, 21, 64, 64), _FCN.format("32s"), strides=[32, 32]),
    L(
        "fcn32s_upscore_depthwise",
        (1, 21, 16, 16),
        (21, 1, 64, 64),
        _FCN.format("32s") + "; its bilinear filler as a per-class (group 21) filter",
        strides=[32, 32],
        group=21,
    ),
    L("unet_upconv1", (1, 1024, 28, 28), (1024, 512, 2, 2), _UNET, bias=True, strides=[2, 2]),
    L("unet_upconv2", (1, 512, 52, 52), (512, 256, 2, 2), _UNET, bias=True, strides=[2, 2]),
    L("unet_upconv3", (1, 256, 100, 100), (256, 128, 2, 2), _UNET, bias=True, strides=[2, 2]),
    L("unet_upconv4", (1, 128, 196, 196), (128, 64, 2, 2), _UNET, (1, 128, 4, 4), bias=True, strides=[2, 2]),
    L("dcgan_g1_project", (64, 100, 1, 1), (100, 1024, 4, 4), _DCGAN + ", mini-batch 64"),
    L(
        "dcgan_g2",
        (64, 1024, 4, 4),
        (1024, 512, 4, 4),
        _DCGAN + ", mini-batch 64",
        strides=[2, 2],
        pads=[1] * 4,
    ),
    L(
        "dcgan_g5_to_rgb",
        (64, 128, 32, 32),
        (128, 3, 4, 4),
        _DCGAN + ", mini-batch 64",
        (2, 128, 8, 8),
        strides=[2, 2],
        pads=[1] * 4,
    ),
    L(
        "maskrcnn_mask_head",
        (100, 256, 14, 14),
        (256, 256, 2, 2),
        "Mask R-CNN mask head (He, Gkioxari, Dollar, Girshick, ICCV 2017), 100 RoIs of 14x14",
        bias=True,
        strides=[2, 2],
    ),
    L(
        "cyclegan_up1",
        (1, 256, 64, 64),
        (256, 128, 3, 3),
        "CycleGAN/pix2pix ResNet generator (Zhu, Park, Isola, Efros, ICCV 2017), 256x256 image",
        bias=True,
        strides=[2, 2],
        pads=[1] * 4,
        output_padding=[1, 1],
    ),
    L(
        "cyclegan_up2",
        (1, 128, 128, 128),
        (128, 64, 3, 3),
        "CycleGAN/pix2pix ResNet generator (Zhu, Park, Isola, Efros, ICCV 2017), 256x256 image",
        (1, 128, 4, 4),
        bias=True,
        strides=[2, 2],
        pads=[1] * 4,
        output_padding=[1, 1],
    ),
    L(
        "nnunet3d_upconv",
        (1, 128, 32, 32, 32),
        (128, 64, 2, 2, 2),
        "3-D U-Net decoder (nnU-Net 3d_fullres, Isensee et al., Nature Methods 2021), 128^3 patch",
        (1, 128, 2, 2, 2),
        bias=True,
        strides=[2, 2, 2],
    ),
    L("hifigan_up1", (1, 512, 86), (512, 256, 16), _HIFI, bias=True, strides=[8], pads=[4, 4]),
    L(
        "hifigan_up3",
        (1, 128, 5504),
        (128, 64, 4),
        _HIFI + "; MelGAN's upsamplers have the same sizes",
        (1, 128, 64),
        bias=True,
        strides=[2],
        pads=[1, 1],
    ),
    L(
        "bilinear_x2_depthwise",
        (1, 256, 64, 64),
        (256, 1, 4, 4),
        "Caffe's BilinearFiller upsampling layer (factor 2: k4 s2 p1, group = C), 256 channels",
        (1, 256, 4, 4),
        strides=[2, 2],
        pads=[1] * 4,
        group=256,
    ),
)

