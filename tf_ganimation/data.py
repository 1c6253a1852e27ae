"""The input pipeline: AU-labelled face images -> {"real_image", "real_aus", "target_aus"} batches.

Three layouts of `DataConfig.data_dir` are read (`data_format="auto"` detects which, see
`detect_format`):

  (a) "ganimation", the authors' layout:
        <dir>/imgs/<id>.jpg (or .png)
        <dir>/aus_openface.pkl     dict id -> 17 raw OpenFace intensities (0..5); ids with or without
                                   the extension; Python 2 or 3 pickles (read by a restricted unpickler)
        <dir>/train_ids.csv, <dir>/test_ids.csv   one file name per line, extension optional
  (b) "openface", OpenFace's own output:
        <dir>/imgs/<id>.jpg (or .png)
        <dir>/openface/<id>.csv    FaceLandmarkImg / FeatureExtraction output for that image; the
                                   `AU.._r` columns of the most confident face are used
        <dir>/train_ids.csv, <dir>/test_ids.csv   optional, as in (a)
  (c) "tfrecord", for large datasets (see tfrecords.py; made by scripts/prepare_dataset.py):
        <dir>/train-00000-of-000NN.tfrecord ..., <dir>/test-...tfrecord, <dir>/dataset_info.json

Splits for (a) and (b): the id lists when either file exists (an id in neither is not used), else a
deterministic split by the MD5 of the id (HASH_SPLIT_TEST_PERCENT % test).

Bad data never stops training. `load_examples` validates everything up front (AU vectors; for (a)/(b)
every image is opened and decoded with PIL in a thread pool, after its header's pixel count is
checked against MAX_IMAGE_PIXELS; for (c) every record is parsed) and returns a `DataSummary` that
counts and names what was skipped and why. As a second line of defence
the tf.data pipelines drop (with a logged warning) an example whose file fails to read or decode later.

Errors: a missing data_dir / imgs folder / AU file raises `DatasetNotFoundError` (a FileNotFoundError);
no usable training example raises `EmptyDatasetError` (a ValueError); an unsafe or malformed AU pickle
raises `annotations.UnsafePickleError` / `annotations.AnnotationError` (ValueErrors). Each message names
the path and the expected layout.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import time
from typing import Mapping

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image, UnidentifiedImageError

from tf_ganimation import action_units, annotations, tfrecords
from tf_ganimation.config import DataConfig

RESOLVED_FORMATS = ("ganimation", "openface", "tfrecord")
IMAGES_FOLDER = "imgs"
AUS_PICKLE = "aus_openface.pkl"
OPENFACE_FOLDER = "openface"
ID_LISTS = {"train": "train_ids.csv", "test": "test_ids.csv"}
HASH_SPLIT_TEST_PERCENT = 10

# Reasons an example is skipped (besides those in annotations.py and tfrecords.py).
MISSING_IMAGE = "missing image"
NO_AUS = "no AUs"
EMPTY_FILE = "empty file"
NOT_AN_IMAGE = "not an image"
UNSUPPORTED_IMAGE_FORMAT = "not JPEG/PNG"
CORRUPT_IMAGE = "truncated or corrupt image"
TOO_MANY_PIXELS = "too many pixels (a decompression bomb?)"

# The largest image (width * height, as its header claims) that `check_image_file` accepts. Training
# images are face crops (the authors' are 128x128); a 24 MP camera photo (6000x4000) still passes. A
# file claiming more is refused from its header, before any pixel is decoded: a 2 KB PNG can claim
# 30000x30000 pixels, which TensorFlow's decoder would try to allocate (2.7 GB) in every parallel call.
MAX_IMAGE_PIXELS = 25_000_000

_LAYOUTS = (
    "expected one of: (a) ganimation: <dir>/imgs/<id>.jpg|png + <dir>/aus_openface.pkl (dict id -> 17 raw "
    "OpenFace AU intensities) + train_ids.csv/test_ids.csv; (b) openface: <dir>/imgs/<id>.jpg|png + "
    "<dir>/openface/<id>.csv (OpenFace output per image); (c) tfrecord: <dir>/train-00000-of-000NN.tfrecord "
    "... + dataset_info.json. Make a tiny dataset with scripts/make_synthetic_dataset.py --out DIR, or "
    "convert one with scripts/prepare_dataset.py --data_dir SRC --to_tfrecord OUT.")


class DatasetNotFoundError(FileNotFoundError):
    """data_dir, its imgs folder or its AU table is missing (the message says which layout is expected)."""


class EmptyDatasetError(ValueError):
    """The dataset (or the requested split) has no usable example."""


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """What `load_examples` found: usable examples per split, skipped ones by reason. `str()` to log it.

    Attributes:
        data_dir: the folder read.
        data_format: the resolved layout: ganimation | openface | tfrecord.
        found: what format detection saw (or what was checked for a named format).
        split_rule: how train/test were decided.
        usable: split name -> number of usable examples.
        skipped: reason -> names (ids, or shard files) of the skipped examples, in order.
        notes: warnings that do not skip anything (e.g. unlisted images, suspiciously small AUs).
        images_checked: how many image files were opened and decoded.
        check_seconds: the wall time of that check.
    """

    data_dir: str
    data_format: str
    found: str
    split_rule: str
    usable: Mapping[str, int]
    skipped: Mapping[str, tuple[str, ...]]
    notes: tuple[str, ...] = ()
    images_checked: int = 0
    check_seconds: float = 0.0

    @property
    def num_usable(self) -> int:
        return sum(self.usable.values())

    @property
    def num_skipped(self) -> int:
        return sum(len(names) for names in self.skipped.values())

    def skipped_counts(self) -> dict[str, int]:
        """reason -> how many examples were skipped for it."""
        return {reason: len(names) for reason, names in self.skipped.items()}

    def __str__(self) -> str:
        usable = " + ".join(f"{count} {split}" for split, count in self.usable.items())
        lines = [f"data {self.data_dir} ({self.data_format}: {self.found}; split: {self.split_rule})",
                 f"  usable: {usable} = {self.num_usable}; skipped: {self.num_skipped}"]
        for reason, names in self.skipped.items():
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            lines.append(f"  skipped, {reason}: {len(names)} ({shown})")
        if self.images_checked:
            rate = self.images_checked / max(self.check_seconds, 1e-9)
            lines.append(f"  images checked: {self.images_checked} in {self.check_seconds:.1f} s ({rate:.0f}/s)")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Split:
    """The usable examples of one split.

    Attributes:
        ids: example ids (file names without extension), in split order.
        aus: float32 [len(ids), NUM_AUS] in [0, 1], normalised OpenFace intensities.
        image_paths: (a)/(b): the image file of each id; (c): empty.
        record_paths: (c): the TFRecord shards holding them; (a)/(b): empty.
    """

    ids: tuple[str, ...]
    aus: np.ndarray
    image_paths: tuple[str, ...] = ()
    record_paths: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass(frozen=True)
class Examples:
    """A validated dataset: `load_examples`' result, passed to the dataset builders."""

    data_dir: str
    data_format: str
    train: Split
    test: Split
    summary: DataSummary

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise ValueError(f"split={name!r} is invalid: expected 'train' or 'test'")
        return getattr(self, name)


