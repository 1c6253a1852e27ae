"""`train(config, workdir)`: one GANimation training run, resumable, with checkpoints and TensorBoard.

The run folder's layout is described in runs/run_folder.py. A run restarted on the same workdir
resumes from its latest readable checkpoint with the same step, optimizer state, learning-rate
position and data position (the training stream restarts at element `step`, see
pipeline.make_training_dataset): with RunConfig.deterministic an interrupted and resumed run ends with
the same weights as one that was not.

Faults:
  * A hard kill (SIGKILL, power to the process lost) at any point: the run resumes from its last
    complete checkpoint; checkpoints.py says how.
  * SIGINT/SIGTERM: a checkpoint is saved after the current step, then the run stops (faults.InterruptFlag).
  * A NaN or Inf loss or gradient: that update is skipped in the graph (ganimation.py, note 5), so the
    weights stay finite; the run then stops with `faults.NonFiniteLossError` naming the step and the
    terms, leaving the last checkpoint as it was, unless RunConfig.max_nonfinite_skips allows skipping more.

`train` is `set_up` (strategy, data, networks, the restored checkpoint, the monitor), then `loop`.

Distribution: the loop is a small custom one, `strategy.run` of `gan.update` in a tf.function
(make_step_function), the same for every strategy (Keras 3.15's fit fails under MultiWorkerMirroredStrategy,
keras-team/keras#20585). Under multi_worker every worker runs this function with the same config
and workdir (a folder all of them see); the chief (task 0) writes checkpoints, summaries, samples and
the final weights, and every worker saves and restores checkpoints (checkpoints.CheckpointWriter).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import signal
import sys
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tf_ganimation.core.config import Config
from tf_ganimation.data import inventory, pipeline
from tf_ganimation.evaluation.probe import training_probe
from tf_ganimation.model import ganimation
from tf_ganimation.runs import run_folder
from tf_ganimation.training import checkpoints
from tf_ganimation.training.faults import InterruptFlag, NonFiniteGuard
from tf_ganimation.training.monitor import Probe, TrainingMonitor
from tf_ganimation.training.schedule import Schedule, make_schedule
from tf_ganimation.training.strategy import (
    global_batch_size,
    make_strategy,
    mixed_precision,
    steps_per_execution,
    task_of,
    uses_xla,
)


def make_step_function(gan: ganimation.GANimation, strategy: tf.distribute.Strategy, jit_compile: bool = False,
                       steps_per_execution: int = 1):
    """A tf.function step(iterator, stop, steps) running `steps` <= steps_per_execution train_steps on
    every replica, in a loop inside the function (one host round trip per call).

    Args:
        jit_compile: compile with XLA. On one device the whole train_step is compiled; over several
            replicas each replica's loss and gradient computations are (ganimation.py, note 7).
        steps_per_execution: the most train_steps one call makes.

    Returns step(iterator, stop: bool [], steps: int32 [] = steps_per_execution) -> (logs: name -> float32 [steps], each
    step's loss terms averaged over replicas; skipped: network -> float32 [steps], its updates the
    non-finite guard skipped, summed over replicas; stop: float32 [], the number of replicas whose
    process asked to stop, so that every worker stops after the same call).
    """
    whole_step = jit_compile and strategy.num_replicas_in_sync == 1
    compile_gradients = functools.partial(tf.function, jit_compile=True) if jit_compile and not whole_step else None

    def replica_step(element):
        return gan.update(element, compile_gradients=compile_gradients)

    if whole_step:
        replica_step = tf.function(replica_step, jit_compile=True)
    mean = lambda value: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
    total = lambda value: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
    names = {"logs": list(gan.trackers), "skipped": list(gan.skipped_updates)}

    @tf.function
    def step(iterator, stop, steps=steps_per_execution):
        arrays = {kind: {name: tf.TensorArray(tf.float32, size=steps) for name in keys} for kind, keys in names.items()}
        for index in tf.range(steps):
            logs, skipped = strategy.run(replica_step, args=(next(iterator),))
            arrays["logs"] = {name: array.write(index, mean(logs[name])) for name, array in arrays["logs"].items()}
            arrays["skipped"] = {name: array.write(index, total(skipped[name]))
                                 for name, array in arrays["skipped"].items()}
        stops = strategy.run(lambda flag: tf.cast(flag, tf.float32), args=(stop,))
        stacked = {kind: {name: array.stack() for name, array in kind_arrays.items()}
                   for kind, kind_arrays in arrays.items()}
        return stacked["logs"], stacked["skipped"], total(stops)

    return step


def call_length(step: int, steps_per_execution: int, config: Config, schedule) -> int:
    """How many train_steps the call starting after `step` makes: up to the next multiple of
    steps_per_execution, but never past the next step at which a checkpoint, summary, sample grid,
    evaluation or epoch end is due, nor past the final step. Every run, resumed or not, thus makes
    its calls end on the same steps, and everything due happens at its own step."""
    run = config.run
    periods = [steps_per_execution, run.checkpoint_every, run.summary_every, run.sample_every,
               schedule.steps_per_epoch, *([run.eval_every] if run.eval_every else [])]
    next_due = min(step + period - step % period for period in periods)
    return min(next_due, schedule.final_step) - step


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


def _make_probe(config: Config) -> Probe | None:
    """The chief's evaluation.probe.SyntheticProbe when RunConfig.eval_every asks for one and the data allows it."""
    if not config.run.eval_every:
        return None
    probe = training_probe(config)
    if probe is None:
        print(f"--eval_every={config.run.eval_every} is ignored: {config.data.data_dir} is not a synthetic "
              f"dataset (no identities.json), so there are no true edits to score against", file=sys.stderr)
    return probe


