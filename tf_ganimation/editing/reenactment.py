"""Reenactment: the expressions of the face in a driving video, put on another face.

    track = estimate_track("drive.mp4", editor, config)      # the AUs of its largest face, frame by frame
    curve = track.curve(sigma_s=0.1)                          # smoothed over time: an au_curves.AUCurve
    au_curves.write_csv("track.csv", track.times, track.aus, track.seen)
    animate_photo(photo, crops, editor, track, curve, "out.mp4", config)   # a still photo, driven

The AUs are estimated by the critic's AU head (EditModel.estimate_aus: a training run folder, or a
SavedModel exported with the critic, through its `estimate_aus` signature) on the aligned crop of the
driving video's largest tracked face (video_edit.locate_faces, faces="largest").
Frames where no face was found are listed; their AUs are read from the curve between the frames
around them. A driving video with no face at all is an error.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TextIO

import numpy as np

from tf_ganimation.core import pixels, progress
from tf_ganimation.editing import au_curves, video_edit, video_io, video_writer
from tf_ganimation.editing.editor import CANNOT_ESTIMATE_HELP, Editor, FaceCrop


class NoDrivingFaceError(ValueError):
    """The driving video has no face in any frame."""


@dataclasses.dataclass(frozen=True)
class AUTrack:
    """The estimated AUs of a driving video.

    Attributes:
        times: float64 [N] seconds of every frame; pts: int [N] their timestamps.
        aus: float32 [N, 17] in [0, 1], the raw estimates (0 where no face was seen).
        seen: bool [N], frames with a face.
        info: the driving video.
    """

    times: np.ndarray
    pts: np.ndarray
    aus: np.ndarray
    seen: np.ndarray
    info: video_io.VideoInfo

    def missing_frames(self) -> list[int]:
        return np.flatnonzero(~self.seen).tolist()

    def curve(self, sigma_s: float) -> au_curves.AUCurve:
        """The seen frames' AUs smoothed over time (au_curves.smooth) and clipped to [0, 1], read linearly."""
        times = self.times[self.seen]
        smoothed = np.clip(au_curves.smooth(times, self.aus[self.seen], sigma_s), 0.0, 1.0)
        return au_curves.AUCurve(times, smoothed, "linear")


def estimate_track(path: os.PathLike, editor: Editor, config: video_edit.VideoEditConfig,
                   timer: video_edit.StageTimer | None = None, stream: TextIO | None = None) -> AUTrack:
    """Estimates the AUs of the largest face in every frame of a video.

    Raises:
        ValueError: the model cannot estimate AUs (no critic).
        NoDrivingFaceError: no face in any frame.
        FileNotFoundError, video_io.VideoError: see video_io.
    """
    if editor.model.estimate_aus(np.zeros([1, editor.model.image_size, editor.model.image_size, 3],
                                          np.float32)) is None:
        raise ValueError(f"{editor.model.source} cannot estimate AUs: {CANNOT_ESTIMATE_HELP}")
    timer = timer or video_edit.StageTimer()
    located = video_edit.locate_faces(path, editor.detector, dataclasses.replace(config, faces="largest"),
                                      timer, stream)
    missing = located.timeline.frames_without_faces()
    if len(missing) == located.num_frames:
        raise NoDrivingFaceError(f"no face in any of the {located.num_frames} frames of the driving video "
                                 f"{os.fspath(path)!r}: use a clip where one face is visible")
    size = editor.model.image_size
    aus = np.zeros([located.num_frames, editor.model.num_aus], np.float32)
    pts = np.zeros(located.num_frames, np.int64)
    seen = np.zeros(located.num_frames, bool)
    batch: list[tuple[int, np.ndarray]] = []
    bar = progress.Progress(located.num_frames, stream, unit="frames (AUs)")
    for frame in timer.timed("decode", video_io.read_frames(path, info=located.info)):
        pts[frame.index] = frame.pts
        faces = located.timeline.faces_at(frame.index)
        if faces:
            with timer.stage("edit"):
                batch.append((frame.index, video_edit.frame_crops(frame.image, faces[:1], size, 0.0)[0].crop))
        if len(batch) == config.batch_size:
            _estimate(editor, batch, aus, seen, timer)
            batch = []
        bar.update()
    if batch:
        _estimate(editor, batch, aus, seen, timer)
    bar.close()
    return AUTrack(located.times, pts, aus, seen, located.info)


def _estimate(editor: Editor, batch, aus: np.ndarray, seen: np.ndarray, timer: video_edit.StageTimer) -> None:
    indices = [index for index, _ in batch]
    with timer.stage("edit"):
        aus[indices] = editor.model.estimate_aus(pixels.uint8_to_unit(np.stack([crop for _, crop in batch])))
    seen[indices] = True


def describe_frames(frames: list[int], limit: int = 8) -> str:
    """Frame numbers as ranges, `3-7, 12, 40-41` (the first `limit` ranges, then a count)."""
    ranges, start = [], None
    for index, frame in enumerate(frames):
        start = frame if start is None else start
        if index + 1 == len(frames) or frames[index + 1] != frame + 1:
            ranges.append(f"{start}" if start == frame else f"{start}-{frame}")
            start = None
    more = f" and {len(ranges) - limit} more ranges" if len(ranges) > limit else ""
    return ", ".join(ranges[:limit]) + more


def animate_photo(photo: np.ndarray, crops: list[FaceCrop], editor: Editor, times: np.ndarray, pts: np.ndarray,
                  targets_at, like: video_io.VideoInfo, out: os.PathLike, config: video_edit.VideoEditConfig,
                  audio_from: os.PathLike | None = None, timer: video_edit.StageTimer | None = None,
                  stream: TextIO | None = None) -> dict:
    """A video of a still photo whose faces follow target AUs over time.

    Args:
        photo: uint8 [H, W, 3]; crops: its faces (Editor.find_faces).
        times: float [N] seconds and pts int [N] timestamps (in like.time_base) of the frames to write.
        targets_at: seconds float [N] -> AUs float32 [N, 17] in [0, 1].
        like: the frame rate and time base to write with (the driving video's); its size is replaced by the photo's.
        out: the video written (atomically), with audio_from's audio.

    Returns:
        {"frames": N}.
    """
    timer = timer or video_edit.StageTimer()
    info = dataclasses.replace(like, width=int(photo.shape[1]), height=int(photo.shape[0]), rotation=0)
    bar = progress.Progress(len(times), stream, unit="frames")
    with video_writer.VideoWriter(out, info, audio_from=audio_from, encoder=config.encoder) as writer:
        for start in range(0, len(times), config.batch_size):
            window = slice(start, start + config.batch_size)
            targets = targets_at(np.asarray(times[window]))
            frames = [photo] * len(targets)
            edited = video_edit.edit_batch(editor, frames, [crops] * len(targets), targets, timer)
            with timer.stage("encode"):
                for image, timestamp in zip(edited, pts[window]):
                    writer.write(image, int(timestamp))
            bar.update(len(targets))
        with timer.stage("encode"):
            writer.close()
    bar.close()
    return {"frames": len(times)}
