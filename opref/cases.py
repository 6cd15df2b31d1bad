"""The conformance case catalog, declared as data.

A :class:`Case` names one ConvTranspose configuration, its element type, opset, the kind of
input data and its tags. :func:`catalog` expands the tables of :mod:`opref.catalog` (the data)
into a suite; nothing here computes values (that is :mod:`opref.vectors`' job).

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
from opref.catalog import AMBIGUOUS, AUTOPAD, LAYERS, OPSET1, REJECTS, SEED, SYSTEMATIC, Config, Layer
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
    # A form's values prepared outside the catalog (opref.quantize: what quantize_static chose),
    # used instead of drawing them (an opref.formvalues.FormValues).
    prepared: object | None = field(default=None, compare=False, repr=False)

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
    # Nodes around ConvTranspose (issue 24; opref.forms): the graph, its values and its own
    # expected output, judged by the form's bound (opref.formvalues).
    wrapped: bool = False


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
            Variant("pad-fused", True, False, False, "a zero Pad feeds X into ConvTranspose", True),
            Variant("bn-folded", True, False, False, "BatchNormalization follows ConvTranspose", True),
            Variant("qdq", True, False, False, "DequantizeLinear on X, W, B; QuantizeLinear on Y", True),
        )
    }
)


# The base cases that the default (committed) suite writes in the forms with nodes around
# ConvTranspose: the seed, ONNX's and the real layers' cases (ranks 1-3, stride 1 and 2, group 1,
# grouped and depthwise, pads within and beyond the node's) and a few more that reach what the
# forms found (a Pad folded at stride > 1, opset 11's BatchNormalization, quantized ties on random
# data); --suite full writes every case a form applies to (conformance time: spec notes section 4).
FORM_SUBSET = (
    *("seed_*", "onnx_*", "layer_*", "group3_depthwise_float32_exact", "autopad_notset_odd_float32_exact"),
    *("rank1_s2_pads_asym_float32_exact_opset11", "rank2_basic_float32_exact_opset11"),
    *("rank3_s2_p1_op1_float32_exact_opset11", "group2_s2_p1_asym_float32_exact*"),
    "rank3_d2_pads_asym_float32_exact",
    *("rank2_s2_p1_op1_rect_float32_random", "rank1_s2_op1_float32_random", "rank2_pads_asym_float32_random"),
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
    if VARIANTS[variant].wrapped:
        return _form_skipped(case, variant)
    return None


def _form_skipped(case: Case, variant: str) -> str | None:
    geo = case.geometry()
    if geo.ambiguities:
        return "an ambiguous case: its readings are judged in the one-node forms"
    if variant == "pad-fused" and ("output_shape" in case.attributes or geo.auto_pad not in ("NOTSET", None)):
        return "Pad folds into explicit pads: only cases without auto_pad and output_shape"
    if variant == "qdq" and (case.dtype != "float32" or case.opset < 13):
        return "quantized models are float32 between DequantizeLinear and QuantizeLinear with axis (opset 13)"
    return None


def with_variants(cases: Iterable[Case], variants: Sequence[str], *, form_subset: bool = False) -> list[Case]:
    """Each case followed by its model variants (``<case>__<variant>``), where they apply
    (``form_subset``: the forms with nodes around ConvTranspose only on :data:`FORM_SUBSET`)."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SpecError("variants", unknown[0], f"must be one of {list(VARIANTS)}")
    out = []
    for case in cases:
        in_subset = case.family == "random" or any(fnmatch.fnmatchcase(case.name, g) for g in FORM_SUBSET)
        for v in VARIANTS:
            if v not in variants or variant_skipped(case, v):
                continue
            if form_subset and VARIANTS[v].wrapped and not in_subset:
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
    cases = with_variants(cases, list(variants), form_subset=suite == "default")
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

