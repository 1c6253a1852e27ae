"""Tests for tf_ganimation/data/prepare.py and scripts/prepare_dataset.py --photos: the shared photos, in this
process."""

import io
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core import action_units, image_files
from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import annotations, inventory, layout, pipeline, prepare, prepare_journal
from tf_ganimation.faces import alignment, detection

from conftest import PHOTOS_DIR, PROJECT_ROOT

SIZE = 32
SHARED = ("astronaut.png", "chelsea.png", "coffee.png")
RAW_AUS = [round(0.25 * index, 2) for index in range(17)]  # AU01 0.0, AU02 0.25, ..., AU45 4.0


def write_openface_csv(path, raw_aus=RAW_AUS, success=1):
    """An OpenFace FaceLandmarkImg CSV with one face (the columns annotations.read_openface_csv reads)."""
    header = (["face", "confidence", "success"] + [f"{name}_r" for name in action_units.AU_NAMES]
              + [f"{name}_c" for name in action_units.AU_NAMES])
    row = ["0", "0.98", str(success)] + [f"{value}" for value in raw_aus] + ["1"] * 17
    path.write_text(", ".join(header) + "\n" + ", ".join(row) + "\n")


@pytest.fixture(scope="module")
def detector():
    return detection.FaceDetector()


@pytest.fixture
def photo_folders(tmp_path):
    """tmp/photos with the three shared photos, tmp/openface with a CSV for each."""
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared test photos not found at {PHOTOS_DIR}")
    (tmp_path / "photos").mkdir()
    (tmp_path / "openface").mkdir()
    for name in SHARED:
        shutil.copy(PHOTOS_DIR / name, tmp_path / "photos" / name)
        write_openface_csv(tmp_path / "openface" / name.replace(".png", ".csv"))
    return tmp_path / "photos", tmp_path / "openface"


def config_for(tmp_path, photo_folders, **overrides):
    photos_dir, openface_dir = photo_folders
    return prepare.PrepareConfig(**{**dict(photos_dir=str(photos_dir), out_dir=str(tmp_path / "out"),
                                           openface_dir=str(openface_dir), image_size=SIZE, workers=1), **overrides})


def test_layout_is_read_by_the_training_pipeline(tmp_path, photo_folders, detector):
    config = config_for(tmp_path, photo_folders)
    progress = io.StringIO()  # not a terminal: one line at the end (and every 10 s)
    summary = prepare.prepare_photos(config, progress=progress, detector=detector)
    assert summary.kept == ("astronaut",) and summary.processed == 3 and summary.photos == 3
    lines = progress.getvalue().splitlines()
    assert lines[-1].startswith("[##############################] 3/3 photos, kept 1, ") and lines[-1].endswith(" s")
    assert progress.getvalue().endswith("\n") and "\r" not in progress.getvalue()
    assert summary.skipped == {prepare_journal.NO_FACE: ("chelsea", "coffee")}
    assert summary.usable == {"train": 1, "test": 0} and summary.has_aus
    assert "skipped, no face: 2 (chelsea, coffee)" in str(summary)

    examples = inventory.load_examples(DataConfig(data_dir=config.out_dir, image_size=SIZE))
    assert examples.data_format == "ganimation" and examples.train.ids == ("astronaut",)
    np.testing.assert_allclose(examples.train.aus[0], np.array(RAW_AUS) / 5)  # raw 0..5 in the pickle
    with Image.open(examples.train.image_paths[0]) as crop:
        assert crop.size == (SIZE, SIZE) and crop.format == "JPEG"
    with open(os.path.join(config.out_dir, layout.AUS_PICKLE), "rb") as file:
        assert list(pickle.load(file)) == ["astronaut"]
    info = json.loads((tmp_path / "out" / prepare_journal.INFO_FILE).read_text())
    assert info["skipped"] == {"no face": 2} and info["settings"]["image_size"] == SIZE
    element = next(iter(pipeline.make_training_dataset(
        DataConfig(data_dir=config.out_dir, image_size=SIZE, batch_size=1, n_critic=1), examples=examples)))
    assert element["real_image"].shape == (1, 1, SIZE, SIZE, 3)


