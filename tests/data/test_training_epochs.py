"""Tests for tf_ganimation/data/training_epochs.py: the epoch orders, slots and the end of the stream."""

import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.data import inventory, tfrecords, training_epochs

from conftest import config_for, make_ganimation_dir

SEED = training_epochs._epoch_seed(5, 3)


def _epochs(data_dir, shard=(1, 0), **overrides):
    config = config_for(data_dir, **overrides)
    examples = inventory.load_examples(config)
    return training_epochs.TrainingEpochs(examples.train, examples.data_format, config, 5, shard)


def _first_aus(dataset):
    """AU01 * 16 (the example's index in make_ganimation_dir) of every example of a dataset of chunks."""
    return [round(float(v) * 16) for chunk in dataset.as_numpy_iterator() for v in chunk["real_aus"][:, 0]]


@pytest.fixture
def records_dir(tmp_path):
    # 20 training records in 18 shards: more shards than the 16 read at a time.
    make_ganimation_dir(tmp_path / "faces", num_train=20, num_test=2)
    tfrecords.write_dataset(inventory.load_examples(config_for(tmp_path / "faces")), str(tmp_path / "records"),
                            num_shards=18)
    return tmp_path / "records"


def test_image_folder_epoch_is_a_permutation_and_its_slots_name_its_files(ganimation_dir):
    epochs = _epochs(ganimation_dir, cache_images=True)
    assert epochs.count == epochs.num_slots == 12
    decoded = _first_aus(epochs.decoded_examples(SEED, np.int64(0), tf.io.decode_jpeg))
    assert sorted(decoded) == list(range(12)) and decoded != list(range(12))
    slots = np.concatenate(list(epochs.slot_chunks(SEED, np.int64(0)).as_numpy_iterator()))
    assert decoded == slots.tolist()  # slot i is the pipeline's i-th file, face_{i:03d}
    assert _first_aus(epochs.decoded_examples(SEED, np.int64(5), tf.io.decode_jpeg)) == decoded[5:]


@pytest.mark.parametrize("shard", [(1, 0), (2, 1), (19, 3)])  # whole shards, then shared shards (18 < 19)
def test_record_slots_replay_the_order_the_records_are_read_in(records_dir, shard):
    indexed = _epochs(records_dir, shard, shuffle_buffer=3, cache_images=True)
    counted = _epochs(records_dir, shard, shuffle_buffer=3)
    assert indexed.count == counted.count == {(1, 0): 20, (2, 1): 10, (19, 3): 1}[shard]
    by_slot = {int(example["slot"]): round(float(example["real_aus"][0]) * 16)
               for example in indexed.all_examples().as_numpy_iterator()}
    for skip in (0, 1):
        decoded = _first_aus(counted.decoded_examples(SEED, np.int64(skip), tf.io.decode_jpeg))
        slots = np.concatenate(list(indexed.slot_chunks(SEED, np.int64(skip)).as_numpy_iterator()) or [[]])
        assert decoded == [by_slot[int(slot)] for slot in slots]
        assert len(decoded) == counted.count - skip


def test_the_stream_ends_at_an_empty_epoch_but_not_at_an_empty_partial_one(ganimation_dir):
    epochs = _epochs(ganimation_dir)

    def chunks(seed, skip):  # the partial epoch holds nothing, the full ones one example each
        return tf.data.Dataset.from_tensors(tf.zeros([tf.where(skip > 0, 0, 1)], tf.int64))

    assert len(list(epochs.stream(11, chunks).unbatch().take(3))) == 3
    empty = lambda seed, skip: tf.data.Dataset.from_tensors(tf.zeros([0], tf.int64))  # noqa: E731
    for first_example in (0, 11):
        assert list(epochs.stream(first_example, empty).unbatch()) == []


def test_a_stream_started_at_an_example_continues_the_one_started_at_zero(records_dir):
    epochs = _epochs(records_dir, shuffle_buffer=3, cache_images=True)
    slots = lambda first, count: list(epochs.stream(first, epochs.slot_chunks).unbatch().take(count))  # noqa: E731
    assert slots(27, 20) == slots(0, 47)[27:]


def test_a_pipeline_without_valid_records_is_an_error(records_dir):
    for shard in tfrecords.list_shards(str(records_dir), "train")[:-1]:  # the last holds one record
        tf.io.gfile.remove(shard)
    examples = inventory.load_examples(config_for(records_dir))
    with pytest.raises(inventory.EmptyDatasetError, match="input pipeline 1 of 2 has no valid record"):
        training_epochs.TrainingEpochs(examples.train, "tfrecord", config_for(records_dir), 0, (2, 1))
