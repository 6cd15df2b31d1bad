"""onnx2torch, validated through PyTorch (CPU), the runtime it converts to: ``onnx2torch``
(opt-in: ``scripts/make-envs onnx2torch [--wheels DIR]``).

Each model, with W and B made constants (see ``opref.runtimes.frozen``), is converted by
``onnx2torch.convert`` into a ``torch.nn.Module``, which runs X in eager mode under
``torch.no_grad()``, as an application does. The verdict's runtime is both: "onnx2torch
<version> -> PyTorch <version>".

onnx2torch imports torchvision for two converters only (NonMaxSuppression, RoiAlign); torchvision
is not installed in its environment (PyPI's build does not load beside a CPU build of torch), so
the adapter puts a stand-in module in its place whose functions raise if ever called.

Classification: onnx2torch has converters per operator version; a model whose ConvTranspose
version it has none for (``NotImplementedError: Converter is not implemented``: opset 22,
*measured* on 1.5.15) is ``unsupported``. Any other refusal of a valid model is an ``error``
with its message; on a must-reject model the same refusal is the case's ``rejected``.
"""

from __future__ import annotations

import sys
import types

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status
from opref.runtimes.frozen import freeze_weights, version_of


def _stand_in_torchvision() -> None:
    if "torchvision" in sys.modules:
        return

    def missing(*args, **kwargs):
        raise NotImplementedError("torchvision is not installed (opref's onnx2torch environment)")

    tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = missing
    tv.ops = ops
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops


class Onnx2TorchAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        try:
            import torch

            _stand_in_torchvision()
            from onnx2torch import convert
        except Exception as exc:
            self._info = RuntimeInfo(
                spec,
                "onnx2torch",
                "",
                False,
                f"cannot import onnx2torch ({exc}); build it: scripts/make-envs onnx2torch",
            )
            return
        self._torch, self._convert = torch, convert
        torch.set_num_threads(1)
        version = f"{version_of('onnx2torch')} → PyTorch {torch.__version__}"
        details = {"converter": "onnx2torch.convert", "runtime": "torch eager (CPU)", "weights": "constants"}
        self._info = RuntimeInfo(spec, "onnx2torch", version, True, "", details)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        torch = self._torch
        proto, _, x = freeze_weights(model, inputs)
        try:
            module = self._convert(proto)
        except NotImplementedError as exc:
            return Outcome(Status.UNSUPPORTED, message=f"onnx2torch: {_one_line(exc)}"[:2000])
        except Exception as exc:
            return Outcome(Status.ERROR, message=f"onnx2torch: {type(exc).__name__}: {_one_line(exc)}"[:2000])
        bf16 = x.dtype.name == "bfloat16"
        try:
            tensor = (
                torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
                if bf16
                else torch.from_numpy(np.array(x, copy=True))
            )
            with torch.no_grad():
                y = module(tensor)
            if isinstance(y, (list, tuple)):
                y = y[0]
            out = y.float().numpy().astype(x.dtype) if bf16 else y.numpy()
        except Exception as exc:
            return Outcome(Status.ERROR, message=f"torch: {type(exc).__name__}: {_one_line(exc)}"[:2000])
        return Outcome(Status.OK, np.array(out, copy=True), "", "PyTorch CPU")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
