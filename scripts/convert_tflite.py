"""Converts the generator to TensorFlow Lite for phones and edge GPUs (see tf_ganimation/tflite.py).

    python scripts/convert_tflite.py --saved_model models/ganimation/1 --out ganimation_fp16.tflite
    python scripts/convert_tflite.py --workdir runs/quickstart --out quickstart_fp32.tflite --quantization none

writes the .tflite and `<name>.json` next to it (AU order, tensor names/shapes/ranges, parity error). It
fails, writing nothing, if an operator would fall back to the CPU under the GPU delegate (unless
--allow_cpu_fallback) or if the model's outputs differ from the source's by more than the tolerance
(1e-4 for none, 1e-2 for float16; dynamic_range is lossy and only checked against 0.5).

Where a Vulkan device is found (--gpu_runtime=auto; =require makes one necessary), the model is also
compiled with LiteRT's GPU accelerator alone and run: in float32, and in float16 arithmetic on a device
that has it (tf_ganimation/export/gpu_runtime.py). An operator leaving the GPU, a crash or float32
outputs unlike the CPU interpreter's fail the conversion; the float16 parity is printed and recorded.
"""

import sys

from absl import flags

from tf_ganimation import cli
from tf_ganimation.export import gpu_compatibility, gpu_runtime, tflite

_SAVED_MODEL = flags.DEFINE_string("saved_model", None,
                                   "A SavedModel version folder from export.py (<base>/<version>).")
_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's folder (config.json + generator.weights.h5).")
_OUT = flags.DEFINE_string("out", None, "The .tflite file to write; <name>.json is written next to it.")
_QUANTIZATION = flags.DEFINE_enum("quantization", "float16", tflite.QUANTIZATIONS,
                                  "none: float32; float16: half-size weights, for GPU delegates; "
                                  "dynamic_range: int8 weights, lossy.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "The model's fixed batch (the GPU delegate needs static shapes).")
_ALLOW_CPU_FALLBACK = flags.DEFINE_bool("allow_cpu_fallback", False,
                                        "Write the model even if some operators would run on the CPU.")
_PARITY_EXAMPLES = flags.DEFINE_integer("parity_examples", 4, "Random inputs the parity check runs.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the parity inputs.")
_GPU_RUNTIME = flags.DEFINE_enum("gpu_runtime", "auto", gpu_runtime.RUNTIME_CHECKS,
                                 "auto: compile and run on LiteRT's GPU accelerator where a Vulkan device is found; "
                                 "require: fail without one; off: the static rules only.")
flags.mark_flag_as_required("out")


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    if (_SAVED_MODEL.value is None) == (_WORKDIR.value is None):
        raise cli.UserError("pass exactly one of --saved_model (an exported SavedModel) and --workdir (a training run)")
    config = tflite.ConversionConfig(quantization=_QUANTIZATION.value, batch_size=_BATCH_SIZE.value,
                                     allow_cpu_fallback=_ALLOW_CPU_FALLBACK.value,
                                     parity_examples=_PARITY_EXAMPLES.value, seed=_SEED.value,
                                     gpu_runtime=_GPU_RUNTIME.value)
    try:
        if _SAVED_MODEL.value:
            result = tflite.convert_saved_model(_SAVED_MODEL.value, _OUT.value, config)
        else:
            result = tflite.convert_workdir(_WORKDIR.value, _OUT.value, config)
    except (gpu_compatibility.GpuCompatibilityError, gpu_runtime.GpuRuntimeError) as error:  # lists: not one line
        print(f"error: {error}", file=sys.stderr)
        sys.exit(cli.USER_ERROR)
    metadata = result.metadata
    errors = ", ".join(f"{name} {value:.2g}" for name, value in result.max_abs_error.items())
    operators = sum(metadata["gpu_delegate"]["operator_counts"].values())
    offenders = len(result.unsupported_operators)
    print(f"wrote {result.model_path} ({result.size_bytes / 1e6:.1f} MB, {config.quantization}, "
          f"batch {metadata['batch_size']}, {metadata['image_size']} px) and {result.metadata_path}")
    print(f"parity with {metadata['source']}: max abs error {errors} on [0, 1] (tolerance {result.tolerance:g})")
    print(f"GPU delegate: {operators - offenders} of {operators} operators supported"
          + (f"; {offenders} would run on the CPU (see the JSON)" if offenders else " (the whole graph)"))
    for report in result.gpu_runtime_reports:
        print(f"GPU runtime: {report.summary()}")
        if report.arithmetic == "float16" and report.problems():
            print("GPU runtime: float16 arithmetic is not faithful for this model: run the GPU delegate in float32 "
                  "(GpuOptions(enforce_f32=True); Android setPrecisionLossAllowed(false); LiteRT.js precision fp32)")
    if not result.gpu_runtime_reports and _GPU_RUNTIME.value != "off":
        print(f"GPU runtime: {gpu_runtime.no_device_message()}")


if __name__ == "__main__":
    cli.run(main)
