"""Video files in, through PyAV (FFmpeg's libraries): the one module that imports `av` (import_av).

    info = probe("clip.mp4")                          # VideoInfo: size, rotation, rate, frames, audio
    for frame in read_frames("clip.mp4"):             # streams: one decoded frame in memory at a time
        frame.image                                   # uint8 [height, width, 3] RGB, upright

Frames are handed out upright (the container's rotation applied), with their timestamps as stored;
video_writer writes them back the same way. Bad files (not a video, empty, truncated, too large) raise
VideoError naming the file and what is wrong.

PyAV is optional: `pip install -r requirements-video.txt`.
"""

from __future__ import annotations

import dataclasses
import fractions
import importlib
import os
import pathlib
from collections.abc import Iterator

import numpy as np

# The largest frame read, width * height: 1440p passes, a 4K clip (8.3 MP) needs a higher max_pixels.
MAX_PIXELS = 2560 * 1440
# Timestamps that differ from a constant step by more than this fraction make a clip variable-rate.
_RATE_TOLERANCE = 0.02
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv")


class VideoError(ValueError):
    """A file that is not a usable video; the message names the file and what is wrong."""


def import_av():
    """The `av` module (PyAV), or an ImportError that says what to install."""
    try:
        return importlib.import_module("av")
    except ImportError as error:
        raise ImportError(f"video needs PyAV ({error}); install it with `pip install -r requirements-video.txt` "
                          "(av==18.1.0, FFmpeg's libraries in a wheel)") from error


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video file holds.

    Attributes:
        path: the file.
        width, height: the upright (displayed) frame size in pixels.
        rotation: degrees the stored frames are turned counter-clockwise for display, in {0, 90, 180, -90}.
        frame_rate: the average frames per second.
        time_base: seconds per pts tick of the video stream.
        num_frames: frames the container declares (0 when it does not say).
        duration_s: the video stream's length in seconds (0 when unknown).
        has_audio: the file has an audio stream (every one is copied to the output).
        codec: the video codec's name.
    """

    path: str
    width: int
    height: int
    rotation: int
    frame_rate: fractions.Fraction
    time_base: fractions.Fraction
    num_frames: int
    duration_s: float
    has_audio: bool
    codec: str

    def to_dict(self) -> dict:
        return {"size": [self.width, self.height], "rotation": self.rotation,
                "frame_rate": round(float(self.frame_rate), 3), "frames": self.num_frames,
                "duration_s": round(self.duration_s, 3), "audio": self.has_audio, "codec": self.codec}


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: its position, timestamp and pixels.

    Attributes:
        index: 0-based position in decoding order.
        pts: the presentation timestamp in the stream's time base (index when the file has none).
        time: seconds from the first frame.
        image: uint8 [height, width, 3] RGB, upright.
    """

    index: int
    pts: int
    time: float
    image: np.ndarray


