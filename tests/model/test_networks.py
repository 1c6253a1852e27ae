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
    kernel = generator.encoder[0].kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.003 and abs(kernel.mean()) < 0.003
    gamma, beta = generator.encoder[1].get_weights()
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
    assert generator.cpu_variants is cpu_variants and critic.trunk[-1].cpu_variant is cpu_variants


def test_weights_files_keep_the_layout_earlier_runs_saved(tmp_path):
    # Keras addresses layers kept in lists by their class names: renaming a class would stop the weights
    # files of earlier runs (critic.weights.h5, generator.weights.h5) from loading.
    import h5py

    critic = networks.build_critic(ModelConfig(image_size=16, critic_filters=8, critic_layers=2))
    generator = networks.build_generator(ModelConfig(image_size=16, generator_filters=8,
                                                     generator_residual_blocks=1, critic_layers=2))
    layouts = {}
    for network in (critic, generator):
        path = tmp_path / f"{network.name}.weights.h5"
        network.save_weights(path)
        with h5py.File(path) as weights:
            layouts[network.name] = (sorted(weights.keys()),
                                     sorted(weights["layers"].keys()) if "layers" in weights else None)
    # The layout of the quick start's critic.weights.h5 and generator.weights.h5 as written by 0.1.
    assert layouts["critic"] == (["aus_head", "layers", "vars"], ["__strided_conv", "__strided_conv_1", "conv2d"])
    assert layouts["generator"] == (["attention_head", "bottleneck", "color_head", "decoder", "encoder", "vars"], None)
