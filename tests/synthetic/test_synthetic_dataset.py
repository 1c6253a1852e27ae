"""Tests for tf_ganimation/synthetic_dataset.py: AU sampling and the dataset folder it writes."""

import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core import action_units
from tf_ganimation.core.config import DataConfig
from tf_ganimation.data import inventory
from tf_ganimation.synthetic import renderer, synthetic_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_sample_aus_looks_like_openface_output():
    rng = np.random.default_rng(0)
    samples = np.stack([synthetic_dataset.sample_aus(rng) for _ in range(1000)])
    assert samples.shape == (1000, 17) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert 0.6 < (samples == 0).mean() < 0.95  # mostly zeros
    assert 0.1 < (samples.max(axis=1) == 0).mean() < 0.3  # ~20% neutral
    assert (samples > 0).any(axis=0).all()  # every AU occurs
    # Raw values are rounded to 0.01 and normalise back to exactly the sampled floats.
    raw = synthetic_dataset.sample_raw_aus(np.random.default_rng(5))
    np.testing.assert_array_equal(raw, np.round(raw, 2))
    np.testing.assert_array_equal(action_units.normalize_intensities(raw),
                                  synthetic_dataset.sample_aus(np.random.default_rng(5)))


def _read_ids(path):
    with open(path) as file:
        return [line.strip() for line in file if line.strip()]


def test_make_dataset_writes_the_ganimation_layout(tmp_path):
    out = str(tmp_path / "synthetic")
    summary = synthetic_dataset.make_dataset(out, num_images=11, image_size=32, seed=0, test_fraction=0.25,
                                     images_per_identity=3, progress=False)
    # 11 images of 3 per identity: 4 identities, the last with 2; round(0.25 * 4) = 1 test identity.
    assert (summary.num_images, summary.num_identities, summary.num_test_images) == (11, 4, 2)
    with open(os.path.join(out, "aus_openface.pkl"), "rb") as file:
        raw_aus = pickle.load(file)
    files = sorted(os.listdir(os.path.join(out, "imgs")))
    assert files == sorted(f"{image_id}.png" for image_id in raw_aus)
    for raw in raw_aus.values():
        assert isinstance(raw, np.ndarray) and raw.shape == (17,)
        assert raw.min() >= 0.0 and raw.max() <= 5.0
    train, test = _read_ids(os.path.join(out, "train_ids.csv")), _read_ids(os.path.join(out, "test_ids.csv"))
    assert len(train) == 9 and test == ["000003_0.png", "000003_1.png"]
    assert not set(train) & set(test) and sorted(train + test) == files

    identities = synthetic_dataset.load_identities(out)
    assert sorted(identities) == sorted(raw_aus)
    assert identities["000001_0"] == identities["000001_2"] != identities["000002_0"]
    for image_id in ("000000_0", "000003_1"):
        png = np.asarray(Image.open(os.path.join(out, "imgs", f"{image_id}.png")))
        again = renderer.render_face(identities[image_id], action_units.normalize_intensities(raw_aus[image_id]), 32)
        assert png.tobytes() == again.tobytes()


def test_load_split_gives_the_ids_and_aus_the_input_pipeline_reads(tmp_path):
    out = str(tmp_path / "synthetic")
    synthetic_dataset.make_dataset(out, num_images=12, image_size=32, seed=1, test_fraction=0.25,
                                   images_per_identity=3, progress=False)
    examples = inventory.load_examples(DataConfig(data_dir=out, image_size=32))
    for split in ("train", "test"):
        ids, aus = synthetic_dataset.load_split(out, split)
        assert tuple(ids) == examples.split(split).ids
        assert aus.dtype == np.float32 and aus.shape == (len(ids), 17)
        np.testing.assert_array_equal(aus, examples.split(split).aus)
    os.remove(os.path.join(out, "imgs", f"{ids[0]}.png"))  # images are not read
    assert synthetic_dataset.load_split(out, "test")[0] == ids
    with pytest.raises(ValueError, match="split='val'"):
        synthetic_dataset.load_split(out, "val")


def test_make_dataset_refuses_to_overwrite_unless_asked(tmp_path):
    out = str(tmp_path / "synthetic")
    synthetic_dataset.make_dataset(out, num_images=4, image_size=16, images_per_identity=2, progress=False)
    with pytest.raises(ValueError, match="already holds a dataset"):
        synthetic_dataset.make_dataset(out, num_images=2, image_size=16, progress=False)
    synthetic_dataset.make_dataset(out, num_images=2, image_size=16, images_per_identity=2, overwrite=True,
                                   progress=False)
    assert len(os.listdir(os.path.join(out, "imgs"))) == 2


