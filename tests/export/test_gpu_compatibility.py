import functools

import keras
import pytest
import tensorflow as tf
from export_devices import first_device

from tf_ganimation.export import flatbuffer, gpu_compatibility, gpu_runtime, tflite
from tf_ganimation.model import edit_model, networks

from conftest import TINY_MODEL


def _convert(function, *specs) -> bytes:
    traced = tf.function(function, input_signature=list(specs))
    return tf.lite.TFLiteConverter.from_concrete_functions([traced.get_concrete_function()], traced).convert()


IMAGE = tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")
AUS = tf.TensorSpec([1, 17], tf.float32, name="aus")


@pytest.fixture(scope="module")
def tiny_generator():
    keras.utils.set_random_seed(0)
    return networks.build_generator(TINY_MODEL)


@pytest.mark.parametrize("quantization", tflite.QUANTIZATIONS)
def test_our_generator_runs_whole_on_the_gpu_delegate(tiny_generator, quantization):
    edit = tflite.fixed_batch_function(functools.partial(edit_model.edit_images, tiny_generator), 32, 17, batch_size=1)
    content = tflite.convert_function(edit, quantization)
    assert gpu_compatibility.unsupported_operators(content) == []
    gpu_compatibility.require_gpu_compatible(content)  # does not raise
    counts = flatbuffer.operator_counts(content)
    # 3 encoder + 2 residual convolutions + the two heads as one; 2 transposed; 7 instance norms with
    # 2 MEANs each; the AUs spread over the image by one TILE.
    assert (counts["CONV_2D"], counts["TRANSPOSE_CONV"], counts["MEAN"], counts["TILE"]) == (6, 2, 14, 1)
    assert "BROADCAST_TO" not in counts and "SHAPE" not in counts


def test_broadcast_to_is_named_with_its_index():
    def spread_aus(image, aus):
        return tf.concat([image, tf.broadcast_to(tf.reshape(aus, [1, 1, 1, 17]), [1, 8, 8, 17])], axis=-1)

    offenders = gpu_compatibility.unsupported_operators(_convert(spread_aus, IMAGE, AUS))
    assert [(o.index, o.op_name) for o in offenders] == [(1, "BROADCAST_TO")]
    assert "TILE" in offenders[0].reason


def test_tiling_by_a_multiply_with_ones_is_refused_and_a_constant_tile_is_not():
    def multiply_by_ones(image, aus):
        return tf.concat([image, tf.reshape(aus, [1, 1, 1, 17]) * tf.ones([1, 8, 8, 17])], axis=-1)

    def tile(image, aus):
        return tf.concat([image, tf.tile(tf.reshape(aus, [1, 1, 1, 17]), [1, 8, 8, 1])], axis=-1)

    offenders = gpu_compatibility.unsupported_operators(_convert(multiply_by_ones, IMAGE, AUS))
    assert [o.op_name for o in offenders] == ["MUL"]
    assert "broadcasts the run-time tensor" in offenders[0].reason
    assert gpu_compatibility.unsupported_operators(_convert(tile, IMAGE, AUS)) == []


def test_five_dimensional_tensors_are_refused():
    def grouped_mean(image):
        return tf.reduce_mean(tf.reshape(image, [1, 8, 8, 3, 1]) * 2.0, axis=[1, 2])

    offenders = gpu_compatibility.unsupported_operators(_convert(grouped_mean, IMAGE))
    assert offenders[0].op_name == "RESHAPE" and "5-D" in offenders[0].reason
    assert {o.op_name for o in offenders} == {"RESHAPE", "MUL", "MEAN"}


def test_keras_group_normalization_lowers_to_five_dimensions():
    inputs = keras.Input([8, 8, 4], batch_size=1)
    model = keras.Model(inputs, keras.layers.GroupNormalization(groups=-1)(inputs))
    offenders = gpu_compatibility.unsupported_operators(
        _convert(lambda x: model(x), tf.TensorSpec([1, 8, 8, 4], tf.float32)))
    assert offenders and all("5-D" in o.reason for o in offenders)


def test_a_dynamic_batch_brings_shape_and_pack():
    def reshape_by_batch(image, aus):
        aus = tf.reshape(aus, tf.stack([tf.shape(aus)[0], 1, 1, 17]))
        return tf.concat([image, tf.tile(aus, [1, 8, 8, 1])], axis=-1)

    dynamic = [tf.TensorSpec([None, 8, 8, 3], tf.float32), tf.TensorSpec([None, 17], tf.float32)]
    offenders = gpu_compatibility.unsupported_operators(_convert(reshape_by_batch, *dynamic))
    names = [o.op_name for o in offenders]
    assert names[0] == "SHAPE" and "PACK" in names
    assert "unknown at conversion" in offenders[-1].reason  # the concatenation of [-1, 8, 8, ...] tensors


