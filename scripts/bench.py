#!/usr/bin/env python3
"""Time opref's float64-exact reference against onnxruntime CPU on the four benchmark shapes.

Each shape is timed side by side in one run (median of repeated calls, float32 inputs);
onnx.reference is timed once per shape, PyTorch when it is installed. "f64 GEMM" is one
float64 matrix product with the op's multiply-adds: roughly what any float64 method spends on
the arithmetic alone. Not a test: speed is reported here, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import opref
from opref.model import make_model


@dataclass(frozen=True)
class Shape:
    label: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    attrs: dict


SHAPES = (
    Shape(
        "2-D N1 C64->32 56x56 k4 s2 p1",
        (1, 64, 56, 56),
        (64, 32, 4, 4),
        {"strides": [2, 2], "pads": [1, 1, 1, 1]},
    ),
    Shape(
        "2-D N8 C16->16 32x32 k3 s2 p1 op1",
        (8, 16, 32, 32),
        (16, 16, 3, 3),
        {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]},
    ),
    Shape(
        "3-D N1 C8->8 16^3 k3 s2 p1 op1",
        (1, 8, 16, 16, 16),
        (8, 8, 3, 3, 3),
        {"strides": [2, 2, 2], "pads": [1] * 6, "output_padding": [1, 1, 1]},
    ),
    Shape("1-D N4 C32->32 L1024 k8 s4 p2", (4, 32, 1024), (32, 32, 8), {"strides": [4], "pads": [2, 2]}),
)


PAUSE = 0.15  # seconds between blocks; see measure()


def block_times(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median_time(fn, repeat: int) -> float:
    return statistics.median(block_times(fn, repeat))


def torch_fn(shape: Shape, x: np.ndarray, w: np.ndarray):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    r = len(shape.x) - 2
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[r]
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    pads = shape.attrs["pads"][:r]
    op = shape.attrs.get("output_padding", [0] * r)
    return lambda: fn(tx, tw, stride=shape.attrs["strides"], padding=pads, output_padding=op)


def measure(
    shape: Shape, rng: np.random.RandomState, repeat: int, rounds: int, with_onnx_reference: bool
) -> dict:
    import onnxruntime as ort

    x = rng.standard_normal(shape.x).astype(np.float32)
    w = rng.standard_normal(shape.w).astype(np.float32)
    model = make_model("bench", shape.x, shape.w, None, shape.attrs, "float32", 22)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def run_ort():
        return sess.run(None, {"X": x, "W": w})[0]

    def run_opref():
        return opref.conv_transpose(x, w, **shape.attrs)

    ort_y, ref_y = run_ort(), run_opref()
    assert ort_y.shape == ref_y.shape, (ort_y.shape, ref_y.shape)
    # Alternate blocks of runs so that drift hits both alike. The pause matters: after a call,
    # OpenBLAS's and onnxruntime's worker threads keep spinning for tens of milliseconds, and
    # on a 2-core machine the other side's first ~50 ms then run at half speed or worse
    # (measured: onnxruntime 7.8 ms 10-50 ms after a numpy product, 3.1 ms after 100 ms).
    t_ort, t_ref = [], []
    for _ in range(rounds):
        t_ort += block_times(run_ort, repeat)
        time.sleep(PAUSE)
        t_ref += block_times(run_opref, repeat)
        time.sleep(PAUSE)
    row = {
        "shape": shape.label,
        "ort": statistics.median(t_ort),
        "opref": statistics.median(t_ref),
        "max_abs_diff": float(np.max(np.abs(ort_y.astype(np.float64) - ref_y))),
    }
    # Roughly the least any float64 method spends: one float64 product with the op's multiply-adds
    # (M/group x C/group*taps, times C/group*taps x N*input positions, per group).
    groups = shape.attrs.get("group", 1)
    k = shape.w[0] // groups * int(np.prod(shape.w[2:]))
    other = np.random.RandomState(1)  # leaves rng's stream, so the inputs stay the same
    a = other.standard_normal((groups, shape.w[1], k))
    b = other.standard_normal((groups, k, shape.x[0] * int(np.prod(shape.x[2:]))))
    c = np.empty((groups, shape.w[1], b.shape[2]))
    row["gemm64"] = median_time(lambda: np.matmul(a, b, out=c), repeat)
    time.sleep(PAUSE)
    tf = torch_fn(shape, x, w)
    row["torch"] = median_time(tf, repeat) if tf else None
    row["onnx.reference"] = None
    if with_onnx_reference:
        from onnx.reference import ReferenceEvaluator

        ev = ReferenceEvaluator(model)
        t0 = time.perf_counter()
        ev.run(None, {"X": x, "W": w})
        row["onnx.reference"] = time.perf_counter() - t0
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10, help="calls per block")
    parser.add_argument("--rounds", type=int, default=10, help="blocks per side, alternating")
    parser.add_argument("--skip-onnx-reference", action="store_true")
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    rows = [measure(shape, rng, args.repeat, args.rounds, not args.skip_onnx_reference) for shape in SHAPES]

    def ms(v):
        return "-" if v is None else f"{v * 1e3:10.2f}"

    def ratio(v, base):
        return "-" if v is None else f"{v / base:8.1f}x"

    print(
        f"{'shape':36} {'ort ms':>10} {'opref ms':>10} {'opref/ort':>9} {'f64 GEMM ms':>11} {'GEMM/ort':>8} "
        f"{'torch ms':>10} {'onnx.ref ms':>12} {'onnx.ref/ort':>12} {'max|diff|':>10}"
    )
    for r in rows:
        print(
            f"{r['shape']:36} {ms(r['ort'])} {ms(r['opref'])} {r['opref'] / r['ort']:8.2f}x "
            f"{ms(r['gemm64']):>11} {r['gemm64'] / r['ort']:7.2f}x "
            f"{ms(r['torch'])} {ms(r['onnx.reference']):>12} {ratio(r['onnx.reference'], r['ort']):>12} "
            f"{r['max_abs_diff']:10.2e}"
        )
    worst = max(rows, key=lambda r: r["opref"] / r["ort"])
    print(f"worst opref/onnxruntime ratio: {worst['opref'] / worst['ort']:.2f}x ({worst['shape']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
