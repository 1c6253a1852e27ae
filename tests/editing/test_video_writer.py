"""Tests for tf_ganimation/editing/video_writer.py: tiny clips written, read back and checked with PyAV."""


import av
import numpy as np
import pytest
from video_clips import audio_of, gradient_frames, write_clip

from tf_ganimation.editing import video_io, video_writer


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_clip_reads_upright_and_writes_its_rotation_back(tmp_path, rotation):
    frames = gradient_frames(3)
    path = write_clip(tmp_path / "phone.mp4", frames, rotation=rotation)
    info = video_io.probe(path)
    assert info.rotation == rotation and (info.width, info.height) == (48, 32)
    decoded = [frame.image for frame in video_io.read_frames(path)]
    assert decoded[0].shape == (32, 48, 3) and np.abs(decoded[0].astype(int) - frames[0]).max() <= 3
    with video_writer.VideoWriter(tmp_path / "out.mp4", info, encoder=video_writer.EncoderConfig(crf=0)) as writer:
        for frame in video_io.read_frames(path):
            writer.write(frame.image, frame.pts)
    again = video_io.probe(tmp_path / "out.mp4")
    assert again.rotation == rotation and (again.width, again.height) == (48, 32)
    first = next(video_io.read_frames(tmp_path / "out.mp4")).image
    assert np.abs(first.astype(int) - frames[0]).mean() < 3  # 4:2:0 chroma; a wrong turn errs by ~100


def test_writer_keeps_timestamps_rate_and_copies_audio(tmp_path):
    pts = [0, 100, 200, 350, 400, 600, 700]  # milliseconds: a variable frame rate
    path = write_clip(tmp_path / "vfr.mp4", gradient_frames(len(pts)), fps=10, audio_s=0.8, pts=pts)
    info = video_io.probe(path)
    decoded = list(video_io.read_frames(path))
    assert video_io.is_variable_rate([frame.time for frame in decoded], info.frame_rate)
    with video_writer.VideoWriter(tmp_path / "out.mp4", info, audio_from=path) as writer:
        for frame in decoded:
            writer.write(frame.image, frame.pts)
    out = video_io.probe(tmp_path / "out.mp4")
    assert out.num_frames == len(pts) and out.has_audio
    np.testing.assert_allclose([frame.time for frame in video_io.read_frames(tmp_path / "out.mp4")],
                               np.array(pts) / 1000, atol=2e-3)
    source_packets, source_seconds = audio_of(path)
    packets, seconds = audio_of(tmp_path / "out.mp4")
    assert packets == source_packets and seconds == pytest.approx(source_seconds)


def test_writer_copies_every_audio_stream_with_its_language(tmp_path):
    path = write_clip(tmp_path / "dub.mkv", gradient_frames(5), fps=10, audio_s=0.5, audio_languages=("eng", "deu"))
    info = video_io.probe(path)
    with video_writer.VideoWriter(tmp_path / "out.mkv", info, audio_from=path) as writer:
        for frame in video_io.read_frames(path):
            writer.write(frame.image, frame.pts)
    pitches = []
    for number in (0, 1):
        with av.open(str(tmp_path / "out.mkv")) as container:
            assert [stream.metadata.get("language") for stream in container.streams.audio] == ["eng", "deu"]
            stream = container.streams.audio[number]
            samples = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(stream)])
        pitches.append(np.argmax(np.abs(np.fft.rfft(samples))) * stream.rate / len(samples))
    assert pitches == [pytest.approx(440, abs=5), pytest.approx(880, abs=5)]  # each stream its own tone, in order
    for number in (0, 1):
        assert audio_of(tmp_path / "out.mkv", number) == audio_of(path, number)


def test_writer_is_atomic_and_an_error_leaves_nothing(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", gradient_frames(2))
    info = video_io.probe(path)
    target = tmp_path / "out.mp4"
    writer = video_writer.VideoWriter(target, info)
    writer.write(gradient_frames(1)[0], 0)
    assert not target.exists()
    with pytest.raises(RuntimeError), writer:
        raise RuntimeError("killed")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4"]


def test_writer_refuses_a_frame_of_another_size(tmp_path):
    info = video_io.probe(write_clip(tmp_path / "clip.mp4", gradient_frames(1)))
    with video_writer.VideoWriter(tmp_path / "out.mp4", info) as writer:
        with pytest.raises(ValueError, match=r"expected uint8 \[32, 48, 3\]"):
            writer.write(np.zeros([10, 10, 3], np.uint8), 0)
        writer.write(gradient_frames(1)[0], 0)


# === Bad input ===


def test_unknown_output_extension(tmp_path):
    info = video_io.probe(write_clip(tmp_path / "clip.mp4", gradient_frames(1)))
    with pytest.raises(ValueError, match=r"out\.avi.*\.mp4"):
        video_writer.VideoWriter(tmp_path / "out.avi", info)


def test_write_frames(tmp_path):
    frames = [np.full([16, 24, 3], value, np.uint8) for value in (10, 200, 90)]
    path = video_writer.write_frames(tmp_path / "c.mp4", iter(frames), fps=12.5)
    info = video_io.probe(path)
    assert info.num_frames == 3 and float(info.frame_rate) == 12.5
    with pytest.raises(ValueError, match="no frame"):
        video_writer.write_frames(tmp_path / "d.mp4", iter([]), fps=10)
