"""Tests for tf_ganimation/core/atomic.py: whole files or nothing, and nothing left behind."""

import json
import os

import pytest

from tf_ganimation.core import atomic


def test_temporary_path_is_a_hidden_sibling_for_this_process(tmp_path):
    temporary = atomic.temporary_path(tmp_path / "run" / "config.json")
    assert temporary == tmp_path / "run" / f".config.json.{os.getpid()}.tmp"


def test_writes_create_the_parent_folders_and_return_the_target(tmp_path):
    target = tmp_path / "a" / "b" / "data.bin"
    assert atomic.write_bytes(target, b"\x00\x01") == target and target.read_bytes() == b"\x00\x01"
    assert atomic.write_text(str(tmp_path / "c" / "notes.txt"), "one\ntwo") == tmp_path / "c" / "notes.txt"
    assert (tmp_path / "c" / "notes.txt").read_text() == "one\ntwo"
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["data.bin"]


def test_write_json_ends_in_a_newline_and_passes_dumps_options(tmp_path):
    atomic.write_json(tmp_path / "plain.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "plain.json").read_text() == '{"b": 1, "a": [1, 2]}\n'
    atomic.write_json(tmp_path / "sorted.json", {"b": 1, "a": 2}, indent=2, sort_keys=True)
    assert (tmp_path / "sorted.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert json.loads((tmp_path / "sorted.json").read_text()) == {"a": 2, "b": 1}


def test_a_new_file_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "state.txt"
    atomic.write_text(target, "old")
    atomic.write_with(target, lambda temporary: open(temporary, "w").write("new"))
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["state.txt"]


def test_a_failing_save_leaves_the_target_unchanged_and_no_temporary(tmp_path):
    target = tmp_path / "state.txt"
    atomic.write_text(target, "old")

    def half_then_fail(temporary):
        with open(temporary, "w") as file:
            file.write("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_with(target, half_then_fail)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["state.txt"]
    with pytest.raises(OSError, match="disk full"):
        atomic.write_with(tmp_path / "new" / "state.txt", half_then_fail)
    assert os.listdir(tmp_path / "new") == []  # the folder is made first; no file is left in it
    with pytest.raises(TypeError):  # not JSON: fails before any file is opened
        atomic.write_json(tmp_path / "value.json", {"not json": object()})
    assert sorted(os.listdir(tmp_path)) == ["new", "state.txt"]


def test_a_failing_rename_leaves_no_temporary(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside.txt").write_text("kept")
    with pytest.raises(OSError):  # a folder cannot be replaced by a file
        atomic.write_text(tmp_path / "folder", "text")
    assert sorted(os.listdir(tmp_path)) == ["folder"] and (tmp_path / "folder" / "inside.txt").read_text() == "kept"
