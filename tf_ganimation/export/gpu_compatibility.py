"""Will the TFLite GPU delegate run a .tflite model whole? Its rules, applied to the operators and
tensors that flatbuffer.py reads from the model.

    offenders = gpu_compatibility.unsupported_operators("ganimation_fp16.tflite")
    for operator in offenders:
        print(operator)          # "#12 BROADCAST_TO: not an operator the GPU delegate runs; ..."
    gpu_compatibility.require_gpu_compatible(model_bytes)   # raises GpuCompatibilityError listing them

An operator the delegate cannot take stays on the CPU, copying tensors at every boundary (often slower
than the CPU alone). This lists them, with index, name and reason, without a GPU (gpu_runtime.py runs one).

The rules follow the delegate's own compatibility checks (`CheckGpuDelegateCompatibility` in
tensorflow/lite/tools/versioning/gpu_compatibility.cc, which replaced the `IsSupported` methods of
tensorflow/lite/delegates/gpu/common/model_builder.cc) and its tensor conversion (BHWC tensors):

- every tensor an operator reads or writes has at most 4 dimensions and a shape fixed at conversion;
- tensors computed at run time are floating point (integer run-time tensors are shape arithmetic);
- the operator is one the delegate runs, with that operator's restrictions: e.g. RESHAPE, TILE,
  TRANSPOSE take one run-time input (a constant shape or multiples), MEAN a constant int32 axes tensor,
  elementwise ops broadcast one way only and never a run-time tensor up to a constant's shape,
  STRIDED_SLICE no ellipsis/new-axis/shrink masks, fused activations no SIGN_BIT; custom and Flex
  (TensorFlow) operators are refused;
- a DEQUANTIZE of a float16 constant (how a float16 model stores its weights) is folded by the delegate
  into its consumer, so its output counts as a constant (flatbuffer.read_operators marks it so).

TOPK_V2 and CUMSUM follow what LiteRT's GPU accelerator (ai-edge-litert 2.3.0) computes right, measured
(tests/export/test_gpu_compatibility.py): TOPK_V2 over a multiple of 4 channels, CUMSUM over an axis
written non-negative; other cases crash it (SIGILL) or give wrong values.

Notes: TensorFlow's own check (`tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)`)
reports every model compatible in TF 2.21 (tensorflow/tensorflow#77042). Where these rules are stricter
than LiteRT's GPU accelerator (a MEAN over the channels, a run-time tensor broadcast up through a
constant, PACK, integer run-time tensors), it is for the TFLite GPU delegate's checks (OpenCL/OpenGL,
older phones). Operator versions are not checked, so dynamic_range's int8-weight CONV_2D passes.
docs/gpu_runtime_rules.md lists every case compared with the runtime; only a run on a device is proof.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

from tf_ganimation.export import flatbuffer
from tf_ganimation.export.flatbuffer import Operator, Tensor

MAX_RANK = 4
_FLOAT_TYPES = (schema.TensorType.FLOAT32, schema.TensorType.FLOAT16)
# Custom operators that the delegate implements itself (none of them comes out of the TF converter).
_GPU_CUSTOM_OPERATORS = ("Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler")


@dataclasses.dataclass(frozen=True)
class UnsupportedOperator:
    """One operator the GPU delegate would leave to the CPU.

    Attributes:
        index: the operator's position in the model's main subgraph (execution order, from 0).
        op_name: the builtin operator's name (`BROADCAST_TO`), or a custom operator's code (`FlexErf`).
        reason: why the delegate cannot take it, naming the tensor or option at fault.
    """

    index: int
    op_name: str
    reason: str

    def __str__(self) -> str:
        return f"#{self.index} {self.op_name}: {self.reason}"


class GpuCompatibilityError(ValueError):
    """A model has operators that would fall back to the CPU; `operators` lists them."""

    def __init__(self, operators: Sequence[UnsupportedOperator], total: int, source: str = "the model"):
        self.operators = tuple(operators)
        shown = 20
        lines = [str(operator) for operator in self.operators[:shown]]
        if len(self.operators) > shown:
            lines.append(f"... and {len(self.operators) - shown} more")
        super().__init__(
            f"{len(self.operators)} of {total} operators in {source} would fall back to the CPU under the TFLite "
            "GPU delegate:\n  " + "\n  ".join(lines))


def unsupported_operators(model: bytes | os.PathLike | str) -> list[UnsupportedOperator]:
    """The operators of `model`'s main subgraph that the TFLite GPU delegate would not run.

    Args:
        model: a .tflite flatbuffer, as bytes or as a path.

    Returns:
        One `UnsupportedOperator` per offending operator, in graph order; empty when the delegate takes
        the whole graph. An operator with several problems is listed once, with the first found.
    """
    offenders = []
    for index, operator in enumerate(flatbuffer.read_operators(flatbuffer.model_bytes(model))):
        reason = _first_problem(operator)
        if reason:
            offenders.append(UnsupportedOperator(index, operator.name, reason))
    return offenders


def require_gpu_compatible(model: bytes | os.PathLike | str, source: str = "the model") -> None:
    """Raises GpuCompatibilityError, listing every offending operator, unless the delegate runs `model` whole."""
    content = flatbuffer.model_bytes(model)
    offenders = unsupported_operators(content)
    if offenders:
        raise GpuCompatibilityError(offenders, len(flatbuffer.read_operators(content)), source)


# === The rules ===

def _first_problem(operator: Operator) -> str | None:
    if operator.name in _REFUSED:
        return _REFUSED[operator.name]
    if operator.name not in _RULES and operator.name not in flatbuffer.OPERATOR_NAMES.values():
        if operator.name.startswith("Flex"):
            return ("a TensorFlow (Flex) operator, run by the TF Select runtime on the CPU; express the "
                    "computation with TFLite builtin operators")
        if operator.name not in _GPU_CUSTOM_OPERATORS:
            return "a custom operator, which the GPU delegate does not implement"
        return None
    if operator.name not in _RULES:
        return "not an operator the GPU delegate runs"
    # TOPK_V2's int32 indices are an output the GPU computes; its consumers are checked on their own.
    checked = operator.outputs[:1] if operator.name == "TOPK_V2" else operator.outputs
    for tensor in operator.inputs + checked:
        problem = _tensor_problem(tensor)
        if problem:
            return problem
    return _RULES[operator.name](operator)


def _tensor_problem(tensor: Tensor) -> str | None:
    if len(tensor.shape) > MAX_RANK:
        return (f"tensor {tensor.describe()} is {len(tensor.shape)}-D: the GPU delegate handles at most "
                f"{MAX_RANK}-D (batch, height, width, channels) tensors")
    if any(d < 0 for d in tensor.signature):
        return (f"tensor {tensor.describe()} has a dimension unknown at conversion (shape signature "
                f"{list(tensor.signature)}): the GPU delegate needs static shapes; convert with a fixed batch")
    if not tensor.is_constant and tensor.type not in _FLOAT_TYPES:
        return (f"tensor {tensor.describe()} is computed at run time but is not floating point: integer "
                "and boolean run-time tensors (shape arithmetic, masks) stay on the CPU")
    return None


def _activation_problem(operator: Operator) -> str | None:
    activation = getattr(operator.options, "fusedActivationFunction", schema.ActivationFunctionType.NONE)
    if activation == schema.ActivationFunctionType.SIGN_BIT:
        return "fused activation SIGN_BIT is not supported"
    return None


def _inputs_problem(operator: Operator, runtime: int, constant: int | None = None, outputs: int = 1) -> str | None:
    found_runtime, found_constant = len(operator.runtime_inputs), len(operator.constant_inputs)
    if found_runtime != runtime:
        return (f"takes {runtime} run-time input(s), but has {found_runtime} "
                f"({', '.join(t.describe() for t in operator.runtime_inputs) or 'none'})"
                + ("; its other inputs must be constants" if found_runtime > runtime else ""))
    if constant is not None and found_constant != constant:
        return f"takes {constant} constant input(s), but has {found_constant}"
    if len(operator.outputs) != outputs:
        return f"has {outputs} output(s) on the GPU, but {len(operator.outputs)} here"
    return None


def _positive(operator: Operator, *fields: str) -> str | None:
    for field in fields:
        value = getattr(operator.options, field, None)
        if value is not None and value <= 0:
            return f"option {field}={value} must be > 0"
    return None


def _no_check(operator: Operator) -> str | None:
    return None


def _one_runtime_input(operator: Operator) -> str | None:
    return _inputs_problem(operator, runtime=1)


def _unary(operator: Operator) -> str | None:
    return _inputs_problem(operator, runtime=1, constant=0)


def _broadcast_problem(first: Tensor, second: Tensor) -> str | None:
    """The delegate's standard broadcasting: one operand must cover the other in every dimension."""
    a, b = first.shape, second.shape
    if len(a) > 1 and len(b) > 1 and len(a) != len(b):
        longer, shorter = (a, b) if len(a) > len(b) else (b, a)
        supported = len(longer) == 4 and (
            (len(shorter) == 3 and longer[0] == 1)
            or (len(shorter) == 2 and longer[0] == 1 and shorter == (1, 1))
            or (len(shorter) == 2 and shorter == (longer[0], longer[3])))
        if not supported:
            return f"cannot broadcast {list(a)} with {list(b)} (only 3-D, [1, 1] or [b, c] onto 4-D)"
    if len(a) == len(b):
        a_smaller = any(x < y for x, y in zip(a, b))
        b_smaller = any(y < x for x, y in zip(a, b))
        if a_smaller and b_smaller:
            return (f"broadcasts both ways ({list(a)} with {list(b)}): one operand must be at least as large "
                    "as the other in every dimension")
    return None


