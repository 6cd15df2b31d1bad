"""The conformance case catalog, declared as data.

A :class:`Case` names one ConvTranspose configuration, its element type, opset, the kind of
input data and its tags. :func:`catalog` expands the tables below into a suite; nothing here
computes values (that is :mod:`opref.vectors`' job).

Families:
  seed_*     the five examples of the seed explainer (shared/seed), their inputs
  onnx_*     ONNX's own backend cases, inputs taken from the installed onnx package
  rank*/autopad_*/group_*/...  systematic coverage of every attribute and rule
  amb_*      configurations whose answer depends on an ambiguity of the spec text
  reject_*   valid ONNX files whose attributes break a rule: a runtime must refuse them
  random_*   a seeded draw from the valid configuration space (``--random N --seed S``)
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from opref import limits
from opref.dtypes import DTYPES
from opref.errors import SpecError
from opref.geometry import geometry

DATA_KINDS = ("exact", "random", "given")
VARIANT_SEPARATOR = "__"
SUITES = ("default", "full")
OPSETS = (1, 11, 22)


def _freeze(attrs: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    return tuple(
        sorted((k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in attrs.items() if v is not None)
    )


@dataclass(frozen=True)
class Case:
    """One conformance vector to generate.

    ``attrs`` holds ONNX attribute names (absent ones omitted). ``data`` is ``exact`` (small
    integers, every partial sum representable: any correct runtime matches bit for bit),
    ``random`` (seeded normal values on a dyadic grid, judged by the tolerance model) or
    ``given`` (fixed inputs in ``inputs``). ``reject`` names the must-reject rule a case
    breaks; such a case has inputs but no expected output. ``w_dtype`` differs from
    ``dtype`` only for the mixed-dtype reject case.
    """

    name: str
    family: str
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    bias: bool = False
    attrs: tuple[tuple[str, object], ...] = ()
    dtype: str = "float32"
    opset: int = 22
    data: str = "exact"
    features: tuple[str, ...] = ()
    description: str = ""
    reject: str | None = None
    b_shape_override: tuple[int, ...] | None = None
    w_dtype: str | None = None
    inputs: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)
    variant: str = "inputs"

    @property
    def base_case(self) -> str:
        """The case this one is a model variant of (its own name for the ``inputs`` form)."""
        suffix = VARIANT_SEPARATOR + self.variant
        return self.name.removesuffix(suffix) if self.variant != "inputs" else self.name

    @property
    def attributes(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.attrs}

    @property
    def b_shape(self) -> tuple[int, ...] | None:
        if self.b_shape_override is not None:
            return self.b_shape_override
        if not self.bias:
            return None
        return (self.w_shape[1] * int(self.attributes.get("group", 1)),)

    def geometry(self, readings: Mapping[str, str] | None = None):
        """The resolved geometry (raises SpecError for a must-reject case)."""
        return geometry(
            self.x_shape,
            self.w_shape,
            **self.attributes,
            opset=self.opset,
            readings=readings,
            b_shape=self.b_shape,
            dtype=self.dtype,
        )


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


def _seed_array(spec) -> np.ndarray:
    if spec == "arange9":
        return np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    if spec == "arange4":
        return np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    return np.array(spec, dtype=np.float32)


def seed_cases() -> list[Case]:
    out = []
    for name, x, w, attrs in SEED:
        X, W = _seed_array(x), _seed_array(w)
        out.append(
            Case(
                name,
                "seed",
                X.shape,
                W.shape,
                attrs=_freeze(attrs),
                data="given",
                features=tuple(sorted(attrs)),
                description="seed explainer example",
                inputs=(X, W),
            )
        )
    return out


def onnx_cases() -> list[Case]:
    """ONNX's ConvTranspose backend cases, captured from the installed onnx package."""
    from opref.model import node_attributes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import convtranspose as module

    captured = []
    original = module.expect
    module.expect = lambda node, inputs, outputs, name, **_: captured.append((node, inputs, name))
    try:
        for attr in sorted(vars(module.ConvTranspose)):
            if attr.startswith("export"):
                getattr(module.ConvTranspose, attr)()
    finally:
        module.expect = original
    out = []
    for node, inputs, name in sorted(captured, key=lambda c: c[2]):
        attrs = node_attributes(node)
        arrays = tuple(np.asarray(a) for a in inputs)
        out.append(
            Case(
                name.replace("test_", "onnx_", 1),
                "onnx",
                arrays[0].shape,
                arrays[1].shape,
                bias=len(arrays) > 2,
                attrs=_freeze(attrs),
                dtype=str(arrays[0].dtype),
                data="given",
                features=tuple(sorted(attrs)),
                description="ONNX backend test case",
                inputs=arrays,
            )
        )
    return out


