"""Tests for tf_ganimation/data/examples.py: a validated dataset and its summary, built by hand."""

import numpy as np
import pytest

from tf_ganimation.data.examples import DataSummary, Examples, Split


def _summary(**overrides) -> DataSummary:
    settings = dict(data_dir="/data/faces", data_format="ganimation", found="found aus_openface.pkl",
                    split_rule="train_ids.csv + test_ids.csv", usable={"train": 7, "test": 2},
                    skipped={"empty file": ("a", "b"), "no AUs": tuple(f"id{i}" for i in range(6))})
    return DataSummary(**{**settings, **overrides})


def test_summary_counts_and_text():
    summary = _summary(notes=("3 images in imgs/ are in neither id list and are not used",),
                       images_checked=10, check_seconds=0.5)
    assert summary.num_usable == 9 and summary.num_skipped == 8
    assert summary.skipped_counts() == {"empty file": 2, "no AUs": 6}
    assert str(summary).splitlines() == [
        "data /data/faces (ganimation: found aus_openface.pkl; split: train_ids.csv + test_ids.csv)",
        "  usable: 7 train + 2 test = 9; skipped: 8",
        "  skipped, empty file: 2 (a, b)",
        "  skipped, no AUs: 6 (id0, id1, id2, id3, id4, ...)",  # the first five names, then "..."
        "  images checked: 10 in 0.5 s (20/s)",
        "  note: 3 images in imgs/ are in neither id list and are not used"]


def test_summary_without_checked_images_has_no_rate_line():
    assert "images checked" not in str(_summary(skipped={}))
    assert str(_summary(skipped={})).splitlines()[1] == "  usable: 7 train + 2 test = 9; skipped: 0"


def test_examples_give_their_splits_by_name():
    train = Split(ids=("a", "b"), aus=np.zeros([2, 17], np.float32), image_paths=("imgs/a.jpg", "imgs/b.jpg"))
    test = Split(ids=(), aus=np.zeros([0, 17], np.float32))
    examples = Examples("/data/faces", "ganimation", train, test, _summary())
    assert examples.split("train") is train and examples.split("test") is test
    assert (len(train), len(test)) == (2, 0) and test.record_paths == ()
    with pytest.raises(ValueError, match="split='validation' is invalid: expected 'train' or 'test'"):
        examples.split("validation")