def _elementwise_binary(operator: Operator) -> str | None:
    if len(operator.inputs) != 2 or len(operator.outputs) != 1:
        return f"takes 2 inputs and 1 output, has {len(operator.inputs)} and {len(operator.outputs)}"
    runtime = operator.runtime_inputs
    if not runtime:
        return "has only constant inputs (the converter should have folded it)"
    problem = _broadcast_problem(*operator.inputs)
    if problem:
        return problem
    output = operator.outputs[0]
    if len(runtime) == 1 and runtime[0].shape != output.shape:
        # With one constant operand the delegate applies the constant to the run-time tensor, whose
        # shape the output keeps: the run-time tensor cannot be broadcast up (a multiply by ones).
        return (f"broadcasts the run-time tensor {runtime[0].describe()} up to the output's {list(output.shape)} "
                f"through the constant {operator.constant_inputs[0].describe()}; use a TILE with constant "
                "multiples instead")
    return _activation_problem(operator)


def _convolution(operator: Operator) -> str | None:
    runtime = operator.runtime_inputs
    if not 1 <= len(runtime) <= 2 or len(operator.outputs) != 1:
        return f"takes 1 or 2 run-time inputs and 1 output, has {len(runtime)} and {len(operator.outputs)}"
    if operator.name == "TRANSPOSE_CONV" and not operator.inputs[0].is_constant:
        return f"its output shape {operator.inputs[0].describe()} is computed at run time; it must be a constant"
    return (_positive(operator, "strideH", "strideW", "dilationHFactor", "dilationWFactor")
            or _activation_problem(operator))


