"""Tests for tf_ganimation/editing/video_job.py and scripts/animate.py --video: whole runs and every bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from video_clips import audio_of, face_clip, write_clip

from tf_ganimation.editing import au_curves, video_edit, video_io, video_job
from tf_ganimation.export import backends, saved_model

from conftest import PHOTOS_DIR, PROJECT_ROOT


@pytest.fixture(scope="module")
def model(tiny_run_dir):
    return backends.load_edit_model(tiny_run_dir)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, astronaut):
    return write_clip(tmp_path_factory.mktemp("clip") / "in.mp4", face_clip(astronaut, 5, blank_at=()), fps=10,
                      audio_s=0.5)


def _job(tmp_path, **options):
    settings = {"model": "unused", "video": str(tmp_path / "in.mp4"), "curve": "0s:neutral,0.4s:happy",
                "out": str(tmp_path / "out.mp4")}
    settings.update(options)
    return video_job.VideoJob(**settings)


def test_video_with_a_curve_csv(tmp_path, clip, model, detector):
    au_curves.write_csv(tmp_path / "track.csv", [0.0, 0.4], np.stack([np.zeros(17), np.full(17, 0.5)]))
    job = video_job.VideoJob(model="unused", video=str(clip), curve=str(tmp_path / "track.csv"),
                             out=str(tmp_path / "out.mp4"))
    summary = video_job.run(job, model=model, detector=detector, stream=None)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["frames"] == 5 and summary["frames_with_faces"] == 5 and summary["written"] == {"out": job.out}
    assert summary["video"]["faces_tracked"] == 1 and set(summary["stage_seconds"]) >= {"decode", "encode"}
    assert video_io.probe(job.out).num_frames == 5 and audio_of(job.out) == audio_of(clip)


def test_a_video_driven_by_another_and_the_track_alone(tmp_path, clip, model, detector):
    job = video_job.VideoJob(model="unused", video=str(clip), driving_video=str(clip), out=str(tmp_path / "out.mp4"))
    summary = video_job.run(job, model=model, detector=detector, stream=None)
    assert summary["frames"] == 5 and summary["driving_video"]["frames_without_face"] == 0
    assert video_io.probe(tmp_path / "out.mp4").num_frames == 5
    track_only = video_job.VideoJob(model="unused", driving_video=str(clip), au_track_out=str(tmp_path / "t.csv"))
    summary = video_job.run(track_only, model=model, detector=detector, stream=None)
    assert summary["written"] == {"au_track_out": str(tmp_path / "t.csv")} and "frames" not in summary
    curve = au_curves.read_csv(tmp_path / "t.csv")
    np.testing.assert_allclose(curve.times, np.arange(5) / 10, atol=1e-3)


def test_existing_output_needs_overwrite(tmp_path, clip, model, detector):
    (tmp_path / "out.mp4").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match=r"out\.mp4 exists: pass --overwrite"):
        _job(tmp_path, video=str(clip))
    assert (tmp_path / "out.mp4").read_bytes() == b"keep me"
    video_job.run(_job(tmp_path, video=str(clip), expression="happy", curve="", overwrite=True), model=model,
                  detector=detector, stream=None)
    assert video_io.probe(tmp_path / "out.mp4").num_frames == 5


def test_no_face_in_any_frame_writes_nothing(tmp_path, model, detector):
    write_clip(tmp_path / "in.mp4", [np.full([48, 64, 3], 90, np.uint8)] * 3)
    with pytest.raises(video_job.NoVideoFaceError, match=r"no face in any of the 3 frames.*in\.mp4"):
        video_job.run(_job(tmp_path), model=model, detector=detector, stream=None)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.mp4"]


def test_a_failure_while_editing_leaves_no_output(tmp_path, clip, model, detector):
    class Failing:
        image_size, num_aus, kind, source = model.image_size, 17, "fake", "<failing>"
        calls = 0

        def __call__(self, images, aus):
            Failing.calls += 1
            if Failing.calls == 2:
                raise RuntimeError("killed mid-way")
            return model(images, aus)

    with pytest.raises(RuntimeError, match="killed"):
        video_job.run(_job(tmp_path, video=str(clip), edit=video_job.video_edit.VideoEditConfig(batch_size=2)),
                      model=Failing(), detector=detector, stream=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, error, message", [
    ({"curve": "", "expression": ""}, ValueError, "exactly one of --expression, --aus, --curve"),
    ({"expression": "happy"}, ValueError, "got --expression, --curve"),
    ({"video": ""}, ValueError, "exactly one of --video"),
    ({"image": "photo.png"}, ValueError, "exactly one of --video"),
    ({"out": "out.avi"}, ValueError, r"out\.avi.*\.mp4, \.mov, \.mkv"),
    ({"out": ""}, ValueError, "nothing to write"),
    ({"out": "", "curve": "", "driving_video": "d.mp4", "au_track_out": "t.csv"}, ValueError, "--video needs --out"),
    ({"au_track_out": "track.txt", "curve": "", "driving_video": "d.mp4"}, ValueError, r"\.csv"),
    ({"fps": 0}, ValueError, "fps=0"),
])
def test_bad_jobs(tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        _job(tmp_path, **options)


def test_output_is_the_input(tmp_path):
    with pytest.raises(ValueError, match="is the input --video"):
        _job(tmp_path, out=str(tmp_path / "in.mp4"))


def test_bad_curve_fails_before_loading(tmp_path):
    with pytest.raises(ValueError, match="time 'later' is invalid"):
        video_job.run(_job(tmp_path, curve="0s:neutral,later:happy"), model=None, stream=None)


def _reenact_with_the_script(tmp_path, model) -> tuple[subprocess.CompletedProcess, dict]:
    """scripts/animate.py drives astronaut.png with tmp_path/drive.mp4: out.mp4 and track.csv; its summary."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(PROJECT_ROOT / "scripts" / "animate.py"), f"--model={model}",
               f"--image={PHOTOS_DIR / 'astronaut.png'}", f"--driving_video={tmp_path / 'drive.mp4'}",
               f"--out={tmp_path / 'out.mp4'}", f"--au_track_out={tmp_path / 'track.csv'}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(result.stdout)


