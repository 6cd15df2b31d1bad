"""How each runtime is called from a repro: one entry per runtime kind (data), and the
element types and verdict phrases the reports use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opref.runtimes import parse

UPSTREAM_FILE = "upstream.json"
INDEX_FILE = "index.md"

# Element types in the order a repro prefers them: every runtime feeds float32 from numpy;
# bfloat16 needs ml_dtypes (onnx's own dependency) and is taken only when nothing else fails.
_DTYPE_PREFERENCE = ("float32", "float64", "float16", "bfloat16")

# What a failing verdict says of the runtime, by the validity of the cluster's models: (all valid,
# all invalid (the spec makes the runtime reject them), some of each). A crash or a hang on an
# invalid model is a bug too (the runtime must reject the model, not die on it), but never a
# failure "on a valid model". Wrong values or shape and a refusal come from valid models only
# (an invalid one has no right output, and refusing it is right); accepting, from invalid ones.
_VERDICT_PHRASES: dict[str, tuple[str, str, str]] = {
    "fail-values": ("wrong values",) * 3,
    "fail-shape": ("wrong output shape",) * 3,
    "error": ("refuses a valid model", "raises on an invalid model", "refuses valid models"),
    "crashed": (
        "crashes on a valid model",
        "crashes on an invalid model instead of rejecting it",
        "crashes on valid models, and on invalid ones instead of rejecting them",
    ),
    "timeout": (
        "hangs on a valid model",
        "hangs on an invalid model instead of rejecting it",
        "hangs on valid models, and on invalid ones instead of rejecting them",
    ),
    "accepted-invalid": ("accepts an invalid model",) * 3,
}


def verdict_phrase(verdict: str, expects: Iterable[str]) -> str:
    """What ``verdict`` says of a runtime over cases whose ``expect`` fields are ``expects``:
    ``output`` for a valid model, ``reject`` for one the spec makes invalid."""
    phrases = _VERDICT_PHRASES.get(verdict)
    if phrases is None:
        return verdict
    kinds = set(expects)
    if kinds == {"reject"}:
        return phrases[1]
    return phrases[2] if "reject" in kinds else phrases[0]


# --- how each runtime is called from a repro (data: one entry per runtime kind) -----------------


@dataclass(frozen=True)
class Runner:
    """How a repro calls one runtime kind: the pip requirement(s) and the body of
    ``run(model_bytes, feeds) -> numpy array`` (indented four spaces in the script)."""

    packages: str  # pip requirements, "{version}" filled in with the measured version
    body: str


def _ort_body(arg: str, options: Mapping[str, str]) -> str:
    from opref.runtimes.ort import provider_name

    provider = provider_name(arg)
    opts = {k: v for k, v in sorted(options.items()) if k not in ("plugin", "library", "ep_device")}
    lines = ["import onnxruntime as ort", "", "options = ort.SessionOptions()"]
    if provider != "CPUExecutionProvider":
        lines += [
            "# as an application that must not silently run on CPU: no fallback",
            'options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")',
        ]
    lines += [
        f"session = ort.InferenceSession(model_bytes, options, providers=[({provider!r}, {opts!r})])",
        "return session.run(None, feeds)[0]",
    ]
    return "\n".join(lines)


_RUNNERS: dict[str, Runner] = {
    "onnx-reference": Runner(
        "onnx=={version}",
        "from onnx.reference import ReferenceEvaluator\n\n"
        "return ReferenceEvaluator(onnx.load_from_string(model_bytes)).run(None, feeds)[0]",
    ),
    "openvino": Runner(
        "openvino=={version}",
        "import openvino as ov\n\n"
        "core = ov.Core()\n"
        'compiled = core.compile_model(core.read_model(model=model_bytes), "CPU", {config})\n'
        "port = compiled.outputs[0]\n"
        "out = np.asarray(compiled(feeds)[port])\n"
        "if port.get_element_type() == ov.Type.bf16 and out.dtype == np.float16:\n"
        "    import ml_dtypes  # OpenVINO hands bfloat16 out as float16-typed bits\n\n"
        "    out = out.view(np.uint16).view(ml_dtypes.bfloat16)\n"
        "return out",
    ),
    "tract": Runner(
        "tract=={version}",
        "import tract\n\n"
        "with tempfile.TemporaryDirectory() as tmp:\n"
        '    path = os.path.join(tmp, "model.onnx")  # tract loads models from a path only\n'
        '    with open(path, "wb") as fh:\n'
        "        fh.write(model_bytes)\n"
        "    model = tract.onnx().load(path)\n"
        "    names = [model.input_name(i) for i in range(model.input_count())]\n"
        "    runnable = model.into_model().into_runnable()\n"
        "    return runnable.run([feeds[n] for n in names])[0].to_numpy()",
    ),
    "tvm": Runner(
        "apache-tvm=={version}",
        "import tvm\n"
        "from tvm import relax\n"
        "from tvm.relax.frontend.onnx import from_onnx\n\n"
        "proto = onnx.load_from_string(model_bytes)\n"
        "module = from_onnx(proto, keep_params_in_input=False)\n"
        "device = tvm.cpu(0)\n"
        'vm = relax.VirtualMachine(tvm.compile(module, target="llvm"), device)\n'
        "args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[i.name]), device)\n"
        "        for i in proto.graph.input]\n"
        'out = vm["main"](*args)\n'
        'if not hasattr(out, "numpy"):  # a tuple of outputs\n'
        "    out = out[0]\n"
        "return out.numpy()",
    ),
    "tinygrad": Runner(
        "tinygrad=={version}",
        'os.environ["DEV"] = {device}  # read when tinygrad is imported\n'
        "from tinygrad.nn.onnx import OnnxRunner\n\n"
        "with tempfile.TemporaryDirectory() as tmp:\n"
        '    path = os.path.join(tmp, "model.onnx")\n'
        '    with open(path, "wb") as fh:\n'
        "        fh.write(model_bytes)\n"
        "    result = next(iter(OnnxRunner(path)(feeds).values()))\n"
        "    return result.numpy()",
    ),
    "iree": Runner(
        "iree-base-compiler[onnx]=={version} iree-base-runtime=={version}",
        "import iree.compiler.tools as compiler\n"
        "import iree.runtime as rt\n"
        "from iree.compiler.tools.import_onnx import __main__ as import_onnx\n\n"
        "with tempfile.TemporaryDirectory() as tmp:\n"
        '    onnx_path, mlir_path = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model.mlir")\n'
        '    with open(onnx_path, "wb") as fh:\n'
        "        fh.write(model_bytes)\n"
        '    import_onnx.main(import_onnx.parse_arguments([onnx_path, "-o", mlir_path]))\n'
        "    try:\n"
        "        vmfb = compiler.compile_file(\n"
        "            mlir_path,\n"
        '            input_type="onnx",\n'
        '            target_backends=["llvm-cpu"],\n'
        '            extra_args=["--iree-input-demote-f64-to-f32=false", "--iree-llvmcpu-target-cpu=host"],\n'
        "        )\n"
        "    except compiler.CompilerToolError as exc:\n"
        "        # iree-compile runs as a subprocess: a compiler killed by a signal is a crash\n"
        '        code = re.search(r"Error code: (-?\\d+)", str(exc))\n'
        "        if code and int(code.group(1)) < 0:\n"
        "            sys.stderr.write(str(exc)[:4000])\n"
        "            os.kill(os.getpid(), -int(code.group(1)))\n"
        "        raise\n"
        'ctx = rt.SystemContext(config=rt.Config("local-task"))\n'
        "vm_module = rt.VmModule.copy_buffer(ctx.instance, vmfb)\n"
        "ctx.add_vm_module(vm_module)\n"
        "graph = onnx.load_from_string(model_bytes).graph\n"
        "entry = graph.name if graph.name in vm_module.function_names else vm_module.function_names[0]\n"
        "args = [np.ascontiguousarray(feeds[i.name]) for i in graph.input]\n"
        "result = ctx.modules[vm_module.name][entry](*args)\n"
        "if isinstance(result, (list, tuple)):\n"
        "    result = result[0]\n"
        "return np.asarray(result.to_host())",
    ),
}


# --- the deployment runtimes (opref/runtimes/frozen.py): W and B constants, X the only input -----------

# The first lines of each of their bodies: the model as an application ships it to them.
_CONSTANTS = """\
# As an application ships the model: W (and B) constants in it, X its only input
proto = onnx.load_from_string(model_bytes)
graph = proto.graph
constant = {t.name for t in graph.initializer}
names = [i.name for i in graph.input if i.name not in constant]
for name in names[1:]:
    graph.initializer.append(numpy_helper.from_array(np.asarray(feeds[name]), name))