# === Finding and validating the examples ===


def detect_format(data_dir: str) -> tuple[str, str]:
    """Which layout `data_dir` holds.

    Returns:
        (format, what was found), format one of RESOLVED_FORMATS; checked in the order tfrecord
        (shards or dataset_info.json), ganimation (aus_openface.pkl), openface (openface/ folder).

    Raises:
        DatasetNotFoundError: data_dir is missing or holds none of the layouts.
    """
    _require(data_dir, "the data folder (DataConfig.data_dir / --data_dir)")
    train_shards = tfrecords.list_shards(data_dir, "train")
    if train_shards or os.path.exists(os.path.join(data_dir, tfrecords.INFO_FILE)):
        test_shards = tfrecords.list_shards(data_dir, "test")
        return "tfrecord", f"found {len(train_shards)} train and {len(test_shards)} test .tfrecord shards"
    if os.path.isfile(os.path.join(data_dir, AUS_PICKLE)):
        return "ganimation", f"found {AUS_PICKLE}"
    if os.path.isdir(os.path.join(data_dir, OPENFACE_FOLDER)):
        return "openface", f"found {OPENFACE_FOLDER}/"
    entries = sorted(os.listdir(data_dir))
    shown = ", ".join(entries[:8]) + (", ..." if len(entries) > 8 else "") if entries else "nothing"
    raise DatasetNotFoundError(f"cannot tell the layout of {data_dir} (it holds: {shown}); {_LAYOUTS}")


