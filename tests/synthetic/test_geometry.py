"""Tests for tf_ganimation/synthetic/geometry.py: the face's shapes and how each AU moves them."""

import numpy as np
import pytest

from tf_ganimation.core import action_units
from tf_ganimation.synthetic import geometry
from tf_ganimation.synthetic.identity import HAIR_STYLES, Identity, sample_identity


def _aus(**intensities) -> np.ndarray:
    return action_units.from_mapping(intensities)


def _identities(count: int, seed: int = 0) -> list[Identity]:
    rng = np.random.default_rng(seed)
    return [sample_identity(rng) for _ in range(count)]


def test_au_intensities_names_every_au_and_validates():
    au = geometry.au_intensities(_aus(AU12=0.5, AU45=1.0))
    assert list(au) == list(action_units.AU_NAMES)
    assert au["AU12"] == 0.5 and au["AU45"] == 1.0 and au["AU01"] == 0.0
    with pytest.raises(ValueError, match=r"shape \[17\]"):
        geometry.au_intensities(np.zeros(16))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        geometry.au_intensities(np.full(17, -0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        geometry.au_intensities(np.full(17, np.nan))


def test_hair_shapes_strands_and_translucent_buzz_cut():
    for style, name in enumerate(HAIR_STYLES):
        hair = geometry.hair_shapes(Identity(hair_style=style))
        assert hair["front"].ndim == 2 and hair["front"].shape[1] == 2
        assert hair["highlight"].shape == (8, 2)
        assert (len(hair["strands"]) == 0) == (name == "buzz"), name
        assert hair["alpha"] == (0.6 if name == "buzz" else 1.0), name
        assert (hair["back"] is not None) == (name in ("long", "bangs", "bob")), name


def test_placement_maps_face_units_to_pixels():
    place = geometry.Placement(Identity(center_x=0.5, center_y=0.25, scale=0.25, tilt=90.0), 100)
    np.testing.assert_allclose(place([0.0, 0.0]), [50.0, 25.0])
    # Tilted 90 degrees clockwise (y down): one unit to the right lands 25 px below the centre.
    np.testing.assert_allclose(place([1.0, 0.0]), [50.0, 50.0], atol=1e-9)
    assert place.unit == pytest.approx(25.0)


def test_mouth_corners_rise_with_au12_by_the_documented_amount():
    # Default identity: no tilt, scale 0.33, so AU12=1 lifts each corner 0.24 face units = 0.24 * 0.33 * size.
    identity = Identity()
    heights = []
    for intensity in np.linspace(0.0, 1.0, 5):
        points = geometry.face_geometry(identity, _aus(AU12=intensity), 100)
        heights.append((points["mouth_left"][1] + points["mouth_right"][1]) / 2)
    assert np.all(np.diff(heights) < 0)  # y points down: the corners rise
    assert heights[0] - heights[-1] == pytest.approx(0.24 * 0.33 * 100)  # 7.92 px
    # A smile moves the corners several pixels at 64 px for every sampled face, tilted or not.
    for identity in _identities(8):
        neutral = geometry.face_geometry(identity, _aus(), 64)
        smile = geometry.face_geometry(identity, _aus(AU12=1.0), 64)
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
        value = geometry.face_geometry(identity, _aus(**{name: intensity}), 64)[key]
        values.append(float(value if value.ndim == 0 else value[1]))
    assert np.all(direction * np.diff(values) > 0), values


def test_mouth_corners_move_apart_with_au20_and_together_with_au23():
    identity = Identity()

    def mouth_width(**intensities):
        points = geometry.face_geometry(identity, _aus(**intensities), 64)
        return points["mouth_right"][0] - points["mouth_left"][0]

    assert mouth_width(AU20=1.0) == pytest.approx(mouth_width() + 2 * 0.17 * 0.33 * 64)  # + 7.2 px
    assert mouth_width(AU23=1.0) == pytest.approx(mouth_width() - 2 * 0.11 * 0.33 * 64)  # - 4.6 px


def test_blink_closes_the_eyes():
    points = geometry.face_geometry(Identity(), _aus(AU45=1.0), 64)
    assert float(points["eye_left_opening"]) == pytest.approx(0.0, abs=1e-9)
    assert float(geometry.face_geometry(Identity(), _aus(), 64)["eye_left_opening"]) > 2.5
