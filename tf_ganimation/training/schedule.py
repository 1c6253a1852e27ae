"""How many train_steps a run makes, and where its learning rates start to decay.

One step = n_critic critic updates + one generator update, on n_critic global batches.
"""

from __future__ import annotations

import dataclasses

from tf_ganimation.core.config import Config
from tf_ganimation.data import pipeline


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A run's length in train_steps."""

    steps_per_epoch: int
    total_steps: int  # the learning-rate schedule's length: epochs * steps_per_epoch
    final_step: int  # where this run stops: total_steps, or max_steps when given
    decay_steps: int


def make_schedule(config: Config, num_train_examples: int) -> Schedule:
    """The Schedule of `config` on `num_train_examples` training images (pipeline.steps_per_epoch)."""
    steps_per_epoch = pipeline.steps_per_epoch(num_train_examples, config.data)
    total_steps = config.optimizer.epochs * steps_per_epoch
    final_step = config.run.max_steps or total_steps
    return Schedule(steps_per_epoch, total_steps, final_step, config.optimizer.decay_epochs * steps_per_epoch)
