"""Tests for tf_ganimation/pipeline.py: the tf.data pipelines, distribution, resuming the stream."""

import os
import pickle
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.core import pixels
from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import inventory, pipeline, tfrecords

from conftest import config_for, half_image, make_ganimation_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_file_that_turns_bad_after_loading_does_not_stop_the_epoch(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=2)
    examples = inventory.load_examples(config)
    (ganimation_dir / "imgs" / "face_013.jpg").write_bytes(b"now broken")
    os.remove(ganimation_dir / "imgs" / "face_014.jpg")
    batches = list(pipeline.make_eval_dataset(config, "test", examples=examples))
    assert sum(len(batch["real_aus"]) for batch in batches) == 2
    # The two survivors, face_012 and face_015, in order.
    np.testing.assert_allclose(batches[0]["real_aus"][:, 0], [12 / 16, 15 / 16], atol=1e-6)
    (ganimation_dir / "imgs" / "face_003.jpg").write_bytes(b"")
    training = pipeline.make_training_dataset(config, examples=examples)
    assert len(list(training.take(20))) == 20  # several epochs of 11 good training images


def test_a_training_stream_whose_files_all_turned_bad_ends_instead_of_spinning(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=2, n_critic=1)
    examples = inventory.load_examples(config)
    for path in (ganimation_dir / "imgs").iterdir():
        path.write_bytes(b"no longer an image")
    assert list(pipeline.make_training_dataset(config, examples=examples).take(3)) == []


# === Pipelines ===


def test_training_element_layout_and_ranges(ganimation_dir):
    config = config_for(ganimation_dir)
    dataset = pipeline.make_training_dataset(config)
    spec = dataset.element_spec
    assert set(spec) == {"real_image", "real_aus", "target_aus"}
    assert spec["real_image"].shape == (4, 2, 16, 16, 3)
    assert spec["real_aus"].shape == spec["target_aus"].shape == (4, 2, 17)
    assert spec["real_image"].dtype == tf.uint8
    for element in dataset.take(5):
        real_image, real_aus, target_aus = (element[k].numpy() for k in ("real_image", "real_aus", "target_aus"))
        assert real_image.dtype == np.uint8  # the model normalises on the device
        assert all(value.dtype == np.float32 for value in (real_aus, target_aus))
        real_image = pixels.uint8_to_model(real_image.astype(np.float32))
        assert -1.0 <= real_image.min() and real_image.max() <= 1.0
        assert real_image.min() < -0.6 and real_image.max() > 0.6  # dark and bright halves
        assert 0.0 <= real_aus.min() and real_aus.max() <= 1.0
        assert 0.0 <= target_aus.min() and target_aus.max() <= 1.0
        assert not np.any(np.all(target_aus == real_aus, axis=-1))
    # Epochs: 3 elements of 4 x 2 examples are two passes over the 12 training examples.
    first_au = np.concatenate([e["real_aus"].numpy()[..., 0].ravel() for e in dataset.take(3)])
    values, counts = np.unique(np.round(first_au * 16).astype(int), return_counts=True)
    assert values.tolist() == list(range(12)) and counts.tolist() == [2] * 12


def test_training_stream_is_deterministic_per_seed(ganimation_dir):
    first = lambda seed: next(iter(pipeline.make_training_dataset(config_for(ganimation_dir, seed=seed))))
    a, b, c = first(0), first(0), first(1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["real_aus"], c["real_aus"])


def test_flip_mirrors_some_images_and_only_when_enabled(ganimation_dir):
    def left_darker(config):
        images = np.concatenate([e["real_image"].numpy().reshape(-1, 16, 16, 3)
                                 for e in pipeline.make_training_dataset(config).take(6)])
        return images[:, :, :4].mean(axis=(1, 2, 3)) < images[:, :, -4:].mean(axis=(1, 2, 3))

    assert left_darker(config_for(ganimation_dir, horizontal_flip=False)).all()
    flipped = left_darker(config_for(ganimation_dir, horizontal_flip=True))
    assert 0 < flipped.sum() < len(flipped)


