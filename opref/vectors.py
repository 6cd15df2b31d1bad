"""Write a conformance suite in ONNX's backend-test layout (reading one back, which trusts
nothing, is :mod:`opref.suite`).

Layout (exactly what onnx's loader and onnxruntime's test runners read)::

    <out>/manifest.json
    <out>/node/<case>/model.onnx
    <out>/node/<case>/test_data_set_0/input_0.pb   X
    <out>/node/<case>/test_data_set_0/input_1.pb   W
    <out>/node/<case>/test_data_set_0/input_2.pb   B (when present)
    <out>/node/<case>/test_data_set_0/output_0.pb  Y (absent for must-reject cases)

Everything written is a function of the case list alone: seeded data (numpy's frozen
``RandomState`` stream, seeded from the case name), explicit model fields, sorted JSON.
A run writes into a temporary sibling directory and swaps it in at the end.
"""

from __future__ import annotations

import functools
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from opref.cases import VARIANTS, Case
from opref.codec import CHECKER, DATA_SET, FORMAT, MANIFEST, SuiteError, sha256, tensor_proto
from opref.dtypes import DTYPES, DType
from opref.errors import SpecError
from opref.forms import BnForm, QdqForm
from opref.formvalues import FormValues, bn_values, pad_values, qdq_values
from opref.geometry import geometry, reject_ambiguities, to_dict
from opref.model import ir_version_for, make_form_model, make_model
from opref.outdir import staged
from opref.reference import conv_transpose
from opref.tolerance import magnitude_sum, max_terms
from opref.version import __version__

# Significant bits of "random" data per dtype: values are seeded normals rounded to a dyadic
# grid of this many bits, so that the float64 reference sum is exact in any summation order
# (byte-identical files whatever BLAS) while the dtype's own accumulation still rounds.
RANDOM_BITS = {"float16": 11, "float32": 16, "float64": 20, "bfloat16": 8}





def _rng(case: Case) -> np.random.RandomState:
    # RandomState's stream is frozen by numpy's compatibility policy; crc32 is stable. Every
    # model variant of a case draws the case's own data.
    return np.random.RandomState(zlib.crc32(case.base_case.encode()))


def _random_grid(rng: np.random.RandomState, shape, dt: DType, bits: int) -> np.ndarray:
    frac = bits - 3  # values mostly within +-4
    ints = np.clip(np.round(rng.standard_normal(shape) * 2.0**frac), -(2**bits - 1), 2**bits - 1)
    return (ints / 2.0**frac).astype(dt.numpy)


def case_inputs(case: Case) -> tuple[np.ndarray, ...]:
    """X, W (and B) of a case: given, or drawn deterministically from the case name."""
    if case.inputs is not None:
        return case.inputs
    dt = DTYPES[case.dtype]
    w_dt = DTYPES[case.w_dtype or case.dtype]
    rng = _rng(case)
    shapes = [case.x_shape, case.w_shape] + ([case.b_shape] if case.b_shape is not None else [])
    types = [dt, w_dt, w_dt]
    # A bias never holds a zero element: B = [0] once hid a converter that drops a 3-D bias.
    if case.data == "random":
        arrays = [_random_grid(rng, s, t, RANDOM_BITS[t.name]) for s, t in zip(shapes, types, strict=False)]
        if len(arrays) > 2:
            unit = 2.0 ** -(RANDOM_BITS[w_dt.name] - 3)  # the grid's step: the smallest nonzero value
            arrays[2] = np.where(arrays[2] == 0, unit, arrays[2]).astype(w_dt.numpy)
        return tuple(arrays)
    geo = None if case.reject else case.geometry()
    # Small integers, narrowed (smaller range, then sparser) until every partial sum fits.
    for high, density in ((3, 1.0), (2, 1.0), (1, 1.0), (1, 0.5), (1, 0.25), (1, 0.1), (1, 0.03)):
        arrays = []
        for k, (s, t) in enumerate(zip(shapes, types, strict=False)):
            if k == 2:  # the bias: 1..high with a random sign, never 0
                vals = rng.randint(1, high + 1, size=s) * np.where(rng.randint(0, 2, size=s) == 1, 1.0, -1.0)
            else:
                vals = rng.randint(-high, high + 1, size=s).astype(np.float64)
                vals *= rng.random_sample(s) < density
            arrays.append(vals.astype(t.numpy))
        if geo is None:
            return tuple(arrays)
        bound = magnitude_sum(*arrays[:2], arrays[2] if len(arrays) > 2 else None, geo)
        if bound.max(initial=0) <= dt.exact_limit:
            return tuple(arrays)
    raise SuiteError(f"{case.name}: no exactly summable integer data found; shrink the case")


