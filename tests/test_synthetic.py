"""Tests for tf_ganimation/synthetic.py: the procedural face renderer and the dataset it writes."""

import io
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tf_ganimation import action_units, synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _aus(**intensities) -> np.ndarray:
    return action_units.from_mapping(intensities)


def _identities(count: int, seed: int = 0) -> list[synthetic.Identity]:
    rng = np.random.default_rng(seed)
    return [synthetic.sample_identity(rng) for _ in range(count)]


def _change(identity, name: str, intensity: float, size: int = 64) -> np.ndarray:
    """|render(AU at intensity) - render(neutral)|: float [size, size, 3]."""
    neutral = synthetic.render_face(identity, np.zeros(action_units.NUM_AUS), size).astype(np.float64)
    edited = synthetic.render_face(identity, _aus(**{name: intensity}), size).astype(np.float64)
    return np.abs(edited - neutral)


NON_INERT_AUS = [name for name in action_units.AU_NAMES if name not in synthetic.INERT_AUS]


# === Renderer ===

@pytest.mark.parametrize("size", [32, 64, 128])
def test_render_face_shape_and_dtype(size):
    image = synthetic.render_face(synthetic.Identity(), action_units.preset("happy"), size)
    assert image.shape == (size, size, 3)
    assert image.dtype == np.uint8
    assert image.std() > 10  # a picture, not a flat colour


def test_render_face_is_deterministic():
    identity, other = _identities(2)
    aus = action_units.preset("surprise")
    first = synthetic.render_face(identity, aus, 64)
    again = synthetic.render_face(synthetic.Identity.from_dict(identity.to_dict()), aus.copy(), 64)
    assert first.tobytes() == again.tobytes()
    assert np.abs(first.astype(int) - synthetic.render_face(other, aus, 64)).mean() > 5


