"""The authors' dataset layout on disk: its folder and file names and the id split rule.

    <dir>/imgs/<id>.jpg|png      IMAGES_FOLDER
    <dir>/aus_openface.pkl       AUS_PICKLE: dict id -> 17 raw OpenFace intensities (0..5)
    <dir>/openface/<id>.csv      OPENFACE_FOLDER: OpenFace's own output, instead of the pickle
    <dir>/train_ids.csv, test_ids.csv   ID_LISTS; without them, `split_of` decides

inventory.py reads this layout; prepare.py and synthetic_dataset.py write it. Plain Python (no
TensorFlow), so the writers' worker processes stay light.
"""

from __future__ import annotations

import hashlib

IMAGES_FOLDER = "imgs"
AUS_PICKLE = "aus_openface.pkl"
OPENFACE_FOLDER = "openface"
ID_LISTS = {"train": "train_ids.csv", "test": "test_ids.csv"}
HASH_SPLIT_TEST_PERCENT = 10


def split_of(example_id: str, test_percent: int = HASH_SPLIT_TEST_PERCENT) -> str:
    """"test" when the MD5 of the id, mod 100, is below test_percent, else "train".

    The split of a dataset without id lists: deterministic, and stable when examples are added.
    """
    bucket = int(hashlib.md5(example_id.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if bucket < test_percent else "train"