def _open(path: os.PathLike):
    av = import_av()
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {os.fspath(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise VideoError(f"{os.fspath(path)!r} is empty (0 bytes): expected a video file")
    try:
        container = av.open(os.fspath(path))
    except (av.error.InvalidDataError, av.error.FFmpegError) as error:
        raise VideoError(f"{os.fspath(path)!r} is not a video FFmpeg can read ({error})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{os.fspath(path)!r} has no video stream (streams: "
                         f"{[stream.type for stream in container.streams] or 'none'})")
    return container


def probe(path: os.PathLike, max_pixels: int = MAX_PIXELS) -> VideoInfo:
    """Reads a video's header and its first frame.

    Raises:
        FileNotFoundError: no such file.
        VideoError: not a video, no video stream, no frame, or larger than max_pixels.
    """
    av = import_av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise VideoError(f"{os.fspath(path)!r} is {width}x{height} ({width * height:,} pixels per frame), above "
                             f"the limit of {max_pixels:,} (--max_video_pixels): a frame this large takes seconds "
                             "to edit; downscale the clip first or raise the limit")
        try:
            first = next(container.decode(stream), None)
        except (av.error.InvalidDataError, av.error.FFmpegError) as error:
            raise VideoError(f"{os.fspath(path)!r}: its first frame cannot be decoded ({error})") from None
        if first is None:
            raise VideoError(f"{os.fspath(path)!r} has no video frame (0 frames)")
        rotation = _rotation(first, path)
        if rotation in (90, -90):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or fractions.Fraction(25)
        time_base = stream.time_base or fractions.Fraction(1, 90000)
        duration = float(stream.duration * time_base) if stream.duration else _tag_seconds(stream.metadata)
        return VideoInfo(path=os.fspath(path), width=width, height=height, rotation=rotation,
                         frame_rate=fractions.Fraction(rate), time_base=fractions.Fraction(time_base),
                         num_frames=int(stream.frames or 0), duration_s=duration,
                         has_audio=bool(container.streams.audio), codec=stream.codec_context.name)
    finally:
        container.close()


def _tag_seconds(metadata) -> float:
    """A Matroska stream's DURATION tag ("00:00:01.200000000") in seconds; 0.0 when absent."""
    text = metadata.get("DURATION", "") if metadata else ""
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return 0.0


def _rotation(frame, path) -> int:
    rotation = int(round(frame.rotation or 0)) % 360
    rotation = rotation - 360 if rotation > 180 else rotation
    if rotation not in (0, 90, 180, -90):
        raise VideoError(f"{os.fspath(path)!r} is rotated by {rotation} degrees: only multiples of 90 are supported")
    return rotation


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """A stored frame turned for display (rotation degrees counter-clockwise)."""
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90)) if rotation else image


def stored(image: np.ndarray, rotation: int) -> np.ndarray:
    """The inverse of `upright`: an upright frame turned back into the stored orientation."""
    return np.ascontiguousarray(np.rot90(image, k=-rotation // 90)) if rotation else image


def read_frames(path: os.PathLike, max_side: int = 0, info: VideoInfo | None = None) -> Iterator[Frame]:
    """Decodes a video frame by frame (one frame in memory at a time).

    Args:
        path: the video.
        max_side: when > 0, frames are scaled down (by FFmpeg, before conversion to RGB) so that their
            longer side is at most this; the detector's copy.
        info: probe(path), when already known.

    Yields:
        Frame, upright uint8 RGB.

    Raises:
        VideoError: a frame cannot be decoded, or fewer frames than the container declares (truncated).
    """
    av = import_av()
    info = info or probe(path)
    container = _open(path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stored_width, stored_height = stream.codec_context.width, stream.codec_context.height
    scale = min(1.0, max_side / max(stored_width, stored_height)) if max_side else 1.0
    size = {"width": max(2, round(stored_width * scale)), "height": max(2, round(stored_height * scale))}
    index, start, time = 0, None, 0.0
    try:
        try:
            for decoded in container.decode(stream):
                pts = decoded.pts if decoded.pts is not None else index
                start = pts if start is None else start
                image = decoded.to_ndarray(format="rgb24", **(size if scale < 1.0 else {}))
                time = float((pts - start) * info.time_base)
                yield Frame(index=index, pts=int(pts), time=time, image=upright(image, info.rotation))
                index += 1
        except (av.error.InvalidDataError, av.error.FFmpegError) as error:
            raise VideoError(f"{info.path!r} is truncated or corrupt: decoding failed after {index} frames "
                             f"({error})") from None
        if info.num_frames and index < info.num_frames:
            raise VideoError(f"{info.path!r} is truncated: {index} of the {info.num_frames} frames its header "
                             "declares could be decoded")
        if index == 0:
            raise VideoError(f"{info.path!r} has no video frame (0 frames)")
        step = 1.0 / float(info.frame_rate)
        missing_s = info.duration_s - (time + step)
        if not info.num_frames and info.duration_s and missing_s > max(2 * step, 0.05 * info.duration_s):
            raise VideoError(f"{info.path!r} is truncated: its frames end at {time + step:.2f} s of the "
                             f"{info.duration_s:.2f} s its header declares")
    finally:
        container.close()


def is_variable_rate(times: np.ndarray, frame_rate: fractions.Fraction) -> bool:
    """Whether frame times (seconds, increasing) depart from a constant step of 1 / frame_rate."""
    steps = np.diff(np.asarray(times, np.float64))
    return bool(steps.size and np.abs(steps * float(frame_rate) - 1.0).max() > _RATE_TOLERANCE)