def _instance(cfg: Config, family: str, dtype: str, data: str, opset: int | None = None) -> Case:
    opset = opset or cfg.opset
    suffix = f"{dtype}_{data}" + ("" if opset == 22 else f"_opset{opset}")
    feats = set(cfg.features)
    if cfg.bias:
        feats.add("bias")
    return Case(
        f"{cfg.name}_{suffix}",
        family,
        cfg.x,
        cfg.w,
        cfg.bias,
        _freeze(cfg.attrs),
        dtype,
        opset,
        data,
        tuple(sorted(feats)),
    )


def _reject_cases() -> list[Case]:
    out = []
    for rule, x, w, b, attrs, more in REJECTS:
        out.append(
            Case(
                f"reject_{rule.replace('-', '_')}",
                "reject",
                x,
                w,
                b is not None,
                _freeze(attrs),
                more.get("dtype", "float32"),
                more.get("opset", 22),
                "exact",
                ("must_reject",),
                reject=rule,
                b_shape_override=b,
                w_dtype=more.get("w_dtype"),
            )
        )
    return out


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


def _layer_case(layer: Layer, x: tuple[int, ...], dtype: str, data: str) -> Case:
    small = x != layer.x
    scale = f"; reduced from X {list(layer.x)} (the real size is in --suite full)" if small else ""
    return Case(
        f"layer_{layer.name}{'_small' if small else ''}_{dtype}_{data}",
        "layer",
        x,
        layer.w,
        layer.bias,
        _freeze(layer.attrs),
        dtype,
        22,
        data,
        tuple(sorted({"real_layer", *layer.attrs, *(("bias",) if layer.bias else ())})),
        description=layer.citation + scale,
    )


def layer_cases(suite: str) -> list[Case]:
    """The real layers: committed suite, float32 exact data at the small sizes; full suite, every
    layer at its real size, float32 exact and random data."""
    if suite == "full":
        return [_layer_case(la, la.x, "float32", kind) for la in LAYERS for kind in ("exact", "random")]
    return [_layer_case(la, la.small, "float32", "exact") for la in LAYERS if la.small is not None]


# --- model variants: the same case as real models ship it ------------------------------------
@dataclass(frozen=True)
class Variant:
    """One form of a case's model; the vectors and the expected output stay the case's own.

    ``constant_weights``: W and B are initializers (real models' form: runtimes prepack them,
    fold the bias, change their layout). ``symbolic_batch`` / ``symbolic_spatial``: X's (and
    Y's) batch / spatial dimensions are declared with a dim_param instead of a size.
    """

    name: str
    constant_weights: bool
    symbolic_batch: bool
    symbolic_spatial: bool
    summary: str


VARIANTS: Mapping[str, Variant] = MappingProxyType(
    {
        v.name: v
        for v in (
            Variant("inputs", False, False, False, "X, W, B graph inputs, static shapes"),
            Variant("constant-weights", True, False, False, "W, B initializers, static shapes"),
            Variant("dynamic-batch", True, True, False, "W, B initializers, X and Y with a symbolic batch"),
            Variant(
                "dynamic-spatial",
                True,
                True,
                True,
                "W, B initializers, batch and spatial dimensions symbolic",
            ),
        )
    }
)


def variant_skipped(case: Case, variant: str) -> str | None:
    """Why ``variant`` of ``case`` is not generated (None: it is)."""
    if variant == "inputs":
        return None
    if case.reject:
        return "must-reject cases test the attributes; they keep the inputs form"
    if case.opset < 11:
        # IR 3 (opset 1) requires every initializer to be a graph input too: no constant form.
        return "an opset-1 model (IR 3) cannot hold W and B as constants"
    return None


