"""Tests for tf_ganimation/editing/video_edit.py: the detection pass and the batched edit pass on tiny clips."""

import dataclasses

import numpy as np
import pytest
from video_clips import audio_of, face_clip, write_clip

from tf_ganimation.core import action_units
from tf_ganimation.editing import au_curves, face_tracks, video_edit, video_io, video_writer
from tf_ganimation.editing.editor import Editor
from tf_ganimation.export import backends
from tf_ganimation.faces import blending

HAPPY = action_units.preset("happy")


@pytest.fixture(scope="module")
def model(tiny_run_dir):
    return backends.load_edit_model(tiny_run_dir)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, astronaut):
    frames = face_clip(astronaut, 7, blank_at=(3,))
    path = write_clip(tmp_path_factory.mktemp("clip") / "in.mp4", frames, fps=10, audio_s=0.7)
    return path, frames


@pytest.fixture(scope="module")
def edited(clip, model, detector, tmp_path_factory):
    """The clip edited towards happy, losslessly encoded; (located, output path, summary, timer)."""
    config = video_edit.VideoEditConfig(batch_size=3, encoder=video_writer.EncoderConfig(crf=0))
    timer = video_edit.StageTimer()
    located = video_edit.locate_faces(clip[0], detector, config, timer)
    out = tmp_path_factory.mktemp("out") / "out.mp4"
    summary = video_edit.edit_video(clip[0], out, located, Editor(model), au_curves.constant(HAPPY).at, config, timer)
    return located, out, summary, timer


def test_detection_pass_tracks_the_face_and_skips_the_blank_frame(edited):
    located = edited[0]
    assert located.num_frames == 7 and located.detector_runs == 7 and not located.variable_rate
    assert located.timeline.frames_without_faces() == [3]
    np.testing.assert_allclose(located.times, np.arange(7) / 10, atol=1e-6)


def test_output_keeps_frames_rate_and_audio(clip, edited):
    _, out, summary, _ = edited
    assert summary == {"frames": 7, "frames_with_faces": 6}
    info = video_io.probe(out)
    assert info.num_frames == 7 and info.frame_rate == 10 and info.has_audio
    assert audio_of(out) == audio_of(clip[0])


def test_pixels_outside_the_faces_and_the_faceless_frame_are_kept(clip, edited, model, tmp_path):
    located, out, _, _ = edited
    # The clip through the same lossless encoder without edits: what the output must equal outside the faces.
    info = video_io.probe(clip[0])
    with video_writer.VideoWriter(tmp_path / "same.mp4", info, encoder=video_writer.EncoderConfig(crf=0)) as writer:
        for frame in video_io.read_frames(clip[0]):
            writer.write(frame.image, frame.pts)
    source = [frame.image for frame in video_io.read_frames(clip[0])]
    baseline = [frame.image for frame in video_io.read_frames(tmp_path / "same.mp4")]
    result = [frame.image for frame in video_io.read_frames(out)]
    for index, (before, expected, after) in enumerate(zip(source, baseline, result)):
        faces = located.timeline.faces_at(index)
        if not faces:
            np.testing.assert_array_equal(after, expected)
            continue
        crop = video_edit.frame_crops(before, faces, model.image_size, 0.1)[0]
        region = blending.face_region(crop.transform, *before.shape[:2])
        grown = region.copy()  # 4:2:0 chroma is shared by 2x2 pixels: an edit reaches a pixel or two further
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                grown |= np.roll(region, (dy, dx), axis=(0, 1))
        np.testing.assert_array_equal(after[~grown], expected[~grown])
        assert np.abs(after[region].astype(int) - expected[region]).mean() > 2.0, index  # the face was edited


