"""Tests for tf_ganimation/data/image_cache.py: the decoded training images held in memory."""

import numpy as np
import tensorflow as tf

from tf_ganimation.data import image_cache, inventory, pipeline, training_epochs

from conftest import config_for

SEED = training_epochs._epoch_seed(0, 2)


def _cache(ganimation_dir, broken=(), image_size=24):
    """The cache of a dataset whose files `broken` (ids) turned bad after load_examples."""
    config = config_for(ganimation_dir, image_size=image_size, cache_images=True)
    examples = inventory.load_examples(config)
    for example_id in broken:
        (ganimation_dir / "imgs" / f"{example_id}.jpg").write_bytes(b"no longer an image")
    epochs = training_epochs.TrainingEpochs(examples.train, examples.data_format, config, 0, (1, 0))
    return epochs, image_cache.ImageCache.decode(epochs, lambda encoded: pipeline.preprocess_image_uint8(
        encoded, image_size))


def test_every_image_that_decodes_is_cached_once_by_slot(ganimation_dir):
    epochs, cache = _cache(ganimation_dir, broken=["face_007"])
    assert cache.images.dtype == tf.uint8 and cache.images.shape == (11, 24, 24, 3)
    assert cache.real_aus.shape == (11, 17)
    row_of_slot = cache.row_of_slot.numpy()
    assert row_of_slot[7] == -1 and sorted(row_of_slot[row_of_slot >= 0]) == list(range(11))
    looked_up = cache.lookup(tf.constant(row_of_slot[[3, 0]]))
    for image, slot in zip(looked_up["real_image"].numpy(), (3, 0)):
        encoded = tf.io.read_file(str(ganimation_dir / "imgs" / f"face_{slot:03d}.jpg"))
        np.testing.assert_array_equal(image, pipeline.preprocess_image_uint8(encoded, 24).numpy())
    np.testing.assert_allclose(looked_up["real_aus"][:, 0], [3 / 16, 0.0], atol=1e-6)


def test_row_chunks_replay_the_epoch_without_the_images_that_did_not_decode(ganimation_dir):
    epochs, cache = _cache(ganimation_dir, broken=["face_007"])
    slots = np.concatenate(list(epochs.slot_chunks(SEED, np.int64(2)).as_numpy_iterator()))
    rows = np.concatenate(list(cache.row_chunks(SEED, np.int64(2)).as_numpy_iterator()))
    assert len(slots) == 10 and 7 in slots
    np.testing.assert_array_equal(rows, cache.row_of_slot.numpy()[slots[slots != 7]])


def test_a_cache_of_images_that_all_fail_is_empty(ganimation_dir):
    epochs, cache = _cache(ganimation_dir, broken=[f"face_{i:03d}" for i in range(12)], image_size=16)
    assert cache.images.shape == (0, 16, 16, 3) and cache.real_aus.shape == (0, 17)
    assert list(epochs.stream(0, cache.row_chunks).unbatch()) == []


def test_streams_of_the_cache_skip_the_graph_rewrites_that_would_copy_it():
    assert not image_cache.OPTIONS.experimental_optimization.apply_default_optimizations
