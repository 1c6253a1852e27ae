import os

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
    kernel = generator.encoder_1.convolution.kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.003 and abs(kernel.mean()) < 0.003
    gamma, beta = generator.encoder_1.norm.get_weights()
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(beta, 0.0)


@pytest.mark.parametrize("cpu_variants", [True, False])
def test_both_layer_variants_have_the_same_weights_and_compute_the_same(cpu_variants, tiny_model_config, tmp_path):
    # The device decides how two layers compute (layers.py), never their weights: a checkpoint of one
    # variant restores into the other and gives the same outputs.
    keras.utils.set_random_seed(3)
    generator = networks.Generator(8, 1, cpu_variants=cpu_variants)
    critic = networks.Critic(8, 2, cpu_variants=cpu_variants)
    other_generator = networks.Generator(8, 1, cpu_variants=not cpu_variants)
    other_critic = networks.Critic(8, 2, cpu_variants=not cpu_variants)
    images = tf.random.stateless_uniform([2, 16, 16, 3], seed=[4, 5], minval=-1, maxval=1)
    aus = tf.random.stateless_uniform([2, 17], seed=[6, 7])
    for network, other, args in ((generator, other_generator, (images, aus)), (critic, other_critic, (images,))):
        network(*args), other(*args)
        strip = lambda variable: variable.path.split("/", 1)[1]  # the model's own name is numbered
        assert [(strip(v), v.shape) for v in network.weights] == [(strip(v), v.shape) for v in other.weights]
        path = tmp_path / f"{network.name}.weights.h5"
        network.save_weights(path)
        other.load_weights(path)
        for key, value in network(*args).items():
            np.testing.assert_allclose(other(*args)[key], value, atol=1e-5)
    assert generator.cpu_variants is cpu_variants and critic.conv_2.cpu_variant is cpu_variants


def _save_and_reload(tool, network, fresh, directory, inputs):
    """Saves `network` with a standard tool and reads it back into `fresh`; the number of weights saved."""
    if tool == "tf.train.Checkpoint":
        path = tf.train.Checkpoint(network=network).write(os.fspath(directory / "ckpt"))
        tf.train.Checkpoint(network=fresh).read(path).assert_existing_objects_matched()
        return sum(".ATTRIBUTES/VARIABLE_VALUE" in key and "save_counter" not in key
                   for key in tf.train.list_variables(path) for key in [key[0]])
    if tool == "save_weights":
        import h5py

        path = directory / "network.weights.h5"
        network.save_weights(path)
        fresh.load_weights(path)
        with h5py.File(path) as weights:
            saved = []
            weights.visititems(lambda name, item: saved.append(name) if isinstance(item, h5py.Dataset) else None)
        return len(saved)
    # SavedModel, written by Keras' exporter (TensorFlow's tf.saved_model.save cannot trace a Keras model
    # whose call takes two tensors); restored in the order the exporter keeps the variables.
    specs = [tf.TensorSpec(value.shape, tf.float32) for value in inputs]
    network.export(os.fspath(directory / "saved_model"), format="tf_saved_model", input_signature=specs, verbose=False)
    loaded = tf.saved_model.load(os.fspath(directory / "saved_model"))
    for fresh_variable, variable in zip(fresh.variables, loaded.variables, strict=True):
        fresh_variable.assign(variable)
    served = loaded.serve(*inputs)
    for key, value in network(*inputs).items():
        np.testing.assert_array_equal(served[key].numpy(), value.numpy())
    return len(loaded.variables)


@pytest.mark.parametrize("tool", ["tf.train.Checkpoint", "save_weights", "SavedModel"])
@pytest.mark.parametrize("network_name", ["generator", "critic"])
def test_every_standard_tool_saves_every_weight(tool, network_name, tmp_path):
    config = ModelConfig(image_size=16, generator_filters=8, generator_residual_blocks=2, critic_filters=8,
                         critic_layers=2)
    build = networks.build_generator if network_name == "generator" else networks.build_critic
    keras.utils.set_random_seed(1)
    network = build(config)
    keras.utils.set_random_seed(2)
    fresh = build(config)
    image, aus = _inputs(2, 16)
    inputs = (image, aus) if network_name == "generator" else (image,)
    before = network(*inputs)
    assert any(np.abs(fresh(*inputs)[key] - before[key]).max() > 0 for key in before)
    assert _save_and_reload(tool, network, fresh, tmp_path, inputs) == len(network.weights)
    for fresh_weight, weight in zip(fresh.weights, network.weights):
        np.testing.assert_array_equal(fresh_weight.numpy(), weight.numpy())
    for key, value in before.items():
        np.testing.assert_array_equal(fresh(*inputs)[key].numpy(), value.numpy())


