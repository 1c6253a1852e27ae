"""Tests for tf_ganimation/data.py: layouts, validation summary, the tf.data pipelines."""

import hashlib
import os
import pickle
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_ganimation import action_units, annotations, data
from tf_ganimation.config import DataConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def half_image(size, left, right, mode="RGB"):
    """size x size image, left half one color, right half another (a flip is visible)."""
    array = np.zeros([size, size, 3], np.uint8)
    array[:, : size // 2] = left
    array[:, size // 2:] = right
    image = Image.fromarray(array)
    return image.convert(mode) if mode != "RGB" else image


def raw_aus_of(index, count):
    """Distinct raw 0..5 AUs per example: AU01 = 5 * index / count, the others a fixed ramp."""
    raw = np.linspace(0.0, 4.0, 17)
    raw[0] = 5.0 * index / count
    return raw


def make_ganimation_dir(root, num_train=12, num_test=4, size=24, protocol=2):
    """Layout (a) with JPEGs whose left half is dark and right half bright; returns the ids per split."""
    os.makedirs(root / "imgs")
    count = num_train + num_test
    ids = [f"face_{i:03d}" for i in range(count)]
    table = {}
    for i, example_id in enumerate(ids):
        half_image(size, 20 + i, 230 - i).save(root / "imgs" / f"{example_id}.jpg", quality=95)
        table[f"{example_id}.jpg" if i % 2 else example_id] = raw_aus_of(i, count)
    (root / "aus_openface.pkl").write_bytes(pickle.dumps(table, protocol=protocol))
    (root / "train_ids.csv").write_text("\n".join(f"{i}.jpg" for i in ids[:num_train]) + "\n")
    (root / "test_ids.csv").write_text("\n".join(ids[num_train:]) + "\n")
    return ids[:num_train], ids[num_train:]


@pytest.fixture
def ganimation_dir(tmp_path):
    make_ganimation_dir(tmp_path / "faces")
    return tmp_path / "faces"


def config_for(path, **overrides):
    settings = dict(data_dir=str(path), image_size=16, batch_size=4, n_critic=2, shuffle_buffer=16)
    settings.update(overrides)
    return DataConfig(**settings)


# === Layouts ===


def test_ids_in_both_id_lists_are_reported(tmp_path):
    _, test_ids = make_ganimation_dir(tmp_path / "faces")
    with open(tmp_path / "faces" / "train_ids.csv", "a") as lists:
        lists.write(f"{test_ids[1]}\n{test_ids[0]}\n")
    examples = data.load_examples(config_for(tmp_path / "faces"))
    assert set(test_ids[:2]) <= set(examples.train.ids) & set(examples.test.ids)
    assert f"2 ids are in both id lists (first: {test_ids[0]})" in str(examples.summary)


def test_ganimation_layout(ganimation_dir):
    examples = data.load_examples(config_for(ganimation_dir))
    assert examples.data_format == "ganimation"
    assert examples.train.ids == tuple(f"face_{i:03d}" for i in range(12))
    assert examples.test.ids == tuple(f"face_{i:03d}" for i in range(12, 16))
    # raw / 5: AU01 of face_008 is 5 * 8 / 16 = 2.5 raw -> 0.5; the last AU is 4.0 raw -> 0.8.
    assert examples.train.aus.dtype == np.float32
    np.testing.assert_allclose(examples.train.aus[8, 0], 0.5)
    np.testing.assert_allclose(examples.train.aus[:, -1], 0.8)
    assert examples.summary.usable == {"train": 12, "test": 4}
    assert examples.summary.num_skipped == 0
    assert "found aus_openface.pkl" in str(examples.summary)


def write_openface_csv(path, faces):
    """A CSV as OpenFace FeatureExtraction writes it: `, ` between cells, `_r` and `_c` columns."""
    header = ["frame", "face_id", "timestamp", "confidence", "success"]
    header += [f"{name}_r" for name in action_units.AU_NAMES] + [f"{name}_c" for name in action_units.AU_NAMES]
    lines = [", ".join(header)]
    for face_id, (confidence, raw) in enumerate(faces):
        cells = ["1", str(face_id), "0.000", f"{confidence:.2f}", "1"]
        cells += [f"{value:.2f}" for value in raw] + ["1"] * 17
        lines.append(", ".join(cells))
    path.write_text("\n".join(lines) + "\n")


def test_openface_layout_with_hash_split(tmp_path):
    root = tmp_path / "openface_data"
    os.makedirs(root / "imgs")
    os.makedirs(root / "openface")
    ids = [f"img{i}" for i in range(30)]
    for i, example_id in enumerate(ids):
        half_image(20, 10, 200).save(root / "imgs" / f"{example_id}.png")
        # A less confident second face with other AUs must be ignored.
        write_openface_csv(root / "openface" / f"{example_id}.csv",
                           [(0.95, raw_aus_of(i, 30)), (0.30, np.full(17, 5.0))])
    examples = data.load_examples(config_for(root))
    assert examples.data_format == "openface"
    expected_test = sorted(i for i in ids if int(hashlib.md5(i.encode()).hexdigest(), 16) % 100 < 10)
    assert sorted(examples.test.ids) == expected_test and len(examples.train) == 30 - len(expected_test)
    for example_id, aus in zip(examples.train.ids, examples.train.aus):
        np.testing.assert_allclose(aus, raw_aus_of(ids.index(example_id), 30).round(2) / 5, atol=1e-6)
    assert "MD5" in examples.summary.split_rule


def test_layout_errors_name_the_path_and_how_to_make_one(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="make_synthetic_dataset.py") as error:
        data.load_examples(config_for(tmp_path / "absent"))
    assert str(tmp_path / "absent") in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="cannot tell the layout"):
        data.load_examples(config_for(tmp_path / "empty"))
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "aus_openface.pkl").write_bytes(pickle.dumps({}))
    with pytest.raises(data.DatasetNotFoundError, match="imgs"):
        data.load_examples(config_for(no_images))
    no_pickle = tmp_path / "no_pickle"
    (no_pickle / "imgs").mkdir(parents=True)
    with pytest.raises(data.DatasetNotFoundError, match="aus_openface.pkl"):
        data.load_examples(config_for(no_pickle, data_format="ganimation"))