def test_render_face_rejects_bad_arguments():
    identity = synthetic.Identity()
    with pytest.raises(ValueError, match="size=8"):
        synthetic.render_face(identity, np.zeros(17), 8)
    with pytest.raises(ValueError, match=r"shape \[17\]"):
        synthetic.render_face(identity, np.zeros(16), 32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        synthetic.render_face(identity, np.full(17, 1.5), 32)


def test_mouth_corners_rise_with_au12_by_the_documented_amount():
    # Default identity: no tilt, scale 0.33, so AU12=1 lifts each corner 0.24 face units = 0.24 * 0.33 * size.
    identity = synthetic.Identity()
    heights = []
    for intensity in np.linspace(0.0, 1.0, 5):
        geometry = synthetic.face_geometry(identity, _aus(AU12=intensity), 100)
        heights.append((geometry["mouth_left"][1] + geometry["mouth_right"][1]) / 2)
    assert np.all(np.diff(heights) < 0)  # y points down: the corners rise
    assert heights[0] - heights[-1] == pytest.approx(0.24 * 0.33 * 100)  # 7.92 px
    # A smile moves the corners several pixels at 64 px for every sampled face, tilted or not.
    for identity in _identities(8):
        neutral = synthetic.face_geometry(identity, _aus(), 64)
        smile = synthetic.face_geometry(identity, _aus(AU12=1.0), 64)
        for corner in ("mouth_left", "mouth_right"):
            assert neutral[corner][1] - smile[corner][1] > 3.5


# (AU, key point, +1 if the value grows with the intensity, -1 if it shrinks). For points it is the y
# coordinate (down is +), for *_opening the height in pixels.
GEOMETRY_EFFECTS = [
    ("AU01", "brow_left_inner", -1), ("AU01", "brow_right_inner", -1),
    ("AU02", "brow_left_outer", -1), ("AU02", "brow_right_outer", -1),
    ("AU04", "brow_left_inner", +1), ("AU04", "brow_right_inner", +1),
    ("AU05", "eye_left_opening", +1), ("AU06", "cheek_left", -1), ("AU06", "eye_left_lower", -1),
    ("AU07", "eye_right_opening", -1), ("AU09", "nose_base", -1), ("AU10", "upper_lip_top", -1),
    ("AU12", "mouth_left", -1), ("AU15", "mouth_right", +1), ("AU17", "chin", -1),
    ("AU25", "mouth_opening", +1), ("AU26", "mouth_opening", +1), ("AU26", "chin", +1),
    ("AU45", "eye_left_opening", -1), ("AU45", "eye_right_opening", -1),
]


@pytest.mark.parametrize("name, key, direction", GEOMETRY_EFFECTS)
def test_geometry_is_monotonic_in_intensity(name, key, direction):
    identity = _identities(1, seed=3)[0]
    values = []
    for intensity in np.linspace(0.0, 1.0, 5):
        value = synthetic.face_geometry(identity, _aus(**{name: intensity}), 64)[key]
        values.append(float(value if value.ndim == 0 else value[1]))
    assert np.all(direction * np.diff(values) > 0), values


def test_mouth_corners_move_apart_with_au20_and_together_with_au23():
    identity = synthetic.Identity()

    def mouth_width(**intensities):
        geometry = synthetic.face_geometry(identity, _aus(**intensities), 64)
        return geometry["mouth_right"][0] - geometry["mouth_left"][0]

    assert mouth_width(AU20=1.0) == pytest.approx(mouth_width() + 2 * 0.17 * 0.33 * 64)  # + 7.2 px
    assert mouth_width(AU23=1.0) == pytest.approx(mouth_width() - 2 * 0.11 * 0.33 * 64)  # - 4.6 px


def test_blink_closes_the_eyes():
    geometry = synthetic.face_geometry(synthetic.Identity(), _aus(AU45=1.0), 64)
    assert float(geometry["eye_left_opening"]) == pytest.approx(0.0, abs=1e-9)
    assert float(synthetic.face_geometry(synthetic.Identity(), _aus(), 64)["eye_left_opening"]) > 2.5


@pytest.mark.parametrize("name", NON_INERT_AUS)
def test_pixel_change_grows_with_intensity(name):
    for identity in _identities(3, seed=1):
        half, full = _change(identity, name, 0.5).mean(), _change(identity, name, 1.0).mean()
        assert 0 < half < full, (identity, half, full)


@pytest.mark.parametrize("name", NON_INERT_AUS)
def test_every_au_is_visible_at_64_pixels(name):
    # "Visible": at least 16 pixels (a 4x4 patch's worth, 0.4% of the image) change by more than 16/255
    # (6%, several times the ~1-2% just-noticeable difference) in some channel. Measured over 320
    # sampled faces: 99% of (face, AU) pairs change >= 23 such pixels, the medians are 40-300 per AU,
    # and the weakest pair (AU23 on a dark, bearded face) changes 14.
    for identity in [synthetic.Identity()] + _identities(4, seed=2):
        changed = int((_change(identity, name, 1.0).max(axis=-1) > 16).sum())
        assert changed >= 16, (name, identity, changed)


def test_inert_aus_are_known_and_really_inert():
    assert set(synthetic.INERT_AUS) <= set(action_units.AU_NAMES)
    for name in synthetic.INERT_AUS:
        assert _change(synthetic.Identity(), name, 1.0).max() == 0


# === Identities and AU vectors ===

def test_identity_round_trips_through_json_and_validates():
    identity = _identities(1)[0]
    assert synthetic.Identity.from_dict(json.loads(json.dumps(identity.to_dict()))) == identity
    values = identity.to_dict()
    del values["skin_color"]
    with pytest.raises(ValueError, match="skin_color"):
        synthetic.Identity.from_dict(values)
    with pytest.raises(ValueError, match="hair_style"):
        synthetic.Identity(hair_style=len(synthetic.HAIR_STYLES))


def test_sample_identity_is_reproducible():
    assert _identities(3, seed=7) == _identities(3, seed=7)
    assert _identities(1, seed=7) != _identities(1, seed=8)


def test_sample_aus_looks_like_openface_output():
    rng = np.random.default_rng(0)
    samples = np.stack([synthetic.sample_aus(rng) for _ in range(1000)])
    assert samples.shape == (1000, 17) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert 0.6 < (samples == 0).mean() < 0.95  # mostly zeros
    assert 0.1 < (samples.max(axis=1) == 0).mean() < 0.3  # ~20% neutral
    assert (samples > 0).any(axis=0).all()  # every AU occurs
    # Raw values are rounded to 0.01 and normalise back to exactly the sampled floats.
    raw = synthetic.sample_raw_aus(np.random.default_rng(5))
    np.testing.assert_array_equal(raw, np.round(raw, 2))
    np.testing.assert_array_equal(action_units.normalize_intensities(raw),
                                  synthetic.sample_aus(np.random.default_rng(5)))


# === Dataset ===

def _read_ids(path):
    with open(path) as file:
        return [line.strip() for line in file if line.strip()]


def test_make_dataset_writes_the_ganimation_layout(tmp_path):
    out = str(tmp_path / "synthetic")
    summary = synthetic.make_dataset(out, num_images=11, image_size=32, seed=0, test_fraction=0.25,
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

    identities = synthetic.load_identities(out)
    assert sorted(identities) == sorted(raw_aus)
    assert identities["000001_0"] == identities["000001_2"] != identities["000002_0"]
    for image_id in ("000000_0", "000003_1"):
        png = np.asarray(Image.open(os.path.join(out, "imgs", f"{image_id}.png")))
        again = synthetic.render_face(identities[image_id], action_units.normalize_intensities(raw_aus[image_id]), 32)
        assert png.tobytes() == again.tobytes()


def test_make_dataset_refuses_to_overwrite_unless_asked(tmp_path):
    out = str(tmp_path / "synthetic")
    synthetic.make_dataset(out, num_images=4, image_size=16, images_per_identity=2, progress=False)
    with pytest.raises(ValueError, match="already holds a dataset"):
        synthetic.make_dataset(out, num_images=2, image_size=16, progress=False)
    synthetic.make_dataset(out, num_images=2, image_size=16, images_per_identity=2, overwrite=True, progress=False)
    assert len(os.listdir(os.path.join(out, "imgs"))) == 2


def test_overwrite_never_deletes_images_it_did_not_write(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "N_0000000356_00190.jpg").write_bytes(b"a real photo")
    with pytest.raises(ValueError, match="N_0000000356_00190.jpg"):
        synthetic.make_dataset(str(tmp_path), num_images=2, image_size=16, overwrite=True, progress=False)
    assert (tmp_path / "imgs" / "N_0000000356_00190.jpg").exists()


def test_interrupted_make_dataset_does_not_look_complete(tmp_path, monkeypatch):
    out = str(tmp_path / "synthetic")
    synthetic.make_dataset(out, num_images=4, image_size=16, images_per_identity=2, progress=False)

    def crash(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_render_chunk", crash)
    with pytest.raises(KeyboardInterrupt):
        synthetic.make_dataset(out, num_images=4, image_size=16, overwrite=True, progress=False)
    assert sorted(os.listdir(out)) == ["imgs"]


@pytest.mark.parametrize("argument, value", [("num_images", 0), ("image_size", 8), ("test_fraction", 1.0),
                                             ("images_per_identity", 0), ("num_workers", -1)])
def test_make_dataset_rejects_bad_arguments(tmp_path, argument, value):
    arguments = dict(num_images=4, image_size=16, progress=False)
    arguments[argument] = value
    with pytest.raises(ValueError, match=f"{argument}="):
        synthetic.make_dataset(str(tmp_path), **arguments)


def test_load_identities_without_the_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="identities.json"):
        synthetic.load_identities(str(tmp_path))


@pytest.mark.slow
def test_worker_processes_write_the_same_dataset(tmp_path):
    arguments = dict(num_images=130, image_size=16, seed=3, progress=False)
    synthetic.make_dataset(str(tmp_path / "one"), num_workers=1, **arguments)
    synthetic.make_dataset(str(tmp_path / "two"), num_workers=2, **arguments)
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
    assert "already holds a dataset" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run(command[:2] + ["--out", str(tmp_path / "bad"), "--image_size", "8"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "image_size=8" in bad.stderr and "Traceback" not in bad.stderr
