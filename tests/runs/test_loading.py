import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.model import ganimation, networks
from tf_ganimation.runs import loading, run_folder
from tf_ganimation.training import checkpoints

from conftest import TINY_MODEL

IMAGE, AUS = np.full((1, 32, 32, 3), 0.3, np.float32), np.ones((1, 17), np.float32)


def test_load_generator_rebuilds_the_trained_weights(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    run_folder.save_config(config, tmp_path)
    generator = networks.build_generator(TINY_MODEL)
    generator.save_weights(tmp_path / run_folder.GENERATOR_WEIGHTS)
    loaded, loaded_config = loading.load_generator(tmp_path)
    image, aus = np.zeros((1, 32, 32, 3), np.float32), np.ones((1, 17), np.float32)
    np.testing.assert_array_equal(loaded(image, aus)["color"], generator(image, aus)["color"])
    assert loaded_config == config


def test_load_critic_rebuilds_the_trained_weights(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    run_folder.save_config(config, tmp_path)
    critic = networks.build_critic(TINY_MODEL)
    critic.save_weights(tmp_path / run_folder.CRITIC_WEIGHTS)
    loaded, loaded_config = loading.load_critic(tmp_path)
    np.testing.assert_array_equal(loaded(IMAGE)["aus"], critic(IMAGE)["aus"])
    assert loaded_config == config


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        loading.load_generator(tmp_path)
    run_folder.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), tmp_path)
    with pytest.raises(FileNotFoundError, match="generator.weights.h5 not found"):
        loading.load_generator(tmp_path)
    with pytest.raises(FileNotFoundError, match="critic.weights.h5 not found"):
        loading.load_critic(tmp_path)


# === Reading checkpoints (evaluate.py --checkpoint) ===


def test_load_checkpoint_reads_both_networks_of_a_training_checkpoint(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    run_folder.save_config(config, tmp_path)
    gan = ganimation.make_gan(config, total_steps=100, decay_steps=50)  # as training builds it
    manager = checkpoints.make_manager(gan, tmp_path / run_folder.CHECKPOINT_DIR, keep=3)
    gan.train_steps.assign(7)  # the step, as a training run saves it
    manager.save(checkpoint_number=7)
    gan.generator.trainable_variables[0].assign_add(np.ones(gan.generator.trainable_variables[0].shape))
    gan.train_steps.assign(9)
    manager.save(checkpoint_number=9)
    generator, critic, _, step = loading.load_checkpoint(tmp_path)  # "latest"
    assert step == 9
    np.testing.assert_array_equal(generator(IMAGE, AUS)["color"], gan.generator(IMAGE, AUS)["color"])
    np.testing.assert_array_equal(critic(IMAGE)["aus"], gan.critic(IMAGE)["aus"])
    older, _, _, step = loading.load_checkpoint(tmp_path, "ckpt-7")
    assert step == 7
    assert not np.allclose(older(IMAGE, AUS)["color"], generator(IMAGE, AUS)["color"])
    with pytest.raises(FileNotFoundError, match="ckpt-8.*the run has ckpt-7, ckpt-9"):
        loading.load_checkpoint(tmp_path, "ckpt-8")


def test_load_checkpoint_reads_a_checkpoint_path_prefix(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    run_folder.save_config(config, tmp_path)
    gan = ganimation.make_gan(config, total_steps=100, decay_steps=50)
    gan.train_steps.assign(4)
    path = checkpoints.make_manager(gan, tmp_path / "elsewhere", keep=1).save(checkpoint_number=4)
    generator, _, _, step = loading.load_checkpoint(tmp_path, path)
    assert step == 4
    np.testing.assert_array_equal(generator(IMAGE, AUS)["color"], gan.generator(IMAGE, AUS)["color"])


def test_load_checkpoint_of_a_run_without_checkpoints_says_so(tmp_path):
    run_folder.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoints yet"):
        loading.load_checkpoint(tmp_path)


def test_load_checkpoint_of_other_networks_names_the_checkpoint(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    wider = Config(model=dataclasses.replace(TINY_MODEL, generator_filters=16), data=config.data)
    checkpoints.make_manager(ganimation.make_gan(wider, total_steps=100, decay_steps=50),
                             tmp_path / run_folder.CHECKPOINT_DIR, keep=1).save(checkpoint_number=3)
    run_folder.save_config(config, tmp_path)
    with pytest.raises(ValueError, match="ckpt-3 does not hold the networks of .*config.json"):
        loading.load_checkpoint(tmp_path)


def test_checkpoints_keep_their_top_level_object_names(tmp_path):
    # The top-level names are the contract between training, the readers and scripts/upgrade_run.py.
    gan = ganimation.make_gan(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), total_steps=1, decay_steps=0)
    path = checkpoints.make_manager(gan, tmp_path, keep=1).save(checkpoint_number=1)
    names = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
    assert names == {"generator", "critic", "generator_optimizer", "critic_optimizer", "_CHECKPOINTABLE_OBJECT_GRAPH",
                     "save_counter", "train_steps"}