def load_examples(config: DataConfig) -> Examples:
    """Finds, validates and splits the examples in `config.data_dir`.

    Logs the summary. For (a)/(b) every image is decoded once with PIL (measured: 2,000-4,000 128-px
    JPEGs/s, ~1,200 512-px JPEGs/s on 2 busy cores, warm page cache); for (c) only records are
    parsed (~3,000-17,000 records/s), no image is decoded.

    Args:
        config: data_dir, data_format (auto | ganimation | openface | tfrecord) and image_size (JPEGs
            are decoded at a reduced scale close to it when checked).

    Returns:
        Examples with the usable train/test examples and a DataSummary.

    Raises:
        DatasetNotFoundError: a missing data_dir, imgs/ folder, AU pickle, openface/ folder or shards.
        EmptyDatasetError: no usable training example (the message includes the summary, on one line).
        ValueError: an unsafe or unreadable AU pickle (annotations.UnsafePickleError/AnnotationError).
    """
    if not config.data_dir:
        raise DatasetNotFoundError(f"DataConfig.data_dir (--data_dir) is empty; {_LAYOUTS}")
    if config.data_format == "auto":
        data_format, found = detect_format(config.data_dir)
    else:
        _require(config.data_dir, "the data folder (DataConfig.data_dir / --data_dir)")
        data_format, found = config.data_format, "as requested by data_format"
    logging.info("Data layout of %s: %s (%s)", config.data_dir, data_format, found)
    if data_format == "tfrecord":
        examples = _load_tfrecord(config.data_dir, found)
    else:
        examples = _load_images(config, data_format, found)
    logging.info("%s", examples.summary)
    if not len(examples.train):
        found_text = "; ".join(line.strip() for line in str(examples.summary).splitlines())
        raise EmptyDatasetError(f"no usable training example in {config.data_dir} ({found_text})")
    return examples


