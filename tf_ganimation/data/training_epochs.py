"""The order of one input pipeline's training examples, epoch by epoch, and where the stream ends.

`TrainingEpochs` is the order `pipeline.make_training_dataset` reads; `image_cache.ImageCache` replays
the same order from memory. Epoch e is shuffled by the stateless seed (pipeline seed, e), so a stream
can start in any epoch without reading the ones before:
  * (a)/(b) image folders: the pipeline's file list (every pipelines-th file), permuted whole;
  * (c) TFRecords: the shard order permuted, 16 shards read at a time, interleaved, and each window
    of DataConfig.shuffle_buffer consecutive valid records permuted (a block shuffle). Shards go to
    pipelines whole when there are at least as many as pipelines; else every pipeline reads all and
    keeps every pipelines-th valid record.

A slot names one example for the whole run: (a)/(b) its index in the pipeline's file list, (c) its
record's position in the pipeline's shards, read in file order. Epochs travel as chunks (batches of
up to CHUNK examples, each epoch followed by an empty one, its marker), so that the per-example work
of tf.data stays in its C++ kernels: a tf.data function call costs tens of microseconds per element
on a busy core (BENCHMARKS.md), and the end-of-epoch bookkeeping runs once per chunk.

Notes: a window permutation, not tf.data's sliding shuffle buffer: a record moves at most one window;
the shard order and the interleave of 16 shards mix across windows. Not Dataset.shuffle either: with
a tensor seed it fails once a global seed is set (as train() does), and a Python seed cannot differ
per epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import tfrecords
from tf_ganimation.data.examples import Split
from tf_ganimation.data.inventory import EmptyDatasetError

# The end of an epoch, and of the partial epoch a resumed stream starts in (which may hold no
# example without the data having gone bad), as the marker chunk that follows it says.
EXAMPLES, EPOCH_END, PARTIAL_EPOCH_END = 0, 1, 2
CHUNK = 256
_INTERLEAVED_SHARDS = 16
_ALL_EPOCHS = np.iinfo(np.int64).max


class TrainingEpochs:
    """The training examples of one input pipeline, epoch by epoch.

    Args:
        split: the training split (`Examples.train`).
        data_format: ganimation | openface | tfrecord.
        config: seed, shuffle_buffer and cache_images are read ((c): the slots are indexed, reading
            the records twice more, only for the cache).
        pipeline_seed: the seed of this pipeline's epochs.
        shard: (input pipelines, this pipeline's index).

    Attributes:
        count: examples per epoch, as listed (before any file fails to decode).
        num_slots: slots are in [0, num_slots).

    Raises:
        EmptyDatasetError: (c) this pipeline's shards hold no valid record.
    """

    def __init__(self, split: Split, data_format: str, config: DataConfig, pipeline_seed: int,
                 shard: tuple[int, int]):
        self._seed, self._window = pipeline_seed, config.shuffle_buffer
        self._pipelines, self._pipeline_id = shard
        self._tfrecord = data_format == "tfrecord"
        if not self._tfrecord:
            self._paths = tf.constant(split.image_paths[self._pipeline_id::self._pipelines])
            self._aus = tf.constant(split.aus[self._pipeline_id::self._pipelines])
            self.count = self.num_slots = int(self._paths.shape[0])
            return
        paths = list(split.record_paths)
        self._shard_files = self._pipelines > 1 and len(paths) >= self._pipelines
        self._paths = paths[self._pipeline_id::self._pipelines] if self._shard_files else paths
        self._path_tensor = tf.constant(self._paths)
        if config.cache_images:
            self._index_slots()
        else:
            self.count = int(self._valid_records(tf.range(len(self._paths))).reduce(
                np.int64(0), lambda total, _: total + 1))
        if not self.count:
            raise EmptyDatasetError(f"input pipeline {self._pipeline_id} of {self._pipelines} has no valid "
                                    f"record in {self._paths}")

    def stream(self, first_example: int, epoch_chunks: Callable[[tf.Tensor, tf.Tensor], tf.data.Dataset]
               ) -> tf.data.Dataset:
        """The infinite stream of chunks of examples, from example `first_example` on.

        Args:
            first_example: the examples before it (as listed: `count` per epoch) are skipped.
            epoch_chunks: (epoch seed, examples to skip) -> that epoch's chunks: a dataset of batches
                of examples, as from `decoded_examples` or `slot_chunks`.

        Returns:
            The chunks, with the epochs' markers (empty chunks: `rebatch` skips them). It ends at an
            epoch with no example (every file turned bad), instead of spinning.
        """
        first_epoch, offset = divmod(first_example, self.count)

        def epoch(index):
            skip = tf.where(index == first_epoch, np.int64(offset), np.int64(0))
            end = tf.where(skip > 0, np.int64(PARTIAL_EPOCH_END), np.int64(EPOCH_END))
            chunks = epoch_chunks(_epoch_seed(self._seed, index), skip)
            marker = tf.nest.map_structure(lambda spec: tf.zeros([0, *spec.shape[1:]], spec.dtype),
                                           chunks.element_spec)
            examples = tf.data.Dataset.zip((tf.data.Dataset.from_tensors(np.int64(EXAMPLES)).repeat(), chunks))
            return examples.concatenate(tf.data.Dataset.from_tensors((end, marker)))

        return _until_an_empty_epoch(tf.data.Dataset.range(first_epoch, _ALL_EPOCHS).flat_map(epoch))

    def decoded_examples(self, seed: tf.Tensor, skip: tf.Tensor,
                         decode_image: Callable[[tf.Tensor], tf.Tensor]) -> tf.data.Dataset:
        """One epoch's chunks of {"real_image": decode_image's output, "real_aus"}, decoded in parallel.

        Files that fail to read or decode are dropped with a logged warning (`ignore_errors`); the
        warning names the error, not the file (load_examples names it when run again).
        """
        if self._tfrecord:
            examples = self._permuted(self._valid_records(self._shard_order(seed)), seed).skip(skip)
        else:
            order = self._file_order(seed, skip)
            examples = tf.data.Dataset.from_tensor_slices({"slot": order, "real_aus": tf.gather(self._aus, order)})
        decoded = examples.map(lambda example: {"real_image": decode_image(self.encoded_image(example)),
                                                "real_aus": example["real_aus"]},
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return decoded.ignore_errors(log_warning=True).batch(CHUNK)

    def slot_chunks(self, seed: tf.Tensor, skip: tf.Tensor) -> tf.data.Dataset:
        """One epoch's slots, in `decoded_examples`' order, as int64 chunks [n] (nothing read or decoded)."""
        if not self._tfrecord:
            return tf.data.Dataset.from_tensors(self._file_order(seed, skip))
        # The records' order without reading them: the same interleave over each shard's slot range.
        slots = tf.data.Dataset.from_tensor_slices(self._shard_order(seed)).interleave(
            lambda file: tf.data.Dataset.range(self._first_slot[file], self._first_slot[file + 1]),
            cycle_length=min(len(self._paths), _INTERLEAVED_SHARDS), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)
        is_usable = self._is_usable
        slots = slots.batch(CHUNK).map(lambda chunk: tf.boolean_mask(chunk, tf.gather(is_usable, chunk))).unbatch()
        if self._pipelines > 1 and not self._shard_files:
            slots = slots.shard(self._pipelines, self._pipeline_id)
        return self._permuted(slots, seed).skip(skip).batch(CHUNK)

    def encoded_image(self, example: dict[str, tf.Tensor]) -> tf.Tensor:
        """string []: the image file of an example of `all_examples` or of an epoch (read for (a)/(b))."""
        if self._tfrecord:
            return example["encoded_image"]
        # Files are read inside the parallel map so that reads overlap too.
        return tf.io.read_file(tf.gather(self._paths, example["slot"]))

    def all_examples(self) -> tf.data.Dataset:
        """Every example the pipeline may read, once, by slot: {"slot": int64 [], "real_aus", and (c)
        "encoded_image"}; (c) with fewer shards than pipelines: the valid records of all shards."""
        if not self._tfrecord:
            return tf.data.Dataset.from_tensor_slices({"slot": tf.range(self.count, dtype=tf.int64),
                                                       "real_aus": self._aus})
        return _valid(self._raw_records().enumerate(), with_slots=True)

    # === Orders ===

    def _file_order(self, seed, skip):
        # Only indices are shuffled, the whole epoch at once (a file list holds no pixels).
        return tf.random.experimental.stateless_shuffle(tf.range(self.count, dtype=tf.int64), seed=seed)[skip:]

    def _shard_order(self, seed):
        return tf.random.experimental.stateless_shuffle(tf.range(len(self._paths)), seed=seed)

    def _permuted(self, stream: tf.data.Dataset, seed) -> tf.data.Dataset:
        """Each window of `shuffle_buffer` consecutive elements permuted by the seed (epoch seed, window)."""

        def permute(window_index, window):
            window_seed = tf.random.experimental.stateless_fold_in(seed, window_index)
            size = tf.shape(tf.nest.flatten(window)[0])[0]
            permutation = tf.random.experimental.stateless_shuffle(tf.range(size), seed=window_seed)
            return tf.nest.map_structure(lambda value: tf.gather(value, permutation), window)

        return stream.batch(self._window).enumerate().map(permute).unbatch()

    # === Records ===

    def _raw_records(self, file_order=None) -> tf.data.Dataset:
        """The shards' records: in file order (slot order), or interleaved in `file_order`."""
        if file_order is None:
            return tf.data.Dataset.from_tensor_slices(self._path_tensor).flat_map(tf.data.TFRecordDataset)
        return tf.data.Dataset.from_tensor_slices(tf.gather(self._path_tensor, file_order)).interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(self._paths), _INTERLEAVED_SHARDS),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _valid_records(self, file_order) -> tf.data.Dataset:
        records = _valid(self._raw_records(file_order))
        if self._pipelines > 1 and not self._shard_files:
            records = records.shard(self._pipelines, self._pipeline_id)
        return records

    def _index_slots(self) -> None:
        """Counts each shard's records and finds the valid ones (two reads, no decoding)."""
        files = tf.data.Dataset.from_tensor_slices(self._path_tensor).enumerate()
        file_of_record = files.flat_map(lambda file, path: tf.data.TFRecordDataset(path).map(lambda _: file))
        per_file = np.bincount(_concatenated(file_of_record), minlength=len(self._paths))
        self._first_slot = tf.constant(np.concatenate([[0], np.cumsum(per_file)]), tf.int64)
        self.num_slots = int(per_file.sum())
        valid = _concatenated(_valid(self._raw_records().enumerate(), with_slots=True).map(lambda r: r["slot"]))
        mask = np.zeros(self.num_slots, bool)
        mask[valid] = True
        self._is_usable = tf.constant(mask)
        sharded = self._pipelines > 1 and not self._shard_files
        self.count = len(range(self._pipeline_id, len(valid), self._pipelines)) if sharded else len(valid)


