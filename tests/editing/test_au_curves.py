"""Tests for tf_ganimation/editing/au_curves.py: keyframes, sequences, CSV tracks (OpenFace's columns), smoothing."""

import numpy as np
import pytest

from tf_ganimation.core import action_units
from tf_ganimation.editing import au_curves

HAPPY, SURPRISE = action_units.preset("happy"), action_units.preset("surprise")
AU12 = action_units.au_index("AU12")


def test_keyframes_pass_through_their_values_and_ease_between():
    curve = au_curves.parse_keyframes("0s:neutral,1.5s:happy,3s:surprise")
    np.testing.assert_allclose(curve.times, [0.0, 1.5, 3.0])
    aus = curve.at([0.0, 0.75, 1.5, 3.0, 10.0, -1.0])
    np.testing.assert_allclose(aus[0], 0.0)
    np.testing.assert_allclose(aus[1], 0.5 * HAPPY, atol=1e-6)  # smoothstep(0.5) = 0.5
    np.testing.assert_allclose(aus[2], HAPPY)
    np.testing.assert_allclose(aus[3], SURPRISE)
    np.testing.assert_allclose(aus[4], SURPRISE)  # held after the last keyframe
    np.testing.assert_allclose(aus[5], 0.0)  # and before the first
    # Eased: a quarter of the way in, smoothstep(0.25) = 0.15625, not 0.25; the ends have zero slope.
    assert curve.at([0.375])[0, AU12] == pytest.approx(0.15625, abs=1e-6)
    early = curve.at([0.0, 0.01, 0.02])[:, AU12]
    assert early[1] - early[0] < 0.01 * (0.01 / 1.5) * 10


def test_linear_interpolation():
    curve = au_curves.AUCurve([0.0, 2.0], np.stack([np.zeros(17), HAPPY]), "linear")
    np.testing.assert_allclose(curve.at([0.5])[0], 0.25 * HAPPY, atol=1e-6)


def test_keyframes_with_au_lists_and_units():
    curve = au_curves.parse_keyframes("0:neutral;500ms:AU12=1,AU06=0.8;2s:happy:0.5+surprise:0.5")
    np.testing.assert_allclose(curve.times, [0.0, 0.5, 2.0])
    np.testing.assert_allclose(curve.aus[1], action_units.parse_aus("AU12=1,AU06=0.8"))
    np.testing.assert_allclose(curve.aus[2], np.clip(0.5 * HAPPY + 0.5 * SURPRISE, 0, 1))


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("0s:neutral,1s", r"keyframe '1s'.*<time>:<expression>"),
    ("0s:neutral,soon:happy", "time 'soon' is invalid"),
    ("1s:neutral,1s:happy", "must increase"),
    ("0s:neutral,1s:ecstatic", "unknown expression 'ecstatic'"),
    ("0s:AU12=2", r"\[0, 1\]"),
])
def test_bad_keyframes(text, message):
    with pytest.raises(ValueError, match=message):
        au_curves.parse_keyframes(text)


def test_spread_and_constant():
    curve = au_curves.spread(np.stack([np.zeros(17), HAPPY, SURPRISE]), duration_s=4.0)
    np.testing.assert_allclose(curve.times, [0.0, 2.0, 4.0])
    np.testing.assert_allclose(au_curves.constant(HAPPY).at([0.0, 99.0]), [HAPPY, HAPPY])
    np.testing.assert_allclose(au_curves.spread(HAPPY[None], 0.0).at([5.0])[0], HAPPY)


def test_csv_round_trip_on_openface_scale(tmp_path):
    times = np.array([0.0, 0.04, 0.08, 0.12])
    aus = np.random.default_rng(0).uniform(0, 1, [4, 17]).astype(np.float32)
    au_curves.write_csv(tmp_path / "track.csv", times, aus, success=[True, True, False, True])
    header = (tmp_path / "track.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["frame", "timestamp", "success"] and header[3:] == list(au_curves.AU_COLUMNS)
    assert header[3] == "AU01_r" and header[-1] == "AU45_r"
    curve = au_curves.read_csv(tmp_path / "track.csv")
    np.testing.assert_allclose(curve.times, [0.0, 0.04, 0.12])  # the frame without a face is skipped
    np.testing.assert_allclose(curve.aus, aus[[0, 1, 3]], atol=1e-3)
    assert curve.interpolation == "linear"


def test_reads_openface_feature_extraction_output(tmp_path):
    # OpenFace's header has spaces after the commas, and many more columns.
    columns = ["frame", " face_id", " timestamp", " confidence", " success", " gaze_0_x"]
    columns += [f" {name}" for name in au_curves.AU_COLUMNS] + [" AU01_c"]
    rows = [", ".join(columns)]
    for frame, (time, success, au12) in enumerate([(0.0, 1, 0.0), (0.033, 0, 4.0), (0.067, 1, 5.0)], start=1):
        values = [0.0] * 17
        values[AU12] = au12
        cells = [str(frame), "0", str(time), "0.98", str(success), "0.1"] + [str(v) for v in values] + ["1"]
        rows.append(", ".join(cells))
    (tmp_path / "openface.csv").write_text("\n".join(rows) + "\n")
    curve = au_curves.read_csv(tmp_path / "openface.csv")
    np.testing.assert_allclose(curve.times, [0.0, 0.067])
    np.testing.assert_allclose(curve.aus[:, AU12], [0.0, 1.0])  # 5 on OpenFace's scale is 1


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("timestamp,AU01_r\n0,1\n", r"lacks the columns AU02_r, AU04_r"),
    ("frame,AU01_r\n", r"timestamp \(or time\)"),
    ("time," + ",".join(au_curves.AU_COLUMNS) + "\n0," + ",".join(["x"] * 17) + "\n", "line 2"),
    ("time," + ",".join(au_curves.AU_COLUMNS) + "\n", "no row with a face"),
    ("time," + ",".join(au_curves.AU_COLUMNS) + "\n1," + ",".join(["0"] * 17) + "\n0," + ",".join(["0"] * 17) + "\n",
     r"line 3"),
])
def test_bad_track_files(tmp_path, content, message):
    (tmp_path / "track.csv").write_text(content)
    with pytest.raises(ValueError, match=message):
        au_curves.read_csv(tmp_path / "track.csv")


def test_missing_track_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        au_curves.read_csv(tmp_path / "nope.csv")


def test_smoothing_removes_jitter_and_keeps_a_constant():
    rng = np.random.default_rng(1)
    times = np.arange(100) / 25.0
    truth = np.repeat(np.clip(0.5 + 0.3 * np.sin(times)[:, None], 0, 1), 17, axis=1).astype(np.float32)
    noisy = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1).astype(np.float32)
    smoothed = au_curves.smooth(times, noisy, sigma_s=0.08)
    assert np.abs(smoothed - truth).mean() < 0.5 * np.abs(noisy - truth).mean()
    np.testing.assert_allclose(au_curves.smooth(times, np.full([100, 17], 0.3), 0.1), 0.3, atol=1e-6)
    np.testing.assert_array_equal(au_curves.smooth(times, noisy, 0.0), noisy)


def test_smoothing_follows_a_steady_ramp_to_the_ends():
    times = np.array([0.0, 0.1, 0.2, 0.35, 0.4, 0.5])  # uneven spacing
    ramp = np.stack([0.1 + times, 0.9 - times], axis=1)
    np.testing.assert_allclose(au_curves.smooth(times, ramp, sigma_s=0.2), ramp, atol=1e-5)
