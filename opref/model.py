"""One ConvTranspose node as an ONNX model, with every field set explicitly.

Nothing here depends on the installed onnx version's defaults: the IR version is the one
that introduced the opset (spec notes section 4: a newer stamp is refused by older
runtimes), the producer is opref, attributes are written in name order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx
from onnx import helper

from opref.dtypes import dtype_of
from opref.forms import Form, constant_names, file_x_shape, file_x_type, node_operands, read_int_tensor, wrap
from opref.geometry import geometry
from opref.version import __version__

# The IR version of the onnx release that first shipped each ConvTranspose opset.
# Opsets in between take the IR version of the nearest lower entry.
IR_VERSION_FOR_OPSET: Mapping[int, int] = {
    1: 3,
    9: 4,
    10: 5,
    11: 6,
    12: 7,
    15: 8,
    19: 9,
    21: 10,
    23: 11,
    24: 12,
    25: 13,
    28: 14,
}

PRODUCER = "opref"

ATTRIBUTE_NAMES = (
    "auto_pad",
    "dilations",
    "group",
    "kernel_shape",
    "output_padding",
    "output_shape",
    "pads",
    "strides",
)


def ir_version_for(opset: int) -> int:
    """The IR version to stamp on a model of ``opset`` (the lowest that supports it)."""
    known = [o for o in IR_VERSION_FOR_OPSET if o <= opset]
    if not known:
        raise ValueError(f"opset {opset} is below 1")
    return IR_VERSION_FOR_OPSET[max(known)]


def make_node(name: str, has_bias: bool, attrs: Mapping[str, object]) -> onnx.NodeProto:
    """The ConvTranspose node; ``attrs`` holds ONNX attribute names, None meaning absent."""
    node = onnx.NodeProto()
    node.op_type = "ConvTranspose"
    node.name = name
    node.input.extend(["X", "W", "B"] if has_bias else ["X", "W"])
    node.output.append("Y")
    for key in sorted(attrs):
        if key not in ATTRIBUTE_NAMES:
            raise ValueError(f"unknown ConvTranspose attribute {key!r}")
        if attrs[key] is not None:
            node.attribute.append(helper.make_attribute(key, attrs[key]))
    return node


def node_attributes(node: onnx.NodeProto) -> dict[str, object]:
    """The attributes of ``node`` as ``{ONNX name: value}``, strings decoded from bytes.

    The inverse of :func:`make_node` for the attribute types ConvTranspose has (ints, lists
    of ints, a string), so the result can be passed to ``opref.geometry``/``conv_transpose``.
    """

    def plain(value: object) -> object:
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return {a.name: plain(helper.get_attribute_value(a)) for a in node.attribute}


def make_model(
    name: str,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    b_shape: Sequence[int] | None,
    attrs: Mapping[str, object],
    dtype: str,
    opset: int,
    y_shape: Sequence[int | None] | None = None,
    w_dtype: str | None = None,
    *,
    initializers: Sequence[onnx.TensorProto] = (),
    symbolic_batch: bool = False,
    symbolic_spatial: bool = False,
) -> onnx.ModelProto:
    """A one-node model, by default with concrete input shapes (the ``inputs`` variant).

    ``y_shape`` is the output's declared shape; omitted, it is computed by opref's geometry
    (so an invalid configuration must pass it, with None for unknown dimensions).
    ``w_dtype`` gives W (and B) another type than X: only for must-reject cases.
    The other model variants (``opref.cases.VARIANTS``): ``initializers`` holds W (and B) as
    constants, which are then no graph inputs; ``symbolic_batch`` declares X's and Y's batch
    as the dim_param ``N``, ``symbolic_spatial`` their spatial sizes as ``D1``... (X) and
    ``O1``... (Y).
    """
    elem = dtype_of(dtype).onnx_type
    if y_shape is None:
        present = {k: v for k, v in attrs.items() if v is not None}
        y_shape = geometry(x_shape, w_shape, opset=opset, **present).output_shape
    w_elem = dtype_of(w_dtype).onnx_type if w_dtype else elem
    x_dims, y_dims = _declared(x_shape, "D", symbolic_batch, symbolic_spatial), list(y_shape)
    if symbolic_batch or symbolic_spatial:
        y_dims = _declared(y_shape, "O", symbolic_batch, symbolic_spatial)
    inputs = [
        helper.make_tensor_value_info("X", elem, x_dims),
        helper.make_tensor_value_info("W", w_elem, list(w_shape)),
    ]
    if b_shape is not None:
        inputs.append(helper.make_tensor_value_info("B", w_elem, list(b_shape)))
    constant = {t.name for t in initializers}
    if not constant <= {"W", "B"}:
        raise ValueError(f"initializers {sorted(constant)}: only W and B can be constants")
    inputs = [i for i in inputs if i.name not in constant]
    output = helper.make_tensor_value_info("Y", elem, y_dims)
    graph = helper.make_graph(
        [make_node(name, b_shape is not None, attrs)], name, inputs, [output], initializer=list(initializers)
    )
    model = onnx.ModelProto()
    model.ir_version = ir_version_for(opset)
    model.producer_name = PRODUCER
    model.producer_version = __version__
    model.graph.CopyFrom(graph)
    op = model.opset_import.add()
    op.domain = ""
    op.version = opset
    return model


def make_form_model(
    name: str,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    b_shape: Sequence[int] | None,
    attrs: Mapping[str, object],
    dtype: str,
    opset: int,
    y_shape: Sequence[int],
    form: Form,
    constants: Mapping[str, object],
) -> onnx.ModelProto:
    """The model of a form with nodes around ConvTranspose (``opref.forms``): the one-node model
    of the node (its X is ``x_shape``), W and B constant, wrapped in the form's graph.
    ``constants`` holds W[, B] (``pad-fused``, ``bn-folded``) or W_q[, B_q] (``qdq``)."""
    from opref.codec import tensor_proto

    floats = [tensor_proto(constants[n], n) for n in ("W", "B") if n in constants]
    if not floats:  # qdq: the float W, B are DequantizeLinear's outputs, not initializers
        floats = [onnx.TensorProto(name=n) for n in ("W", "B")[: 1 + (b_shape is not None)]]
    core = make_model(name, x_shape, w_shape, b_shape, attrs, dtype, opset, y_shape, initializers=floats)
    return wrap(core, form, x_file_shape=file_x_shape(form, x_shape), constants=constants)


def _declared(shape: Sequence[int | None], prefix: str, batch: bool, spatial: bool) -> list:
    """A shape as declared in the model: sizes, or dim_param names where symbolic."""
    dims: list = list(shape)
    if batch:
        dims[0] = "N"
    if spatial:
        dims[2:] = [f"{prefix}{i}" for i in range(1, len(dims) - 1)]
    return dims


# The attribute types ConvTranspose has, each with the one value field opref sets for it.
_VALUE_FIELD = {
    onnx.AttributeProto.INT: "i",
    onnx.AttributeProto.INTS: "ints",
    onnx.AttributeProto.STRING: "s",
}


def check_case_model(data: bytes, record, arrays: Sequence) -> tuple[list[str], tuple]:
    """Check a case's model is what opref writes for its record; return the names its input
    files bind to (input_i -> the i-th graph input) and the node's operands X, W[, B] (from the
    input files, or the model's initializers). SuiteError names the first difference.

    The pattern: one ConvTranspose node of the default domain, spelled "" as opref writes it,
    nothing else — no subgraphs, no functions, no external data, no other domain — with the
    record's attributes (each once, with only its typed value set), opset, IR version, element
    types and shapes, and every string valid UTF-8. A suite that holds anything else is refused
    case by case, before any runtime sees it.
    """
    from opref.boundary import BoundaryError, parse_model
    from opref.codec import MAX_FILE_BYTES, SuiteError, read_tensor

    def bad(why: str) -> SuiteError:
        return SuiteError(f"model.onnx: {why}")

    try:
        model = parse_model(data, MAX_FILE_BYTES)
    except BoundaryError as exc:
        raise bad(str(exc)) from None
    graph = model.graph
    if model.ir_version != ir_version_for(record.opset):
        raise bad(
            f"has ir_version {model.ir_version}; opref writes {ir_version_for(record.opset)} "
            f"for opset {record.opset}"
        )
    if model.functions or model.training_info:
        raise bad("holds functions or training information; a case model is one ConvTranspose node")
    domains = [(o.domain, o.version) for o in model.opset_import]
    if len(domains) != 1 or domains[0][0] != "" or domains[0][1] != record.opset:
        raise bad(
            f"imports opsets {domains}; the record says opset {record.opset} of the default domain, "
            'which opref spells ""'
        )
    # --- issue 24: forms with nodes around ConvTranspose (pad-fused, bn-folded, qdq) -----------
    # Self-contained: such a model must be byte for byte the graph opref writes for the record's
    # form values and the model's own W/B constants (_check_form_model); the one-node checks
    # below do not apply to it.
    if getattr(record, "form", None) is not None:
        return _check_form_model(data, model, record, arrays, bad)
    if len(graph.node) != 1:
        raise bad(f"has {len(graph.node)} nodes; a case model is one ConvTranspose node")
    node = graph.node[0]
    if node.op_type != "ConvTranspose" or node.domain != "":
        raise bad(f"its node is {node.domain!r}.{node.op_type}, not ConvTranspose of the domain \"\"")
    names = [a.name for a in node.attribute]
    if len(set(names)) != len(names):
        raise bad(f"sets attribute {sorted({n for n in names if names.count(n) > 1})} more than once")
    for a in node.attribute:
        if a.name not in ATTRIBUTE_NAMES or a.type not in _VALUE_FIELD:
            raise bad(f"attribute {a.name!r} (type {a.type}) is not a ConvTranspose attribute")
        extra = {f.name for f, _ in a.ListFields()} - {"name", "type", _VALUE_FIELD[a.type]}
        if extra:
            raise bad(f"attribute {a.name!r} of type {a.type} also sets {sorted(extra)}")
        if a.type == onnx.AttributeProto.STRING and not _is_utf8(a.s):
            raise bad(f"attribute {a.name!r} holds {a.s!r:.60}, not UTF-8 text")
    attrs = node_attributes(node)
    if attrs != dict(record.attributes):
        raise bad(f"attributes {attrs} differ from the manifest's {dict(record.attributes)}")
    if len(node.input) not in (2, 3) or not all(node.input) or len(node.output) != 1:
        raise bad("its node does not read X, W[, B] and write one output")
    if graph.sparse_initializer or any(
        t.data_location == onnx.TensorProto.EXTERNAL or t.external_data for t in graph.initializer
    ):
        raise bad("refers to external data (or sparse tensors); opref reads nothing outside the suite")
    constants = {t.name for t in graph.initializer}
    if node.input[0] in constants or not constants <= set(node.input[1:]):
        raise bad("has initializers other than W and B")
    fed = [n for n in node.input if n not in constants]
    if [i.name for i in graph.input] != fed:
        raise bad(f"graph inputs {[i.name for i in graph.input]} are not the node's inputs {fed}")
    if [o.name for o in graph.output] != list(node.output):
        raise bad("its graph output is not the node's output")
    out_type = graph.output[0].type
    if out_type.WhichOneof("value") != "tensor_type" or out_type.tensor_type.elem_type != (
        dtype_of(record.dtype).onnx_type
    ):
        raise bad(f"its output is declared as {_type_text(out_type)}; the record says {record.dtype}")
    if len(fed) != len(arrays):
        raise bad(f"takes {len(fed)} inputs, the case has {len(arrays)} input files")
    shapes = {0: record.x_shape, 1: record.w_shape, 2: record.b_shape}
    want = dtype_of(record.dtype).onnx_type
    operands = dict(zip(fed, arrays, strict=True))
    for t in graph.initializer:
        k = list(node.input).index(t.name)
        try:
            array = read_tensor(t.SerializeToString())
        except (SuiteError, ValueError) as exc:
            raise bad(f"initializer {t.name!r}: {exc}") from None
        wrong_type = record.expect == "output" and t.data_type != want  # mixed types: a must-reject
        if wrong_type or tuple(array.shape) != tuple(shapes[k] or ()):
            raise bad(
                f"initializer {t.name!r} is {array.dtype} {list(array.shape)}, not what the record says"
            )
        operands[t.name] = array
    for value, array in zip(graph.input, arrays, strict=True):
        k = list(node.input).index(value.name)
        tensor = value.type.tensor_type
        if tensor.elem_type != dtype_of(array).onnx_type:
            raise bad(
                f"input {value.name!r} is declared with element type {tensor.elem_type}, "
                f"its file holds {array.dtype}"
            )
        if (k == 0 or record.expect == "output") and tensor.elem_type != want:
            raise bad(
                f"input {value.name!r} has element type {tensor.elem_type}, the record says {record.dtype}"
            )
        if tuple(array.shape) != tuple(shapes[k] or ()):
            raise bad(
                f"input {value.name!r} holds shape {list(array.shape)}, "
                f"the record says {list(shapes[k] or ())}"
            )
        dims = tensor.shape.dim
        if len(dims) != array.ndim or any(
            d.HasField("dim_value") and d.dim_value != n for d, n in zip(dims, array.shape, strict=False)
        ):
            raise bad(f"input {value.name!r} is declared with another shape than {list(array.shape)}")
    return fed, tuple(operands[n] for n in node.input)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _type_text(t: onnx.TypeProto) -> str:
    kind = t.WhichOneof("value")
    if kind != "tensor_type":
        return f"a {kind or 'value of no type'}"
    return f"a tensor of element type {t.tensor_type.elem_type}"


# --- issue 24: the check of a form's graph (self-contained; see check_case_model) ---------------


def _check_form_model(
    data: bytes, model: onnx.ModelProto, record, arrays: Sequence, bad
) -> tuple[list[str], tuple]:
    """Rebuild the model opref writes for ``record`` (its form values, its input file's shape and
    the model's own W/B constants, each of the type and shape the record says) and require the
    very same bytes: any other node, attribute, field, type or value is refused."""
    from opref.codec import SuiteError, read_tensor

    form = record.form
    names = constant_names(form)
    want = dtype_of(record.dtype).numpy
    by_name = {t.name: t for t in model.graph.initializer}
    constants: dict[str, object] = {}
    for name, shape, kind in ((names[0], record.w_shape, "int8"), (names[1], record.b_shape, "int32")):
        if shape is None:
            continue
        t = by_name.get(name)
        if t is None:
            raise bad(f"has no initializer {name!r}")
        try:
            arr = read_int_tensor(t, kind) if name.endswith("_q") else read_tensor(t.SerializeToString())
        except (SuiteError, ValueError) as exc:
            raise bad(f"initializer {name!r}: {exc}") from None
        if tuple(arr.shape) != tuple(shape) or (name in ("W", "B") and arr.dtype != want):
            raise bad(f"initializer {name!r} is {arr.dtype} {list(arr.shape)}, not what the record says")
        constants[name] = arr
    if len(arrays) != 1:
        raise bad(f"takes one input (X), the case has {len(arrays)} input files")
    x_file = arrays[0]
    want_shape = file_x_shape(form, record.x_shape)
    if x_file.dtype != file_x_type(form, record.dtype) or tuple(x_file.shape) != want_shape:
        raise bad(f"input_0.pb holds {x_file.dtype} {list(x_file.shape)}, the form reads {list(want_shape)}")
    try:
        rebuilt = make_form_model(
            record.name, record.x_shape, record.w_shape, record.b_shape, dict(record.attributes),
            record.dtype, record.opset, record.output_shape, form, constants,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise bad(f"cannot be rebuilt from its record: {exc}") from None
    rebuilt.producer_version = model.producer_version  # a suite written by another opref version
    if rebuilt.SerializeToString() != data:
        raise bad(f"is not the {record.variant} graph opref writes for its record")
    W, B = constants[names[0]], constants.get(names[1])
    return [model.graph.input[0].name], node_operands(form, x_file, W, B)
