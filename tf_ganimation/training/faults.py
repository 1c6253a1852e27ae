"""What a training run does about the faults it can see coming: NaN/Inf losses and stop signals.

  * A NaN or Inf loss or gradient: the step itself has already skipped that update (ganimation.py,
    note 5), so the weights stay finite; `NonFiniteGuard` then lets the run go on for up to
    RunConfig.max_nonfinite_skips such steps and stops it with `NonFiniteLossError` at the next one.
  * SIGINT/SIGTERM: `InterruptFlag` turns them into a flag the loop checks after each step, so the
    run saves a checkpoint and stops instead of dying mid-step.

Hard kills cannot be seen coming; checkpoints.py says how a run survives them.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys

from absl import logging


class NonFiniteLossError(RuntimeError):
    """A loss term or gradient became NaN or Inf more often than RunConfig.max_nonfinite_skips allows."""


class NonFiniteGuard:
    """Decides, after each step, what a NaN/Inf loss term or skipped update means for the run.

    The step itself has already skipped the non-finite updates (ganimation.py, note 5). The first
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


class InterruptFlag:
    """Turns SIGINT/SIGTERM into a flag the training loop checks after each step.

    `signal_number` is 0 until a signal arrives while `installed()`, then that signal's number.
    """

    def __init__(self):
        self.signal_number = 0

    @contextlib.contextmanager
    def installed(self):
        """Handles SIGINT and SIGTERM inside the block; the previous handlers come back after it."""

        def handle(signal_number, frame):
            logging.warning("Received signal %d: saving a checkpoint after this step, then stopping.", signal_number)
            self.signal_number = signal_number

        previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
