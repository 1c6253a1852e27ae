"""The input pipelines: validated examples (inventory.py) -> {"real_image", "real_aus", "target_aus"} batches.

`make_training_dataset` is the infinite, resumable training stream (n_critic sub-batches per element,
sharded per input pipeline); `make_eval_dataset` and `fixed_samples` read a split once, in order.
`inventory.load_examples` finds and validates the examples first; the pipelines drop, with a logged
warning, an example whose file fails to read or decode after that check, so a file that turns bad
mid-run costs one example, not the run.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_ganimation.core import action_units, pixels
from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import tfrecords
from tf_ganimation.data.examples import Examples
from tf_ganimation.data.inventory import EmptyDatasetError, load_examples


def preprocess_image(encoded_image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes and normalises one image file; the same function runs eagerly and inside tf.data.

    Args:
        encoded_image: string [], the bytes of a JPEG or PNG file (grayscale becomes RGB, alpha is
            dropped).
        image_size: output height and width.

    Returns:
        float32 [image_size, image_size, 3] in [-1, 1].

    Notes: images that are not image_size x image_size are resized (bilinear, antialiased) without
    cropping, so a non-square image is squashed; faces are expected to be cropped already (the
    authors' data are 128x128 face crops).
    """
    image = tf.io.decode_image(encoded_image, channels=3, expand_animations=False)
    image = tf.cast(image, tf.float32)
    same_size = tf.reduce_all(tf.shape(image)[:2] == image_size)
    image = tf.cond(same_size, lambda: image,
                    lambda: tf.image.resize(image, [image_size, image_size], antialias=True))
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return tf.clip_by_value(pixels.uint8_to_model(image), -1.0, 1.0)


