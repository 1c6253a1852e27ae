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


def test_load_model_from_a_run_folder(model):
    assert isinstance(model, edit_model.KerasEditModel) and model.kind == "workdir" and model.image_size == SIZE
    images, aus = random_inputs(np.random.default_rng(0), 3)
    outputs = model(images, aus)
    assert outputs["images"].shape == (3, SIZE, SIZE, 3) and outputs["attention"].shape == (3, SIZE, SIZE, 1)
    for key, value in outputs.items():
        assert value.dtype == np.float32 and 0.0 <= value.min() and value.max() <= 1.0, key
    # Eq. 1 on the [0, 1] scale: images = A * input + (1 - A) * C.
    composed = outputs["attention"] * images + (1 - outputs["attention"]) * outputs["color"]
    np.testing.assert_allclose(outputs["images"], composed, atol=1e-5)


def test_model_batches_give_the_same_results(model):
    model_in_slices = edit_model.KerasEditModel(model.generator, SIZE)
    model_in_slices.batch_size = 2
    rng = np.random.default_rng(1)
    images, aus = random_inputs(rng, 5)
    np.testing.assert_allclose(model_in_slices(images, aus)["images"], model(images, aus)["images"], atol=1e-5)


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*training run folder.*SavedModel.*tflite"):
        backends.load_edit_model(tmp_path / "absent")
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a .tflite model"):
        backends.load_edit_model(tmp_path / "weights.h5")
    with pytest.raises(ValueError, match="no config.json, no saved_model.pb and no version folder"):
        backends.load_edit_model(tmp_path)


def test_saved_model_export(model, tmp_path):
    from tf_ganimation.export import saved_model
    version = saved_model.export_generator(model.generator, tmp_path / "export", model_config=TINY, warmup=False)
    rng = np.random.default_rng(2)
    images, aus = random_inputs(rng, 3)
    expected = model(images, aus)
    for path in (version, tmp_path / "export"):  # the version folder, or its base (highest version)
        loaded = backends.load_edit_model(path)
        assert loaded.kind == "saved_model" and loaded.image_size == SIZE and loaded.estimate_aus(images) is None
        for key, value in loaded(images, aus).items():
            np.testing.assert_allclose(value, expected[key], atol=1e-5)


def test_tflite_model(model, tmp_path):
    from tf_ganimation.export import tflite
    path = tmp_path / "tiny.tflite"
    tflite.convert_generator(model.generator, SIZE, path, tflite.ConversionConfig("none"))
    loaded = backends.load_edit_model(path)
    assert loaded.kind == "tflite" and loaded.image_size == SIZE
    rng = np.random.default_rng(3)
    images, aus = random_inputs(rng, 3)
    expected = model(images, aus)
    for key, value in loaded(images, aus).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-4)
