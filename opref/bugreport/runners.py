"""How each runtime is called from a repro: one entry per runtime kind (data), and the
element types and verdict phrases the reports use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opref.runtimes import parse

UPSTREAM_FILE = "upstream.json"
INDEX_FILE = "index.md"

# Element types in the order a repro prefers them: every runtime feeds float32 from numpy;
# bfloat16 needs ml_dtypes (onnx's own dependency) and is taken only when nothing else fails.
_DTYPE_PREFERENCE = ("float32", "float64", "float16", "bfloat16")

_VERDICT_PHRASES = {
    "fail-values": "wrong values",
    "fail-shape": "wrong output shape",
    "error": "refuses a valid model",
    "crashed": "crashes on a valid model",
    "timeout": "hangs on a valid model",
    "accepted-invalid": "accepts an invalid model",
}


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


def runner_for(spec: str, version: str) -> tuple[str, str] | None:
    """(pip requirements, body of ``run``) for ``spec``, or None where a repro cannot call the
    runtime simply (a ``py:`` adapter, a kind without an entry)."""
    kind, arg, options = parse(spec)
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