def random_target_aus(real_aus: tf.Tensor, noise: float, seed: tf.Tensor) -> tf.Tensor:
    """Target AUs for a batch: each example gets ANOTHER example's AUs plus uniform noise.

    Args:
        real_aus: float32 [num_examples, NUM_AUS] in [0, 1].
        noise: half-width of the U(-noise, noise) added per AU (DataConfig.target_aus_noise).
        seed: int32/int64 [2], a stateless random seed.

    Returns:
        float32 [num_examples, NUM_AUS] in [0, 1].

    Notes: the authors give each example the AUs of a random example of the whole dataset; here the
    donor is drawn among the examples of the same batch through a random cyclic permutation (so never
    the example itself when num_examples > 1). The batch is a random sample of the training set, so
    each target is still the AU vector of a random training example, and this needs no second pass
    over the data (TFRecords carry AUs and images together).
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    num_examples = tf.shape(real_aus)[0]
    order = tf.argsort(tf.random.stateless_uniform([num_examples], seeds[0]))
    donor = tf.scatter_nd(order[:, None], tf.roll(order, shift=1, axis=0), [num_examples])
    target_aus = tf.gather(real_aus, donor)
    target_aus += tf.random.stateless_uniform(tf.shape(real_aus), seeds[1], -noise, noise)
    return tf.clip_by_value(target_aus, 0.0, 1.0)


def make_training_dataset(config: DataConfig, input_context: tf.distribute.InputContext | None = None,
                          examples: Examples | None = None, first_step: int = 0) -> tf.data.Dataset:
    """The infinite training stream, from the elements of training step `first_step` + 1 on.

    Shuffled each epoch (file lists of (a)/(b) are shuffled whole, as they hold only paths;
    TFRecords shuffle their shard order and permute windows of config.shuffle_buffer records), repeated,
    decoded in parallel (AUTOTUNE), randomly flipped left-right when config.horizontal_flip, batched
    with drop_remainder and prefetched. Deterministic for a given config.seed. Under
    `strategy.distribute_datasets_from_function(lambda ctx: make_training_dataset(config, ctx,
    examples))` each input pipeline reads a disjoint shard of the data, and each train_step takes
    one element per replica it feeds (num_replicas_in_sync / num_input_pipelines: one per GPU of
    its host).

    Resuming: the stream started at `first_step` is element for element the uninterrupted stream
    from that step's first element on. Epoch e of a pipeline is shuffled by the stateless seed
    (seed, pipeline, e) and element i's flips and targets by (seed, pipeline, i), so no earlier epoch
    is read: (a)/(b) skip at most one epoch of file names, (c) reads (never decodes) the pipeline's
    records once to count them and then at most one epoch of records. The one exception: a file
    that stopped decoding after `load_examples` (dropped with a warning) shifts the examples behind it.

    Args:
        config: data settings; batch_size is the GLOBAL batch of one critic update.
        input_context: from distribute_datasets_from_function, or None for one pipeline.
        examples: `load_examples(config)`'s result, to avoid checking the data again; loaded if None.
        first_step: the training step to resume from (the number of steps already made).

    Returns:
        A dataset of {"real_image": float32 [B, n_critic, image_size, image_size, 3] in [-1, 1],
        "real_aus": float32 [B, n_critic, NUM_AUS] in [0, 1], "target_aus": float32 [B, n_critic,
        NUM_AUS] in [0, 1]} with static shapes, B = batch_size // num_replicas_in_sync (the batch
        axis comes first so a strategy splits examples, not critic sub-batches).

    Raises:
        ValueError: batch_size not divisible by the number of replicas, fewer training examples
            than input pipelines, or a negative first_step.
    """
    examples = examples or load_examples(config)
    if first_step < 0:
        raise ValueError(f"first_step={first_step} is invalid: expected a number >= 0")
    batch_size = config.batch_size
    pipelines, pipeline_id = 1, 0
    if input_context is not None:
        if config.batch_size % input_context.num_replicas_in_sync:
            raise ValueError(f"batch_size={config.batch_size} is invalid: expected a multiple of the "
                             f"number of replicas ({input_context.num_replicas_in_sync})")
        batch_size = input_context.get_per_replica_batch_size(config.batch_size)
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(examples.train) < pipelines:
        raise ValueError(f"{len(examples.train)} training examples in {examples.data_dir} cannot feed "
                         f"{pipelines} input pipelines")
    pipeline_seed = config.seed * 7919 + pipeline_id
    examples_per_element = batch_size * config.n_critic
    elements_per_step = max(1, input_context.num_replicas_in_sync // pipelines) if input_context is not None else 1
    first_element = first_step * elements_per_step
    dataset = _training_examples(examples, config, pipeline_seed, (pipelines, pipeline_id),
                                 first_example=first_element * examples_per_element)
    dataset = dataset.batch(examples_per_element, drop_remainder=True)
    dataset = dataset.enumerate(start=first_element)

    def training_element(index, batch):
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.constant(pipeline_seed, tf.int64), index]), 2)
        real_image = batch["real_image"]
        if config.horizontal_flip:
            flip = tf.random.stateless_uniform([tf.shape(real_image)[0]], seeds[0]) < 0.5
            real_image = tf.where(flip[:, None, None, None], tf.reverse(real_image, axis=[2]), real_image)
        target_aus = random_target_aus(batch["real_aus"], config.target_aus_noise, seeds[1])
        # Example i of the element is [i // n_critic, i % n_critic]: x[:, k] is critic update k's batch.
        group = lambda tensor: tf.reshape(tensor, [batch_size, config.n_critic, *tensor.shape[1:]])
        return {"real_image": group(real_image), "real_aus": group(batch["real_aus"]),
                "target_aus": group(target_aus)}

    dataset = dataset.map(training_element, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(config: DataConfig, split: str = "test", examples: Examples | None = None,
                      batch_size: int | None = None, drop_remainder: bool = False,
                      input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """One ordered pass over a split: no shuffle, no repeat, no flip.

    Args:
        config: data settings.
        split: "test" or "train".
        examples: `load_examples(config)`'s result; loaded if None.
        batch_size: the (global) batch; config.batch_size if None.
        drop_remainder: drop the last partial batch (static batch dimension).
        input_context: shards the split per input pipeline and divides the batch per replica.

    Returns:
        A dataset of {"real_image": float32 [B, image_size, image_size, 3] in [-1, 1],
        "real_aus": float32 [B, NUM_AUS] in [0, 1]}.

    Raises:
        EmptyDatasetError: the split has no usable example.
    """
    examples = examples or load_examples(config)
    if not len(examples.split(split)):
        raise EmptyDatasetError(f"the {split} split of {examples.data_dir} has no usable example")
    batch_size = batch_size or config.batch_size
    shard = (1, 0)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        shard = (input_context.num_input_pipelines, input_context.input_pipeline_id)
    dataset = _decoded_examples(examples, split, config, shard=shard)
    dataset = dataset.map(lambda example: {key: example[key] for key in ("real_image", "real_aus")})
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def fixed_samples(config: DataConfig, num_samples: int, split: str = "test",
                  examples: Examples | None = None) -> dict[str, np.ndarray]:
    """A deterministic set of examples with a target AU vector each, for the TensorBoard sample grid.

    The samples are the first usable examples of `split` in its order (the train split when the
    dataset has no test split); the target of sample i is the real AUs of example num_samples + i
    when the split has that many, else of sample (i + 1) % num_samples. No flip, no noise.

    Returns:
        {"real_image": float32 [n, H, W, 3] in [-1, 1], "real_aus": float32 [n, NUM_AUS] in [0, 1],
        "target_aus": float32 [n, NUM_AUS] in [0, 1], "id": str [n]} with n = min(num_samples, usable).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples={num_samples} is invalid: expected a number >= 1")
    examples = examples or load_examples(config)
    if not len(examples.split(split)):
        split = "train"
    dataset = _decoded_examples(examples, split, config, shard=(1, 0))
    rows = list(dataset.take(2 * num_samples).as_numpy_iterator())
    samples = rows[:num_samples]
    count = len(samples)
    if len(rows) >= 2 * count:
        donors = rows[count:2 * count]
    else:
        donors = [samples[(i + 1) % count] for i in range(count)]
    return {
        "real_image": np.stack([row["real_image"] for row in samples]),
        "real_aus": np.stack([row["real_aus"] for row in samples]),
        "target_aus": np.stack([row["real_aus"] for row in donors]),
        "id": np.array([row["id"].decode("utf-8") for row in samples]),
    }