@pytest.mark.slow
def test_script_reenacts_a_photo_and_writes_the_track(tmp_path, tiny_run_dir, astronaut):
    write_clip(tmp_path / "drive.mp4", face_clip(astronaut, 5, blank_at=(2,)), fps=8, audio_s=0.5)
    result, summary = _reenact_with_the_script(tmp_path, tiny_run_dir)
    assert summary["frames"] == 5 and summary["driving_video"]["frames_without_face"] == 1
    assert "(frames 2)" in result.stderr  # the warning names the faceless frame
    assert au_curves.read_csv(tmp_path / "track.csv").times.size == 4
    assert video_io.probe(tmp_path / "out.mp4").num_frames == 5


@pytest.mark.slow
def test_script_reenacts_with_a_saved_model_exported_with_the_critic(tmp_path, expressive_run_dir, astronaut,
                                                                     detector):
    write_clip(tmp_path / "drive.mp4", face_clip(astronaut, 5, blank_at=(2,)), fps=8)
    export = saved_model.export_from_workdir(expressive_run_dir, tmp_path / "models")
    _, summary = _reenact_with_the_script(tmp_path, export)
    assert summary["model"] == f"saved_model {export}"
    assert summary["frames"] == 5 and summary["driving_video"]["frames_without_face"] == 1
    assert video_io.probe(tmp_path / "out.mp4").num_frames == 5
    # The exported critic's track is the run folder's, frame by frame (the CSV keeps 3 decimals of 0..5).
    job = video_job.VideoJob(model=str(expressive_run_dir), driving_video=str(tmp_path / "drive.mp4"),
                             au_track_out=str(tmp_path / "expected.csv"),
                             edit=video_edit.VideoEditConfig(tracker=video_job.tracker_config(1, 2.0)))
    video_job.run(job, detector=detector, stream=None)
    exported, expected = au_curves.read_csv(tmp_path / "track.csv"), au_curves.read_csv(tmp_path / "expected.csv")
    np.testing.assert_array_equal(exported.times, expected.times)
    assert ((exported.aus > 0.05) & (exported.aus < 0.95)).any()  # estimates, not only clipped zeros
    np.testing.assert_allclose(exported.aus, expected.aus, atol=2e-4)


@pytest.mark.slow
def test_a_killed_run_leaves_nothing_under_the_output_name(tmp_path, tiny_run_dir, astronaut):
    import signal
    import time

    write_clip(tmp_path / "in.mp4", face_clip(astronaut, 60, blank_at=()), fps=10)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "animate.py"), f"--model={tiny_run_dir}",
         f"--video={tmp_path / 'in.mp4'}", "--expression=happy", f"--out={tmp_path / 'out.mp4'}", "--batch_size=1",
         "--detect_every=20"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob(".out.mp4.*.tmp")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it started writing"
        process.send_signal(signal.SIGKILL)  # no handler, no cleanup: as a crash or an out-of-memory kill
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not (tmp_path / "out.mp4").exists()
    assert [path.name for path in tmp_path.glob(".out.mp4.*.tmp")]  # the partial file is hidden, not under --out