def _depthwise_convolution(operator: Operator) -> str | None:
    problem = _convolution(operator)
    if problem:
        return problem
    input_tensor, filter_tensor, output = operator.inputs[0], operator.inputs[1], operator.outputs[0]
    if len(input_tensor.shape) != 4 or len(filter_tensor.shape) != 4 or len(output.shape) != 4:
        return "input, filter and output must be 4-D"
    multiplier = operator.options.depthMultiplier
    if multiplier != 1 and input_tensor.shape[3] != 1:
        return f"depth_multiplier {multiplier} needs a 1-channel input, has {input_tensor.shape[3]} channels"
    return None


def _pooling(operator: Operator) -> str | None:
    return (_inputs_problem(operator, runtime=1)
            or _positive(operator, "filterHeight", "filterWidth", "strideH", "strideW")
            or _activation_problem(operator))


def _axes_problem(operator: Operator) -> str | None:
    axes = operator.inputs[1] if len(operator.inputs) > 1 else None
    if axes is None or not axes.is_constant:
        return f"{operator.name} needs constant axes"
    if axes.type != schema.TensorType.INT32:
        return f"{operator.name} needs int32 axes, has {flatbuffer.TYPE_NAMES.get(axes.type, axes.type)}"
    return None


def _reduction(operator: Operator) -> str | None:
    return _inputs_problem(operator, runtime=1, outputs=1) or _axes_problem(operator)


