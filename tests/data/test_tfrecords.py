"""Tests for tf_ganimation/data/tfrecords.py and scripts/prepare_dataset.py --to_tfrecord."""

import io
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import annotations, inventory, pipeline, tfrecords

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_source(root, num_train=10, num_test=3):
    """A ganimation layout of 24-px JPEGs/PNGs; AU01 of example i is 5 * i / count raw, the rest 1.0."""
    os.makedirs(root / "imgs")
    count = num_train + num_test
    table, ids = {}, []
    rng = np.random.default_rng(0)
    for i in range(count):
        example_id = f"face_{i:02d}"
        extension = "png" if i % 3 == 0 else "jpg"
        Image.fromarray(rng.integers(0, 256, [24, 24, 3], np.uint8)).save(root / "imgs" / f"{example_id}.{extension}")
        table[example_id] = np.array([5.0 * i / count] + [1.0] * 16)
        ids.append(example_id)
    (root / "aus_openface.pkl").write_bytes(pickle.dumps(table, protocol=2))
    (root / "train_ids.csv").write_text("\n".join(ids[:num_train]) + "\n")
    (root / "test_ids.csv").write_text("\n".join(ids[num_train:]) + "\n")
    return root


def config_for(path, **overrides):
    return DataConfig(**{**dict(data_dir=str(path), image_size=16, batch_size=2, n_critic=2), **overrides})


def jpeg_bytes(value=128):
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (value, value, value)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_parse_example_normalises_raw_aus_and_flags_bad_records():
    raw = tfrecords.serialize_example(b"\xff\xd8jpeg", [2.5] * 17, "a", normalized=False)
    parsed = tfrecords.parse_example(tf.constant(raw))
    np.testing.assert_allclose(parsed["real_aus"], [0.5] * 17)
    assert parsed["valid"] and parsed["id"] == b"a" and parsed["encoded_image"] == b"\xff\xd8jpeg"
    normalized = tfrecords.parse_example(tf.constant(tfrecords.serialize_example(b"x", [0.25] * 17, "b")))
    np.testing.assert_allclose(normalized["real_aus"], [0.25] * 17)
    for image, aus, normalized in [(b"x", [0.5] * 16, True), (b"x", [np.nan] * 17, True),
                                   (b"x", [1.5] * 17, True), (b"x", [5.5] * 17, False), (b"", [0.5] * 17, True)]:
        parsed = tfrecords.parse_example(tf.constant(tfrecords.serialize_example(image, aus, "c", normalized)))
        assert not parsed["valid"] and parsed["real_aus"].shape == (17,)


def test_is_jpeg_or_png_reads_the_first_bytes():
    encoded = tf.constant([jpeg_bytes(), b"\x89PNG\r\n\x1a\n...", b"\x89PNG\r\n", b"GIF89a", b"", b"\xff"])
    assert tf.map_fn(tfrecords.is_jpeg_or_png, encoded, fn_output_signature=tf.bool).numpy().tolist() == [
        True, True, False, False, False, False]


def test_read_records_keeps_valid_records_in_file_order_per_pipeline(tmp_path):
    paths = []
    for index, ids in enumerate([("a", "b", "bad", "c"), ("d", "e")]):
        paths.append(str(tmp_path / tfrecords.shard_name("test", index, 2)))
        with tf.io.TFRecordWriter(paths[-1]) as writer:
            for example_id in ids:
                aus = [np.nan] * 17 if example_id == "bad" else [0.5] * 17
                writer.write(tfrecords.serialize_example(jpeg_bytes(), aus, example_id))

    def ids(shard):
        return [record["id"].decode() for record in tfrecords.read_records(paths, shard).as_numpy_iterator()]

    assert ids((1, 0)) == ["a", "d", "b", "e", "c"]  # the files interleaved record by record, "bad" dropped
    assert (ids((2, 0)), ids((2, 1))) == (["a", "b", "c"], ["d", "e"])  # whole files per pipeline
    # Fewer files than pipelines: every third record of a, d, b, e, bad, c, before "bad" is dropped.
    assert (ids((3, 0)), ids((3, 1)), ids((3, 2))) == (["a", "e"], ["d"], ["b", "c"])