def _require(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise DatasetNotFoundError(f"{what} {path} does not exist; {_LAYOUTS}")


def _load_images(config: DataConfig, data_format: str, found: str) -> Examples:
    data_dir = config.data_dir
    images_dir = os.path.join(data_dir, IMAGES_FOLDER)
    _require(images_dir, "the image folder")
    images = _list_files(images_dir, annotations.IMAGE_EXTENSIONS)
    notes = []
    if data_format == "ganimation":
        pickle_path = os.path.join(data_dir, AUS_PICKLE)
        _require(pickle_path, "the AU table")
        table = annotations.load_aus_pickle(pickle_path)
        labelled = set(table)

        def read_aus(example_id):
            return (table[example_id], None) if example_id in table else (None, NO_AUS)
    else:
        csv_dir = os.path.join(data_dir, OPENFACE_FOLDER)
        _require(csv_dir, "the OpenFace CSV folder")
        csvs = _list_files(csv_dir, (".csv",))
        labelled = set(csvs)

        def read_aus(example_id):
            return annotations.read_openface_csv(csvs[example_id]) if example_id in csvs else (None, NO_AUS)
    split_ids, split_rule = _split_ids(data_dir, sorted(set(images) | labelled))
    listed = set().union(*split_ids.values())
    unlisted = len(set(images) - listed)
    if unlisted:
        notes.append(f"{unlisted} images in {IMAGES_FOLDER}/ are in neither id list and are not used")
    in_both = sorted(set(split_ids["train"]) & set(split_ids["test"]))
    if in_both:
        notes.append(f"{len(in_both)} ids are in both id lists (first: {in_both[0]}) and used in both splits: "
                     "the test split is not held out")

    skipped: dict[str, list[str]] = {}
    candidates = {}  # split -> [(id, path, raw aus)]
    for split, ids in split_ids.items():
        candidates[split] = []
        for example_id in ids:
            raw, reason = read_aus(example_id)
            if reason is None:
                raw, reason = annotations.check_raw_aus(raw)
            if reason is None and example_id not in images:
                reason = MISSING_IMAGE
            if reason:
                skipped.setdefault(reason, []).append(example_id)
            else:
                candidates[split].append((example_id, images[example_id], raw))

    paths = sorted({path for entries in candidates.values() for _, path, _ in entries})
    start = time.perf_counter()
    problems = check_image_files(paths, config.image_size)
    check_seconds = time.perf_counter() - start
    splits = {}
    for split, entries in candidates.items():
        good = []
        for example_id, path, raw in entries:
            if problems.get(path):
                skipped.setdefault(problems[path], []).append(example_id)
            else:
                good.append((example_id, path, raw))
        raw_aus = np.reshape(np.asarray([raw for _, _, raw in good], np.float32), [-1, action_units.NUM_AUS])
        splits[split] = Split(ids=tuple(e[0] for e in good), aus=action_units.normalize_intensities(raw_aus),
                              image_paths=tuple(e[1] for e in good))
        if len(good) >= 10 and raw_aus.max(initial=0.0) <= 1.0:
            notes.append(f"every raw AU of the {split} split is <= 1; they are read as OpenFace 0..5 "
                         "intensities and divided by 5; check they were not normalised already")
    summary = DataSummary(
        data_dir=data_dir, data_format=data_format, found=found, split_rule=split_rule,
        usable={split: len(value) for split, value in splits.items()},
        skipped={reason: tuple(names) for reason, names in skipped.items()},
        notes=tuple(notes), images_checked=len(paths), check_seconds=check_seconds)
    return Examples(data_dir, data_format, splits["train"], splits["test"], summary)


def _list_files(folder: str, extensions) -> dict[str, str]:
    """{id: path} of the files directly in `folder` with one of `extensions` (case-insensitive).

    When two files share an id (`a.jpg`, `a.png`) the first in sorted name order is kept.
    """
    found: dict[str, str] = {}
    with os.scandir(folder) as entries:
        names = sorted(entry.name for entry in entries if entry.is_file())
    for name in names:
        stem, extension = os.path.splitext(name)
        if extension.lower() in extensions:
            found.setdefault(stem, os.path.join(folder, name))
    return found


def _split_ids(data_dir: str, all_ids: list[str]) -> tuple[dict[str, list[str]], str]:
    lists = {split: os.path.join(data_dir, name) for split, name in ID_LISTS.items()}
    if any(os.path.isfile(path) for path in lists.values()):
        ids = {split: annotations.read_id_list(path) if os.path.isfile(path) else []
               for split, path in lists.items()}
        present = " + ".join(ID_LISTS[split] for split, path in lists.items() if os.path.isfile(path))
        return ids, present
    ids = {"train": [], "test": []}
    for example_id in all_ids:
        bucket = int(hashlib.md5(example_id.encode("utf-8")).hexdigest(), 16) % 100
        ids["test" if bucket < HASH_SPLIT_TEST_PERCENT else "train"].append(example_id)
    return ids, f"no id lists, so MD5 of the id: {HASH_SPLIT_TEST_PERCENT}% test"


def check_image_file(path: str, image_size: int = 128, max_pixels: int = MAX_IMAGE_PIXELS) -> str | None:
    """Opens and fully decodes one image with PIL, after checking its header's pixel count.

    What is usable is what `preprocess_image` (TensorFlow's decoder) reads, restricted to JPEG and PNG
    (the formats TFRecords carry): whatever the file's extension (a PNG named .jpg is fine), and in
    any pixel format TensorFlow turns into RGB (grayscale, palette, alpha, CMYK JPEG, 16-bit PNG).

    Args:
        path: an image file.
        image_size: JPEGs are decoded at the smallest DCT scale that is still >= this size (draft
            mode), which keeps checking large photos fast and still reads the whole stream.
        max_pixels: the largest width * height accepted (MAX_IMAGE_PIXELS); checked on the header.

    Returns:
        None when it is a readable JPEG/PNG, else the reason: MISSING_IMAGE, EMPTY_FILE, NOT_AN_IMAGE,
        UNSUPPORTED_IMAGE_FORMAT (GIF, BMP, WebP...), TOO_MANY_PIXELS or CORRUPT_IMAGE (truncated, bad
        CRC, undecodable).
    """
    try:
        if os.path.getsize(path) == 0:
            return EMPTY_FILE
        with Image.open(path) as image:
            if image.format not in ("JPEG", "PNG"):
                return UNSUPPORTED_IMAGE_FORMAT
            width, height = image.size
            if width * height > max_pixels:
                return TOO_MANY_PIXELS
            if image.format == "PNG":
                image.verify()  # chunk CRCs, which libpng (TF's decoder) checks and PIL's load() does not
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (image_size, image_size))
            image.load()
    except FileNotFoundError:
        return MISSING_IMAGE
    except UnidentifiedImageError:
        return NOT_AN_IMAGE
    except Image.DecompressionBombError:  # PIL's own guard, in Image.open, above 2 x 89.5 MP
        return TOO_MANY_PIXELS
    except Exception:  # OSError (truncated), SyntaxError (bad PNG), ValueError...
        return CORRUPT_IMAGE
    return None


