"""Tests for tf_ganimation/editing/video_io.py: probe and stream tiny clips made here with PyAV, and bad files."""

import fractions

import av
import numpy as np
import pytest
from video_clips import gradient_frames, write_clip

from tf_ganimation.editing import video_io


def test_probe_and_read_give_the_frames_rate_and_audio(tmp_path):
    frames = gradient_frames(6)
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
    path = write_clip(tmp_path / "clip.mp4", gradient_frames(2, 64, 96))
    small = next(video_io.read_frames(path, max_side=48))
    assert small.image.shape == (32, 48, 3)


def test_constant_rate_is_not_variable():
    assert not video_io.is_variable_rate(np.arange(10) / 25.0, fractions.Fraction(25))
    assert video_io.is_variable_rate([0.0, 0.04, 0.12], fractions.Fraction(25))


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
    path = write_clip(tmp_path / "clip.mkv", gradient_frames(12), crf=10)
    data = path.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(video_io.VideoError, match=r"cut\.mkv.*truncated"):
        info = video_io.probe(tmp_path / "cut.mkv")
        list(video_io.read_frames(tmp_path / "cut.mkv", info=info))


def test_truncated_mp4_without_its_index(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", gradient_frames(12), crf=10)
    data = path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(video_io.VideoError, match=r"cut\.mp4"):
        list(video_io.read_frames(tmp_path / "cut.mp4"))


def test_4k_clip_is_refused_before_decoding(tmp_path):
    path = write_clip(tmp_path / "uhd.mp4", [np.zeros([2160, 3840, 3], np.uint8)], crf=40)
    with pytest.raises(video_io.VideoError, match=r"uhd\.mp4.*3840x2160.*max_video_pixels"):
        video_io.probe(path)
    assert video_io.probe(path, max_pixels=3840 * 2160).width == 3840


def test_video_error_is_a_user_error():
    assert issubclass(video_io.VideoError, ValueError)  # cli.run: one paragraph and exit 2, no traceback
