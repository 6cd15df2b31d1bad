"""Tencent ncnn, through its converter pnnx (the ``ncnn`` and ``pnnx`` wheels): ``ncnn``.

Each model takes the path ncnn documents for ONNX: the ``pnnx`` converter (the standalone
binary the pnnx wheel ships, run as a subprocess; its Python wrapper, which needs torch, is never
imported) turns the model, with W and B made constants (see ``opref.runtimes.frozen``) and X's
shape given as ``inputshape``, into an ncnn ``.param``/``.bin`` pair, and ncnn's ``Net`` loads
that pair and runs X through an ``Extractor``, as an application does.

Two settings are not pnnx's and ncnn's defaults, on purpose: pnnx stores the weights as float16
unless told ``fp16=0`` (*measured* on 20261020: float32 models then lose precision before ncnn
runs them), and ncnn's CPU kernels may store and compute in float16/bfloat16 where the hardware
has them; both would make a float32 model a float16 one. opref asks for float32 throughout, so
the verdicts describe ncnn's ConvTranspose, not a precision trade-off an application opts into.

ncnn's ``Mat`` has no batch axis and at most four axes (channels and three spatial): each sample
of X runs through the net on its own and the outputs are stacked; four spatial axes are
``unsupported``, as is any element type but float32 (ncnn's Mat holds float32 data).

Classification: a converter that fails on a valid model (no ``.param`` written, or a layer ncnn
then cannot load) is an ``error`` with pnnx's or ncnn's message; on a must-reject model the same
refusal is what the case wants (``rejected``). A crash inside ncnn kills the worker: ``crashed``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status
from opref.runtimes.frozen import freeze_weights, version_of

CONVERT_TIMEOUT = 120  # seconds for one pnnx conversion (a few tenths of a second here)


def pnnx_binary() -> Path | None:
    """The converter binary inside the installed pnnx wheel, found without importing pnnx."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pnnx"
    return path if path.is_file() else None


class NcnnAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        try:
            import ncnn
        except Exception as exc:
            self._info = RuntimeInfo(
                spec, "ncnn", "", False, f"cannot import ncnn ({exc}); build it: scripts/make-envs ncnn"
            )
            return
        self._ncnn = ncnn
        self._pnnx = pnnx_binary()
        version = version_of("ncnn")
        details = {"converter": f"pnnx {version_of('pnnx')} (fp16=0)", "backend": "CPU, float32"}
        if self._pnnx is None:
            self._info = RuntimeInfo(spec, "ncnn", version, False, "no pnnx binary: scripts/make-envs ncnn")
            return
        self._info = RuntimeInfo(spec, "ncnn", version, True, "", details)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        proto, _, x = freeze_weights(model, inputs)
        if x.dtype != np.float32:
            return Outcome(Status.UNSUPPORTED, message=f"ncnn: its Mat holds float32 only, not {x.dtype}")
        if x.ndim > 5:
            return Outcome(
                Status.UNSUPPORTED, message=f"ncnn: a Mat has at most 3 spatial axes, not {x.ndim - 2}"
            )
        with tempfile.TemporaryDirectory(prefix="opref-ncnn-") as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            onnx_path.write_bytes(proto.SerializeToString())
            shape = "[" + ",".join(str(d) for d in x.shape) + "]f32"
            cmd = [str(self._pnnx), onnx_path.name, f"inputshape={shape}", "fp16=0", "device=cpu"]
            try:
                done = subprocess.run(
                    cmd, cwd=tmp, capture_output=True, text=True, errors="replace", timeout=CONVERT_TIMEOUT
                )
            except subprocess.TimeoutExpired:
                return Outcome(Status.ERROR, message=f"pnnx did not finish within {CONVERT_TIMEOUT} s")
            param, weights = Path(tmp) / "model.ncnn.param", Path(tmp) / "model.ncnn.bin"
            if done.returncode != 0 or not param.is_file():
                text = (done.stderr or "") + (done.stdout or "")
                code = done.returncode
                how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
                return Outcome(Status.ERROR, message=f"pnnx ({how}): {_last_lines(text)}"[:2000])
            return self._execute(param, weights, x)

    def _execute(self, param: Path, weights: Path, x: np.ndarray) -> Outcome:
        ncnn = self._ncnn
        net = ncnn.Net()
        for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
            setattr(net.opt, flag, False)
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            layers = [ln.split()[0] for ln in param.read_text().splitlines()[2:] if ln.split()]
            return Outcome(Status.ERROR, message=f"ncnn cannot load pnnx's model (layers {layers})")
        inputs, outputs = net.input_names(), net.output_names()
        outs = []
        for sample in x:
            ex = net.create_extractor()
            ex.input(inputs[0], ncnn.Mat(np.ascontiguousarray(sample)).clone())
            ret, mat = ex.extract(outputs[0])
            if ret != 0:
                return Outcome(Status.ERROR, message=f"ncnn extract returned {ret}")
            outs.append(np.array(mat, dtype=np.float32, copy=True))
        return Outcome(Status.OK, np.stack(outs), "", "ncnn CPU")


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [
        ln for ln in lines if "error" in ln.lower() or "not support" in ln.lower() or "fail" in ln.lower()
    ]
    return " | ".join((errors or lines)[-n:]) or "no ncnn model written"