def test_overwrite_never_deletes_images_it_did_not_write(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "N_0000000356_00190.jpg").write_bytes(b"a real photo")
    with pytest.raises(ValueError, match="N_0000000356_00190.jpg"):
        synthetic_dataset.make_dataset(str(tmp_path), num_images=2, image_size=16, overwrite=True, progress=False)
    assert (tmp_path / "imgs" / "N_0000000356_00190.jpg").exists()


def test_interrupted_make_dataset_does_not_look_complete(tmp_path, monkeypatch):
    out = str(tmp_path / "synthetic")
    synthetic_dataset.make_dataset(out, num_images=4, image_size=16, images_per_identity=2, progress=False)

    def crash(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic_dataset, "_render_chunk", crash)
    with pytest.raises(KeyboardInterrupt):
        synthetic_dataset.make_dataset(out, num_images=4, image_size=16, overwrite=True, progress=False)
    assert sorted(os.listdir(out)) == ["imgs"]


@pytest.mark.parametrize("argument, value", [("num_images", 0), ("image_size", 8), ("test_fraction", 1.0),
                                             ("images_per_identity", 0), ("num_workers", -1)])
def test_make_dataset_rejects_bad_arguments(tmp_path, argument, value):
    arguments = dict(num_images=4, image_size=16, progress=False)
    arguments[argument] = value
    with pytest.raises(ValueError, match=f"{argument}="):
        synthetic_dataset.make_dataset(str(tmp_path), **arguments)


def test_load_identities_without_the_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="identities.json"):
        synthetic_dataset.load_identities(str(tmp_path))


@pytest.mark.slow
def test_worker_processes_write_the_same_dataset(tmp_path):
    arguments = dict(num_images=130, image_size=16, seed=3, progress=False)
    synthetic_dataset.make_dataset(str(tmp_path / "one"), num_workers=1, **arguments)
    synthetic_dataset.make_dataset(str(tmp_path / "two"), num_workers=2, **arguments)
    for name in ("aus_openface.pkl", "identities.json", "train_ids.csv", "test_ids.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    images = sorted(os.listdir(tmp_path / "one" / "imgs"))
    assert len(images) == 130 and images == sorted(os.listdir(tmp_path / "two" / "imgs"))
    for name in images[::13]:
        assert (tmp_path / "one" / "imgs" / name).read_bytes() == (tmp_path / "two" / "imgs" / name).read_bytes()


@pytest.mark.slow
def test_make_synthetic_dataset_script(tmp_path):
    script = os.path.join(ROOT, "scripts", "make_synthetic_dataset.py")
    out = str(tmp_path / "synthetic")
    command = [sys.executable, script, "--out", out, "--num_images", "6", "--image_size", "32", "--seed", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "wrote 6 images of 32x32" in result.stdout
    assert len(_read_ids(os.path.join(out, "train_ids.csv"))) + len(_read_ids(os.path.join(out, "test_ids.csv"))) == 6
    image = Image.open(io.BytesIO((tmp_path / "synthetic" / "imgs" / "000000_0.png").read_bytes()))
    assert image.size == (32, 32) and image.mode == "RGB"

    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0
    assert "already holds a dataset" in " ".join(again.stderr.split()) and "Traceback" not in again.stderr
    bad = subprocess.run(command[:2] + ["--out", str(tmp_path / "bad"), "--image_size", "8"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "image_size=8" in bad.stderr and "Traceback" not in bad.stderr


def test_render_missing_renders_only_when_asked_and_the_folder_is_missing(tmp_path, capsys):
    data = DataConfig(data_dir=str(tmp_path / "faces"), image_size=16, synthetic_images=6, seed=3)
    summary = synthetic_dataset.render_missing(data)
    assert summary.num_images == 6 and summary.image_size == 16
    assert f"Rendering 6 synthetic faces into {tmp_path / 'faces'} ..." in capsys.readouterr().err
    assert len(list((tmp_path / "faces" / "imgs").iterdir())) == 6
    assert synthetic_dataset.load_identities(data.data_dir).keys() == set(
        synthetic_dataset.load_split(data.data_dir, "train")[0]
        + synthetic_dataset.load_split(data.data_dir, "test")[0])
    # A folder that exists, whatever it holds, is the user's data: left alone.
    assert synthetic_dataset.render_missing(data) is None
    (tmp_path / "photos").mkdir()
    assert synthetic_dataset.render_missing(DataConfig(data_dir=str(tmp_path / "photos"), synthetic_images=6)) is None
    assert list((tmp_path / "photos").iterdir()) == []
    # Not asked for: nothing rendered.
    assert synthetic_dataset.render_missing(DataConfig(data_dir=str(tmp_path / "none"))) is None
    assert not (tmp_path / "none").exists() and capsys.readouterr().err == ""
