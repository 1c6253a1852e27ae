"""Tests for tf_ganimation/model/edit_model.py: the edit contract and its Keras backend (32 px, 8 filters)."""

import numpy as np
import pytest

from tf_ganimation.model import edit_model, networks

from conftest import TINY_MODEL, tiny_generator


def _inputs(count, size=32, seed=5):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1, (count, size, size, 3)).astype(np.float32),
            rng.uniform(0, 1, (count, 17)).astype(np.float32))


def test_edit_images_is_compose_on_the_unit_scale():
    generator = tiny_generator()
    images, aus = _inputs(2)
    edited = edit_model.edit_images(generator, images, aus)
    raw = generator(images * 2 - 1, aus)
    expected = (networks.compose(images * 2 - 1, raw["color"], raw["attention"]) + 1) / 2
    np.testing.assert_allclose(edited["images"], expected, atol=1e-6)
    np.testing.assert_allclose(edited["color"], (raw["color"] + 1) / 2, atol=1e-6)
    np.testing.assert_allclose(edited["attention"], raw["attention"], atol=0)
    assert 0 <= edited["images"].numpy().min() and edited["images"].numpy().max() <= 1


def test_keras_edit_model_returns_the_three_keys_in_unit_range_whatever_the_slicing():
    generator = tiny_generator()
    images, aus = _inputs(5)
    whole = edit_model.KerasEditModel(generator, TINY_MODEL.image_size, batch_size=16).edit(images, aus)
    sliced = edit_model.KerasEditModel(generator, TINY_MODEL.image_size, batch_size=2)(images, aus)
    assert sorted(whole) == sorted(edit_model.EDIT_KEYS)
    assert whole["images"].shape == (5, 32, 32, 3) and whole["attention"].shape == (5, 32, 32, 1)
    assert whole["color"].shape == (5, 32, 32, 3)
    for key in edit_model.EDIT_KEYS:
        assert whole[key].dtype == np.float32 and 0 <= whole[key].min() and whole[key].max() <= 1
        np.testing.assert_allclose(sliced[key], whole[key], atol=1e-5)
    direct = edit_model.edit_images(generator, images, aus)
    np.testing.assert_allclose(whole["images"], direct["images"], atol=1e-5)


def test_wrong_shapes_are_refused_with_the_expected_shape():
    model = edit_model.KerasEditModel(tiny_generator(), TINY_MODEL.image_size)
    images, aus = _inputs(2)
    with pytest.raises(ValueError, match=r"takes float32 \[N, 32, 32, 3\]"):
        model.edit(images[:, :16], aus)
    with pytest.raises(ValueError, match=r"expected \[2, 17\]"):
        model.edit(images, aus[:1])


def test_estimate_aus_needs_a_critic_and_is_clipped_to_unit_range():
    generator, critic = tiny_generator(), networks.build_critic(TINY_MODEL)
    images, _ = _inputs(3)
    assert edit_model.KerasEditModel(generator, 32).estimate_aus(images) is None
    estimated = edit_model.KerasEditModel(generator, 32, critic=critic).estimate_aus(images)
    expected = np.clip(critic(images * 2 - 1)["aus"].numpy(), 0, 1)
    assert estimated.shape == (3, 17)
    np.testing.assert_allclose(estimated, expected, atol=1e-5)