def test_no_usable_example_names_data_dir(tmp_path):
    root = tmp_path / "all_bad"
    (root / "imgs").mkdir(parents=True)
    (root / "imgs" / "a.jpg").write_bytes(b"")
    (root / "aus_openface.pkl").write_bytes(pickle.dumps({"a": np.ones(17)}))
    with pytest.raises(data.EmptyDatasetError, match="no usable training example") as error:
        data.load_examples(config_for(root))
    assert str(root) in str(error.value) and "empty file" in str(error.value)


# === Bad data ===


def test_bad_examples_are_skipped_counted_and_named(tmp_path):
    root = tmp_path / "mixed"
    make_ganimation_dir(root, num_train=10, num_test=2)
    good = (root / "imgs" / "face_000.jpg").read_bytes()
    table = pickle.loads((root / "aus_openface.pkl").read_bytes())
    bad = {
        "corrupt": (b"\x00garbage that is no image" * 10, np.ones(17)),
        "truncated": (good[: len(good) // 2], np.ones(17)),
        "empty": (b"", np.ones(17)),
        "unlabelled": (good, None),
        "nan_aus": (good, [np.nan] + [1.0] * 16),
        "short_aus": (good, np.ones(16)),
        "negative_aus": (good, [-1.0] + [1.0] * 16),
        "too_big_aus": (good, [6.0] + [1.0] * 16),
        "no_image": (None, np.ones(17)),
    }
    for name, (image_bytes, aus) in bad.items():
        if image_bytes is not None:
            (root / "imgs" / f"{name}.jpg").write_bytes(image_bytes)
        if aus is not None:
            table[name] = aus
    half_image(24, 0, 255).save(root / "imgs" / "truncated_png.png")
    png = (root / "imgs" / "truncated_png.png").read_bytes()
    (root / "imgs" / "truncated_png.png").write_bytes(png[: len(png) - 30])
    table["truncated_png"] = np.ones(17)
    (root / "aus_openface.pkl").write_bytes(pickle.dumps(table, protocol=2))
    with open(root / "train_ids.csv", "a") as file:
        file.write("\n".join([*bad, "truncated_png"]) + "\n")

    examples = data.load_examples(config_for(root))
    summary = examples.summary
    assert summary.usable == {"train": 10, "test": 2}
    assert summary.skipped_counts() == {
        data.NOT_AN_IMAGE: 1, data.CORRUPT_IMAGE: 2, data.EMPTY_FILE: 1, data.NO_AUS: 1,
        annotations.NON_FINITE_AUS: 1, annotations.WRONG_AU_COUNT: 1, annotations.AUS_OUT_OF_RANGE: 2,
        data.MISSING_IMAGE: 1}
    assert summary.skipped[data.CORRUPT_IMAGE] == ("truncated", "truncated_png")
    text = str(summary)
    assert "skipped: 10" in text and "truncated or corrupt image: 2 (truncated, truncated_png)" in text
    element = next(iter(data.make_training_dataset(config_for(root), examples=examples)))
    assert element["real_image"].shape == (4, 2, 16, 16, 3)


def test_a_file_that_turns_bad_after_loading_does_not_stop_the_epoch(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=2)
    examples = data.load_examples(config)
    (ganimation_dir / "imgs" / "face_013.jpg").write_bytes(b"now broken")
    os.remove(ganimation_dir / "imgs" / "face_014.jpg")
    batches = list(data.make_eval_dataset(config, "test", examples=examples))
    assert sum(len(batch["real_aus"]) for batch in batches) == 2
    # The two survivors, face_012 and face_015, in order.
    np.testing.assert_allclose(batches[0]["real_aus"][:, 0], [12 / 16, 15 / 16], atol=1e-6)
    (ganimation_dir / "imgs" / "face_003.jpg").write_bytes(b"")
    training = data.make_training_dataset(config, examples=examples)
    assert len(list(training.take(20))) == 20  # several epochs of 11 good training images


def test_a_training_stream_whose_files_all_turned_bad_ends_instead_of_spinning(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=2, n_critic=1)
    examples = data.load_examples(config)
    for path in (ganimation_dir / "imgs").iterdir():
        path.write_bytes(b"no longer an image")
    assert list(data.make_training_dataset(config, examples=examples).take(3)) == []


# === Pipelines ===


def test_training_element_layout_and_ranges(ganimation_dir):
    config = config_for(ganimation_dir)
    dataset = data.make_training_dataset(config)
    spec = dataset.element_spec
    assert set(spec) == {"real_image", "real_aus", "target_aus"}
    assert spec["real_image"].shape == (4, 2, 16, 16, 3)
    assert spec["real_aus"].shape == spec["target_aus"].shape == (4, 2, 17)
    for element in dataset.take(5):
        real_image, real_aus, target_aus = (element[k].numpy() for k in ("real_image", "real_aus", "target_aus"))
        assert all(value.dtype == np.float32 for value in (real_image, real_aus, target_aus))
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
    first = lambda seed: next(iter(data.make_training_dataset(config_for(ganimation_dir, seed=seed))))
    a, b, c = first(0), first(0), first(1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["real_aus"], c["real_aus"])


def test_flip_mirrors_some_images_and_only_when_enabled(ganimation_dir):
    def left_darker(config):
        images = np.concatenate([e["real_image"].numpy().reshape(-1, 16, 16, 3)
                                 for e in data.make_training_dataset(config).take(6)])
        return images[:, :, :4].mean(axis=(1, 2, 3)) < images[:, :, -4:].mean(axis=(1, 2, 3))

    assert left_darker(config_for(ganimation_dir, horizontal_flip=False)).all()
    flipped = left_darker(config_for(ganimation_dir, horizontal_flip=True))
    assert 0 < flipped.sum() < len(flipped)


def test_random_target_aus_are_another_examples_aus_plus_bounded_noise():
    real_aus = tf.constant(np.linspace(0.05, 0.95, 10 * 17, dtype=np.float32).reshape(10, 17))
    exact = data.random_target_aus(real_aus, 0.0, tf.constant([1, 2])).numpy()
    # No noise: a permutation of the rows without fixed points.
    donors = [int(np.flatnonzero((real_aus.numpy() == row).all(axis=1))[0]) for row in exact]
    assert sorted(donors) == list(range(10))
    assert all(donor != i for i, donor in enumerate(donors))
    noisy = data.random_target_aus(real_aus, 0.1, tf.constant([1, 2])).numpy()
    assert np.abs(noisy - exact).max() <= 0.1 + 1e-6
    assert np.abs(noisy - exact).max() > 0.05
    clipped = data.random_target_aus(tf.ones([4, 17]), 0.1, tf.constant([3, 4])).numpy()
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
    eager = data.preprocess_image(tf.io.read_file(str(path)), 16).numpy()
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
    through_dataset = next(iter(data.make_eval_dataset(config, "train")))["real_image"][0].numpy()
    np.testing.assert_array_equal(through_dataset, eager)


def test_eval_dataset_is_ordered_unflipped_and_plain(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=3)
    batches = list(data.make_eval_dataset(config))
    assert [set(batch) for batch in batches] == [{"real_image", "real_aus"}] * 2
    assert [batch["real_image"].shape[0] for batch in batches] == [3, 1]
    np.testing.assert_allclose(np.concatenate([b["real_aus"][:, 0] for b in batches]),
                               [12 / 16, 13 / 16, 14 / 16, 15 / 16], atol=1e-6)
    images = np.concatenate([b["real_image"] for b in batches])
    assert (images[:, :, :4].mean(axis=(1, 2, 3)) < images[:, :, -4:].mean(axis=(1, 2, 3))).all()
    dropped = list(data.make_eval_dataset(config, drop_remainder=True))
    assert len(dropped) == 1 and dropped[0]["real_image"].shape == (3, 16, 16, 3)


def test_fixed_samples_are_deterministic(ganimation_dir):
    config = config_for(ganimation_dir)
    samples = data.fixed_samples(config, 2)
    again = data.fixed_samples(config, 2)
    for key in samples:
        np.testing.assert_array_equal(samples[key], again[key])
    assert list(samples["id"]) == ["face_012", "face_013"]
    assert samples["real_image"].shape == (2, 16, 16, 3)
    # Targets are the AUs of the next two test examples (face_014, face_015).
    np.testing.assert_allclose(samples["target_aus"][:, 0], [14 / 16, 15 / 16], atol=1e-6)
    only_four = data.fixed_samples(config, 6)
    assert len(only_four["id"]) == 4
    np.testing.assert_allclose(only_four["target_aus"][:, 0], [13 / 16, 14 / 16, 15 / 16, 12 / 16], atol=1e-6)


def test_steps_per_epoch():
    config = DataConfig(batch_size=25, n_critic=5)
    assert data.steps_per_epoch(200_000, config) == 1600
    assert data.steps_per_epoch(249, config) == 1
    assert data.steps_per_epoch(10, config) == 1


# === Distribution ===


def test_distribute_datasets_from_function_with_one_device(ganimation_dir):
    config = config_for(ganimation_dir)
    examples = data.load_examples(config)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    distributed = strategy.distribute_datasets_from_function(
        lambda context: data.make_training_dataset(config, context, examples))
    element = next(iter(distributed))
    local = strategy.experimental_local_results(element["real_image"])
    assert len(local) == 1 and local[0].shape == (4, 2, 16, 16, 3)
    assert strategy.experimental_local_results(element["target_aus"])[0].shape == (4, 2, 17)


def test_input_context_shards_examples_and_divides_the_batch(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=4, n_critic=1)
    examples = data.load_examples(config)
    seen = []
    for pipeline in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        dataset = data.make_training_dataset(config, context, examples)
        assert dataset.element_spec["real_image"].shape == (2, 1, 16, 16, 3)
        seen.append({round(float(v), 5) for e in dataset.take(6) for v in e["real_aus"][..., 0].numpy().ravel()})
    assert len(seen[0]) == len(seen[1]) == 6 and not seen[0] & seen[1]
    odd = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=3)
    with pytest.raises(ValueError, match="batch_size=4"):
        data.make_training_dataset(config, odd, examples)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_devices_splits_the_batch(tmp_path):
    make_ganimation_dir(tmp_path / "faces")
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tf_ganimation import data
        from tf_ganimation.config import DataConfig
        config = DataConfig(data_dir={str(tmp_path / "faces")!r}, image_size=16, batch_size=4, n_critic=2)
        examples = data.load_examples(config)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        dataset = strategy.distribute_datasets_from_function(
            lambda context: data.make_training_dataset(config, context, examples))
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
    examples = data.load_examples(config)
    uninterrupted = _elements(data.make_training_dataset(config, examples=examples), first_step + 3)
    resumed = _elements(data.make_training_dataset(config, examples=examples, first_step=first_step), 3)
    _assert_same_elements(resumed, uninterrupted[first_step:])


def test_resumed_stream_of_one_input_pipeline_continues_that_pipeline(ganimation_dir):
    config = config_for(ganimation_dir, batch_size=4, n_critic=1)
    examples = data.load_examples(config)
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    uninterrupted = _elements(data.make_training_dataset(config, context, examples), 6)
    resumed = _elements(data.make_training_dataset(config, context, examples, first_step=4), 2)
    _assert_same_elements(resumed, uninterrupted[4:])
    with pytest.raises(ValueError, match="first_step=-1"):
        data.make_training_dataset(config, examples=examples, first_step=-1)


def test_a_pipeline_feeding_two_replicas_resumes_two_elements_per_step(ganimation_dir):
    # MirroredStrategy over 2 GPUs of one host: one pipeline, each step takes one element per replica.
    config = config_for(ganimation_dir, batch_size=4, n_critic=1)
    examples = data.load_examples(config)
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    uninterrupted = _elements(data.make_training_dataset(config, context, examples), 6)
    resumed = _elements(data.make_training_dataset(config, context, examples, first_step=2), 2)
    _assert_same_elements(resumed, uninterrupted[4:])


def test_resumed_tfrecord_stream_continues_the_uninterrupted_one(ganimation_dir, tmp_path):
    from tf_ganimation import tfrecords

    config = config_for(ganimation_dir)
    tfrecords.write_dataset(data.load_examples(config), str(tmp_path / "records"), num_shards=3)
    records_config = config_for(tmp_path / "records", batch_size=2, n_critic=2, shuffle_buffer=4)
    examples = data.load_examples(records_config)
    keras.utils.set_random_seed(0)  # as train() does: a global seed must not break the per-epoch shuffles
    uninterrupted = _elements(data.make_training_dataset(records_config, examples=examples), 9)
    resumed = _elements(data.make_training_dataset(records_config, examples=examples, first_step=6), 3)
    _assert_same_elements(resumed, uninterrupted[6:])
    # Each epoch of 12 records is a new permutation: elements 0-2 and 3-5 are two whole epochs.
    first_aus = [np.round(e["real_aus"][..., 0].ravel() * 16).astype(int) for e in uninterrupted[:6]]
    epoch_0, epoch_1 = np.concatenate(first_aus[:3]), np.concatenate(first_aus[3:6])
    assert sorted(epoch_0) == sorted(epoch_1) == list(range(12)) and list(epoch_0) != list(epoch_1)


# === Fuzzed data: what is usable, what is skipped, and that nothing usable is lost ===


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def claimed_size_png(width: int, height: int) -> bytes:
    """A valid-looking 8-bit grayscale PNG whose header claims width x height but holds ~1 KB of rows."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + _png_chunk(b"IEND", b""))


def _encoded(image: Image.Image, format: str, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


# Usable whatever the extension says, as long as TensorFlow's decoder reads them as JPEG or PNG.
GOOD_FUZZ = {
    "gray_jpeg": lambda face: (_encoded(face.convert("L"), "JPEG"), ".jpg"),
    "gray_png": lambda face: (_encoded(face.convert("L"), "PNG"), ".png"),
    "cmyk_jpeg": lambda face: (_encoded(face.convert("CMYK"), "JPEG", quality=95), ".jpg"),
    "palette_png": lambda face: (_encoded(face.convert("P"), "PNG"), ".png"),
    "rgba_png": lambda face: (_encoded(face.convert("RGBA"), "PNG"), ".png"),
    "gray16_png": lambda face: (_encoded(Image.fromarray(np.asarray(face.convert("L"), np.uint16) * 257), "PNG"),
                                ".png"),
    "rgb16_png": lambda face: (tf.io.encode_png(np.asarray(face, np.uint16) * 257).numpy(), ".png"),
    "png_named_jpg": lambda face: (_encoded(face, "PNG"), ".jpg"),
    "jpeg_named_png": lambda face: (_encoded(face, "JPEG"), ".png"),
    "progressive_jpeg": lambda face: (_encoded(face, "JPEG", progressive=True), ".jpeg"),
}
# name -> (file bytes or None for no file, extension, AU vector or None for no AUs, expected reason).
BAD_FUZZ = {
    "zero_bytes": (lambda face: b"", ".jpg", None, data.EMPTY_FILE),
    "truncated_jpeg": (lambda face: _encoded(face, "JPEG")[:300], ".jpg", None, data.CORRUPT_IMAGE),
    "truncated_png": (lambda face: _encoded(face, "PNG")[:-30], ".png", None, data.CORRUPT_IMAGE),
    "text_named_jpg": (lambda face: b"id,au01\nface,1.0\n" * 20, ".jpg", None, data.NOT_AN_IMAGE),
    "gif_named_jpg": (lambda face: _encoded(face, "GIF"), ".jpg", None, data.UNSUPPORTED_IMAGE_FORMAT),
    "bmp_named_png": (lambda face: _encoded(face, "BMP"), ".png", None, data.UNSUPPORTED_IMAGE_FORMAT),
    "bomb_30000_px": (lambda face: claimed_size_png(30000, 30000), ".png", None, data.TOO_MANY_PIXELS),
    "bomb_6000_px": (lambda face: claimed_size_png(6000, 6000), ".png", None, data.TOO_MANY_PIXELS),
    "aus_missing": (None, ".jpg", "absent", data.NO_AUS),
    "aus_nan": (None, ".jpg", [np.nan] + [1.0] * 16, annotations.NON_FINITE_AUS),
    "aus_inf": (None, ".jpg", [np.inf] + [1.0] * 16, annotations.NON_FINITE_AUS),
    "aus_negative": (None, ".jpg", [-0.5] + [1.0] * 16, annotations.AUS_OUT_OF_RANGE),
    "aus_above_5": (None, ".jpg", [5.5] + [1.0] * 16, annotations.AUS_OUT_OF_RANGE),
    "aus_16": (None, ".jpg", [1.0] * 16, annotations.WRONG_AU_COUNT),
    "aus_18": (None, ".jpg", [1.0] * 18, annotations.WRONG_AU_COUNT),
    "aus_text": (None, ".jpg", "not numbers", annotations.WRONG_AU_COUNT),
    "image_missing": (None, None, None, data.MISSING_IMAGE),
}


def add_fuzzed_examples(root, face: Image.Image) -> tuple[list[str], dict[str, int]]:
    """Adds GOOD_FUZZ and BAD_FUZZ examples (made from the RGB `face`) to the train split of layout (a).

    Returns:
        (ids of the good examples, expected skip count per reason).
    """
    table = pickle.loads((root / "aus_openface.pkl").read_bytes())
    good_aus = [0.5] * 17
    for name, make in GOOD_FUZZ.items():
        encoded, extension = make(face)
        (root / "imgs" / f"{name}{extension}").write_bytes(encoded)
        table[name] = good_aus
    expected: dict[str, int] = {}
    for name, (make, extension, aus, reason) in BAD_FUZZ.items():
        encoded = make(face) if make else (_encoded(face, "JPEG") if extension else None)
        if encoded is not None:
            (root / "imgs" / f"{name}{extension}").write_bytes(encoded)
        if aus != "absent":
            table[name] = good_aus if aus is None else aus
        expected[reason] = expected.get(reason, 0) + 1
    (root / "aus_openface.pkl").write_bytes(pickle.dumps(table, protocol=2))
    with open(root / "train_ids.csv", "a") as file:
        file.write("\n".join([*GOOD_FUZZ, *BAD_FUZZ]) + "\n")
    return list(GOOD_FUZZ), expected


def test_fuzzed_data_every_bad_item_counted_by_kind_and_no_good_example_lost(tmp_path):
    root = tmp_path / "fuzzed"
    make_ganimation_dir(root, num_train=10, num_test=2)
    good, expected = add_fuzzed_examples(root, half_image(24, (200, 120, 60), (40, 90, 160)))
    config = config_for(root, batch_size=2, n_critic=1)
    examples = data.load_examples(config)
    assert examples.summary.skipped_counts() == expected
    assert set(examples.summary.skipped[data.TOO_MANY_PIXELS]) == {"bomb_30000_px", "bomb_6000_px"}
    assert examples.summary.usable == {"train": 10 + len(good), "test": 2}
    assert set(good) <= set(examples.train.ids)
    # Every usable example decodes in TensorFlow too (ignore_errors would drop and shorten it).
    decoded = list(data.make_eval_dataset(config, "train", examples=examples, batch_size=64))
    images = np.concatenate([batch["real_image"].numpy() for batch in decoded])
    assert len(images) == len(examples.train) and np.isfinite(images).all()
    by_id = dict(zip(examples.train.ids, images))
    # Left half (200, 120, 60): the CMYK JPEG and the 16-bit PNGs keep the colour (or its luma).
    np.testing.assert_allclose(by_id["rgb16_png"][8, 2], np.array([200, 120, 60]) / 127.5 - 1, atol=0.02)
    np.testing.assert_allclose(by_id["cmyk_jpeg"][8, 2], np.array([200, 120, 60]) / 127.5 - 1, atol=0.1)
    assert abs(by_id["gray16_png"][8, 2, 0] - by_id["gray_png"][8, 2, 0]) < 0.02
    # A training epoch holds each usable example once.
    stream = data.make_training_dataset(config_for(root, batch_size=1, n_critic=1, horizontal_flip=False),
                                        examples=examples)
    epoch = np.concatenate([e["real_image"].numpy()[:, 0] for e in stream.take(len(examples.train))])
    assert len({image.tobytes() for image in epoch}) == len({image.tobytes() for image in images})


def test_image_pixel_limit_is_checked_on_the_header(tmp_path):
    path = tmp_path / "claims.png"
    path.write_bytes(claimed_size_png(5000, 5000))  # 25,000,000 pixels: at the limit, then undecodable rows
    assert data.check_image_file(str(path)) == data.CORRUPT_IMAGE
    assert data.check_image_file(str(path), max_pixels=24_999_999) == data.TOO_MANY_PIXELS
    assert data.MAX_IMAGE_PIXELS == 25_000_000
