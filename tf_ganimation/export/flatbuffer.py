"""Reading a .tflite model's main subgraph: its operators, in execution order, and their tensors.

    operators = flatbuffer.read_operators(flatbuffer.model_bytes("ganimation_fp16.tflite"))
    for operator in operators:
        print(operator.name, [tensor.describe() for tensor in operator.runtime_inputs])
    flatbuffer.operator_counts("ganimation_fp16.tflite")    # {operator name: count}, most frequent first

The flatbuffer is read with TensorFlow's generated schema (`schema_py_generated`), without the LiteRT
runtime, so that a model can be inspected on a machine that cannot run it. gpu_compatibility.py applies
the GPU delegate's rules to what this module reads.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections import Counter

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.python import schema_util

# Builtin operator code -> name ("CONV_2D"), tensor type code -> name ("float32").
OPERATOR_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
TYPE_NAMES = {code: name.lower() for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
_NUMPY_TYPES = {schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64,
                schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16}
# Constants up to this size have their values read (axes, paddings, shapes); weights are not read.
_MAX_VALUE_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One tensor of the subgraph.

    Attributes:
        name: the tensor's name in the model.
        shape: its shape at conversion (a dimension unknown then reads 1 here, -1 in `signature`).
        signature: the shape signature: -1 where a dimension is unknown at conversion.
        type: a `schema.TensorType` code (TYPE_NAMES names it).
        is_constant: its value is known at conversion: stored in the model, or a float16 weight's
            DEQUANTIZE output (see read_operators).
        values: a small constant's data (axes, paddings, shapes) as a numpy array of `shape`; None for a
            run-time tensor, a large constant (weights) or a type without a numpy reading here.
    """

    name: str
    shape: tuple[int, ...]
    signature: tuple[int, ...]
    type: int
    is_constant: bool
    values: np.ndarray | None

    def describe(self) -> str:
        return f"{self.name!r} {TYPE_NAMES.get(self.type, self.type)}{list(self.shape)}"


@dataclasses.dataclass(frozen=True)
class Operator:
    """One operator of the subgraph.

    Attributes:
        name: the builtin operator's name (`BROADCAST_TO`), or a custom operator's code (`FlexErf`).
        inputs: its input tensors (an omitted optional input is left out).
        outputs: its output tensors.
        options: the builtin options' object (`Conv2DOptionsT`, ...), or None.
    """

    name: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    options: object

    @property
    def runtime_inputs(self) -> list[Tensor]:
        return [tensor for tensor in self.inputs if not tensor.is_constant]

    @property
    def constant_inputs(self) -> list[Tensor]:
        return [tensor for tensor in self.inputs if tensor.is_constant]


def model_bytes(model: bytes | os.PathLike | str) -> bytes:
    """The flatbuffer of `model`, given as bytes or as the path of a .tflite file.

    Raises:
        FileNotFoundError: `model` is a path that is not a file.
    """
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    path = pathlib.Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected a .tflite model file")
    return path.read_bytes()


def read_operators(content: bytes) -> list[Operator]:
    """The operators of the model's main subgraph, in execution order.

    Only the main subgraph is read: the GPU delegate takes no other, and the others are reached through
    control flow operators (WHILE, IF), which are listed themselves.

    A float16 model stores its weights as float16 constants, each behind a DEQUANTIZE to float32. Such a
    DEQUANTIZE's output counts as a constant (`Tensor.is_constant`): its value is fixed at conversion, and
    the GPU delegate folds the DEQUANTIZE into its consumer, reading the float16 constant directly, so a
    CONV_2D reading one still has a single run-time input.

    Raises:
        ValueError: `content` is not a TFLite flatbuffer, or has no subgraph.
    """
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (its file identifier is not TFL3)")
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    if not model.subgraphs:
        raise ValueError("the TFLite model has no subgraph")
    subgraph = model.subgraphs[0]
    tensors = [_read_tensor(tensor, model.buffers, content) for tensor in subgraph.tensors or []]
    names = [_operator_name(model.operatorCodes[operator.opcodeIndex]) for operator in subgraph.operators or []]
    for name, operator in zip(names, subgraph.operators or []):
        inputs, outputs = _indices(operator.inputs), _indices(operator.outputs)
        if (name == "DEQUANTIZE" and len(inputs) == 1 and len(outputs) == 1 and tensors[inputs[0]].is_constant
                and tensors[inputs[0]].type == schema.TensorType.FLOAT16):
            tensors[outputs[0]] = dataclasses.replace(tensors[outputs[0]], is_constant=True)
    return [Operator(name, tuple(tensors[i] for i in _indices(operator.inputs)),
                     tuple(tensors[i] for i in _indices(operator.outputs)), operator.builtinOptions)
            for name, operator in zip(names, subgraph.operators or [])]


def operator_counts(model: bytes | os.PathLike | str) -> dict[str, int]:
    """{operator name: count} over `model`'s main subgraph, most frequent first."""
    return dict(Counter(operator.name for operator in read_operators(model_bytes(model))).most_common())


def _operator_name(code) -> str:
    builtin = schema_util.get_builtin_code_from_operator_code(code)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return (code.customCode or b"").decode("utf-8", "replace") or "CUSTOM"
    return OPERATOR_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _indices(values) -> list[int]:
    return [int(i) for i in (values if values is not None else []) if i >= 0]  # -1: an omitted optional input


def _read_tensor(tensor, buffers, content: bytes) -> Tensor:
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else []))
    signature = tuple(int(d) for d in tensor.shapeSignature) if tensor.shapeSignature is not None else shape
    buffer = buffers[tensor.buffer] if 0 < tensor.buffer < len(buffers) else None
    data = None
    is_constant = False
    if buffer is not None:
        if buffer.data is not None and len(buffer.data):
            is_constant = True
            data = bytes(np.asarray(buffer.data, np.uint8)) if len(buffer.data) <= _MAX_VALUE_BYTES else None
        elif buffer.offset and buffer.offset > 1:  # models over 2 GB keep buffers after the flatbuffer
            is_constant = True
            data = content[buffer.offset:buffer.offset + buffer.size] if buffer.size <= _MAX_VALUE_BYTES else None
    values = None
    if data is not None and tensor.type in _NUMPY_TYPES:
        values = np.frombuffer(data, _NUMPY_TYPES[tensor.type]).reshape(shape)
    name = tensor.name.decode("utf-8", "replace") if isinstance(tensor.name, bytes) else str(tensor.name)
    return Tensor(name, shape, signature, tensor.type, is_constant, values)
