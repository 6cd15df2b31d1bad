"""onnx2tf, validated through TensorFlow Lite, the runtime it converts to: ``onnx2tf``
(opt-in: ``scripts/make-envs onnx2tf`` builds its 2.6 GB environment on demand).

Each model, with W and B made constants (see ``opref.runtimes.frozen``), is converted by
``onnx2tf.convert`` into a float32 ``.tflite`` file, which TensorFlow Lite's interpreter runs on
the CPU. onnx2tf turns channel-first layouts into channel-last ones (NCHW -> NHWC): X is fed
channel-last when the converted model's input asks for that, and the output is turned back to
channel-first, as an application using the converted model does. The verdict's runtime is both:
"onnx2tf <version> -> TensorFlow Lite <version>".

onnx2tf cannot convert a ConvTranspose without a ``kernel_shape`` attribute (*measured* on
1.29.24: ``IndexError``/``ValueError: axes don't match array`` in its ConvTranspose op), which the
spec makes optional: such models are an ``error``. Option ``kernel_shape=1`` writes W's spatial
shape into the model first (the same model by the spec's default; the workaround a user applies),
so that the rest of onnx2tf's ConvTranspose can be judged; ``scripts/ecosystem`` runs it so.

onnx2tf's ONNX simplifier step is skipped (``not_use_onnxsim``): it runs as a separate console
script and rewrites nothing in a one-node model.

Classification: onnx2tf raising on a valid model is an ``error`` with its message; on a
must-reject model the same refusal is the case's ``rejected`` (a converter that refuses a model
the spec forbids has done its job). Element types other than float32 are ``unsupported``: the
float32 ``.tflite`` file is what onnx2tf writes for them.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from pathlib import Path

import numpy as np

from opref.runtimes.base import Outcome, RuntimeInfo, Status
from opref.runtimes.frozen import freeze_weights, version_of


class Onnx2TfAdapter:
    def __init__(self, spec: str, options: dict[str, str]):
        self.spec = spec
        self.kernel_shape = options.get("kernel_shape", "0") not in ("0", "false", "False")
        try:
            import onnx2tf
            import tensorflow as tf
        except Exception as exc:
            self._info = RuntimeInfo(
                spec,
                "onnx2tf",
                "",
                False,
                f"cannot import onnx2tf ({exc}); build it: scripts/make-envs onnx2tf",
            )
            return
        self._onnx2tf, self._tf = onnx2tf, tf
        version = f"{version_of('onnx2tf')} → TensorFlow Lite {tf.__version__}"
        details = {
            "converter": "onnx2tf.convert",
            "runtime": "tf.lite.Interpreter (CPU)",
            "weights": "constants",
        }
        self._info = RuntimeInfo(spec, "onnx2tf", version, True, "", details)

    def info(self) -> RuntimeInfo:
        return self._info

    def unit_roundoff(self, dtype: str) -> float | None:
        return None

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome:
        proto, _, x = freeze_weights(model, inputs)
        if x.dtype != np.float32:
            return Outcome(
                Status.UNSUPPORTED, message=f"onnx2tf writes float32 .tflite models, not {x.dtype}"
            )
        if self.kernel_shape:
            _write_kernel_shape(proto)
        with tempfile.TemporaryDirectory(prefix="opref-onnx2tf-") as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            onnx_path.write_bytes(proto.SerializeToString())
            log = io.StringIO()
            try:
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    self._onnx2tf.convert(
                        input_onnx_file_path=str(onnx_path),
                        output_folder_path=str(Path(tmp) / "out"),
                        non_verbose=True,
                        not_use_onnxsim=True,  # a subprocess (its console script) on a one-node model
                    )
            except BaseException as exc:  # onnx2tf calls sys.exit on some refusals
                if isinstance(exc, KeyboardInterrupt):
                    raise
                text = _last_lines(log.getvalue()) or f"{type(exc).__name__}: {exc}"
                return Outcome(Status.ERROR, message=f"onnx2tf: {text}"[:2000])
            tflite = Path(tmp) / "out" / "model_float32.tflite"
            if not tflite.is_file():
                return Outcome(
                    Status.ERROR, message=f"onnx2tf wrote no model: {_last_lines(log.getvalue())}"[:2000]
                )
            try:
                return self._execute(tflite, x)
            except Exception as exc:
                return Outcome(Status.ERROR, message=f"TensorFlow Lite: {type(exc).__name__}: {exc}"[:2000])

    def _execute(self, tflite: Path, x: np.ndarray) -> Outcome:
        interpreter = self._tf.lite.Interpreter(model_path=str(tflite))
        detail = interpreter.get_input_details()[0]
        last = np.moveaxis(x, 1, -1)
        want = tuple(int(d) for d in detail["shape"])
        feed = x if want == x.shape and want != last.shape else last
        if tuple(feed.shape) != want:
            interpreter.resize_tensor_input(detail["index"], list(feed.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(feed))
        interpreter.invoke()
        out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        if feed is last and out.ndim >= 3:
            out = np.moveaxis(out, -1, 1)  # back to channel-first
        return Outcome(Status.OK, np.ascontiguousarray(out), "", "TensorFlow Lite CPU")


def _write_kernel_shape(proto) -> None:
    """Give each ConvTranspose without ``kernel_shape`` the one its constant W implies (the
    spec's default, so the model means the same)."""
    from onnx import helper, numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type != "ConvTranspose" or any(a.name == "kernel_shape" for a in node.attribute):
            continue
        w = weights.get(node.input[1])
        if w is not None and w.ndim >= 3:
            node.attribute.append(helper.make_attribute("kernel_shape", [int(d) for d in w.shape[2:]]))


def _last_lines(text: str, n: int = 3) -> str:
    """The exceptions onnx2tf's trace log ends with (its ERROR lines after them are generic
    advice), else its last ERROR lines."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in plain.splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception)\b.*:", ln)]
    if raised:
        return " | ".join(dict.fromkeys(raised[-n:]))
    errors = [ln for ln in lines if "error" in ln.lower()]
    return " | ".join((errors or lines)[-n:])
