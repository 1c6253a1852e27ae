"""Tests for tf_ganimation/editing/video_io.py: probe, stream and write tiny clips made here with PyAV."""

import fractions

import av
import numpy as np
import pytest
from video_clips import audio_of, write_clip

from tf_ganimation.editing import video_io


def _gradient_frames(count: int, height: int = 32, width: int = 48) -> list[np.ndarray]:
    rows, columns = np.mgrid[0:height, 0:width]
    return [np.stack([(columns * 5 + index * 10) % 256, rows * 7 % 256, np.full_like(rows, 128)], -1).astype(np.uint8)
            for index in range(count)]


def test_probe_and_read_give_the_frames_rate_and_audio(tmp_path):
    frames = _gradient_frames(6)
    path = write_clip(tmp_path / "clip.mp4", frames, fps=10, audio_s=0.6)
    info = video_io.probe(path)
    assert (info.width, info.height, info.rotation) == (48, 32, 0)
    assert info.frame_rate == 10 and info.num_frames == 6 and info.has_audio
    decoded = list(video_io.read_frames(path))
    assert [frame.index for frame in decoded] == list(range(6))
    np.testing.assert_allclose([frame.time for frame in decoded], np.arange(6) / 10, atol=1e-6)
    for original, frame in zip(frames, decoded):  # yuv444p at crf 0: only the RGB <-> YUV rounding
        assert np.abs(frame.image.astype(int) - original).max() <= 3


def test_read_frames_scales_the_detection_copy(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", _gradient_frames(2, 64, 96))
    small = next(video_io.read_frames(path, max_side=48))
    assert small.image.shape == (32, 48, 3)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_clip_reads_upright_and_writes_its_rotation_back(tmp_path, rotation):
    frames = _gradient_frames(3)
    path = write_clip(tmp_path / "phone.mp4", frames, rotation=rotation)
    info = video_io.probe(path)
    assert info.rotation == rotation and (info.width, info.height) == (48, 32)
    decoded = [frame.image for frame in video_io.read_frames(path)]
    assert decoded[0].shape == (32, 48, 3) and np.abs(decoded[0].astype(int) - frames[0]).max() <= 3
    with video_io.VideoWriter(tmp_path / "out.mp4", info, encoder=video_io.EncoderConfig(crf=0)) as writer:
        for frame in video_io.read_frames(path):
            writer.write(frame.image, frame.pts)
    again = video_io.probe(tmp_path / "out.mp4")
    assert again.rotation == rotation and (again.width, again.height) == (48, 32)
    first = next(video_io.read_frames(tmp_path / "out.mp4")).image
    assert np.abs(first.astype(int) - frames[0]).mean() < 3  # 4:2:0 chroma; a wrong turn errs by ~100


def test_writer_keeps_timestamps_rate_and_copies_audio(tmp_path):
    pts = [0, 100, 200, 350, 400, 600, 700]  # milliseconds: a variable frame rate
    path = write_clip(tmp_path / "vfr.mp4", _gradient_frames(len(pts)), fps=10, audio_s=0.8, pts=pts)
    info = video_io.probe(path)
    decoded = list(video_io.read_frames(path))
    assert video_io.is_variable_rate([frame.time for frame in decoded], info.frame_rate)
    with video_io.VideoWriter(tmp_path / "out.mp4", info, audio_from=path) as writer:
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
    path = write_clip(tmp_path / "dub.mkv", _gradient_frames(5), fps=10, audio_s=0.5, audio_languages=("eng", "deu"))
    info = video_io.probe(path)
    with video_io.VideoWriter(tmp_path / "out.mkv", info, audio_from=path) as writer:
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


def test_constant_rate_is_not_variable():
    assert not video_io.is_variable_rate(np.arange(10) / 25.0, fractions.Fraction(25))
    assert video_io.is_variable_rate([0.0, 0.04, 0.12], fractions.Fraction(25))


def test_writer_is_atomic_and_an_error_leaves_nothing(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", _gradient_frames(2))
    info = video_io.probe(path)
    target = tmp_path / "out.mp4"
    writer = video_io.VideoWriter(target, info)
    writer.write(_gradient_frames(1)[0], 0)
    assert not target.exists()
    with pytest.raises(RuntimeError), writer:
        raise RuntimeError("killed")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4"]


def test_writer_refuses_a_frame_of_another_size(tmp_path):
    info = video_io.probe(write_clip(tmp_path / "clip.mp4", _gradient_frames(1)))
    with video_io.VideoWriter(tmp_path / "out.mp4", info) as writer:
        with pytest.raises(ValueError, match=r"expected uint8 \[32, 48, 3\]"):
            writer.write(np.zeros([10, 10, 3], np.uint8), 0)
        writer.write(_gradient_frames(1)[0], 0)


# === Bad input ===


def test_a_file_that_is_not_a_video(tmp_path):
    (tmp_path / "notes.mp4").write_text("these are not frames\n" * 20)
    with pytest.raises(video_io.VideoError, match=r"notes\.mp4.*not a video"):
        video_io.probe(tmp_path / "notes.mp4")


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(video_io.VideoError, match=r"empty\.mp4.*empty"):
        video_io.probe(tmp_path / "empty.mp4")
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        video_io.probe(tmp_path / "missing.mp4")


def test_audio_only_file_has_no_video_stream(tmp_path):
    import av
    from video_clips import tone

    with av.open(str(tmp_path / "sound.m4a"), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(tone(0.2), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            container.mux(packet)
    with pytest.raises(video_io.VideoError, match=r"sound\.m4a.*no video stream"):
        video_io.probe(tmp_path / "sound.m4a")


def test_truncated_clip(tmp_path):
    path = write_clip(tmp_path / "clip.mkv", _gradient_frames(12), crf=10)
    data = path.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(video_io.VideoError, match=r"cut\.mkv.*truncated"):
        info = video_io.probe(tmp_path / "cut.mkv")
        list(video_io.read_frames(tmp_path / "cut.mkv", info=info))


def test_truncated_mp4_without_its_index(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", _gradient_frames(12), crf=10)
    data = path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(video_io.VideoError, match=r"cut\.mp4"):
        list(video_io.read_frames(tmp_path / "cut.mp4"))


def test_4k_clip_is_refused_before_decoding(tmp_path):
    path = write_clip(tmp_path / "uhd.mp4", [np.zeros([2160, 3840, 3], np.uint8)], crf=40)
    with pytest.raises(video_io.VideoError, match=r"uhd\.mp4.*3840x2160.*max_video_pixels"):
        video_io.probe(path)
    assert video_io.probe(path, max_pixels=3840 * 2160).width == 3840


def test_unknown_output_extension(tmp_path):
    info = video_io.probe(write_clip(tmp_path / "clip.mp4", _gradient_frames(1)))
    with pytest.raises(ValueError, match=r"out\.avi.*\.mp4"):
        video_io.VideoWriter(tmp_path / "out.avi", info)


def test_video_error_is_a_user_error():
    assert issubclass(video_io.VideoError, ValueError)  # cli.run: one paragraph and exit 2, no traceback


def test_write_frames(tmp_path):
    frames = [np.full([16, 24, 3], value, np.uint8) for value in (10, 200, 90)]
    path = video_io.write_frames(tmp_path / "c.mp4", iter(frames), fps=12.5)
    info = video_io.probe(path)
    assert info.num_frames == 3 and float(info.frame_rate) == 12.5
    with pytest.raises(ValueError, match="no frame"):
        video_io.write_frames(tmp_path / "d.mp4", iter([]), fps=10)
