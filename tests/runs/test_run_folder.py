import numpy as np
import pytest
from conftest import TINY_MODEL

from tf_ganimation.core.config import Config, DataConfig, LossConfig
from tf_ganimation.model import networks
from tf_ganimation.runs import run_folder


def test_config_round_trips_through_json(tmp_path):
    config = Config(model=TINY_MODEL, loss=LossConfig(lambda_cyc=3.0),
                    data=DataConfig(data_dir="/data/x", image_size=32, batch_size=4))
    run_folder.save_config(config, tmp_path)
    assert run_folder.load_config(tmp_path) == config


def test_load_generator_rebuilds_the_trained_weights(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    run_folder.save_config(config, tmp_path)
    generator = networks.build_generator(TINY_MODEL)
    generator.save_weights(tmp_path / run_folder.GENERATOR_WEIGHTS)
    loaded, loaded_config = run_folder.load_generator(tmp_path)
    image, aus = np.zeros((1, 32, 32, 3), np.float32), np.ones((1, 17), np.float32)
    np.testing.assert_array_equal(loaded(image, aus)["color"], generator(image, aus)["color"])
    assert loaded_config == config


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        run_folder.load_config(tmp_path)
    run_folder.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), tmp_path)
    with pytest.raises(FileNotFoundError, match="generator.weights.h5 not found"):
        run_folder.load_generator(tmp_path)
