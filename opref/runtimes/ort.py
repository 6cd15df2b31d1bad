"""onnxruntime with any execution provider: ``ort:cpu``, ``ort:cuda?use_tf32=0``, ``ort:<Provider>``.

For any provider but CPU the session lists only that provider and sets
``session.disable_cpu_ep_fallback = "1"``, so a node the provider will not take fails session
creation (``fallback``) instead of silently running on CPU (spec notes section 4), and
placement is read back from onnxruntime's own profile of the run.

Plugin execution providers (onnxruntime >= 1.22, shipped as separate packages such as
``onnxruntime-ep-openvino``) are named the same way, with where their library is:
``ort:OpenVINOExecutionProvider?plugin=onnxruntime_ep_openvino`` (a module whose
``get_library_path()`` gives it, the packages' convention) or ``?library=/path/to/lib.so``.
The library is registered with ``register_execution_provider_library`` and the session gets the
provider through ``add_provider_for_devices``; ``ep_device=CPU|GPU|NPU`` picks the provider's
devices of that hardware type (default: all it offers). Other options are provider options.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import tempfile

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status
from opref.runtimes.roundoff import unit_roundoff_for

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}

# The message onnxruntime gives when disable_cpu_ep_fallback stops a node going to CPU.
_FALLBACK_MARKERS = ("fallback to cpu ep has been explicitly disabled", "assigned to the default cpu ep")


# Messages that mean "this build cannot run this (dtype, opset, IR version)", not "this is wrong".
_UNSUPPORTED_MARKERS = (
    "not_implemented",
    "could not find an implementation",
    "unsupported model ir version",
    "opset version is not supported",
)


# ``?graph_optimization_level=``: onnxruntime's graph optimisation levels (its default is "all").
# Graph optimisers fold neighbours into ConvTranspose (issue 24), so each level is its own runtime.
GRAPH_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}
# Options this adapter applies to the session, not to the provider.
SESSION_OPTIONS = frozenset({"graph_optimization_level"})


def provider_name(alias: str) -> str:
    return PROVIDER_ALIASES.get(alias.lower(), alias)


class OrtAdapter:
    def __init__(self, spec: str, provider: str, options: dict[str, str]):
        self.spec = spec
        self.provider = provider_name(provider)
        self.options = dict(options)
        self.library = self.options.pop("library", "")
        self.plugin = self.options.pop("plugin", "")
        self.device_type = self.options.pop("ep_device", "").upper()
        self.optimization = self.options.pop("graph_optimization_level", "")
        self._ep_devices = None  # plugin providers: the OrtEpDevice objects the session uses
        if self.provider == "CUDAExecutionProvider":
            self.options.setdefault("use_tf32", "0")  # fp32 must be fp32 unless asked otherwise
        self._ort = None
        self._info = self._probe()

    def _probe(self) -> RuntimeInfo:
        try:
            import onnxruntime as ort
        except Exception as exc:  # ImportError, or a broken native library
            return RuntimeInfo(self.spec, "onnxruntime", "", False, f"cannot import onnxruntime: {exc}")
        self._ort = ort
        available = ort.get_available_providers()
        details = {
            "provider": self.provider,
            "provider_options": self.options,
            "build_providers": available,
            "device": ort.get_device(),
        }
        if self.optimization:
            level = GRAPH_OPTIMIZATION_LEVELS.get(self.optimization, "")
            details["graph_optimization_level"] = level
            if not hasattr(ort.GraphOptimizationLevel, level):
                return RuntimeInfo(
                    self.spec, "onnxruntime", ort.__version__, False,
                    f"onnxruntime {ort.__version__} has no optimization level {level or self.optimization}",
                    details,
                )
        if self.library or self.plugin:
            return self._probe_plugin(ort, details)
        if self.provider not in available:
            return RuntimeInfo(
                self.spec,
                "onnxruntime",
                ort.__version__,
                False,
                f"{self.provider} is not in this onnxruntime build's providers {available}",
                details,
            )
        if self.provider != "CPUExecutionProvider":
            # onnxruntime-gpu lists CUDA even where its libraries cannot load; it then builds
            # the session on CPU. Only a session that really got the provider proves it.
            used, log = _probe_session(ort, self.provider, self.options)
            if self.provider not in used:
                why = log.strip().splitlines()[-3:] if log.strip() else ["no error was logged"]
                return RuntimeInfo(
                    self.spec,
                    "onnxruntime",
                    ort.__version__,
                    False,
                    f"{self.provider} could not be created here (session got {used}): " + " | ".join(why),
                    details,
                )
        return RuntimeInfo(self.spec, "onnxruntime", ort.__version__, True, "", details)

    def _probe_plugin(self, ort, details: dict) -> RuntimeInfo:
        """Register the plugin provider's library and find its devices (onnxruntime >= 1.22)."""

        def unavailable(why: str) -> RuntimeInfo:
            return RuntimeInfo(self.spec, "onnxruntime", ort.__version__, False, why, details)

        if not hasattr(ort, "register_execution_provider_library"):
            return unavailable(f"onnxruntime {ort.__version__} cannot load plugin execution providers")
        try:
            path = self.library or importlib.import_module(self.plugin).get_library_path()
        except Exception as exc:
            return unavailable(f"cannot locate the library of plugin {self.plugin!r}: {exc}")
        details["plugin_library"] = str(path)
        if self.plugin:
            details["plugin_version"] = _dist_version(self.plugin)
        try:
            ort.register_execution_provider_library(self.provider, str(path))
        except Exception as exc:
            return unavailable(f"register_execution_provider_library({path}) failed: {exc}")
        offered = [(d.ep_name, d.device.type.name) for d in ort.get_ep_devices()]
        self._ep_devices = [
            d
            for d in ort.get_ep_devices()
            if d.ep_name == self.provider and (not self.device_type or d.device.type.name == self.device_type)
        ]
        details["ep_devices"] = [f"{name}/{kind}" for name, kind in offered]
        if not self._ep_devices:
            wanted = self.provider + (f" on a {self.device_type} device" if self.device_type else "")
            return unavailable(
                f"the library registered, but offers no device for {wanted}; offered: {offered}"
            )
        used, log = _probe_session(ort, self.provider, self.options, self._ep_devices)
        if self.provider not in used:
            why = log.strip().splitlines()[-3:] if log.strip() else ["no error was logged"]
            return unavailable(
                f"{self.provider} could not be created here (session got {used}): " + " | ".join(why)
            )
        return RuntimeInfo(self.spec, "onnxruntime", ort.__version__, True, "", details)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return unit_roundoff_for("ort", self.provider, self.options, dtype)

    def _session_options(self, profile_dir: str | None):
        so = self._ort.SessionOptions()
        so.log_severity_level = 4
        if self.optimization:
            so.graph_optimization_level = getattr(
                self._ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[self.optimization]
            )
        if self.provider != "CPUExecutionProvider":
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        if profile_dir:
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(profile_dir, "ort")
        if self._ep_devices:
            so.add_provider_for_devices(self._ep_devices, self.options)
        return so

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        ort = self._ort
        is_cpu = self.provider == "CPUExecutionProvider"
        with tempfile.TemporaryDirectory(prefix="opref-ort-") as tmp:
            try:
                so = self._session_options(None if is_cpu else tmp)
                if self._ep_devices:
                    sess = ort.InferenceSession(model, so)
                else:
                    sess = ort.InferenceSession(model, so, providers=[(self.provider, self.options)])
            except Exception as exc:
                return _classify(exc)
            # A session may still have been given another provider; trust only what it says.
            used = sess.get_providers()
            if used[:1] != [self.provider]:
                return Outcome(Status.FALLBACK, message=f"session providers are {used}, not {self.provider}")
            try:
                out = sess.run(None, inputs)[0]
            except Exception as exc:
                return _classify(exc)
            placement = self.provider if is_cpu else _profiled_placement(sess)
        if not is_cpu and placement != self.provider:
            return Outcome(
                Status.FALLBACK, out, f"ConvTranspose ran on {placement or 'an unknown provider'}", placement
            )
        return Outcome(Status.OK, np.asarray(out), "", placement)


