"""`train(config, workdir)`: one GANimation training run, resumable, with checkpoints and TensorBoard.

The run folder's layout is described in workdir.py. A run restarted on the same workdir resumes from
its latest readable checkpoint with the same step, optimizer state, learning-rate position and data
position (the training stream restarts at element `step`, see pipeline.make_training_dataset): with
RunConfig.deterministic an interrupted and resumed run ends with the same weights as one that was not.

Faults:
  * A hard kill (SIGKILL, power to the process lost) at any point: the run resumes from its last
    complete checkpoint; checkpoints.py says how.
  * SIGINT/SIGTERM: a checkpoint is saved after the current step, then the run stops.
  * A NaN or Inf loss or gradient: that update is skipped in the graph (gan.py, note 5), so the
    weights stay finite; the run then stops with `NonFiniteLossError` naming the step and the terms,
    leaving the last checkpoint as it was, unless RunConfig.max_nonfinite_skips allows skipping more.

Distribution: the loop is a small custom one, `strategy.run(gan.train_step)` in a tf.function,
the same for every strategy (Keras 3.15's fit fails under MultiWorkerMirroredStrategy,
keras-team/keras#20585). Under multi_worker every worker runs this function with the same config
and workdir (a folder all of them see); the chief (task 0) writes checkpoints, summaries, samples and
the final weights, and every worker saves and restores checkpoints (checkpoints.CheckpointWriter).
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
from typing import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from tf_ganimation.core.config import Config, RunConfig
from tf_ganimation.data import inventory, pipeline
from tf_ganimation.model import ganimation, networks, optimizers
from tf_ganimation.runs import run_folder
from tf_ganimation.training import checkpoints

# Scores a generator during training: {scalar name: value}; evaluation.SyntheticProbe is one.
Probe = Callable[[networks.Generator], Mapping[str, float]]


class NonFiniteLossError(RuntimeError):
    """A loss term or gradient became NaN or Inf more often than RunConfig.max_nonfinite_skips allows."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How many train_steps a run makes. One step = n_critic critic updates + one generator update."""

    steps_per_epoch: int
    total_steps: int  # the learning-rate schedule's length: epochs * steps_per_epoch
    final_step: int  # where this run stops: total_steps, or max_steps when given
    decay_steps: int


def make_schedule(config: Config, num_train_examples: int) -> Schedule:
    steps_per_epoch = pipeline.steps_per_epoch(num_train_examples, config.data)
    total_steps = config.optimizer.epochs * steps_per_epoch
    final_step = config.run.max_steps or total_steps
    return Schedule(steps_per_epoch, total_steps, final_step, config.optimizer.decay_epochs * steps_per_epoch)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MirroredStrategy over every GPU when there are several, else the default (one device).

    multi_worker reads the cluster from the TF_CONFIG environment variable; it must be created before
    TensorFlow runs any op, so `train` creates the strategy first.
    """
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"strategy={name!r} is invalid: expected one of auto, one_device, mirrored, multi_worker")


def task_of(run: RunConfig) -> tuple[str | None, int, bool]:
    """(task type, task id, whether it is the chief) of this process, from TF_CONFIG for multi_worker."""
    if run.strategy != "multi_worker":
        return None, 0, True
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    has_chief = "chief" in resolver.cluster_spec().jobs
    chief = task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return task_type, task_id, chief


def is_chief(run: RunConfig) -> bool:
    """Whether this process writes the run's files: always, except on the non-chief workers of multi_worker."""
    return task_of(run)[2]


def build_gan(config: Config, schedule: Schedule) -> ganimation.GANimation:
    """Networks, the GAN wrapper and both Adam optimizers; call inside the strategy's scope."""
    generator = networks.build_generator(config.model)
    critic = networks.build_critic(config.model)
    gan = ganimation.GANimation(generator, critic, config.loss, seed=config.run.seed)
    n_critic = config.data.n_critic
    optimizer = config.optimizer

    def adam(learning_rate, updates_per_step):
        decay = optimizers.LinearDecaySchedule(learning_rate, schedule.total_steps * updates_per_step,
                                          schedule.decay_steps * updates_per_step)
        return optimizers.make_optimizer(decay, optimizer.beta_1, optimizer.beta_2, config.run.mixed_precision)

    gan.compile(generator_optimizer=adam(optimizer.generator_learning_rate, 1),
                critic_optimizer=adam(optimizer.critic_learning_rate, n_critic),
                jit_compile=config.run.jit_compile)
    return gan


