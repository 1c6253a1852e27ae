"""Tests for tf_ganimation/faces/blending.py: paste-back goldens, the face region, feathering."""

import numpy as np
import pytest

from tf_ganimation.faces import alignment, blending


def test_paste_unchanged_crop_with_full_attention_is_bit_exact(astronaut, astronaut_face):
    crop, transform = alignment.crop_face(astronaut, astronaut_face, size=128)
    restored = blending.paste_back(astronaut, crop, transform, attention=np.ones((128, 128, 1), np.float32))
    np.testing.assert_array_equal(restored, astronaut)


def test_paste_into_out_equals_the_copy_and_leaves_the_photo(astronaut, astronaut_face):
    crop, transform = alignment.crop_face(astronaut, astronaut_face, size=32)
    edited = np.full((32, 32, 3), 0.5, np.float32)
    attention = np.random.default_rng(0).uniform(0, 1, (32, 32, 1)).astype(np.float32)
    copied = blending.paste_back(astronaut, edited, transform, attention=attention)
    frame = astronaut.copy()
    in_place = blending.paste_back(frame, edited, transform, attention=attention, out=frame)
    assert in_place is frame and (copied != astronaut).any()
    np.testing.assert_array_equal(in_place, copied)
    with pytest.raises(ValueError, match="out is"):
        blending.paste_back(astronaut, edited, transform, out=np.zeros((4, 4, 3), np.uint8))


def test_paste_unchanged_crop_changes_only_the_face_region(astronaut, astronaut_face):
    crop, transform = alignment.crop_face(astronaut, astronaut_face, size=128)
    region = blending.face_region(transform, *astronaut.shape[:2])
    restored = blending.paste_back(astronaut, crop, transform)
    np.testing.assert_array_equal(restored[~region], astronaut[~region])
    difference = np.abs(restored.astype(int) - astronaut)[region]
    assert difference.mean() < 3  # bilinear round trip blurs a little


def test_paste_solid_edit_stays_inside_the_face_region(astronaut, astronaut_face):
    _, transform = alignment.crop_face(astronaut, astronaut_face, size=128)
    region = blending.face_region(transform, *astronaut.shape[:2])
    edit = np.zeros((128, 128, 3), np.float32)
    edit[..., 1] = 1.0  # pure green, in the generator's [-1, 1] range: (-1, 1, -1) -> (0, 255, 0)
    edit[..., 0] = edit[..., 2] = -1.0
    edited = blending.paste_back(astronaut, edit, transform, attention=np.zeros((128, 128, 1), np.float32))
    changed = (edited != astronaut).any(axis=-1)
    assert changed.sum() > 0.5 * region.sum()
    assert not changed[~region].any()
    np.testing.assert_array_equal(edited[~region], astronaut[~region])
    centre_x, centre_y = (int(value) for value in transform.center)
    assert edited[centre_y, centre_x].tolist() == [0, 255, 0]


def test_paste_feather_golden():
    photo = np.zeros((100, 100, 3), np.uint8)
    white = np.full((64, 64, 3), 255, np.uint8)
    transform = alignment.CropTransform(center=(50.0, 50.0), angle=0.0, scale=1.0, size=64)
    # Column c has crop x = c + 0.5 - 18, its distance to the left border; the ramp is 0.1 * 64 = 6.4 px.
    row = blending.paste_back(photo, white, transform, feather=0.1)[50, :, 0]
    # smoothstep(t) = 3t^2 - 2t^3: t = 0.5/6.4 -> 0.0174 -> 4.4; t = 2.5/6.4 -> 0.3386 -> 86.3.
    assert row[17] == 0 and row[18] == 4 and row[20] == 86 and row[24] == 255 and row[50] == 255
    assert row[81] == 4 and row[82] == 0
    hard = blending.paste_back(photo, white, transform, feather=0.0)[50, :, 0]
    assert hard[17] == 0 and hard[18] == 255 and hard[81] == 255 and hard[82] == 0
    region = blending.face_region(transform, 100, 100)
    assert region.sum() == 64 * 64 and region[18:82, 18:82].all()


def test_paste_attention_blends():
    photo = np.full((100, 100, 3), 200, np.uint8)
    transform = alignment.CropTransform(center=(50.0, 50.0), angle=0.0, scale=1.0, size=64)
    attention = np.full((64, 64, 1), 0.25, np.float32)
    pasted = blending.paste_back(photo, np.zeros((64, 64, 3), np.uint8), transform, attention=attention)
    assert pasted[50, 50].tolist() == [50, 50, 50]  # 0.25 * 200 + 0.75 * 0
    assert pasted[0, 0].tolist() == [200, 200, 200]


def test_paste_small_face_box_filters_the_crop():
    photo = np.zeros((100, 100, 3), np.uint8)
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: aliased to 0 or 255 without the box filter
    transform = alignment.CropTransform(center=(50.0, 50.0), angle=0.0, scale=4.0, size=64)
    pasted = blending.paste_back(photo, stripes, transform, feather=0.0)
    np.testing.assert_allclose(pasted[46:54, 46:54], 128, atol=1)  # 16x16 photo px, each 4 crop px


def test_paste_back_validates_inputs():
    photo = np.zeros((10, 10, 3), np.uint8)
    transform = alignment.CropTransform(center=(5.0, 5.0), angle=0.0, scale=1.0, size=8)
    with pytest.raises(ValueError, match=r"edited_crop has shape \[8, 8\]"):
        blending.paste_back(photo, np.zeros((8, 8)), transform)
    with pytest.raises(ValueError, match="attention must be finite and in"):
        blending.paste_back(photo, np.zeros((8, 8, 3), np.uint8), transform,
                        attention=np.full((8, 8, 1), 2.0))
    with pytest.raises(ValueError, match="NaN or infinite"):
        blending.paste_back(photo, np.full((8, 8, 3), np.nan, np.float32), transform)
    with pytest.raises(ValueError, match="feather=0.7"):
        blending.paste_back(photo, np.zeros((8, 8, 3), np.uint8), transform, feather=0.7)
    with pytest.raises(ValueError, match=r"photo is float64"):
        blending.paste_back(photo.astype(float), np.zeros((8, 8, 3), np.uint8), transform)
