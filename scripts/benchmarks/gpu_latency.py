"""One edit's latency and parity on LiteRT's GPU accelerator (each Vulkan device, float32 and float16
arithmetic) and on LiteRT's CPU interpreter, for a converted generator.

    python scripts/benchmarks/gpu_latency.py --tflite=runs/quickstart_fp16.tflite --runs=10

Each GPU row compiles the model alone on the device in a child process (gpu_runtime.check_model) and
reports the median of --runs runs after the first (inputs written to outputs read) and the max abs
difference from the CPU interpreter on the same file. The CPU row is LiteRT's interpreter (XNNPACK) on
--threads threads. On a machine without a GPU the devices are software ones (SwiftShader, lavapipe),
so their figures say what runs, not how fast a phone is. A benchmark, not a test.
"""

import statistics
import time

from absl import flags

from tf_ganimation import cli
from tf_ganimation.export import gpu_runtime, litert, tflite, vulkan_devices

_TFLITE = flags.DEFINE_string("tflite", None, "The generator's .tflite.")
_RUNS = flags.DEFINE_integer("runs", 10, "Timed runs per row, after one untimed.")
_THREADS = flags.DEFINE_integer("threads", 2, "CPU interpreter threads.")
flags.mark_flag_as_required("tflite")


def main(argv):
    del argv
    model = litert.TFLiteEditModel(_TFLITE.value, num_threads=_THREADS.value)
    images, aus = tflite.parity_inputs(1, model.image_size)
    model.edit(images, aus)
    times = []
    for _ in range(_RUNS.value):
        start = time.perf_counter()
        model.edit(images, aus)
        times.append(time.perf_counter() - start)
    print(f"{_TFLITE.value} ({model.image_size} px)")
    print("| runtime | device | arithmetic | compile (s) | run median (ms) | max abs error vs CPU |")
    print("|---|---|---|---|---|---|")
    print(f"| LiteRT CPU interpreter (XNNPACK, {_THREADS.value} threads) | CPU | float32 | - | "
          f"{1000 * statistics.median(times):.1f} | 0 |")
    devices = vulkan_devices.find_vulkan_devices()
    if not devices:
        print(vulkan_devices.no_device_message())
    for device in devices:
        for arithmetic in ("float32", "float16") if device.float16 else ("float32",):
            report = gpu_runtime.check_model(_TFLITE.value, device, arithmetic, repeats=_RUNS.value + 1)
            error = max(report.max_abs_error.values()) if report.max_abs_error else float("nan")
            print(f"| LiteRT GPU accelerator (WebGPU on Vulkan) | {device.driver} ({device.adapter.split(',')[0]}) | "
                  f"{arithmetic} | {report.compile_seconds:.1f} | {1000 * report.run_seconds:.1f} | {error:.2g} |"
                  + (f" {'; '.join(report.problems())}" if report.problems() else ""))


if __name__ == "__main__":
    cli.run(main)
