"""Debugging artifacts: the tensors of one (case, runtime) written next to results.json.

``opref validate --save-tensors failures|all`` writes, per saved pair, under
``<out>/tensors/<runtime>/<case>/``: X, W, B (when present), ``expected`` (the reference under
the reading the verdict was judged by), ``output`` (the runtime's) and ``bound`` (the tolerance
of spec notes section 5, element by element; zeros on exact data, where any difference fails),
each as ``.npy`` and as an ONNX TensorProto ``.pb`` (bfloat16 .npy files hold float32 values,
which represent every bfloat16 exactly; the .pb keeps bfloat16). The record lists the paths,
relative to the results directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from opref.codec import tensor_proto
from opref.dtypes import DTYPES, ulp
from opref.errors import SpecError
from opref.geometry import geometry
from opref.reference import conv_transpose
from opref.suite import CaseData
from opref.tolerance import gamma, magnitude_sum

SAVE_POLICIES = ("none", "failures", "all")


def safe_name(text: str) -> str:
    """A file name for an untrusted runtime spec or case name: safe characters only, and a
    short hash of the original so that two names never share a folder."""
    plain = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80].lstrip(".") or "_"
    return f"{plain}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _reference(case: CaseData, readings: Mapping[str, str] | None) -> np.ndarray | None:
    if not readings:
        return case.expected
    rec = case.record
    try:
        return conv_transpose(*case.operands, **rec.attributes, opset=rec.opset, readings=readings)
    except SpecError:
        return case.expected


def bound(case: CaseData, want: np.ndarray, readings, unit_roundoff: float | None) -> np.ndarray:
    """The tolerance of every element of ``want`` (zeros when the case demands bit-exactness)."""
    rec = case.record
    if rec.tolerance.bitexact:
        return np.zeros(want.shape)
    X, W, *rest = case.operands
    geo = geometry(X.shape, W.shape, **rec.attributes, opset=rec.opset, readings=readings)
    dt = DTYPES[rec.dtype]
    u = dt.unit_roundoff if unit_roundoff is None else unit_roundoff
    S = magnitude_sum(X, W, rest[0] if rest else None, geo)
    return gamma(rec.tolerance.max_terms, u) * S + ulp(want.astype(np.float64), dt)


def _write(folder: Path, name: str, array: np.ndarray) -> list[str]:
    kept = array.astype(np.float32) if str(array.dtype) == "bfloat16" else array
    np.save(folder / f"{name}.npy", kept, allow_pickle=False)
    (folder / f"{name}.pb").write_bytes(tensor_proto(array, name).SerializeToString())
    return [f"{name}.npy", f"{name}.pb"]


def save_tensors(root: Path, spec: str, case: CaseData, answer, record: dict) -> dict[str, str]:
    """Write one pair's tensors under ``root``/tensors/; {name: path relative to root}."""
    folder = root / "tensors" / safe_name(spec) / safe_name(case.record.name)
    folder.mkdir(parents=True, exist_ok=True)
    rel = folder.relative_to(root)
    names = ["X", "W", "B"][: len(case.operands)]
    arrays: dict[str, np.ndarray] = dict(zip(names, case.operands, strict=True))
    readings = record.get("nearest_reading") or record.get("reading")
    want = _reference(case, readings) if case.expected is not None else None
    if want is not None:
        arrays["expected"] = want
    output = getattr(answer, "output", None)
    if output is not None:
        arrays["output"] = output
        if want is not None and output.shape == want.shape and output.dtype == want.dtype:
            arrays["bound"] = bound(case, want, readings, record.get("unit_roundoff"))
    paths = {}
    for name, array in arrays.items():
        npy, _pb = _write(folder, name, np.ascontiguousarray(array))
        paths[name] = str(rel / npy)
    return paths


MAX_LOADED_BYTES = 1 << 30  # a saved tensor larger than this is not read back


def load(root: str | Path, paths: Mapping[str, str], name: str) -> np.ndarray | None:
    """One saved tensor (the .npy), or None when it was not saved, is gone, or is not a
    regular file inside ``root`` (a path read from results.json may name anything: ``..``, an
    absolute path, a symbolic link out, /dev/zero, a FIFO; none of them is opened)."""
    rel = paths.get(name) if isinstance(paths, Mapping) else None
    if not isinstance(rel, str) or not rel or not root or os.path.isabs(rel) or "\0" in rel:
        return None
    base = os.path.realpath(root)
    path = os.path.join(base, rel)
    target = os.path.realpath(path)
    if os.path.commonpath([base, target]) != base or target == base:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    info = os.fstat(fd)
    try:
        same = os.stat(target).st_ino == info.st_ino
    except OSError:
        same = False
    if not same or not stat.S_ISREG(info.st_mode) or info.st_size > MAX_LOADED_BYTES:
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as fh:
        try:
            array = np.load(fh, allow_pickle=False)
        except Exception:  # a malformed .npy is a missing tensor here, whatever numpy raises
            return None
    return array if isinstance(array, np.ndarray) and array.dtype.kind in "biuf" else None