def _probe_session(ort, provider: str, options: dict[str, str], ep_devices=None) -> tuple[list[str], str]:
    """Providers a one-node session really got, and what onnxruntime wrote to stderr meanwhile
    (``ep_devices``: a plugin provider's devices, given to the session instead of a name)."""
    from opref.model import make_model

    model = make_model("probe", (1, 1, 3), (1, 1, 3), None, {}, "float32", 11).SerializeToString()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    with tempfile.TemporaryFile(mode="w+b") as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            if ep_devices:
                so.add_provider_for_devices(ep_devices, options)
                used = ort.InferenceSession(model, so).get_providers()
            else:
                used = ort.InferenceSession(model, so, providers=[(provider, options)]).get_providers()
        except Exception as exc:
            used = [f"error: {exc}"]
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        return used, log.read().decode(errors="replace")


def _dist_version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return ""


def _profiled_placement(sess) -> str:
    """The providers that ran the graph's node events, from onnxruntime's own profile.

    The model has one node; a provider may fuse it into a subgraph of its own name
    ("OpenVINO-EP-subgraph_1"), so every node event counts, whatever its op name.
    """
    path = sess.end_profiling()
    try:
        with open(path) as fh:
            events = json.load(fh)
    except (OSError, ValueError):
        return ""
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    providers = {e.get("args", {}).get("provider", "") for e in events if e.get("cat") == "Node"}
    providers.discard("")
    return ",".join(sorted(providers))


def _classify(exc: Exception) -> Outcome:
    text = str(exc)
    low = text.lower()
    if any(m in low for m in _FALLBACK_MARKERS):
        return Outcome(Status.FALLBACK, message=text)
    if type(exc).__name__ == "NotImplemented" or any(m in low for m in _UNSUPPORTED_MARKERS):
        return Outcome(Status.UNSUPPORTED, message=text)
    return Outcome(Status.ERROR, message=f"{type(exc).__name__}: {text}")
