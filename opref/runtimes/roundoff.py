"""The unit roundoff a runtime is judged with, from the options its spec declares (never from
what a worker answers: a runtime cannot loosen its own judge). Imports no adapter, so that the
spec parser and the adapters can both use it."""

from __future__ import annotations

from collections.abc import Mapping

from opref.dtypes import TF32_UNIT_ROUNDOFF

_FALSE = ("0", "false", "False")
# OpenVINO's INFERENCE_PRECISION_HINT: the precision it may compute float32 in.
_PRECISION_HINTS = {"bf16": 2.0**-8, "f16": 2.0**-11}


def unit_roundoff_for(kind: str, provider: str, options: Mapping[str, str], dtype: str) -> float | None:
    """The looser unit roundoff the options opt into for ``dtype`` (``CUDAExecutionProvider`` with
    ``use_tf32=1``; OpenVINO with ``INFERENCE_PRECISION_HINT=bf16|f16``), else None: the dtype's.
    ``provider`` is onnxruntime's full provider name (empty for other kinds)."""
    if dtype != "float32":
        return None
    if kind == "ort" and provider == "CUDAExecutionProvider":
        return TF32_UNIT_ROUNDOFF if options.get("use_tf32", "0") not in _FALSE else None
    if kind == "openvino":
        return _PRECISION_HINTS.get(options.get("INFERENCE_PRECISION_HINT", "f32").lower())
    return None