def test_random_target_aus_are_another_examples_aus_plus_bounded_noise():
    real_aus = tf.constant(np.linspace(0.05, 0.95, 10 * 17, dtype=np.float32).reshape(10, 17))
    exact = pipeline.random_target_aus(real_aus, 0.0, tf.constant([1, 2])).numpy()
    # No noise: a permutation of the rows without fixed points.
    donors = [int(np.flatnonzero((real_aus.numpy() == row).all(axis=1))[0]) for row in exact]
    assert sorted(donors) == list(range(10))
    assert all(donor != i for i, donor in enumerate(donors))
    noisy = pipeline.random_target_aus(real_aus, 0.1, tf.constant([1, 2])).numpy()
    assert np.abs(noisy - exact).max() <= 0.1 + 1e-6
    assert np.abs(noisy - exact).max() > 0.05
    clipped = pipeline.random_target_aus(tf.ones([4, 17]), 0.1, tf.constant([3, 4])).numpy()
    assert clipped.max() == 1.0 and clipped.min() >= 0.9 - 1e-6


@pytest.mark.parametrize("mode, colors, expected", [
    ("RGB", ((51, 102, 204), (51, 102, 204)), (-0.6, -0.2, 0.6)),      # c / 127.5 - 1
    ("L", ((0, 0, 0), (255, 255, 255)), None),                         # grayscale -> 3 equal channels
    ("RGBA", ((255, 0, 0), (255, 0, 0)), (1.0, -1.0, -1.0)),           # alpha dropped
])
def test_preprocess_image_golden_values_eager_and_in_tf_data(tmp_path, mode, colors, expected):
    path = tmp_path / "imgs" / "x.png"
    os.makedirs(path.parent)
    half_image(32, *colors, mode=mode).save(path)  # 32 px, resized to 16
    eager = pipeline.preprocess_image(tf.io.read_file(str(path)), 16).numpy()
    assert eager.shape == (16, 16, 3) and eager.dtype == np.float32
    if expected is not None:
        np.testing.assert_allclose(eager, np.broadcast_to(expected, eager.shape), atol=1e-6)
    else:
        np.testing.assert_array_equal(eager[..., 0], eager[..., 2])
        np.testing.assert_allclose(eager[:, 0], -1.0, atol=1e-6)
        np.testing.assert_allclose(eager[:, -1], 1.0, atol=1e-6)
    (tmp_path / "aus_openface.pkl").write_bytes(pickle.dumps({"x": np.full(17, 5.0)}))
    (tmp_path / "train_ids.csv").write_text("x\n")
    config = config_for(tmp_path, batch_size=1)
    through_dataset = next(iter(pipeline.make_eval_dataset(config, "train")))["real_image"][0].numpy()
    np.testing.assert_array_equal(through_dataset, eager)


def test_eval_dataset_is_ordered_unflipped_and_plain(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=3)
    batches = list(pipeline.make_eval_dataset(config))
    assert [set(batch) for batch in batches] == [{"real_image", "real_aus"}] * 2
    assert [batch["real_image"].shape[0] for batch in batches] == [3, 1]
    np.testing.assert_allclose(np.concatenate([b["real_aus"][:, 0] for b in batches]),
                               [12 / 16, 13 / 16, 14 / 16, 15 / 16], atol=1e-6)
    images = np.concatenate([b["real_image"] for b in batches])
    assert images.dtype == np.float32 and -1.0 <= images.min() < 0.0 < images.max() <= 1.0
    assert (images[:, :, :4].mean(axis=(1, 2, 3)) < images[:, :, -4:].mean(axis=(1, 2, 3))).all()
    dropped = list(pipeline.make_eval_dataset(config, drop_remainder=True))
    assert len(dropped) == 1 and dropped[0]["real_image"].shape == (3, 16, 16, 3)


def test_fixed_samples_are_deterministic(ganimation_dir):
    config = config_for(ganimation_dir)
    samples = pipeline.fixed_samples(config, 2)
    again = pipeline.fixed_samples(config, 2)
    for key in samples:
        np.testing.assert_array_equal(samples[key], again[key])
    assert list(samples["id"]) == ["face_012", "face_013"]
    assert samples["real_image"].shape == (2, 16, 16, 3) and samples["real_image"].dtype == np.float32
    assert -1.0 <= samples["real_image"].min() < 0.0 < samples["real_image"].max() <= 1.0
    # Targets are the AUs of the next two test examples (face_014, face_015).
    np.testing.assert_allclose(samples["target_aus"][:, 0], [14 / 16, 15 / 16], atol=1e-6)
    only_four = pipeline.fixed_samples(config, 6)
    assert len(only_four["id"]) == 4
    np.testing.assert_allclose(only_four["target_aus"][:, 0], [13 / 16, 14 / 16, 15 / 16, 12 / 16], atol=1e-6)


