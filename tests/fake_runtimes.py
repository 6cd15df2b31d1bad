"""Deliberately wrong runtimes for the validator's own tests (``py:fake_runtimes:make``).

Each computes opref's reference from the model it is given, then breaks it as its ``mode``
option says, on the cases whose node name matches the ``only`` glob (default: all).

``mode=bug&bug=ID`` injects one of opref's bug models (``opref.diagnose.CATALOG``), written here
again, independently of opref.diagnose: through other attributes given to opref's reference, the
direct loop of ``opref.direct`` (which checks nothing), or per-group runs. Where the injected
mistake makes the node invalid for opref, the fake answers the right output.
"""

from __future__ import annotations

import fnmatch
import os
import time

import numpy as np
import onnx

import opref
from opref.codec import read_tensor
from opref.model import node_attributes
from opref.runtimes import Outcome, RuntimeInfo, Status


class FakeRuntime:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        self.mode = options.get("mode", "good")
        self.only = options.get("only", "*")
        self.bug = options.get("bug", "")
        self.marker = options.get("marker", "")
        self.readings = {k[len("reading.") :]: v for k, v in options.items() if k.startswith("reading.")}

    def info(self) -> RuntimeInfo:
        if self.mode == "unavailable":
            return RuntimeInfo(self.spec, "fake", "0", False, "libfake.so: cannot open shared object file")
        return RuntimeInfo(self.spec, "fake", "0", True)

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model_bytes: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        model = onnx.load_from_string(model_bytes)
        node = model.graph.node[0]
        attrs = node_attributes(node)
        constants = {t.name: read_tensor(t.SerializeToString()) for t in model.graph.initializer}
        args = [inputs[i] if i in inputs else constants[i] for i in node.input]
        active = fnmatch.fnmatchcase(node.name, self.only)
        if active and self.mode == "crash":
            os.abort()
        if active and self.mode == "hang":
            if self.marker:  # tell a test that waits for it that the worker now never answers
                with open(self.marker, "a") as fh:
                    fh.write(node.name + "\n")
            time.sleep(3600)
        if active and self.mode == "same-upper-as-lower" and attrs.get("auto_pad") == "SAME_UPPER":
            # onnxruntime <= 1.12 (#9370): SAME_UPPER split an odd total padding the SAME_LOWER way.
            attrs = {**attrs, "auto_pad": "SAME_LOWER"}
        try:
            y = opref.conv_transpose(
                *args, **attrs, opset=model.opset_import[0].version, readings=self.readings
            )
        except opref.SpecError as exc:
            if active and self.mode == "accept-all":
                return Outcome(Status.OK, np.zeros((1,), dtype=np.float32), "", "fake")
            return Outcome(Status.ERROR, message=str(exc))
        if not active:
            return Outcome(Status.OK, y, "", "fake")
        if self.mode == "shift-pad":
            # As if pad_begin on the last axis were one larger: everything moves by one.
            y = np.roll(y, -1, axis=-1)
            y[..., -1] = 0
        elif self.mode == "wrong-dtype":
            y = y.astype(np.float64)
        elif self.mode == "wrong-shape":
            y = y[..., :-1]
        elif self.mode == "one-ulp":
            y = np.nextafter(y, np.inf)
        elif self.mode == "drop-bias":
            if len(args) > 2:
                y = opref.conv_transpose(*args[:2], **attrs, opset=model.opset_import[0].version)
        elif self.mode == "bug":
            y = inject(self.bug, args, attrs, model.opset_import[0].version, self.readings, y)
        elif self.mode == "error":
            return Outcome(Status.ERROR, message="RuntimeError: kernel failed")
        elif self.mode == "unsupported":
            return Outcome(Status.UNSUPPORTED, message="NOT_IMPLEMENTED: no kernel")
        elif self.mode == "fallback":
            return Outcome(Status.FALLBACK, message="assigned to the default CPU EP")
        return Outcome(Status.OK, y, "", "fake")


def _without(attrs: dict, *names: str) -> dict:
    return {k: v for k, v in attrs.items() if k not in names}


def _per_group(X, W, B, attrs, opset, readings, w_of_group):
    """Run each group as its own group-1 node, with the weights ``w_of_group(g)`` gives."""
    G = attrs.get("group", 1)
    cg = X.shape[1] // G
    outs = []
    for g in range(G):
        bg = None if B is None else B[g * W.shape[1] : (g + 1) * W.shape[1]]
        one = {**attrs, "group": 1}
        outs.append(
            opref.conv_transpose(
                X[:, g * cg : (g + 1) * cg], w_of_group(g), bg, **one, opset=opset, readings=readings
            )
        )
    return np.concatenate(outs, axis=1)