def test_crops_are_the_editors_crops(tmp_path, photo_folders, detector):
    config = config_for(tmp_path, photo_folders, crop_format="png")
    prepare.prepare_photos(config, progress=None, detector=detector)
    record = prepare_journal.read_journal(tmp_path / "out" / prepare_journal.JOURNAL_FILE)["astronaut"]
    astronaut = image_files.read_photo(PHOTOS_DIR / "astronaut.png")
    expected, transform = alignment.crop_face(astronaut, detection.Face.from_dict(record["face"]), SIZE)
    recorded = alignment.CropTransform.from_dict(record["transform"])
    np.testing.assert_allclose(recorded.center, transform.center, atol=0.01)
    assert (recorded.angle, recorded.scale, recorded.size) == pytest.approx(
        (transform.angle, transform.scale, SIZE), abs=1e-3)
    from tf_ganimation.editing.editor import Editor  # the editor's crop of the same photo, from its own detection

    class SizeOnly:
        image_size = SIZE

    editor_crop = Editor(SizeOnly(), detector=detector).find_faces(astronaut)[0]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "imgs" / "astronaut.png")), editor_crop.crop)
    np.testing.assert_allclose(editor_crop.crop, expected, atol=1)  # the journal's face is rounded to 0.01 px


def test_rerun_skips_finished_photos(tmp_path, photo_folders, detector):
    config = config_for(tmp_path, photo_folders)
    prepare.prepare_photos(config, progress=None, detector=detector)
    crop = tmp_path / "out" / "imgs" / "astronaut.jpg"
    written = crop.stat().st_mtime_ns
    again = prepare.prepare_photos(config, progress=None, detector=detector)
    assert again.processed == 0 and again.kept == ("astronaut",) and crop.stat().st_mtime_ns == written
    crop.unlink()  # a lost crop is made again
    journal = tmp_path / "out" / prepare_journal.JOURNAL_FILE
    with open(journal, "a") as file:
        file.write('{"id": "coffee", "sta')  # a record cut short by a killed run
    assert prepare.prepare_photos(config, progress=None, detector=detector).processed == 1 and crop.is_file()
    assert sorted(prepare_journal.read_journal(journal)) == ["astronaut", "chelsea", "coffee"]
    assert prepare.prepare_photos(config, progress=None, detector=detector).processed == 0
    with pytest.raises(ValueError, match="prepared with other settings.*use another --out"):
        prepare.prepare_photos(config_for(tmp_path, photo_folders, image_size=64), progress=None, detector=detector)


def test_au_problems_are_skipped_and_retried(tmp_path, photo_folders, detector):
    photos_dir, openface_dir = photo_folders
    (openface_dir / "astronaut.csv").unlink()
    config = config_for(tmp_path, photo_folders)
    summary = prepare.prepare_photos(config, progress=None, detector=detector)
    assert summary.kept == () and summary.skipped[prepare_journal.NO_AU_FILE] == ("astronaut",)
    write_openface_csv(openface_dir / "astronaut.csv", success=0)  # OpenFace found no face
    summary = prepare.prepare_photos(config, progress=None, detector=detector)
    assert summary.processed == 1 and summary.skipped[annotations.NO_FACE_IN_AU_FILE] == ("astronaut",)
    write_openface_csv(openface_dir / "astronaut.csv", raw_aus=[6.0] * 17)  # above OpenFace's 0..5
    summary = prepare.prepare_photos(config, progress=None, detector=detector)
    assert summary.skipped[annotations.AUS_OUT_OF_RANGE] == ("astronaut",)
    write_openface_csv(openface_dir / "astronaut.csv")
    summary = prepare.prepare_photos(config, progress=None, detector=detector)
    assert summary.processed == 1 and summary.kept == ("astronaut",)
    assert summary.skipped == {prepare_journal.NO_FACE: ("chelsea", "coffee")}  # final: not processed again


def test_without_csvs_the_crops_wait_for_openface(tmp_path, photo_folders, detector):
    config = config_for(tmp_path, photo_folders, openface_dir="")
    summary = prepare.prepare_photos(config, progress=None, detector=detector)
    assert summary.kept == ("astronaut",) and not summary.has_aus
    assert not (tmp_path / "out" / layout.AUS_PICKLE).exists()
    assert "FaceLandmarkImg -fdir" in str(summary) and "openface" in str(summary)
    with pytest.raises(inventory.DatasetNotFoundError, match="cannot tell the layout"):
        inventory.load_examples(DataConfig(data_dir=config.out_dir, image_size=SIZE))
    # The documented next step: OpenFace's CSVs of the crops in out/openface/ make layout (b).
    (tmp_path / "out" / "openface").mkdir()
    write_openface_csv(tmp_path / "out" / "openface" / "astronaut.csv")
    examples = inventory.load_examples(DataConfig(data_dir=config.out_dir, image_size=SIZE))
    assert examples.data_format == "openface" and examples.train.ids == ("astronaut",)
    # Running again with the CSVs reads the AUs of the crops made without them.
    summary = prepare.prepare_photos(config_for(tmp_path, photo_folders), progress=None, detector=detector)
    assert summary.processed == 1 and summary.has_aus


