"""Faces followed across the frames of a video, with their positions smoothed over time.

    tracker = FaceTracker(TrackerConfig(detect_every=3))
    for index, faces in detections:                  # the frames the detector ran on, in order
        tracker.update(index, faces)
    timeline = tracker.timeline(num_frames, faces="all")
    timeline.faces_at(index)                         # list[detection.Face], largest first

A face is 7 points (x, y): MTCNN's 5 keypoints and its box's two corners. Detections are joined into
tracks by box overlap (IoU), greedily, best pairs first. Between two detections of a track (frames the
detector skipped with detect_every > 1, or missed), the points are interpolated linearly; then every
track's points are smoothed over time (au_curves.smooth: a Gaussian-weighted local linear fit, sigma in
frames), which removes the detector's frame-to-frame jitter so the pasted face does not shake, and
follows a steady pan or zoom without lag. A track exists from its first detection to its
last; a frame outside every track has no face and passes through unchanged.

Notes: the smoothing is centred (it looks ahead as far as back), which needs every frame's detections
before the first edit; video_edit runs detection as a first pass over the clip for this reason.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_ganimation.editing import au_curves
from tf_ganimation.faces import detection

NUM_POINTS = len(detection.KEYPOINT_NAMES) + 2


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """How faces are detected and followed in a video.

    Attributes:
        detect_every: run the detector on every k-th frame (and the last); in between, positions are
            interpolated. 1 detects on every frame.
        min_iou: the least box overlap (intersection over union) that continues a track, in (0, 1].
        max_missed: detector runs in a row that may miss a face without ending its track (its position
            is interpolated over them). 0: a run that misses the face ends the track, so a frame where
            the detector ran and found nothing is never edited.
        min_detections: tracks seen fewer times are dropped as false detections (kept when the clip
            had fewer detector runs than this).
        smoothing_frames: sigma of the smoothing over time (au_curves.smooth), in frames (0: none).
        min_face_probability: with detect_every > 1, a skipped frame keeps its interpolated faces only
            when MTCNN's last network gives each of them at least this probability of a face, in [0, 1];
            otherwise the skipped frames are detected too (video_edit.locate_faces).
    """

    detect_every: int = 1
    min_iou: float = 0.3
    max_missed: int = 0
    min_detections: int = 2
    smoothing_frames: float = 2.0
    min_face_probability: float = 0.5

    def __post_init__(self):
        for name, least in (("detect_every", 1), ("max_missed", 0), ("min_detections", 1)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= least):
                raise ValueError(f"{name}={value!r} is invalid: expected an integer >= {least}")
        if not (isinstance(self.min_face_probability, (int, float)) and 0 <= self.min_face_probability <= 1):
            raise ValueError(f"min_face_probability={self.min_face_probability!r} is invalid: expected a number "
                             "in [0, 1]")
        if not (isinstance(self.min_iou, (int, float)) and 0 < self.min_iou <= 1):
            raise ValueError(f"min_iou={self.min_iou!r} is invalid: expected a number in (0, 1]")
        if not (isinstance(self.smoothing_frames, (int, float)) and 0 <= self.smoothing_frames <= 100):
            raise ValueError(f"smoothing_frames={self.smoothing_frames!r} is invalid: expected a number in [0, 100]")


def face_points(face: detection.Face) -> np.ndarray:
    """float64 [7, 2]: the keypoints (detection.KEYPOINT_NAMES order), then the box's top-left and bottom-right."""
    x, y, width, height = face.box
    points = [face.keypoints[name] for name in detection.KEYPOINT_NAMES] + [(x, y), (x + width, y + height)]
    return np.asarray(points, np.float64)


def points_face(points: np.ndarray, confidence: float) -> detection.Face:
    """The inverse of face_points."""
    (x0, y0), (x1, y1) = points[-2], points[-1]
    keypoints = {name: (float(points[index, 0]), float(points[index, 1]))
                 for index, name in enumerate(detection.KEYPOINT_NAMES)}
    return detection.Face(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)), keypoints=keypoints,
                          confidence=float(confidence))


def box_iou(first: np.ndarray, second: np.ndarray) -> float:
    """Intersection over union of two boxes given as face_points' corners, float [2, 2]."""
    width = min(first[1, 0], second[1, 0]) - max(first[0, 0], second[0, 0])
    height = min(first[1, 1], second[1, 1]) - max(first[0, 1], second[0, 1])
    intersection = max(width, 0.0) * max(height, 0.0)
    areas = [np.prod(np.maximum(box[1] - box[0], 0.0)) for box in (first, second)]
    union = areas[0] + areas[1] - intersection
    return float(intersection / union) if union > 0 else 0.0


@dataclasses.dataclass
class Track:
    """One face's detections: frames int [M] (increasing), points float64 [M, 7, 2], confidence [M]."""

    frames: list[int] = dataclasses.field(default_factory=list)
    points: list[np.ndarray] = dataclasses.field(default_factory=list)
    confidence: list[float] = dataclasses.field(default_factory=list)
    missed: int = 0

    def add(self, frame: int, points: np.ndarray, confidence: float) -> None:
        self.frames.append(frame)
        self.points.append(points)
        self.confidence.append(confidence)
        self.missed = 0


