"""Editing the faces of a video, streamed: a first pass finds and tracks them, a second edits every frame.

    timer = StageTimer()
    located = locate_faces("in.mp4", detector, VideoEditConfig(), timer)        # pass 1: detection
    edit_video("in.mp4", "out.mp4", located, editor, curve.at, config, timer)   # pass 2: edit, paste, encode

Pass 1 decodes every frame and runs the MTCNN detector on a small copy (FFmpeg scales it to
`detection_side`) of every k-th one, checking the faces interpolated into the frames between
(_detect_keyframe); the tracks (face_tracks) are interpolated and smoothed, which needs them all before
the first edit. Pass 2 decodes the clip again at full size, cuts every face of `batch_size`
frames out (alignment.crop_face, as for photos), runs the model once on all of them with each frame's
target AUs, pastes them back (Editor.paste: pixels outside the faces keep their exact values) and
encodes. A frame without a face is encoded as decoded. Decoding runs ahead and encoding behind on their
own threads (core.background), so FFmpeg, the model and the paste-back share the cores. Memory holds a
few batches of frames, whatever the clip's length.

Notes: the clip is decoded twice; decoding is a small part of the time (BENCHMARKS.md, "Video").
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

import numpy as np

from tf_ganimation.core import background, pixels, progress
from tf_ganimation.editing import face_tracks, video_io, video_writer
from tf_ganimation.editing.editor import Editor, FaceCrop
from tf_ganimation.faces import alignment, detection

STAGES = ("decode", "detection", "edit", "paste_back", "encode")


@dataclasses.dataclass(frozen=True)
class VideoEditConfig:
    """How a video's faces are found and edited.

    Attributes:
        tracker: detection cadence, tracking and smoothing (face_tracks.TrackerConfig).
        faces: edit "all" tracked faces or only the "largest" track.
        batch_size: frames per model call, >= 1.
        detection_side: the detector sees frames scaled so their longer side is at most this (>= 48).
        max_pixels: the largest frame accepted (video_io.probe).
        encoder: how the output is encoded.
    """

    tracker: face_tracks.TrackerConfig = face_tracks.TrackerConfig()
    faces: str = "all"
    batch_size: int = 8
    detection_side: int = 640
    max_pixels: int = video_io.MAX_PIXELS
    encoder: video_writer.EncoderConfig = video_writer.EncoderConfig()

    def __post_init__(self):
        if self.faces not in detection.FACE_CHOICES:
            raise ValueError(f"faces={self.faces!r} is invalid: expected one of {detection.FACE_CHOICES}")
        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 256):
            raise ValueError(f"batch_size={self.batch_size!r} is invalid: expected an integer in [1, 256]")
        if not (isinstance(self.detection_side, int) and self.detection_side >= 48):
            raise ValueError(f"detection_side={self.detection_side!r} is invalid: expected an integer >= 48")


class StageTimer:
    """Seconds spent in each stage (STAGES), added up over a run."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def stage(self, name: str):
        """Adds the block's wall time to `name` (thread-safe: stages on other threads add up too)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[name] += time.perf_counter() - started

    def timed(self, name: str, items: Iterator) -> Iterator:
        """`items`, with the time spent producing each one added to `name`."""
        iterator = iter(items)
        while True:
            with self.stage(name):
                item = next(iterator, None)
            if item is None:
                return
            yield item

    def to_dict(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in self.seconds.items()}


@dataclasses.dataclass(frozen=True)
class LocatedFaces:
    """Pass 1's result: the clip, its faces over time and its frame times.

    Attributes:
        info: the clip (video_io.probe).
        timeline: the faces of every frame (face_tracks.FaceTimeline), in full-size pixels.
        times: float64 [num_frames] seconds from the first frame.
        variable_rate: the frame times are uneven (they are kept as they are).
        detector_runs: frames the detector ran on.
    """

    info: video_io.VideoInfo
    timeline: face_tracks.FaceTimeline
    times: np.ndarray
    variable_rate: bool
    detector_runs: int

    @property
    def num_frames(self) -> int:
        return len(self.times)


def locate_faces(path: os.PathLike, detector: detection.FaceDetector, config: VideoEditConfig,
                 timer: StageTimer | None = None, stream: TextIO | None = None) -> LocatedFaces:
    """Pass 1: decodes every frame (on its own thread), detects on a small copy of every k-th (and the
    last) and tracks the faces.

    Raises:
        FileNotFoundError, video_io.VideoError: see video_io.probe and read_frames.
    """
    timer = timer or StageTimer()
    info = video_io.probe(path, config.max_pixels)
    every = config.tracker.detect_every
    tracker = face_tracks.FaceTracker(config.tracker)
    times = []
    bar = progress.Progress(info.num_frames or 1, stream, unit="frames scanned")
    frames = video_io.read_frames(path, config.detection_side, info)
    skipped: list[video_io.Frame] = []  # the frames since the last detection
    with contextlib.closing(background.prefetch(timer.timed("decode", frames), depth=2 * every + 2)) as decoded:
        for frame in decoded:
            times.append(frame.time)
            if frame.index % every == 0:
                _detect_keyframe(tracker, detector, frame, skipped, info, timer)
                skipped = []
            else:
                skipped.append(frame)
            bar.update()
    if skipped:  # the last frame is always detected
        _detect_keyframe(tracker, detector, skipped[-1], skipped[:-1], info, timer)
    bar.close()
    times = np.asarray(times)
    return LocatedFaces(info, tracker.timeline(len(times), config.faces), times,
                        video_io.is_variable_rate(times, info.frame_rate), tracker.detector_runs)


def _detect_keyframe(tracker: face_tracks.FaceTracker, detector: detection.FaceDetector, frame: video_io.Frame,
                     skipped: list[video_io.Frame], info: video_io.VideoInfo, timer: StageTimer) -> None:
    """Detects the faces of a keyframe, and of the frames skipped since the last one when they need it.

    The skipped frames keep the faces interpolated between the two detections only when the keyframe's
    faces continue the last detection's one to one (FaceTracker.continuation) and MTCNN's last network
    finds a face at every interpolated box of every skipped frame (FaceDetector.face_probabilities: one
    call of a small network for all of them); otherwise every skipped frame is detected, so a face that
    leaves, or a cut, between two detections is found at the frame where it happens. A face that
    appears after a keyframe is found at the next one.
    """
    faces = _detect(detector, frame, info, timer)
    if skipped:
        pairs = tracker.continuation(faces)
        span, threshold = (skipped[0].index - 1, frame.index), tracker.config.min_face_probability
        if pairs is None or not _keeps_faces(detector, skipped, pairs, span, threshold, info, timer):
            for between in skipped:
                tracker.update(between.index, _detect(detector, between, info, timer))
    tracker.update(frame.index, faces)


def _detect(detector: detection.FaceDetector, frame: video_io.Frame, info: video_io.VideoInfo,
            timer: StageTimer) -> list[detection.Face]:
    """The faces of a frame (its small copy), in full-size pixels."""
    image = frame.image
    with timer.stage("detection"):
        faces = detector.detect(image)
    scale_x, scale_y = info.width / image.shape[1], info.height / image.shape[0]
    return [scale_face(face, scale_x, scale_y) for face in faces]


def _keeps_faces(detector: detection.FaceDetector, skipped: list[video_io.Frame], pairs, span: tuple[int, int],
                 threshold: float, info: video_io.VideoInfo, timer: StageTimer) -> bool:
    """Whether MTCNN's last network sees a face at every box interpolated into the skipped frames.

    pairs: FaceTracker.continuation's (points at the last detection, at the keyframe); span: the two
    frames' indices; threshold: TrackerConfig.min_face_probability. One network call for all frames.
    """
    if not pairs:
        return True
    checks = []
    for frame in skipped:
        image = frame.image
        fraction = (frame.index - span[0]) / (span[1] - span[0])
        scale = np.array([image.shape[1] / info.width, image.shape[0] / info.height])
        boxes = []
        for before, after in pairs:
            (x0, y0), (x1, y1) = (before[-2:] + (after[-2:] - before[-2:]) * fraction) * scale
            boxes.append([x0, y0, x1 - x0, y1 - y0])
        checks.append((image, boxes))
    with timer.stage("detection"):
        probabilities = detector.face_probabilities(checks)
    return all(bool((probability >= threshold).all()) for probability in probabilities)


def scale_face(face: detection.Face, scale_x: float, scale_y: float) -> detection.Face:
    """A face found on a scaled copy, in the full frame's pixels."""
    if scale_x == scale_y == 1.0:
        return face
    x, y, width, height = face.box
    return detection.Face(box=(x * scale_x, y * scale_y, width * scale_x, height * scale_y),
                          keypoints={name: (px * scale_x, py * scale_y) for name, (px, py) in face.keypoints.items()},
                          confidence=face.confidence)


