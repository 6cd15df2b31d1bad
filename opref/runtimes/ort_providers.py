"""What opref knows of onnxruntime's execution providers without importing onnxruntime: their
names, and the provider options each documents (so that a misspelt spec is a usage error
before any work, not an "unavailable" runtime and a green build).

Names and options as onnxruntime 1.2x documents them (execution provider pages and
``onnxruntime_c_api.h`` / ``*_provider_options.h``). A provider without an entry in
:data:`OPTIONS` takes any option (its list is not kept here).
"""

from __future__ import annotations

import difflib

from opref.runtimes.ort import GRAPH_OPTIMIZATION_LEVELS, PROVIDER_ALIASES, SESSION_OPTIONS, provider_name

PROVIDERS = frozenset(
    {
        "CPUExecutionProvider",
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
        "NvTensorRTRTXExecutionProvider",
        "OpenVINOExecutionProvider",
        "DmlExecutionProvider",
        "CoreMLExecutionProvider",
        "ROCMExecutionProvider",
        "MIGraphXExecutionProvider",
        "DnnlExecutionProvider",
        "QNNExecutionProvider",
        "NnapiExecutionProvider",
        "XnnpackExecutionProvider",
        "WebGpuExecutionProvider",
        "WebNNExecutionProvider",
        "JsExecutionProvider",
        "VitisAIExecutionProvider",
        "CANNExecutionProvider",
        "ACLExecutionProvider",
        "ArmNNExecutionProvider",
        "RknpuExecutionProvider",
        "SNPEExecutionProvider",
        "VSINPUExecutionProvider",
        "AzureExecutionProvider",
    }
)

# Options opref's own adapter reads (not passed to onnxruntime): a plugin provider's package or
# library (see opref/runtimes/ort.py).
ADAPTER_OPTIONS = frozenset({"plugin", "library"})

OPTIONS: dict[str, frozenset[str]] = {
    "CPUExecutionProvider": frozenset(),
    "CUDAExecutionProvider": frozenset(
        {
            "device_id",
            "gpu_mem_limit",
            "arena_extend_strategy",
            "cudnn_conv_algo_search",
            "do_copy_in_default_stream",
            "cudnn_conv_use_max_workspace",
            "cudnn_conv1d_pad_to_nc1d",
            "enable_cuda_graph",
            "enable_skip_layer_norm_strict_mode",
            "use_tf32",
            "prefer_nhwc",
            "fuse_conv_bias",
            "sdpa_kernel",
            "tunable_op_enable",
            "tunable_op_tuning_enable",
            "tunable_op_max_tuning_duration_ms",
            "use_ep_level_unified_stream",
        }
    ),
    "OpenVINOExecutionProvider": frozenset(
        {
            "device_type",
            "precision",
            "num_of_threads",
            "num_streams",
            "cache_dir",
            "load_config",
            "enable_opencl_throttling",
            "enable_qdq_optimizer",
            "disable_dynamic_shapes",
            "model_priority",
        }
    ),
}


def check(spec: str, provider: str, options: dict[str, str]) -> str | None:
    """Why an ``ort:`` spec cannot be right (a usage error), or None."""
    name = provider_name(provider)
    level = options.get("graph_optimization_level")
    if level is not None and level not in GRAPH_OPTIMIZATION_LEVELS:
        return (
            f"{spec!r}: graph_optimization_level={level!r} is not one of {list(GRAPH_OPTIMIZATION_LEVELS)}"
        )
    options = {k: v for k, v in options.items() if k not in SESSION_OPTIONS}
    plugin = bool(ADAPTER_OPTIONS & set(options))
    if name not in PROVIDERS and not plugin:
        close = difflib.get_close_matches(name, sorted(PROVIDERS), n=1, cutoff=0.6)
        alias = difflib.get_close_matches(provider.lower(), sorted(PROVIDER_ALIASES), n=1, cutoff=0.6)
        if alias:  # ort:cpux -> ort:cpu
            close = [f"ort:{alias[0]}"]
        return (
            f"{spec!r}: {provider!r} is not an onnxruntime execution provider"
            + (f" (did you mean {close[0]}?)" if close else "")
            + "; known: "
            f"{sorted(PROVIDERS)} (aliases cpu, cuda, tensorrt, openvino, dml, coreml, rocm), "
            "or name a plugin provider's package with ?plugin=MODULE or ?library=PATH"
        )
    known = OPTIONS.get(name)
    if known is None or plugin:
        return None
    unknown = sorted(set(options) - known - ADAPTER_OPTIONS)
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        return f"{spec!r}: unknown {name} option(s) {unknown}; known: {listed}"
    return None


# What to do when a provider is not in this onnxruntime build, by provider.
INSTALL_HINTS = {
    "CUDAExecutionProvider": "install onnxruntime-gpu and run on a machine with a CUDA GPU",
    "TensorrtExecutionProvider": "install onnxruntime-gpu and TensorRT, on a machine with a CUDA GPU",
    "OpenVINOExecutionProvider": "install onnxruntime-openvino (scripts/make-envs: .venvs/ort-openvino)",
    "DmlExecutionProvider": "install onnxruntime-directml, on Windows",
    "CoreMLExecutionProvider": "run on macOS with onnxruntime",
    "ROCMExecutionProvider": "install onnxruntime-rocm and run on a machine with an AMD GPU",
}
