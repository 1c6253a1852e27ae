"""Tests for tf_ganimation/editing/face_tracks.py: joining detections, gaps, smoothing jitter, a real panned clip."""

import numpy as np
import pytest
from video_clips import panned

from tf_ganimation.editing import face_tracks
from tf_ganimation.faces import detection


def _face(x, y, size=40.0, confidence=0.99):
    keypoints = {"left_eye": (x + 0.3 * size, y + 0.4 * size), "right_eye": (x + 0.7 * size, y + 0.4 * size),
                 "nose": (x + 0.5 * size, y + 0.6 * size), "mouth_left": (x + 0.35 * size, y + 0.8 * size),
                 "mouth_right": (x + 0.65 * size, y + 0.8 * size)}
    return detection.Face(box=(x, y, size, size), keypoints=keypoints, confidence=confidence)


def test_points_round_trip():
    face = _face(10.0, 20.0)
    again = face_tracks.points_face(face_tracks.face_points(face), face.confidence)
    assert again.to_dict() == face.to_dict()


def test_two_faces_keep_their_tracks_and_order():
    tracker = face_tracks.FaceTracker(face_tracks.TrackerConfig(smoothing_frames=0))
    for frame in range(5):  # the small face is listed first in some frames
        faces = [_face(10 + frame, 10, 40), _face(100 - frame, 50, 60)]
        tracker.update(frame, faces if frame % 2 else faces[::-1])
    timeline = tracker.timeline(5)
    assert len(timeline.paths) == 2
    for frame in range(5):
        big, small = timeline.faces_at(frame)
        assert big.box == pytest.approx((100 - frame, 50, 60, 60))
        assert small.box == pytest.approx((10 + frame, 10, 40, 40))
    largest = tracker.timeline(5, faces="largest")
    assert [face.box[2] for face in largest.faces_at(2)] == [60]


def test_largest_is_chosen_in_every_frame():
    tracker = face_tracks.FaceTracker(face_tracks.TrackerConfig(min_detections=1, smoothing_frames=0))
    for frame in range(4):  # the large face leaves after frame 1; the small one stays
        tracker.update(frame, [_face(10, 10, 40)] + ([_face(100, 50, 60)] if frame < 2 else []))
    timeline = tracker.timeline(4, faces="largest")
    assert [[face.box[2] for face in timeline.faces_at(frame)] for frame in range(4)] == [[60], [60], [40], [40]]


def test_skipped_frames_are_interpolated():
    tracker = face_tracks.FaceTracker(face_tracks.TrackerConfig(detect_every=4, smoothing_frames=0))
    for frame in (0, 4, 8):
        tracker.update(frame, [_face(10.0 + 2 * frame, 20.0)])
    timeline = tracker.timeline(9)
    for frame in range(9):
        assert timeline.faces_at(frame)[0].box[0] == pytest.approx(10.0 + 2 * frame)
    assert timeline.frames_without_faces() == []


def test_frames_where_the_detector_found_nothing_have_no_face():
    tracker = face_tracks.FaceTracker(face_tracks.TrackerConfig(min_detections=1, smoothing_frames=0))
    for frame in range(12):
        tracker.update(frame, [_face(10.0, 10.0)] if frame in (2, 3, 4, 6, 9, 10) else [])
    timeline = tracker.timeline(12)
    assert len(timeline.paths) == 3
    assert timeline.frames_without_faces() == [0, 1, 5, 7, 8, 11]
    assert timeline.faces_at(5) == []


def test_max_missed_bridges_a_missed_detection():
    tracker = face_tracks.FaceTracker(face_tracks.TrackerConfig(max_missed=1, min_detections=1, smoothing_frames=0))
    for frame in range(8):
        tracker.update(frame, [] if frame in (3, 5, 6) else [_face(10.0 + frame, 10.0)])
    timeline = tracker.timeline(8)
    assert timeline.frames_without_faces() == [5, 6]  # one miss is bridged, two in a row end the track
    assert timeline.faces_at(3)[0].box[0] == pytest.approx(13.0)