def current_step(gan: ganimation.GANimation) -> int:
    return int(gan.generator_optimizer.iterations.numpy())


# === Checkpoints ===


def load_checkpoint(workdir: os.PathLike, checkpoint: str = "latest"
                    ) -> tuple[networks.Generator, networks.Critic, Config, int]:
    """Both networks of a run as a training checkpoint holds them: (generator, critic, config, step).

    Reads a run that is still training (or was stopped) as well as a finished one (evaluate.py
    --checkpoint). The networks come with both optimizers, built by `build_gan`: ganimation.make_checkpoint
    says why.

    Args:
        checkpoint: "latest" (the newest one the run records), a checkpoint name in
            <workdir>/checkpoints ("ckpt-429"), or a checkpoint path prefix.

    Raises:
        FileNotFoundError: no such checkpoint (the message lists the ones the run has).
        ValueError: the checkpoint holds other networks than the run's config.json describes.
    """
    workdir = pathlib.Path(workdir)
    config = run_folder.load_config(workdir)
    directory = workdir / run_folder.CHECKPOINT_DIR
    gan = build_gan(config, Schedule(steps_per_epoch=1, total_steps=1, final_step=1, decay_steps=0))
    if checkpoint == "latest":
        path = tf.train.latest_checkpoint(os.fspath(directory))
    else:
        path = checkpoint if os.sep in checkpoint else os.fspath(directory / checkpoint)
    if not path or not os.path.isfile(f"{path}.index"):
        found = sorted(index.name[:-len(".index")] for index in directory.glob("*.index"))
        raise FileNotFoundError(f"checkpoint {checkpoint!r} not found in {directory}: the run has "
                                f"{', '.join(found) or 'no checkpoints yet'}")
    try:
        ganimation.make_checkpoint(gan).restore(path).assert_existing_objects_matched()
    except (ValueError, AssertionError) as error:
        raise ValueError(f"{path} does not hold the networks of {workdir / run_folder.CONFIG_FILE}: "
                         f"{error}") from None
    return gan.generator, gan.critic, config, current_step(gan)


# === Monitoring ===


def sample_grid(gan: ganimation.GANimation, samples: dict) -> np.ndarray:
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


class NonFiniteGuard:
    """Decides, after each step, what a NaN/Inf loss term or skipped update means for the run.

    The step itself has already skipped the non-finite updates (gan.py, note 5). The first
    `max_skips` such steps are logged and training goes on; the next one raises NonFiniteLossError.
    """

    def __init__(self, max_skips: int):
        self.max_skips = max_skips
        self.skipped_steps: list[int] = []

    def check(self, step: int, logs: dict, skipped_updates: dict, last_checkpoint=lambda: None) -> bool:
        """True when the step had a non-finite loss or update (and was allowed to be skipped).

        Args:
            step: the step just made.
            logs: loss term -> its value at this step.
            skipped_updates: network -> updates skipped at this step (summed over replicas).
            last_checkpoint: () -> the latest recorded checkpoint's path or None, for the message.

        Raises:
            NonFiniteLossError: more than max_skips such steps; the message names the step and terms.
        """
        terms = {name: value for name, value in logs.items() if not math.isfinite(value)}
        networks_skipped = [name for name, count in skipped_updates.items() if count > 0]
        if not terms and not networks_skipped:
            return False
        found = (", ".join(f"{name}={value}" for name, value in terms.items()) if terms
                 else "finite losses but non-finite gradients")
        skipped = ", ".join(networks_skipped) or "none"
        what = f"step {step}: non-finite loss terms: {found} (updates not applied: {skipped})"
        self.skipped_steps.append(step)
        if len(self.skipped_steps) > self.max_skips:
            path = last_checkpoint()
            kept = f"the last checkpoint, {path}, is kept as it was" if path else "no checkpoint was written yet"
            allowed = f" after skipping {self.max_skips} such steps" if self.max_skips else ""
            raise NonFiniteLossError(
                f"training stopped at {what}{allowed}; {kept}. Lower the learning rates, check the data (the "
                "data summary at the start lists what was skipped), or pass --max_nonfinite_skips=N to skip "
                "up to N such batches")
        logging.warning("Skipping the batch of %s [%d of at most %d]", what, len(self.skipped_steps), self.max_skips)
        print(f"warning: skipped the batch of {what} [{len(self.skipped_steps)} of at most {self.max_skips}]",
              file=sys.stderr)
        return True


