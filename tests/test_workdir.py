import dataclasses

import numpy as np
import pytest

from conftest import TINY_MODEL
from tf_ganimation import networks, training, workdir
from tf_ganimation.config import Config, DataConfig, LossConfig


def test_config_round_trips_through_json(tmp_path):
    config = Config(model=TINY_MODEL, loss=LossConfig(lambda_cyc=3.0),
                    data=DataConfig(data_dir="/data/x", image_size=32, batch_size=4))
    workdir.save_config(config, tmp_path)
    assert workdir.load_config(tmp_path) == config


def test_load_generator_rebuilds_the_trained_weights(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    workdir.save_config(config, tmp_path)
    generator = networks.build_generator(TINY_MODEL)
    generator.save_weights(tmp_path / workdir.GENERATOR_WEIGHTS)
    loaded, loaded_config = workdir.load_generator(tmp_path)
    image, aus = np.zeros((1, 32, 32, 3), np.float32), np.ones((1, 17), np.float32)
    np.testing.assert_array_equal(loaded(image, aus)["color"], generator(image, aus)["color"])
    assert loaded_config == config


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        workdir.load_config(tmp_path)
    workdir.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), tmp_path)
    with pytest.raises(FileNotFoundError, match="generator.weights.h5 not found"):
        workdir.load_generator(tmp_path)


def test_load_checkpoint_reads_both_networks_of_a_training_checkpoint(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    workdir.save_config(config, tmp_path)
    gan = training.build_gan(config, training.Schedule(steps_per_epoch=10, total_steps=100, final_step=100,
                                                       decay_steps=50))  # as scripts/train.py builds it
    manager = training.make_checkpoint_manager(gan, tmp_path / workdir.CHECKPOINT_DIR, keep=3)
    manager.save(checkpoint_number=7)
    gan.generator.trainable_variables[0].assign_add(np.ones(gan.generator.trainable_variables[0].shape))
    manager.save(checkpoint_number=9)
    image, aus = np.full((1, 32, 32, 3), 0.3, np.float32), np.ones((1, 17), np.float32)
    generator, critic, _, step = workdir.load_checkpoint(tmp_path)  # "latest"
    assert step == 9
    np.testing.assert_array_equal(generator(image, aus)["color"], gan.generator(image, aus)["color"])
    np.testing.assert_array_equal(critic(image)["aus"], gan.critic(image)["aus"])
    older, _, _, step = workdir.load_checkpoint(tmp_path, "ckpt-7")
    assert step == 7
    assert not np.allclose(older(image, aus)["color"], generator(image, aus)["color"])
    with pytest.raises(FileNotFoundError, match="ckpt-8.*the run has ckpt-7, ckpt-9"):
        workdir.load_checkpoint(tmp_path, "ckpt-8")


def test_load_checkpoint_of_a_run_without_checkpoints_says_so(tmp_path):
    workdir.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoints yet"):
        workdir.load_checkpoint(tmp_path)


def test_load_checkpoint_of_other_networks_names_the_checkpoint(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    wider = Config(model=dataclasses.replace(TINY_MODEL, generator_filters=16), data=config.data)
    schedule = training.Schedule(steps_per_epoch=10, total_steps=100, final_step=100, decay_steps=50)
    training.make_checkpoint_manager(training.build_gan(wider, schedule), tmp_path / workdir.CHECKPOINT_DIR,
                                     keep=1).save(checkpoint_number=3)
    workdir.save_config(config, tmp_path)
    with pytest.raises(ValueError, match="ckpt-3 does not hold the networks of .*config.json"):
        workdir.load_checkpoint(tmp_path)
