"""tf_ganimation/export/backends.py: load_edit_model on each kind of path, and SavedModelEditModel (32 px)."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.export import backends, litert, saved_model, tflite
from tf_ganimation.model import edit_model
from tf_ganimation.runs import run_folder

from conftest import TINY_MODEL, tiny_generator

SIZE = 32


@pytest.fixture(scope="module")
def model(tiny_run_dir):
    return backends.load_edit_model(tiny_run_dir)


def random_inputs(rng, count):
    """images float32 [count, S, S, 3] and aus [count, 17], uniform in [0, 1]."""
    return (rng.uniform(0, 1, [count, SIZE, SIZE, 3]).astype(np.float32),
            rng.uniform(0, 1, [count, 17]).astype(np.float32))


# === A training run's folder ===


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


def test_a_run_folder_loads_its_critic_unless_asked_not_to(tiny_run_dir, model, tmp_path, caplog):
    images, _ = random_inputs(np.random.default_rng(4), 2)
    assert model.critic is not None and model.estimate_aus(images).shape == (2, 17)
    assert model.source == str(tiny_run_dir)
    without = backends.load_edit_model(tiny_run_dir, with_critic=False)
    assert without.critic is None and without.estimate_aus(images) is None
    # A run without critic weights loads, with a warning: its animations start from neutral AUs.
    run_folder.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=SIZE)), tmp_path)
    (tmp_path / run_folder.GENERATOR_WEIGHTS).write_bytes((tiny_run_dir / run_folder.GENERATOR_WEIGHTS).read_bytes())
    with caplog.at_level(logging.WARNING):
        no_critic = backends.load_edit_model(tmp_path)
    assert no_critic.critic is None and "animations start from neutral AUs" in caplog.text


# === SavedModel exports ===


def test_saved_model_export(model, tmp_path):
    version = saved_model.export_generator(model.generator, tmp_path / "export", model_config=TINY_MODEL, warmup=False)
    rng = np.random.default_rng(2)
    images, aus = random_inputs(rng, 3)
    expected = model(images, aus)
    for path in (version, tmp_path / "export"):  # the version folder, or its base (highest version)
        loaded = backends.load_edit_model(path)
        assert loaded.kind == "saved_model" and loaded.image_size == SIZE and loaded.estimate_aus(images) is None
        for key, value in loaded(images, aus).items():
            np.testing.assert_allclose(value, expected[key], atol=1e-5)


def test_an_export_base_gives_its_highest_version(tmp_path):
    first, second = tiny_generator(1), tiny_generator(2)
    base = tmp_path / "export"
    saved_model.export_generator(first, base, version=2, model_config=TINY_MODEL, warmup=False)
    saved_model.export_generator(second, base, version=10, model_config=TINY_MODEL, warmup=False)
    (base / "11").mkdir()  # a folder named like a version but without a SavedModel is not one
    (base / "notes").mkdir()
    loaded = backends.load_edit_model(base)
    assert isinstance(loaded, backends.SavedModelEditModel) and loaded.source == str(base / "10")
    images, aus = random_inputs(np.random.default_rng(5), 2)
    edited = loaded(images, aus)["images"]
    np.testing.assert_allclose(edited, edit_model.KerasEditModel(second, SIZE)(images, aus)["images"], atol=1e-5)
    assert np.abs(edited - edit_model.KerasEditModel(first, SIZE)(images, aus)["images"]).max() > 1e-3


def test_saved_model_edit_model_equals_the_keras_one_in_slices(tmp_path):
    generator = tiny_generator(3)
    version = saved_model.export_generator(generator, tmp_path / "export", model_config=TINY_MODEL, warmup=False)
    loaded = backends.SavedModelEditModel(version)
    assert (loaded.image_size, loaded.num_aus, loaded.kind, loaded.source) == (SIZE, 17, "saved_model", str(version))
    loaded.batch_size = 2  # five images in three slices
    images, aus = random_inputs(np.random.default_rng(6), 5)
    expected = edit_model.KerasEditModel(generator, SIZE).edit(images, aus)
    outputs = loaded.edit(images, aus)
    for key in edit_model.EDIT_KEYS:
        assert outputs[key].dtype == np.float32 and outputs[key].shape == expected[key].shape
        np.testing.assert_allclose(outputs[key], expected[key], atol=1e-5)
    # `function` is the SavedModel's `edit`, at any batch: what tflite.py converts.
    np.testing.assert_allclose(loaded.function(images, aus)["images"].numpy(), expected["images"], atol=1e-5)


def test_a_saved_model_with_the_critic_estimates_aus_as_its_run_folder(expressive_run_dir, tmp_path):
    run_model = backends.load_edit_model(expressive_run_dir)
    exported = backends.load_edit_model(saved_model.export_from_workdir(expressive_run_dir, tmp_path, version=1))
    exported.batch_size = 2  # five crops in three slices
    for size in (32, 16):  # the model's size, and a 16 px crop brought up to it
        crops = np.random.default_rng(size).uniform(0, 1, [5, size, size, 3]).astype(np.float32)
        crops = np.repeat(np.repeat(crops, SIZE // size, axis=1), SIZE // size, axis=2)
        expected, estimated = run_model.estimate_aus(crops), exported.estimate_aus(crops)
        assert estimated.shape == (5, 17) and estimated.dtype == np.float32
        assert 0.0 < estimated.mean() < 1.0 and 0.0 <= estimated.min() and estimated.max() <= 1.0
        assert ((estimated > 0.05) & (estimated < 0.95)).any()  # not only clipped values
        np.testing.assert_allclose(estimated, expected, atol=1e-5)
    without = backends.load_edit_model(saved_model.export_from_workdir(expressive_run_dir, tmp_path, version=2,
                                                                       with_critic=False))
    assert without.estimate_aus(crops) is None


def test_saved_model_edit_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"saved_model.pb not found: expected a SavedModel version folder"):
        backends.SavedModelEditModel(tmp_path)
    module = tf.Module()
    module.double = tf.function(lambda x: 2.0 * x, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "other"))
    with pytest.raises(ValueError, match=r"has no `edit\(images, aus\)` function: not a GANimation export"):
        backends.load_edit_model(tmp_path / "other")


# === TFLite files ===


def test_tflite_model(model, tmp_path):
    path = tmp_path / "tiny.tflite"
    tflite.convert_generator(model.generator, SIZE, path, tflite.ConversionConfig("none"))
    loaded = backends.load_edit_model(path)
    assert loaded.kind == "tflite" and loaded.image_size == SIZE
    assert isinstance(loaded, litert.TFLiteEditModel) and loaded.source == str(path)
    rng = np.random.default_rng(3)
    images, aus = random_inputs(rng, 3)
    expected = model(images, aus)
    for key, value in loaded(images, aus).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-4)


# === Paths that are none of these ===


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*training run folder.*SavedModel.*tflite"):
        backends.load_edit_model(tmp_path / "absent")
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a .tflite model"):
        backends.load_edit_model(tmp_path / "weights.h5")
    with pytest.raises(ValueError, match="no config.json, no saved_model.pb and no version folder"):
        backends.load_edit_model(tmp_path)


def test_an_empty_folder_is_refused_with_what_was_expected(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"empty holds no config.json.*expected a training run folder .*\.tflite file"):
        backends.load_edit_model(empty)