def steps_per_epoch(num_examples: int, config: DataConfig) -> int:
    """Training steps per epoch: num_examples // (batch_size * n_critic), at least 1.

    One step consumes batch_size * n_critic examples (n_critic critic updates, one generator update).
    A dataset smaller than one step still gives 1: the training stream repeats.
    """
    return max(1, num_examples // (config.batch_size * config.n_critic))


def _decoded_examples(examples: Examples, split: str, config: DataConfig, shard: tuple[int, int]) -> tf.data.Dataset:
    """One ordered pass over a split as {"real_image" [H, W, 3] in [-1, 1], "real_aus" [17], "id" string []}.

    Examples whose file fails to read or decode are dropped with a logged warning (`ignore_errors`),
    so a file that turned bad after `load_examples` costs one example, not the run. (The training
    stream, shuffled per epoch, is `_training_examples`.)
    """
    data = examples.split(split)
    pipelines, pipeline_id = shard
    if examples.data_format == "tfrecord":
        dataset = tfrecords.read_records(data.record_paths, shard)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(
            {"path": list(data.image_paths), "real_aus": data.aus, "id": list(data.ids)})
        if pipelines > 1:
            dataset = dataset.shard(pipelines, pipeline_id)
    return _decoded(dataset, config)


def _decoded(files: tf.data.Dataset, config: DataConfig) -> tf.data.Dataset:
    """Reads ("path") or takes ("encoded_image") each example's image and decodes it, in parallel.

    An element with "end_of_epoch" True (see `_training_examples`) is passed through with a zero image.
    """

    def decode(example):
        def read_and_decode():
            # Files are read inside the parallel map so that reads overlap too.
            encoded = tf.io.read_file(example["path"]) if "path" in example else example["encoded_image"]
            return preprocess_image(encoded, config.image_size)

        decoded = {"real_aus": example["real_aus"], "id": example["id"]}
        if "end_of_epoch" in example:
            decoded["end_of_epoch"] = example["end_of_epoch"]
            decoded["real_image"] = tf.cond(
                example["end_of_epoch"], lambda: tf.zeros([config.image_size, config.image_size, 3]), read_and_decode)
        else:
            decoded["real_image"] = read_and_decode()
        return decoded

    # The warning names the error (e.g. "Unknown image file format"), not the file; load_examples
    # names it when run again.
    return files.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=True)


def _epoch_seed(pipeline_seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """int64 [2]: the stateless seed of one pipeline's epoch."""
    return tf.stack([tf.constant(pipeline_seed, tf.int64), tf.cast(epoch, tf.int64)])


def _training_examples(examples: Examples, config: DataConfig, pipeline_seed: int, shard: tuple[int, int],
                       first_example: int) -> tf.data.Dataset:
    """One pipeline's infinite stream of decoded training examples, from example `first_example` on.

    Returns {"real_image" [H, W, 3] in [-1, 1], "real_aus" [17], "id" string []}. Epochs are built one
    by one (`Dataset.range(first_epoch, ...).flat_map`), each shuffled by a seed made of the
    pipeline's seed and the epoch number, so the stream can start in any epoch without reading the
    ones before; the skip inside the first epoch happens before decoding. The stream ends (instead of
    spinning forever) at an epoch in which no file decodes, i.e. all turned bad after load_examples.

    Raises:
        EmptyDatasetError: (c) this pipeline's shards hold no valid record.
    """
    pipelines, pipeline_id = shard
    if examples.data_format == "tfrecord":
        epoch_files, count = _training_record_epochs(examples.train.record_paths, config, pipeline_seed, shard)
        marker = {"encoded_image": "", "real_aus": np.zeros(action_units.NUM_AUS, np.float32), "id": ""}
    else:
        split = examples.train
        table = {"path": tf.constant(split.image_paths[pipeline_id::pipelines]),
                 "real_aus": tf.constant(split.aus[pipeline_id::pipelines]),
                 "id": tf.constant(split.ids[pipeline_id::pipelines])}
        count = int(table["id"].shape[0])
        marker = {"path": "", "real_aus": np.zeros(action_units.NUM_AUS, np.float32), "id": ""}

        def epoch_files(epoch):
            # Only indices are shuffled, the whole epoch at once (a file list holds no pixels).
            order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64),
                                                             seed=_epoch_seed(pipeline_seed, epoch))
            return tf.data.Dataset.from_tensor_slices(order).map(
                lambda index: {key: tf.gather(value, index) for key, value in table.items()})

    first_epoch, offset = divmod(first_example, count)
    end_of_epoch = tf.data.Dataset.from_tensors({**marker, "end_of_epoch": True})

    def epoch_with_marker(epoch):
        files = epoch_files(epoch).skip(tf.where(epoch == first_epoch, np.int64(offset), np.int64(0)))
        return files.map(lambda example: {**example, "end_of_epoch": False}).concatenate(end_of_epoch)

    files = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch_with_marker)
    return _until_an_empty_epoch(_decoded(files, config))