def _mean(operator: Operator) -> str | None:
    problem = _inputs_problem(operator, runtime=1, constant=1) or _axes_problem(operator)
    if problem:
        return problem
    rank = len(operator.inputs[0].shape)
    axes = sorted({int(axis) % rank for axis in np.ravel(operator.inputs[1].values)}) if rank else []
    if rank != 4 or not set(axes) <= {1, 2}:
        return (f"MEAN over axes {axes} of a {rank}-D tensor: only the height and width of a 4-D tensor "
                "(axes 1, 2) are reduced on every GPU delegate version")
    return None


def _pad(operator: Operator) -> str | None:
    if operator.name == "MIRROR_PAD" and operator.options.mode != schema.MirrorPadMode.REFLECT:
        return "MIRROR_PAD supports only REFLECT mode"
    problem = _inputs_problem(operator, runtime=1)
    if problem:
        return problem
    paddings = operator.inputs[1].shape if len(operator.inputs) > 1 else ()
    if len(paddings) != 2 or paddings[0] not in (3, 4) or paddings[1] != 2:
        return f"paddings of shape {list(paddings)}: expected 4x2 or 3x2"
    return None


def _slice(operator: Operator) -> str | None:
    if operator.name == "STRIDED_SLICE":
        for mask in ("ellipsisMask", "newAxisMask", "shrinkAxisMask"):
            if getattr(operator.options, mask, 0):
                return f"STRIDED_SLICE with {mask} is not supported"
    needed = 4 if operator.name == "STRIDED_SLICE" else 3
    if len(operator.inputs) < needed:
        return f"{operator.name} takes {needed} inputs, has {len(operator.inputs)}"
    if len(operator.inputs[0].shape) not in (3, 4):
        return f"{operator.name} supports 3-D or 4-D tensors only, not {len(operator.inputs[0].shape)}-D"
    return None


def _resize(operator: Operator) -> str | None:
    problem = _inputs_problem(operator, runtime=1)
    if problem:
        return problem
    if getattr(operator.options, "alignCorners", False) and getattr(operator.options, "halfPixelCenters", False):
        return "align_corners and half_pixel_centers cannot both be set"
    return None


def _depth_space(operator: Operator) -> str | None:
    block = operator.options.blockSize
    return _inputs_problem(operator, runtime=1) or (f"block_size {block} must be > 1" if block <= 1 else None)


def _softmax(operator: Operator) -> str | None:
    return None if operator.options.beta == 1 else f"softmax beta {operator.options.beta} must be 1"


def _fully_connected(operator: Operator) -> str | None:
    options = operator.options
    if options.weightsFormat != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
        return f"weights format {options.weightsFormat} is not supported"
    if len(operator.runtime_inputs) > 2:
        return "takes at most 2 run-time inputs"
    if operator.inputs[0].is_constant:
        return "its input must not be a constant"
    if options.keepNumDims and len(operator.inputs[0].shape) != len(operator.outputs[0].shape):
        return "keep_num_dims with input and output of different ranks"
    return _activation_problem(operator)


def _dequantize(operator: Operator) -> str | None:
    if len(operator.inputs) != 1 or len(operator.outputs) != 1:
        return "takes 1 input and 1 output"
    if operator.inputs[0].type == schema.TensorType.INT16:
        return "int16 dequantization is not supported"
    return None


