"""Tests for tf_ganimation/action_units.py: names, parsing, presets, mixes, sequences and paths."""

import numpy as np
import pytest

from tf_ganimation.core import action_units

AU = {name: index for index, name in enumerate(action_units.AU_NAMES)}


def vector(**intensities) -> np.ndarray:
    """float32 [17] with the named AUs set, e.g. vector(AU12=1.0)."""
    result = np.zeros([17], np.float32)
    for name, value in intensities.items():
        result[AU[name]] = value
    return result


def active(aus: np.ndarray) -> set:
    return {action_units.AU_NAMES[index] for index in np.flatnonzero(aus)}


# === Names ===


def test_au_names_are_openface_order():
    assert action_units.NUM_AUS == 17
    assert action_units.AU_NAMES == ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
                                     "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45")
    assert action_units.AU_DESCRIPTIONS["AU12"] == "lip corner puller"


@pytest.mark.parametrize("name", ["AU12", "au12", "AU012", " AU12 ", "AU12_r"])
def test_au_index_spellings(name):
    assert action_units.au_index(name) == 8


def test_au_index_single_digit_and_unknown():
    assert action_units.au_index("AU6") == action_units.au_index("AU06") == 4
    with pytest.raises(ValueError, match="unknown action unit 'AU03'.*AU01, AU02"):
        action_units.au_index("AU03")


def test_normalize_intensities_divides_by_five_and_clips():
    raw = np.array([0.0, 2.5, 5.0, 6.0, -1.0] + [1.0] * 12)
    np.testing.assert_allclose(action_units.normalize_intensities(raw)[:5], [0.0, 0.5, 1.0, 1.0, 0.0])
    assert action_units.normalize_intensities(raw).dtype == np.float32


# === parse_aus ===


def test_parse_aus_golden():
    parsed = action_units.parse_aus("AU12=0.8,AU06=0.5")
    np.testing.assert_array_equal(parsed, vector(AU12=0.8, AU06=0.5))
    assert parsed.dtype == np.float32 and parsed.shape == (17,)
    np.testing.assert_array_equal(action_units.parse_aus(" au1 = 1 , AU45=0.25, "), vector(AU01=1.0, AU45=0.25))
    np.testing.assert_array_equal(action_units.parse_aus(""), np.zeros(17))


@pytest.mark.parametrize("text, message", [
    ("AU03=1", "unknown action unit 'AU03'"),
    ("AU12=high", "cannot parse|not a number"),
    ("AU12=1.5", "intensity of AU12 must be a number in \\[0, 1\\], got 1.5"),
    ("AU12=-0.1", "must be a number in \\[0, 1\\]"),
    ("AU12=nan", "must be a number in \\[0, 1\\]"),
    ("smile", "cannot parse 'smile'.*expected AU<number>=<intensity>"),
])
def test_parse_aus_errors(text, message):
    with pytest.raises(ValueError, match=message):
        action_units.parse_aus(text)


# === Presets ===


@pytest.mark.parametrize("name, aus", [
    ("happy", {"AU06", "AU12"}),
    ("sad", {"AU01", "AU04", "AU15"}),
    ("surprise", {"AU01", "AU02", "AU05", "AU26"}),
    ("fear", {"AU01", "AU02", "AU04", "AU05", "AU07", "AU20", "AU26"}),
    ("anger", {"AU04", "AU05", "AU07", "AU23"}),
    ("disgust", {"AU09", "AU10", "AU15", "AU17"}),
    ("contempt", {"AU12", "AU14"}),
    ("neutral", set()),
])
def test_presets_are_the_emfacs_combinations(name, aus):
    preset = action_units.preset(name)
    assert active(preset) == aus
    assert preset.dtype == np.float32 and preset.shape == (17,)
    assert preset.min() >= 0.0 and preset.max() <= 1.0


def test_contempt_is_low_intensity_and_happy_pulls_lip_corners_fully():
    assert action_units.preset("contempt").max() <= 0.5
    assert action_units.preset("happy")[AU["AU12"]] == 1.0
    np.testing.assert_array_equal(action_units.preset(" Happy "), action_units.preset("happy"))


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown expression 'joy'; known: neutral, happy, sad"):
        action_units.preset("joy")


# === parse_expression: presets, mixes, AUs ===


def test_mix_weights_each_preset():
    mixed = action_units.parse_expression("happy:0.5+surprise:0.5")
    # happy and surprise share no AU, so each keeps half its intensity.
    np.testing.assert_allclose(mixed, vector(AU06=0.4, AU12=0.5, AU01=0.4, AU02=0.4, AU05=0.4, AU26=0.4))
    np.testing.assert_array_equal(action_units.parse_expression("happy"), action_units.preset("happy"))


