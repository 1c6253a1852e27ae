"""What a dataset folder holds: its layout, its usable AU-labelled examples per split, what was skipped.

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
every image is opened and decoded with PIL in a thread pool by `image_files.check_training_images`,
after its header's pixel count is checked against `image_files.MAX_TRAINING_IMAGE_PIXELS`; for (c) every
record is parsed) and returns `Examples` (examples.py) with a `DataSummary` that counts and names what
was skipped and why. As a second line of defence the tf.data pipelines (pipeline.py) drop, with a
logged warning, an example whose file fails to read or decode later.

Errors: a missing data_dir / imgs folder / AU file raises `DatasetNotFoundError` (a FileNotFoundError);
no usable training example raises `EmptyDatasetError` (a ValueError); an unsafe or malformed AU pickle
raises `annotations.UnsafePickleError` / `annotations.AnnotationError` (ValueErrors). Each message names
the path and the expected layout.
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import logging

from tf_ganimation.core import action_units, image_files
from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import annotations, tfrecords
from tf_ganimation.data.examples import DataSummary, Examples, Split
from tf_ganimation.data.layout import (
    AUS_PICKLE,
    HASH_SPLIT_TEST_PERCENT,
    ID_LISTS,
    IMAGES_FOLDER,
    OPENFACE_FOLDER,
    split_of,
)

RESOLVED_FORMATS = ("ganimation", "openface", "tfrecord")

# The reason an example without AUs is skipped; the others are image_files' (image files),
# annotations' (AU vectors) and tfrecords' (records).
NO_AUS = "no AUs"

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
    images = _list_files(images_dir, image_files.TRAINING_IMAGE_EXTENSIONS)
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
                reason = image_files.MISSING_IMAGE
            if reason:
                skipped.setdefault(reason, []).append(example_id)
            else:
                candidates[split].append((example_id, images[example_id], raw))

    paths = sorted({path for entries in candidates.values() for _, path, _ in entries})
    start = time.perf_counter()
    problems = image_files.check_training_images(paths, config.image_size)
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
        ids[split_of(example_id)].append(example_id)
    return ids, f"no id lists, so MD5 of the id: {HASH_SPLIT_TEST_PERCENT}% test"


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
