"""Video files out, through PyAV: frames encoded into a new file, atomically, with another file's audio.

    with VideoWriter("out.mp4", info, audio_from="clip.mp4") as writer:   # info: video_io.probe("clip.mp4")
        writer.write(image, frame.pts)                # atomic: "out.mp4" appears only when the writer closes

Frames are written back as video_io stored them (upright frames turned back), with the same rotation in
the output's display matrix, so a phone clip keeps its metadata. Timestamps pass through unchanged
(same time base and pts), so the frame rate is kept, also a variable one, and the packets of every
audio stream are copied without re-encoding, interleaved with the video as it is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fractions
import os
import pathlib
from collections.abc import Iterable

import numpy as np

from tf_ganimation.core import atomic
from tf_ganimation.editing.video_io import VIDEO_EXTENSIONS, VideoInfo, import_av, stored

_CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """How the output video is encoded.

    Attributes:
        codec: an FFmpeg encoder (H.264 by default: plays everywhere).
        crf: constant rate factor, in [0, 51]; 0 is lossless, 18 looks lossless, 23 is x264's default.
        preset: the x264 speed preset (ultrafast .. veryslow).
    """

    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"

    def __post_init__(self):
        if not (isinstance(self.crf, int) and 0 <= self.crf <= 51):
            raise ValueError(f"crf={self.crf!r} is invalid: expected an integer in [0, 51]")


class VideoWriter:
    """Writes frames into a new video, atomically, copying the audio of another file.

    Frames go to a hidden temporary file beside `path` (core.atomic.temporary_path); `close()` renames
    it onto `path`, so a killed run leaves no partial file under the final name, and an error inside a
    `with` block removes the temporary file.

    Args:
        path: the output (.mp4, .mov or .mkv).
        like: the frame size (upright), rotation, rate and time base to write with (probe's VideoInfo).
        audio_from: a file whose audio streams are all copied, in order, with their language and title
            tags (None: no audio).
        encoder: EncoderConfig.
    """

    def __init__(self, path: os.PathLike, like: VideoInfo, audio_from: os.PathLike | None = None,
                 encoder: EncoderConfig = EncoderConfig()):
        av = import_av()
        self.path, self.like = pathlib.Path(path), like
        suffix = self.path.suffix.lower()
        if suffix not in _CONTAINER_FORMATS:
            raise ValueError(f"--out {os.fspath(path)!r}: expected a file ending in one of "
                             f"{', '.join(VIDEO_EXTENSIONS)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = atomic.temporary_path(self.path)
        self._output = av.open(os.fspath(self.temporary), "w", format=_CONTAINER_FORMATS[suffix])
        stored_width, stored_height = ((like.height, like.width) if like.rotation in (90, -90)
                                       else (like.width, like.height))
        self._video = self._output.add_stream(encoder.codec, rate=like.frame_rate)
        self._video.width, self._video.height = stored_width, stored_height
        even = stored_width % 2 == 0 and stored_height % 2 == 0
        self._video.pix_fmt = "yuv420p" if even else "yuv444p"  # 4:2:0 needs even sides
        self._video.time_base = like.time_base
        self._video.codec_context.time_base = like.time_base
        self._video.options = {"crf": str(encoder.crf), "preset": encoder.preset}
        if like.rotation:
            self._video.set_display_rotation(like.rotation)
        self._audio_input = self._audio_packets = None
        self._audio: dict = {}  # the source's audio stream index -> its copy in the output
        self._pending_audio = None
        if audio_from is not None:
            source = av.open(os.fspath(audio_from))
            if source.streams.audio:
                self._audio_input = source
                for stream in source.streams.audio:
                    copy = self._audio[stream.index] = self._output.add_stream_from_template(stream)
                    copy.metadata.update({tag: stream.metadata[tag] for tag in ("language", "title")
                                          if stream.metadata.get(tag)})
                self._audio_packets = source.demux(list(source.streams.audio))
            else:
                source.close()
        self.frames_written, self._first_pts, self._closed = 0, None, False

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encodes one upright frame, uint8 [height, width, 3] RGB, at `pts` (in like.time_base)."""
        av = import_av()
        if image.shape != (self.like.height, self.like.width, 3) or image.dtype != np.uint8:
            raise ValueError(f"frame of {image.dtype} {list(image.shape)}: expected uint8 "
                             f"[{self.like.height}, {self.like.width}, 3]")
        self._first_pts = pts if self._first_pts is None else self._first_pts
        frame = av.VideoFrame.from_ndarray(stored(image, self.like.rotation), format="rgb24")
        frame.pts, frame.time_base = int(pts - self._first_pts), self.like.time_base
        for packet in self._video.encode(frame):
            self._output.mux(packet)
        self.frames_written += 1
        self._copy_audio(float((pts - self._first_pts) * self.like.time_base))

    def _copy_audio(self, until_s: float | None) -> None:
        """Muxes the source's audio packets up to `until_s` seconds (None: all that are left)."""
        if self._audio_packets is None:
            return
        while True:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None:
                self._audio_packets = None
                return
            if packet.dts is None:  # the demuxer's final empty packet
                continue
            if until_s is not None and packet.pts is not None and float(packet.pts * packet.time_base) > until_s:
                self._pending_audio = packet
                return
            packet.stream = self._audio[packet.stream.index]
            self._output.mux(packet)

    def close(self) -> pathlib.Path:
        """Flushes the encoder, copies the rest of the audio and moves the file onto `path`."""
        if self._closed:
            return self.path
        self._closed = True
        try:
            for packet in self._video.encode():
                self._output.mux(packet)
            self._copy_audio(None)
            self._output.close()
            if self.frames_written == 0:
                raise ValueError(f"no frame was written to {os.fspath(self.path)!r}")
            os.replace(self.temporary, self.path)
        finally:
            self._close_inputs()
            self.temporary.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Closes without writing `path`: the temporary file is removed."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):  # the file is discarded either way
                self._output.close()
            self._close_inputs()
            self.temporary.unlink(missing_ok=True)

    def _close_inputs(self) -> None:
        if self._audio_input is not None:
            self._audio_input.close()
            self._audio_input = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.close()
        else:
            self.abort()


def write_frames(path: os.PathLike, frames: Iterable[np.ndarray], fps: float,
                 encoder: EncoderConfig = EncoderConfig()) -> pathlib.Path:
    """Writes upright uint8 [H, W, 3] frames at a constant rate, without audio, atomically; returns the path."""
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"no frame to write to {os.fspath(path)!r}")
    rate = fractions.Fraction(fps).limit_denominator(1001)
    info = VideoInfo(path=os.fspath(path), width=int(first.shape[1]), height=int(first.shape[0]), rotation=0,
                     frame_rate=rate, time_base=1 / rate, num_frames=0, duration_s=0.0, has_audio=False, codec="")
    with VideoWriter(path, info, encoder=encoder) as writer:
        writer.write(first, 0)
        for index, frame in enumerate(iterator, start=1):
            writer.write(frame, index)
    return pathlib.Path(path)