def _valid(records: tf.data.Dataset, with_slots: bool = False) -> tf.data.Dataset:
    """{"encoded_image", "real_aus"} (and "slot", from (slot, record) pairs) of the parseable records with
    valid AUs and JPEG/PNG bytes."""

    def parse(*element):
        record = tfrecords.parse_example(element[-1])
        valid = record["valid"] & tfrecords.is_jpeg_or_png(record["encoded_image"])
        # Raised and dropped by ignore_errors, as an unparseable record is: a filter would cost one
        # more function call per record. load_examples has already counted and named them all.
        with tf.control_dependencies([tf.debugging.Assert(valid, ["an invalid record"])]):
            example = {"encoded_image": tf.identity(record["encoded_image"]), "real_aus": record["real_aus"]}
        return {**example, "slot": element[0]} if with_slots else example

    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()


def _until_an_empty_epoch(stream: tf.data.Dataset) -> tf.data.Dataset:
    """(end, chunk) pairs -> the chunks, ending at an EPOCH_END marker that follows no example.

    A PARTIAL_EPOCH_END never ends it: the rest of an epoch a resumed stream starts in may hold only
    bad files while the files before it are fine.
    """

    def count(examples_in_epoch, element):
        end, chunk = element
        examples_in_epoch += tf.cast(tf.shape(tf.nest.flatten(chunk)[0])[0], tf.int64)
        empty_epoch = tf.logical_and(tf.equal(end, EPOCH_END), tf.equal(examples_in_epoch, 0))
        return tf.where(end > 0, np.int64(0), examples_in_epoch), (empty_epoch, chunk)

    stream = stream.scan(np.int64(0), count)
    stream = stream.take_while(lambda empty_epoch, chunk: tf.logical_not(empty_epoch))
    # The markers stay: empty chunks, which rebatch skips.
    return stream.map(lambda empty_epoch, chunk: chunk)


def _epoch_seed(pipeline_seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """int64 [2]: the stateless seed of one pipeline's epoch."""
    return tf.stack([tf.constant(pipeline_seed, tf.int64), tf.cast(epoch, tf.int64)])


def _concatenated(values: tf.data.Dataset) -> np.ndarray:
    """int64 [n]: a dataset of int64 scalars, read in large batches."""
    batches = list(values.batch(1 << 16).as_numpy_iterator())
    return np.concatenate(batches) if batches else np.zeros([0], np.int64)

