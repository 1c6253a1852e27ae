"""Data layout (c): sharded TFRecords of encoded face images and their AUs, for large datasets.

Layout of `<dir>` (written by `write_dataset`, i.e. `scripts/prepare_dataset.py --to_tfrecord`):

    <dir>/train-00000-of-00004.tfrecord ... train-00003-of-00004.tfrecord
    <dir>/test-00000-of-00001.tfrecord
    <dir>/dataset_info.json      counts per split, AU order, source, what was skipped at conversion

Each record is a `tf.train.Example` with

    image/encoded   bytes    the image file as it was (JPEG or PNG), not re-encoded
    image/id        bytes    UTF-8 id (the source file name without extension)
    aus             float    NUM_AUS intensities in `action_units.AU_NAMES` order
    aus/normalized  int64    1: `aus` are in [0, 1]; 0: raw OpenFace 0..5 (divided by 5 when read).
                             Absent: 1. `write_dataset` always writes normalised AUs.

Images are validated when converting (the source is scanned by `inventory.load_examples`); when reading,
`scan_records` counts unparseable records, empty or non-image bytes and bad AU vectors, and drops
a shard that fails its CRC check (`DataLossError`), so training never reaches it. In tf.data,
`read_records` drops what `parse_example` flags (unparseable records, empty image bytes, bad AU vectors)
without naming it, and `is_jpeg_or_png` tells the other image bytes apart.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from tf_ganimation.core import action_units, atomic
from tf_ganimation.data import annotations
from tf_ganimation.data.examples import Examples

IMAGE_KEY = "image/encoded"
ID_KEY = "image/id"
AUS_KEY = "aus"
AUS_NORMALIZED_KEY = "aus/normalized"
INFO_FILE = "dataset_info.json"
SPLITS = ("train", "test")
FORMAT_NAME = "tf_ganimation.tfrecord"
# Auto sharding aims at ~128 MiB per shard: large enough for sequential reads, small enough that a
# few dozen shards let interleave and multi-worker sharding spread the load.
TARGET_SHARD_BYTES = 128 * 2**20

UNPARSEABLE_RECORD = "unparseable record"
EMPTY_IMAGE = "empty image bytes"
NOT_AN_IMAGE = "not a JPEG/PNG image"
CORRUPT_SHARD = "corrupt shard file (CRC check failed)"
UNREADABLE_IMAGE_AT_CONVERSION = "image unreadable at conversion"

_JPEG_MAGIC = b"\xff\xd8"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def shard_name(split: str, index: int, num_shards: int) -> str:
    """`train-00003-of-00016.tfrecord`."""
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def list_shards(data_dir: str, split: str) -> list[str]:
    """The shard files of one split in `data_dir`, sorted; [] when there are none."""
    return sorted(glob.glob(os.path.join(glob.escape(data_dir), f"{split}-*-of-*.tfrecord")))


def read_info(data_dir: str) -> dict | None:
    """The parsed `dataset_info.json`, or None when the folder has none."""
    path = os.path.join(data_dir, INFO_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)


# === One record ===


def serialize_example(encoded_image: bytes, aus, example_id: str, normalized: bool = True) -> bytes:
    """One serialized `tf.train.Example` (see the module docstring for the features).

    Args:
        encoded_image: the JPEG/PNG file bytes.
        aus: NUM_AUS intensities, in [0, 1] if `normalized` else raw 0..5.
        example_id: the example's id.
        normalized: whether `aus` are already in [0, 1].
    """
    aus = np.asarray(aus, np.float32).reshape(-1)
    feature = {
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded_image])),
        ID_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[example_id.encode("utf-8")])),
        AUS_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=aus.tolist())),
        AUS_NORMALIZED_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(normalized)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


_FEATURES = {
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
    ID_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
    AUS_KEY: tf.io.VarLenFeature(tf.float32),
    AUS_NORMALIZED_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=1),
}


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one record inside tf.data without failing on bad AU vectors.

    Args:
        serialized: string [] holding one `tf.train.Example`.

    Returns:
        {"encoded_image": string [], "id": string [], "real_aus": float32 [NUM_AUS] in [0, 1],
        "valid": bool []}. `valid` is False for a record with empty image bytes or an AU vector of the
        wrong length, with NaN/Inf, or out of range; its `real_aus` are then meaningless. A record that
        is not an Example at all raises (the caller's `ignore_errors` drops it).
    """
    features = tf.io.parse_single_example(serialized, _FEATURES)
    values = features[AUS_KEY].values
    count = tf.size(values)
    scale = tf.where(features[AUS_NORMALIZED_KEY] == 0, action_units.MAX_RAW_INTENSITY, 1.0)
    in_range = tf.logical_and(tf.reduce_all(values >= 0.0), tf.reduce_all(values <= scale))
    valid = tf.logical_and(count == action_units.NUM_AUS, tf.reduce_all(tf.math.is_finite(values)))
    valid = tf.logical_and(valid, in_range)
    valid = tf.logical_and(valid, tf.strings.length(features[IMAGE_KEY]) > 0)
    # Pad/cut to a static length so invalid records still have a well-formed (unused) AU tensor.
    fixed = tf.pad(values, [[0, tf.maximum(0, action_units.NUM_AUS - count)]])[: action_units.NUM_AUS]
    fixed = tf.ensure_shape(fixed, [action_units.NUM_AUS])
    real_aus = tf.clip_by_value(tf.where(tf.math.is_finite(fixed), fixed, 0.0) / scale, 0.0, 1.0)
    return {"encoded_image": features[IMAGE_KEY], "id": features[ID_KEY], "real_aus": real_aus, "valid": valid}