# --- one case -----------------------------------------------------------------------------



def _checker(model: onnx.ModelProto) -> str:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # the checker raises several types; all mean "refused"
        return "refused: " + str(exc).strip().splitlines()[0][:300]
    return "ok"


@functools.lru_cache(maxsize=1)
def _values(base: Case) -> tuple[tuple[np.ndarray, ...], dict, bytes | None]:
    """The inputs, the value-dependent record fields and output_0.pb of a case, shared by its
    model variants (generate writes them one after the other: one entry suffices)."""
    inputs = case_inputs(base)
    if base.reject:
        try:
            base.geometry()
            if base.w_dtype:
                raise SpecError("W.dtype", base.w_dtype, f"must equal X.dtype={base.dtype}")
        except SpecError as exc:
            message = str(exc)
        else:
            raise SuiteError(f"{base.name}: declared must-reject ({base.reject}) but opref accepts it")
        return (
            inputs,
            {
                "expect": "reject",
                "reject_rule": base.reject,
                "reject_message": message,
                "geometry": None,
                "ambiguities": reject_ambiguities(
                    base.x_shape, base.w_shape, base.attributes, base.opset, base.b_shape, base.dtype
                ),
                "tolerance": None,
            },
            None,
        )
    geo = base.geometry()
    X, W, *rest = inputs
    B = rest[0] if rest else None
    Y = conv_transpose(X, W, B, **base.attributes, opset=base.opset)
    dt = DTYPES[base.dtype]
    S = magnitude_sum(X, W, B, geo)
    integral = all(np.array_equal(a, np.round(a.astype(np.float64))) for a in inputs)
    return (
        inputs,
        {
            "expect": "output",
            "geometry": to_dict(geo),
            "ambiguities": list(geo.ambiguities),
            "tolerance": {
                "unit_roundoff": dt.unit_roundoff,
                "max_terms": max_terms(geo, B is not None),
                "max_magnitude_sum": float(S.max(initial=0.0)),
                "bitexact": bool(integral and S.max(initial=0.0) <= dt.exact_limit),
            },
        },
        tensor_proto(Y, "Y").SerializeToString(),
    )


def _identity(case: Case, x_shape) -> dict:
    """The fields of a manifest record that say which case it is (every form has them)."""
    return {
        "name": case.name,
        "family": case.family,
        "dtype": case.dtype,
        "opset": case.opset,
        "ir_version": ir_version_for(case.opset),
        "x_shape": list(x_shape),
        "w_shape": list(case.w_shape),
        "b_shape": None if case.b_shape is None else list(case.b_shape),
        "attributes": case.attributes,
        "data": case.data,
        "features": list(case.features),
        "description": case.description,
        "variant": case.variant,
        "base_case": case.base_case,
    }


