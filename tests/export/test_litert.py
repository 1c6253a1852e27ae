import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.export import litert, tflite
from tf_ganimation.model import edit_model

from conftest import tiny_generator


@pytest.fixture(scope="module")
def generator():
    return tiny_generator(0)


@pytest.fixture(scope="module")
def batch_one_model(generator, tmp_path_factory):
    path = tmp_path_factory.mktemp("litert") / "tiny_fp32.tflite"
    tflite.convert_generator(generator, 32, path, tflite.ConversionConfig(quantization="none"))
    return path


def _inputs(count):
    return tflite.parity_inputs(count, 32, seed=7)


def test_batch_three_through_a_batch_one_model_equals_the_keras_generator(generator, batch_one_model):
    model = litert.TFLiteEditModel(batch_one_model, num_threads=1)
    assert (model.batch_size, model.image_size, model.num_aus, model.signature_key) == (1, 32, 17, "edit")
    images, aus = _inputs(3)
    outputs = model(images, aus)
    expected = edit_model.KerasEditModel(generator, 32).edit(images, aus)
    assert {name: value.shape for name, value in outputs.items()} == {
        "images": (3, 32, 32, 3), "attention": (3, 32, 32, 1), "color": (3, 32, 32, 3)}
    for name in litert.OUTPUT_NAMES:
        assert outputs[name].dtype == np.float32
        np.testing.assert_allclose(outputs[name], expected[name], atol=1e-4)
    assert 0.0 <= outputs["attention"].min() and outputs["attention"].max() <= 1.0
    assert 0.0 <= outputs["images"].min() and outputs["images"].max() <= 1.0
    # Each example is edited with its own AUs: different AUs, different faces.
    assert np.abs(outputs["images"][0] - model(images[:1], aus[1:2])["images"][0]).max() > 0


def test_a_partial_last_slice_is_padded_and_dropped(generator, tmp_path):
    path = tmp_path / "tiny_batch2.tflite"
    tflite.convert_generator(generator, 32, path, tflite.ConversionConfig(quantization="none", batch_size=2))
    model = litert.TFLiteEditModel(path)
    images, aus = _inputs(3)
    outputs = model(images, aus)
    assert model.batch_size == 2 and outputs["images"].shape == (3, 32, 32, 3)
    single = litert.TFLiteEditModel(path)(images[2:], aus[2:])
    np.testing.assert_allclose(outputs["images"][2:], single["images"], atol=1e-6)


def test_bytes_are_accepted(batch_one_model):
    images, aus = _inputs(1)
    from_bytes = litert.TFLiteEditModel(batch_one_model.read_bytes())(images, aus)
    from_file = litert.TFLiteEditModel(batch_one_model)(images, aus)
    np.testing.assert_array_equal(from_bytes["images"], from_file["images"])


def test_bad_inputs_name_the_expected_shapes(batch_one_model, tmp_path):
    model = litert.TFLiteEditModel(batch_one_model)
    images, aus = _inputs(2)
    with pytest.raises(ValueError, match=r"images of shape \[2, 16, 16, 3\].*\[N, 32, 32, 3\]"):
        model(images[:, :16, :16], aus)
    with pytest.raises(ValueError, match=r"aus of shape \[1, 17\]: expected \[2, 17\]"):
        model(images, aus[:1])
    with pytest.raises(ValueError, match="num_threads=0"):
        litert.TFLiteEditModel(batch_one_model, num_threads=0)
    with pytest.raises(FileNotFoundError, match="nothing.tflite not found"):
        litert.TFLiteEditModel(tmp_path / "nothing.tflite")


def test_a_model_without_the_generator_signature_is_refused(tmp_path):
    module = tf.Module()
    module.double = tf.function(lambda x: {"y": 2.0 * x}, input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "double"), signatures={"double": module.double.get_concrete_function()})
    content = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "double")).convert()
    with pytest.raises(ValueError, match=r"inputs \['x'\] and outputs \['y'\]"):
        litert.TFLiteEditModel(content)


def test_a_missing_runtime_says_what_to_install(batch_one_model, monkeypatch):
    def import_module(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(litert.importlib, "import_module", import_module)
    with pytest.raises(ImportError, match=r"pip install ai-edge-litert==2\.3\.0"):
        litert.TFLiteEditModel(batch_one_model)


def test_the_old_name_still_works_and_warns(batch_one_model):
    with pytest.warns(DeprecationWarning, match="TFLiteGenerator is TFLiteEditModel now"):
        old_name = litert.TFLiteGenerator
    assert old_name is litert.TFLiteEditModel
    model = old_name(batch_one_model)
    assert isinstance(model, edit_model.EditModel) and model.kind == "tflite"
    with pytest.raises(AttributeError, match="has no attribute 'TFLiteModel'"):
        _ = litert.TFLiteModel