def test_steps_per_epoch():
    config = DataConfig(batch_size=25, n_critic=5)
    assert pipeline.steps_per_epoch(200_000, config) == 1600
    assert pipeline.steps_per_epoch(249, config) == 1
    assert pipeline.steps_per_epoch(10, config) == 1


# === Distribution ===


@pytest.mark.parametrize("cache_images", [False, True])
def test_distribute_datasets_from_function_with_one_device(ganimation_dir, cache_images):
    config = config_for(ganimation_dir, cache_images=cache_images)
    examples = inventory.load_examples(config)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    distributed = strategy.distribute_datasets_from_function(
        lambda context: pipeline.make_training_dataset(config, context, examples))
    element = next(iter(distributed))
    local = strategy.experimental_local_results(element["real_image"])
    assert len(local) == 1 and local[0].shape == (4, 2, 16, 16, 3) and local[0].dtype == tf.uint8
    assert strategy.experimental_local_results(element["target_aus"])[0].shape == (4, 2, 17)


def test_input_context_shards_examples_and_divides_the_batch(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=4, n_critic=1)
    examples = inventory.load_examples(config)
    seen = []
    for pipeline_id in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2)
        dataset = pipeline.make_training_dataset(config, context, examples)
        assert dataset.element_spec["real_image"].shape == (2, 1, 16, 16, 3)
        seen.append({round(float(v), 5) for e in dataset.take(6) for v in e["real_aus"][..., 0].numpy().ravel()})
    assert len(seen[0]) == len(seen[1]) == 6 and not seen[0] & seen[1]
    odd = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=3)
    with pytest.raises(ValueError, match="batch_size=4"):
        pipeline.make_training_dataset(config, odd, examples)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_devices_splits_the_batch(tmp_path):
    make_ganimation_dir(tmp_path / "faces")
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tf_ganimation.data import inventory, pipeline
        from tf_ganimation.core.config import DataConfig
        config = DataConfig(data_dir={str(tmp_path / "faces")!r}, image_size=16, batch_size=4, n_critic=2)
        examples = inventory.load_examples(config)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        dataset = strategy.distribute_datasets_from_function(
            lambda context: pipeline.make_training_dataset(config, context, examples))
        element = next(iter(dataset))
        print("SHAPES", [tuple(x.shape) for x in strategy.experimental_local_results(element["real_image"])])
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHAPES [(2, 2, 16, 16, 3), (2, 2, 16, 16, 3)]" in result.stdout


# === Resuming the training stream ===


def _elements(dataset, count):
    return [{key: value.numpy() for key, value in element.items()} for element in dataset.take(count)]


def _assert_same_elements(actual, expected):
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


@pytest.mark.parametrize("first_step", [1, 2, 7])
def test_training_stream_started_at_a_step_continues_the_uninterrupted_one(ganimation_dir, first_step):
    # 12 examples, 8 per element: element 1 straddles epochs 0 and 1, element 7 starts in epoch 4.
    config = config_for(ganimation_dir, batch_size=4, n_critic=2)
    examples = inventory.load_examples(config)
    uninterrupted = _elements(pipeline.make_training_dataset(config, examples=examples), first_step + 3)
    resumed = _elements(pipeline.make_training_dataset(config, examples=examples, first_step=first_step), 3)
    _assert_same_elements(resumed, uninterrupted[first_step:])


def test_resumed_stream_of_one_input_pipeline_continues_that_pipeline(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=4, n_critic=1)
    examples = inventory.load_examples(config)
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    uninterrupted = _elements(pipeline.make_training_dataset(config, context, examples), 6)
    resumed = _elements(pipeline.make_training_dataset(config, context, examples, first_step=4), 2)
    _assert_same_elements(resumed, uninterrupted[4:])
    with pytest.raises(ValueError, match="first_step=-1"):
        pipeline.make_training_dataset(config, examples=examples, first_step=-1)


