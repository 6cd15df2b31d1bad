"""Runtime specs (``ort:cuda?use_tf32=0``, ``onnx-reference``, ``openvino``, ``tinygrad``, ``tract``,
``tvm``, ``iree``, ``opencv``, ``ncnn``, ``mnn``, ``onnx2tf``, ``onnx2torch``, ``py:module:factory``)
and the adapters behind them. One file per runtime; adding one is one entry in ``_FACTORIES``.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from urllib.parse import parse_qsl

from opref.runtimes.base import Adapter, Outcome, RuntimeInfo, Status
from opref.runtimes.roundoff import unit_roundoff_for


class RuntimeSpecError(ValueError):
    """A runtime spec string cannot be understood."""


def _ort(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.ort import OrtAdapter

    if not arg:
        raise RuntimeSpecError(f"{spec!r}: name a provider, e.g. ort:cpu or ort:cuda")
    return OrtAdapter(spec, arg, options)


def _onnx_reference(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.onnx_reference import OnnxReferenceAdapter

    return OnnxReferenceAdapter(spec, options)


def _openvino(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.openvino import OpenVinoAdapter

    if arg:
        options = {"device": arg, **options}
    return OpenVinoAdapter(spec, options)


def _tinygrad(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.tinygrad import TinygradAdapter

    if arg:
        options = {"device": arg, **options}
    return TinygradAdapter(spec, options)


def _tract(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.tract import TractAdapter

    return TractAdapter(spec, options)


def _tvm(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.tvm import TvmAdapter

    if arg:
        options = {"target": arg, **options}
    return TvmAdapter(spec, options)


def _iree(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.iree import IreeAdapter

    if arg:
        options = {"device": arg, **options}
    return IreeAdapter(spec, options)


def _opencv(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.opencv import OpenCvAdapter

    return OpenCvAdapter(spec, options)


def _ncnn(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.ncnn import NcnnAdapter

    return NcnnAdapter(spec, options)


def _mnn(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.mnn import MnnAdapter

    return MnnAdapter(spec, options)


def _onnx2tf(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.onnx2tf import Onnx2TfAdapter

    return Onnx2TfAdapter(spec, options)


def _onnx2torch(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.onnx2torch import Onnx2TorchAdapter

    return Onnx2TorchAdapter(spec, options)


def _python(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    module, _, factory = arg.partition(":")
    if not module or not factory:
        raise RuntimeSpecError(f"{spec!r}: write py:MODULE:FACTORY")
    try:
        return getattr(importlib.import_module(module), factory)(spec, options)
    except (ImportError, AttributeError) as exc:
        raise RuntimeSpecError(f"{spec!r}: {exc}") from None


_FACTORIES: dict[str, Callable[[str, str, dict[str, str]], Adapter]] = {
    "ort": _ort,
    "onnx-reference": _onnx_reference,
    "openvino": _openvino,
    "tinygrad": _tinygrad,
    "tract": _tract,
    "tvm": _tvm,
    "iree": _iree,
    "opencv": _opencv,
    "ncnn": _ncnn,
    "mnn": _mnn,
    "onnx2tf": _onnx2tf,
    "onnx2torch": _onnx2torch,
    "py": _python,
}


def split_interpreter(spec: str) -> tuple[str, str | None]:
    """``kind:arg?opts@/path/to/python`` -> (``kind:arg?opts``, the interpreter or None)."""
    plain, sep, interpreter = spec.rpartition("@")
    if not sep:
        return spec, None
    if not interpreter:
        raise RuntimeSpecError(f"{spec!r}: name an interpreter after '@'")
    return plain, interpreter


# Names a user may reach for, and the spec opref spells them with.
_SPELLINGS = {"onnxruntime": "ort:cpu", "onnxruntime-gpu": "ort:cuda", "ort-cpu": "ort:cpu", "cpu": "ort:cpu"}


def did_you_mean(kind: str) -> str:
    """`` (did you mean X?)`` for an unknown runtime kind close to a known one, else ''."""
    lowered = kind.lower().replace("_", "-")
    if lowered in _SPELLINGS:
        return f" (did you mean {_SPELLINGS[lowered]}?)"
    if lowered in _FACTORIES:
        return f" (did you mean {lowered}?)"
    close = difflib.get_close_matches(lowered, sorted(_FACTORIES), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def parse(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split ``kind[:arg][?k=v&...][@python]`` into kind, arg and options (the interpreter is
    the validator's business); RuntimeSpecError if the kind is unknown."""
    head, _, query = split_interpreter(spec)[0].partition("?")
    kind, _, arg = head.partition(":")
    if kind not in _FACTORIES:
        raise RuntimeSpecError(
            f"{spec!r}: unknown runtime {kind!r}{did_you_mean(kind)}; known: {sorted(_FACTORIES)}"
        )
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise RuntimeSpecError(f"{spec!r}: options must be key=value pairs joined by &") from None
    return kind, arg, options