def _until_an_empty_epoch(stream: tf.data.Dataset) -> tf.data.Dataset:
    """Drops the end-of-epoch markers and ends the stream at a marker that follows no example."""

    def count(decoded_in_epoch, example):
        end = example["end_of_epoch"]
        empty_epoch = tf.logical_and(end, tf.equal(decoded_in_epoch, 0))
        return tf.where(end, np.int64(0), decoded_in_epoch + 1), (empty_epoch, example)

    stream = stream.scan(np.int64(0), count)
    stream = stream.take_while(lambda empty_epoch, example: tf.logical_not(empty_epoch))
    stream = stream.filter(lambda empty_epoch, example: tf.logical_not(example["end_of_epoch"]))
    return stream.map(lambda empty_epoch, example: {key: value for key, value in example.items()
                                                    if key != "end_of_epoch"})


def _training_record_epochs(paths, config: DataConfig, pipeline_seed: int, shard: tuple[int, int]):
    """(epoch -> that epoch's parsed, valid records for this pipeline, their number per epoch).

    Shards are assigned to pipelines whole when there are at least as many as pipelines, else every
    pipeline reads all and keeps every pipelines-th valid record. Each epoch shuffles the shard order
    by the seed (pipeline seed, epoch), reads 16 shards at a time, interleaved, and permutes each
    window of config.shuffle_buffer consecutive records. The count reads the pipeline's records once
    (no decoding).

    Notes: a window permutation (a block shuffle), not tf.data's sliding shuffle buffer: a record
    moves at most one window; the shard order and the interleave of 16 shards mix across windows.
    """
    pipelines, pipeline_id = shard
    paths = list(paths)
    shard_files = pipelines > 1 and len(paths) >= pipelines
    if shard_files:
        paths = paths[pipeline_id::pipelines]
    path_tensor = tf.constant(paths)

    def valid_records(file_order):
        records = tf.data.Dataset.from_tensor_slices(tf.gather(path_tensor, file_order)).interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(paths), 16), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)
        # Unparseable records raise in parse_example and are dropped; bad AU vectors, empty and
        # non-JPEG/PNG image bytes are filtered (load_examples has already counted and named them).
        records = records.map(tfrecords.parse_example, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
        records = records.filter(lambda record: record["valid"] & tfrecords.is_jpeg_or_png(record["encoded_image"]))
        if pipelines > 1 and not shard_files:
            records = records.shard(pipelines, pipeline_id)
        return records.map(lambda record: {key: record[key] for key in ("encoded_image", "real_aus", "id")})

    def epoch_records(epoch):
        seed = _epoch_seed(pipeline_seed, epoch)
        order = tf.random.experimental.stateless_shuffle(tf.range(len(paths)), seed=seed)

        # Not Dataset.shuffle: with a tensor seed it fails once a global seed is set (as train() does),
        # and a Python seed cannot differ per epoch. Each window of shuffle_buffer records is permuted
        # by the seed (pipeline seed, epoch, window) instead.
        def permute(window_index, window):
            window_seed = tf.random.experimental.stateless_fold_in(seed, window_index)
            permutation = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(window["id"])[0]),
                                                                   seed=window_seed)
            return {key: tf.gather(value, permutation) for key, value in window.items()}

        windows = valid_records(order).batch(config.shuffle_buffer).enumerate()
        return windows.map(permute).unbatch()

    count = int(valid_records(tf.range(len(paths))).reduce(np.int64(0), lambda total, _: total + 1))
    if not count:
        raise EmptyDatasetError(f"input pipeline {pipeline_id} of {pipelines} has no valid record in {paths}")
    return epoch_records, count
