"""`opref explain`: the resolved geometry of one node, or of a framework layer's ONNX spelling."""

from __future__ import annotations

import argparse
import json
import re
import sys

from opref import readings as rd
from opref.cases import OPSETS
from opref.cli.args import ints, opset, reading
from opref.errors import SpecError
from opref.geometry import formula_lines, geometry, to_dict


def add_attribute_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--x-shape", type=ints, required=True, help="X's shape, e.g. 1,1,3,3")
    p.add_argument("--w-shape", type=ints, required=True, help="W's shape, e.g. 1,2,3,3")
    p.add_argument("--auto-pad", default=None, help="NOTSET (default), SAME_UPPER, SAME_LOWER or VALID")
    for name in ("dilations", "kernel_shape", "output_padding", "output_shape", "pads", "strides"):
        p.add_argument(f"--{name.replace('_', '-')}", type=ints, default=None, dest=name)
    p.add_argument("--group", type=int, default=None, help="default 1")
    p.add_argument(
        "--opset",
        type=opset,
        default=22,
        help="the model's opset (ConvTranspose's version there is used: 1, 11 or 22; e.g. 13 -> 11)",
    )
    p.add_argument("--bias", action="store_true", help="the node has a bias input B of shape [M]")
    p.add_argument(
        "--reading",
        type=reading,
        action="append",
        default=[],
        metavar="ID=READING",
        help=f"a non-default reading, e.g. {rd.NEGATIVE_TOTAL_PADDING}=clamp",
    )


def _attributes(args: argparse.Namespace) -> dict:
    return {
        "auto_pad": args.auto_pad or "NOTSET",
        "dilations": args.dilations,
        "group": 1 if args.group is None else args.group,
        "kernel_shape": args.kernel_shape,
        "output_padding": args.output_padding,
        "output_shape": args.output_shape,
        "pads": args.pads,
        "strides": args.strides,
    }


def _json_value(value: object) -> object:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _print_geometry(geo, pads_given: bool) -> None:
    """The explanation of a resolved geometry: the rule, the formulas with this case's
    numbers, pads, output shape and the ambiguities it touches."""
    print(f"ConvTranspose X{list(geo.x_shape)} W{list(geo.w_shape)} group={geo.group} opset={geo.opset}")
    ignored = " (pads ignored)" if geo.rule.value == "output_shape" and pads_given else ""
    print(f"rule: {geo.rule.value}{ignored}")
    for line in formula_lines(geo):
        print(line)
    print(f"pads (begins, then ends): {list(geo.pads)}")
    print(f"output shape: {list(geo.output_shape)}")
    if not geo.ambiguities:
        print("ambiguities: none (the spec text fully determines this result)")
    for aid in geo.ambiguities:
        amb = rd.AMBIGUITIES[aid]
        print(f"ambiguity {aid}: {amb.summary}")
        print(f"    computed under reading '{geo.readings[aid]}': {amb.readings[geo.readings[aid]]}")


def _print_spec_error(exc: SpecError) -> int:
    error = {"attribute": exc.attribute, "value": _json_value(exc.value), "rule": exc.rule}
    print(json.dumps({"error": {**error, "message": str(exc)}}, indent=2))
    return 2


def _operator_version(opset: int) -> int:
    """ConvTranspose's version in force at a model opset (the highest of OPSETS <= it), said when
    it is not the opset itself."""
    version = max(v for v in OPSETS if v <= opset)
    if version != opset:
        print(f"opref: note: opset {opset}: ConvTranspose is version {version} there", file=sys.stderr)
    return version


def cmd_explain(args: argparse.Namespace) -> int:
    args.opset = _operator_version(args.opset)
    if args.framework:
        return _explain_framework(args)
    foreign = [f"--{o.replace('_', '-')}" for o in _FRAMEWORK_ONLY if getattr(args, o) is not None]
    if foreign:
        print(f"opref: error: {', '.join(foreign)}: only with --from FRAMEWORK", file=sys.stderr)
        return 2
    try:
        geo = geometry(
            args.x_shape,
            args.w_shape,
            **_attributes(args),
            opset=args.opset,
            readings=dict(args.reading),
            b_shape=[args.w_shape[1] * (args.group or 1)] if args.bias and len(args.w_shape) > 1 else None,
        )
    except SpecError as exc:
        if not args.json:
            raise
        return _print_spec_error(exc)
    if args.json:
        print(json.dumps(to_dict(geo), indent=2))
        return 0
    _print_geometry(geo, bool(args.pads))
    return 0


