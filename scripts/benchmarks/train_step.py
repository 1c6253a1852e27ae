"""Times GANimation's training and inference steps; prints one JSON object.

    python scripts/benchmarks/train_step.py                                   # the paper's setting
    python scripts/benchmarks/train_step.py --image_size=64 --batch_size=8 --repeats=7
    python scripts/benchmarks/train_step.py --flagfile=configs/quickstart.flags  # any training flagfile

Every figure is the median of --repeats timed runs after --warmup untimed ones (tracing, allocation):
a critic update, a generator update, one full train_step (n_critic critic updates + one generator
update), the training loop's call of --steps_per_execution train_steps (training/trainer.py, per step) and
generator inference at batch 1 and at --batch_size. The model, batch, n_critic, precision
and XLA flags are the training flags (tf_ganimation/flags.py), with the paper's defaults. Results go in
BENCHMARKS.md with the command, the machine and the date; they are never asserted in tests.
"""

import json
import os
import platform
import resource

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import numpy as np
import tensorflow as tf
from absl import flags

from tf_ganimation import flags as training_flags
from tf_ganimation.export import tflite_benchmark
from tf_ganimation.model import ganimation, networks, optimizers
from tf_ganimation.training import strategy, trainer

flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (the median is reported).")
flags.DEFINE_integer("warmup", 2, "Untimed runs before timing.")
FLAGS = flags.FLAGS


def _median_seconds(function, repeats: int, warmup: int) -> float:
    """tflite_benchmark.latency_ms's median of `function()` with its outputs copied to NumPy (so the work is done)."""
    materialised = lambda: tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, function())
    return tflite_benchmark.latency_ms(materialised, runs=repeats, warmup=warmup)["median_ms"] / 1000.0


def _peak_memory_mb() -> float:
    if tf.config.list_physical_devices("GPU"):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    settings = training_flags.build_config()
    precision, _ = strategy.mixed_precision(settings.run)
    if precision != "none":
        import keras

        keras.mixed_precision.set_global_policy(precision)
    config = settings.model
    gan = ganimation.GANimation(networks.build_generator(config), networks.build_critic(config))
    gan.compile(generator_optimizer=optimizers.make_optimizer(1e-4, 0.5, 0.999, precision),
                critic_optimizer=optimizers.make_optimizer(1e-4, 0.5, 0.999, precision))
    rng = np.random.default_rng(0)
    batch, size, n_critic = settings.data.batch_size, config.image_size, settings.data.n_critic
    element = {
        "real_image": tf.constant(rng.uniform(-1, 1, (batch, n_critic, size, size, 3)), tf.float32),
        "real_aus": tf.constant(rng.uniform(0, 1, (batch, n_critic, 17)), tf.float32),
        "target_aus": tf.constant(rng.uniform(0, 1, (batch, n_critic, 17)), tf.float32),
    }
    sub_batch = [element[key][:, 0] for key in ("real_image", "real_aus", "target_aus")]
    real_image, real_aus, target_aus = sub_batch
    jit_compile = strategy.uses_xla(settings.run)
    compiled = lambda function: tf.function(function, jit_compile=jit_compile)
    # Each update with the generator pass it makes: train_step is n_critic of the first and one of the second.
    critic_update = compiled(lambda: gan.critic_step(real_image, real_aus, target_aus, update_index=0))
    generator_update = compiled(lambda: gan.generator_step(real_image, real_aus, target_aus))
    train_step = compiled(lambda: gan.train_step(element))
    infer = compiled(lambda image, aus: gan.edit(image, aus)["fake_image"])
    # The training loop's own call (trainer.make_step_function): steps_per_execution train_steps per call.
    steps_per_call = strategy.steps_per_execution(settings.run)
    training_call = trainer.make_step_function(gan, tf.distribute.get_strategy(), jit_compile, steps_per_call)
    elements = iter(tf.data.Dataset.from_tensors(element).repeat())
    no_stop = tf.constant(False)
    one_image, one_aus = sub_batch[0][:1], sub_batch[2][:1]

    repeats, warmup = FLAGS.repeats, FLAGS.warmup
    result = {
        "critic_step_seconds": _median_seconds(critic_update, repeats, warmup),
        "generator_step_seconds": _median_seconds(generator_update, repeats, warmup),
        "train_step_seconds": _median_seconds(train_step, repeats, warmup),
        "training_call_seconds_per_step": _median_seconds(lambda: training_call(elements, no_stop), repeats,
                                                          warmup) / steps_per_call,
        "inference_batch1_seconds": _median_seconds(lambda: infer(one_image, one_aus), repeats * 4, warmup),
        f"inference_batch{batch}_seconds": _median_seconds(lambda: infer(sub_batch[0], sub_batch[2]), repeats, warmup),
    }
    result["images_per_second"] = batch * n_critic / result["train_step_seconds"]
    result["training_call_images_per_second"] = batch * n_critic / result["training_call_seconds_per_step"]
    result["peak_memory_mb"] = round(_peak_memory_mb(), 1)
    result["settings"] = {name: FLAGS[name].value for name in (
        "image_size", "batch_size", "n_critic", "repeats", "generator_filters", "generator_residual_blocks",
        "critic_filters", "critic_layers", "jit_compile", "steps_per_execution")}
    result["settings"]["mixed_precision"] = precision
    gpus = tf.config.list_physical_devices("GPU")
    result["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                         "gpu": tf.config.experimental.get_device_details(gpus[0]).get("device_name") if gpus else None,
                         "tensorflow": tf.__version__}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli.run(main)
