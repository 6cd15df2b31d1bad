"""The GPU check (scripts/gpu-check): validate onnxruntime's CUDA execution provider on this
machine's GPU (issue 18).

One command for a machine with an NVIDIA GPU. It finds or builds an interpreter whose
onnxruntime is onnxruntime-gpu (the one given, a wheel directory, or the package index), writes
a small wrapper that puts the CUDA libraries on LD_LIBRARY_PATH, prints the GPU, the driver and
the CUDA/cuDNN versions onnxruntime loaded, then runs ``opref validate`` once per configuration
(CUDA with TF32 off, with TF32 on, with NHWC kernels, TensorRT, and CPU from the same build) and
``opref report`` over them all, and prints a summary table last.

Everything goes through the ``opref`` command line as subprocesses and is read back from
``results.json``; nothing here imports a runtime. The script's exit code: 0 when every required
configuration ran and had no unexpected normative failure and no placement-truth violation;
1 when one was unavailable (the "no CUDA GPU here" path), incomplete or failed; 2 usage errors.

Modules: common (configurations, exit codes), environment (the GPU and the onnxruntime-gpu
interpreter), summary (the table and summary.md), command (the runs and ``main``).
"""

from opref.gpu.command import constant_weights_suite, main, parse_args, run_opref
from opref.gpu.common import CONFIGURATIONS, TABLE_ORDER, strip_ansi
from opref.gpu.environment import (
    Gpu,
    assemble_wheel,
    cuda_version_text,
    cudnn_version_text,
    find_gpus,
    find_wheels,
    library_dirs,
    pick_wheel,
    probe,
    write_wrapper,
)
from opref.gpu.summary import base_spec, cpu_fallback_reason, markdown, summarize, summary_lines

__all__ = [
    "CONFIGURATIONS",
    "TABLE_ORDER",
    "Gpu",
    "assemble_wheel",
    "base_spec",
    "constant_weights_suite",
    "cpu_fallback_reason",
    "cuda_version_text",
    "cudnn_version_text",
    "find_gpus",
    "find_wheels",
    "library_dirs",
    "main",
    "markdown",
    "parse_args",
    "pick_wheel",
    "probe",
    "run_opref",
    "strip_ansi",
    "summarize",
    "summary_lines",
    "write_wrapper",
]
