"""Training checkpoints: where a run saves them, what a crash leaves of them, how a run finds its last good one.

A checkpoint holds both networks and both optimizers (ganimation.make_checkpoint); training.train saves one
every RunConfig.checkpoint_every steps, at each epoch's end, at the last step and when a signal stops it.

Faults:
  * A hard kill (SIGKILL, power to the process lost) at any point: tf.train.CheckpointManager writes a
    checkpoint's data and index files first and records them in the `checkpoint` state file last
    (atomically), so a kill leaves the state file pointing at the previous complete checkpoint;
    `restore_latest` reads only what the state file records, and an unreadable one (truncated, deleted)
    falls back to the one before it with a warning. `remove_unfinished` deletes the files of an
    unrecorded checkpoint.
  * Under MultiWorkerMirroredStrategy every worker must call save; the chief writes into the run's
    checkpoint folder, the other workers into a temporary folder that is deleted after each save
    (CheckpointWriter), and all restore from the chief's checkpoints.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import sys

import tensorflow as tf
from absl import logging

from tf_ganimation.model import ganimation

WORKER_CHECKPOINT_DIR = "workertemp_{task_id}"  # inside the checkpoint folder; deleted after each save


class CheckpointError(ValueError):
    """The checkpoint folder records checkpoints, but none of them can be read."""


def make_manager(gan: ganimation.GANimation, directory: os.PathLike, keep: int) -> tf.train.CheckpointManager:
    """A manager of `ganimation.make_checkpoint(gan)` in `directory` keeping the last `keep` checkpoints."""
    return tf.train.CheckpointManager(ganimation.make_checkpoint(gan), os.fspath(directory), max_to_keep=keep)


def recorded(directory: os.PathLike) -> list[str]:
    """The checkpoint paths the folder's `checkpoint` state file records, oldest first ([] if none).

    Relative entries come back joined to `directory` already (tf.train.get_checkpoint_state does it).
    """
    state = tf.train.get_checkpoint_state(os.fspath(directory))
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    return paths


def restore_latest(checkpoint: tf.train.Checkpoint, directory: os.PathLike) -> str | None:
    """Restores the newest readable recorded checkpoint; an unreadable one falls back to the one before.

    Returns:
        The restored checkpoint's path, or None when the folder records none (a new run).

    Raises:
        CheckpointError: checkpoints are recorded but none can be read, or the newest holds other networks.
    """
    candidates = recorded(directory)
    failures = []
    for path in reversed(candidates):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except AssertionError as error:  # readable, but not these networks' (other sizes are caught earlier)
            raise CheckpointError(f"{path} does not hold these networks ({str(error).splitlines()[0]}): a run "
                                  "written before 0.3 converts with `python scripts/upgrade_run.py RUN`") from None
        except Exception as error:  # OpError (missing, bad CRC), IndexError (truncated), ...
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            logging.warning("Checkpoint %s cannot be read (%s): falling back to the one before it", path, reason)
            print(f"warning: checkpoint {path} cannot be read ({reason}); trying the one before it", file=sys.stderr)
            failures.append(f"{os.path.basename(path)}: {reason}")
            continue
        return path
    if failures:
        raise CheckpointError(f"none of the checkpoints recorded in {directory} can be read ({'; '.join(failures)}): "
                              "move that folder away to start the run over, or restore it from a backup")
    return None


def remove_unfinished(directory: os.PathLike) -> list[str]:
    """Removes what interrupted saves left: `ckpt-N_temp` folders, and files of checkpoints newer than
    the newest recorded one that the state file does not record. Returns the removed names.

    Older unrecorded files are left alone (they may be a user's), and nothing is removed when the
    folder has no state file.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    recorded_names = {os.path.basename(path) for path in recorded(directory)}
    numbers = [int(name.rsplit("-", 1)[1]) for name in recorded_names if re.fullmatch(r"ckpt-\d+", name)]
    newest = max(numbers, default=None)
    removed = []
    for entry in sorted(directory.iterdir()):
        match = re.fullmatch(r"(ckpt-(\d+))(_temp|\.index|\.data-\d+-of-\d+)", entry.name)
        if not match:
            continue
        if match.group(3) == "_temp" or (newest is not None and match.group(1) not in recorded_names
                                         and int(match.group(2)) > newest):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            removed.append(entry.name)
    if removed:
        logging.warning("Removed the files of an interrupted checkpoint save in %s: %s", directory, ", ".join(removed))
    return removed


class CheckpointWriter:
    """Saves checkpoints: the chief into the run's checkpoint folder, other workers into a temporary
    folder deleted after each save (MultiWorkerMirroredStrategy needs every worker to save)."""

    def __init__(self, checkpoint: tf.train.Checkpoint, directory: pathlib.Path, keep: int, task_id: int = 0,
                 is_chief: bool = True):
        """task_id, is_chief: this process's place in a multi_worker cluster (training.task_of)."""
        self.is_chief = is_chief
        self.directory = directory if self.is_chief else directory / WORKER_CHECKPOINT_DIR.format(task_id=task_id)
        if not self.is_chief:  # what a killed worker left; its state would make the manager skip a save
            shutil.rmtree(self.directory, ignore_errors=True)
        self.manager = tf.train.CheckpointManager(checkpoint, os.fspath(self.directory), max_to_keep=keep)
        self.last_step = None

    def save(self, step: int, options: tf.train.CheckpointOptions | None = None) -> str | None:
        """Saves checkpoint `step` unless this writer saved it already; returns its path on the chief.

        Args:
            options: passed to CheckpointManager.save. Its `experimental_write_callbacks` run after
                the data and index files are written and before the manager records them in the state
                file (the manager adds its own callback after them).
        """
        if step == self.last_step:
            return None
        path = self.manager.save(checkpoint_number=step, options=options)
        self.last_step = step
        if not self.is_chief:
            shutil.rmtree(self.directory, ignore_errors=True)
            return None
        logging.info("Saved checkpoint %s", path)
        return path
