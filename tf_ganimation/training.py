"""`train(config, workdir)`: one GANimation training run, resumable, with checkpoints and TensorBoard.

The run folder's layout is described in workdir.py. A run restarted on the same workdir resumes from
its latest checkpoint with the same step, optimizer state and learning-rate position.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pathlib
import signal
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from tf_ganimation import data, model, networks, workdir as workdir_lib
from tf_ganimation.config import Config


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How many train_steps a run makes. One step = n_critic critic updates + one generator update."""

    steps_per_epoch: int
    total_steps: int  # the learning-rate schedule's length: epochs * steps_per_epoch
    final_step: int  # where this run stops: total_steps, or max_steps when given
    decay_steps: int


def make_schedule(config: Config, num_train_examples: int) -> Schedule:
    steps_per_epoch = data.steps_per_epoch(num_train_examples, config.data)
    total_steps = config.optimizer.epochs * steps_per_epoch
    final_step = config.run.max_steps or total_steps
    return Schedule(steps_per_epoch, total_steps, final_step, config.optimizer.decay_epochs * steps_per_epoch)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MirroredStrategy over every GPU when there are several, else the default (one device)."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy={name!r} is invalid: expected one of auto, one_device, mirrored, multi_worker")


def build_gan(config: Config, schedule: Schedule) -> model.GANimation:
    """Networks, the GAN wrapper and both Adam optimizers; call inside the strategy's scope."""
    generator = networks.build_generator(config.model)
    critic = networks.build_critic(config.model)
    gan = model.GANimation(generator, critic, config.loss, seed=config.run.seed)
    n_critic = config.data.n_critic
    optimizer = config.optimizer

    def adam(learning_rate, updates_per_step):
        decay = model.LinearDecaySchedule(learning_rate, schedule.total_steps * updates_per_step,
                                          schedule.decay_steps * updates_per_step)
        return model.make_optimizer(decay, optimizer.beta_1, optimizer.beta_2, config.run.mixed_precision)

    gan.compile(generator_optimizer=adam(optimizer.generator_learning_rate, 1),
                critic_optimizer=adam(optimizer.critic_learning_rate, n_critic),
                jit_compile=config.run.jit_compile)
    return gan


def make_checkpoint_manager(gan: model.GANimation, directory: os.PathLike, keep: int) -> tf.train.CheckpointManager:
    """Both networks and both optimizers (whose iteration counts are the step); the last `keep` kept."""
    checkpoint = tf.train.Checkpoint(generator=gan.generator, critic=gan.critic,
                                     generator_optimizer=gan.generator_optimizer,
                                     critic_optimizer=gan.critic_optimizer)
    return tf.train.CheckpointManager(checkpoint, os.fspath(directory), max_to_keep=keep)


def current_step(gan: model.GANimation) -> int:
    return int(gan.generator_optimizer.iterations.numpy())


def sample_grid(gan: model.GANimation, samples: dict) -> np.ndarray:
    """Rows of real | attention | color | fake | reconstruction, one row per sample: uint8 [n*S, 5*S, 3].

    The attention mask is shown in grey (white keeps the input pixel); reconstruction is
    G(fake, real_aus) composed on the fake, as in the cycle loss.
    """
    edited = gan.edit(samples["real_image"], samples["target_aus"])
    reconstructed = gan.edit(edited["fake_image"], samples["real_aus"])
    to_unit = lambda images: (np.asarray(images) + 1.0) / 2.0
    columns = [to_unit(samples["real_image"]), np.repeat(np.asarray(edited["attention"]), 3, axis=-1),
               to_unit(edited["color"]), to_unit(edited["fake_image"]), to_unit(reconstructed["fake_image"])]
    grid = np.concatenate([np.concatenate(list(column), axis=0) for column in columns], axis=1)
    return np.round(np.clip(grid, 0.0, 1.0) * 255.0).astype(np.uint8)


class _Interrupted:
    """Turns SIGINT/SIGTERM into a flag the training loop checks after each step."""

    def __init__(self):
        self.signal_number = 0

    @contextlib.contextmanager
    def installed(self):
        def handle(signal_number, frame):
            logging.warning("Received signal %d: saving a checkpoint after this step, then stopping.", signal_number)
            self.signal_number = signal_number

        previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


