"""Runtime specs (``ort:cuda?use_tf32=0``, ``onnx-reference``, ``openvino``, ``tinygrad``, ``tract``,
``tvm``, ``iree``, ``opencv``, ``ncnn``, ``mnn``, ``onnx2tf``, ``onnx2torch``, ``py:module:factory``)
and the adapters behind them. One file per runtime; adding one is one entry in ``_ADAPTERS``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from urllib.parse import parse_qsl

from opref.boundary import strip_ansi
from opref.runtimes.base import Adapter, Outcome, RuntimeInfo, Status
from opref.runtimes.roundoff import unit_roundoff_for


class RuntimeSpecError(ValueError):
    """A runtime spec string cannot be understood."""


def _ort(spec: str, arg: str, options: dict[str, str]) -> Adapter:
    from opref.runtimes.ort import OrtAdapter

    if not arg:
        raise RuntimeSpecError(f"{spec!r}: name a provider, e.g. ort:cpu or ort:cuda")
    return OrtAdapter(spec, arg, options)


# kind -> (module, adapter class, the option a spec's ``:arg`` sets, if the kind takes one).
# Imported only when a spec names the kind: a runtime's packages live in its own environment.
_ADAPTERS: dict[str, tuple[str, str, str | None]] = {
    "onnx-reference": ("onnx_reference", "OnnxReferenceAdapter", None),
    "openvino": ("openvino", "OpenVinoAdapter", "device"),
    "tinygrad": ("tinygrad", "TinygradAdapter", "device"),
    "tract": ("tract", "TractAdapter", None),
    "tvm": ("tvm", "TvmAdapter", "target"),
    "iree": ("iree", "IreeAdapter", "device"),
    "opencv": ("opencv", "OpenCvAdapter", None),
    "ncnn": ("ncnn", "NcnnAdapter", None),
    "mnn": ("mnn", "MnnAdapter", None),
    "onnx2tf": ("onnx2tf", "Onnx2TfAdapter", None),
    "onnx2torch": ("onnx2torch", "Onnx2TorchAdapter", None),
}


def _table_factory(kind: str) -> Callable[[str, str, dict[str, str]], Adapter]:
    module, cls, arg_option = _ADAPTERS[kind]

    def make(spec: str, arg: str, options: dict[str, str]) -> Adapter:
        if arg:
            if arg_option is None:
                raise RuntimeSpecError(f"{spec!r}: {kind} takes no ':{arg}'; write {kind}")
            options = {arg_option: arg, **options}
        adapter = getattr(importlib.import_module(f"opref.runtimes.{module}"), cls)
        return adapter(spec, options)

    return make


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
    **{kind: _table_factory(kind) for kind in _ADAPTERS},
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
    if kind in _ADAPTERS and arg and _ADAPTERS[kind][2] is None:
        raise RuntimeSpecError(f"{spec!r}: {kind} takes no ':{arg}'; write {kind}")
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
