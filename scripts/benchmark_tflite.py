"""File size, parity and CPU latency of each TFLite quantization against the Keras/SavedModel function.

    python scripts/benchmark_tflite.py                       # paper-size generator: 64 filters, 6 blocks, 128 px
    python scripts/benchmark_tflite.py --filters 8 --residual_blocks 1 --image_size 32 --runs 10

Random weights (seeded); batch 1; LiteRT with its default XNNPACK CPU delegate and TensorFlow both with
--num_threads threads; latency is the median of --runs calls after --warmup calls. A benchmark, not a
test: numbers depend on the machine (and on what else runs on it). Prints a markdown table.
"""

import tempfile

import tensorflow as tf
from absl import flags

from tf_ganimation import cli
from tf_ganimation.core.config import ModelConfig
from tf_ganimation.export import tflite

_IMAGE_SIZE = flags.DEFINE_integer("image_size", 128, "Image side in pixels (paper: 128).")
_FILTERS = flags.DEFINE_integer("filters", 64, "Generator filters (paper: 64).")
_RESIDUAL_BLOCKS = flags.DEFINE_integer("residual_blocks", 6, "Generator residual blocks (paper: 6).")
_QUANTIZATIONS = flags.DEFINE_multi_enum("quantization", list(tflite.QUANTIZATIONS), tflite.QUANTIZATIONS,
                                         "Modes to convert and time (repeat the flag for several).")
_NUM_THREADS = flags.DEFINE_integer("num_threads", 2, "LiteRT CPU threads.")
_RUNS = flags.DEFINE_integer("runs", 20, "Timed calls per model (the median is reported).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed calls before timing.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where the .tflite files go (default: a temporary folder).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random weights and inputs.")


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    # The same CPU threads for TensorFlow as for LiteRT (set before TensorFlow runs anything).
    tf.config.threading.set_intra_op_parallelism_threads(_NUM_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    # critic_layers=2 only so that ModelConfig accepts small sizes; the critic is not built.
    model_config = ModelConfig(image_size=_IMAGE_SIZE.value, generator_filters=_FILTERS.value,
                               generator_residual_blocks=_RESIDUAL_BLOCKS.value, critic_layers=2)
    with tempfile.TemporaryDirectory(prefix="benchmark_tflite_") as temporary:
        rows = tflite.benchmark(model_config, _OUT_DIR.value or temporary, _QUANTIZATIONS.value,
                                num_threads=_NUM_THREADS.value, runs=_RUNS.value, warmup=_WARMUP.value,
                                seed=_SEED.value)
    print(f"generator: {_FILTERS.value} filters, {_RESIDUAL_BLOCKS.value} residual blocks, {_IMAGE_SIZE.value} px, "
          f"batch 1; LiteRT XNNPACK {_NUM_THREADS.value} threads; median of {_RUNS.value} runs\n")
    print("| model | file size | max abs error on [0, 1] | median latency | min latency |")
    print("|---|---|---|---|---|")
    for row in rows:
        size = f"{row['size_mb']:.1f} MB" if row["size_mb"] is not None else "-"
        print(f"| {row['name']} | {size} | {row['max_abs_error']:.2g} | {row['median_ms']:.1f} ms "
              f"| {row['min_ms']:.1f} ms |")


if __name__ == "__main__":
    cli.run(main)
