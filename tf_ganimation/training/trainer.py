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
from tf_ganimation.training.strategy import make_strategy, task_of


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
    _render_missing_synthetic_data(config)
    probe = _make_probe(config) if chief else None
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
            step = ganimation.current_step(gan)
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