def check_image_files(paths: list[str], image_size: int = 128, num_threads: int | None = None) -> dict[str, str]:
    """`check_image_file` over many files in a thread pool (PIL decodes without holding the GIL).

    Returns:
        {path: reason} for the files that are not usable; readable files are absent.
    """
    num_threads = num_threads or min(32, 4 * (os.cpu_count() or 1))
    if paths:
        logging.info("Checking %d images with %d threads", len(paths), num_threads)
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        reasons = pool.map(lambda path: check_image_file(path, image_size), paths, chunksize=64)
        return {path: reason for path, reason in zip(paths, reasons) if reason}


def _load_tfrecord(data_dir: str, found: str) -> Examples:
    if not tfrecords.list_shards(data_dir, "train"):
        raise DatasetNotFoundError(f"no train-*-of-*.tfrecord shards in {data_dir}; {_LAYOUTS}")
    splits, skipped = {}, {}
    for split in ("train", "test"):
        scan = tfrecords.scan_records(tfrecords.list_shards(data_dir, split))
        splits[split] = Split(ids=scan.ids, aus=scan.aus, record_paths=scan.paths)
        for reason, names in scan.skipped.items():
            skipped.setdefault(reason, []).extend(names)
    summary = DataSummary(
        data_dir=data_dir, data_format="tfrecord", found=found, split_rule="train-*/test-* shards",
        usable={split: len(value) for split, value in splits.items()},
        skipped={reason: tuple(names) for reason, names in skipped.items()},
        notes=("images in TFRecords were checked at conversion and are not decoded here",))
    return Examples(data_dir, "tfrecord", splits["train"], splits["test"], summary)


# === tf.data pipelines ===


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
    return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)


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
        dataset = _records(data.record_paths, shard)
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
        records = records.filter(lambda record: record["valid"] & _is_jpeg_or_png(record["encoded_image"]))
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


def _is_jpeg_or_png(encoded_image: tf.Tensor) -> tf.Tensor:
    """bool []: the bytes start like a JPEG or a PNG file (what tfrecords.scan_records accepts)."""
    return (tf.strings.substr(encoded_image, 0, 2) == b"\xff\xd8") | (
        tf.strings.substr(encoded_image, 0, 8) == b"\x89PNG\r\n\x1a\n")


def _records(paths, shard: tuple[int, int]) -> tf.data.Dataset:
    """The valid records of the shards, in file order: {"encoded_image", "real_aus", "id"}."""
    pipelines, pipeline_id = shard
    files = tf.data.Dataset.from_tensor_slices(list(paths))
    shard_files = pipelines > 1 and len(paths) >= pipelines
    if shard_files:
        files = files.shard(pipelines, pipeline_id)
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(paths), 16),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if pipelines > 1 and not shard_files:
        records = records.shard(pipelines, pipeline_id)
    # Unparseable records raise in parse_example and are dropped; bad AU vectors and empty images are
    # filtered (load_examples has already counted and named both).
    records = records.map(tfrecords.parse_example, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    records = records.filter(lambda record: record["valid"])
    return records.map(lambda record: {key: record[key] for key in ("encoded_image", "real_aus", "id")})
