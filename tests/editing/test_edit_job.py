"""Tests for tf_ganimation/editing/edit_job.py and scripts/animate.py.

A tiny untrained generator on the shared photos.
"""

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core import action_units, image_files
from tf_ganimation.editing import contact_sheet
from tf_ganimation.editing.edit_job import EditJob, run
from tf_ganimation.editing.editor import Editor
from tf_ganimation.export import backends
from tf_ganimation.faces import blending

from conftest import ASTRONAUT_BOX, PHOTOS_DIR, PROJECT_ROOT, shared_photo
from conftest import TINY_MODEL as TINY

SIZE = TINY.image_size  # 32 px, 8 filters, 1 residual block


@pytest.fixture(scope="module")
def model(tiny_run_dir):
    return backends.load_edit_model(tiny_run_dir)


@pytest.fixture(scope="module")
def astronaut_crops(model, detector, astronaut):
    return Editor(model, detector=detector).find_faces(astronaut, "astronaut.png")


# === Photos as users have them ===


def _run(tmp_path, model, detector, image, **options):
    job = EditJob(model="unused", image=str(image), expression="happy", out=str(tmp_path / "out.png"), **options)
    summary = run(job, model=model, detector=detector)
    return summary, np.asarray(Image.open(tmp_path / "out.png"))


def test_exif_rotated_photo_is_edited_upright(tmp_path, model, detector, astronaut, astronaut_crops):
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored turned 90 degrees clockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(astronaut))).save(tmp_path / "rotated.png", exif=exif.tobytes())
    summary, out = _run(tmp_path, model, detector, tmp_path / "rotated.png")
    assert len(summary["faces"]) == 1 and summary["photo"] == [512, 512]
    np.testing.assert_allclose(summary["faces"][0]["box"], ASTRONAUT_BOX, atol=2)
    region = blending.face_region(astronaut_crops[0].transform, 512, 512)
    np.testing.assert_array_equal(out[~region], astronaut[~region])


def test_decompression_bomb_is_refused_before_decoding(tmp_path, model):
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)  # claims 900 MP in ~60 bytes
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                        + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    job = EditJob(model="unused", image=str(tmp_path / "bomb.png"), expression="happy", out=str(tmp_path / "out.png"))
    with pytest.raises(image_files.PhotoError, match=r"bomb\.png.*900,000,000 pixels"):
        run(job, model=model)
    assert not (tmp_path / "out.png").exists()


# === Outputs ===


def test_run_writes_the_photo_animation_and_sheet(tmp_path, model, detector, astronaut):
    shared_photo("astronaut.png")
    job = EditJob(model="unused", image=str(PHOTOS_DIR / "astronaut.png"), expression="neutral,happy",
                  out=str(tmp_path / "edit.jpg"), gif=str(tmp_path / "anim.gif"),
                  sheet=str(tmp_path / "sheet.png"), frames=4, animation_max_side=256)
    summary = run(job, model=model, detector=detector)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["written"] == {"out": job.out, "gif": job.gif, "sheet": job.sheet}
    assert summary["start_aus_source"] == "estimated by the critic"
    assert summary["target_aus"][1] == {"AU06": 0.8, "AU12": 1.0}
    with Image.open(job.gif) as gif:
        # 1000 / 12 fps = 83 ms, which GIF stores in 1/100 s.
        assert gif.n_frames == 4 and gif.size == (256, 256) and gif.info["duration"] == 80
    with Image.open(job.out) as out:
        assert out.format == "JPEG" and out.size == (512, 512)
    assert Image.open(job.sheet).size == (contact_sheet.SHEET_LABEL_WIDTH + 5 * SIZE,
                                          contact_sheet.SHEET_HEADER + 18 * SIZE)
    assert sorted(os.listdir(tmp_path)) == ["anim.gif", "edit.jpg", "sheet.png"]  # no temporary files left


def test_run_starts_from_start_and_loads_the_model(tmp_path, tiny_run_dir, detector, astronaut):
    shared_photo("astronaut.png")
    job = EditJob(model=str(tiny_run_dir), image=str(PHOTOS_DIR / "astronaut.png"), aus="AU12=1", start="sad",
                  gif=str(tmp_path / "anim.webp"), frames=3, animation_max_side=0)
    summary = run(job, detector=detector)
    assert summary["model"].startswith("workdir ") and summary["image_size"] == SIZE
    assert summary["start_aus_source"] == "--start sad"
    assert summary["start_aus"] == {"face_0": {"AU01": 0.8, "AU04": 0.6, "AU15": 0.8}}  # the sad preset
    assert summary["target_aus"] == [{"AU12": 1.0}]
    assert summary["written"] == {"gif": job.gif} and summary["frames"] == 3
    with Image.open(job.gif) as webp:
        assert webp.format == "WEBP" and webp.n_frames == 3 and webp.size == (512, 512)


# === The job ===


@pytest.mark.parametrize("options, message", [
    (dict(expression="happy", aus="AU12=1"), "exactly one of --expression"),
    (dict(), "exactly one of --expression"),
    (dict(expression="happy", out=""), "nothing to write"),
    (dict(expression="happy", out="edit.bmp"), r"--out 'edit.bmp'.*\.jpg, \.jpeg, \.png, \.webp"),
    (dict(expression="happy", gif="anim.mp4"), r"--gif 'anim.mp4'.*\.gif, \.webp"),
    (dict(expression="happy", out="photo.png"), "is the input photo"),
    (dict(expression="happy", gif="a.gif", frames=0), "frames=0"),
    (dict(expression="happy", gif="a.gif", fps=60.0), "fps=60.0"),
])
def test_edit_job_errors(options, message):
    options = {"out": "edit.png", **options}
    with pytest.raises(ValueError, match=message):
        EditJob(model="run", image="photo.png", **options)


def test_edit_job_targets():
    job = EditJob(model="run", image="p.png", expression="neutral,happy,surprise", out="o.png")
    assert job.targets().shape == (3, 17)
    job = EditJob(model="run", image="p.png", aus="AU12=1,AU06=0.5", out="o.png")
    np.testing.assert_array_equal(job.targets()[0], action_units.parse_aus("AU12=1,AU06=0.5"))


@pytest.mark.slow
def test_script_edits_and_exits_2_without_a_face(tmp_path, tiny_run_dir):
    shared_photo("chelsea.png")
    script = str(PROJECT_ROOT / "scripts" / "animate.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, script, f"--model={tiny_run_dir}", f"--image={PHOTOS_DIR / 'chelsea.png'}",
                             "--expression=happy", f"--out={tmp_path / 'out.png'}"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "error: no face found in" in message and "chelsea.png" in message and "--whole_image" in message
    assert "Traceback" not in result.stderr and not (tmp_path / "out.png").exists()
