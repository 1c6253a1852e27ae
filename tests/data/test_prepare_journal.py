"""Tests for tf_ganimation/data/prepare_journal.py: the journal and info file that let a preparation resume."""

import json

import pytest

from tf_ganimation.data import prepare_journal
from tf_ganimation.data.prepare_journal import KEPT, NO_AU_FILE, NO_FACE, SEVERAL_FACES, UNREADABLE_PHOTO


def test_reading_keeps_each_ids_latest_record_and_ignores_a_cut_line(tmp_path):
    path = tmp_path / prepare_journal.JOURNAL_FILE
    assert prepare_journal.read_journal(path) == {}
    path.write_text('{"id": "a", "status": "no AU file"}\n{"id": "b", "status": "no face"}\n'
                    '{"id": "a", "status": "kept"}\n[1, 2]\n{"status": "kept"}\n{"id": "c", "sta')
    assert prepare_journal.read_journal(path) == {"a": {"id": "a", "status": KEPT},
                                                  "b": {"id": "b", "status": NO_FACE}}


def test_appending_ends_a_cut_line_and_flushes_each_record(tmp_path):
    path = tmp_path / prepare_journal.JOURNAL_FILE
    with prepare_journal.appending(path) as append:
        append({"id": "a", "status": NO_FACE})
        assert path.read_text() == '{"id": "a", "status": "no face"}\n'  # on disk before the journal closes
    with open(path, "a") as file:
        file.write('{"id": "b", "sta')  # a record cut short by a killed run
    with prepare_journal.appending(path) as append:
        append({"id": "c", "status": KEPT})
    assert path.read_text().splitlines() == ['{"id": "a", "status": "no face"}', '{"id": "b", "sta',
                                             '{"id": "c", "status": "kept"}']
    assert sorted(prepare_journal.read_journal(path)) == ["a", "c"]


def test_which_records_are_finished(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"crop")

    def finished(record, several_faces="largest", with_aus=True):
        return prepare_journal.is_finished(record, tmp_path, several_faces, with_aus)

    kept = {"id": "a", "status": KEPT, "crop": "a.jpg", "raw_aus": [0.0] * 17}
    assert finished(kept)
    assert not finished(None)
    assert not finished({**kept, "crop": "lost.jpg"})  # a lost crop is made again
    assert not finished({**kept, "raw_aus": None}) and finished({**kept, "raw_aus": None}, with_aus=False)
    assert finished({"id": "a", "status": NO_FACE}) and finished({"id": "a", "status": UNREADABLE_PHOTO})
    assert not finished({"id": "a", "status": NO_AU_FILE})  # AU problems are retried
    assert finished({"id": "a", "status": SEVERAL_FACES}, several_faces="skip")
    assert not finished({"id": "a", "status": SEVERAL_FACES}, several_faces="largest")
    assert set(prepare_journal.FINAL) == {KEPT, UNREADABLE_PHOTO, NO_FACE, SEVERAL_FACES}


def test_settings_are_recorded_once_and_checked_on_each_run(tmp_path):
    settings = {"image_size": 32, "crop_format": "jpg"}
    prepare_journal.check_settings(tmp_path, settings)
    path = tmp_path / prepare_journal.INFO_FILE
    assert path.read_text() == json.dumps({"settings": settings}, indent=2) + "\n"
    prepare_journal.update_info(tmp_path, {"kept": 3, "skipped": {NO_FACE: 1}})
    prepare_journal.check_settings(tmp_path, dict(settings))  # the same settings: the run continues
    assert json.loads(path.read_text()) == {"settings": settings, "kept": 3, "skipped": {"no face": 1}}
    with pytest.raises(ValueError, match=r"prepared with other settings \(.*\"image_size\": 32.*; now "
                                         r".*\"image_size\": 64.*use another --out"):
        prepare_journal.check_settings(tmp_path, {**settings, "image_size": 64})
    assert json.loads(path.read_text())["settings"] == settings
    assert [item.name for item in tmp_path.iterdir()] == [prepare_journal.INFO_FILE]  # no temporary left