if proto.ir_version >= 4:  # IR 3 (opset 1) wants every initializer to stay a graph input
    keep = [i for i in graph.input if i.name not in names[1:]]
    del graph.input[:]
    graph.input.extend(keep)
x_name, x = names[0], np.asarray(feeds[names[0]])
"""

_OPENCV = """\
import cv2

net = cv2.dnn.readNetFromONNX(np.frombuffer(proto.SerializeToString(), np.uint8), {engine})
net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
net.setInput(np.ascontiguousarray(x), x_name)
return net.forward()"""

# pnnx (the converter ncnn documents for ONNX) is the standalone binary of the pnnx wheel; fp16=0
# and the Net's options below keep float32 throughout (pnnx stores float16 weights by default).
_NCNN = """\
import importlib.util

import ncnn

pnnx = os.path.join(next(iter(importlib.util.find_spec("pnnx").submodule_search_locations)), "pnnx")
with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "model.onnx"), "wb") as fh:
        fh.write(proto.SerializeToString())
    shape = "[" + ",".join(str(d) for d in x.shape) + "]f32"
    done = subprocess.run([pnnx, "model.onnx", f"inputshape={shape}", "fp16=0", "device=cpu"],
                          cwd=tmp, capture_output=True, text=True, errors="replace")
    param, weights = os.path.join(tmp, "model.ncnn.param"), os.path.join(tmp, "model.ncnn.bin")
    if done.returncode != 0 or not os.path.isfile(param):
        raise RuntimeError(f"pnnx exit {done.returncode}: {(done.stderr + done.stdout)[-2000:]}")
    net = ncnn.Net()
    for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, flag, False)
    if net.load_param(param) != 0 or net.load_model(weights) != 0:
        raise RuntimeError("ncnn cannot load the model pnnx wrote:\\n" + open(param).read())
    outs = []
    for sample in x:  # an ncnn Mat has no batch axis
        ex = net.create_extractor()
        ex.input(net.input_names()[0], ncnn.Mat(np.ascontiguousarray(sample)).clone())
        ret, mat = ex.extract(net.output_names()[0])
        if ret != 0:
            raise RuntimeError(f"ncnn extract returned {ret}")
        outs.append(np.array(mat, dtype=np.float32, copy=True))
    return np.stack(outs)"""

# MNN's Python converter wrapper (MNN.tools) imports a telemetry module that runs `pip install`
# through os.system: the repro calls the native converter and keeps that module from importing.
_MNN = """\
import importlib.abc