# explain --from: each framework's own argument names (the keywords of its opref.frameworks
# function), and the ONNX-only options that have no meaning there.
_FRAMEWORK_ARGUMENTS = {
    "pytorch": ("stride", "padding", "output_padding", "dilation", "groups", "output_size"),
    "keras": ("strides", "padding", "output_padding", "dilation_rate"),
    "tensorflow": ("output_shape", "strides", "padding", "dilations"),
    "paddle": ("stride", "padding", "output_padding", "dilation", "groups", "output_size"),
}
_FRAMEWORK_ONLY = ("stride", "padding", "dilation", "dilation_rate", "groups", "output_size")
_ONNX_ONLY = ("auto_pad", "kernel_shape", "pads", "group")
_PER_AXIS = ("stride", "strides", "output_padding", "dilation", "dilations", "dilation_rate")


def _framework_padding(framework: str, text: str) -> object:
    if re.fullmatch(r"[A-Za-z]+", text.strip()):
        return text.strip()
    values = ints(text)
    if framework == "tensorflow":  # explicit (begin, end) pairs, written flat
        return [values[i : i + 2] for i in range(0, len(values), 2)]
    return values[0] if len(values) == 1 else values


def _framework_keywords(args: argparse.Namespace) -> dict:
    """The keywords of the framework's opref.frameworks function, from the options given.

    An option that is not that framework's (another framework's, or an ONNX attribute)
    raises ValueError: a usage error, not a rule of the spec."""
    framework = args.framework
    allowed = _FRAMEWORK_ARGUMENTS[framework]
    given = [
        o for o in (*_FRAMEWORK_ONLY, *_ONNX_ONLY, *_PER_AXIS, "output_shape") if getattr(args, o) is not None
    ]
    stray = sorted({o for o in given if o not in allowed} | ({"bias"} if args.bias else set()))
    if stray:
        names = ", ".join(f"--{o.replace('_', '-')}" for o in stray)
        known = ", ".join(f"--{o.replace('_', '-')}" for o in allowed)
        raise ValueError(f"{names}: not an argument of --from {framework} (its arguments: {known})")
    keywords = {}
    for name in allowed:
        value = getattr(args, name)
        if value is None:
            continue
        if name == "padding":
            value = _framework_padding(framework, value)
        elif name in _PER_AXIS and len(value) == 1:
            value = value[0]
        keywords[name] = value
    if framework == "tensorflow":
        missing = [
            f"--{o.replace('_', '-')}" for o in ("output_shape", "strides", "padding") if o not in keywords
        ]
        if missing:
            raise ValueError(f"--from tensorflow needs {', '.join(missing)}")
    return keywords


def _explain_framework(args: argparse.Namespace) -> int:
    from opref.frameworks import SPELLERS

    try:
        keywords = _framework_keywords(args)
    except ValueError as exc:
        print(f"opref: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.framework == "tensorflow":
            output_shape = keywords.pop("output_shape")
            spelling = SPELLERS["tensorflow"](args.x_shape, args.w_shape, output_shape, **keywords)
        else:
            spelling = SPELLERS[args.framework](args.x_shape, args.w_shape, **keywords)
        geo = geometry(
            spelling.x_shape,
            spelling.w_shape,
            **spelling.attributes,
            opset=args.opset,
            readings=dict(args.reading),
        )
    except SpecError as exc:
        if not args.json:
            raise
        return _print_spec_error(exc)
    if args.json:
        print(json.dumps({"spelling": spelling.to_dict(), "geometry": to_dict(geo)}, indent=2))
        return 0
    attributes = " ".join(
        f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in spelling.attributes.items()
    )
    print(f"{spelling.framework} layer, output {list(spelling.output_shape)}, spelled in ONNX as:")
    print(f"    {attributes}")
    depends = ", ".join(spelling.ambiguities) or "none (the spec text alone decides it)"
    print(f"spelling depends on: {depends}")
    for note in spelling.notes:
        print(f"note: {note}")
    print()
    _print_geometry(geo, True)
    return 0
