"""Converts a run folder written before 0.3 to the 0.3 layout, in place; the old files are kept.

    python scripts/upgrade_run.py runs/quickstart

Before 0.3 the networks kept their blocks in Python lists, so their weights files addressed layers by
class name and their checkpoints reached most weights only through the optimizers' variable lists;
config.json could hold a boolean jit_compile, and checkpoints written before train_steps existed
count their step by the generator's updates. This script reads each file with a reader of the old
layout, writes it anew (config.json, generator.weights.h5, critic.weights.h5, every checkpoint the run
records), checks that the new networks give the same edits as the old ones, and moves the old files to
RUN/pre_0.3/. A run already in the 0.3 layout is left alone.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import keras
import numpy as np
import tensorflow as tf

from tf_ganimation.core import atomic
from tf_ganimation.model import ganimation, layers, networks
from tf_ganimation.runs import run_folder

BACKUP_DIR = "pre_0.3"
MAX_EDIT_DIFFERENCE = 1e-6  # the converted generator's edits against the old one's, [-1, 1] scale


class _StridedConv(keras.layers.Conv2D):
    """The old critic's convolution: the weights files addressed it by this class name."""

    def __init__(self, filters, **kwargs):
        super().__init__(filters, 4, strides=2, padding="same", use_bias=True, **kwargs)


class _OldGenerator(keras.Model):
    """The generator's layout before 0.3: encoder, bottleneck and decoder as lists."""

    def __init__(self, filters, residual_blocks):
        super().__init__()
        self.encoder = [layers.conv(filters, 7), layers.InstanceNormalization(),
                        layers.conv(2 * filters, 4, strides=2), layers.InstanceNormalization(),
                        layers.conv(4 * filters, 4, strides=2), layers.InstanceNormalization()]
        self.bottleneck = [layers.ResidualBlock(4 * filters) for _ in range(residual_blocks)]
        self.decoder = [layers.conv(2 * filters, 4, strides=2, transpose=True), layers.InstanceNormalization(),
                        layers.conv(filters, 4, strides=2, transpose=True), layers.InstanceNormalization()]
        self.color_head = layers.conv(3, 7)
        self.attention_head = layers.conv(1, 7)

    def call(self, image, aus):
        size = image.shape[1]
        x = tf.concat([image, tf.tile(tf.reshape(aus, [-1, 1, 1, aus.shape[-1]]), [1, size, size, 1])], -1)
        for convolution, norm in zip(self.encoder[::2], self.encoder[1::2]):
            x = tf.nn.relu(norm(convolution(x)))
        for block in self.bottleneck:
            x = block(x)
        for convolution, norm in zip(self.decoder[::2], self.decoder[1::2]):
            x = tf.nn.relu(norm(convolution(x)))
        return {"color": tf.tanh(self.color_head(x)), "attention": tf.sigmoid(self.attention_head(x))}


class _OldCritic(keras.Model):
    """The critic's layout before 0.3: its trunk as a list."""

    def __init__(self, filters, layers_count, num_aus):
        super().__init__()
        self.trunk = [_StridedConv(filters * 2**index) for index in range(layers_count)]
        self.realism_head = layers.conv(1, 3)
        self.layers_count, self.num_aus = layers_count, num_aus

    def build(self, input_shape):
        side = input_shape[1] // 2**self.layers_count
        self.aus_head = keras.layers.Conv2D(self.num_aus, side, use_bias=False, name="aus_head")
        super().build(input_shape)

    def call(self, image):
        x = image
        for convolution in self.trunk:
            x = convolution(x)
        return {"realism": self.realism_head(x), "aus": self.aus_head(x)}


def _copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies `source`'s weights into `target`'s, in creation order, which the two layouts share."""
    if [tuple(w.shape) for w in source.weights] != [tuple(w.shape) for w in target.weights]:
        raise ValueError(f"the old {target.name} does not have the weights of the run's config.json")
    for source_weight, target_weight in zip(source.weights, target.weights):
        target_weight.assign(source_weight)


def _edits(generator, size: int, num_aus: int) -> np.ndarray:
    """The generator's outputs on fixed random images and AUs: [4, size, size, 4] (colour, attention)."""
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(-1, 1, (4, size, size, 3)), tf.float32)
    aus = tf.constant(rng.uniform(0, 1, (4, num_aus)), tf.float32)
    outputs = generator(image, aus)
    return np.concatenate([outputs["color"].numpy(), outputs["attention"].numpy()], axis=-1)