def _restore(checkpoint: tf.train.Checkpoint, checkpoint_dir: pathlib.Path, gan: ganimation.GANimation,
             chief: bool) -> int:
    """Restores the latest readable checkpoint, if any, after the chief removed an unfinished save; the step."""
    if chief:
        checkpoints.remove_unfinished(checkpoint_dir)
    restored = checkpoints.restore_latest(checkpoint, checkpoint_dir)
    step = ganimation.current_step(gan)
    if restored:
        print(f"Resuming from step {step} ({restored})", file=sys.stderr)
    return step


def _fixed_samples(config: Config, examples) -> dict[str, np.ndarray]:
    """The sample grid's faces (TrainingMonitor.write_samples): the same at every step and on resuming."""
    samples = pipeline.fixed_samples(config.data, config.run.num_samples, examples=examples)
    return {key: value for key, value in samples.items() if key != "id"}


def _set_precision(config: Config) -> Config:
    """Sets Keras' policy to RunConfig.mixed_precision resolved for this machine (strategy.mixed_precision,
    logged with the reason); returns the config with it resolved, as config.json records it."""
    precision, reason = mixed_precision(config.run)
    logging.info("Precision %s: %s", "float32" if precision == "none" else precision, reason)
    if precision != "none":
        keras.mixed_precision.set_global_policy(precision)
    return dataclasses.replace(config, run=dataclasses.replace(config.run, mixed_precision=precision))


@dataclasses.dataclass
class TrainingRun:
    """A run ready for its first step, as `set_up` leaves it for `loop`."""

    config: Config  # data.batch_size is the global batch (strategy.global_batch_size)
    run_dir: pathlib.Path
    chief: bool
    schedule: Schedule
    gan: ganimation.GANimation
    checkpoint_dir: pathlib.Path
    dataset: tf.distribute.DistributedDataset  # starts at the restored step's element
    step_function: Callable  # make_step_function's
    steps_per_call: int
    monitor: TrainingMonitor
    guard: NonFiniteGuard


def set_up(config: Config, run_dir: pathlib.Path) -> TrainingRun:
    """Everything before the first step: strategy, data, networks, the restored checkpoint, the monitor."""
    if config.run.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(config.run.strategy)  # first: MultiWorkerMirroredStrategy precedes every op
    _, task_id, chief = task_of(config.run)
    batch_size = global_batch_size(config.data, strategy.num_replicas_in_sync)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, batch_size=batch_size))
    probe = _make_probe(config) if chief else None
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_resumable(config, run_dir)
    keras.utils.set_random_seed(config.run.seed)
    config = _set_precision(config)

    examples = inventory.load_examples(config.data)  # logs the data summary: usable and skipped examples
    schedule = make_schedule(config, len(examples.train))
    logging.info("Strategy %s with %d replicas; %d train examples, %d steps per epoch, stopping at step %d",
                 type(strategy).__name__, strategy.num_replicas_in_sync, len(examples.train),
                 schedule.steps_per_epoch, schedule.final_step)
    with strategy.scope():
        gan = ganimation.make_gan(config, schedule.total_steps, schedule.decay_steps)
    checkpoint = ganimation.make_checkpoint(gan)
    checkpoint_dir = run_dir / run_folder.CHECKPOINT_DIR
    step = _restore(checkpoint, checkpoint_dir, gan, chief)
    if chief:
        run_folder.save_config(config, run_dir)

    dataset = strategy.distribute_datasets_from_function(
        lambda context: pipeline.make_training_dataset(config.data, context, examples, first_step=step))
    writer = checkpoints.CheckpointWriter(checkpoint, checkpoint_dir, config.run.keep_checkpoints, task_id, chief)
    samples = _fixed_samples(config, examples) if chief else None
    jit_compile, steps_per_call = uses_xla(config.run), steps_per_execution(config.run)
    logging.info("XLA %s, up to %d train_steps per call", "on" if jit_compile else "off", steps_per_call)
    return TrainingRun(config, run_dir, chief, schedule, gan, checkpoint_dir, dataset,
                       make_step_function(gan, strategy, jit_compile, steps_per_call), steps_per_call,
                       TrainingMonitor(gan, config, schedule, run_dir, writer, samples, probe),
                       NonFiniteGuard(config.run.max_nonfinite_skips))


