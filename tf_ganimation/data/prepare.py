"""Dataset preparation: a folder of photos -> aligned face crops and an AU table for training.

    summary = prepare.prepare_photos(PrepareConfig(photos_dir="photos", out_dir="data/faces",
                                                   openface_dir="photos_openface"))
    print(summary)                  # kept, skipped by reason, train/test counts, next steps

writes the GANimation layout that inventory.py reads (layout (a)):

    <out>/imgs/<id>.jpg            one face per photo, cropped by alignment.crop_face at image_size: the same
                                   alignment, margin and size as the editor (animate.py) uses
    <out>/aus_openface.pkl         dict id -> float32 [17] raw OpenFace intensities (0..5), only with
                                   AU CSVs (openface_dir), in action_units.AU_NAMES order
    <out>/train_ids.csv, test_ids.csv   one id per line; test = MD5 of the id below test_percent, as
                                   inventory.py splits when there are no lists
    <out>/faces.jsonl              one JSON line per photo processed: its status, the face and crop
                                   transform (the journal that makes re-runs skip finished photos,
                                   prepare_journal.py)
    <out>/prepare_info.json        the settings (a re-run must use the same) and the last run's counts

The id of a photo is its file name without extension; the AU CSV of `photos/abc.jpg` is
`<openface_dir>/abc.csv` (annotations.read_openface_csv: the most confident face's `AU.._r` columns).

Photos are skipped, counted and named (never fatal) when they cannot be decoded, have no face, have
several faces (unless several_faces="largest", the default, which keeps the largest), or have no
usable AU row. Photos run in a pool of processes, one MTCNN detector per process.

Without AU CSVs the crops are written without an AU table: labels of all zeros would teach the
generator that every face is neutral. Annotate the crops with OpenFace instead, as the paper's
authors did (`FaceLandmarkImg -fdir <out>/imgs -out_dir <out>/openface -aus` writes one CSV per crop),
and inventory.py reads `<out>` as its layout (b), imgs/ + openface/.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pathlib
import pickle
import sys
import time
from collections.abc import Iterable
from typing import TextIO

import numpy as np
from PIL import Image

from tf_ganimation.core import action_units, atomic, image_files
from tf_ganimation.core.progress import Progress
from tf_ganimation.data import annotations, prepare_journal
from tf_ganimation.data.layout import (
    AUS_PICKLE,
    HASH_SPLIT_TEST_PERCENT,
    ID_LISTS,
    IMAGES_FOLDER,
    split_of,
)
from tf_ganimation.data.prepare_journal import (
    DUPLICATE_ID,
    JOURNAL_FILE,
    KEPT,
    NO_AU_FILE,
    NO_FACE,
    SEVERAL_FACES,
    UNREADABLE_PHOTO,
)
from tf_ganimation.faces import alignment, detection

CROP_FORMATS = {"jpg": "JPEG", "png": "PNG"}
SEVERAL_FACES_CHOICES = ("largest", "skip")
# With workers=0, small jobs run in fewer processes: starting one (TensorFlow, MTCNN) takes 3-10 s.
PHOTOS_PER_WORKER = 16


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """What prepare_photos does.

    Attributes:
        photos_dir: the photos (JPEG, PNG, WebP; files directly in it, not in subfolders).
        out_dir: where the layout is written (created; re-runs continue in it).
        openface_dir: the OpenFace CSVs, one per photo, named after it; "" for crops without AUs.
        image_size: the crops' side in pixels (the model's image_size), a multiple of 4.
        several_faces: "largest" keeps the largest face of a photo with several; "skip" skips the photo.
        test_percent: percentage of ids in the test split, in [0, 100].
        workers: processes (each with its own detector); 0 = every CPU core, but at most one per
            PHOTOS_PER_WORKER photos to process; 1 runs in this process.
        crop_format: "jpg" (quality 95, as the authors' data) or "png" (lossless, ~5x larger).
        max_pixels: photos larger than this are skipped as unreadable (image_files.read_photo).
        detector: which MTCNN detections count as faces.
    """

    photos_dir: str
    out_dir: str
    openface_dir: str = ""
    image_size: int = 128
    several_faces: str = "largest"
    test_percent: int = HASH_SPLIT_TEST_PERCENT
    workers: int = 0
    crop_format: str = "jpg"
    max_pixels: int = image_files.MAX_PIXELS
    detector: detection.DetectorConfig = detection.DetectorConfig()

    def __post_init__(self):
        if not self.photos_dir or not self.out_dir:
            raise ValueError("photos_dir (--photos) and out_dir (--out) are both required")
        if not (isinstance(self.image_size, int) and self.image_size >= 4 and self.image_size % 4 == 0):
            raise ValueError(f"image_size={self.image_size!r} is invalid: expected a positive multiple of 4")
        if self.several_faces not in SEVERAL_FACES_CHOICES:
            raise ValueError(
                f"several_faces={self.several_faces!r} is invalid: expected one of {SEVERAL_FACES_CHOICES}")
        if not (isinstance(self.test_percent, int) and 0 <= self.test_percent <= 100):
            raise ValueError(f"test_percent={self.test_percent!r} is invalid: expected an integer in [0, 100]")
        if not (isinstance(self.workers, int) and self.workers >= 0):
            raise ValueError(f"workers={self.workers!r} is invalid: expected an integer >= 0 (0: every core)")
        if self.crop_format not in CROP_FORMATS:
            raise ValueError(f"crop_format={self.crop_format!r} is invalid: expected one of {tuple(CROP_FORMATS)}")

    def settings(self) -> dict:
        """What decides the crops: a re-run into the same out_dir must not change it."""
        return {"image_size": self.image_size, "crop": f"detection.crop_face (margin {alignment.CROP_MARGIN})",
                "crop_format": self.crop_format, "detector": dataclasses.asdict(self.detector)}


@dataclasses.dataclass(frozen=True)
class PrepareSummary:
    """What prepare_photos found and wrote. `str()` for the report the script prints.

    Attributes:
        out_dir: the layout written.
        photos: photo files found.
        processed: photos processed in this run (the others were finished by an earlier run).
        kept: ids of the crops in the layout (this run and earlier ones), sorted.
        skipped: reason -> ids skipped for it (every run's), sorted.
        usable: split -> ids with a crop (and, with AU CSVs, AUs).
        has_aus: whether aus_openface.pkl was written.
        seconds: wall time of this run.
    """

    out_dir: str
    photos: int
    processed: int
    kept: tuple[str, ...]
    skipped: dict[str, tuple[str, ...]]
    usable: dict[str, int]
    has_aus: bool
    seconds: float

    def __str__(self) -> str:
        lines = [f"prepared {self.out_dir}: {self.photos} photos, kept {len(self.kept)}, skipped "
                 f"{sum(map(len, self.skipped.values()))} ({self.processed} processed in {self.seconds:.1f} s, "
                 "the others by earlier runs)",
                 f"  splits: {self.usable['train']} train, {self.usable['test']} test"]
        for reason, ids in self.skipped.items():
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            lines.append(f"  skipped, {reason}: {len(ids)} ({shown})")
        if not self.has_aus:
            lines.append(
                f"  note: no AU CSVs (--openface_csv), so no {AUS_PICKLE}: annotate the crops with OpenFace, "
                f"e.g. `FaceLandmarkImg -fdir {os.path.join(self.out_dir, IMAGES_FOLDER)} -out_dir "
                f"{os.path.join(self.out_dir, 'openface')} -aus`, then train with --data_dir {self.out_dir} "
                "(inventory.py reads imgs/ + openface/)")
        return "\n".join(lines)


# === The run ===


def prepare_photos(config: PrepareConfig, progress: TextIO | None = sys.stderr,
                   detector: detection.FaceDetector | None = None) -> PrepareSummary:
    """Crops the faces of every photo in config.photos_dir into the layout in config.out_dir.

    Args:
        config: what to do.
        progress: where the progress bar goes (None: no bar).
        detector: a detector to use when running in this process (workers=1), e.g. a test's.

    Returns:
        The summary (also written into prepare_info.json).

    Raises:
        FileNotFoundError: photos_dir or openface_dir is missing.
        ValueError: out_dir was prepared with other settings, or no photo is in photos_dir.
    """
    started = time.perf_counter()
    for name, folder in (("photos_dir (--photos)", config.photos_dir),
                         ("openface_dir (--openface_csv)", config.openface_dir)):
        if folder and not os.path.isdir(folder):
            raise FileNotFoundError(f"{name} {folder} does not exist or is not a folder")
    sources, duplicates = list_photos(config.photos_dir)
    if not sources:
        raise ValueError(
            f"no photos in {config.photos_dir}: expected files ending in {', '.join(image_files.PHOTO_EXTENSIONS)}")
    out = pathlib.Path(config.out_dir)
    (out / IMAGES_FOLDER).mkdir(parents=True, exist_ok=True)
    prepare_journal.check_settings(out, config.settings())
    records = prepare_journal.read_journal(out / JOURNAL_FILE)
    todo = [(example_id, path) for example_id, path in sources.items()
            if not prepare_journal.is_finished(records.get(example_id), out / IMAGES_FOLDER, config.several_faces,
                                               with_aus=bool(config.openface_dir))]
    workers = min(config.workers or _auto_workers(len(todo)), max(1, len(todo)))
    bar = Progress(len(todo), progress, unit="photos")
    with prepare_journal.appending(out / JOURNAL_FILE) as append:
        for record in _process_all(todo, config, workers, detector):
            records[record["id"]] = record
            append(record)
            bar.update(kept=int(record["status"] == KEPT))
    bar.close()
    return _write_layout(out, config, sources, duplicates, records, len(todo), time.perf_counter() - started)


def _auto_workers(count: int) -> int:
    """Every core, but one process per PHOTOS_PER_WORKER photos: a worker costs seconds to start."""
    return max(1, min(os.cpu_count() or 1, count // PHOTOS_PER_WORKER))


def list_photos(photos_dir: str) -> tuple[dict[str, str], dict[str, str]]:
    """({id: path}, {duplicate file: id}) of the photos directly in photos_dir, in sorted name order.

    When two files share an id (`a.jpg`, `a.png`), the first in sorted order is used, as in inventory.py.
    """
    sources, duplicates = {}, {}
    with os.scandir(photos_dir) as entries:
        names = sorted(entry.name for entry in entries if entry.is_file())
    for name in names:
        stem, extension = os.path.splitext(name)
        if extension.lower() in image_files.PHOTO_EXTENSIONS:
            if stem in sources:
                duplicates[name] = stem
            else:
                sources[stem] = os.path.join(photos_dir, name)
    return sources, duplicates


# === One photo (runs in a worker process) ===


_worker_detector: detection.FaceDetector | None = None
_worker_config: PrepareConfig | None = None


def _init_worker(config: PrepareConfig) -> None:
    """Pool initializer: one TensorFlow thread per process (the pool spreads the cores), one detector."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    global _worker_detector, _worker_config
    _worker_detector, _worker_config = detection.FaceDetector(config.detector), config


def _process_in_worker(task: tuple[str, str]) -> dict:
    return process_photo(task[0], task[1], _worker_config, _worker_detector)


def _process_all(todo, config: PrepareConfig, workers: int, detector) -> Iterable[dict]:
    if workers == 1:
        detector = detector or detection.FaceDetector(config.detector)
        for example_id, path in todo:
            yield process_photo(example_id, path, config, detector)
        return
    # spawn, not fork: the parent may have imported TensorFlow, whose threads do not survive a fork.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
        yield from pool.imap_unordered(_process_in_worker, todo, chunksize=4)


def process_photo(example_id: str, path: str, config: PrepareConfig, detector: detection.FaceDetector) -> dict:
    """Reads the AUs and the photo, crops the face and writes `<out>/imgs/<id>.<crop_format>`.

    The AU CSV is read first, so a photo without one costs no detection.

    Returns:
        The journal record: {"id", "source", "status"} plus, when kept, "crop" (the file name), "face"
        (detection.Face.to_dict), "transform" (alignment.CropTransform.to_dict), "faces_found" and "raw_aus" (17
        raw OpenFace intensities, or None without AU CSVs); "detail" says more about some skips.
    """
    record = {"id": example_id, "source": os.path.basename(path)}
    raw_aus = None
    if config.openface_dir:
        csv_path = os.path.join(config.openface_dir, f"{example_id}.csv")
        if not os.path.isfile(csv_path):
            return {**record, "status": NO_AU_FILE}
        raw_aus, reason = annotations.read_openface_csv(csv_path)
        if reason is None:
            raw_aus, reason = annotations.check_raw_aus(raw_aus)
        if reason:
            return {**record, "status": reason}
    try:
        photo = image_files.read_photo(path, max_pixels=config.max_pixels)
    except (ValueError, OSError) as error:
        return {**record, "status": UNREADABLE_PHOTO, "detail": str(error)}
    faces = detector.detect(photo)
    if not faces:
        return {**record, "status": NO_FACE}
    if len(faces) > 1 and config.several_faces == "skip":
        return {**record, "status": SEVERAL_FACES, "faces_found": len(faces)}
    largest = detection.pick_faces(faces, "largest")[0]
    # The editor's crop: the same alignment, margin and size.
    crop, transform = alignment.crop_face(photo, largest, config.image_size, margin=alignment.CROP_MARGIN)
    name = f"{example_id}.{config.crop_format}"
    options = {"quality": 95} if config.crop_format == "jpg" else {}
    # The journal names a crop only once it is complete.
    atomic.write_with(pathlib.Path(config.out_dir) / IMAGES_FOLDER / name,
                      lambda temporary: Image.fromarray(crop).save(
                          temporary, format=CROP_FORMATS[config.crop_format], **options))
    return {**record, "status": KEPT, "crop": name, "faces_found": len(faces), "face": largest.to_dict(),
            "transform": transform.to_dict(),
            "raw_aus": None if raw_aus is None else [float(value) for value in raw_aus]}


# === The layout ===


def _write_layout(out: pathlib.Path, config: PrepareConfig, sources: dict, duplicates: dict, records: dict,
                  processed: int, seconds: float) -> PrepareSummary:
    current = {example_id: records[example_id] for example_id in sources if example_id in records}
    kept = sorted(example_id for example_id, record in current.items() if record["status"] == KEPT)
    skipped: dict[str, list[str]] = {}
    for example_id, record in sorted(current.items()):
        if record["status"] != KEPT:
            skipped.setdefault(record["status"], []).append(example_id)
    if duplicates:
        skipped[DUPLICATE_ID] = sorted(duplicates)
    has_aus = bool(config.openface_dir)
    if has_aus:
        table = {example_id: np.asarray(current[example_id]["raw_aus"], np.float32) for example_id in kept}
        atomic.write_bytes(out / AUS_PICKLE, pickle.dumps(table, protocol=2))
    splits = {"train": [], "test": []}
    for example_id in kept:
        splits[split_of(example_id, config.test_percent)].append(example_id)
    for split, name in ID_LISTS.items():
        atomic.write_text(out / name, "".join(f"{example_id}\n" for example_id in splits[split]))
    summary = PrepareSummary(
        out_dir=str(out), photos=len(sources) + len(duplicates), processed=processed, kept=tuple(kept),
        skipped={reason: tuple(ids) for reason, ids in skipped.items()},
        usable={split: len(ids) for split, ids in splits.items()}, has_aus=has_aus, seconds=seconds)
    prepare_journal.update_info(out, {"photos_dir": config.photos_dir, "openface_dir": config.openface_dir,
                                      "au_names": list(action_units.AU_NAMES), "kept": len(kept),
                                      "splits": summary.usable, "skipped": summary_counts(summary)})
    return summary


def summary_counts(summary: PrepareSummary) -> dict[str, int]:
    """reason -> how many photos were skipped for it."""
    return {reason: len(ids) for reason, ids in summary.skipped.items()}
