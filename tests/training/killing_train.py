"""scripts/train.py with a hard kill installed, for the fault tests: the process SIGKILLs itself at a
chosen point of the run, as a power cut would stop it.

    TF_GANIMATION_TEST_KILL_AT=step:N python tests/training/killing_train.py <train.py flags>
        SIGKILL right after the call of the step function that reaches train step N (every step is
        a call of its own on CPU), before anything due at that step is written: the trainer's loop
        calls TrainingMonitor.after_call with the call's last step, and after_call writes summaries,
        samples and checkpoints;
    TF_GANIMATION_TEST_KILL_AT=checkpoint:N python tests/training/killing_train.py <train.py flags>
        SIGKILL after checkpoint N's data and index files are written, before the `checkpoint` state
        file records them (CheckpointWriter.save's write callbacks run just there).

Without the variable it is scripts/train.py itself.
"""

from __future__ import annotations

import os
import pathlib
import re
import runpy
import signal
import sys

KILL_AT_VARIABLE = "TF_GANIMATION_TEST_KILL_AT"
TRAIN_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "train.py"


def kill_point() -> tuple[str, int] | None:
    """("step" | "checkpoint", N) from KILL_AT_VARIABLE, or None when it is not set."""
    value = os.environ.get(KILL_AT_VARIABLE)
    if not value:
        return None
    match = re.fullmatch(r"(step|checkpoint):(\d+)", value)
    if not match:
        raise ValueError(f"{KILL_AT_VARIABLE}={value!r} is invalid: expected step:N or checkpoint:N (a test hook)")
    return match.group(1), int(match.group(2))


def kill_self() -> None:
    """SIGKILLs this process: a hard kill, with no handler, no cleanup and no flush of TensorFlow's files."""
    print(f"{KILL_AT_VARIABLE}={os.environ[KILL_AT_VARIABLE]}: killing this process", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: tuple[str, int]) -> None:
    """Wraps the training library so that this process is killed at `point` (see kill_point)."""
    import tensorflow as tf

    from tf_ganimation.training import checkpoints, monitor

    kind, number = point
    if kind == "step":
        after_call = monitor.TrainingMonitor.after_call

        def killing_after_call(self, step, stopping):
            if step >= number:
                kill_self()
            return after_call(self, step, stopping)

        monitor.TrainingMonitor.after_call = killing_after_call
    else:
        save = checkpoints.CheckpointWriter.save

        def killing_save(self, step, options=None):
            if self.is_chief and step == number:
                # CheckpointManager appends its own callback, the one that records the checkpoint, after ours.
                options = tf.train.CheckpointOptions(experimental_write_callbacks=[kill_self])
            return save(self, step, options)

        checkpoints.CheckpointWriter.save = killing_save


if __name__ == "__main__":
    point = kill_point()
    if point is not None:
        install(point)
    sys.argv[0] = os.fspath(TRAIN_SCRIPT)
    runpy.run_path(os.fspath(TRAIN_SCRIPT), run_name="__main__")
