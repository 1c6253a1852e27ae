"""Where float16 arithmetic on the GPU loses precision: every intermediate tensor, GPU against CPU.

    python scripts/benchmarks/gpu_float16_layers.py --tflite=runs/quickstart_fp16.tflite
    python scripts/benchmarks/gpu_float16_layers.py --tflite=runs/paper_fp16.tflite --top=15

Makes every operator's output (weights' DEQUANTIZE aside) an output of the model, compiles that with
LiteRT's GPU accelerator alone in float16 arithmetic on a Vulkan device that has it (Mesa 25's
lavapipe), runs it on one fixed input and compares each tensor with LiteRT's CPU interpreter (float32
arithmetic) on the same file. Prints, in graph order and then the worst first, each tensor's max abs
error, that error relative to the tensor's largest value, and the growth over the operator's inputs.
An experiment, not a test: docs/experiments/float16_gpu.md records what it found.
"""

import pathlib

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import flatbuffers
import numpy as np
from absl import flags
from tensorflow.lite.python import schema_py_generated as schema

from tf_ganimation.export import flatbuffer, litert_gpu_process, tflite, vulkan_devices

_TFLITE = flags.DEFINE_string("tflite", None, "A generator's .tflite (scripts/convert_tflite.py).")
_TOP = flags.DEFINE_integer("top", 12, "How many of the worst tensors to list.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the input image and AUs.")
flags.mark_flag_as_required("tflite")


def every_tensor_as_output(content: bytes) -> tuple[bytes, list[int]]:
    """The model with every operator output (DEQUANTIZE aside) as a graph output, and those tensor indices."""
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    subgraph = model.subgraphs[0]
    codes = [flatbuffer.OPERATOR_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode))
             for code in model.operatorCodes]
    tensors = [int(op.outputs[0]) for op in subgraph.operators if codes[op.opcodeIndex] != "DEQUANTIZE"]
    subgraph.outputs = np.array(tensors, np.int32)
    model.signatureDefs = []  # the outputs no longer match the `edit` signature
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), tensors


def main(argv):
    del argv
    devices = [device for device in vulkan_devices.find_vulkan_devices() if device.float16]
    if not devices:
        raise cli.UserError("no Vulkan device with float16 arithmetic: " + vulkan_devices.no_device_message())
    content = pathlib.Path(_TFLITE.value).read_bytes()
    probed, tensors = every_tensor_as_output(content)
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    subgraph = model.subgraphs[0]
    names = {index: subgraph.tensors[index].name.decode() for index in range(len(subgraph.tensors))}
    size = int(subgraph.tensors[subgraph.inputs[0]].shape[1]) if len(subgraph.tensors[subgraph.inputs[0]].shape) == 4 \
        else int(subgraph.tensors[subgraph.inputs[1]].shape[1])
    images, aus = tflite.parity_inputs(1, size, seed=_SEED.value)
    inputs = {}
    for index in subgraph.inputs:
        shape = list(subgraph.tensors[index].shape)
        inputs[names[index]] = images if len(shape) == 4 else aus
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=probed, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], inputs[detail["name"]])
    interpreter.invoke()
    scale = {names[index]: float(np.max(np.abs(interpreter.get_tensor(index)))) for index in tensors}
    result = litert_gpu_process.run(probed, devices[0].icd_paths, enforce_f32=False, inputs=inputs)
    if not result.get("max_abs_error"):
        raise RuntimeError(f"the probed model did not run on {devices[0].driver}: {result}")
    errors = result["max_abs_error"]
    rows = []
    operators = [op for op in subgraph.operators]
    codes = [flatbuffer.OPERATOR_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode))
             for code in model.operatorCodes]
    by_output = {int(op.outputs[0]): op for op in operators}
    for index in tensors:
        name = names[index]
        operator = by_output[index]
        input_errors = [errors.get(names[int(i)], 0.0) for i in operator.inputs
                        if int(i) in by_output and int(i) in tensors]
        rows.append((name, codes[operator.opcodeIndex], errors.get(name, float("nan")), scale[name],
                     errors.get(name, float("nan")) / max(scale[name], 1e-12), max(input_errors, default=0.0)))
    print(f"float16 arithmetic on {devices[0].driver} ({devices[0].adapter.split(',')[0]}) against the CPU interpreter")
    print("| # | operator | tensor | max abs error | relative to max abs value | max input error |")
    print("|---|---|---|---|---|---|")
    for number, row in enumerate(rows):
        print(f"| {number} | {row[1]} | {row[0][-50:]} | {row[2]:.3g} | {row[4]:.2e} | {row[5]:.3g} |")
    print(f"\nworst {_TOP.value} by growth over their inputs' error:")
    for row in sorted(rows, key=lambda row: row[2] - row[5], reverse=True)[:_TOP.value]:
        print(f"  {row[1]:<20} {row[0][-60:]:<60} error {row[2]:.3g} (inputs {row[5]:.3g}), max |value| {row[3]:.3g}")


if __name__ == "__main__":
    cli.run(main)