def _tf32(a: np.ndarray) -> np.ndarray:
    """float32 rounded to 10 stored mantissa bits, ties to even, on the bits."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lsb = (bits >> 13) & 1
    rounded = ((bits + 0xFFF + lsb) & ~np.uint64(0x1FFF)).astype(np.uint32)
    return rounded.view(np.float32)


def _narrow(args, attrs, opset, readings, kind: str) -> np.ndarray:
    import ml_dtypes

    X, W, *rest = args
    low = {"computed-in-float16": np.float16, "computed-in-bfloat16": ml_dtypes.bfloat16}.get(kind)
    if kind == "computed-in-tf32":
        ops = [_tf32(X), _tf32(W), *rest]
    elif kind == "computed-in-float32":
        ops = [a.astype(np.float32) for a in args]
    else:
        ops = [a.astype(low).astype(np.float32) for a in (X, W)] + [r.astype(np.float32) for r in rest]
    y = opref.conv_transpose(*ops, **attrs, opset=opset, readings=readings)
    if low is not None:
        y = y.astype(low)
    return y.astype(X.dtype)


def inject(bug: str, args, attrs: dict, opset: int, readings: dict, right: np.ndarray) -> np.ndarray:
    """The output of a runtime with bug model ``bug``; ``right`` where it cannot be made."""
    from opref.direct import direct_conv_transpose

    X, W, *rest = args
    B = rest[0] if rest else None
    geo = opref.geometry(X.shape, W.shape, **attrs, opset=opset, readings=readings)
    r = len(geo.axes)
    rule = str(geo.rule)
    a = list(geo.output_padding)

    def ct(**changed):
        return opref.conv_transpose(X, W, B, **changed, opset=opset, readings=readings)

    def loop(**changed):  # no checks: invalid-for-opref attributes are fine here
        y = direct_conv_transpose(X, W, B, group=attrs.get("group", 1), **changed)
        return y.astype(X.dtype)

    try:
        if bug == "odd-unit-wrong-side" and rule in ("output_shape", "auto_pad SAME"):
            swapped = list(geo.pads[r:]) + list(geo.pads[:r])
            return ct(**_without(attrs, "output_shape", "auto_pad", "pads"), pads=swapped)
        if bug == "pads-with-output-shape" and "output_shape" in attrs and any(attrs.get("pads", [])):
            y = ct(**_without(attrs, "output_shape"))
            out = np.zeros(geo.output_shape, dtype=np.float64)
            if B is not None:
                out += B.astype(np.float64).reshape(1, -1, *[1] * r)
            common = tuple(slice(0, min(p, q)) for p, q in zip(y.shape, out.shape, strict=True))
            out[common] = y[common]
            return out.astype(X.dtype)
        if bug == "output-shape-as-full-extent" and "output_shape" in attrs:
            return ct(**_without(attrs, "output_shape", "auto_pad", "pads"))
        if bug == "same-as-full-extent" and rule == "auto_pad SAME":
            return ct(**_without(attrs, "auto_pad"), auto_pad="VALID")
        if bug == "output-padding-ignored" and any(a):
            return ct(**_without(attrs, "output_padding"))
        if bug == "output-padding-twice" and any(a):
            return loop(**_without(attrs, "output_padding", "group"), output_padding=[2 * v for v in a])
        if bug == "output-padding-both-sides" and any(a) and rule in ("pads", "auto_pad VALID"):
            begins = [p - v for p, v in zip(geo.pads[:r], a, strict=True)]
            return loop(
                strides=list(geo.strides),
                dilations=list(geo.dilations),
                output_padding=a,
                pads=begins + list(geo.pads[r:]),
            )
        if bug == "bias-of-group-0" and B is not None:
            mg = W.shape[1]
            y = opref.conv_transpose(X, W, **attrs, opset=opset, readings=readings).astype(np.float64)
            bias = np.concatenate([B[:mg]] * geo.group).astype(np.float64)
            return (y + bias.reshape(1, -1, *[1] * r)).astype(X.dtype)
        if bug == "group-blocks-reversed" and geo.group > 1:
            G, cg = geo.group, W.shape[0] // geo.group
            return _per_group(X, W, B, attrs, opset, readings, lambda g: W[(G - 1 - g) * cg : (G - g) * cg])
        if bug == "w-as-m-by-c":
            G, (C, mg, *k) = geo.group, W.shape
            cg = C // G
            flat = W.reshape(-1)
            block = mg * cg * int(np.prod(k, dtype=np.int64))

            def conv_layout(g):
                # This group's bytes as Conv's (M/group, C/group, k...), then used as (C/group, M/group).
                w = flat[g * block : (g + 1) * block].reshape(mg, cg, *k)
                return np.ascontiguousarray(np.swapaxes(w, 0, 1))

            return _per_group(X, W, B, attrs, opset, readings, conv_layout)
        if bug == "kernel-flipped":
            flipped = W[(slice(None), slice(None), *[slice(None, None, -1)] * r)]
            return opref.conv_transpose(X, flipped, B, **attrs, opset=opset, readings=readings)
        if bug == "dilation-ignored" and any(d != 1 for d in geo.dilations):
            return ct(**_without(attrs, "dilations"))
        if bug == "stride-dilation-swapped" and geo.strides != geo.dilations:
            return ct(
                **_without(attrs, "strides", "dilations"),
                strides=list(geo.dilations),
                dilations=list(geo.strides),
            )
        if bug.startswith("computed-in-"):
            wide = {"computed-in-tf32": ("float32",), "computed-in-float32": ("float64",)}.get(
                bug, ("float32", "float64")
            )
            if str(X.dtype) in wide:
                return _narrow(args, attrs, opset, readings, bug)
    except opref.SpecError:
        pass
    return right


def make(spec: str, options: dict[str, str]) -> FakeRuntime:
    return FakeRuntime(spec, options)