def frame_crops(frame: np.ndarray, faces: list[detection.Face], size: int, feather: float) -> list[FaceCrop]:
    """Each face of a frame cut out at the model's size, as Editor.find_faces cuts a photo's."""
    crops = []
    for face in faces:
        crop, transform = alignment.crop_face(frame, face, size, margin=alignment.CROP_MARGIN)
        crops.append(FaceCrop(crop, transform, face, feather))
    return crops


def edit_batch(editor: Editor, frames: list[np.ndarray], crops: list[list[FaceCrop]], targets: np.ndarray,
               timer: StageTimer, in_place: bool = False) -> list[np.ndarray]:
    """One model call for every face of several frames, then paste-back.

    Args:
        frames: uint8 [H, W, 3] each; crops: each frame's faces; targets: float32 [len(frames), 17] in [0, 1].
        in_place: paste into `frames` themselves (decoded frames no one else holds), not into copies; never
            with one photo repeated.

    Returns:
        The edited frames; a frame without crops is returned as it is.
    """
    flat = [crop for frame_crops_ in crops for crop in frame_crops_]
    if not flat:
        return list(frames)
    owners = np.repeat(np.arange(len(frames)), [len(frame_crops_) for frame_crops_ in crops])
    with timer.stage("edit"):
        images = pixels.uint8_to_unit(np.stack([crop.crop for crop in flat]))
        outputs = editor.model(images, np.asarray(targets, np.float32)[owners])
    edited, start = [], 0
    with timer.stage("paste_back"):
        for frame, frame_crops_ in zip(frames, crops):
            stop = start + len(frame_crops_)
            edited.append(editor.paste(frame, frame_crops_, outputs["color"][start:stop],
                                       outputs["attention"][start:stop], in_place) if frame_crops_ else frame)
            start = stop
    return edited