def test_mix_sums_shared_aus_and_clips_to_one():
    # sad (AU01 0.8, AU04 0.6, AU15 0.8) + surprise (AU01 0.8, ...): AU01 = 1.6 -> 1.
    mixed = action_units.parse_expression("sad+surprise")
    assert mixed[AU["AU01"]] == 1.0 and mixed[AU["AU04"]] == pytest.approx(0.6)
    np.testing.assert_allclose(action_units.parse_expression("happy:2"), vector(AU06=1.0, AU12=1.0))
    np.testing.assert_array_equal(action_units.parse_expression("happy:0"), np.zeros(17))


def test_parse_expression_with_aus():
    np.testing.assert_array_equal(action_units.parse_expression("AU12=1,AU06=0.8"), vector(AU12=1.0, AU06=0.8))


@pytest.mark.parametrize("text, message", [
    ("happy:much", "weight 'much' of 'happy'"),
    ("happy:-1", "non-negative"),
    ("joy:0.5", "unknown expression 'joy'"),
])
def test_parse_expression_errors(text, message):
    with pytest.raises(ValueError, match=message):
        action_units.parse_expression(text)


# === Sequences ===


def test_expression_sequences():
    sequence = action_units.parse_expression_sequence("neutral,happy,surprise")
    assert sequence.shape == (3, 17) and sequence.dtype == np.float32
    np.testing.assert_array_equal(sequence[0], np.zeros(17))
    np.testing.assert_array_equal(sequence[2], action_units.preset("surprise"))
    # With AUs, commas separate AU pairs: one expression.
    np.testing.assert_array_equal(action_units.parse_expression_sequence("AU12=1,AU06=0.8"),
                                  vector(AU12=1.0, AU06=0.8)[None])
    mixed = action_units.parse_expression_sequence("happy:0.5+surprise:0.5; AU01=1,AU02=1")
    assert mixed.shape == (2, 17) and active(mixed[1]) == {"AU01", "AU02"}
    assert action_units.parse_expression_sequence("sad").shape == (1, 17)


@pytest.mark.parametrize("text, message", [("", "is empty"), (" , ", "is empty"), ("happy,,sad", "empty part")])
def test_expression_sequence_errors(text, message):
    with pytest.raises(ValueError, match=message):
        action_units.parse_expression_sequence(text)


# === Paths ===


def test_interpolate_golden():
    path = action_units.interpolate(np.zeros(17), np.ones(17), 3)
    np.testing.assert_allclose(path[:, 0], [0.0, 0.5, 1.0])
    assert path.shape == (3, 17) and path.dtype == np.float32
    np.testing.assert_array_equal(action_units.interpolate(np.zeros(17), np.ones(17), 1), np.ones([1, 17]))
    with pytest.raises(ValueError, match="num_frames must be >= 1, got 0"):
        action_units.interpolate(np.zeros(17), np.ones(17), 0)


def test_interpolate_keyframes_golden():
    keyframes = np.stack([np.zeros(17), np.ones(17), np.zeros(17)]).astype(np.float32)
    path = action_units.interpolate_keyframes(keyframes, 5)
    np.testing.assert_allclose(path[:, 3], [0.0, 0.5, 1.0, 0.5, 0.0])
    assert path.shape == (5, 17) and path.dtype == np.float32
    # Two keyframes: the same path as interpolate.
    start, end = action_units.preset("sad"), action_units.preset("happy")
    np.testing.assert_allclose(action_units.interpolate_keyframes(np.stack([start, end]), 7),
                               action_units.interpolate(start, end, 7), atol=1e-7)
    np.testing.assert_array_equal(action_units.interpolate_keyframes(keyframes, 1), np.zeros([1, 17]))
    np.testing.assert_array_equal(action_units.interpolate_keyframes(keyframes[1:2], 3), np.ones([3, 17]))


def test_interpolate_keyframes_errors():
    with pytest.raises(ValueError, match="num_frames must be an integer >= 1"):
        action_units.interpolate_keyframes(np.zeros([2, 17]), 0)
    with pytest.raises(ValueError, match=r"keyframes of shape \[17\]"):
        action_units.interpolate_keyframes(np.zeros(17), 4)


def test_describe_vocabulary_lists_every_au_and_preset():
    text = action_units.describe_vocabulary()
    for name in action_units.AU_NAMES:
        assert f"{name}  {action_units.AU_DESCRIPTIONS[name]}" in text
    for preset in action_units.PRESETS:
        assert f"\n  {preset}" in text
    assert "happy     AU06 0.8 + AU12 1" in text