class TrainingMonitor(keras.callbacks.Callback):
    """Checkpoints, TensorBoard scalars and sample grids, images/s, and stopping at the final step."""

    def __init__(self, gan, config: Config, schedule: Schedule, run_dir: pathlib.Path,
                 manager: tf.train.CheckpointManager, samples: dict, interrupted: _Interrupted):
        super().__init__()
        self.gan, self.config, self.schedule, self.run_dir = gan, config, schedule, run_dir
        self.manager, self.samples, self.interrupted = manager, samples, interrupted
        self.writer = tf.summary.create_file_writer(os.fspath(run_dir / workdir_lib.LOGS_DIR))
        self.images_per_step = config.data.batch_size * config.data.n_critic
        self._clock = (time.perf_counter(), current_step(gan))
        self.images_per_second = 0.0

    def on_train_batch_end(self, batch, logs=None):
        step = current_step(self.gan)
        run = self.config.run
        if step % run.summary_every == 0 or step == self.schedule.final_step:
            self._write_scalars(step, logs or {})
        if step % run.sample_every == 0 or step == self.schedule.final_step:
            self.write_samples(step)
        end_of_epoch = step % self.schedule.steps_per_epoch == 0
        if step % run.checkpoint_every == 0 or end_of_epoch or step >= self.schedule.final_step:
            self.save(step)
        if self.interrupted.signal_number:
            self.save(step)
            self.model.stop_training = True
        if step >= self.schedule.final_step:
            self.model.stop_training = True

    def save(self, step: int) -> None:
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
            return
        path = self.manager.save(checkpoint_number=step)
        logging.info("Saved checkpoint %s", path)

    def _write_scalars(self, step: int, logs: dict) -> None:
        start_time, start_step = self._clock
        now = time.perf_counter()
        if step > start_step:
            self.images_per_second = (step - start_step) * self.images_per_step / (now - start_time)
        self._clock = (now, step)
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(f"losses/{name}", float(value))
            tf.summary.scalar("learning_rate/generator", float(self.gan.generator_optimizer.learning_rate))
            tf.summary.scalar("learning_rate/critic", float(self.gan.critic_optimizer.learning_rate))
            tf.summary.scalar("images_per_second", self.images_per_second)
        logging.info("step %d/%d: %.1f images/s, generator_loss %.4f, critic_loss %.4f", step,
                     self.schedule.final_step, self.images_per_second, float(logs.get("generator_loss", math.nan)),
                     float(logs.get("critic_loss", math.nan)))

    def write_samples(self, step: int) -> pathlib.Path:
        grid = sample_grid(self.gan, self.samples)
        path = self.run_dir / workdir_lib.SAMPLES_DIR / f"step_{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(path)
        with self.writer.as_default(step=step):
            tf.summary.image("samples (real | attention | color | fake | reconstruction)", grid[None], step=step)
        return path


def _check_resumable(config: Config, run_dir: pathlib.Path) -> None:
    """A workdir holding another experiment's config cannot be resumed with this one's networks."""
    if not (run_dir / workdir_lib.CONFIG_FILE).is_file():
        return
    previous = workdir_lib.load_config(run_dir)
    if previous.model != config.model:
        changed = [field.name for field in dataclasses.fields(config.model)
                   if getattr(previous.model, field.name) != getattr(config.model, field.name)]
        raise ValueError(f"{run_dir} holds a run with other network sizes ({', '.join(changed)} differ from "
                         f"its config.json): use another --workdir, or the same sizes to resume it")


def train(config: Config, workdir: os.PathLike) -> dict:
    """Trains GANimation on `config.data` into `workdir`, resuming from its latest checkpoint.

    Returns:
        {"step": final step, "interrupted_by": signal number or 0, "images_per_second": float,
         plus the last value of every loss term}.
    """
    run_dir = pathlib.Path(workdir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_resumable(config, run_dir)
    if config.run.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.run.seed)
    if config.run.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(config.run.mixed_precision)

    examples = data.load_examples(config.data)  # logs the data summary: usable and skipped examples
    schedule = make_schedule(config, len(examples.train))
    strategy = make_strategy(config.run.strategy)
    logging.info("Strategy %s with %d replicas; %d train examples, %d steps per epoch, stopping at step %d",
                 type(strategy).__name__, strategy.num_replicas_in_sync, len(examples.train),
                 schedule.steps_per_epoch, schedule.final_step)
    with strategy.scope():
        gan = build_gan(config, schedule)
    manager = make_checkpoint_manager(gan, run_dir / workdir_lib.CHECKPOINT_DIR, config.run.keep_checkpoints)
    if manager.latest_checkpoint:
        manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"Resuming from step {current_step(gan)} ({manager.latest_checkpoint})", file=sys.stderr)
    workdir_lib.save_config(config, run_dir)

    dataset = strategy.distribute_datasets_from_function(
        lambda context: data.make_training_dataset(config.data, context, examples))
    samples = data.fixed_samples(config.data, config.run.num_samples, examples=examples)
    step = current_step(gan)
    remaining = max(0, schedule.final_step - step)
    interrupted = _Interrupted()
    monitor = TrainingMonitor(gan, config, schedule, run_dir, manager,
                              {k: v for k, v in samples.items() if k != "id"}, interrupted)
    history = {}
    if remaining:
        with interrupted.installed():
            history = gan.fit(dataset, initial_epoch=step // schedule.steps_per_epoch,
                              epochs=step // schedule.steps_per_epoch + math.ceil(remaining / schedule.steps_per_epoch),
                              steps_per_epoch=schedule.steps_per_epoch, callbacks=[monitor], shuffle=False,
                              verbose=1 if sys.stdout.isatty() else 2).history
    else:
        logging.info("Nothing to do: the run in %s is at step %d of %d", run_dir, step, schedule.final_step)
    step = current_step(gan)
    if not interrupted.signal_number:
        gan.generator.save_weights(run_dir / workdir_lib.GENERATOR_WEIGHTS)
        gan.critic.save_weights(run_dir / workdir_lib.CRITIC_WEIGHTS)
    return {"step": step, "interrupted_by": interrupted.signal_number,
            "images_per_second": monitor.images_per_second,
            **{name: float(values[-1]) for name, values in history.items()}}