def _call(run: TrainingRun, iterator, interrupted: InterruptFlag, step: int, steps: int):
    """One call of run.step_function making `steps` train_steps after `step`: (logs, skipped, stop) as numpy."""
    try:
        logs, skipped, stop = run.step_function(iterator, tf.constant(bool(interrupted.signal_number)),
                                                tf.constant(steps, tf.int32))
    except tf.errors.OutOfRangeError as error:  # pipeline.make_training_dataset ends at an epoch of bad files
        raise inventory.EmptyDatasetError(
            f"the training data ran out after step {step}: no image of a whole epoch decoded, so the files "
            f"in {run.config.data.data_dir} changed after the run checked them; run again to check them anew "
            f"(the last checkpoint is kept)") from error
    to_numpy = lambda values: {name: value.numpy() for name, value in values.items()}  # one transfer per call
    return to_numpy(logs), to_numpy(skipped), float(stop)


def loop(run: TrainingRun, interrupted: InterruptFlag) -> tuple[int, dict[str, float]]:
    """Trains from the restored step to the final one, or until a signal; (the last step, its loss terms).

    Each call makes call_length train_steps; then every step's loss terms go through the non-finite
    guard to the monitor, which writes what is due at the call's last step.
    """
    step, final_step, logs = ganimation.current_step(run.gan), run.schedule.final_step, {}
    if step >= final_step:
        logging.info("Nothing to do: the run in %s is at step %d of %d", run.run_dir, step, final_step)
    # Keras' progress bar with every loss term, on a terminal (logs get absl lines every summary_every steps).
    progress = keras.utils.Progbar(final_step, verbose=1 if run.chief and sys.stdout.isatty() else 0,
                                   stateful_metrics=None, unit_name="step")
    last_checkpoint = lambda: (checkpoints.recorded(run.checkpoint_dir) or [None])[-1]
    iterator = iter(run.dataset)
    while step < final_step:
        steps = call_length(step, run.steps_per_call, run.config, run.schedule)
        call_logs, call_skipped, stop = _call(run, iterator, interrupted, step, steps)
        for index in range(steps):
            logs = {name: float(values[index]) for name, values in call_logs.items()}
            skipped = {name: float(values[index]) for name, values in call_skipped.items()}
            run.monitor.record(logs, run.guard.check(step + index + 1, logs, skipped, last_checkpoint))
        step = ganimation.current_step(run.gan)
        stopping = stop > 0 and step < final_step
        run.monitor.after_call(step, stopping)
        progress.update(step, values=[*logs.items(), ("images/s", run.monitor.images_per_second)])
        if stopping:
            break
    return step, logs


def train(config: Config, workdir: os.PathLike) -> dict:
    """Trains GANimation on `config.data` into `workdir`, resuming from its latest readable checkpoint.

    `config.data.data_dir` must hold a dataset: DataConfig.synthetic_images faces are rendered by the
    training script before it calls this (synthetic_dataset.render_missing). With RunConfig.eval_every
    on a synthetic dataset, the chief scores the generator every eval_every steps and at the end
    (evaluation.probe.training_probe); the scalars go to TensorBoard under evaluation/.

    Returns:
        {"step": final step, "interrupted_by": signal number or 0, "images_per_second": float,
         "skipped_steps": steps with a skipped non-finite update, plus every loss term of the last step}.

    Raises:
        faults.NonFiniteLossError: see NonFiniteGuard. checkpoints.CheckpointError: no recorded
            checkpoint is readable.
        ValueError, FileNotFoundError: a bad config, workdir or dataset (inventory.load_examples).
    """
    previous_policy = keras.mixed_precision.global_policy()  # set_up sets the run's; restored at the end
    try:
        run = set_up(config, pathlib.Path(workdir))
        interrupted = InterruptFlag()
        with interrupted.installed():
            step, logs = loop(run, interrupted)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    # A run that reached its final step is complete, signal or not. A signal to another worker stops
    # this one too; it counts as SIGTERM here.
    interrupted_by = 0 if step >= run.schedule.final_step else (interrupted.signal_number or int(signal.SIGTERM))
    if run.chief and not interrupted_by:
        run.gan.generator.save_weights(run.run_dir / run_folder.GENERATOR_WEIGHTS)
        run.gan.critic.save_weights(run.run_dir / run_folder.CRITIC_WEIGHTS)
    return {"step": step, "interrupted_by": interrupted_by, "images_per_second": run.monitor.images_per_second,
            "skipped_steps": len(run.guard.skipped_steps), **logs}