def test_a_failed_write_leaves_no_shard_and_no_temporary(tmp_path, monkeypatch):
    examples = inventory.load_examples(config_for(make_source(tmp_path / "source", num_train=4, num_test=0)))

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tfrecords, "serialize_example", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        tfrecords.write_dataset(examples, str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []


def test_round_trip_keeps_ids_aus_and_pixels(tmp_path):
    source = make_source(tmp_path / "source")
    examples = inventory.load_examples(config_for(source))
    out = tmp_path / "records"
    info = tfrecords.write_dataset(examples, str(out), num_shards=3)
    assert sorted(os.listdir(out)) == [
        "dataset_info.json", "test-00000-of-00003.tfrecord", "test-00001-of-00003.tfrecord",
        "test-00002-of-00003.tfrecord", "train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord"]
    assert (out / "dataset_info.json").read_text() == json.dumps(info, indent=2)  # no temporary file is left
    assert info["splits"]["train"]["num_examples"] == 10 and info["splits"]["test"]["num_examples"] == 3
    assert info["aus_normalized"] is True and len(info["au_names"]) == 17

    records = inventory.load_examples(config_for(out))
    assert records.data_format == "tfrecord" and records.summary.usable == {"train": 10, "test": 3}
    for split in ("train", "test"):
        by_id = dict(zip(records.split(split).ids, records.split(split).aus))
        source_split = examples.split(split)
        assert sorted(by_id) == sorted(source_split.ids)
        for example_id, aus in zip(source_split.ids, source_split.aus):
            np.testing.assert_array_equal(by_id[example_id], aus)
    # Same bytes, same decoder: the pixels through the TFRecord pipeline equal the source's.
    from_records = pipeline.fixed_samples(config_for(out), 3)
    source_samples = pipeline.fixed_samples(config_for(source), 3)
    from_source = dict(zip(source_samples["id"], source_samples["real_image"]))
    for example_id, image in zip(from_records["id"], from_records["real_image"]):
        np.testing.assert_array_equal(image, from_source[example_id])
    element = next(iter(pipeline.make_training_dataset(config_for(out), examples=records)))
    assert element["real_image"].shape == (2, 2, 16, 16, 3) and element["target_aus"].shape == (2, 2, 17)


def test_write_refuses_to_overwrite_and_to_convert_records(tmp_path):
    source = make_source(tmp_path / "source", num_train=4, num_test=0)
    examples = inventory.load_examples(config_for(source))
    info = tfrecords.write_dataset(examples, str(tmp_path / "out"))
    assert info["splits"]["test"] == {"num_examples": 0, "num_shards": 0, "files": []}
    assert info["splits"]["train"]["num_shards"] == 1  # automatic: a few KB is one shard
    with pytest.raises(ValueError, match="already holds"):
        tfrecords.write_dataset(examples, str(tmp_path / "out"))
    with pytest.raises(ValueError, match="already in the tfrecord layout"):
        tfrecords.write_dataset(inventory.load_examples(config_for(tmp_path / "out")), str(tmp_path / "again"))


def test_bad_records_are_counted_when_loading_and_skipped_when_reading(tmp_path):
    out = tmp_path / "records"
    out.mkdir()
    good = jpeg_bytes()
    with tf.io.TFRecordWriter(str(out / "train-00000-of-00002.tfrecord")) as writer:
        for i in range(6):
            writer.write(tfrecords.serialize_example(good, [i / 10] * 17, f"good{i}"))
        writer.write(tfrecords.serialize_example(good, [np.nan] * 17, "nan"))
        writer.write(tfrecords.serialize_example(good, [0.5] * 3, "short"))
        writer.write(tfrecords.serialize_example(good, [5.5] * 17, "raw_too_big", normalized=False))
        writer.write(tfrecords.serialize_example(b"", [0.5] * 17, "no_image"))
        writer.write(tfrecords.serialize_example(b"GIF89a...", [0.5] * 17, "gif"))
        writer.write(b"\x01\x02 not an Example")
        writer.write(tfrecords.serialize_example(good, [5.0] * 17, "raw_ok", normalized=False))
    with tf.io.TFRecordWriter(str(out / "train-00001-of-00002.tfrecord")) as writer:
        writer.write(tfrecords.serialize_example(good, [0.1] * 17, "in_corrupt_shard"))
    shard = out / "train-00001-of-00002.tfrecord"
    corrupted = bytearray(shard.read_bytes())
    corrupted[20] ^= 0xFF
    shard.write_bytes(bytes(corrupted))

    examples = inventory.load_examples(config_for(out))
    assert examples.train.ids == tuple(f"good{i}" for i in range(6)) + ("raw_ok",)
    np.testing.assert_allclose(examples.train.aus[-1], [1.0] * 17)
    assert examples.summary.skipped_counts() == {
        annotations.NON_FINITE_AUS: 1, annotations.WRONG_AU_COUNT: 1, annotations.AUS_OUT_OF_RANGE: 1,
        tfrecords.EMPTY_IMAGE: 1, tfrecords.NOT_AN_IMAGE: 1, tfrecords.UNPARSEABLE_RECORD: 1,
        tfrecords.CORRUPT_SHARD: 1}
    assert examples.summary.skipped[tfrecords.UNPARSEABLE_RECORD] == ("train-00000-of-00002.tfrecord#11",)
    assert examples.train.record_paths == (str(out / "train-00000-of-00002.tfrecord"),)
    # The reader skips the same records (the GIF's bytes fail to decode): 7 usable examples.
    config = config_for(out, batch_size=7, n_critic=1, horizontal_flip=False)
    first_epoch = next(iter(pipeline.make_training_dataset(config, examples=examples)))
    au = np.sort(first_epoch["real_aus"].numpy()[:, 0, 0])
    np.testing.assert_allclose(au, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0], atol=1e-6)


@pytest.mark.slow
def test_prepare_dataset_script(tmp_path):
    source = make_source(tmp_path / "source")
    script = os.path.join(ROOT, "scripts", "prepare_dataset.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, script, f"--data_dir={source}", f"--to_tfrecord={tmp_path / 'out'}",
                             "--num_shards=2"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train: 10 examples in 2 shards, test: 3 examples in 2 shards" in result.stdout
    assert (tmp_path / "out" / "train-00001-of-00002.tfrecord").exists()
    missing = subprocess.run([sys.executable, script, f"--data_dir={tmp_path / 'absent'}",
                              f"--to_tfrecord={tmp_path / 'out2'}"], capture_output=True, text=True, env=env,
                             timeout=300)
    assert missing.returncode == 2
    assert f"{tmp_path / 'absent'} does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
