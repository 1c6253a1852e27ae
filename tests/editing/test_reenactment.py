"""Tests for tf_ganimation/editing/reenactment.py: the driving AU track, missing faces, a still photo driven."""

import numpy as np
import pytest
from video_clips import audio_of, face_clip, write_clip

from tf_ganimation.core import image_files
from tf_ganimation.editing import reenactment, video_edit, video_io
from tf_ganimation.editing.editor import Editor
from tf_ganimation.export import backends, saved_model
from tf_ganimation.faces import blending

from conftest import PHOTOS_DIR


@pytest.fixture(scope="module")
def model(tiny_run_dir):
    return backends.load_edit_model(tiny_run_dir)


@pytest.fixture(scope="module")
def driving(tmp_path_factory, astronaut):
    return write_clip(tmp_path_factory.mktemp("drive") / "drive.mp4", face_clip(astronaut, 6, blank_at=(2,)),
                      fps=12, audio_s=0.5)


@pytest.fixture(scope="module")
def track(driving, model, detector):
    return reenactment.estimate_track(driving, Editor(model, detector=detector), video_edit.VideoEditConfig())


def test_track_has_the_critics_estimates_where_a_face_is(track, model, driving, detector):
    assert track.missing_frames() == [2]
    assert track.seen.tolist() == [True, True, False, True, True, True]
    np.testing.assert_allclose(track.times, np.arange(6) / 12, atol=1e-3)  # pts in ms
    assert np.all(track.aus[2] == 0) and track.aus.dtype == np.float32
    # The estimate of frame 0 is the critic's on that frame's aligned crop of the tracked face.
    frame = next(video_io.read_frames(driving)).image
    faces = video_edit.locate_faces(driving, detector, video_edit.VideoEditConfig()).timeline.faces_at(0)
    crop = video_edit.frame_crops(frame, faces[:1], model.image_size, 0.0)[0].crop
    np.testing.assert_allclose(track.aus[0], model.estimate_aus(crop[None] / np.float32(255))[0], atol=1e-6)


def test_curve_reads_across_the_missing_frame_and_is_smoothed(track):
    curve = track.curve(sigma_s=0.0)
    np.testing.assert_allclose(curve.at([2 / 12])[0], (track.aus[1] + track.aus[3]) / 2, atol=1e-5)
    smoothed = track.curve(sigma_s=0.2)
    assert smoothed.aus.min() >= 0 and smoothed.aus.max() <= 1
    seen = track.aus[track.seen]
    assert np.abs(np.diff(smoothed.aus, axis=0)).sum() <= np.abs(np.diff(seen, axis=0)).sum() + 1e-6


def test_a_driving_video_without_any_face(tmp_path, model, detector):
    path = write_clip(tmp_path / "empty.mp4", [np.full([64, 96, 3], 90, np.uint8)] * 3)
    with pytest.raises(reenactment.NoDrivingFaceError, match=r"no face in any of the 3 frames.*empty\.mp4"):
        reenactment.estimate_track(path, Editor(model, detector=detector), video_edit.VideoEditConfig())


def test_a_model_without_critic_cannot_drive(tiny_run_dir, driving, detector, tmp_path):
    without_critic = [backends.load_edit_model(tiny_run_dir, with_critic=False),
                      backends.load_edit_model(saved_model.export_from_workdir(tiny_run_dir, tmp_path,
                                                                               with_critic=False))]
    for model in without_critic:
        # The message names the two models that work and the AU track alternative.
        with pytest.raises(ValueError, match=r"cannot estimate AUs: .*training run folder.*SavedModel has when "
                                             r"exported with the critic.*--curve=track\.csv"):
            reenactment.estimate_track(driving, Editor(model, detector=detector), video_edit.VideoEditConfig())


def test_a_saved_model_exported_with_the_critic_gives_the_run_folders_track(expressive_run_dir, driving, detector,
                                                                             tmp_path):
    tracks = [reenactment.estimate_track(driving, Editor(backends.load_edit_model(path), detector=detector),
                                         video_edit.VideoEditConfig(batch_size=4))
              for path in (expressive_run_dir, saved_model.export_from_workdir(expressive_run_dir, tmp_path))]
    assert tracks[1].seen.tolist() == tracks[0].seen.tolist() == [True, True, False, True, True, True]
    assert ((tracks[1].aus > 0.05) & (tracks[1].aus < 0.95)).any()  # estimates, not only clipped zeros
    np.testing.assert_allclose(tracks[1].aus, tracks[0].aus, atol=1e-5)


def test_describe_frames():
    assert reenactment.describe_frames([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert reenactment.describe_frames(list(range(0, 40, 2)), limit=3) == "0, 2, 4 and 17 more ranges"


def test_animate_photo_writes_one_frame_per_driving_frame_with_its_audio(tmp_path, track, model, detector, driving):
    photo = image_files.read_photo(PHOTOS_DIR / "astronaut.png")
    editor = Editor(model, detector=detector)
    crops = editor.find_faces(photo, "astronaut.png")
    curve = track.curve(0.05)
    summary = reenactment.animate_photo(photo, crops, editor, track.times, track.pts, curve.at, track.info,
                                        tmp_path / "out.mp4", video_edit.VideoEditConfig(batch_size=4),
                                        audio_from=driving)
    assert summary == {"frames": 6}
    info = video_io.probe(tmp_path / "out.mp4")
    assert (info.width, info.height, info.num_frames) == (512, 512, 6)
    assert float(info.frame_rate) == pytest.approx(12, abs=0.05)
    assert audio_of(tmp_path / "out.mp4") == audio_of(driving)
    frames = [frame.image for frame in video_io.read_frames(tmp_path / "out.mp4")]
    region = blending.face_region(crops[0].transform, 512, 512)
    difference = np.abs(frames[0].astype(int) - photo).mean(axis=-1)
    assert difference[~region].mean() < 5 < difference[region].mean()  # the photo (H.264 at crf 18), face edited
