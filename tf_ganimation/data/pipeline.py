"""The input pipelines: validated examples (inventory.py) -> {"real_image", "real_aus", "target_aus"} batches.

`make_training_dataset` is the infinite, resumable training stream (n_critic sub-batches per element,
sharded per input pipeline, uint8 images: the model normalises them on the device);
`make_eval_dataset` and `fixed_samples` read a split once, in order, as float32 in [-1, 1].
`inventory.load_examples` finds and validates the examples first; the pipelines drop, with a logged
warning, an example whose file fails to read or decode after that check, so a file that turns bad
mid-run costs one example, not the run.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_ganimation.core import pixels
from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import image_cache, tfrecords, training_epochs
from tf_ganimation.data.examples import Examples
from tf_ganimation.data.inventory import EmptyDatasetError, load_examples

_JPEG_MAGIC = b"\xff\xd8"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decode_image(encoded_image: tf.Tensor) -> tf.Tensor:
    """Decodes a JPEG or a PNG file, chosen by its first bytes; the same function runs eagerly and in tf.data.

    Args:
        encoded_image: string [], the bytes of a JPEG or PNG file.

    Returns:
        uint8 [height, width, 3]: grayscale becomes RGB, alpha is dropped, 16-bit PNGs are scaled to 8
        bits (what tf.io.decode_image gives, bit for bit: JPEGs with its INTEGER_FAST DCT).

    Raises:
        tf.errors.InvalidArgumentError: bytes that are neither a JPEG nor a PNG (a GIF, say), or a
            corrupt file (the pipelines' ignore_errors drops the example).
    """
    is_jpeg = tf.strings.substr(encoded_image, 0, len(_JPEG_MAGIC)) == _JPEG_MAGIC

    def png():
        is_png = tf.strings.substr(encoded_image, 0, len(_PNG_MAGIC)) == _PNG_MAGIC
        # decode_png also reads GIFs; the training images are JPEG or PNG (core/image_files.py). Other
        # bytes become b"", which decode_png rejects ("Input is empty"): a stateless failure, unlike
        # tf.debugging.Assert, whose parallel map tf.data rewrites under op determinism, logging an
        # ERROR line (use_unbounded_threadpool) each time.
        return tf.io.decode_png(tf.where(is_png, encoded_image, b""), channels=3)

    return tf.cond(is_jpeg, lambda: tf.io.decode_jpeg(encoded_image, channels=3, dct_method="INTEGER_FAST"), png)


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
    image = tf.cast(decode_image(encoded_image), tf.float32)
    same_size = tf.reduce_all(tf.shape(image)[:2] == image_size)
    image = tf.cond(same_size, lambda: image,
                    lambda: tf.image.resize(image, [image_size, image_size], antialias=True))
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return tf.clip_by_value(pixels.uint8_to_model(image), -1.0, 1.0)


def preprocess_image_uint8(encoded_image: tf.Tensor, image_size: int) -> tf.Tensor:
    """`preprocess_image` before the normalisation: what the training stream carries.

    Returns:
        uint8 [image_size, image_size, 3] in [0, 255]; pixels.uint8_to_model of it is
        preprocess_image's result exactly when the file is image_size x image_size.

    Notes: a file of another size is resized as in preprocess_image (bilinear, antialiased, in
    float32), then rounded and clipped to uint8, so its pixels differ from preprocess_image's by up to
    half a grey level (1/255 in [-1, 1]).
    """
    image = decode_image(encoded_image)
    same_size = tf.reduce_all(tf.shape(image)[:2] == image_size)

    def resized():
        image_float = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image_float), 0.0, 255.0), tf.uint8)

    return tf.ensure_shape(tf.cond(same_size, lambda: image, resized), [image_size, image_size, 3])


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
    its host). Images stay uint8 to the device (a quarter of float32's bytes); the model maps them
    to [-1, 1] (pixels.uint8_to_model).

    With config.cache_images, the pipeline's images are decoded once, when the stream is built (in
    parallel; a logged line gives the count, size and time), and held in host memory as one uint8
    tensor: later epochs read no file and decode nothing. It needs image_size**2 * 3 bytes per
    image of this pipeline (200,000 faces at 128 px: 9.8 GB; at 32 px: 0.6 GB) and, while it is
    built, about twice that. TFRecords cache the decoded records of the pipeline's shards (all
    shards when there are fewer than pipelines). The stream is the same, element for element, with
    and without the cache, resumed or not, as long as the files that decode stay the same.

    Resuming: the stream started at `first_step` is element for element the uninterrupted stream
    from that step's first element on. Epoch e of a pipeline is shuffled by the stateless seed
    (seed, pipeline, e) and element i's flips and targets by (seed, pipeline, i), so no earlier epoch
    is read: (a)/(b) skip at most one epoch of file names, (c) reads (never decodes) the pipeline's
    records once to count them (twice to index them, with the cache) and then at most one epoch of
    records (none, with the cache). The one exception: a file that stopped decoding after
    `load_examples` (dropped with a warning) shifts the examples behind it.

    Args:
        config: data settings; batch_size is the GLOBAL batch of one critic update.
        input_context: from distribute_datasets_from_function, or None for one pipeline.
        examples: `load_examples(config)`'s result, to avoid checking the data again; loaded if None.
        first_step: the training step to resume from (the number of steps already made).

    Returns:
        A dataset of {"real_image": uint8 [B, n_critic, image_size, image_size, 3] in [0, 255],
        "real_aus": float32 [B, n_critic, NUM_AUS] in [0, 1], "target_aus": float32 [B, n_critic,
        NUM_AUS] in [0, 1]} with static shapes, B = batch_size // num_replicas_in_sync (the batch
        axis comes first so a strategy splits examples, not critic sub-batches). It ends, instead of
        spinning, at an epoch in which no example decodes (every file turned bad).

    Raises:
        ValueError: batch_size not divisible by the number of replicas, fewer training examples
            than input pipelines, or a negative first_step.
        EmptyDatasetError: (c) this pipeline's shards hold no valid record.
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
    epochs = training_epochs.TrainingEpochs(examples.train, examples.data_format, config, pipeline_seed,
                                            (pipelines, pipeline_id))
    first_example = first_element * examples_per_element
    decode = lambda encoded: preprocess_image_uint8(encoded, config.image_size)  # noqa: E731
    if config.cache_images:
        cache = image_cache.ImageCache.decode(epochs, decode)
        batches = epochs.stream(first_example, cache.row_chunks).rebatch(examples_per_element, drop_remainder=True)
        lookup = cache.lookup
    else:
        chunks = epochs.stream(first_example, lambda seed, skip: epochs.decoded_examples(seed, skip, decode))
        batches = chunks.rebatch(examples_per_element, drop_remainder=True)
        lookup = lambda batch: batch  # noqa: E731

    def training_element(index, batch):
        batch = lookup(batch)
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.constant(pipeline_seed, tf.int64), index]), 2)
        real_image = batch["real_image"]
        if config.horizontal_flip:
            flip = tf.random.stateless_uniform([examples_per_element], seeds[0]) < 0.5
            real_image = _flipped(real_image, flip)
        target_aus = random_target_aus(batch["real_aus"], config.target_aus_noise, seeds[1])
        # Example i of the element is [i // n_critic, i % n_critic]: x[:, k] is critic update k's batch.
        group = lambda tensor: tf.reshape(tensor, [batch_size, config.n_critic, *tensor.shape[1:]])
        return {"real_image": group(real_image), "real_aus": group(batch["real_aus"]),
                "target_aus": group(target_aus)}

    dataset = batches.enumerate(start=first_element).map(
        training_element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return dataset.with_options(image_cache.OPTIONS) if config.cache_images else dataset


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


def _flipped(images: tf.Tensor, flip: tf.Tensor) -> tf.Tensor:
    """images [n, H, W, C] with those where flip (bool [n]) is True mirrored left-right.

    Only the flipped images are reversed, then stitched back in place: several times faster on uint8
    than a tf.where over the whole batch, which broadcasts the condition (BENCHMARKS.md).
    """
    parts = tf.dynamic_partition(images, tf.cast(flip, tf.int32), 2)
    positions = tf.dynamic_partition(tf.range(tf.shape(images)[0]), tf.cast(flip, tf.int32), 2)
    return tf.dynamic_stitch(positions, [parts[0], tf.reverse(parts[1], axis=[2])])


def _decoded_examples(examples: Examples, split: str, config: DataConfig, shard: tuple[int, int]) -> tf.data.Dataset:
    """One ordered pass over a split as {"real_image" [H, W, 3] in [-1, 1], "real_aus" [17], "id" string []}.

    Examples whose file fails to read or decode are dropped with a logged warning (`ignore_errors`),
    so a file that turned bad after `load_examples` costs one example, not the run.
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

    def decode(example):
        # Files are read inside the parallel map so that reads overlap too.
        encoded = tf.io.read_file(example["path"]) if "path" in example else example["encoded_image"]
        return {"real_image": preprocess_image(encoded, config.image_size), "real_aus": example["real_aus"],
                "id": example["id"]}

    # The warning names the error (e.g. "not a JPEG or PNG image"), not the file; load_examples
    # names it when run again.
    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=True)