def check(spec: str) -> None:
    """Everything that can be known wrong about a spec without running it; RuntimeSpecError says
    what (an unknown kind, an onnxruntime provider or option that does not exist, a malformed
    ``py:`` spec)."""
    kind, arg, options = parse(spec)
    if kind == "ort":
        from opref.runtimes.ort_providers import check as check_ort

        if not arg:
            raise RuntimeSpecError(f"{spec!r}: name a provider, e.g. ort:cpu or ort:cuda")
        if why := check_ort(spec, arg, options):
            raise RuntimeSpecError(why)
    if kind == "py":
        module, _, factory = arg.partition(":")
        if not module or not factory:
            raise RuntimeSpecError(f"{spec!r}: write py:MODULE:FACTORY")


def declared_unit_roundoff(spec: str, dtype: str) -> float | None:
    """The unit roundoff a runtime is judged with on ``dtype`` when its spec opts into a looser
    accumulation (``ort:cuda?use_tf32=1``, ``openvino?INFERENCE_PRECISION_HINT=bf16``), else None
    (the dtype's). Read from the spec the user wrote, never from what a worker answers: a runtime
    cannot loosen its own judge."""
    kind, arg, options = parse(spec)
    provider = ""
    if kind == "ort":
        from opref.runtimes.ort import provider_name

        provider = provider_name(arg)
    return unit_roundoff_for(kind, provider, options, dtype)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def hint(spec: str, reason: str) -> str:
    """What to do about a runtime that is unavailable here, from its spec and reason."""
    kind, arg, _ = parse(spec)
    interpreter = split_interpreter(spec)[1]
    if reason.startswith("cannot start"):
        return f"check the interpreter after '@' ({interpreter}) exists and is executable"
    if kind == "ort":
        from opref.runtimes.ort import provider_name
        from opref.runtimes.ort_providers import INSTALL_HINTS

        name = provider_name(arg)
        if "not in this onnxruntime build" in reason or "could not be created" in reason:
            return INSTALL_HINTS.get(name, f"install an onnxruntime build that has {name}")
    if kind == "py" and ("No module named" in reason or "ModuleNotFoundError" in reason):
        return "make the adapter's module importable (PYTHONPATH) in the worker's interpreter"
    if "did not report within" in reason:
        return "raise --start-timeout, or find where the adapter hangs while starting"
    return "see the reason; --allow-unavailable lets a run go on without this runtime"


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (onnxruntime colours its log lines)."""
    return _ANSI.sub("", text)


def create(spec: str) -> Adapter:
    """Build the adapter a spec names (in the calling process: call it in a worker)."""
    kind, arg, options = parse(spec)
    return _FACTORIES[kind](spec, arg, options)


__all__ = [
    "Adapter",
    "Outcome",
    "RuntimeInfo",
    "RuntimeSpecError",
    "Status",
    "check",
    "create",
    "declared_unit_roundoff",
    "hint",
    "parse",
    "split_interpreter",
    "strip_ansi",
]
