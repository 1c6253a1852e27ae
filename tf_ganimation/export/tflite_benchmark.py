"""File size, parity and CPU latency of each TFLite quantization (scripts/benchmark_tflite.py's library).

    rows = tflite_benchmark.benchmark(ModelConfig(), "benchmark_out", ("none", "float16"))
    rows[1]["size_mb"], rows[1]["max_abs_error"], rows[1]["median_ms"]

A benchmark, not a test: the latencies depend on the machine and on what else runs on it. The figures
measured go in BENCHMARKS.md (TFLite), with the command that produced them.
"""

from __future__ import annotations

import os
import pathlib
import statistics
import time
from collections.abc import Callable

import keras

from tf_ganimation.core.config import ModelConfig
from tf_ganimation.export import litert, tflite
from tf_ganimation.model import edit_model, networks


def latency_ms(function: Callable[[], object], runs: int = 20, warmup: int = 3) -> dict:
    """Wall time of `function()` over `runs` calls after `warmup` calls: {"median_ms", "min_ms"}.

    The minimum is reported too because it is the figure least disturbed by other processes on the machine.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs} and warmup={warmup}: expected runs >= 1 and warmup >= 0")
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def benchmark(model_config: ModelConfig, out_dir: os.PathLike | str, quantizations=tflite.QUANTIZATIONS,
              num_threads: int = 2, runs: int = 20, warmup: int = 3, seed: int = 0) -> list[dict]:
    """File size, parity and CPU latency at batch 1 of each quantization, against the Keras function.

    Builds a generator of `model_config`'s sizes with random weights (seeded), converts it once per mode
    into `out_dir` (`benchmark_<mode>.tflite`), and times one image through LiteRT (default XNNPACK
    delegate, `num_threads`) and through KerasEditModel.function, the `edit` tf.function the SavedModel
    exports.

    Returns:
        One row per source: {"name", "size_mb", "max_abs_error", "median_ms", "min_ms"}; the first is the
        Keras function's.
    """
    keras.utils.set_random_seed(seed)
    generator = networks.build_generator(model_config)
    size = model_config.image_size
    images, aus = tflite.parity_inputs(1, size, model_config.num_aus, seed)
    function = edit_model.KerasEditModel(generator, size).function
    rows = [{"name": "keras tf.function (SavedModel edit)", "size_mb": None, "max_abs_error": 0.0,
             **latency_ms(lambda: function(images, aus)["images"].numpy(), runs, warmup)}]
    out_dir = pathlib.Path(out_dir)
    for quantization in quantizations:
        result = tflite.convert_generator(generator, size, out_dir / f"benchmark_{quantization}.tflite",
                                          tflite.ConversionConfig(quantization=quantization, seed=seed))
        model = litert.TFLiteEditModel(result.model_path, num_threads=num_threads)
        rows.append({"name": f"tflite {quantization}", "size_mb": result.size_bytes / 1e6,
                     "max_abs_error": max(result.max_abs_error.values()),
                     **latency_ms(lambda model=model: model(images, aus), runs, warmup)})
    return rows
