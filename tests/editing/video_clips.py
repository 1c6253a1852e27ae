"""Tiny video files made inside the tests with PyAV: frames from arrays, a tone as audio, chosen timestamps."""

from __future__ import annotations

import fractions
import pathlib

import av
import numpy as np

from tf_ganimation.editing import video_io

SAMPLE_RATE = 16000


def write_clip(path: pathlib.Path, frames, fps: int = 10, audio_s: float = 0.0, rotation: int = 0,
               pts=None, codec: str = "libx264", crf: int = 0, audio_languages=("eng",)) -> pathlib.Path:
    """Writes uint8 [H, W, 3] upright frames as a video; `rotation` stores them turned and sets the display matrix.

    pts: the frames' timestamps in 1/1000 s (default: a constant rate); audio_s: seconds of tone in one
    audio stream per audio_languages entry (the k-th at 440 * (k + 1) Hz, tagged with its language).
    """
    frames = list(frames)
    container = av.open(str(path), "w")
    video = container.add_stream(codec, rate=fps)
    stored_height, stored_width = video_io.stored(frames[0], rotation).shape[:2]
    video.width, video.height = stored_width, stored_height
    video.pix_fmt = "yuv444p" if crf == 0 else "yuv420p"
    video.options = {"crf": str(crf), "preset": "ultrafast"}
    time_base = fractions.Fraction(1, 1000)
    video.codec_context.time_base = time_base
    if rotation:
        video.set_display_rotation(rotation)
    audio = [container.add_stream("aac", rate=SAMPLE_RATE) for _ in audio_languages] if audio_s else []
    for stream, language in zip(audio, audio_languages):
        stream.metadata["language"] = language
    for index, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(video_io.stored(image, rotation), format="rgb24")
        frame.pts = int(pts[index]) if pts is not None else round(index * 1000 / fps)
        frame.time_base = time_base
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    for number, stream in enumerate(audio):
        samples = tone(audio_s, 440.0 * (number + 1))
        chunk = 1024
        for start in range(0, samples.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(samples[:, start:start + chunk].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    container.close()
    return path


def tone(seconds: float, hertz: float = 440.0) -> np.ndarray:
    """float32 [1, samples]: a sine at a third of full scale."""
    times = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * hertz * times)).astype(np.float32)[None]


def audio_of(path: pathlib.Path, stream_number: int = 0) -> tuple[int, float]:
    """(audio packets, seconds of audio) of a file's stream_number-th audio stream; (0, 0.0) without it."""
    with av.open(str(path)) as container:
        if len(container.streams.audio) <= stream_number:
            return 0, 0.0
        stream = container.streams.audio[stream_number]
        packets = [packet for packet in container.demux(stream) if packet.dts is not None]
        samples = sum(frame.samples for packet in packets for frame in packet.decode())
        return len(packets), samples / stream.rate


def panned(photo: np.ndarray, num_frames: int, size: tuple[int, int], step: tuple[int, int] = (2, 1),
           zoom: float = 0.0) -> list[np.ndarray]:
    """Frames of `size` (height, width) cut from `photo`, panning by `step` px and zooming by `zoom` per frame."""
    from PIL import Image

    height, width = size
    frames = []
    for index in range(num_frames):
        scale = 1.0 + zoom * index
        crop_h, crop_w = int(round(height / scale)), int(round(width / scale))
        top, left = 8 + step[1] * index, 8 + step[0] * index
        window = photo[top:top + crop_h, left:left + crop_w]
        frames.append(np.asarray(Image.fromarray(window).resize((width, height), Image.Resampling.BILINEAR)))
    return frames


def face_clip(photo: np.ndarray, num_frames: int = 7, blank_at: tuple[int, ...] = (3,),
              size: tuple[int, int] = (224, 288)) -> list[np.ndarray]:
    """A panned and zoomed photo, with plain grey frames (no face) at `blank_at`."""
    frames = panned(photo, num_frames, size, step=(3, 2), zoom=0.01)
    return [np.full_like(frame, 90) if index in blank_at else frame for index, frame in enumerate(frames)]


def gradient_frames(count: int, height: int = 32, width: int = 48) -> list[np.ndarray]:
    """uint8 [height, width, 3] frames of a gradient that moves by 10 levels a frame."""
    rows, columns = np.mgrid[0:height, 0:width]
    return [np.stack([(columns * 5 + index * 10) % 256, rows * 7 % 256, np.full_like(rows, 128)], -1).astype(np.uint8)
            for index in range(count)]