class FaceTracker:
    """Joins per-frame detections into tracks (see the module docstring). Feed frames in increasing order."""

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self.tracks: list[Track] = []
        self.detector_runs = 0
        self._last_frame = -1

    def update(self, frame: int, faces: list[detection.Face]) -> None:
        """Adds the faces the detector found in `frame` (an empty list counts: the detector ran)."""
        if frame <= self._last_frame:
            raise ValueError(f"frame {frame} after frame {self._last_frame}: frames must increase")
        self._last_frame = frame
        self.detector_runs += 1
        active = [track for track in self.tracks if track.missed <= self.config.max_missed]
        detections = [face_points(face) for face in faces]
        pairs = _pair(active, detections, self.config.min_iou)
        used_tracks, used_faces = {track for track, _ in pairs}, {face for _, face in pairs}
        for track_index, face_index in pairs:
            active[track_index].add(frame, detections[face_index], faces[face_index].confidence)
        for track_index, track in enumerate(active):
            if track_index not in used_tracks:
                track.missed += 1
        for face_index, face in enumerate(faces):
            if face_index not in used_faces:
                track = Track()
                track.add(frame, detections[face_index], face.confidence)
                self.tracks.append(track)

    def continuation(self, faces: list[detection.Face]) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """How `faces` (a new detection, not yet added) continue the faces of the last detector run.

        Returns:
            One (points at the last run, points in `faces`) pair of float64 [7, 2] per face when the two
            sets pair one to one by box overlap; None when a face appeared, left or moved too far.
        """
        seen = [track for track in self.tracks if track.frames and track.frames[-1] == self._last_frame]
        detections = [face_points(face) for face in faces]
        pairs = _pair(seen, detections, self.config.min_iou)
        if not (len(seen) == len(detections) == len(pairs)):
            return None
        return [(seen[track].points[-1], detections[face]) for track, face in pairs]

    def timeline(self, num_frames: int, faces: str = "all") -> FaceTimeline:
        """Every kept track interpolated over its frames and smoothed; `faces`: "all" or the "largest" track."""
        if faces not in detection.FACE_CHOICES:
            raise ValueError(f"faces={faces!r} is invalid: expected one of {detection.FACE_CHOICES}")
        least = min(self.config.min_detections, max(self.detector_runs, 1))
        kept = [track for track in self.tracks if len(track.frames) >= least and track.frames[0] < num_frames]
        paths = [_dense_path(track, num_frames, self.config.smoothing_frames) for track in kept]
        paths.sort(key=lambda path: -path.mean_area)
        return FaceTimeline(paths, num_frames, largest_only=faces == "largest")


def _pair(tracks: list[Track], detections: list[np.ndarray], min_iou: float) -> list[tuple[int, int]]:
    """(track index, detection index) pairs by box overlap >= min_iou, greedily, best first, each used once."""
    ranked = sorted(((box_iou(track.points[-1][-2:], points[-2:]), track_index, face_index)
                     for track_index, track in enumerate(tracks) for face_index, points in enumerate(detections)),
                    reverse=True)
    pairs, used_tracks, used_faces = [], set(), set()
    for iou, track_index, face_index in ranked:
        if iou < min_iou or track_index in used_tracks or face_index in used_faces:
            continue
        used_tracks.add(track_index)
        used_faces.add(face_index)
        pairs.append((track_index, face_index))
    return pairs


@dataclasses.dataclass(frozen=True)
class FacePath:
    """A track at every frame from its first to its last: points float64 [T, 7, 2], confidence float [T]."""

    first_frame: int
    points: np.ndarray
    confidence: np.ndarray

    @property
    def last_frame(self) -> int:
        return self.first_frame + len(self.points) - 1

    @property
    def mean_area(self) -> float:
        sides = np.maximum(self.points[:, -1] - self.points[:, -2], 0.0)
        return float((sides[:, 0] * sides[:, 1]).mean())


def _dense_path(track: Track, num_frames: int, sigma: float) -> FacePath:
    frames = np.asarray(track.frames)
    frames = frames[frames < num_frames]
    points = np.stack(track.points)[: frames.size].reshape(frames.size, -1)
    every = np.arange(frames[0], frames[-1] + 1)
    dense = np.stack([np.interp(every, frames, column) for column in points.T], axis=1)
    confidence = np.interp(every, frames, np.asarray(track.confidence)[: frames.size])
    if sigma > 0:
        dense = au_curves.smooth(every, dense, sigma).astype(np.float64)
    return FacePath(int(frames[0]), dense.reshape(every.size, NUM_POINTS, 2), confidence)


class FaceTimeline:
    """The faces to edit in each frame of a clip (FaceTracker.timeline).

    Args:
        paths: the tracks, largest (mean box area) first.
        num_frames: the clip's length.
        largest_only: each frame has at most one face, the largest box among the tracks in it.
    """

    def __init__(self, paths: list[FacePath], num_frames: int, largest_only: bool = False):
        self.paths, self.num_frames, self.largest_only = paths, num_frames, largest_only

    def faces_at(self, frame: int) -> list[detection.Face]:
        """The faces in `frame`, largest track first (or only the largest face); [] when none."""
        faces = [points_face(path.points[frame - path.first_frame], path.confidence[frame - path.first_frame])
                 for path in self.paths if path.first_frame <= frame <= path.last_frame]
        if self.largest_only and faces:
            return [max(faces, key=lambda face: face.area)]
        return faces

    def frames_without_faces(self) -> list[int]:
        covered = np.zeros(self.num_frames, bool)
        for path in self.paths:
            covered[path.first_frame: path.last_frame + 1] = True
        return np.flatnonzero(~covered).tolist()