def with_variants(cases: Iterable[Case], variants: Sequence[str]) -> list[Case]:
    """Each case followed by its model variants (``<case>__<variant>``), where they apply."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SpecError("variants", unknown[0], f"must be one of {list(VARIANTS)}")
    out = []
    for case in cases:
        for v in VARIANTS:
            if v not in variants or variant_skipped(case, v):
                continue
            out.append(
                case if v == "inputs" else replace(case, name=case.name + VARIANT_SEPARATOR + v, variant=v)
            )
    return out


def _expand(suite: str) -> list[Case]:
    cases: list[Case] = []
    full = suite == "full"
    for family, configs in (
        ("systematic", SYSTEMATIC + AUTOPAD),
        ("ambiguity", AMBIGUOUS),
        ("opset1", OPSET1),
    ):
        for cfg in configs:
            if cfg.opset < 11:
                cases += [_instance(cfg, family, "float32", kind) for kind in ("exact", "random")]
                continue
            dtypes = ("float32", "float16", "bfloat16", "float64")
            for dtype in dtypes:
                kinds = (
                    ("exact", "random") if full or dtype == "float32" or family == "ambiguity" else ("exact",)
                )
                cases += [_instance(cfg, family, dtype, kind) for kind in kinds]
            for dtype in ("float32", "float16", "float64") if full else ("float32",):
                cases.append(_instance(cfg, family, dtype, "exact", opset=11))
    # The default suite adds random data in the narrow types where rounding shows most.
    if not full:
        for cfg in SYSTEMATIC:
            if "group" in cfg.features or "strides" in cfg.features:
                cases += [
                    _instance(cfg, "systematic", dt, "random") for dt in ("float16", "bfloat16", "float64")
                ]
    return cases


def random_cases(count: int, seed: int) -> list[Case]:
    """``count`` valid configurations drawn from a seeded, numpy-stable generator."""
    rng = np.random.RandomState(seed)
    out: list[Case] = []
    while len(out) < count:
        r = int(rng.randint(1, 4))
        group = int(rng.randint(1, 4))
        cg, mg = int(rng.randint(1, 4)), int(rng.randint(1, 4))
        x = (int(rng.randint(1, 3)), cg * group, *(int(rng.randint(1, 6 - r)) for _ in range(r)))
        w = (cg * group, mg, *(int(rng.randint(1, 5 - r)) for _ in range(r)))
        s = [int(rng.randint(1, 4)) for _ in range(r)]
        d = [int(rng.randint(1, 4)) for _ in range(r)]
        a = [int(rng.randint(0, max(si, di))) for si, di in zip(s, d, strict=True)]
        attrs: dict[str, object] = {"strides": s, "dilations": d, "output_padding": a, "group": group}
        mode = ("pads", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "output_shape")[int(rng.randint(0, 6))]
        if mode == "pads":
            attrs["pads"] = [int(rng.randint(0, 3)) for _ in range(2 * r)]
        elif mode == "output_shape":
            attrs["output_shape"] = [int(rng.randint(1, 16)) for _ in range(r)]
        elif mode != "NOTSET":
            attrs["auto_pad"] = mode
        dtype = ("float32", "float16", "bfloat16", "float64")[int(rng.randint(0, 4))]
        data = ("exact", "random")[int(rng.randint(0, 2))]
        opset = 22 if dtype == "bfloat16" else (11, 22)[int(rng.randint(0, 2))]
        case = Case(
            f"random_s{seed}_{len(out):05d}",
            "random",
            x,
            w,
            bool(rng.randint(0, 2)),
            _freeze(attrs),
            dtype,
            opset,
            data,
            ("random_config",),
        )
        try:
            case.geometry()
        except SpecError:
            continue
        out.append(case)
    return out


def catalog(
    suite: str = "default",
    *,
    opsets: Iterable[int] | None = None,
    dtypes: Iterable[str] | None = None,
    only: Sequence[str] | None = None,
    random: int = 0,
    seed: int = 0,
    variants: Sequence[str] = ("inputs",),
) -> list[Case]:
    """The cases of ``suite``, filtered by opset, dtype and name globs, plus ``random`` drawn ones,
    each in the model ``variants`` that apply to it (the committed suite has all of
    :data:`VARIANTS`; name globs match variant names, ``<case>__<variant>``, too)."""
    if suite not in SUITES:
        raise SpecError("suite", suite, f"must be one of {list(SUITES)}")
    cases = seed_cases() + onnx_cases() + _expand(suite) + _reject_cases() + layer_cases(suite)
    try:
        limits.count("random", random, 0, limits.MAX_RANDOM_CASES)
        limits.count("seed", seed, 0, limits.MAX_SEED)
    except ValueError as exc:
        raise SpecError("random" if "random" in str(exc) else "seed", random, str(exc)) from None
    if random:
        cases += random_cases(random, seed)
    cases = with_variants(cases, list(variants))
    if opsets is not None:
        wanted = set(opsets)
        cases = [c for c in cases if c.opset in wanted]
    if dtypes is not None:
        wanted_dt = set(dtypes)
        unknown = wanted_dt - set(DTYPES)
        if unknown:
            raise SpecError("dtype", sorted(unknown)[0], f"must be one of {list(DTYPES)}")
        cases = [c for c in cases if c.dtype in wanted_dt]
    if only:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.name, g) for g in only)]
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise AssertionError("duplicate case names in the catalog")
    return cases
