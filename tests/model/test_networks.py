import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.core.config import ModelConfig
from tf_ganimation.model import networks


def _inputs(batch, size, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32),
            rng.uniform(0, 1, (batch, 17)).astype(np.float32))


def test_paper_sizes_have_the_papers_parameter_counts():
    config = ModelConfig()
    assert networks.build_generator(config).count_params() == 8_471_296
    assert networks.build_critic(config).count_params() == 44_860_352


def test_generator_outputs_shapes_and_ranges(tiny_model_config):
    generator = networks.build_generator(tiny_model_config)
    image, aus = _inputs(3, 32)
    outputs = generator(image, aus)
    assert set(outputs) == {"color", "attention"}
    color, attention = outputs["color"].numpy(), outputs["attention"].numpy()
    assert color.shape == (3, 32, 32, 3) and color.dtype == np.float32
    assert attention.shape == (3, 32, 32, 1) and attention.dtype == np.float32
    assert -1 <= color.min() and color.max() <= 1
    assert 0 <= attention.min() and attention.max() <= 1
    # The AUs condition the output.
    other = generator(image, 1.0 - aus)
    assert np.abs(other["color"].numpy() - color).max() > 1e-4


def test_generator_treats_examples_independently(tiny_model_config):
    generator = networks.build_generator(tiny_model_config)
    image, aus = _inputs(4, 32)
    batched = generator(image, aus)["color"].numpy()
    single = generator(image[2:3], aus[2:3])["color"].numpy()
    np.testing.assert_allclose(batched[2:3], single, atol=1e-5)


@pytest.mark.parametrize("size", [8, 16, 40])
def test_critic_works_at_batch_one_and_any_multiple_of_its_stride(size):
    critic = networks.Critic(filters=8, layers_count=3)
    outputs = critic(np.zeros((1, size, size, 3), np.float32))
    assert outputs["realism"].shape == (1, size // 8, size // 8, 1)
    assert outputs["aus"].shape == (1, 17)


def test_critic_rejects_a_size_it_cannot_divide():
    with pytest.raises(ValueError, match="multiples of 2\\*\\*layers_count = 8"):
        networks.Critic(filters=8, layers_count=3)(np.zeros((1, 12, 12, 3), np.float32))


def test_instance_norm_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (2, 5, 7, 4)).astype(np.float32)
    layer = networks.InstanceNormalization()
    layer.build(x.shape)
    gamma = rng.normal(size=4).astype(np.float32)
    beta = rng.normal(size=4).astype(np.float32)
    layer.set_weights([gamma, beta])
    mean = x.mean(axis=(1, 2), keepdims=True)
    variance = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(variance + 1e-5) * gamma + beta
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)


def test_compose_keeps_the_input_where_attention_is_one():
    rng = np.random.default_rng(2)
    image = rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
    color = rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
    ones = np.ones((2, 4, 4, 1), np.float32)
    np.testing.assert_array_equal(networks.compose(image, color, ones), image)
    np.testing.assert_array_equal(networks.compose(image, color, 0 * ones), color)
    np.testing.assert_allclose(networks.compose(image, color, 0.25 * ones), 0.25 * image + 0.75 * color, atol=1e-7)


def test_get_config_round_trip(tiny_model_config):
    generator = networks.build_generator(tiny_model_config)
    critic = networks.build_critic(tiny_model_config)
    assert networks.Generator.from_config(generator.get_config()).get_config() == generator.get_config()
    rebuilt = networks.Critic.from_config(critic.get_config())
    assert (rebuilt.filters, rebuilt.layers_count, rebuilt.num_aus) == (8, 3, 17)


def test_saved_weights_reload_to_identical_outputs(tiny_model_config, tmp_path):
    image, aus = _inputs(2, 32)
    generator = networks.build_generator(tiny_model_config)
    generator.save_weights(tmp_path / "generator.weights.h5")
    reloaded = networks.build_generator(tiny_model_config)
    assert np.abs(reloaded(image, aus)["color"].numpy() - generator(image, aus)["color"].numpy()).max() > 0
    reloaded.load_weights(tmp_path / "generator.weights.h5")
    for key in ("color", "attention"):
        np.testing.assert_array_equal(reloaded(image, aus)[key].numpy(), generator(image, aus)[key].numpy())


def test_initialisation_is_the_authors():
    generator = networks.Generator(filters=8, residual_blocks=1)
    generator(np.zeros((1, 16, 16, 3), np.float32), np.zeros((1, 17), np.float32))
    kernel = generator.encoder[0].kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.003 and abs(kernel.mean()) < 0.003
    gamma, beta = generator.encoder[1].get_weights()
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(beta, 0.0)


def test_critic_matrix_product_path_equals_the_convolution_and_its_penalty_gradient():
    # _StridedConv multiplies gathered taps with the kernel on small maps; it must give the same
    # outputs, and the same gradient of the gradient-penalty-style double derivative, as the convolution.
    rng = np.random.default_rng(0)
    layer = networks._StridedConv(8)
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
