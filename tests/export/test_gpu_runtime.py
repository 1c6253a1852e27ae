import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_devices import first_device, float16_device

from tf_ganimation.core.config import ModelConfig
from tf_ganimation.export import gpu_runtime, tflite
from tf_ganimation.model import edit_model, networks

from conftest import tiny_generator


def _tflite(generator, image_size: int, quantization: str = "float16") -> bytes:
    function = tflite.fixed_batch_function(functools.partial(edit_model.edit_images, generator), image_size,
                                           generator.num_aus, batch_size=1)
    return tflite.convert_function(function, quantization)


@pytest.fixture(scope="module")
def tiny_model() -> bytes:
    return _tflite(tiny_generator(0), 32)


@pytest.fixture(scope="module")
def five_dimensional_model() -> bytes:
    traced = tf.function(lambda image: tf.reduce_mean(tf.reshape(image, [1, 8, 8, 3, 1]) * 2.0, axis=[1, 2]),
                         input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    return tf.lite.TFLiteConverter.from_concrete_functions([traced.get_concrete_function()], traced).convert()


def test_the_generator_runs_whole_on_the_gpu_and_matches_the_cpu_in_float32(tiny_model):
    report = gpu_runtime.check_model(tiny_model, first_device(), "float32", repeats=2)
    assert report.problems() == [], report.summary()
    assert report.compiled and report.crashed is None and report.operators_on_cpu == 0
    assert set(report.max_abs_error) == {"images", "attention", "color"}
    assert all(0.0 <= error <= 1e-4 for error in report.max_abs_error.values())
    assert "every operator on the GPU" in report.summary()
    assert report.as_dict()["problems"] == [] and report.as_dict()["device"]["driver"] == report.device.driver


def test_float16_arithmetic_is_really_float16_and_measured(tiny_model):
    report = gpu_runtime.check_model(tiny_model, float16_device(), "float16")
    assert report.compiled and report.operators_on_cpu == 0 and not report.builder_errors
    errors = report.max_abs_error
    # float16 arithmetic, not float32: far above float32's 1e-6 differences, and finite.
    assert max(errors.values()) > 1e-4 and all(np.isfinite(list(errors.values())))
    assert report.tolerance == 1e-2


def test_every_operator_kind_left_to_the_cpu_is_named(five_dimensional_model):
    report = gpu_runtime.check_model(five_dimensional_model, first_device())
    assert not report.compiled and report.operators_on_cpu == 3
    assert {offender.op_name: offender.indices for offender in report.cpu_operators} == {
        "RESHAPE": (0,), "MUL": (1,), "MEAN": (2,)}  # every operator, by its index in the graph
    assert any("less than 5" in offender.reason for offender in report.cpu_operators)
    assert report.max_abs_error == {}
    (problem,) = report.problems()
    assert problem.startswith("3 operator(s) would run on the CPU (") and "RESHAPE (#0): " in problem


def test_verify_raises_for_operators_leaving_the_gpu_unless_allowed(five_dimensional_model):
    first_device()
    with pytest.raises(gpu_runtime.GpuRuntimeError,
                       match=r"(?s)x\.tflite does not run whole.*3 operator\(s\)") as caught:
        gpu_runtime.verify(five_dimensional_model, "require", source="x.tflite")
    assert caught.value.reports[0].arithmetic == "float32"
    reports = gpu_runtime.verify(five_dimensional_model, "auto", allow_cpu_fallback=True)
    assert reports and all(report.operators_on_cpu == 3 for report in reports)


def test_without_a_vulkan_device_require_fails_and_auto_says_so(monkeypatch, tiny_model):
    monkeypatch.setattr(gpu_runtime, "find_vulkan_devices", lambda: ())
    with pytest.raises(ValueError, match=r"no Vulkan device found: the GPU runtime check is required"):
        gpu_runtime.verify(tiny_model, "require")
    assert gpu_runtime.verify(tiny_model, "auto") == ()
    assert gpu_runtime.verify(tiny_model, "off") == ()
    with pytest.raises(ValueError, match=r"gpu_runtime='always' is invalid"):
        gpu_runtime.verify(tiny_model, "always")
    with pytest.raises(ValueError, match=r"arithmetic='int8' is invalid"):
        gpu_runtime.check_model(tiny_model, None, "int8")


@pytest.mark.slow
@pytest.mark.parametrize("sizes", [
    # configs/quickstart.flags
    ModelConfig(image_size=32, generator_filters=32, generator_residual_blocks=3, critic_layers=4),
    ModelConfig(),  # the paper's: 128 px, 64 filters, 6 residual blocks
], ids=["quickstart_size", "paper_size"])
def test_quickstart_and_paper_size_generators_convert_with_the_runtime_check(sizes, tmp_path):
    first_device()
    keras.utils.set_random_seed(0)
    generator = networks.build_generator(sizes)
    result = tflite.convert_generator(generator, sizes.image_size, tmp_path / "model.tflite",
                                      tflite.ConversionConfig(gpu_runtime="require", parity_examples=1))
    float32 = result.gpu_runtime_reports[0]
    assert float32.arithmetic == "float32" and float32.problems() == [], float32.summary()
    for report in result.gpu_runtime_reports:  # float16 too, where a device has it: nothing leaves the GPU
        assert report.compiled and report.operators_on_cpu == 0 and not report.builder_errors, report.summary()
    assert result.metadata["gpu_runtime"][0]["problems"] == []