def test_a_pipeline_feeding_two_replicas_resumes_two_elements_per_step(ganimation_dir):
    # MirroredStrategy over 2 GPUs of one host: one pipeline, each step takes one element per replica.
    config = config_for(ganimation_dir, batch_size=4, n_critic=1)
    examples = inventory.load_examples(config)
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    uninterrupted = _elements(pipeline.make_training_dataset(config, context, examples), 6)
    resumed = _elements(pipeline.make_training_dataset(config, context, examples, first_step=2), 2)
    _assert_same_elements(resumed, uninterrupted[4:])


def test_resumed_tfrecord_stream_continues_the_uninterrupted_one(ganimation_dir, tmp_path):
    config = config_for(ganimation_dir)
    tfrecords.write_dataset(inventory.load_examples(config), str(tmp_path / "records"), num_shards=3)
    records_config = config_for(tmp_path / "records", batch_size=2, n_critic=2, shuffle_buffer=4)
    examples = inventory.load_examples(records_config)
    keras.utils.set_random_seed(0)  # as train() does: a global seed must not break the per-epoch shuffles
    uninterrupted = _elements(pipeline.make_training_dataset(records_config, examples=examples), 9)
    resumed = _elements(pipeline.make_training_dataset(records_config, examples=examples, first_step=6), 3)
    _assert_same_elements(resumed, uninterrupted[6:])
    # Each epoch of 12 records is a new permutation: elements 0-2 and 3-5 are two whole epochs.
    first_aus = [np.round(e["real_aus"][..., 0].ravel() * 16).astype(int) for e in uninterrupted[:6]]
    epoch_0, epoch_1 = np.concatenate(first_aus[:3]), np.concatenate(first_aus[3:6])
    assert sorted(epoch_0) == sorted(epoch_1) == list(range(12)) and list(epoch_0) != list(epoch_1)


# === uint8 training images, decoding and the image cache ===


def test_training_images_are_the_uint8_of_preprocess_image(ganimation_dir):
    examples = inventory.load_examples(config_for(ganimation_dir))
    path_of = {round(float(aus[0]) * 16): path for path, aus in zip(examples.train.image_paths, examples.train.aus)}
    for image_size, tolerance in ((24, 0.0), (16, 1 / 255)):  # the files are 24 px: no resize, then a resize
        config = config_for(ganimation_dir, image_size=image_size, batch_size=1, n_critic=1, horizontal_flip=False)
        for element in _elements(pipeline.make_training_dataset(config, examples=examples), 12):
            image = element["real_image"][0, 0]
            expected = pipeline.preprocess_image(tf.io.read_file(path_of[round(element["real_aus"][0, 0, 0] * 16)]),
                                                 image_size).numpy()
            assert image.dtype == np.uint8
            normalised = pixels.uint8_to_model(image.astype(np.float32))
            if tolerance:
                assert np.abs(normalised - expected).max() <= tolerance + 1e-6  # rounded to uint8 after the resize
                assert not np.array_equal(normalised, expected)
            else:
                np.testing.assert_array_equal(normalised, expected)
                np.testing.assert_array_equal(image, np.round((expected + 1.0) * 127.5))


