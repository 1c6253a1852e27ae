"""GANimation's losses (Pumarola et al. 2018, Sec. 4.2), as pure functions of tensors.

Each returns a float32 scalar that is a mean over the (per-replica) batch, so that every term is
independent of the batch size and the trainer can divide by the number of replicas in one place.

Notes on the weights (LossConfig) against the authors' code: they multiply an AU MSE that is already
averaged over elements by 4000 / batch size, and a TV that is summed over the batch by 1e-5; with
per-example means the same recipe at their batch of 25 is lambda_aus = 160 and lambda_tv = 2.5e-4.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def wasserstein_critic_loss(real_realism: tf.Tensor, fake_realism: tf.Tensor) -> tf.Tensor:
    """-E[D(real)] + E[D(fake)] (Sec. 4.2, image adversarial loss, critic side).

    Args:
        real_realism: float32 [batch, h, w, 1] critic scores of real images (a PatchGAN map).
        fake_realism: float32 [batch, h, w, 1] critic scores of generated images.
    """
    return tf.reduce_mean(fake_realism) - tf.reduce_mean(real_realism)


def wasserstein_generator_loss(fake_realism: tf.Tensor) -> tf.Tensor:
    """-E[D(fake)] (Sec. 4.2, image adversarial loss, generator side)."""
    return -tf.reduce_mean(fake_realism)


def gradient_penalty(critic_realism: Callable[[tf.Tensor], tf.Tensor], real_image: tf.Tensor,
                     fake_image: tf.Tensor, alpha: tf.Tensor | None = None, epsilon: float = 1e-12,
                     loss_scale: tf.Tensor | None = None, with_overflow: bool = False):
    """WGAN-GP penalty (Gulrajani et al. 2017): E[(||grad_x D(x)||_2 - 1)^2] on x between real and fake.

    Args:
        critic_realism: maps images [batch, H, W, C] to realism scores [batch, ...].
        real_image, fake_image: float32 [batch, H, W, C] in [-1, 1].
        alpha: float32 [batch] interpolation weights; drawn from U[0, 1) per example when None.
        epsilon: added inside the square root, so the norm has a finite gradient at 0.
        loss_scale: float32 [] or None. Under float16 the inner derivative is taken of realism * S and
            divided by S afterwards, so that per-pixel gradients stay out of float16's subnormal range
            (the LossScaleOptimizer's dynamic scale S).
        with_overflow: also return whether the scaled inner derivative overflowed (held an Inf or NaN).

    Returns:
        float32 scalar >= 0 (and with_overflow: bool [], where the penalty is computed as if the
        derivative were 0 and the update must be skipped). The gradient is of the sum of the realism
        map over its patches, and its norm is taken per example over all pixels and channels.
    """
    if alpha is None:
        alpha = tf.random.uniform([tf.shape(real_image)[0]], 0.0, 1.0)
    alpha = tf.reshape(tf.cast(alpha, real_image.dtype), [-1, 1, 1, 1])
    interpolated = alpha * real_image + (1.0 - alpha) * fake_image
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        realism = tf.reduce_sum(tf.cast(critic_realism(interpolated), tf.float32))
        if loss_scale is not None:
            realism = realism * tf.cast(loss_scale, tf.float32)
    gradients = tf.cast(tape.gradient(realism, interpolated), tf.float32)
    overflow = tf.constant(False)
    if loss_scale is not None:
        overflow = tf.logical_not(tf.reduce_all(tf.math.is_finite(gradients)))
        gradients = tf.where(overflow, tf.zeros_like(gradients), gradients) / tf.cast(loss_scale, tf.float32)
    norms = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]) + epsilon)
    penalty = tf.reduce_mean(tf.square(norms - 1.0))
    return (penalty, overflow) if with_overflow else penalty


def au_regression_loss(predicted_aus: tf.Tensor, target_aus: tf.Tensor) -> tf.Tensor:
    """Conditional expression loss (Sec. 4.2): mean squared error over examples and AUs.

    Args:
        predicted_aus: float32 [batch, 17], the critic's AU regression.
        target_aus: float32 [batch, 17] in [0, 1].
    """
    return tf.reduce_mean(tf.square(tf.cast(predicted_aus, tf.float32) - tf.cast(target_aus, tf.float32)))


def cycle_consistency_loss(reconstructed_image: tf.Tensor, real_image: tf.Tensor) -> tf.Tensor:
    """Identity loss (Sec. 4.2): mean |G(G(I, y_target), y_source) - I| over pixels, an L1."""
    return tf.reduce_mean(tf.abs(reconstructed_image - real_image))


def attention_mean_loss(attention: tf.Tensor) -> tf.Tensor:
    """The attention loss's saturation term (Sec. 4.2): mean of A, whose minimum is all-colour (A = 0).

    Args:
        attention: float32 [batch, H, W, 1] in [0, 1].

    Notes: the paper writes an L2 norm of A; the authors' code, and we, take the mean of A (an L1 on a
    non-negative mask), which keeps the weight independent of the image size.
    """
    return tf.reduce_mean(attention)


def attention_total_variation_loss(attention: tf.Tensor) -> tf.Tensor:
    """The attention loss's smoothness term (Sec. 4.2): total variation of A.

    Args:
        attention: float32 [batch, H, W, 1] in [0, 1].

    Returns:
        float32 scalar: per example, the sum of |differences| between vertical and between horizontal
        neighbours, averaged over the batch (a constant mask gives 0).

    Notes: the paper squares the differences; the authors' code (and we) take absolute values.
    """
    vertical = tf.reduce_sum(tf.abs(attention[:, 1:, :, :] - attention[:, :-1, :, :]), axis=[1, 2, 3])
    horizontal = tf.reduce_sum(tf.abs(attention[:, :, 1:, :] - attention[:, :, :-1, :]), axis=[1, 2, 3])
    return tf.reduce_mean(vertical + horizontal)