def _critic_update_terms(critic, real_image, fake_image, alpha):
    """Realism, AUs, the gradient penalty and the weights' gradients of a WGAN-GP critic loss."""
    from tf_ganimation.model import losses

    with tf.GradientTape() as tape:
        real, fake = critic(real_image), critic(fake_image)
        penalty = losses.gradient_penalty(lambda x: critic(x)["realism"], real_image, fake_image, alpha)
        loss = (tf.reduce_mean(fake["realism"]) - tf.reduce_mean(real["realism"]) + 10.0 * penalty
                + tf.reduce_mean(tf.square(real["aus"])))
    return [real["realism"], real["aus"], penalty, *tape.gradient(loss, critic.trainable_variables)]


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
def test_critic_activation_gives_keras_leaky_relus_numbers_and_penalty_gradients(traced, monkeypatch):
    # layers.leaky_relu stands in for keras.ops.leaky_relu in the critic; the critic, its gradient
    # penalty and the critic update's weight gradients (second derivatives) must not move by a bit.
    critic = networks.build_critic(ModelConfig(image_size=32, critic_filters=8, critic_layers=3))
    rng = np.random.default_rng(5)
    for variable in critic.trainable_variables:  # non-zero biases, so pre-activations of both signs
        variable.assign(rng.normal(scale=0.05, size=variable.shape).astype(np.float32))
    real_image, fake_image = (tf.constant(_inputs(4, 32, seed)[0]) for seed in (6, 7))
    alpha = tf.constant(rng.uniform(0, 1, 4).astype(np.float32))

    def terms():
        compute = tf.function(_critic_update_terms) if traced else _critic_update_terms
        return [value.numpy() for value in compute(critic, real_image, fake_image, alpha)]

    ours = terms()
    from tf_ganimation.model import layers

    monkeypatch.setattr(layers, "leaky_relu", lambda x, negative_slope: keras.ops.leaky_relu(x, negative_slope))
    reference = terms()
    assert len(ours) == 3 + len(critic.trainable_variables) and 0 < ours[2] < 10
    for mine, expected in zip(ours, reference):
        np.testing.assert_array_equal(mine, expected)


def test_the_critic_updates_graph_optimises_without_a_grappler_error():
    # TensorFlow's LeakyRelu made grappler's remapper reject its rewrite of this graph ("remapper failed:
    # ... LeakyReluGrad ..."), printed as an E line, and drop all of its fusions. The log is C++'s
    # stderr, so the graph is traced in a fresh process.
    import os
    import subprocess
    import sys
    import textwrap

    program = textwrap.dedent("""
        import numpy as np
        import tensorflow as tf
        from tf_ganimation.core.config import ModelConfig
        from tf_ganimation.model import losses, networks

        critic = networks.build_critic(ModelConfig(image_size=32, critic_filters=8, critic_layers=3))
        images = tf.random.stateless_uniform([3, 2, 32, 32, 3], seed=[1, 2], minval=-1, maxval=1)

        @tf.function
        def update(real_image, fake_image, alpha):
            with tf.GradientTape() as tape:
                penalty = losses.gradient_penalty(lambda x: critic(x)["realism"], real_image, fake_image, alpha)
                loss = tf.reduce_mean(critic(fake_image)["realism"]) - tf.reduce_mean(critic(real_image)["realism"])
                loss += 10.0 * penalty
            return tape.gradient(loss, critic.trainable_variables)

        print(sum(gradient is not None for gradient in update(images[0], images[1], images[2, :, 0, 0, 0])))
    """)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["7"]  # the 3 convolutions' kernels and biases, the realism head's kernel
    assert "remapper failed" not in result.stderr and "meta_optimizer" not in result.stderr, result.stderr[-3000:]