def test_png_and_jpeg_decode_by_their_bytes_and_a_gif_does_not(tmp_path):
    from PIL import Image

    image = half_image(20, (10, 200, 30), (250, 5, 90))
    image.save(tmp_path / "a.png")
    image.save(tmp_path / "png_named.jpg", format="PNG")
    image.save(tmp_path / "a.jpg", quality=90)
    image.save(tmp_path / "a.gif")
    for name in ("a.png", "png_named.jpg"):
        decoded = pipeline.decode_image(tf.io.read_file(str(tmp_path / name))).numpy()
        np.testing.assert_array_equal(decoded, np.asarray(image))
    encoded = tf.io.read_file(str(tmp_path / "a.jpg"))
    jpeg = pipeline.decode_image(encoded).numpy()
    assert jpeg.dtype == np.uint8 and jpeg.shape == (20, 20, 3)
    np.testing.assert_array_equal(jpeg, tf.io.decode_image(encoded, channels=3).numpy())  # what it replaced
    assert np.abs(jpeg.astype(int) - np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB"))).max() <= 8
    with pytest.raises(tf.errors.InvalidArgumentError, match="DecodePng"):  # refused as b"", "Input is empty"
        pipeline.decode_image(tf.io.read_file(str(tmp_path / "a.gif")))


@pytest.mark.parametrize("first_step", [0, 1, 7])
def test_cached_stream_is_the_uncached_one_element_for_element(ganimation_dir, first_step):
    config = config_for(ganimation_dir, batch_size=4, n_critic=2)
    examples = inventory.load_examples(config)
    (ganimation_dir / "imgs" / "face_005.jpg").write_bytes(b"broken before the cache is built")
    uncached = _elements(pipeline.make_training_dataset(config, examples=examples, first_step=first_step), 4)
    cached_config = config_for(ganimation_dir, batch_size=4, n_critic=2, cache_images=True)
    cached = pipeline.make_training_dataset(cached_config, examples=examples, first_step=first_step)
    assert cached.element_spec == pipeline.make_training_dataset(config, examples=examples).element_spec
    _assert_same_elements(_elements(cached, 4), uncached)
    assert 5 / 16 not in {float(v) for e in uncached for v in e["real_aus"][..., 0].ravel()}


def test_cached_stream_reads_no_file_after_it_is_built(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=4, n_critic=1, cache_images=True)
    examples = inventory.load_examples(config)
    expected = _elements(pipeline.make_training_dataset(config, examples=examples), 9)
    cached = pipeline.make_training_dataset(config, examples=examples)
    for path in (ganimation_dir / "imgs").iterdir():
        os.remove(path)
    _assert_same_elements(_elements(cached, 9), expected)  # 3 epochs of 12 images


def test_cached_stream_of_files_that_all_turned_bad_ends(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=2, n_critic=1, cache_images=True)
    examples = inventory.load_examples(config)
    for path in (ganimation_dir / "imgs").iterdir():
        path.write_bytes(b"no longer an image")
    assert list(pipeline.make_training_dataset(config, examples=examples).take(3)) == []


@pytest.mark.parametrize("cache_images", [False, True])
def test_a_resumed_stream_whose_first_epoch_ends_in_bad_files_goes_on(ganimation_dir, cache_images):
    config = config_for(ganimation_dir, batch_size=1, n_critic=1, cache_images=cache_images)
    examples = inventory.load_examples(config)
    uninterrupted = _elements(pipeline.make_training_dataset(config, examples=examples), 12)
    last_of_epoch_0 = round(float(uninterrupted[11]["real_aus"][0, 0, 0]) * 16)
    (ganimation_dir / "imgs" / f"face_{last_of_epoch_0:03d}.jpg").write_bytes(b"broken")
    resumed = _elements(pipeline.make_training_dataset(config, examples=examples, first_step=11), 3)
    assert len(resumed) == 3  # epoch 1 follows; the bad file is dropped from it
    assert last_of_epoch_0 / 16 not in {float(e["real_aus"][0, 0, 0]) for e in resumed}


@pytest.mark.parametrize("num_shards, pipelines", [(18, 1), (18, 2), (1, 2)])
def test_cached_tfrecord_stream_is_the_uncached_one(tmp_path, num_shards, pipelines):
    # 20 training records in 18 shards: more than the 16 read at a time, so shards are replaced mid-epoch.
    make_ganimation_dir(tmp_path / "faces", num_train=20, num_test=2)
    source = inventory.load_examples(config_for(tmp_path / "faces"))
    (tmp_path / "faces" / "imgs" / "face_004.jpg").write_bytes(b"\xff\xd8 a JPEG that does not decode")
    tfrecords.write_dataset(source, str(tmp_path / "records"), num_shards=num_shards)
    settings = dict(batch_size=2 * pipelines, n_critic=2, shuffle_buffer=3)
    examples = inventory.load_examples(config_for(tmp_path / "records", **settings))
    context = tf.distribute.InputContext(pipelines, pipelines - 1, pipelines)
    for first_step in (0, 5):
        uncached = _elements(pipeline.make_training_dataset(
            config_for(tmp_path / "records", **settings), context, examples, first_step=first_step), 8)
        cached = _elements(pipeline.make_training_dataset(
            config_for(tmp_path / "records", cache_images=True, **settings), context, examples,
            first_step=first_step), 8)
        _assert_same_elements(cached, uncached)
    assert len({float(v) for e in uncached for v in e["real_aus"][..., 0].ravel()}) > 4