class TrainingMonitor:
    """After each step: TensorBoard scalars, sample grids, images/s and checkpoints.

    The chief writes summaries and samples; every worker saves checkpoints (checkpoints.CheckpointWriter).
    Scalars are the mean of each loss term over the finite steps since the previous write.
    """

    def __init__(self, gan, config: Config, schedule: Schedule, run_dir: pathlib.Path,
                 writer: checkpoints.CheckpointWriter, samples: dict | None, probe: Probe | None = None):
        self.gan, self.config, self.schedule, self.run_dir = gan, config, schedule, run_dir
        self.checkpoints, self.samples, self.probe = writer, samples, probe
        self.is_chief = writer.is_chief
        self.summary_writer = (tf.summary.create_file_writer(os.fspath(run_dir / run_folder.LOGS_DIR))
                               if self.is_chief else None)
        self.images_per_step = config.data.batch_size * config.data.n_critic
        self._clock = (time.perf_counter(), current_step(gan))
        self._sums: dict[str, float] = {}
        self._count = 0
        self.images_per_second = 0.0

    def after_step(self, step: int, logs: dict, skipped: bool, stopping: bool) -> None:
        if not skipped:
            self._sums = {name: self._sums.get(name, 0.0) + value for name, value in logs.items()}
            self._count += 1
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
        grid = sample_grid(self.gan, self.samples)
        path = self.run_dir / run_folder.SAMPLES_DIR / f"step_{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(path)
        with self.summary_writer.as_default(step=step):
            tf.summary.image("samples (real | attention | color | fake | reconstruction)", grid[None], step=step)
        return path


# === The loop ===


def make_step_function(gan: ganimation.GANimation, strategy: tf.distribute.Strategy, jit_compile: bool = False):
    """A tf.function(iterator, stop) running one train_step on every replica.

    Returns (logs: name -> loss term of this step, averaged over replicas; skipped: network -> number
    of its updates the non-finite guard skipped, summed over replicas; stop: the number of replicas
    whose process asked to stop, so that every worker stops after the same step).
    """
    trackers = [*gan.metrics, *gan.skipped_updates.values()]

    def replica_step(element, stop):
        for tracker in trackers:  # per-step values, not running means
            tracker.reset_state()
        logs = gan.train_step(element)
        skipped = {name: tracker.result() for name, tracker in gan.skipped_updates.items()}
        return logs, skipped, tf.cast(stop, tf.float32)

    replica_step = tf.function(replica_step, jit_compile=jit_compile)

    @tf.function
    def step(iterator, stop):
        logs, skipped, stop = strategy.run(replica_step, args=(next(iterator), stop))
        mean = lambda value: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
        total = lambda value: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
        return ({name: mean(value) for name, value in logs.items()},
                {name: total(value) for name, value in skipped.items()}, total(stop))

    return step


def _check_resumable(config: Config, run_dir: pathlib.Path) -> None:
    """A workdir holding another experiment's config cannot be resumed with this one's networks."""
    if not (run_dir / run_folder.CONFIG_FILE).is_file():
        return
    previous = run_folder.load_config(run_dir)
    if previous.model != config.model:
        changed = [field.name for field in dataclasses.fields(config.model)
                   if getattr(previous.model, field.name) != getattr(config.model, field.name)]
        raise ValueError(f"{run_dir} holds a run with other network sizes ({', '.join(changed)} differ from "
                         f"its config.json): use another --workdir, or the same sizes to resume it")