def test_topk_over_17_aus_is_refused_and_over_16_accepted():
    offenders = gpu_compatibility.unsupported_operators(_convert(lambda aus: tf.math.top_k(aus, 3).values, AUS))
    assert [(o.index, o.op_name) for o in offenders] == [(0, "TOPK_V2")]
    assert "17 values, not a multiple of 4" in offenders[0].reason
    sixteen = tf.TensorSpec([1, 16], tf.float32)
    assert gpu_compatibility.unsupported_operators(_convert(lambda aus: tf.math.top_k(aus, 3).values, sixteen)) == []


# Small models on which the static rules and LiteRT's GPU accelerator were compared: (static rules accept,
# the runtime runs it whole and right). Where the two differ, the rules are stricter on purpose, for the
# TFLite GPU delegate's own checks (OpenCL/OpenGL): see gpu_compatibility's Notes and docs/gpu_runtime_rules.md.
_SPEC_16 = tf.TensorSpec([1, 16], tf.float32)
_SPEC_2X17 = tf.TensorSpec([2, 17], tf.float32)
_SPEC_4D = tf.TensorSpec([1, 4, 4, 8], tf.float32)
RECONCILED = {
    "topk_over_17": (lambda aus: tf.math.top_k(aus, 3).values * 2.0, [AUS], False, False),  # wrong values
    "topk_over_16": (lambda x: tf.math.top_k(x, 3).values * 2.0, [_SPEC_16], True, True),
    "cumsum_over_1": (lambda aus: tf.math.cumsum(aus, axis=1) * 2.0, [_SPEC_2X17], True, True),
    "cumsum_over_minus_1": (lambda aus: tf.math.cumsum(aus, axis=-1) * 2.0, [_SPEC_2X17], False, False),  # axis 0
    "cumsum_over_3": (lambda x: tf.math.cumsum(x, axis=3) * 2.0, [_SPEC_4D], True, True),
    "cumsum_over_minus_2": (lambda x: tf.math.cumsum(x, axis=-2) * 2.0, [_SPEC_4D], False, False),  # SIGILL
    "broadcast_to": (lambda aus: tf.broadcast_to(tf.reshape(aus, [1, 1, 1, 17]), [1, 4, 4, 17]) * 2.0, [AUS],
                     False, False),
    "five_dimensions": (lambda image: tf.reduce_mean(tf.reshape(image, [1, 8, 8, 3, 1]) * 2.0, axis=[1, 2]),
                        [IMAGE], False, False),
    "strided_slice_shrinking_an_axis": (lambda image: image[:, 0, :, :] * 2.0, [IMAGE], False, False),
    "batch_unknown_at_conversion": (lambda aus: tf.tile(tf.reshape(aus, tf.stack([tf.shape(aus)[0], 1, 1, 17])),
                                                        [1, 4, 4, 1]), [tf.TensorSpec([None, 17], tf.float32)],
                                    False, False),
    "mean_over_all_axes": (lambda x: tf.reduce_mean(x * 2.0, axis=[1, 2, 3], keepdims=True), [_SPEC_4D], False, True),
    "multiply_by_ones": (lambda aus: tf.reshape(aus, [1, 1, 1, 17]) * tf.ones([1, 4, 4, 17]), [AUS], False, True),
    "mean_over_channels": (lambda x: tf.reduce_mean(x * 2.0, axis=[3], keepdims=True), [_SPEC_4D], False, True),
}


@pytest.mark.parametrize("case", sorted(RECONCILED))
def test_the_static_rules_agree_with_the_gpu_runtime_or_are_stricter_on_purpose(case):
    function, specs, static_accepts, runtime_accepts = RECONCILED[case]
    content = _convert(function, *specs)
    assert (gpu_compatibility.unsupported_operators(content) == []) is static_accepts
    report = gpu_runtime.check_model(content, first_device(), "float32")
    assert (report.problems() == []) is runtime_accepts, report.summary()


def test_require_gpu_compatible_lists_the_offenders(tmp_path):
    path = tmp_path / "broadcast.tflite"
    path.write_bytes(_convert(lambda aus: tf.broadcast_to(tf.reshape(aus, [1, 1, 1, 17]), [1, 4, 4, 17]), AUS))
    expected = r"(?s)1 of 2 operators .*#1 BROADCAST_TO"
    with pytest.raises(gpu_compatibility.GpuCompatibilityError, match=expected) as caught:
        gpu_compatibility.require_gpu_compatible(path)
    assert caught.value.operators[0].op_name == "BROADCAST_TO"
