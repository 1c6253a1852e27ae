"""serving/servable.py: one loaded SavedModel version, its checked runs and its warmup replay."""

import shutil

import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving import servable as servable_lib
from serving.servable import Servable
from serving.status import ServingError
from tf_ganimation.export import saved_model
from tf_ganimation.model import edit_model

from conftest import random_inputs, tiny_generator

SIZE = 32



@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    generator = tiny_generator(seed=0)
    version_dir = saved_model.export_generator(generator, tmp_path_factory.mktemp("models") / "ganimation")
    return generator, version_dir


@pytest.fixture(scope="module")
def servable(exported):
    return Servable("ganimation", 1, exported[1])


def test_the_servable_has_the_exported_signatures(servable):
    assert set(saved_model.SIGNATURES) <= set(servable.signature_names)
    assert servable.signature_names == sorted(servable.signature_names)
    assert (servable.name, servable.version) == ("ganimation", 1)
    images = servable.signature_def("").inputs["images"]  # "" is serving_default
    assert [dim.size for dim in images.tensor_shape.dim] == [-1, SIZE, SIZE, 3]


def test_run_equals_the_keras_generator_with_outputs_sorted(exported, servable):
    generator, _ = exported
    images, aus = random_inputs(2)
    outputs = servable.run("serving_default", {"images": images, "aus": aus})
    assert list(outputs) == ["attention", "color", "images"]
    np.testing.assert_allclose(outputs["images"], edit_model.edit_images(generator, images, aus)["images"].numpy(),
                               atol=1e-5)


def test_run_returns_only_the_filtered_outputs(servable):
    images, aus = random_inputs(1)
    assert list(servable.run("", {"images": images, "aus": aus}, ["color", "attention"])) == ["attention", "color"]


GOOD_IMAGES, GOOD_AUS = random_inputs(1)
NAN_AUS = GOOD_AUS.copy()
NAN_AUS[0, 3] = np.nan
BAD_RUNS = {
    "wrong shape": ("serving_default", {"images": np.zeros([1, 16, 16, 3], np.float32), "aus": GOOD_AUS}, (),
                    "input 'images' of signature 'serving_default' has shape [1, 16, 16, 3]; the signature expects "
                    "[-1, 32, 32, 3] (-1: any size)"),
    "wrong rank": ("serving_default", {"images": GOOD_IMAGES, "aus": GOOD_AUS[0]}, (),
                   "input 'aus' of signature 'serving_default' has shape [17]; the signature expects [-1, 17]"),
    "wrong dtype": ("serving_default", {"images": GOOD_IMAGES.astype(np.float64), "aus": GOOD_AUS}, (),
                    "input 'images' of signature 'serving_default' must be float32, got float64"),
    "strings for floats": ("serving_default", {"images": GOOD_IMAGES, "aus": np.array([b"x"], dtype=object)}, (),
                           "input 'aus' of signature 'serving_default' must be float32, got string"),
    "missing and extra": ("serving_default", {"images": GOOD_IMAGES, "smile": GOOD_AUS}, (),
                          "input size does not match signature 'serving_default': missing aus; unexpected smile "
                          "(it takes exactly aus, images)"),
    "unknown output": ("serving_default", {"images": GOOD_IMAGES, "aus": GOOD_AUS}, ["mask"],
                       "output tensor alias not found in signature: mask; outputs of 'serving_default' are "
                       "{attention, color, images}"),
    "unknown signature": ("smile", {"aus": GOOD_AUS}, (), 'Serving signature name: "smile" not found in signature '
                          "def; model ganimation version 1 has: "),
    "NaN AUs": ("serving_default", {"images": GOOD_IMAGES, "aus": NAN_AUS}, (), "aus must be finite"),
    "batch sizes differ": ("serving_default", {"images": GOOD_IMAGES, "aus": np.zeros([2, 17], np.float32)}, (),
                           "aus and images must have the same batch size"),
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_inputs_are_invalid_arguments_that_name_the_problem(servable, case):
    signature_name, inputs, output_filter, message = BAD_RUNS[case]
    with pytest.raises(ServingError) as raised:
        servable.run(signature_name, inputs, output_filter)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.message


def test_warm_up_replays_every_warmup_record(servable):
    assert servable_lib.WARMUP_FILE.as_posix() == saved_model.WARMUP_FILE
    records = sum(1 for _ in tf.data.TFRecordDataset(str(servable.path / servable_lib.WARMUP_FILE)))
    assert records == len(saved_model.SIGNATURES)  # one request per signature
    assert servable.warm_up() == records


def test_warm_up_without_a_warmup_file_replays_nothing(exported, tmp_path):
    copy = shutil.copytree(exported[1], tmp_path / "1")
    (copy / servable_lib.WARMUP_FILE).unlink()
    assert Servable("ganimation", 1, copy).warm_up() == 0


def test_a_folder_without_a_saved_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a SavedModel folder"):
        Servable("ganimation", 1, tmp_path)


def test_dtype_of_and_shape_text():
    assert servable_lib.dtype_of(np.array([b"png"], dtype=object)) == tf.string
    assert servable_lib.dtype_of(np.array(["text"])) == tf.string
    assert servable_lib.dtype_of(np.zeros(2, np.int32)) == tf.int32
    assert servable_lib.shape_text([-1, 17]) == "[-1, 17]" and servable_lib.shape_text(()) == "[]"
