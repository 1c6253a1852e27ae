"""Tests for tf_ganimation/faces/detection.py: MTCNN on the shared photos, Face records, pick_faces."""

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

from conftest import ASTRONAUT_BOX, shared_photo


def _synthetic_face(center=(50.0, 60.0), angle_degrees=0.0) -> detection.Face:
    """Eyes 20 px apart, mouth 20 px below the eyes, turned by angle_degrees about `center`."""
    angle = math.radians(angle_degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    offsets = {"left_eye": (-10, -10), "right_eye": (10, -10), "nose": (0, 0),
               "mouth_left": (-8, 10), "mouth_right": (8, 10)}
    keypoints = {name: tuple(float(v) for v in np.asarray(center) + rotation @ np.asarray(offset))
                 for name, offset in offsets.items()}
    return detection.Face(box=(center[0] - 20, center[1] - 25, 40.0, 50.0), keypoints=keypoints, confidence=0.99)


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


def test_face_probability_tells_a_tracked_face_from_background(detector, astronaut, astronaut_face):
    x, y, width, height = astronaut_face.box
    boxes = [astronaut_face.box, (x + width, y, width, height),  # the face; the box beside it
             (-width / 2, -height / 2, width, height)]  # half off the photo: grey beyond it, no error
    probability = detector.face_probability(astronaut, boxes)
    assert probability.shape == (3,) and probability.dtype == np.float32
    assert probability[0] > 0.9 and probability[1] < 0.1 and probability[2] < 0.1
    assert detector.face_probability(np.full_like(astronaut, 90), [astronaut_face.box])[0] < 0.1
    assert detector.face_probability(astronaut, np.zeros((0, 4))).shape == (0,)
    several = detector.face_probabilities([(astronaut, boxes[:2]), (astronaut, []), (astronaut, boxes[2:])])
    assert [item.shape for item in several] == [(2,), (0,), (1,)]
    np.testing.assert_allclose(np.concatenate(several), probability, atol=1e-5)  # one call, the same answers


def test_networks_run_as_graphs_and_an_empty_batch_raises_what_mtcnn_expects():
    import tensorflow as tf

    calls = []

    def network(images):
        calls.append(images.shape)
        return tf.reduce_sum(images, axis=[1, 2, 3])

    graph = detection._graph_function(network)
    np.testing.assert_allclose(graph(np.ones((2, 5, 7, 3), np.float32)).numpy(), [105.0, 105.0])
    graph(np.ones((1, 9, 4, 3), np.float32))
    assert len(calls) == 1  # traced once for every batch and size
    with pytest.raises(tf.errors.InvalidArgumentError):
        graph(np.zeros((0, 24, 24, 3), np.float32))
    assert len(calls) == 1


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
    assert detector.detect(shared_photo(name)) == []


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
    with pytest.raises(IndexError):  # joblib unpickles b"bogus weights": "b" is BUILD on an empty stack
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
    # What a caller does about it (a flag, an exit code) is the caller's to say.
    assert "--" not in str(error) and "exit" not in str(error) and "editor" not in str(error)


def test_pick_faces():
    small, large = _synthetic_face(), dataclasses.replace(_synthetic_face(), box=(0.0, 0.0, 80.0, 90.0))
    assert detection.pick_faces([small, large], "all") == [large, small]
    assert detection.pick_faces([small, large], "largest") == [large]
    assert detection.pick_faces([], "largest") == []
    with pytest.raises(ValueError, match="faces='biggest'.*'all', 'largest'"):
        detection.pick_faces([small], "biggest")

def test_check_photo_accepts_only_uint8_rgb():
    detection.check_photo(np.zeros((2, 3, 3), np.uint8), "photo")
    with pytest.raises(ValueError, match=r"photo is uint8 \[0, 4, 3\]"):
        detection.check_photo(np.zeros((0, 4, 3), np.uint8), "photo")
    with pytest.raises(ValueError, match=r"crop is uint8 \[4, 4\]"):
        detection.check_photo(np.zeros((4, 4), np.uint8), "crop")
    with pytest.raises(ValueError, match="photo is list"):
        detection.check_photo([[0, 0, 0]], "photo")
