"""tf_ganimation/export/flatbuffer.py: the operators and tensors read from small converted graphs."""

import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.export import flatbuffer, gpu_compatibility

IMAGE = tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")
AUS = tf.TensorSpec([1, 17], tf.float32, name="aus")


def _convert(function, *specs, float16: bool = False) -> bytes:
    traced = tf.function(function, input_signature=list(specs))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([traced.get_concrete_function()], traced)
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def test_operators_come_in_execution_order_with_their_tensors():
    def spread_aus(image, aus):
        return tf.concat([image, tf.tile(tf.reshape(aus, [1, 1, 1, 17]), [1, 8, 8, 1])], axis=-1)

    reshape, tile, concatenation = flatbuffer.read_operators(_convert(spread_aus, IMAGE, AUS))
    assert (reshape.name, tile.name, concatenation.name) == ("RESHAPE", "TILE", "CONCATENATION")
    aus, shape = reshape.inputs
    assert (aus.name, aus.shape, aus.signature, aus.is_constant, aus.values) == ("aus", (1, 17), (1, 17), False, None)
    assert aus.describe() == "'aus' float32[1, 17]"
    assert shape.is_constant and shape.values.dtype == np.int32 and shape.values.tolist() == [1, 1, 1, 17]
    assert [t.shape for t in tile.runtime_inputs] == [(1, 1, 1, 17)]
    assert [t.values.tolist() for t in tile.constant_inputs] == [[1, 8, 8, 1]]
    assert tile.inputs[0] == reshape.outputs[0]  # the same tensor, read once
    assert [t.shape for t in concatenation.inputs] == [(1, 8, 8, 3), (1, 8, 8, 17)]
    assert concatenation.constant_inputs == [] and concatenation.outputs[0].shape == (1, 8, 8, 20)
    assert concatenation.options.axis == -1  # as traced: tf.concat(..., axis=-1)


def test_a_dimension_unknown_at_conversion_is_minus_one_in_the_signature():
    (multiply,) = flatbuffer.read_operators(_convert(lambda image: image * 2.0, tf.TensorSpec([None, 8, 8, 3],
                                                                                               tf.float32)))
    image, two = multiply.inputs
    assert multiply.name == "MUL" and image.shape == (1, 8, 8, 3) and image.signature == (-1, 8, 8, 3)
    assert two.is_constant and two.shape == () and float(two.values) == 2.0


def test_a_float16_weights_dequantize_output_counts_as_a_constant():
    kernel = np.random.default_rng(0).normal(size=[3, 3, 3, 4]).astype(np.float32)
    operators = flatbuffer.read_operators(_convert(lambda image: tf.nn.conv2d(image, kernel, 1, "SAME"), IMAGE,
                                                   float16=True))
    assert [o.name for o in operators] == ["DEQUANTIZE", "DEQUANTIZE", "CONV_2D"]
    for dequantize in operators[:2]:
        stored, dequantized = dequantize.inputs[0], dequantize.outputs[0]
        assert stored.describe().split()[1].startswith("float16") and stored.is_constant
        assert stored.values.dtype == np.float16  # 216 bytes: small enough to be read
        assert dequantized.is_constant and dequantized.values is None  # no data in the model: computed from it
    convolution = operators[2]
    assert [t.name for t in convolution.runtime_inputs] == ["image"] and len(convolution.constant_inputs) == 2
    np.testing.assert_allclose(operators[1].inputs[0].values, np.transpose(kernel, [3, 0, 1, 2]), atol=1e-2)
    # Without float16 weights there is no DEQUANTIZE, and the weights are constants in the model itself.
    (plain,) = flatbuffer.read_operators(_convert(lambda image: tf.nn.conv2d(image, kernel, 1, "SAME"), IMAGE))
    assert plain.name == "CONV_2D" and len(plain.runtime_inputs) == 1


def test_operator_counts_are_most_frequent_first_from_bytes_or_a_path(tmp_path):
    content = _convert(lambda image: tf.nn.relu(image * 2.0) * 3.0 + 1.0, IMAGE)
    counts = flatbuffer.operator_counts(content)
    assert counts == {"MUL": 2, "ADD": 1} and list(counts) == ["MUL", "ADD"]
    (tmp_path / "model.tflite").write_bytes(content)
    assert flatbuffer.operator_counts(tmp_path / "model.tflite") == counts
    assert flatbuffer.model_bytes(tmp_path / "model.tflite") == flatbuffer.model_bytes(bytearray(content)) == content


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tflite not found"):
        gpu_compatibility.unsupported_operators(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        gpu_compatibility.unsupported_operators(b"\x00" * 64)
    with pytest.raises(FileNotFoundError, match="missing.tflite not found: expected a .tflite model file"):
        flatbuffer.model_bytes(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match=r"not a TFLite flatbuffer \(its file identifier is not TFL3\)"):
        flatbuffer.read_operators(b"TFL3")
