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

Distribution: the loop is a small custom one, `strategy.run(gan.train_step)` in a tf.function,
the same for every strategy (Keras 3.15's fit fails under MultiWorkerMirroredStrategy,
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

import keras
import tensorflow as tf
from absl import logging

from tf_ganimation.core.config import Config
from tf_ganimation.data import inventory, pipeline
from tf_ganimation.evaluation.probe import training_probe
from tf_ganimation.model import ganimation
from tf_ganimation.runs import run_folder
from tf_ganimation.synthetic import synthetic_dataset
from tf_ganimation.training import checkpoints
from tf_ganimation.training.faults import InterruptFlag, NonFiniteGuard
from tf_ganimation.training.monitor import Probe, TrainingMonitor
from tf_ganimation.training.schedule import make_schedule
from tf_ganimation.training.strategy import (global_batch_size, make_strategy, mixed_precision, steps_per_execution,
                                             task_of, uses_xla)


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


def _render_missing_synthetic_data(config: Config) -> None:
    """DataConfig.synthetic_images faces rendered into data_dir when asked and the folder is missing."""
    data = config.data
    if data.synthetic_images and not os.path.isdir(data.data_dir):
        print(f"Rendering {data.synthetic_images} synthetic faces into {data.data_dir} ...", file=sys.stderr)
        synthetic_dataset.make_dataset(data.data_dir, data.synthetic_images, data.image_size, seed=data.seed)


def _make_probe(config: Config) -> Probe | None:
    """The chief's evaluation.probe.SyntheticProbe when RunConfig.eval_every asks for one and the data allows it."""
    if not config.run.eval_every:
        return None
    probe = training_probe(config)
    if probe is None:
        print(f"--eval_every={config.run.eval_every} is ignored: {config.data.data_dir} is not a synthetic "
              f"dataset (no identities.json), so there are no true edits to score against", file=sys.stderr)
    return probe


def train(config: Config, workdir: os.PathLike) -> dict:
    """Trains GANimation on `config.data` into `workdir`, resuming from its latest readable checkpoint.

    First renders DataConfig.synthetic_images synthetic faces into data_dir when that folder is
    missing. With RunConfig.eval_every on a synthetic dataset, the chief scores the generator every
    eval_every steps and at the end (evaluation.probe.training_probe); the scalars go to TensorBoard under
    evaluation/.

    Returns:
        {"step": final step, "interrupted_by": signal number or 0, "images_per_second": float,
         "skipped_steps": steps with a skipped non-finite update, plus every loss term of the last step}.

    Raises:
        faults.NonFiniteLossError: see NonFiniteGuard. checkpoints.CheckpointError: no recorded
            checkpoint is readable.
        ValueError, FileNotFoundError: a bad config, workdir or dataset (inventory.load_examples).
    """
    run_dir = pathlib.Path(workdir)
    if config.run.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(config.run.strategy)  # first: MultiWorkerMirroredStrategy precedes every op
    _, task_id, chief = task_of(config.run)
    batch_size = global_batch_size(config.data, strategy.num_replicas_in_sync)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, batch_size=batch_size))
    _render_missing_synthetic_data(config)
    probe = _make_probe(config) if chief else None
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_resumable(config, run_dir)
    keras.utils.set_random_seed(config.run.seed)
    precision, reason = mixed_precision(config.run)
    logging.info("Precision %s: %s", "float32" if precision == "none" else precision, reason)
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, mixed_precision=precision))
    if precision != "none":
        keras.mixed_precision.set_global_policy(precision)

    examples = inventory.load_examples(config.data)  # logs the data summary: usable and skipped examples
    schedule = make_schedule(config, len(examples.train))
    logging.info("Strategy %s with %d replicas; %d train examples, %d steps per epoch, stopping at step %d",
                 type(strategy).__name__, strategy.num_replicas_in_sync, len(examples.train),
                 schedule.steps_per_epoch, schedule.final_step)
    with strategy.scope():
        gan = ganimation.make_gan(config, schedule.total_steps, schedule.decay_steps)
    checkpoint = ganimation.make_checkpoint(gan)
    checkpoint_dir = run_dir / run_folder.CHECKPOINT_DIR
    if chief:
        checkpoints.remove_unfinished(checkpoint_dir)
    restored = checkpoints.restore_latest(checkpoint, checkpoint_dir)
    step = ganimation.current_step(gan)
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
    interrupted = InterruptFlag()
    logs: dict[str, float] = {}
    # Keras' progress bar with every loss term, on a terminal (logs get absl lines every summary_every steps).
    progress = keras.utils.Progbar(schedule.final_step, verbose=1 if chief and sys.stdout.isatty() else 0,
                                   stateful_metrics=None, unit_name="step")
    if step >= schedule.final_step:
        logging.info("Nothing to do: the run in %s is at step %d of %d", run_dir, step, schedule.final_step)
    jit_compile, steps_per_call = uses_xla(config.run), steps_per_execution(config.run)
    logging.info("XLA %s, up to %d train_steps per call", "on" if jit_compile else "off", steps_per_call)
    with interrupted.installed():
        step_function = make_step_function(gan, strategy, jit_compile, steps_per_call)
        iterator = iter(dataset)
        while step < schedule.final_step:
            steps = call_length(step, steps_per_call, config, schedule)
            try:
                call_logs, call_skipped, stop = step_function(
                    iterator, tf.constant(bool(interrupted.signal_number)), tf.constant(steps, tf.int32))
            except tf.errors.OutOfRangeError as error:  # pipeline.make_training_dataset ends at an epoch of bad files
                raise inventory.EmptyDatasetError(
                    f"the training data ran out after step {step}: no image of a whole epoch decoded, so the files "
                    f"in {config.data.data_dir} changed after the run checked them; run again to check them anew "
                    f"(the last checkpoint is kept)") from error
            call_logs = {name: value.numpy() for name, value in call_logs.items()}  # one transfer per call
            call_skipped = {name: value.numpy() for name, value in call_skipped.items()}
            for index in range(steps):
                step_logs = {name: float(values[index]) for name, values in call_logs.items()}
                skipped = guard.check(step + index + 1, step_logs,
                                      {name: float(values[index]) for name, values in call_skipped.items()},
                                      lambda: (checkpoints.recorded(checkpoint_dir) or [None])[-1])
                monitor.record(step_logs, skipped)
            step = ganimation.current_step(gan)
            logs = step_logs
            stopping = float(stop) > 0 and step < schedule.final_step
            monitor.after_call(step, stopping)
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