def train(config: Config, workdir: os.PathLike, probe: Probe | None = None) -> dict:
    """Trains GANimation on `config.data` into `workdir`, resuming from its latest readable checkpoint.

    `probe` (e.g. evaluation.SyntheticProbe) scores the generator every config.run.eval_every steps
    and at the end, on the chief; its scalars go to TensorBoard under evaluation/.

    Returns:
        {"step": final step, "interrupted_by": signal number or 0, "images_per_second": float,
         "skipped_steps": steps with a skipped non-finite update, plus every loss term of the last step}.

    Raises:
        NonFiniteLossError: see NonFiniteGuard. checkpoints.CheckpointError: no recorded checkpoint
            is readable.
        ValueError, FileNotFoundError: a bad config, workdir or dataset (inventory.load_examples).
    """
    run_dir = pathlib.Path(workdir)
    if config.run.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(config.run.strategy)  # first: MultiWorkerMirroredStrategy precedes every op
    _, task_id, chief = task_of(config.run)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_resumable(config, run_dir)
    keras.utils.set_random_seed(config.run.seed)
    if config.run.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(config.run.mixed_precision)

    examples = inventory.load_examples(config.data)  # logs the data summary: usable and skipped examples
    schedule = make_schedule(config, len(examples.train))
    logging.info("Strategy %s with %d replicas; %d train examples, %d steps per epoch, stopping at step %d",
                 type(strategy).__name__, strategy.num_replicas_in_sync, len(examples.train),
                 schedule.steps_per_epoch, schedule.final_step)
    with strategy.scope():
        gan = build_gan(config, schedule)
    checkpoint = ganimation.make_checkpoint(gan)
    checkpoint_dir = run_dir / run_folder.CHECKPOINT_DIR
    if chief:
        checkpoints.remove_unfinished(checkpoint_dir)
    restored = checkpoints.restore_latest(checkpoint, checkpoint_dir)
    step = current_step(gan)
    if restored:
        print(f"Resuming from step {step} ({restored})", file=sys.stderr)
    if chief:
        run_folder.save_config(config, run_dir)

    dataset = strategy.distribute_datasets_from_function(
        lambda context: pipeline.make_training_dataset(config.data, context, examples, first_step=step))
    samples = None
    if chief:
        samples = pipeline.fixed_samples(config.data, config.run.num_samples, examples=examples)
        samples = {key: value for key, value in samples.items() if key != "id"}
    writer = checkpoints.CheckpointWriter(checkpoint, checkpoint_dir, config.run.keep_checkpoints, task_id, chief)
    monitor = TrainingMonitor(gan, config, schedule, run_dir, writer, samples, probe)
    guard = NonFiniteGuard(config.run.max_nonfinite_skips)
    interrupted = _Interrupted()
    kill_point = checkpoints.kill_point()
    logs: dict[str, float] = {}
    # Keras' progress bar with every loss term, on a terminal (logs get absl lines every summary_every steps).
    progress = keras.utils.Progbar(schedule.final_step, verbose=1 if chief and sys.stdout.isatty() else 0,
                                   stateful_metrics=None, unit_name="step")
    if step >= schedule.final_step:
        logging.info("Nothing to do: the run in %s is at step %d of %d", run_dir, step, schedule.final_step)
    with interrupted.installed():
        step_function = make_step_function(gan, strategy, config.run.jit_compile)
        iterator = iter(dataset)
        while step < schedule.final_step:
            try:
                step_logs, skipped_updates, stop = step_function(iterator, tf.constant(bool(interrupted.signal_number)))
            except tf.errors.OutOfRangeError as error:  # pipeline.make_training_dataset ends at an epoch of bad files
                raise inventory.EmptyDatasetError(
                    f"the training data ran out after step {step}: no image of a whole epoch decoded, so the files "
                    f"in {config.data.data_dir} changed after the run checked them; run again to check them anew "
                    f"(the last checkpoint is kept)") from error
            step = current_step(gan)
            if kill_point == ("step", step):
                checkpoints.kill_self()
            step_logs = {name: float(value) for name, value in step_logs.items()}
            skipped = guard.check(step, step_logs, {name: float(value) for name, value in skipped_updates.items()},
                                  lambda: (checkpoints.recorded(checkpoint_dir) or [None])[-1])
            logs = step_logs
            stopping = float(stop) > 0 and step < schedule.final_step
            monitor.after_step(step, step_logs, skipped, stopping)
            progress.update(step, values=[*step_logs.items(), ("images/s", monitor.images_per_second)])
            if stopping:
                break
    # A run that reached its final step is complete, signal or not. A signal to another worker stops
    # this one too; it counts as SIGTERM here.
    interrupted_by = 0 if step >= schedule.final_step else (interrupted.signal_number or int(signal.SIGTERM))
    if chief and not interrupted_by:
        gan.generator.save_weights(run_dir / run_folder.GENERATOR_WEIGHTS)
        gan.critic.save_weights(run_dir / run_folder.CRITIC_WEIGHTS)
    return {"step": step, "interrupted_by": interrupted_by, "images_per_second": monitor.images_per_second,
            "skipped_steps": len(guard.skipped_steps), **logs}