def build_case(case: Case) -> tuple[dict[str, bytes], dict]:
    """The files of one case (relative path -> bytes) and its manifest record.

    The record holds only what the case determines; what this onnx version's checker says
    of the model goes to checker.json (see :func:`generate`). A model variant
    (``opref.cases.VARIANTS``) has its case's inputs and expected output; with constant
    weights, W and B are in the model and ``input_0.pb`` (X) is its only input file.
    """
    variant = VARIANTS[case.variant]
    if case.prepared is not None:
        return _form_case(case, ())
    inputs, outcome, output = _values(replace(case, name=case.base_case, variant="inputs"))
    if variant.wrapped:
        return _form_case(case, inputs)
    attrs = case.attributes
    record: dict = {**_identity(case, case.x_shape), **outcome}
    files: dict[str, bytes] = {}
    if output is None:
        y_shape = [None] * len(case.x_shape)  # no output shape exists for an invalid node
    else:
        y_shape = record["geometry"]["output_shape"]
        files[f"{DATA_SET}/output_0.pb"] = output
    named = list(zip(("X", "W", "B"), inputs, strict=False))
    constants = [tensor_proto(a, n) for n, a in named[1:]] if variant.constant_weights else []
    model = make_model(
        case.name,
        case.x_shape,
        case.w_shape,
        case.b_shape,
        attrs,
        case.dtype,
        case.opset,
        y_shape=y_shape,
        w_dtype=case.w_dtype,
        initializers=constants,
        symbolic_batch=variant.symbolic_batch,
        symbolic_spatial=variant.symbolic_spatial,
    )
    files["model.onnx"] = model.SerializeToString()
    for i, (name, arr) in enumerate(named[: len(named) - len(constants)]):
        files[f"{DATA_SET}/input_{i}.pb"] = tensor_proto(arr, name).SerializeToString()
    record["files"] = {path: sha256(data) for path, data in sorted(files.items())}
    return files, record


def _form_values(case: Case, inputs: tuple[np.ndarray, ...]) -> FormValues:
    if isinstance(case.prepared, FormValues):
        return case.prepared
    if case.variant == "pad-fused":
        return pad_values(case.name, inputs, case.attributes, case.opset)
    if case.variant == "bn-folded":
        return bn_values(case.name, inputs, case.attributes, case.opset)
    return qdq_values(case.name, case.x_shape, case.w_shape, case.bias, case.attributes, case.opset)


def _form_case(case: Case, inputs: tuple[np.ndarray, ...]) -> tuple[dict[str, bytes], dict]:
    """A form with nodes around ConvTranspose (``opref.forms``): the case's inputs (``pad-fused``,
    ``bn-folded``) or quantized data of its shapes (``qdq``), in the form's graph, with the form's
    values in the record and its own expected output."""
    fv = _form_values(case, inputs)
    X, W, *rest = fv.operands
    B = rest[0] if rest else None
    geo = geometry(X.shape, W.shape, **case.attributes, opset=case.opset)
    dt = DTYPES[case.dtype]
    S = magnitude_sum(X, W, B, geo)
    integral = all(np.array_equal(a, np.round(a.astype(np.float64))) for a in fv.operands)
    if isinstance(fv.form, QdqForm):
        bitexact = fv.form.exact
    else:
        bitexact = not isinstance(fv.form, BnForm) and integral and S.max(initial=0.0) <= dt.exact_limit
    record: dict = {
        **_identity(case, X.shape),
        "expect": "output",
        "geometry": to_dict(geo),
        "ambiguities": [],
        "form": fv.form.to_dict(),
        "tolerance": {
            "unit_roundoff": dt.unit_roundoff,
            "max_terms": max_terms(geo, B is not None),
            "max_magnitude_sum": float(S.max(initial=0.0)),
            "bitexact": bool(bitexact),
        },
    }
    model = make_form_model(
        case.name, X.shape, case.w_shape, case.b_shape, case.attributes, case.dtype, case.opset,
        geo.output_shape, fv.form, fv.constants,
    )
    files = {
        "model.onnx": model.SerializeToString(),
        f"{DATA_SET}/input_0.pb": tensor_proto(fv.x_file, "X_q" if isinstance(fv.form, QdqForm) else "X")
        .SerializeToString(),
        f"{DATA_SET}/output_0.pb": tensor_proto(fv.expected, "Y").SerializeToString(),
    }
    record["files"] = {path: sha256(data) for path, data in sorted(files.items())}
    return files, record


