"""Tests for tf_ganimation/core/pixels.py: golden values by hand, round trips, clipping, numpy and tensors."""

import numpy as np
import tensorflow as tf

from tf_ganimation.core import pixels


def test_float_conversions_golden_values():
    np.testing.assert_array_equal(pixels.unit_to_model(np.array([0.0, 0.25, 0.5, 1.0])), [-1.0, -0.5, 0.0, 1.0])
    np.testing.assert_array_equal(pixels.model_to_unit(np.array([-1.0, -0.5, 0.0, 1.0])), [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_array_equal(pixels.uint8_to_model(np.array([0.0, 51.0, 127.5, 255.0])),
                                  [-1.0, 51 / 127.5 - 1, 0.0, 1.0])
    unit = pixels.uint8_to_unit(np.array([0, 51, 255], np.uint8))
    assert unit.dtype == np.float32
    np.testing.assert_array_equal(unit, np.array([0, 51, 255], np.float32) / 255)
    np.testing.assert_allclose(unit, [0.0, 0.2, 1.0], rtol=1e-7)


def test_float_conversions_do_not_clip():
    np.testing.assert_array_equal(pixels.model_to_unit(np.array([-3.0, 3.0])), [-1.0, 2.0])
    np.testing.assert_array_equal(pixels.unit_to_model(np.array([-0.5, 1.5])), [-2.0, 2.0])


def test_model_to_255_clips_first():
    values = pixels.model_to_255(np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0]))
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, [0.0, 0.0, 127.5, 191.25, 255.0, 255.0])


def test_uint8_conversions_round_and_clip():
    unit = pixels.unit_to_uint8(np.array([-0.1, 0.0, 0.5 / 255, 0.51 / 255, 0.5, 1.0, 1.2]))
    assert unit.dtype == np.uint8
    assert unit.tolist() == [0, 0, 0, 1, 128, 255, 255]  # np.round: half to even (0.5 -> 0, 127.5 -> 128)
    model = pixels.model_to_uint8(np.array([-1.5, -1.0, 0.0, 1.0, 1.5]))
    assert model.dtype == np.uint8 and model.tolist() == [0, 0, 128, 255, 255]


def test_round_trips_keep_every_uint8_value():
    values = np.arange(256, dtype=np.uint8)
    assert (pixels.unit_to_uint8(pixels.uint8_to_unit(values)) == values).all()
    assert (pixels.model_to_uint8(pixels.uint8_to_model(values.astype(np.float32))) == values).all()
    assert (pixels.model_to_uint8(pixels.unit_to_model(pixels.uint8_to_unit(values))) == values).all()
    unit = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    np.testing.assert_allclose(pixels.model_to_unit(pixels.unit_to_model(unit)), unit, atol=1e-7)


def test_tensors_convert_bit_for_bit_as_the_arithmetic():
    image = tf.constant(np.arange(256, dtype=np.float32).reshape(16, 16))
    model = pixels.uint8_to_model(image)
    assert isinstance(model, tf.Tensor) and model.dtype == tf.float32
    np.testing.assert_array_equal(model.numpy(), (image / 127.5 - 1.0).numpy())
    np.testing.assert_array_equal(pixels.model_to_unit(model).numpy(), ((model + 1.0) / 2.0).numpy())
    np.testing.assert_array_equal(pixels.unit_to_model(pixels.model_to_unit(model)).numpy()[0, :3],
                                  np.array([0, 1, 2], np.float32) / 127.5 - 1.0)
