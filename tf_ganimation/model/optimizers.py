"""The optimizers of both networks: Adam with the paper's schedule, and a guard against NaN updates.

- `LinearDecaySchedule`: constant, then linear decay to zero over the last epochs (paper Sec. 5).
- `GuardedAdam`: Adam that skips a variable's update when its gradient is not finite (the guard of
  ganimation.py, note 5).
- `make_optimizer`: GuardedAdam with the paper's betas, loss-scaled under float16.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="tf_ganimation")
class LinearDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then linear decay to zero over the last `decay_steps` (paper Sec. 5).

    A function of the optimizer's own iteration count, so it resumes exactly from a checkpoint.
    """

    def __init__(self, initial_learning_rate: float, total_steps: int, decay_steps: int):
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.decay_steps <= 0:
            return tf.constant(self.initial_learning_rate, tf.float32)
        remaining = tf.cast(self.total_steps, tf.float32) - step
        fraction = tf.clip_by_value(remaining / float(self.decay_steps), 0.0, 1.0)
        return self.initial_learning_rate * fraction

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
                "decay_steps": self.decay_steps}


@keras.saving.register_keras_serializable(package="tf_ganimation")
class GuardedAdam(keras.optimizers.Adam):
    """Adam that leaves a variable and its two moments unchanged when its gradient holds a NaN or Inf.

    With finite gradients it computes exactly what `keras.optimizers.Adam.update_step` (Keras 3.15)
    computes, bit for bit: the same expressions, each increment multiplied by 1.0. With a non-finite
    gradient every increment is multiplied by 0.0 (and the gradient replaced by zeros first, since
    0 * NaN is NaN), so nothing changes. Works under any tf.distribute strategy: no `tf.cond`.

    Notes: the iteration count still advances on a skipped update (Keras increments it outside
    update_step), so a skipped training step still counts as a step: steps stay aligned with data
    elements and with the learning-rate schedule. Only Adam's bias correction sees the extra count.
    """

    def __init__(self, *args, amsgrad: bool = False, **kwargs):
        if amsgrad:
            raise ValueError("amsgrad=True is invalid for GuardedAdam: expected False")
        super().__init__(*args, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        finite = ops.all(ops.isfinite(gradient))
        keep = ops.cast(finite, variable.dtype)  # 1.0 applies the update, 0.0 skips it
        gradient = ops.where(finite, gradient, ops.zeros_like(gradient))
        local_step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), local_step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        self.assign_add(m, keep * ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, keep * ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        self.assign_sub(variable, keep * ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon)))


def make_optimizer(learning_rate, beta_1: float, beta_2: float, mixed_precision: str = "none"):
    """GuardedAdam with the paper's betas; wrapped in dynamic loss scaling for float16 mixed precision."""
    optimizer = GuardedAdam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2)
    if mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