def is_jpeg_or_png(encoded_image: tf.Tensor) -> tf.Tensor:
    """bool []: the bytes start like a JPEG or a PNG file (what `scan_records` accepts)."""
    return (tf.strings.substr(encoded_image, 0, len(_JPEG_MAGIC)) == _JPEG_MAGIC) | (
        tf.strings.substr(encoded_image, 0, len(_PNG_MAGIC)) == _PNG_MAGIC)


def read_records(paths, shard: tuple[int, int]) -> tf.data.Dataset:
    """The valid records of the shards, in file order: {"encoded_image", "real_aus", "id"}.

    Valid as `parse_example` says: image bytes that are neither JPEG nor PNG are kept, and fail to
    decode later (the pipeline drops them there).

    Args:
        paths: the shard files.
        shard: (input pipelines, this pipeline's index): whole files per pipeline when there are at
            least as many files as pipelines, else every pipelines-th record.
    """
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
    records = records.map(parse_example, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    records = records.filter(lambda record: record["valid"])
    return records.map(lambda record: {key: record[key] for key in ("encoded_image", "real_aus", "id")})


# === Scanning shards when loading ===


@dataclasses.dataclass(frozen=True)
class RecordScan:
    """What `scan_records` found in the shards of one split.

    Attributes:
        paths: the shards that can be read to the end (corrupt ones are left out).
        ids: the ids of the usable records, in file order.
        aus: float32 [len(ids), NUM_AUS] in [0, 1].
        skipped: reason -> names of skipped records (`id`, or `shard#index` when it has none).
    """

    paths: tuple[str, ...]
    ids: tuple[str, ...]
    aus: np.ndarray
    skipped: Mapping[str, tuple[str, ...]]


def scan_records(paths: list[str]) -> RecordScan:
    """Reads every record of the given shards once (no image decoding) and validates it.

    Catches what `parse_example` would drop (so it can be counted before training) plus image bytes
    that are neither JPEG nor PNG, and leaves out shards that fail TFRecord's CRC check.
    """
    usable_paths, ids, aus = [], [], []
    skipped: dict[str, list[str]] = {}
    for path in paths:
        shard_ids, shard_aus, shard_skipped = [], [], {}
        try:
            index = 0
            # Batches of raw records: one eager iterator step per record would dominate the scan.
            for batch in tf.data.TFRecordDataset(path).batch(1024).as_numpy_iterator():
                for record in batch:
                    example_id, vector, reason = _check_record(record, f"{os.path.basename(path)}#{index}")
                    index += 1
                    if reason:
                        shard_skipped.setdefault(reason, []).append(example_id)
                    else:
                        shard_ids.append(example_id)
                        shard_aus.append(vector)
        except tf.errors.DataLossError:
            skipped.setdefault(CORRUPT_SHARD, []).append(path)
            continue
        usable_paths.append(path)
        ids += shard_ids
        aus += shard_aus
        for reason, names in shard_skipped.items():
            skipped.setdefault(reason, []).extend(names)
    return RecordScan(
        paths=tuple(usable_paths),
        ids=tuple(ids),
        aus=np.reshape(np.asarray(aus, np.float32), [-1, action_units.NUM_AUS]),
        skipped={reason: tuple(names) for reason, names in skipped.items()},
    )


def _check_record(record: bytes, fallback_name: str) -> tuple[str, np.ndarray | None, str | None]:
    try:
        features = tf.train.Example.FromString(record).features.feature
    except Exception:  # protobuf's DecodeError; any parse failure means the same here
        return fallback_name, None, UNPARSEABLE_RECORD
    example_id = b"".join(features[ID_KEY].bytes_list.value).decode("utf-8", "replace") or fallback_name
    image = features[IMAGE_KEY].bytes_list.value
    if not image or not image[0]:
        return example_id, None, EMPTY_IMAGE
    if not (image[0].startswith(_JPEG_MAGIC) or image[0].startswith(_PNG_MAGIC)):
        return example_id, None, NOT_AN_IMAGE
    normalized = features[AUS_NORMALIZED_KEY].int64_list.value
    is_normalized = not normalized or normalized[0] != 0
    max_value = 1.0 if is_normalized else action_units.MAX_RAW_INTENSITY
    vector, reason = annotations.check_raw_aus(features[AUS_KEY].float_list.value, max_value)
    if reason:
        return example_id, None, reason
    return example_id, (vector if is_normalized else action_units.normalize_intensities(vector)), None


# === Writing ===


def write_dataset(examples: Examples, out_dir: str, num_shards: int = 0, seed: int = 0) -> dict:
    """Writes the usable examples of a ganimation/openface dataset as sharded TFRecords.

    Image files are stored as they are (no decoding, resizing or re-encoding); AUs are stored
    normalised to [0, 1] with `aus/normalized` = 1. The training split is shuffled (with `seed`) before
    sharding so each shard is a random sample; the test split keeps its order. Each shard and then
    `dataset_info.json` is written to a temporary file and renamed when complete (core/atomic.py), so
    a folder with `dataset_info.json` holds every shard whole.

    Args:
        examples: what `inventory.load_examples` returned for a ganimation/openface dataset (its images
            were validated there).
        out_dir: output folder; created; must not already hold shards or a dataset_info.json.
        num_shards: shards per split (fewer when a split has fewer examples); 0 = about 128 MiB each.
        seed: the shuffling seed of the training split.

    Returns:
        The content of `dataset_info.json`.

    Raises:
        ValueError: `examples` are TFRecords already, num_shards < 0, or out_dir holds a dataset.
    """
    if examples.data_format == "tfrecord":
        raise ValueError(f"{examples.data_dir} is already in the tfrecord layout; nothing to convert")
    if num_shards < 0:
        raise ValueError(f"num_shards={num_shards} is invalid: expected 0 (automatic) or a positive number")
    existing = [path for split in SPLITS for path in list_shards(out_dir, split)]
    if existing or os.path.exists(os.path.join(out_dir, INFO_FILE)):
        raise ValueError(f"{out_dir} already holds a TFRecord dataset ({INFO_FILE} or *.tfrecord); "
                         "remove it or choose another --to_tfrecord folder")
    os.makedirs(out_dir, exist_ok=True)
    info_splits, skipped = {}, {}
    for split_name in SPLITS:
        split = getattr(examples, split_name)
        order = np.arange(len(split.ids))
        if split_name == "train":
            order = np.random.default_rng(seed).permutation(order)
        shards = _num_shards(num_shards, [split.image_paths[i] for i in order])
        written, files = 0, []
        for index, chunk in enumerate(np.array_split(order, shards) if shards else []):
            name = shard_name(split_name, index, shards)
            count, failed = _write_shard(os.path.join(out_dir, name), split, chunk)
            written += count
            files.append(name)
            if failed:
                skipped.setdefault(UNREADABLE_IMAGE_AT_CONVERSION, []).extend(failed)
        info_splits[split_name] = {"num_examples": written, "num_shards": shards, "files": files}
    source_skipped = {reason: len(names) for reason, names in examples.summary.skipped.items()}
    for reason, names in skipped.items():
        source_skipped[reason] = source_skipped.get(reason, 0) + len(names)
    info = {
        "format": FORMAT_NAME,
        "version": 1,
        "au_names": list(action_units.AU_NAMES),
        "aus_normalized": True,
        "splits": info_splits,
        "source": {"data_dir": os.path.abspath(examples.data_dir), "data_format": examples.data_format},
        "skipped": source_skipped,
    }
    atomic.write_text(os.path.join(out_dir, INFO_FILE), json.dumps(info, indent=2))
    return info


def _num_shards(requested: int, paths: list[str]) -> int:
    if not paths:
        return 0
    if requested == 0:
        total = sum(os.path.getsize(path) for path in paths if os.path.exists(path))
        requested = max(1, math.ceil(total / TARGET_SHARD_BYTES))
    return min(requested, len(paths))


def _write_shard(path: str, split, indices: np.ndarray) -> tuple[int, list[str]]:
    count, failed = 0, []

    def save(temporary: str) -> None:
        nonlocal count
        with tf.io.TFRecordWriter(temporary) as writer:
            for i in indices:
                try:
                    with open(split.image_paths[i], "rb") as file:
                        encoded = file.read()
                except OSError:
                    failed.append(split.ids[i])
                    continue
                if not encoded:
                    failed.append(split.ids[i])
                    continue
                writer.write(serialize_example(encoded, split.aus[i], split.ids[i], normalized=True))
                count += 1

    atomic.write_with(path, save)
    return count, failed
