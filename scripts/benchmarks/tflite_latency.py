r"""File size, parity and CPU latency of each TFLite quantization against the Keras/SavedModel function.

    python scripts/benchmarks/tflite_latency.py        # paper-size generator: 64 filters, 6 blocks, 128 px
    python scripts/benchmarks/tflite_latency.py --generator_filters=8 --generator_residual_blocks=1 \
        --image_size=32 --runs=10

Random weights (seeded); batch 1; LiteRT with its default XNNPACK CPU delegate and TensorFlow both with
--num_threads threads; latency is the median of --runs calls after --warmup calls. A benchmark, not a
test: numbers depend on the machine (and on what else runs on it). Prints a markdown table. The
generator's sizes and --seed are the training flags (tf_ganimation/flags.py).
"""

import tempfile

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import tensorflow as tf
from absl import flags

from tf_ganimation import flags as training_flags
from tf_ganimation.core.config import ModelConfig
from tf_ganimation.export import tflite, tflite_benchmark

_QUANTIZATIONS = flags.DEFINE_multi_enum("quantization", list(tflite.QUANTIZATIONS), tflite.QUANTIZATIONS,
                                         "Modes to convert and time (repeat the flag for several).")
_NUM_THREADS = flags.DEFINE_integer("num_threads", 2, "LiteRT CPU threads.")
_RUNS = flags.DEFINE_integer("runs", 20, "Timed calls per model (the median is reported).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed calls before timing.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where the .tflite files go (default: a temporary folder).")

FLAGS = training_flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    # The same CPU threads for TensorFlow as for LiteRT (set before TensorFlow runs anything).
    tf.config.threading.set_intra_op_parallelism_threads(_NUM_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    # critic_layers=2 only so that ModelConfig accepts small sizes; the critic is not built.
    model_config = ModelConfig(image_size=FLAGS.image_size, generator_filters=FLAGS.generator_filters,
                               generator_residual_blocks=FLAGS.generator_residual_blocks, critic_layers=2)
    with tempfile.TemporaryDirectory(prefix="benchmark_tflite_") as temporary:
        rows = tflite_benchmark.benchmark(model_config, _OUT_DIR.value or temporary, _QUANTIZATIONS.value,
                                          num_threads=_NUM_THREADS.value, runs=_RUNS.value, warmup=_WARMUP.value,
                                          seed=FLAGS.seed)
    print(f"generator: {FLAGS.generator_filters} filters, {FLAGS.generator_residual_blocks} residual blocks, "
          f"{FLAGS.image_size} px, batch 1; LiteRT XNNPACK {_NUM_THREADS.value} threads; "
          f"median of {_RUNS.value} runs\n")
    print("| model | file size | max abs error on [0, 1] | median latency | min latency |")
    print("|---|---|---|---|---|")
    for row in rows:
        size = f"{row['size_mb']:.1f} MB" if row["size_mb"] is not None else "-"
        print(f"| {row['name']} | {size} | {row['max_abs_error']:.2g} | {row['median_ms']:.1f} ms "
              f"| {row['min_ms']:.1f} ms |")


if __name__ == "__main__":
    cli.run(main)
