"""The resource-variable streaming model, made from the explicit-state one by editing the graph.

The explicit-state model has signature `step`: inputs `frame` + one tensor per buffer,
outputs `logits` + the new buffers under the same names. The resource-variable model is the
same graph with each buffer moved into a variable:

    step:  CALL_ONCE(init); VAR_HANDLE + READ_VARIABLE -> the old buffer input tensors;
           ...the unchanged graph...; ASSIGN_VARIABLE <- the old buffer output tensors.
           inputs: frame; outputs: logits.
    reset: CALL_ONCE(init); ASSIGN_VARIABLE <- zero buffers; output `done` (constant 1).
    init:  (no signature) ASSIGN_VARIABLE <- zero buffers, run once before the first step.

Why not let the converter do it (tf.Variable buffers and `experimental_enable_resource_
variables`)? Measured with TF 2.21: in int8 its variable quantization leaves the buffers
whose block input is a convolution output (MobileNetV2 blocks 2 and 4) in float, with a
float CONCATENATION and QUANTIZE/DEQUANTIZE around them; and its calibrator cannot load a
signature without inputs ("NULL SignatureDef inputs for exported method reset"). Made from
the explicit-state model, the variables have exactly the type and quantization parameters
of the buffers (verified identical on input and output), so the two streaming models give
the same numbers in every precision, and only one calibration is needed.

A zero buffer is real zero: the zero point of an int8 buffer, 0.0 of a float one.
"""

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from tsm_keras.export.kinds import DONE, RESET, STEP
from tsm_keras.streaming import FRAME, LOGITS

_MIN_RUNTIME = b"2.6.0"  # resource variables and CALL_ONCE (what the converter records for them)
_NUMPY_TYPES = {
    schema.TensorType.FLOAT32: np.float32,
    schema.TensorType.INT8: np.int8,
    schema.TensorType.UINT8: np.uint8,
    schema.TensorType.FLOAT16: np.float16,
    schema.TensorType.INT16: np.int16,
}


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _signature(tree, key):
    for signature in tree.signatureDefs or []:
        if _text(signature.signatureKey) == key:
            return signature
    raise ValueError(f"the model has no signature '{key}'")


def _opcode(tree, builtin):
    for index, code in enumerate(tree.operatorCodes):
        if flatbuffer_utils.get_builtin_code_from_operator_code(code) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = 1
    tree.operatorCodes.append(code)
    return len(tree.operatorCodes) - 1


def _operator(opcode, inputs, outputs, options_type=0, options=None):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, list(inputs), list(outputs)
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


def _tensor(subgraph, name, shape, tensor_type, buffer=0, like=None):
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name.encode(), list(shape), tensor_type, buffer
    tensor.hasRank = bool(shape)
    tensor.quantization = like.quantization if like is not None else schema.QuantizationParametersT()
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _buffer(tree, array):
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
    tree.buffers.append(buffer)
    return len(tree.buffers) - 1


def _zero_point(tensor):
    quantization = tensor.quantization
    if quantization is None or quantization.zeroPoint is None or len(quantization.zeroPoint) == 0:
        return 0
    return int(np.asarray(quantization.zeroPoint).ravel()[0])


def _same_quantization(a, b):
    def params(tensor):
        q = tensor.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return ((), ())
        return (tuple(np.asarray(q.scale, "float64").ravel()), tuple(np.asarray(q.zeroPoint).ravel()))

    return params(a) == params(b)