def _convert_weights(run: pathlib.Path, staging: pathlib.Path, config) -> list[str]:
    """generator.weights.h5 and critic.weights.h5, where present, written anew into `staging`."""
    model, size = config.model, config.model.image_size
    converted = []
    for file_name, old, new in (
            (run_folder.GENERATOR_WEIGHTS, _OldGenerator(model.generator_filters, model.generator_residual_blocks),
             networks.build_generator(model, cpu_variants=False)),
            (run_folder.CRITIC_WEIGHTS, _OldCritic(model.critic_filters, model.critic_layers, model.num_aus),
             networks.build_critic(model, cpu_variants=False))):
        path = run / file_name
        if not path.is_file():
            continue
        inputs = [tf.zeros([1, size, size, 3])] + (
            [tf.zeros([1, model.num_aus])] if file_name.startswith("gen") else [])
        old(*inputs)
        old.load_weights(path)
        _copy_weights(old, new)
        if file_name.startswith("gen"):
            difference = np.abs(_edits(old, size, model.num_aus) - _edits(new, size, model.num_aus)).max()
            if difference > MAX_EDIT_DIFFERENCE:
                raise RuntimeError(f"the converted generator's edits differ from the old one's by {difference:.2g}")
        new.save_weights(staging / file_name)
        converted.append(file_name)
    return converted


def _convert_checkpoints(run: pathlib.Path, staging: pathlib.Path, config) -> list[str]:
    """Every checkpoint the run's state file records, written anew through the networks into `staging`.

    Old checkpoints reached every network weight through the optimizers' variable lists, which the
    0.3 optimizers still keep in the same order, so restoring the optimizers restores the networks.
    """
    folder = run / run_folder.CHECKPOINT_DIR
    state = tf.train.get_checkpoint_state(os.fspath(folder))
    if state is None:
        return []
    staging = staging / run_folder.CHECKPOINT_DIR
    staging.mkdir()
    names = [os.path.basename(path) for path in state.all_model_checkpoint_paths]
    for name in names:
        gan = ganimation.make_gan(config, total_steps=1, decay_steps=0)
        old_path = os.fspath(folder / name)
        saved = {key for key, _ in tf.train.list_variables(old_path)}
        objects = {"generator_optimizer": gan.generator_optimizer, "critic_optimizer": gan.critic_optimizer}
        if "train_steps/.ATTRIBUTES/VARIABLE_VALUE" in saved:
            objects["train_steps"] = gan.train_steps
        tf.train.Checkpoint(**objects).read(old_path).expect_partial().assert_existing_objects_matched()
        if "train_steps" not in objects:  # written before train_steps: the step was the generator's updates
            gan.train_steps.assign(tf.cast(gan.generator_optimizer.iterations, tf.int64))
        checkpoint = ganimation.make_checkpoint(gan)
        if "save_counter/.ATTRIBUTES/VARIABLE_VALUE" in saved:  # CheckpointManager's count, which training restores
            checkpoint.save_counter.assign(tf.train.load_checkpoint(old_path).get_tensor(
                "save_counter/.ATTRIBUTES/VARIABLE_VALUE"))
        checkpoint.write(os.fspath(staging / name))
    shutil.copy2(folder / "checkpoint", staging / "checkpoint")
    return [run_folder.CHECKPOINT_DIR]


def _convert_config(run: pathlib.Path, staging: pathlib.Path) -> list[str]:
    """config.json with jit_compile as "true"/"false" where it was a boolean, into `staging`."""
    path = run / run_folder.CONFIG_FILE
    fields = json.loads(path.read_text())
    jit_compile = fields.get("run", {}).get("jit_compile")
    if isinstance(jit_compile, bool):
        fields["run"]["jit_compile"] = "true" if jit_compile else "false"
    atomic.write_json(staging / run_folder.CONFIG_FILE, fields, indent=2, sort_keys=True)
    return [run_folder.CONFIG_FILE]


def _is_current(run: pathlib.Path) -> bool:
    weights = run / run_folder.GENERATOR_WEIGHTS
    if weights.is_file():
        import h5py

        with h5py.File(weights) as file:
            return "encoder_1" in file
    latest = tf.train.latest_checkpoint(os.fspath(run / run_folder.CHECKPOINT_DIR))
    return bool(latest) and any(key.startswith("generator/encoder_1/") for key, _ in tf.train.list_variables(latest))


def upgrade(run: pathlib.Path) -> str:
    """Converts `run` in place (module docstring); returns what was done, in one line.

    Everything is written into RUN/.upgrade first; only when all of it is written and checked are the
    old files moved to RUN/pre_0.3 and the new ones put in their place.
    """
    if not (run / run_folder.CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{run / run_folder.CONFIG_FILE} not found: {run} is not a training run's folder")
    if _is_current(run):
        return f"{run} is already in the 0.3 layout: nothing to do"
    backup, staging = run / BACKUP_DIR, run / ".upgrade"
    if backup.exists():
        raise FileExistsError(f"{backup} exists but {run} is not in the 0.3 layout: an earlier conversion was "
                              f"interrupted; move the files of {backup} back into {run} and run this again")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        converted = _convert_config(run, staging)
        config = run_folder.load_config(staging)
        converted += _convert_weights(run, staging, config) + _convert_checkpoints(run, staging, config)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backup.mkdir()
    for name in converted:
        shutil.move(run / name, backup / name)
        os.replace(staging / name, run / name)
    staging.rmdir()
    return f"Converted {run} ({', '.join(converted)}); the old files are in {backup}"


def main(argv):
    if len(argv) != 2:
        raise cli.UserError("usage: python scripts/upgrade_run.py RUN (one run folder)")
    print(upgrade(pathlib.Path(argv[1])))


if __name__ == "__main__":
    cli.run(main)
