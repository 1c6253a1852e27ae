"""What a training run shows while it trains: TensorBoard scalars, sample grids, evaluation scores, and
when it saves checkpoints."""

from __future__ import annotations

import math
import os
import pathlib
import time
from collections.abc import Callable, Mapping

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from tf_ganimation.core import atomic, grids, pixels
from tf_ganimation.core.config import Config
from tf_ganimation.model import ganimation, networks
from tf_ganimation.runs import run_folder
from tf_ganimation.training import checkpoints
from tf_ganimation.training.schedule import Schedule

# Scores a generator during training: {scalar name: value}; evaluation.probe.SyntheticProbe is one.
Probe = Callable[[networks.Generator], Mapping[str, float]]


def sample_grid(gan: ganimation.GANimation, samples: dict) -> np.ndarray:
    """Rows of real | attention | color | fake | reconstruction, one row per sample: uint8 [n*S, 5*S, 3].

    Args:
        samples: "real_image" float32 [n, S, S, 3] in [-1, 1]; "real_aus", "target_aus" float32 [n, 17]
            in [0, 1].

    The attention mask is shown in grey (white keeps the input pixel); reconstruction is
    G(fake, real_aus) composed on the fake, as in the cycle loss.
    """
    edited = gan.edit(samples["real_image"], samples["target_aus"])
    reconstructed = gan.edit(edited["fake_image"], samples["real_aus"])
    columns = [pixels.model_to_uint8(samples["real_image"]),
               pixels.unit_to_uint8(np.asarray(edited["attention"], np.float32)),
               pixels.model_to_uint8(edited["color"]), pixels.model_to_uint8(edited["fake_image"]),
               pixels.model_to_uint8(reconstructed["fake_image"])]
    return grids.tile(list(zip(*columns)))


class TrainingMonitor:
    """After each step: TensorBoard scalars, sample grids, evaluation scores, images/s and checkpoints.

    The training loop calls `record` with every step's loss terms, then `after_call` with the last step
    of each call of its step function.

    The chief writes summaries and samples; every worker saves checkpoints (checkpoints.CheckpointWriter).
    Scalars are the mean of each loss term over the finite steps since the previous write.
    """

    def __init__(self, gan: ganimation.GANimation, config: Config, schedule: Schedule, run_dir: pathlib.Path,
                 writer: checkpoints.CheckpointWriter, samples: dict | None, probe: Probe | None = None):
        """samples: the fixed faces of the sample grid (see sample_grid), on the chief; probe: see Probe."""
        self.gan, self.config, self.schedule, self.run_dir = gan, config, schedule, run_dir
        self.checkpoints, self.samples, self.probe = writer, samples, probe
        self.is_chief = writer.is_chief
        self.summary_writer = (tf.summary.create_file_writer(os.fspath(run_dir / run_folder.LOGS_DIR))
                               if self.is_chief else None)
        self.images_per_step = config.data.batch_size * config.data.n_critic
        self._clock = (time.perf_counter(), ganimation.current_step(gan))
        self._sums: dict[str, float] = {}
        self._count = 0
        self.images_per_second = 0.0

    def record(self, logs: dict, skipped: bool) -> None:
        """Adds one step's loss terms to the next scalars' means; skipped: NonFiniteGuard skipped it."""
        if not skipped:
            self._sums = {name: self._sums.get(name, 0.0) + value for name, value in logs.items()}
            self._count += 1

    def after_call(self, step: int, stopping: bool) -> None:
        """Everything due at `step`, the last step of a call (trainer.call_length ends calls at every step
        where something is due); stopping: the run stops after it (a signal), so a checkpoint is due."""
        run = self.config.run
        last = step >= self.schedule.final_step
        if self.is_chief and (step % run.summary_every == 0 or last):
            self._write_scalars(step)
        if self.is_chief and (step % run.sample_every == 0 or last):
            self.write_samples(step)
        if self.is_chief and self.probe is not None and run.eval_every and (step % run.eval_every == 0 or last):
            self.evaluate(step)
        if step % run.checkpoint_every == 0 or step % self.schedule.steps_per_epoch == 0 or last or stopping:
            self.checkpoints.save(step)

    def _write_scalars(self, step: int) -> None:
        start_time, start_step = self._clock
        now = time.perf_counter()
        if step > start_step:
            self.images_per_second = (step - start_step) * self.images_per_step / (now - start_time)
        self._clock = (now, step)
        means = {name: total / self._count for name, total in self._sums.items()} if self._count else {}
        self._sums, self._count = {}, 0
        with self.summary_writer.as_default(step=step):
            for name, value in means.items():
                tf.summary.scalar(f"losses/{name}", value)
            tf.summary.scalar("learning_rate/generator", float(self.gan.generator_optimizer.learning_rate))
            tf.summary.scalar("learning_rate/critic", float(self.gan.critic_optimizer.learning_rate))
            tf.summary.scalar("images_per_second", self.images_per_second)
        logging.info("step %d/%d: %.1f images/s, generator_loss %.4f, critic_loss %.4f", step,
                     self.schedule.final_step, self.images_per_second, means.get("generator_loss", math.nan),
                     means.get("critic_loss", math.nan))

    def evaluate(self, step: int) -> dict[str, float] | None:
        """Runs the probe on the generator and writes its scores; a failing probe is logged, not raised."""
        try:
            scores = self.probe(self.gan.generator)
        except Exception as error:  # an evaluation problem must not stop the training run
            logging.warning("step %d: evaluation failed and was skipped: %s: %s", step, type(error).__name__, error)
            return None
        with self.summary_writer.as_default(step=step):
            for name, value in scores.items():
                tf.summary.scalar(f"evaluation/{name}", value)
        logging.info("step %d evaluation: %s", step, ", ".join(f"{name} {value:.4g}" for name, value in scores.items()))
        return scores

    def write_samples(self, step: int) -> pathlib.Path:
        """The sample grid of `step` as <run_dir>/samples/step_<step>.png and in TensorBoard."""
        grid = sample_grid(self.gan, self.samples)
        path = atomic.write_with(self.run_dir / run_folder.SAMPLES_DIR / f"step_{step:07d}.png",
                                 lambda temporary: Image.fromarray(grid).save(temporary, format="PNG"))
        with self.summary_writer.as_default(step=step):
            tf.summary.image("samples (real | attention | color | fake | reconstruction)", grid[None], step=step)
        return path
