"""Tests for export/backends.load_edit_model, the models the editor loads: a tiny untrained generator as a
training run folder, a SavedModel and a TFLite file."""

import numpy as np
import pytest

from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.export import backends
from tf_ganimation.model import edit_model, networks
from tf_ganimation.runs import run_folder

from conftest import TINY_MODEL as TINY

SIZE = TINY.image_size  # 32 px, 8 filters, 1 residual block


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A training run's folder holding an untrained tiny generator and critic (32 px, 8 filters)."""
    path = tmp_path_factory.mktemp("run")
    run_folder.save_config(Config(model=TINY, data=DataConfig(image_size=SIZE)), path)
    networks.build_generator(TINY).save_weights(path / run_folder.GENERATOR_WEIGHTS)
    networks.build_critic(TINY).save_weights(path / run_folder.CRITIC_WEIGHTS)
    return path


@pytest.fixture(scope="module")
def model(run_dir):
    return backends.load_edit_model(run_dir)


def random_inputs(rng, count):
    """images float32 [count, S, S, 3] and aus [count, 17], uniform in [0, 1]."""
    return (rng.uniform(0, 1, [count, SIZE, SIZE, 3]).astype(np.float32),
            rng.uniform(0, 1, [count, 17]).astype(np.float32))


# === Models ===


def test_model_batches_give_the_same_results(model):
    model_in_slices = edit_model.KerasEditModel(model.generator, SIZE)
    model_in_slices.batch_size = 2
    rng = np.random.default_rng(1)
    images, aus = random_inputs(rng, 5)
    np.testing.assert_allclose(model_in_slices(images, aus)["images"], model(images, aus)["images"], atol=1e-5)