def _concatenation(operator: Operator) -> str | None:
    ranks = {len(tensor.shape) for tensor in operator.inputs}
    return None if len(ranks) == 1 else f"concatenates tensors of different ranks {sorted(ranks)}"


def _top_k(operator: Operator) -> str | None:
    channels = operator.inputs[0].shape[-1] if operator.inputs[0].shape else 0
    return ("k must be a constant" if not operator.inputs[1].is_constant else None if channels % 4 == 0 else
            f"over {channels} values, not a multiple of 4: LiteRT's GPU accelerator logs \"TopK requires src tensor "
            "C dimension to be divisible by 4\" and computes wrong values (it ignores the last ones)")


def _cumulative_sum(operator: Operator) -> str | None:
    axis = operator.inputs[1]
    if not axis.is_constant or axis.values is None:
        return "the axis must be a constant"
    if int(np.ravel(axis.values)[0]) < 0:
        return (f"axis {int(np.ravel(axis.values)[0])} is negative: LiteRT's GPU accelerator does not wrap it and "
                "crashes (SIGILL) or sums over the wrong axis; write the axis as a non-negative number")
    return ("exclusive and reverse are not verified on the GPU"
            if operator.options.reverse + operator.options.exclusive else None)


_RULES: dict[str, Callable[[Operator], str | None]] = {
    "ADD": _elementwise_binary, "SUB": _elementwise_binary, "MUL": _elementwise_binary, "DIV": _elementwise_binary,
    "SQUARED_DIFFERENCE": _elementwise_binary, "MAXIMUM": _elementwise_binary, "MINIMUM": _elementwise_binary,
    "POW": _elementwise_binary,
    "ABS": _unary, "CEIL": _unary, "COS": _unary, "ELU": _unary, "EXP": _unary, "FLOOR": _unary, "GELU": _unary,
    "LOG": _unary, "LOGISTIC": _unary, "NEG": _unary, "RSQRT": _unary, "SIN": _unary, "SQRT": _unary,
    "SQUARE": _unary, "TANH": _unary, "HARD_SWISH": _unary,
    "RELU": _no_check, "RELU6": _no_check, "RELU_N1_TO_1": _no_check, "LEAKY_RELU": _no_check, "PRELU": _no_check,
    "CONV_2D": _convolution, "TRANSPOSE_CONV": _convolution, "DEPTHWISE_CONV_2D": _depthwise_convolution,
    "AVERAGE_POOL_2D": _pooling, "MAX_POOL_2D": _pooling,
    "MEAN": _mean, "SUM": _reduction, "REDUCE_MAX": _reduction, "REDUCE_MIN": _reduction, "REDUCE_PROD": _reduction,
    "CONCATENATION": _concatenation, "RESHAPE": _one_runtime_input, "TILE": _one_runtime_input,
    "TRANSPOSE": _one_runtime_input, "QUANTIZE": _one_runtime_input,
    "PAD": _pad, "PADV2": _pad, "MIRROR_PAD": _pad, "SLICE": _slice, "STRIDED_SLICE": _slice,
    "SPLIT": _no_check, "SPLIT_V": _no_check, "SOFTMAX": _softmax,
    "RESIZE_BILINEAR": _resize, "RESIZE_NEAREST_NEIGHBOR": _resize,
    "SPACE_TO_DEPTH": _depth_space, "DEPTH_TO_SPACE": _depth_space,
    "FULLY_CONNECTED": _fully_connected, "DEQUANTIZE": _dequantize, "TOPK_V2": _top_k, "CUMSUM": _cumulative_sum,
}

# Operators that Keras/TF graphs commonly produce and that keep a model off the GPU, with the fix.
_REFUSED = {
    "SHAPE": ("reads a tensor's shape at run time (a dimension unknown at conversion, e.g. batch None): "
              "convert with a fixed batch and static image size"),
    "PACK": ("stacks values computed at run time (in converted Keras graphs, shapes); refused here: compute the "
             "value from static shapes"),
    "BROADCAST_TO": ("not an operator the GPU delegate runs; repeat the tensor with a TILE of constant "
                     "multiples instead (as networks.Generator does with the AUs)"),
}