def with_resource_variables(content):
    """Bytes of an explicit-state streaming model -> bytes of its resource-variable twin."""
    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    step = _signature(tree, STEP)
    graph = tree.subgraphs[step.subgraphIndex]
    inputs = {_text(m.name): m for m in step.inputs}
    outputs = {_text(m.name): m for m in step.outputs}
    names = [name for name in inputs if name != FRAME]
    if FRAME not in inputs or LOGITS not in outputs or not names:
        raise ValueError(f"not an explicit-state streaming model: inputs {sorted(inputs)}, outputs {sorted(outputs)}")
    if sorted(names) != sorted(n for n in outputs if n != LOGITS):
        raise ValueError(f"buffer inputs {sorted(names)} and outputs {sorted(outputs)} differ")

    call_once = _opcode(tree, schema.BuiltinOperator.CALL_ONCE)
    var_handle = _opcode(tree, schema.BuiltinOperator.VAR_HANDLE)
    read = _opcode(tree, schema.BuiltinOperator.READ_VARIABLE)
    assign = _opcode(tree, schema.BuiltinOperator.ASSIGN_VARIABLE)

    # One zero buffer per state, shared by `init` and `reset`.
    zeros = {}
    for name in names:
        source, target = graph.tensors[inputs[name].tensorIndex], graph.tensors[outputs[name].tensorIndex]
        if (
            list(source.shape) != list(target.shape)
            or source.type != target.type
            or not _same_quantization(source, target)
        ):
            raise ValueError(f"buffer '{name}' differs between input and output (shape, type or quantization)")
        if source.type not in _NUMPY_TYPES:
            raise ValueError(f"buffer '{name}' has an unsupported tensor type {source.type}")
        zero = np.full(list(source.shape), _zero_point(source), _NUMPY_TYPES[source.type])
        zeros[name] = (_buffer(tree, zero), source)

    def handle(subgraph, name, suffix):
        options = schema.VarHandleOptionsT()
        options.container, options.sharedName = b"", name.encode()
        tensor = _tensor(subgraph, f"{name}/{suffix}", [], schema.TensorType.RESOURCE)
        subgraph.operators.append(_operator(var_handle, [], [tensor], schema.BuiltinOptions.VarHandleOptions, options))
        return tensor

    def assign_zeros(subgraph, suffix):
        for name in names:
            buffer, like = zeros[name]
            resource = handle(subgraph, name, suffix)
            value = _tensor(subgraph, f"{name}/zeros", like.shape, like.type, buffer, like)
            subgraph.operators.append(_operator(assign, [resource, value], []))

    def once(init_index):
        options = schema.CallOnceOptionsT()
        options.initSubgraphIndex = init_index
        return _operator(call_once, [], [], schema.BuiltinOptions.CallOnceOptions, options)

    init = schema.SubGraphT()
    init.name, init.tensors, init.operators, init.inputs, init.outputs = b"init", [], [], [], []
    assign_zeros(init, "init")
    tree.subgraphs.append(init)
    init_index = len(tree.subgraphs) - 1

    reset = schema.SubGraphT()
    reset.name, reset.tensors, reset.operators, reset.inputs, reset.outputs = (
        RESET.encode(),
        [],
        [once(init_index)],
        [],
        [],
    )
    assign_zeros(reset, "reset")
    done = _tensor(reset, DONE, [1], schema.TensorType.INT32, _buffer(tree, np.ones(1, np.int32)))
    reset.outputs = [done]
    tree.subgraphs.append(reset)

    # step: reads first, the unchanged graph, writes last.
    body = graph.operators
    graph.operators = [once(init_index)]
    handles = {name: handle(graph, name, "handle") for name in names}
    for name in names:
        graph.operators.append(_operator(read, [handles[name]], [inputs[name].tensorIndex]))
    graph.operators.extend(body)
    for name in names:
        graph.operators.append(_operator(assign, [handles[name], outputs[name].tensorIndex], []))
    graph.inputs = [inputs[FRAME].tensorIndex]
    graph.outputs = [outputs[LOGITS].tensorIndex]
    step.inputs, step.outputs = [inputs[FRAME]], [outputs[LOGITS]]

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = RESET.encode(), len(tree.subgraphs) - 1
    output = schema.TensorMapT()
    output.name, output.tensorIndex = DONE.encode(), done
    signature.inputs, signature.outputs = [], [output]
    tree.signatureDefs.append(signature)
    tree.signatureDefs.sort(key=lambda s: _text(s.signatureKey))
    _raise_min_runtime(tree)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree))


def _raise_min_runtime(tree):
    for metadata in tree.metadata or []:
        if _text(metadata.name) == "min_runtime_version":
            buffer = tree.buffers[metadata.buffer]
            old = bytes(np.asarray(buffer.data, np.uint8)) if buffer.data is not None else b""
            if _version(old) < _version(_MIN_RUNTIME):
                size = max(len(old), len(_MIN_RUNTIME) + 1)
                buffer.data = np.frombuffer(_MIN_RUNTIME.ljust(size, b"\0"), np.uint8)


def _version(text):
    parts = text.split(b"\0")[0].split(b".")
    try:
        return tuple(int(p) for p in parts if p)
    except ValueError:
        return ()
