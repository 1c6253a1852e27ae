"""The optimizers of both networks: Adam with the paper's schedule, and a guard against NaN updates.

- `LinearDecaySchedule`: constant, then linear decay to zero over the last epochs (paper Sec. 5).
- `GuardedAdam`: Adam in one fused kernel per variable, skipping a variable's update when its gradient
  is not finite (the guard of ganimation.py, note 5).
- `make_optimizer`: GuardedAdam with the paper's betas, loss-scaled under float16.
"""

from __future__ import annotations

import keras
import tensorflow as tf


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
    """Adam in one fused kernel per variable, leaving a variable and its two moments unchanged when its
    gradient holds a NaN or Inf.

    Each update is TensorFlow's fused `ResourceApplyAdam` (Kingma and Ba's update with Keras' epsilon,
    the same formula as `keras.optimizers.Adam`): one kernel per variable instead of Keras' dozen
    element-wise ops, so a train_step dispatches far fewer ops (BENCHMARKS.md, ops per step) and reads
    each weight once. With a non-finite gradient the same kernel runs with learning rate 0 and both
    betas 1 on a zero gradient, which leaves the variable and both moments exactly as they were.
    Works under any tf.distribute strategy and inside XLA: no `tf.cond`.

    Notes: the fused kernel rounds differently from Keras' op-by-op Adam (about 1e-6 relative after 50
    updates in float32). The iteration count still advances on a skipped update (Keras increments it
    outside update_step); only Adam's bias correction sees the extra count. Training counts its steps
    with its own variable (`GANimation.train_steps`), not with this count.
    """

    def __init__(self, *args, amsgrad: bool = False, **kwargs):
        if amsgrad:
            raise ValueError("amsgrad=True is invalid for GuardedAdam: expected False")
        super().__init__(*args, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = tf.cast(gradient, dtype)
        finite = tf.reduce_all(tf.math.is_finite(gradient))
        one, zero = tf.constant(1.0, dtype), tf.constant(0.0, dtype)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]), v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, local_step), beta2_power=tf.pow(beta_2, local_step),
            lr=tf.where(finite, tf.cast(learning_rate, dtype), zero),
            beta1=tf.where(finite, beta_1, one), beta2=tf.where(finite, beta_2, one),
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.where(finite, gradient, tf.zeros_like(gradient)))


def _handle(variable) -> tf.Tensor:
    """The resource handle of a Keras or TensorFlow variable (inside `strategy.extended.update`: this device's)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def make_optimizer(learning_rate, beta_1: float, beta_2: float, mixed_precision: str = "none"):
    """GuardedAdam with the paper's betas; wrapped in dynamic loss scaling for float16 mixed precision."""
    optimizer = GuardedAdam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2)
    if mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
