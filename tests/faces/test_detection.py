"""Tests for tf_ganimation/detection.py: MTCNN on the shared photos, alignment, crop and paste-back goldens."""

import dataclasses
import importlib
import json
import math
import pathlib

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core import image_files
from tf_ganimation.faces import detection

PHOTOS_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "photos"
ASTRONAUT_BOX = (182, 64, 83, 107)  # measured with mtcnn 1.0 on this photo (x, y, width, height)


def _shared_photo(name: str) -> np.ndarray:
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared test photos not found at {PHOTOS_DIR}")
    return image_files.read_photo(PHOTOS_DIR / name)


@pytest.fixture(scope="module")
def detector() -> detection.FaceDetector:
    return detection.FaceDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return _shared_photo("astronaut.png")


@pytest.fixture(scope="module")
def astronaut_face(detector, astronaut) -> detection.Face:
    return detector.detect(astronaut)[0]


def _ramp(height: int = 100, width: int = 200) -> np.ndarray:
    """uint8 [height, width, 3]: R = column index, G = row index, B = 0 (bilinear reproduces it exactly)."""
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([columns, rows, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def _synthetic_face(center=(50.0, 60.0), angle_degrees=0.0) -> detection.Face:
    """Eyes 20 px apart, mouth 20 px below the eyes, turned by angle_degrees about `center`."""
    angle = math.radians(angle_degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    offsets = {"left_eye": (-10, -10), "right_eye": (10, -10), "nose": (0, 0),
               "mouth_left": (-8, 10), "mouth_right": (8, 10)}
    keypoints = {name: tuple(float(v) for v in np.asarray(center) + rotation @ np.asarray(offset))
                 for name, offset in offsets.items()}
    return detection.Face(box=(center[0] - 20, center[1] - 25, 40.0, 50.0), keypoints=keypoints, confidence=0.99)


# === Detection on real photos ===


def test_astronaut_has_exactly_one_face(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    found = faces[0]
    np.testing.assert_allclose(found.box, ASTRONAUT_BOX, atol=2)
    assert found.confidence > 0.95
    x, y, width, height = found.box
    for name in detection.KEYPOINT_NAMES:
        key_x, key_y = found.keypoints[name]
        assert x <= key_x <= x + width and y <= key_y <= y + height, name
    assert found.keypoints["left_eye"][0] < found.keypoints["right_eye"][0]  # "left" = image left
    assert found.keypoints["left_eye"][1] < found.keypoints["mouth_left"][1]


def test_face_record_is_json_able(astronaut_face):
    record = json.loads(json.dumps(astronaut_face.to_dict()))
    assert sorted(record) == ["box", "confidence", "keypoints"]
    assert all(type(value) is float for value in record["box"])
    assert type(record["confidence"]) is float
    again = detection.Face.from_dict(record)
    np.testing.assert_allclose(again.box, astronaut_face.box, atol=0.01)
    np.testing.assert_allclose(again.keypoints["nose"], astronaut_face.keypoints["nose"], atol=0.01)


@pytest.mark.parametrize("name", ["chelsea.png", "coffee.png"])
def test_no_face_in_cat_or_coffee(detector, name):
    assert detector.detect(_shared_photo(name)) == []


def test_blank_and_tiny_photos_have_no_face(detector):
    assert detector.detect(np.full((64, 64, 3), 128, np.uint8)) == []
    assert detector.detect(np.zeros((8, 8, 3), np.uint8)) == []


def test_large_photo_is_detected_on_a_copy_and_mapped_back(detector, astronaut):
    large = np.asarray(Image.fromarray(astronaut).resize((2048, 2048), Image.Resampling.BILINEAR))
    faces = detector.detect(large)  # detected at 1024 px, reported in 2048 px coordinates
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, 4 * np.asarray(ASTRONAUT_BOX), atol=4 * 4)
    np.testing.assert_allclose(faces[0].keypoints["nose"], [4 * 224.2, 4 * 126.4], atol=4 * 3)


def test_exif_rotated_astronaut_is_still_detected(detector, astronaut, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    path = tmp_path / "sideways.jpg"
    Image.fromarray(np.rot90(astronaut, k=1)).save(path, quality=95, exif=exif.tobytes())
    photo = image_files.read_photo(path)
    faces = detector.detect(photo)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, ASTRONAUT_BOX, atol=4)


def test_thresholds_filter_faces(astronaut):
    strict = detection.FaceDetector(detection.DetectorConfig(min_confidence=0.9999, min_face_fraction=0.0))
    assert strict.detect(astronaut) == []  # its confidence is 0.99912
    small_only = detection.FaceDetector(detection.DetectorConfig(min_face_fraction=0.22))
    assert small_only.detect(astronaut) == []  # its box is 107 / 512 = 0.209 of the shorter side


def test_detector_config_is_validated():
    with pytest.raises(ValueError, match="min_confidence=1.5"):
        detection.DetectorConfig(min_confidence=1.5)
    with pytest.raises(ValueError, match="min_face_fraction=1"):
        detection.DetectorConfig(min_face_fraction=1)
    with pytest.raises(ValueError, match="max_detection_side=10"):
        detection.DetectorConfig(max_detection_side=10)


def test_detect_rejects_non_photos(detector):
    with pytest.raises(ValueError, match=r"float32 \[8, 8, 3\].*expected uint8"):
        detector.detect(np.zeros((8, 8, 3), np.float32))


def test_weights_come_from_the_package_not_the_cwd(astronaut, tmp_path, monkeypatch):
    mtcnn = importlib.import_module("mtcnn")
    package = pathlib.Path(mtcnn.__file__).resolve().parent
    for stage, path in detection.package_weight_paths().items():
        assert pathlib.Path(path).is_absolute() and pathlib.Path(path).is_relative_to(package), stage
    for name in ("pnet.lz4", "rnet.lz4", "onet.lz4"):
        (tmp_path / name).write_bytes(b"bogus weights")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception):
        mtcnn.MTCNN()  # the trap is real: the package's default loads ./pnet.lz4
    faces = detection.FaceDetector().detect(astronaut)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, ASTRONAUT_BOX, atol=2)


def test_missing_mtcnn_says_what_to_install(monkeypatch):
    real_import = importlib.import_module

    def no_mtcnn(name, *args):
        if name.startswith("mtcnn"):
            raise ImportError("No module named 'mtcnn'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_mtcnn)
    with pytest.raises(ImportError, match=r"pip install mtcnn==1\.0\.0"):
        detection.FaceDetector()


def test_no_face_error_names_the_file():
    error = detection.NoFaceError("photos/cat.jpg")
    assert isinstance(error, ValueError) and error.path == "photos/cat.jpg"
    assert "no face found in 'photos/cat.jpg'" in str(error)


def test_pick_faces():
    small, large = _synthetic_face(), dataclasses.replace(_synthetic_face(), box=(0.0, 0.0, 80.0, 90.0))
    assert detection.pick_faces([small, large], "all") == [large, small]
    assert detection.pick_faces([small, large], "largest") == [large]
    assert detection.pick_faces([], "largest") == []
    with pytest.raises(ValueError, match="faces='biggest'.*'all', 'largest'"):
        detection.pick_faces([small], "biggest")


# === Alignment ===


def test_align_face_golden():
    transform = detection.align_face(_synthetic_face(), size=128, margin=0.1)
    # extent = max(2.5 * 20, 2.8 * 20, sqrt(40 * 50)) = 56; side = 56 * 1.2 = 67.2 photo px.
    assert transform.center == pytest.approx((50.0, 60.0))
    assert transform.angle == pytest.approx(0.0)
    assert transform.scale == pytest.approx(128 / 67.2)
    np.testing.assert_allclose(transform.to_crop([50.0, 60.0]), [64.0, 64.0])
    np.testing.assert_allclose(transform.to_crop([50.0 - 33.6, 60.0 - 33.6]), [0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("angle_degrees", [-35.0, 0.0, 20.0])
def test_align_face_levels_the_eyes_and_inverts(angle_degrees):
    synthetic = _synthetic_face(angle_degrees=angle_degrees)
    transform = detection.align_face(synthetic, size=128)
    assert transform.angle == pytest.approx(math.radians(angle_degrees))
    eyes = transform.to_crop([synthetic.keypoints["left_eye"], synthetic.keypoints["right_eye"]])
    assert eyes[0, 1] == pytest.approx(eyes[1, 1]) and eyes[0, 0] < eyes[1, 0]
    points = np.array([[3.0, 4.0], [120.5, -7.25]])
    np.testing.assert_allclose(transform.to_photo(transform.to_crop(points)), points, atol=1e-9)
    product = np.vstack([transform.matrix(), [0, 0, 1]]) @ np.vstack([transform.inverse_matrix(), [0, 0, 1]])
    np.testing.assert_allclose(product, np.eye(3), atol=1e-12)
    assert detection.CropTransform.from_dict(json.loads(json.dumps(transform.to_dict()))) == transform


def test_align_face_validates():
    with pytest.raises(ValueError, match="margin=-0.1"):
        detection.align_face(_synthetic_face(), margin=-0.1)
    with pytest.raises(ValueError, match="size=0"):
        detection.align_face(_synthetic_face(), size=0)
    with pytest.raises(ValueError, match="scale=0"):
        detection.CropTransform(center=(0.0, 0.0), angle=0.0, scale=0.0, size=8)


# === Cropping ===


def test_crop_photo_golden_shift():
    transform = detection.CropTransform(center=(100.0, 50.0), angle=0.0, scale=1.0, size=32)
    crop = detection.crop_photo(_ramp(), transform)
    rows, columns = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    np.testing.assert_array_equal(crop[..., 0], columns + 84)  # crop centre j + 0.5 -> photo 84 + j + 0.5
    np.testing.assert_array_equal(crop[..., 1], rows + 34)


def test_crop_photo_golden_quarter_turn():
    transform = detection.CropTransform(center=(100.0, 50.0), angle=math.pi / 2, scale=1.0, size=32)
    crop = detection.crop_photo(_ramp(), transform)
    rows, columns = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    np.testing.assert_array_equal(crop[..., 0], 115 - rows)  # the crop's x axis runs down the photo
    np.testing.assert_array_equal(crop[..., 1], 34 + columns)


def test_crop_photo_repeats_edges_outside_the_photo():
    transform = detection.CropTransform(center=(0.0, 0.0), angle=0.0, scale=1.0, size=8)
    crop = detection.crop_photo(_ramp(), transform)
    np.testing.assert_array_equal(crop[0, :, 0], [0, 0, 0, 0, 0, 1, 2, 3])  # max(j - 4, 0)


def test_crop_photo_box_filters_large_faces():
    transform = detection.CropTransform(center=(100.0, 50.0), angle=0.0, scale=0.25, size=16)
    crop = detection.crop_photo(_ramp(), transform)  # one crop pixel = 4x4 photo pixels
    columns = np.arange(16)
    # crop centre j + 0.5 -> photo x = 100 + 4 * (j + 0.5 - 8) = 70 + 4 j; pixel value there = 69.5 + 4 j.
    np.testing.assert_allclose(crop[8, :, 0], 69.5 + 4 * columns, atol=1)


def test_astronaut_crop_is_aligned(detector, astronaut, astronaut_face):
    crop, transform = detection.crop_face(astronaut, astronaut_face, size=128)
    assert crop.dtype == np.uint8 and crop.shape == (128, 128, 3)
    keypoints = transform.to_crop([astronaut_face.keypoints[name] for name in detection.KEYPOINT_NAMES])
    assert abs(keypoints[0, 1] - keypoints[1, 1]) < 1e-6  # the eyes are level
    assert (keypoints > 0.2 * 128).all() and (keypoints < 0.8 * 128).all()
    x, y, width, height = astronaut_face.box
    corners = transform.to_crop([[x, y], [x + width, y], [x, y + height], [x + width, y + height]])
    assert (corners > -3).all() and (corners < 128 + 3).all()  # the whole face box is in the crop
    again = detector.detect(crop)  # MTCNN finds the face again, eyes level within a few pixels
    assert len(again) == 1
    left, right = again[0].keypoints["left_eye"], again[0].keypoints["right_eye"]
    assert abs(left[1] - right[1]) < 3


# === Paste-back ===


def test_paste_unchanged_crop_with_full_attention_is_bit_exact(astronaut, astronaut_face):
    crop, transform = detection.crop_face(astronaut, astronaut_face, size=128)
    restored = detection.paste_back(astronaut, crop, transform, attention=np.ones((128, 128, 1), np.float32))
    np.testing.assert_array_equal(restored, astronaut)


def test_paste_unchanged_crop_changes_only_the_face_region(astronaut, astronaut_face):
    crop, transform = detection.crop_face(astronaut, astronaut_face, size=128)
    region = detection.face_region(transform, *astronaut.shape[:2])
    restored = detection.paste_back(astronaut, crop, transform)
    np.testing.assert_array_equal(restored[~region], astronaut[~region])
    difference = np.abs(restored.astype(int) - astronaut)[region]
    assert difference.mean() < 3  # bilinear round trip blurs a little


def test_paste_solid_edit_stays_inside_the_face_region(astronaut, astronaut_face):
    _, transform = detection.crop_face(astronaut, astronaut_face, size=128)
    region = detection.face_region(transform, *astronaut.shape[:2])
    edit = np.zeros((128, 128, 3), np.float32)
    edit[..., 1] = 1.0  # pure green, in the generator's [-1, 1] range: (-1, 1, -1) -> (0, 255, 0)
    edit[..., 0] = edit[..., 2] = -1.0
    edited = detection.paste_back(astronaut, edit, transform, attention=np.zeros((128, 128, 1), np.float32))
    changed = (edited != astronaut).any(axis=-1)
    assert changed.sum() > 0.5 * region.sum()
    assert not changed[~region].any()
    np.testing.assert_array_equal(edited[~region], astronaut[~region])
    centre_x, centre_y = (int(value) for value in transform.center)
    assert edited[centre_y, centre_x].tolist() == [0, 255, 0]


def test_paste_feather_golden():
    photo = np.zeros((100, 100, 3), np.uint8)
    white = np.full((64, 64, 3), 255, np.uint8)
    transform = detection.CropTransform(center=(50.0, 50.0), angle=0.0, scale=1.0, size=64)
    # Column c has crop x = c + 0.5 - 18, its distance to the left border; the ramp is 0.1 * 64 = 6.4 px.
    row = detection.paste_back(photo, white, transform, feather=0.1)[50, :, 0]
    # smoothstep(t) = 3t^2 - 2t^3: t = 0.5/6.4 -> 0.0174 -> 4.4; t = 2.5/6.4 -> 0.3386 -> 86.3.
    assert row[17] == 0 and row[18] == 4 and row[20] == 86 and row[24] == 255 and row[50] == 255
    assert row[81] == 4 and row[82] == 0
    hard = detection.paste_back(photo, white, transform, feather=0.0)[50, :, 0]
    assert hard[17] == 0 and hard[18] == 255 and hard[81] == 255 and hard[82] == 0
    region = detection.face_region(transform, 100, 100)
    assert region.sum() == 64 * 64 and region[18:82, 18:82].all()


def test_paste_attention_blends():
    photo = np.full((100, 100, 3), 200, np.uint8)
    transform = detection.CropTransform(center=(50.0, 50.0), angle=0.0, scale=1.0, size=64)
    attention = np.full((64, 64, 1), 0.25, np.float32)
    pasted = detection.paste_back(photo, np.zeros((64, 64, 3), np.uint8), transform, attention=attention)
    assert pasted[50, 50].tolist() == [50, 50, 50]  # 0.25 * 200 + 0.75 * 0
    assert pasted[0, 0].tolist() == [200, 200, 200]


def test_paste_small_face_box_filters_the_crop():
    photo = np.zeros((100, 100, 3), np.uint8)
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: aliased to 0 or 255 without the box filter
    transform = detection.CropTransform(center=(50.0, 50.0), angle=0.0, scale=4.0, size=64)
    pasted = detection.paste_back(photo, stripes, transform, feather=0.0)
    np.testing.assert_allclose(pasted[46:54, 46:54], 128, atol=1)  # 16x16 photo px, each 4 crop px


def test_paste_back_validates_inputs():
    photo = np.zeros((10, 10, 3), np.uint8)
    transform = detection.CropTransform(center=(5.0, 5.0), angle=0.0, scale=1.0, size=8)
    with pytest.raises(ValueError, match=r"edited_crop has shape \[8, 8\]"):
        detection.paste_back(photo, np.zeros((8, 8)), transform)
    with pytest.raises(ValueError, match="attention must be finite and in"):
        detection.paste_back(photo, np.zeros((8, 8, 3), np.uint8), transform,
                        attention=np.full((8, 8, 1), 2.0))
    with pytest.raises(ValueError, match="NaN or infinite"):
        detection.paste_back(photo, np.full((8, 8, 3), np.nan, np.float32), transform)
    with pytest.raises(ValueError, match="feather=0.7"):
        detection.paste_back(photo, np.zeros((8, 8, 3), np.uint8), transform, feather=0.7)
    with pytest.raises(ValueError, match=r"photo is float64"):
        detection.paste_back(photo.astype(float), np.zeros((8, 8, 3), np.uint8), transform)