def test_a_one_frame_false_detection_is_dropped():
    tracker = face_tracks.FaceTracker()
    for frame in range(6):
        tracker.update(frame, [_face(10.0, 10.0)] + ([_face(200.0, 200.0)] if frame == 3 else []))
    assert len(tracker.timeline(6).paths) == 1
    single = face_tracks.FaceTracker()
    single.update(0, [_face(10.0, 10.0)])  # a one-frame clip keeps its only detection
    assert len(single.timeline(1).paths) == 1


def test_smoothing_removes_detection_jitter():
    rng = np.random.default_rng(0)
    tracker = face_tracks.FaceTracker(face_tracks.TrackerConfig(smoothing_frames=2.0))
    truth = 50.0 + 1.5 * np.arange(40)  # a steady pan
    for frame, x in enumerate(truth):
        tracker.update(frame, [_face(x + rng.normal(0, 2.0), 30.0 + rng.normal(0, 2.0))])
    raw = np.array([face.box[0] for track in tracker.tracks for face in
                    [face_tracks.points_face(points, 1.0) for points in track.points]])
    smoothed = np.array([tracker.timeline(40).faces_at(frame)[0].box[0] for frame in range(40)])
    inner = slice(5, 35)
    assert np.abs(smoothed - truth)[inner].std() < 0.5 * np.abs(raw - truth)[inner].std()
    # frame-to-frame jitter: the steps of the smoothed track are close to the true 1.5 px step
    assert np.abs(np.diff(smoothed)[inner] - 1.5).mean() < 0.35 * np.abs(np.diff(raw)[inner] - 1.5).mean()


def test_frames_must_increase():
    tracker = face_tracks.FaceTracker()
    tracker.update(3, [])
    with pytest.raises(ValueError, match="frames must increase"):
        tracker.update(3, [])


@pytest.mark.parametrize("options, message", [
    ({"detect_every": 0}, "detect_every=0"),
    ({"min_iou": 0.0}, r"min_iou=0.0 .*\(0, 1\]"),
    ({"smoothing_frames": -1}, "smoothing_frames=-1"),
    ({"max_missed": -1}, "max_missed=-1"),
])
def test_bad_tracker_config(options, message):
    with pytest.raises(ValueError, match=message):
        face_tracks.TrackerConfig(**options)


def test_real_detections_on_a_panned_photo_are_steadier_after_smoothing(detector, astronaut):
    frames = panned(astronaut, 10, (224, 288), step=(3, 2))  # the photo moves 3 px left, 2 px up per frame
    tracker = face_tracks.FaceTracker(face_tracks.TrackerConfig(smoothing_frames=1.5))
    for index, frame in enumerate(frames):
        tracker.update(index, detector.detect(frame))
    timeline = tracker.timeline(len(frames))
    assert len(timeline.paths) == 1 and timeline.frames_without_faces() == []
    raw = np.stack([points.mean(axis=0) for points in tracker.tracks[0].points])
    smooth = np.stack([timeline.paths[0].points[index].mean(axis=0) for index in range(len(frames))])
    error_raw = np.abs(np.diff(raw, axis=0) + [3, 2]).mean()
    error_smooth = np.abs(np.diff(smooth, axis=0) + [3, 2]).mean()
    assert error_smooth < error_raw


def test_continuation_pairs_the_same_faces_and_refuses_a_change():
    tracker = face_tracks.FaceTracker(face_tracks.TrackerConfig(detect_every=5))
    first, second = _face(10, 10), _face(100, 10)
    tracker.update(0, [first, second])
    pairs = tracker.continuation([_face(104, 12), _face(12, 11)])  # both moved a little, listed the other way
    assert pairs is not None and len(pairs) == 2
    for before, after in pairs:
        assert np.abs(after - before).max() <= 4  # each paired with its own earlier position
    assert tracker.continuation([_face(12, 11)]) is None  # a face left
    assert tracker.continuation([_face(10, 10), _face(100, 10), _face(200, 10)]) is None  # a face came
    assert tracker.continuation([_face(10, 10), _face(160, 10)]) is None  # one jumped: no overlap
    tracker.update(5, [])
    assert tracker.continuation([]) == []