def test_edit_batch_is_exact_outside_faces_and_returns_faceless_frames(clip, edited, model):
    located = edited[0]
    originals = clip[1][2:5]
    frames = [frame.copy() for frame in originals]  # decoded frames: edit_batch pastes into them
    crops = [video_edit.frame_crops(frame, located.timeline.faces_at(index), model.image_size, 0.1)
             for index, frame in enumerate(frames, start=2)]
    assert [len(item) for item in crops] == [1, 0, 1]
    out = video_edit.edit_batch(Editor(model), frames, crops, np.stack([HAPPY] * 3), video_edit.StageTimer(),
                                in_place=True)
    assert out[0] is frames[0] and out[1] is frames[1]
    region = blending.face_region(crops[0][0].transform, *frames[0].shape[:2])
    np.testing.assert_array_equal(out[0][~region], originals[0][~region])
    assert (out[0][region] != originals[0][region]).any()


def test_edit_batch_of_one_photo_repeated_edits_each_copy_on_its_own(clip, edited, model):
    photo = clip[1][2].copy()
    crops = video_edit.frame_crops(photo, edited[0].timeline.faces_at(2), model.image_size, 0.1)
    targets = np.stack([HAPPY, np.zeros_like(HAPPY), HAPPY])
    out = video_edit.edit_batch(Editor(model), [photo] * 3, [crops] * 3, targets, video_edit.StageTimer())
    np.testing.assert_array_equal(photo, clip[1][2])  # the shared photo is not pasted into
    np.testing.assert_array_equal(out[0], out[2])  # the same target gives the same frame, not an edit of an edit
    assert (out[0] != out[1]).any()


def test_stage_timer_counts_every_stage(edited):
    seconds = edited[3].seconds
    assert set(seconds) == set(video_edit.STAGES) and all(value > 0 for value in seconds.values())


def test_detect_every_k_runs_the_detector_less_and_still_covers_the_frames(tmp_path, astronaut, detector):
    frames = face_clip(astronaut, 7, blank_at=())
    path = write_clip(tmp_path / "clip.mp4", frames, fps=10)
    config = video_edit.VideoEditConfig(tracker=face_tracks.TrackerConfig(detect_every=3))
    located = video_edit.locate_faces(path, detector, config)
    assert located.detector_runs == 3  # frames 0, 3 and 6 (the last)
    assert located.timeline.frames_without_faces() == []


def test_a_face_lost_between_detections_is_found_at_its_frame(tmp_path, astronaut, detector):
    every_fifth = video_edit.VideoEditConfig(tracker=face_tracks.TrackerConfig(detect_every=5))
    steady = video_edit.locate_faces(write_clip(tmp_path / "steady.mp4", face_clip(astronaut, 9, blank_at=()),
                                                fps=10), detector, every_fifth)
    assert steady.detector_runs == 3 and steady.timeline.frames_without_faces() == []  # frames 0, 5, 8: checks pass
    gap = video_edit.locate_faces(write_clip(tmp_path / "gap.mp4", face_clip(astronaut, 9, blank_at=(2,)), fps=10),
                                  detector, every_fifth)
    assert gap.detector_runs == 7  # the check failed at frame 2: frames 1 to 4 were detected as well
    assert gap.timeline.frames_without_faces() == [2]
    unchecked = dataclasses.replace(every_fifth, tracker=face_tracks.TrackerConfig(detect_every=5,
                                                                                   min_face_probability=0.0))
    blind = video_edit.locate_faces(tmp_path / "gap.mp4", detector, unchecked)
    assert blind.detector_runs == 3 and blind.timeline.frames_without_faces() == []  # what the check catches


def test_scale_face_maps_a_small_copy_back():
    from tf_ganimation.faces import detection

    face = detection.Face(box=(10, 20, 30, 40), keypoints={name: (1.0, 2.0) for name in detection.KEYPOINT_NAMES},
                          confidence=0.9)
    scaled = video_edit.scale_face(face, 2.0, 3.0)
    assert scaled.box == (20, 60, 60, 120) and scaled.keypoints["nose"] == (2.0, 6.0)


@pytest.mark.parametrize("options, message", [
    ({"faces": "some"}, "faces='some'"), ({"batch_size": 0}, "batch_size=0"),
    ({"detection_side": 10}, "detection_side=10"),
])
def test_bad_config(options, message):
    with pytest.raises(ValueError, match=message):
        video_edit.VideoEditConfig(**options)
