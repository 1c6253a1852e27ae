"""The synthetic dataset: procedural faces with exact AU labels, in the authors' GANimation layout.

`make_dataset` samples identities (`identity.sample_identity`) and AU vectors that look like OpenFace
output on real faces (`sample_aus`), renders them (`renderer.render_face`) and writes the folder the
training pipeline reads, plus identities.json, from which `load_identities` lets evaluation render
the true result of any edit.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import pickle
import re
import shutil
import sys
import time

import numpy as np
from PIL import Image

from tf_ganimation.core import action_units, atomic
from tf_ganimation.core.config import DataConfig
from tf_ganimation.core.progress import Progress
from tf_ganimation.data import annotations
from tf_ganimation.data.layout import AUS_PICKLE, ID_LISTS, IMAGES_FOLDER
from tf_ganimation.synthetic.identity import Identity, sample_identity
from tf_ganimation.synthetic.renderer import MAX_SIZE, MIN_SIZE, render_face

# Folder layout written by `make_dataset` (the authors' GANimation layout plus identities.json).
IDENTITIES_FILE = "identities.json"

_SYNTHETIC_IMAGE = re.compile(r"\d{6,}_\d+\.png")  # the image names make_dataset writes


def sample_aus(rng: np.random.Generator) -> np.ndarray:
    """An AU vector that looks like OpenFace output on real faces: float32 [17] in [0, 1].

    20% neutral, 45% a prototypical emotion (action_units.PRESETS) at a random strength with
    jittered AUs plus up to two stray AUs, 35% one to four random AUs; a third of all vectors, neutral
    ones included, also get OpenFace-like low-level noise (raw <= 0.5) on one to three AUs, so ~13%
    are exactly zero and ~80% of all entries are. It is `normalize_intensities` of `sample_raw_aus`,
    so raw values stored in a pickle normalise back to exactly these floats.
    """
    return action_units.normalize_intensities(sample_raw_aus(rng))


def sample_raw_aus(rng: np.random.Generator) -> np.ndarray:
    """Raw OpenFace-style intensities for `sample_aus`: float32 [17] in [0, 5], rounded to 0.01."""
    raw = np.zeros([action_units.NUM_AUS], np.float64)
    kind = rng.uniform()
    if kind < 0.45:
        names = [name for name in action_units.PRESETS if name != "neutral"]
        emotion = action_units.preset(names[rng.integers(len(names))]).astype(np.float64)
        raw = 5.0 * emotion * rng.uniform(0.3, 1.0) * rng.uniform(0.75, 1.2, action_units.NUM_AUS)
        for index in rng.choice(action_units.NUM_AUS, rng.integers(0, 3), replace=False):
            raw[index] = max(raw[index], rng.uniform(0.3, 3.0))
    elif kind < 0.8:
        for index in rng.choice(action_units.NUM_AUS, rng.integers(1, 5), replace=False):
            raw[index] = rng.uniform(0.5, 5.0)
    if rng.uniform() < 1 / 3:
        for index in rng.choice(action_units.NUM_AUS, rng.integers(1, 4), replace=False):
            raw[index] += rng.uniform(0.0, 0.5)
    return np.round(np.clip(raw, 0.0, action_units.MAX_RAW_INTENSITY), 2).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    """What `make_dataset` wrote."""

    out_dir: str
    image_size: int
    num_images: int
    num_identities: int
    num_train_images: int
    num_test_images: int
    seconds: float


def _render_chunk(task: tuple[str, int, list[tuple[str, Identity, np.ndarray]]]) -> int:
    images_dir, size, jobs = task
    for image_id, identity, raw_aus in jobs:
        image = render_face(identity, action_units.normalize_intensities(raw_aus), size)
        Image.fromarray(image).save(os.path.join(images_dir, f"{image_id}.png"), format="PNG", compress_level=1)
    return len(jobs)


def _default_workers() -> int:
    """One rendering process per core, or 1 (in-process) when the caller has TensorFlow loaded.

    Spawned workers re-import the caller's __main__ module; when that is a TensorFlow program (the
    quick start renders its faces from scripts/train.py) each worker would load TensorFlow first,
    which costs about what the second core saves, plus its memory.
    """
    return 1 if "tensorflow" in sys.modules else len(os.sched_getaffinity(0))


def _prepare_out_dir(out_dir: str, overwrite: bool):
    layout = (AUS_PICKLE, *ID_LISTS.values(), IDENTITIES_FILE, IMAGES_FOLDER)
    existing = [name for name in layout if os.path.exists(os.path.join(out_dir, name))]
    if existing and not overwrite:
        raise ValueError(f"{out_dir} already holds a dataset ({', '.join(existing)}); choose another folder "
                         f"or pass overwrite=True (--overwrite) to replace it")
    images_dir = os.path.join(out_dir, IMAGES_FOLDER)
    foreign = [name for name in (os.listdir(images_dir) if os.path.isdir(images_dir) else [])
               if not _SYNTHETIC_IMAGE.fullmatch(name)]
    if foreign:
        raise ValueError(f"{images_dir} holds files this script did not write (e.g. {sorted(foreign)[0]}); "
                         f"not deleting them: choose another folder")
    # The index files go first, so an interrupted rewrite never looks like a complete dataset.
    for name in layout[:-1]:
        if os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))
    shutil.rmtree(images_dir, ignore_errors=True)
    os.makedirs(images_dir)


def make_dataset(out_dir: str, num_images: int, image_size: int = 128, seed: int = 0, test_fraction: float = 0.1,
                 images_per_identity: int = 5, num_workers: int = 0, overwrite: bool = False,
                 progress: bool = True) -> DatasetSummary:
    """Renders a synthetic AU-labelled face dataset in the authors' GANimation layout.

    Writes `imgs/<id>.png`, `aus_openface.pkl` ({id: float32 [17] raw intensities in [0, 5]}, i.e. the
    rendered AUs times 5), `train_ids.csv` and `test_ids.csv` (one `<id>.png` per line, no header), and
    `identities.json` ({id: Identity.to_dict()}) from which any image can be rendered again with other
    AUs. Ids are `<identity>_<k>`: identity i is rendered with `images_per_identity` AU vectors from
    `sample_aus` (the last identity may have fewer). The split is by identity: the last
    round(test_fraction * identities) identities (at least one when test_fraction > 0 and there are two
    or more) are the test set, so test faces are never seen in training. The index files are written
    last, each to a temporary name and renamed, so an interrupted run never looks complete.

    Args:
        out_dir: the dataset folder; created if missing.
        num_images: total images, >= 1.
        image_size: image side in pixels, in [16, 1024].
        seed: the same seed gives the same dataset, whatever num_workers is.
        test_fraction: share of identities held out, in [0, 1).
        images_per_identity: AU vectors rendered per identity, >= 1.
        num_workers: rendering processes; 0 means one per CPU core, or rendering in-process when
            TensorFlow is loaded (see _default_workers).
        overwrite: replace a dataset already in out_dir (otherwise that is an error).
        progress: show a progress bar on stderr.

    Raises:
        ValueError: an argument out of range, or out_dir already holds a dataset and overwrite is False.
    """
    checks = [("num_images", num_images, isinstance(num_images, int) and num_images >= 1, "an integer >= 1"),
              ("image_size", image_size, isinstance(image_size, int) and MIN_SIZE <= image_size <= MAX_SIZE,
               f"an integer in [{MIN_SIZE}, {MAX_SIZE}]"),
              ("test_fraction", test_fraction, isinstance(test_fraction, (int, float)) and 0 <= test_fraction < 1,
               "a number in [0, 1)"),
              ("images_per_identity", images_per_identity,
               isinstance(images_per_identity, int) and images_per_identity >= 1, "an integer >= 1"),
              ("num_workers", num_workers, isinstance(num_workers, int) and num_workers >= 0, "an integer >= 0")]
    for name, value, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{name}={value!r} is invalid: expected {allowed}")
    start = time.monotonic()
    _prepare_out_dir(out_dir, overwrite)

    rng = np.random.default_rng(seed)
    num_identities = -(-num_images // images_per_identity)
    digits = max(6, len(str(num_identities - 1)))
    k_digits = len(str(images_per_identity - 1))
    num_test_identities = int(round(test_fraction * num_identities))
    if test_fraction > 0 and num_identities >= 2:
        num_test_identities = min(max(num_test_identities, 1), num_identities - 1)
    jobs, test_ids = [], []
    for index in range(num_identities):
        identity = sample_identity(rng)
        for k in range(min(images_per_identity, num_images - index * images_per_identity)):
            image_id = f"{index:0{digits}d}_{k:0{k_digits}d}"
            jobs.append((image_id, identity, sample_raw_aus(rng)))
            if index >= num_identities - num_test_identities:
                test_ids.append(image_id)

    images_dir = os.path.join(out_dir, IMAGES_FOLDER)
    chunk = 32
    tasks = [(images_dir, image_size, jobs[i:i + chunk]) for i in range(0, len(jobs), chunk)]
    workers = min(num_workers or _default_workers(), len(tasks))
    bar = Progress(len(jobs), sys.stderr if progress else None, unit="images")
    if workers <= 1 or len(jobs) < 4 * chunk:
        for task in tasks:
            bar.update(_render_chunk(task))
    else:
        # spawn, not fork: the caller may have TensorFlow loaded, which does not survive a fork.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for count in pool.imap_unordered(_render_chunk, tasks):
                bar.update(count)
    bar.close()

    identities = "{\n" + ",\n".join(f"{json.dumps(image_id)}: {json.dumps(identity.to_dict())}"
                                     for image_id, identity, _ in jobs) + "\n}\n"
    atomic.write_bytes(os.path.join(out_dir, IDENTITIES_FILE), identities.encode())
    raw_aus = {image_id: raw for image_id, _, raw in jobs}
    atomic.write_bytes(os.path.join(out_dir, AUS_PICKLE), pickle.dumps(raw_aus, protocol=4))
    test_set = set(test_ids)
    train_ids = [image_id for image_id, _, _ in jobs if image_id not in test_set]
    atomic.write_bytes(os.path.join(out_dir, ID_LISTS["test"]), "".join(f"{i}.png\n" for i in test_ids).encode())
    atomic.write_bytes(os.path.join(out_dir, ID_LISTS["train"]), "".join(f"{i}.png\n" for i in train_ids).encode())
    return DatasetSummary(out_dir=out_dir, image_size=image_size, num_images=len(jobs),
                          num_identities=num_identities, num_train_images=len(train_ids),
                          num_test_images=len(test_ids), seconds=time.monotonic() - start)


def render_missing(data: DataConfig) -> DatasetSummary | None:
    """Renders DataConfig.synthetic_images faces into data_dir when asked and that folder is missing.

    The training script calls it before training (scripts/train.py), so that training itself never
    renders. Returns the summary of the dataset rendered, or None when nothing was to do.
    """
    if not data.synthetic_images or os.path.isdir(data.data_dir):
        return None
    print(f"Rendering {data.synthetic_images} synthetic faces into {data.data_dir} ...", file=sys.stderr)
    return make_dataset(data.data_dir, data.synthetic_images, data.image_size, seed=data.seed)


def load_identities(data_dir: str) -> dict[str, Identity]:
    """{image id: Identity} from a dataset's identities.json, to render any face again with other AUs.

    Raises:
        FileNotFoundError: data_dir has no identities.json (it was not made by make_dataset).
        ValueError: an entry is not a valid identity.
    """
    path = os.path.join(data_dir, IDENTITIES_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: identities.json is written by make_dataset "
                                f"(scripts/make_synthetic_dataset.py), only for synthetic datasets")
    with open(path) as file:
        entries = json.load(file)
    identities = {}
    for image_id, values in entries.items():
        try:
            identities[image_id] = Identity.from_dict(values)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: entry {image_id!r} is not a valid identity: {error}") from None
    return identities


def load_split(data_dir: str, split: str) -> tuple[list[str], np.ndarray]:
    """The ids of a split, in order, and their AU vectors, from the files make_dataset wrote.

    Opens no image: a synthetic face is rendered again from identities.json, so evaluating edits
    needs only which faces and their AUs (inventory.load_examples would decode every image).

    Returns:
        (ids, aus): aus float32 [len(ids), NUM_AUS] in [0, 1], normalised as the input pipeline does.

    Raises:
        ValueError: split is not "train" or "test". FileNotFoundError: an id list or the AU table is
        missing. KeyError: an id without AUs (a dataset make_dataset did not write).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is invalid: expected 'train' or 'test'")
    ids = annotations.read_id_list(os.path.join(data_dir, ID_LISTS[split]))
    table = annotations.load_aus_pickle(os.path.join(data_dir, AUS_PICKLE))
    raw_aus = np.asarray([table[image_id] for image_id in ids], np.float32).reshape([-1, action_units.NUM_AUS])
    return ids, action_units.normalize_intensities(raw_aus)
