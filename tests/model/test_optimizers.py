"""Tests for tf_ganimation/model/optimizers.py: the schedule, GuardedAdam against Keras' Adam, loss scaling."""

import keras
import numpy as np
import pytest

from tf_ganimation.model import optimizers


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    schedule = optimizers.LinearDecaySchedule(1e-4, total_steps=30, decay_steps=10)
    rates = [float(schedule(step)) for step in (0, 19, 20, 25, 30, 35)]
    np.testing.assert_allclose(rates, [1e-4, 1e-4, 1e-4, 0.5e-4, 0.0, 0.0], atol=1e-12)
    assert optimizers.LinearDecaySchedule.from_config(schedule.get_config()).total_steps == 30


def test_mixed_float16_wraps_the_optimizer_in_loss_scaling():
    assert isinstance(optimizers.make_optimizer(1e-4, 0.5, 0.999, "mixed_float16"), keras.optimizers.LossScaleOptimizer)
    assert not isinstance(optimizers.make_optimizer(1e-4, 0.5, 0.999), keras.optimizers.LossScaleOptimizer)


def test_guarded_adam_matches_keras_adam_to_float32_rounding_and_skips_non_finite_gradients():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4)).astype(np.float32)
    guarded_variable, plain_variable = keras.Variable(start), keras.Variable(start)
    guarded = optimizers.GuardedAdam(learning_rate=1e-2, beta_1=0.5)
    plain = keras.optimizers.Adam(learning_rate=1e-2, beta_1=0.5)
    for _ in range(5):
        gradient = rng.normal(size=(3, 4)).astype(np.float32)
        guarded.apply_gradients([(gradient, guarded_variable)])
        plain.apply_gradients([(gradient, plain_variable)])
    # The same update as Keras' Adam, fused into one kernel: equal up to float32 rounding (1e-4 of the learning
    # rate), not bit for bit.
    np.testing.assert_allclose(guarded_variable.numpy(), plain_variable.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(guarded_variable.numpy(), start, atol=1e-3)  # it did move
    before = [np.array(v.numpy()) for v in (guarded_variable, *guarded.variables[1:])]
    bad = rng.normal(size=(3, 4)).astype(np.float32)
    bad[1, 2] = np.nan
    guarded.apply_gradients([(bad, guarded_variable)])
    bad[1, 2] = np.inf
    guarded.apply_gradients([(bad, guarded_variable)])
    after = [np.array(v.numpy()) for v in (guarded_variable, *guarded.variables[1:])]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # weight, first and second moments
    assert int(guarded.iterations) == 7  # a skipped update still counts (steps stay aligned with data)
    with pytest.raises(ValueError, match="amsgrad"):
        optimizers.GuardedAdam(amsgrad=True)