class NoTelemetry(importlib.abc.MetaPathFinder):
    # MNN's telemetry module runs `pip install` through os.system when imported: never import it
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] == "aliyun" or fullname.startswith("MNN.tools.utils.log"):
            raise ImportError(f"{fullname}: MNN telemetry, kept out")
        return None


sys.meta_path.insert(0, NoTelemetry())
import _tools  # MNN's native converter (what its mnnconvert console script calls)
import MNN.expr as F
import MNN.nn as nn

with tempfile.TemporaryDirectory() as tmp:
    onnx_path, mnn_path = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model.mnn")
    with open(onnx_path, "wb") as fh:
        fh.write(proto.SerializeToString())
    _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path, "--MNNModel", mnn_path,
                       "--bizCode", "repro"])
    if not os.path.isfile(mnn_path) or os.path.getsize(mnn_path) == 0:
        raise RuntimeError("mnnconvert wrote no .mnn file (its messages are above)")
    module = nn.load_module_from_file(mnn_path, [x_name], [graph.output[0].name])
    var = F.const(np.ascontiguousarray(x).ravel().tolist(), list(x.shape), F.NCHW, F.float)
    y = module.forward(var)
    if isinstance(y, (list, tuple)):
        y = y[0]
    y = F.convert(y, F.NCHW)
    return np.array(y.read(), dtype=np.float32).reshape(list(y.shape))"""

_ONNX2TF = """\
import contextlib
import io

import onnx2tf
import tensorflow as tf
{kernel_shape}
with tempfile.TemporaryDirectory() as tmp:
    onnx_path = os.path.join(tmp, "model.onnx")
    with open(onnx_path, "wb") as fh:
        fh.write(proto.SerializeToString())
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            onnx2tf.convert(input_onnx_file_path=onnx_path, output_folder_path=os.path.join(tmp, "out"),
                            non_verbose=True, not_use_onnxsim=True)
    except (Exception, SystemExit) as exc:  # onnx2tf exits on some refusals
        raise RuntimeError(f"onnx2tf: {type(exc).__name__}: {exc}\\n{log.getvalue()[-3000:]}") from None
    interpreter = tf.lite.Interpreter(model_path=os.path.join(tmp, "out", "model_float32.tflite"))
    detail = interpreter.get_input_details()[0]
    want = tuple(int(d) for d in detail["shape"])
    last = np.moveaxis(x, 1, -1)  # onnx2tf makes NCHW models NHWC ones
    feed = x if want == x.shape and want != last.shape else last
    if tuple(feed.shape) != want:
        interpreter.resize_tensor_input(detail["index"], list(feed.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], np.ascontiguousarray(feed))
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return np.moveaxis(out, -1, 1) if feed is last and out.ndim >= 3 else out"""

# Written when opref ran onnx2tf with kernel_shape=1 (it refuses ConvTranspose without it).
_KERNEL_SHAPE = """
# onnx2tf refuses a ConvTranspose without kernel_shape (optional in the spec): write W's spatial
# shape, the spec's default, so the model means the same
for node in graph.node:
    if node.op_type == "ConvTranspose" and not any(a.name == "kernel_shape" for a in node.attribute):
        w = next(t for t in graph.initializer if t.name == node.input[1])
        node.attribute.append(helper.make_attribute("kernel_shape", list(w.dims[2:])))
