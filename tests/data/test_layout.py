"""Tests for tf_ganimation/layout.py: the id split rule."""

import hashlib

from tf_ganimation.data import layout


def test_split_of_is_the_md5_of_the_id_mod_100():
    ids = [f"face_{index}" for index in range(300)]
    by_hand = [i for i in ids if int(hashlib.md5(i.encode("utf-8")).hexdigest(), 16) % 100 < 10]
    assert [i for i in ids if layout.split_of(i) == "test"] == by_hand
    assert 15 <= len(by_hand) <= 45  # ~10% of 300
    assert sum(layout.split_of(i, 50) == "test" for i in ids) > 2 * len(by_hand)  # the percent matters


def test_split_of_bounds():
    assert all(layout.split_of(f"id{index}", 0) == "train" for index in range(50))
    assert all(layout.split_of(f"id{index}", 100) == "test" for index in range(50))