def edit_video(path: os.PathLike, out: os.PathLike, located: LocatedFaces, editor: Editor,
               targets_at: Callable[[np.ndarray], np.ndarray], config: VideoEditConfig,
               timer: StageTimer | None = None, stream: TextIO | None = None) -> dict:
    """Pass 2: edits every frame's faces towards targets_at(frame times) and writes `out` atomically.

    Args:
        path: the clip located by locate_faces.
        out: the output video (video_writer.VideoWriter), with the clip's audio.
        located: locate_faces(path, ...).
        editor: the model and the paste-back settings (its detector is not used).
        targets_at: seconds float [N] -> target AUs float32 [N, 17] in [0, 1] (au_curves.AUCurve.at).

    Returns:
        {"frames", "frames_with_faces", "seconds"}: the counts written.
    """
    timer = timer or StageTimer()
    size, feather = editor.model.image_size, editor.config.feather
    bar = progress.Progress(located.num_frames, stream, unit="frames")
    written = 0
    depth = 2 * config.batch_size  # frames decoded ahead, and edited frames waiting for the encoder

    with video_writer.VideoWriter(out, located.info, audio_from=path, encoder=config.encoder) as writer:
        def encode(item: tuple[np.ndarray, int]) -> None:
            with timer.stage("encode"):
                writer.write(*item)

        decoded = background.prefetch(timer.timed("decode", video_io.read_frames(path, info=located.info)), depth)
        with contextlib.closing(decoded) as frames, background.Sink(encode, depth) as encoder:
            for batch in _batches(frames, config.batch_size):
                with timer.stage("edit"):
                    crops = [frame_crops(item.image, located.timeline.faces_at(item.index), size, feather)
                             for item in batch]
                    targets = targets_at(np.array([item.time for item in batch]))
                edited = edit_batch(editor, [item.image for item in batch], crops, targets, timer, in_place=True)
                for item, image in zip(batch, edited):
                    encoder.put((image, item.pts))
                written += len(batch)
                bar.update(len(batch))
        with timer.stage("encode"):
            writer.close()
    bar.close()
    return {"frames": written, "frames_with_faces": located.num_frames - len(located.timeline.frames_without_faces())}


def _batches(items: Iterator, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