"""

_ONNX2TORCH = """\
import torch

try:
    import torchvision  # noqa: F401
except ImportError:  # onnx2torch imports it for two other operators only: a stand-in
    import types

    ops = types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = None
    sys.modules["torchvision"] = types.ModuleType("torchvision")
    sys.modules["torchvision"].ops = sys.modules["torchvision.ops"] = ops
from onnx2torch import convert

module = convert(proto)
bf16 = x.dtype.name == "bfloat16"
tensor = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16) if bf16 else torch.from_numpy(x.copy())
with torch.no_grad():
    y = module(tensor)
if isinstance(y, (list, tuple)):
    y = y[0]
return y.float().numpy().astype(x.dtype) if bf16 else y.numpy()"""


def _two_versions(version: str) -> tuple[str, str]:
    """``1.29.24 → TensorFlow Lite 2.19.0`` -> (``1.29.24``, ``2.19.0``): a converter's and its runtime's."""
    converter, _, runtime = version.partition("→")
    return converter.strip(), (runtime.split() or [""])[-1].split("+")[0]


def _deployment(kind: str, version: str, options: Mapping[str, str], details: Mapping) -> Runner | None:
    if kind == "opencv":
        from opref.runtimes.opencv import _ENGINES

        engine = "cv2.dnn." + _ENGINES.get(options.get("engine", "auto"), "ENGINE_AUTO")
        return Runner(f"opencv-python-headless=={version}.*", _OPENCV.replace("{engine}", engine))
    if kind == "ncnn":
        pnnx = str(details.get("converter", "")).split()
        return Runner(f"ncnn=={version} pnnx" + (f"=={pnnx[1]}" if len(pnnx) > 1 else ""), _NCNN)
    if kind == "mnn":
        return Runner(f"MNN=={version}", _MNN)
    if kind == "onnx2tf":
        converter, runtime = _two_versions(version)
        write = options.get("kernel_shape", "0") not in ("0", "false", "False")
        body = _ONNX2TF.replace("{kernel_shape}", _KERNEL_SHAPE if write else "")
        return Runner(f"onnx2tf=={converter} tensorflow=={runtime}", body)
    if kind == "onnx2torch":
        converter, runtime = _two_versions(version)
        return Runner(f"onnx2torch=={converter} torch=={runtime}", _ONNX2TORCH)
    return None


def runner_for(spec: str, version: str, details: Mapping | None = None) -> tuple[str, str] | None:
    """(pip requirements, body of ``run``) for ``spec``, or None where a repro cannot call the
    runtime simply (a ``py:`` adapter, a kind without an entry). ``details``: the runtime's
    details in the results (ncnn's names its pnnx)."""
    kind, arg, options = parse(spec)
    deployed = _deployment(kind, version, options, details or {})
    if deployed is not None:
        return deployed.packages, _CONSTANTS + deployed.body
    if kind == "ort":
        package = (
            "onnxruntime-openvino"
            if arg.lower() in ("openvino", "openvinoexecutionprovider")
            else "onnxruntime"
        )
        return f"{package}=={version}", _ort_body(arg, options)
    runner = _RUNNERS.get(kind)
    if runner is None:
        return None
    body = runner.body
    if kind == "openvino":
        config = {"INFERENCE_PRECISION_HINT": "f32", **{k: v for k, v in options.items() if k != "device"}}
        body = body.replace("{config}", repr(dict(sorted(config.items()))))
    if kind == "tinygrad":
        from opref.runtimes.tinygrad import DEFAULT_DEVICE

        body = body.replace("{device}", repr(options.get("device", arg or DEFAULT_DEVICE)))
    return runner.packages.replace("{version}", version), body


