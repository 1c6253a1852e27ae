import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.model import losses


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.99])
def test_gradient_penalty_of_a_linear_critic_is_known(alpha):
    # D(x) = 2x: the gradient is 2 at every pixel whatever alpha is, so its norm over a 2x2x1 image is
    # 2 * sqrt(4) = 4 and the penalty (4 - 1)^2 = 9; over a one-pixel image (2 - 1)^2 = 1.
    real = tf.constant(np.random.default_rng(0).normal(size=(3, 2, 2, 1)), tf.float32)
    fake = tf.constant(np.random.default_rng(1).normal(size=(3, 2, 2, 1)), tf.float32)
    penalty = losses.gradient_penalty(lambda x: 2.0 * x, real, fake, alpha=tf.fill([3], alpha))
    assert penalty.numpy() == pytest.approx(9.0, rel=1e-6)
    one_pixel = losses.gradient_penalty(lambda x: 2.0 * x, real[:, :1, :1], fake[:, :1, :1], alpha=tf.fill([3], alpha))
    assert one_pixel.numpy() == pytest.approx(1.0, rel=1e-6)


def test_gradient_penalty_is_finite_for_a_constant_critic():
    real = tf.zeros((2, 4, 4, 3))
    penalty = losses.gradient_penalty(lambda x: 0.0 * x + 1.0, real, real)
    assert penalty.numpy() == pytest.approx(1.0, rel=1e-5)  # (sqrt(0 + eps) - 1)^2


def test_gradient_penalty_draws_alpha_per_example():
    real, fake = tf.zeros((64, 1, 1, 1)), tf.ones((64, 1, 1, 1))
    # D(x) = x^2: gradient 2x = 2(1 - alpha) differs between examples only if alpha does.
    tf.random.set_seed(3)
    penalty = losses.gradient_penalty(lambda x: tf.square(x), real, fake)
    constant = [losses.gradient_penalty(lambda x: tf.square(x), real, fake, alpha=tf.fill([64], a)).numpy()
                for a in (0.0, 0.5)]
    assert penalty.numpy() not in constant and 0.0 < penalty.numpy() < 1.0


def test_wasserstein_terms_on_fixed_scores():
    real = tf.constant([[[[1.0]], [[3.0]]]])  # mean 2
    fake = tf.constant([[[[-1.0]], [[0.0]]]])  # mean -0.5
    assert losses.wasserstein_critic_loss(real, fake).numpy() == pytest.approx(-2.5)
    assert losses.wasserstein_generator_loss(fake).numpy() == pytest.approx(0.5)


def test_au_and_cycle_losses_are_element_means():
    predicted = tf.constant([[0.0, 1.0], [1.0, 1.0]])
    target = tf.constant([[0.0, 0.0], [0.0, 1.0]])
    assert losses.au_regression_loss(predicted, target).numpy() == pytest.approx(0.5)
    assert losses.cycle_consistency_loss(2.0 * target, target).numpy() == pytest.approx(0.25)


def test_attention_terms():
    constant = tf.fill((2, 5, 5, 1), 0.7)
    assert losses.attention_total_variation_loss(constant).numpy() == 0.0
    assert losses.attention_mean_loss(constant).numpy() == pytest.approx(0.7)
    # One example with a single 1 in the middle of zeros: 4 neighbours differ by 1; the other constant.
    mask = np.zeros((2, 5, 5, 1), np.float32)
    mask[0, 2, 2, 0] = 1.0
    assert losses.attention_total_variation_loss(tf.constant(mask)).numpy() == pytest.approx(4.0 / 2)


def test_losses_do_not_depend_on_the_batch_size():
    rng = np.random.default_rng(4)
    attention = rng.uniform(size=(3, 6, 6, 1)).astype(np.float32)
    doubled = np.concatenate([attention, attention])
    for loss in (losses.attention_total_variation_loss, losses.attention_mean_loss):
        assert loss(tf.constant(doubled)).numpy() == pytest.approx(loss(tf.constant(attention)).numpy(), rel=1e-6)


def test_gradient_penalty_loss_scaling_keeps_float16_gradients_out_of_the_subnormal_range():
    # realism = 1e-7 * float16(1024 x): its float16 backward pass carries 1e-7, which float16 can only hold
    # as a subnormal (steps of 6e-8: it becomes 1.19e-7). Taken of realism * 1024, the same pass carries
    # 1.024e-4, a normal float16 number, and the pixel gradient 1.024e-4 comes out right.
    real = tf.zeros([2, 4, 4, 1], tf.float32)
    fake = tf.ones([2, 4, 4, 1], tf.float32)
    critic = lambda x: 1e-7 * tf.cast(tf.cast(x, tf.float16) * tf.constant(1024.0, tf.float16), tf.float32)
    alpha = tf.fill([2], 0.5)
    exact = (1.0 - np.sqrt(16 * 1.024e-4 ** 2 + 1e-12)) ** 2  # 16 pixels of gradient 1.024e-4
    unscaled = float(losses.gradient_penalty(critic, real, fake, alpha))
    assert abs(unscaled - exact) > 1e-4  # the subnormal rounding, visible in the penalty
    scaled, overflow = losses.gradient_penalty(critic, real, fake, alpha, loss_scale=tf.constant(1024.0),
                                               with_overflow=True)
    assert not bool(overflow)
    assert float(scaled) == pytest.approx(exact, rel=2e-6)
    # Finite in float32 but Inf in float16 once scaled: reported as an overflow, with a finite penalty.
    penalty, overflow = losses.gradient_penalty(critic, real, fake, alpha, loss_scale=tf.constant(2.0 ** 40),
                                                with_overflow=True)
    assert bool(overflow) and np.isfinite(float(penalty))
    # A float32 critic: the same penalty with or without a scale.
    plain = losses.gradient_penalty(lambda x: 2.0 * x, real, fake, alpha)
    assert float(losses.gradient_penalty(lambda x: 2.0 * x, real, fake, alpha, loss_scale=tf.constant(8.0))) == \
        pytest.approx(float(plain), rel=1e-6)
