"""What the GPU check's parts share: its configurations, exit codes and text helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from opref.boundary import strip_ansi

# The checkout the check runs in (its vectors/, known-failures.txt, results/ and .venvs/).
ROOT = Path(__file__).resolve().parent.parent.parent

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# The time limit for the whole check on one GPU.
DEFAULT_BUDGET_S = 480.0

# onnxruntime-gpu 1.31.1 is built for CUDA 13.0 and cuDNN 9 (its build_and_package_info.py).
DEFAULT_ORT_GPU = "onnxruntime-gpu==1.31.1"

# Verdicts after which the case ran nowhere (not "ran on the wrong provider").
_NOT_RUN = ("fallback", "unsupported")


@dataclass(frozen=True)
class Configuration:
    """One onnxruntime configuration to validate.

    ``required``: unavailable, incomplete or with unexpected failures, it fails the check.
    ``placement_truth``: onnxruntime's CUDA rule for ConvTranspose placement applies (spec
    notes section 4), so the cases it sends to CPU must come out ``fallback``.
    ``constant_weights``: run on the suite's variant with W and B as initializers (the NHWC
    kernels take constant weights).
    """

    spec: str
    required: bool
    placement_truth: bool
    constant_weights: bool = False

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_]+", "-", self.spec).strip("-")


# Run in this order: plain CUDA first, because it tells whether there is a usable GPU at all;
# TensorRT last, because it builds an engine per session and may use up what is left of the budget.
CONFIGURATIONS = (
    Configuration("ort:cuda", required=True, placement_truth=True),
    Configuration("ort:cuda?use_tf32=1", required=True, placement_truth=True),
    Configuration("ort:cuda?prefer_nhwc=1", required=True, placement_truth=True, constant_weights=True),
    Configuration("ort:cpu", required=True, placement_truth=False),
    Configuration("ort:tensorrt", required=False, placement_truth=False),
)
# The order of the summary table (the build matrix: CPU vs CUDA vs CUDA-TF32 vs NHWC).
TABLE_ORDER = ("ort:cpu", "ort:cuda", "ort:cuda?use_tf32=1", "ort:cuda?prefer_nhwc=1", "ort:tensorrt")
_BY_SPEC = {c.spec: c for c in CONFIGURATIONS}


# --- text ---------------------------------------------------------------------------------

def tail(text: str, lines: int = 6) -> str:
    kept = [ln for ln in strip_ansi(text).strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])

