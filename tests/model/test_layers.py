"""Tests for tf_ganimation/model/layers.py: instance norm, and each CPU variant against the plain layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.model import layers, networks


def test_instance_norm_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (2, 5, 7, 4)).astype(np.float32)
    layer = layers.InstanceNormalization()
    layer.build(x.shape)
    gamma = rng.normal(size=4).astype(np.float32)
    beta = rng.normal(size=4).astype(np.float32)
    layer.set_weights([gamma, beta])
    mean = x.mean(axis=(1, 2), keepdims=True)
    variance = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(variance + 1e-5) * gamma + beta
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)


def test_critic_matrix_product_path_equals_the_convolution_and_its_penalty_gradient():
    # StridedConv's CPU variant multiplies gathered taps with the kernel on small maps; it must give the same
    # outputs, and the same gradient of the gradient-penalty-style double derivative, as the convolution.
    rng = np.random.default_rng(0)
    layer = layers.StridedConv(8, cpu_variant=True)
    layer.build((None, 8, 6, 4))
    layer.bias.assign(rng.normal(size=8).astype("float32"))
    reference = keras.layers.Conv2D(8, 4, strides=2, padding="same")
    reference.build((None, 8, 6, 4))
    reference.set_weights(layer.get_weights())
    x = tf.constant(rng.normal(size=(3, 8, 6, 4)), tf.float32)

    def penalty_gradient(conv):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = conv(x)
                total = tf.reduce_sum(y * y)
            penalty = tf.reduce_sum(tf.square(inner.gradient(total, x)))
        return y, outer.gradient(penalty, conv.kernel)

    y, gradient = penalty_gradient(layer)
    y_reference, gradient_reference = penalty_gradient(reference)
    assert y.shape == (3, 4, 3, 8)
    np.testing.assert_allclose(y, y_reference, atol=1e-5)
    np.testing.assert_allclose(gradient, gradient_reference, rtol=1e-4, atol=1e-4)
    layer.matmul_below = 0  # the convolution path gives the same numbers too
    np.testing.assert_allclose(layer(x), y_reference, atol=1e-6)
    layer.matmul_below = 8  # an odd side ("same" pads 1 and 2) takes the convolution path
    odd = tf.constant(rng.normal(size=(2, 7, 5, 4)), tf.float32)
    np.testing.assert_allclose(layer(odd), reference(odd), atol=1e-6)


def test_fused_heads_equal_the_two_head_layers(tiny_model_config):
    generator = networks.build_generator(tiny_model_config)
    features = tf.random.stateless_normal([2, 32, 32, tiny_model_config.generator_filters], seed=[1, 2])
    color, attention = generator._heads(features)
    np.testing.assert_allclose(color, generator.color_head(features), atol=1e-5)
    np.testing.assert_allclose(attention, generator.attention_head(features), atol=1e-5)
    for fuse in (True, False):
        fused_color, fused_attention = layers.fused_convolution(
            [generator.color_head, generator.attention_head], features, fuse=fuse)
        np.testing.assert_allclose(fused_color, generator.color_head(features), atol=1e-5)
        assert fused_color.shape == (2, 32, 32, 3) and fused_attention.shape == (2, 32, 32, 1)


def test_strided_conv_plain_variant_is_the_keras_convolution():
    layer = layers.StridedConv(8, cpu_variant=False)
    reference = tf.keras.layers.Conv2D(8, 4, strides=2, padding="same")
    x = tf.random.stateless_normal([2, 8, 8, 4], seed=[3, 4])
    layer.build(x.shape), reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x), reference(x))


def test_cpu_variants_are_chosen_when_no_accelerator_is_visible():
    no_accelerator = not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    assert layers.cpu_variants() is no_accelerator
    assert layers.StridedConv(4).cpu_variant is no_accelerator


def _leaky_relu_derivatives(activation, features, upstream):
    """(activation, its gradient, and the gradient of <gradient, upstream> w.r.t. upstream and features)."""
    features, upstream = tf.constant(features), tf.constant(upstream)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([features, upstream])
        with tf.GradientTape() as inner:
            inner.watch(features)
            outputs = activation(features)
        # A gradient penalty's shape: the first gradient, weighted, differentiated again.
        gradient = inner.gradient(outputs, features, output_gradients=upstream)
        weighted = tf.reduce_sum(gradient * (features + 2.0))
    by_upstream, by_features = outer.gradient(weighted, [upstream, features])
    return [value.numpy() for value in (outputs, gradient, by_upstream, by_features)]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_leaky_relu_and_its_first_and_second_derivatives_equal_keras_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    limits = np.finfo(dtype)
    edges = [0.0, -0.0, limits.smallest_subnormal, -limits.smallest_subnormal, limits.max, -limits.max, np.inf, -np.inf]
    features = np.concatenate([rng.normal(size=500), rng.normal(scale=1e-3, size=20), edges]).astype(dtype)
    upstream = rng.normal(size=features.shape).astype(dtype)
    ours = _leaky_relu_derivatives(lambda x: layers.leaky_relu(x, negative_slope=0.01), features, upstream)
    keras_ops = _leaky_relu_derivatives(lambda x: keras.ops.leaky_relu(x, negative_slope=0.01), features, upstream)
    for name, mine, reference in zip(["outputs", "gradient", "by upstream", "by features"], ours, keras_ops):
        assert mine.dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(mine, reference, err_msg=name)
    assert np.any(ours[0] < 0) and np.any(ours[0] > 0) and np.any(ours[1] != upstream)  # both branches taken


def test_leaky_relu_keeps_a_nan_a_nan():
    # The non-finite guard of the train_step relies on NaN surviving the critic.
    outputs = layers.leaky_relu(tf.constant([np.nan, -1.0, 2.0]), negative_slope=0.01).numpy()
    assert np.isnan(outputs[0]) and outputs[1] == np.float32(-0.01) and outputs[2] == 2.0