# --- a whole suite ------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    out: Path
    cases: int
    rejects: int
    bytes: int
    seconds: float

    def line(self) -> str:
        return (
            f"generated {self.cases} cases ({self.cases - self.rejects} with outputs, {self.rejects} "
            f"must-reject) into {self.out} ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f} s"
        )


def is_suite(path: Path) -> bool:
    """True when ``path`` holds a manifest written by opref."""
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("generator") == "opref"


def is_replaceable_suite(path: Path) -> bool:
    """A suite opref may replace: written by opref, holding nothing its manifest does not list."""
    return is_suite(path) and not _foreign_entries(path)


def _foreign_entries(out: Path) -> list[str]:
    """Paths under an existing suite that its manifest does not account for (a replaced suite
    must take nothing else with it)."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        cases = {r["name"]: set(r["files"]) for r in manifest["cases"]}
    except (OSError, ValueError, KeyError, TypeError):
        return [MANIFEST] if (out / MANIFEST).exists() else []
    foreign = [e.name for e in sorted(out.iterdir()) if e.name not in (MANIFEST, CHECKER, "node")]
    node = out / "node"
    if node.is_dir() and not node.is_symlink():
        for case in sorted(node.iterdir()):
            if case.name not in cases or case.is_symlink() or not case.is_dir():
                foreign.append(f"node/{case.name}")
                continue
            for path in sorted(case.rglob("*")):
                rel = path.relative_to(case).as_posix()
                inside = any(f.startswith(rel + "/") for f in cases[case.name])
                if rel not in cases[case.name] and not (path.is_dir() and inside):
                    foreign.append(f"node/{case.name}/{rel}")
    elif node.exists():
        foreign.append("node")
    return foreign


def _json(data) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()


def generate(
    out: str | os.PathLike,
    cases: Iterable[Case],
    parameters: Mapping[str, object],
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Write ``cases`` as a suite at ``out``, replacing a previous opref suite there.

    Refuses a non-empty ``out`` that is not an opref suite, or one holding files its manifest
    does not list; on any error, or if killed, the previous suite stays as it was
    (:mod:`opref.outdir`).
    """
    t0 = time.perf_counter()
    out = Path(out).absolute()
    cases = list(cases)
    records, total_bytes, checks = [], 0, {}
    with staged(out, "generate", own=is_replaceable_suite, marker=False) as tmp:
        for i, case in enumerate(cases):
            files, record = build_case(case)
            checks[case.name] = _checker(onnx.load_from_string(files["model.onnx"]))
            for rel, data in files.items():
                path = tmp / "node" / case.name / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                total_bytes += len(data)
            records.append(record)
            if progress:
                progress(i + 1, len(cases))
        manifest = {
            "generator": "opref",
            "generator_version": __version__,
            "format": FORMAT,
            "parameters": dict(parameters),
            "case_count": len(records),
            "cases": records,
        }
        data = _json(manifest)
        (tmp / MANIFEST).write_bytes(data)
        total_bytes += len(data)
        # ONNX's checker is an observation of the installed onnx, not a property of the case:
        # it takes sides on ambiguities (clamps a negative T under SAME, adds output_padding
        # to SAME), refuses some valid models (output_shape far below the full extent), and
        # its verdicts change between onnx releases. Kept apart so the manifest and every
        # case file stay byte-identical across the onnx versions opref supports.
        (tmp / CHECKER).write_bytes(
            _json({"onnx_version": onnx.__version__, "full_check": True, "cases": checks})
        )
    return Summary(
        out,
        len(records),
        sum(1 for r in records if r["expect"] == "reject"),
        total_bytes,
        time.perf_counter() - t0,
    )

