"""Tests for tf_ganimation/faces/alignment.py: the eye-level crop transform, cropping goldens, sampling."""

import json
import math

import numpy as np
import pytest

from tf_ganimation.faces import alignment, detection


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


def test_align_face_golden():
    transform = alignment.align_face(_synthetic_face(), size=128, margin=0.1)
    # extent = max(2.5 * 20, 2.8 * 20, sqrt(40 * 50)) = 56; side = 56 * 1.2 = 67.2 photo px.
    assert transform.center == pytest.approx((50.0, 60.0))
    assert transform.angle == pytest.approx(0.0)
    assert transform.scale == pytest.approx(128 / 67.2)
    np.testing.assert_allclose(transform.to_crop([50.0, 60.0]), [64.0, 64.0])
    np.testing.assert_allclose(transform.to_crop([50.0 - 33.6, 60.0 - 33.6]), [0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("angle_degrees", [-35.0, 0.0, 20.0])
def test_align_face_levels_the_eyes_and_inverts(angle_degrees):
    synthetic = _synthetic_face(angle_degrees=angle_degrees)
    transform = alignment.align_face(synthetic, size=128)
    assert transform.angle == pytest.approx(math.radians(angle_degrees))
    eyes = transform.to_crop([synthetic.keypoints["left_eye"], synthetic.keypoints["right_eye"]])
    assert eyes[0, 1] == pytest.approx(eyes[1, 1]) and eyes[0, 0] < eyes[1, 0]
    points = np.array([[3.0, 4.0], [120.5, -7.25]])
    np.testing.assert_allclose(transform.to_photo(transform.to_crop(points)), points, atol=1e-9)
    product = np.vstack([transform.matrix(), [0, 0, 1]]) @ np.vstack([transform.inverse_matrix(), [0, 0, 1]])
    np.testing.assert_allclose(product, np.eye(3), atol=1e-12)
    assert alignment.CropTransform.from_dict(json.loads(json.dumps(transform.to_dict()))) == transform


def test_align_face_validates():
    with pytest.raises(ValueError, match="margin=-0.1"):
        alignment.align_face(_synthetic_face(), margin=-0.1)
    with pytest.raises(ValueError, match="size=0"):
        alignment.align_face(_synthetic_face(), size=0)
    with pytest.raises(ValueError, match="scale=0"):
        alignment.CropTransform(center=(0.0, 0.0), angle=0.0, scale=0.0, size=8)


def test_crop_photo_golden_shift():
    transform = alignment.CropTransform(center=(100.0, 50.0), angle=0.0, scale=1.0, size=32)
    crop = alignment.crop_photo(_ramp(), transform)
    rows, columns = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    np.testing.assert_array_equal(crop[..., 0], columns + 84)  # crop centre j + 0.5 -> photo 84 + j + 0.5
    np.testing.assert_array_equal(crop[..., 1], rows + 34)


def test_crop_photo_golden_quarter_turn():
    transform = alignment.CropTransform(center=(100.0, 50.0), angle=math.pi / 2, scale=1.0, size=32)
    crop = alignment.crop_photo(_ramp(), transform)
    rows, columns = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    np.testing.assert_array_equal(crop[..., 0], 115 - rows)  # the crop's x axis runs down the photo
    np.testing.assert_array_equal(crop[..., 1], 34 + columns)


def test_crop_photo_repeats_edges_outside_the_photo():
    transform = alignment.CropTransform(center=(0.0, 0.0), angle=0.0, scale=1.0, size=8)
    crop = alignment.crop_photo(_ramp(), transform)
    np.testing.assert_array_equal(crop[0, :, 0], [0, 0, 0, 0, 0, 1, 2, 3])  # max(j - 4, 0)


def test_crop_photo_box_filters_large_faces():
    transform = alignment.CropTransform(center=(100.0, 50.0), angle=0.0, scale=0.25, size=16)
    crop = alignment.crop_photo(_ramp(), transform)  # one crop pixel = 4x4 photo pixels
    columns = np.arange(16)
    # crop centre j + 0.5 -> photo x = 100 + 4 * (j + 0.5 - 8) = 70 + 4 j; pixel value there = 69.5 + 4 j.
    np.testing.assert_allclose(crop[8, :, 0], 69.5 + 4 * columns, atol=1)


def test_astronaut_crop_is_aligned(detector, astronaut, astronaut_face):
    crop, transform = alignment.crop_face(astronaut, astronaut_face, size=128)
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

def test_photo_window_golden():
    transform = alignment.CropTransform(center=(50.0, 50.0), angle=0.0, scale=1.0, size=64)
    assert transform.photo_window(100, 100, pad=1) == (17, 17, 83, 83)  # the square is [18, 82) x [18, 82)
    assert transform.photo_window(40, 60, pad=1) == (17, 17, 60, 40)  # clipped to the photo
    outside = alignment.CropTransform(center=(500.0, 500.0), angle=0.0, scale=1.0, size=8)
    assert outside.photo_window(40, 60, pad=1) == (59, 39, 60, 40)  # never empty


def test_warp_bilinear_equals_sample_bilinear_inside_and_zero_outside():
    image = np.random.default_rng(0).uniform(0, 255, (12, 10, 4)).astype(np.float32)
    transform = alignment.CropTransform(center=(40.0, 30.0), angle=0.3, scale=0.2, size=10)
    matrix = transform.matrix()  # a 90 x 70 window's pixel centres -> the image's points
    warped = alignment.warp_bilinear(image, matrix, 90, 70)
    points = transform.to_crop(alignment.pixel_centres(70, 90))
    expected = np.moveaxis(alignment.sample_bilinear(image, points[..., 0], points[..., 1]), -1, 0)
    inside = (points[..., 0] >= 0) & (points[..., 0] < 10) & (points[..., 1] >= 0) & (points[..., 1] < 12)
    assert warped.shape == (4, 70, 90) and warped.dtype == np.float32
    assert 0.2 < inside.mean() < 0.9  # the test sees both sides of the border
    np.testing.assert_allclose(warped[:, inside], expected[:, inside], atol=1e-3)
    assert not warped[:, ~inside].any()


def test_sample_bilinear_golden():
    image = np.array([[[0.0], [10.0]], [[20.0], [30.0]]], np.float32)  # 2 x 2, one channel
    x, y = np.array([0.5, 1.0, 1.5, -3.0]), np.array([0.5, 1.0, 1.5, 0.5])
    np.testing.assert_allclose(alignment.sample_bilinear(image, x, y)[:, 0], [0.0, 15.0, 30.0, 0.0])
    centres = alignment.pixel_centres(2, 3)
    assert centres.shape == (2, 3, 2) and centres[1, 2].tolist() == [2.5, 1.5]
