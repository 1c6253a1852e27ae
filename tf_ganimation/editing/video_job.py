"""One video run, what scripts/animate.py calls with --video or --driving_video.

    run(VideoJob(model="runs/quickstart", video="in.mp4", curve="0s:neutral,1.5s:happy", out="out.mp4"))
    run(VideoJob(model="runs/quickstart", image="photo.jpg", driving_video="drive.mp4", out="out.mp4"))
    run(VideoJob(model="runs/quickstart", video="in.mp4", driving_video="drive.mp4", out="out.mp4",
                 au_track_out="track.csv"))

The target AUs over time come from exactly one of: a preset or mix (`expression`, a sequence spreads
over the clip), explicit `aus`, a `curve` (keyframes `0s:neutral,1.5s:happy` or an AU track CSV), or a
`driving_video` (reenactment). Nothing is written under `out` until the whole video is (atomic), and an
existing `out` is kept unless `overwrite`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import time
from typing import TextIO

import numpy as np
from absl import logging

from tf_ganimation.core import action_units, image_files
from tf_ganimation.editing import au_curves, face_tracks, reenactment, video_edit, video_io
from tf_ganimation.editing.editor import Editor, EditorConfig
from tf_ganimation.export.backends import load_edit_model
from tf_ganimation.faces import detection
from tf_ganimation.model.edit_model import EditModel


class NoVideoFaceError(ValueError):
    """No face in any frame of the video to edit."""


@dataclasses.dataclass(frozen=True)
class VideoJob:
    """One video written (or only an AU track estimated).

    Attributes:
        model: see export.backends.load_edit_model (for driving_video, one that estimates AUs: a run
            folder or a SavedModel exported with the critic).
        out: the video to write (.mp4, .mov or .mkv); may be empty with driving_video and au_track_out.
        video: the clip whose faces are edited.
        image: a still photo to animate instead (with driving_video or curve).
        driving_video: a clip whose largest face's AUs drive the edit.
        expression, aus, curve: the other sources of target AUs (see the module docstring).
        au_track_out: write the driving video's AU track here (CSV, OpenFace's columns).
        overwrite: replace an existing out.
        fps: frame rate of a photo animated by a curve.
        au_smoothing_s: sigma in seconds of the driving track's smoothing.
        edit: how faces are found and edited (video_edit.VideoEditConfig).
    """

    model: str
    out: str = ""
    video: str = ""
    image: str = ""
    driving_video: str = ""
    expression: str = ""
    aus: str = ""
    curve: str = ""
    au_track_out: str = ""
    overwrite: bool = False
    fps: float = 25.0
    au_smoothing_s: float = 0.08
    edit: video_edit.VideoEditConfig = video_edit.VideoEditConfig()

    def __post_init__(self):
        sources = [name for name in ("expression", "aus", "curve", "driving_video") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError("give exactly one of --expression, --aus, --curve (keyframes such as "
                             "0s:neutral,1.5s:happy, or an AU track .csv) and --driving_video; got "
                             f"{', '.join('--' + name for name in sources) or 'none'}")
        if not self.out and not (self.driving_video and self.au_track_out):
            raise ValueError("nothing to write: give --out (the video) and/or, with --driving_video, --au_track_out")
        if self.out and bool(self.video) == bool(self.image):
            raise ValueError("give exactly one of --video (a clip whose faces are edited) and --image (a photo "
                             "animated by --driving_video or --curve)")
        if not self.out and (self.video or self.image):
            raise ValueError(f"--{'video' if self.video else 'image'} needs --out, the video to write")
        if self.image and not (self.driving_video or self.curve):
            raise ValueError("--image makes a video only with --driving_video or --curve (the expressions over time)")
        if self.out:
            if pathlib.Path(self.out).suffix.lower() not in video_io.VIDEO_EXTENSIONS:
                raise ValueError(f"--out {self.out!r}: expected a file ending in one of "
                                 f"{', '.join(video_io.VIDEO_EXTENSIONS)}")
            for name in ("video", "image", "driving_video"):
                if getattr(self, name) and os.path.abspath(getattr(self, name)) == os.path.abspath(self.out):
                    raise ValueError(f"--out {self.out} is the input --{name}: refusing to overwrite it")
        if self.au_track_out and pathlib.Path(self.au_track_out).suffix.lower() != ".csv":
            raise ValueError(f"--au_track_out {self.au_track_out!r}: expected a .csv file")
        if not (isinstance(self.fps, (int, float)) and 0 < self.fps <= 120):
            raise ValueError(f"fps={self.fps!r} is invalid: expected a number in (0, 120]")
        for name in ("out", "au_track_out"):
            if getattr(self, name) and os.path.exists(getattr(self, name)) and not self.overwrite:
                raise FileExistsError(f"--{name} {getattr(self, name)} exists: pass --overwrite to replace it")

    def curve_for(self, duration_s: float) -> au_curves.AUCurve:
        """The target curve of expression, aus or curve (not driving_video), over a clip of duration_s."""
        if self.aus:
            return au_curves.constant(action_units.parse_aus(self.aus))
        if self.expression:
            return au_curves.spread(action_units.parse_expression_sequence(self.expression), duration_s)
        if self.curve.lower().endswith(".csv"):
            return au_curves.read_csv(self.curve)
        return au_curves.parse_keyframes(self.curve)


def run(job: VideoJob, model: EditModel | None = None, detector: detection.FaceDetector | None = None,
        stream: TextIO | None = sys.stderr) -> dict:
    """Runs a VideoJob; returns a JSON-able summary (inputs, faces, frames, stage seconds, files written).

    Raises:
        FileNotFoundError, FileExistsError, ValueError (video_io.VideoError, NoVideoFaceError,
        reenactment.NoDrivingFaceError included): bad inputs; nothing is written then.
    """
    started = time.perf_counter()
    if job.curve and not job.curve.lower().endswith(".csv"):
        job.curve_for(1.0)  # keyframe mistakes surface before anything loads
    for name in ("video", "image", "driving_video"):
        if getattr(job, name) and not os.path.isfile(getattr(job, name)):
            raise FileNotFoundError(f"--{name} {getattr(job, name)} does not exist")
    model = model or load_edit_model(job.model)
    editor = Editor(model, EditorConfig(faces=job.edit.faces), detector)
    timer = video_edit.StageTimer()
    summary: dict = {"model": f"{model.kind} {model.source}", "image_size": model.image_size, "written": {}}
    curve = None
    if job.driving_video:
        track = reenactment.estimate_track(job.driving_video, editor, job.edit, timer, stream)
        missing = track.missing_frames()
        if missing:
            logging.warning("No face in %d of the %d frames of the driving video %s (frames %s): their AUs are "
                            "read between the frames around them", len(missing), len(track.times),
                            job.driving_video, reenactment.describe_frames(missing))
        summary["driving_video"] = {**track.info.to_dict(), "frames_without_face": len(missing)}
        curve = track.curve(job.au_smoothing_s)
        if job.au_track_out:
            au_curves.write_csv(job.au_track_out, track.times, track.aus, track.seen)
            summary["written"]["au_track_out"] = job.au_track_out
    if job.out and job.video:
        located = video_edit.locate_faces(job.video, editor.detector, job.edit, timer, stream)
        summary["video"] = {**located.info.to_dict(), "frames": located.num_frames,
                            "variable_frame_rate": located.variable_rate, "detector_runs": located.detector_runs,
                            "faces_tracked": len(located.timeline.paths)}
        if not located.timeline.paths:
            raise NoVideoFaceError(
                f"no face in any of the {located.num_frames} frames of {job.video!r} (MTCNN on every "
                f"{job.edit.tracker.detect_every} frame(s)); nothing was written")
        curve = curve or job.curve_for(float(located.times[-1]))
        result = video_edit.edit_video(job.video, job.out, located, editor, curve.at, job.edit, timer, stream)
        summary.update(result)
        summary["written"]["out"] = job.out
    elif job.out:  # a still photo, driven
        photo = image_files.read_photo(job.image)
        crops = editor.find_faces(photo, job.image)
        if job.driving_video:
            times, pts, like = track.times, track.pts, track.info
        else:
            curve = job.curve_for(0.0)
            like = _still_info(job.image, photo, job.fps)
            times = np.arange(int(np.floor(curve.times[-1] * job.fps)) + 1) / job.fps
            pts = np.round(times / float(like.time_base)).astype(np.int64)
        result = reenactment.animate_photo(photo, crops, editor, times, pts, curve.at, like, job.out, job.edit,
                                           audio_from=job.driving_video or None, timer=timer, stream=stream)
        summary.update(result, faces=[crop.face.to_dict() for crop in crops])
        summary["written"]["out"] = job.out
    summary["stage_seconds"] = timer.to_dict()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if summary.get("frames"):
        summary["frames_per_second"] = round(summary["frames"] / summary["seconds"], 2)
    return summary


def _still_info(path: str, photo: np.ndarray, fps: float) -> video_io.VideoInfo:
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    return video_io.VideoInfo(path=path, width=int(photo.shape[1]), height=int(photo.shape[0]), rotation=0,
                              frame_rate=rate, time_base=1 / (rate * 100), num_frames=0, duration_s=0.0,
                              has_audio=False, codec="")


def tracker_config(detect_every: int, smoothing_frames: float, max_missed: int = 0) -> face_tracks.TrackerConfig:
    """The tracker of the command line."""
    return face_tracks.TrackerConfig(detect_every=detect_every, smoothing_frames=smoothing_frames,
                                     max_missed=max_missed)