def test_several_faces_unreadable_and_duplicate_photos(tmp_path, photo_folders, detector):
    photos_dir, openface_dir = photo_folders
    astronaut = image_files.read_photo(PHOTOS_DIR / "astronaut.png")
    group = np.full((512, 896, 3), 255, np.uint8)
    group[:, :512] = astronaut
    group[:384, 512:] = np.asarray(Image.fromarray(astronaut).resize((384, 384), Image.Resampling.LANCZOS))
    Image.fromarray(group).save(photos_dir / "group.png")
    write_openface_csv(openface_dir / "group.csv")
    (photos_dir / "notes.jpg").write_text("not a photo")
    write_openface_csv(openface_dir / "notes.csv")
    shutil.copy(photos_dir / "astronaut.png", photos_dir / "astronaut.webp")  # same id as astronaut.png
    summary = prepare.prepare_photos(config_for(tmp_path, photo_folders, several_faces="skip"), progress=None,
                                     detector=detector)
    assert summary.kept == ("astronaut",) and summary.photos == 6
    assert summary.skipped == {
        prepare_journal.NO_FACE: ("chelsea", "coffee"), prepare_journal.SEVERAL_FACES: ("group",),
        prepare_journal.UNREADABLE_PHOTO: ("notes",), prepare_journal.DUPLICATE_ID: ("astronaut.webp",)}
    summary = prepare.prepare_photos(config_for(tmp_path, photo_folders), progress=None, detector=detector)
    assert summary.processed == 1 and summary.kept == ("astronaut", "group")  # "largest" keeps the big face
    record = prepare_journal.read_journal(tmp_path / "out" / prepare_journal.JOURNAL_FILE)["group"]
    assert record["faces_found"] == 2 and record["face"]["box"][0] < 512


def test_config_and_input_errors(tmp_path):
    with pytest.raises(ValueError, match="image_size=30"):
        prepare.PrepareConfig(photos_dir="p", out_dir="o", image_size=30)
    with pytest.raises(ValueError, match="several_faces='all'"):
        prepare.PrepareConfig(photos_dir="p", out_dir="o", several_faces="all")
    with pytest.raises(FileNotFoundError, match="photos_dir \\(--photos\\) .*absent does not exist"):
        prepare.prepare_photos(prepare.PrepareConfig(photos_dir=str(tmp_path / "absent"), out_dir=str(tmp_path / "o")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no photos in .*empty"):
        prepare.prepare_photos(prepare.PrepareConfig(photos_dir=str(tmp_path / "empty"), out_dir=str(tmp_path / "o")))


def test_default_split_is_the_one_inventory_makes_without_id_lists():
    assert prepare.PrepareConfig(photos_dir="p", out_dir="o").test_percent == layout.HASH_SPLIT_TEST_PERCENT
    ids = [f"face_{index}" for index in range(200)]
    splits, _ = inventory._split_ids("/nonexistent", ids)
    assert [example_id for example_id in ids if layout.split_of(example_id) == "test"] == splits["test"]


@pytest.mark.slow
def test_script_with_a_process_pool_and_tfrecords(tmp_path, photo_folders):
    photos_dir, openface_dir = photo_folders
    script = str(PROJECT_ROOT / "scripts" / "prepare_dataset.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, script, f"--photos={photos_dir}", f"--openface_csv={openface_dir}",
               f"--out={tmp_path / 'out'}", f"--image_size={SIZE}", "--workers=2"]
    result = subprocess.run(command + [f"--to_tfrecord={tmp_path / 'records'}"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 photos, kept 1, skipped 2 (3 processed" in result.stdout
    assert "train: 1 examples in 1 shards" in result.stdout and "3/3 photos, kept 1" in result.stderr
    records = inventory.load_examples(DataConfig(data_dir=str(tmp_path / "records"), image_size=SIZE))
    assert records.train.ids == ("astronaut",)
