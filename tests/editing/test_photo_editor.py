"""Tests for tf_ganimation/photo_editor.py and scripts/animate.py: a tiny untrained generator on the shared photos."""

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import PHOTOS_DIR, PROJECT_ROOT
from conftest import TINY_MODEL as TINY
from PIL import Image

from tf_ganimation.core import action_units, image_files
from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.editing import photo_editor
from tf_ganimation.export import backends
from tf_ganimation.faces import detection
from tf_ganimation.model import edit_model, networks
from tf_ganimation.runs import run_folder

SIZE = TINY.image_size  # 32 px, 8 filters, 1 residual block
ASTRONAUT_BOX = (182, 64, 83, 107)  # detection.py's measurement (x, y, width, height)
HAPPY = action_units.preset("happy")


def _shared(name: str) -> np.ndarray:
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared test photos not found at {PHOTOS_DIR}")
    return image_files.read_photo(PHOTOS_DIR / name)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A training run's folder holding an untrained tiny generator and critic (32 px, 8 filters)."""
    path = tmp_path_factory.mktemp("run")
    run_folder.save_config(Config(model=TINY, data=DataConfig(image_size=SIZE)), path)
    networks.build_generator(TINY).save_weights(path / run_folder.GENERATOR_WEIGHTS)
    networks.build_critic(TINY).save_weights(path / run_folder.CRITIC_WEIGHTS)
    return path


@pytest.fixture(scope="module")
def model(run_dir):
    return backends.load_edit_model(run_dir)


@pytest.fixture(scope="module")
def detector():
    return detection.FaceDetector()


@pytest.fixture(scope="module")
def editor(model, detector):
    return photo_editor.Editor(model, detector=detector)


@pytest.fixture(scope="module")
def astronaut():
    return _shared("astronaut.png")


@pytest.fixture(scope="module")
def astronaut_crops(editor, astronaut):
    return editor.find_faces(astronaut, "astronaut.png")


def random_inputs(rng, count):
    """images float32 [count, S, S, 3] and aus [count, 17], uniform in [0, 1]."""
    return (rng.uniform(0, 1, [count, SIZE, SIZE, 3]).astype(np.float32),
            rng.uniform(0, 1, [count, 17]).astype(np.float32))


class FakeModel(edit_model.EditModel):
    """A model with chosen outputs: attention and colour constants, or "images" that encode the AUs."""

    kind, source = "fake", "<fake>"

    def __init__(self, attention: float = 0.0, color: float = 0.5, image_size: int = SIZE):
        self.image_size, self.attention, self.color = image_size, attention, color

    def _edit(self, images, aus):
        count, size = images.shape[0], self.image_size
        # images: R = the largest AU, G = its index / 16, B = 0 (hand-checkable sheet cells).
        code = np.stack([aus.max(axis=1), aus.argmax(axis=1) / 16.0, np.zeros(count)], axis=1)
        return {"images": np.broadcast_to(code[:, None, None, :], images.shape).astype(np.float32),
                "attention": np.full([count, size, size, 1], self.attention, np.float32),
                "color": np.full([count, size, size, 3], self.color, np.float32)}


# === Models ===


def test_load_model_from_a_run_folder(model):
    assert isinstance(model, edit_model.KerasEditModel) and model.kind == "workdir" and model.image_size == SIZE
    images, aus = random_inputs(np.random.default_rng(0), 3)
    outputs = model(images, aus)
    assert outputs["images"].shape == (3, SIZE, SIZE, 3) and outputs["attention"].shape == (3, SIZE, SIZE, 1)
    for key, value in outputs.items():
        assert value.dtype == np.float32 and 0.0 <= value.min() and value.max() <= 1.0, key
    # Eq. 1 on the [0, 1] scale: images = A * input + (1 - A) * C.
    composed = outputs["attention"] * images + (1 - outputs["attention"]) * outputs["color"]
    np.testing.assert_allclose(outputs["images"], composed, atol=1e-5)


def test_model_batches_give_the_same_results(model):
    model_in_slices = edit_model.KerasEditModel(model.generator, SIZE)
    model_in_slices.batch_size = 2
    rng = np.random.default_rng(1)
    images, aus = random_inputs(rng, 5)
    np.testing.assert_allclose(model_in_slices(images, aus)["images"], model(images, aus)["images"], atol=1e-5)


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*training run folder.*SavedModel.*tflite"):
        backends.load_edit_model(tmp_path / "absent")
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a .tflite model"):
        backends.load_edit_model(tmp_path / "weights.h5")
    with pytest.raises(ValueError, match="no config.json, no saved_model.pb and no version folder"):
        backends.load_edit_model(tmp_path)


def test_critic_estimates_start_aus_and_its_absence_means_neutral(run_dir, editor, astronaut_crops):
    start, source = editor.start_aus(astronaut_crops)
    assert start.shape == (1, 17) and start.dtype == np.float32 and source == "estimated by the critic"
    assert start.min() >= 0.0 and start.max() <= 1.0
    without = photo_editor.Editor(backends.load_edit_model(run_dir, with_critic=False), detector=editor.detector)
    start, source = without.start_aus(astronaut_crops)
    np.testing.assert_array_equal(start, np.zeros([1, 17]))
    assert source.startswith("neutral")


def test_saved_model_export(model, tmp_path):
    from tf_ganimation.export import saved_model
    version = saved_model.export_generator(model.generator, tmp_path / "export", model_config=TINY, warmup=False)
    rng = np.random.default_rng(2)
    images, aus = random_inputs(rng, 3)
    expected = model(images, aus)
    for path in (version, tmp_path / "export"):  # the version folder, or its base (highest version)
        loaded = backends.load_edit_model(path)
        assert loaded.kind == "saved_model" and loaded.image_size == SIZE and loaded.estimate_aus(images) is None
        for key, value in loaded(images, aus).items():
            np.testing.assert_allclose(value, expected[key], atol=1e-5)


def test_tflite_model(model, tmp_path):
    from tf_ganimation.export import tflite
    path = tmp_path / "tiny.tflite"
    tflite.convert_generator(model.generator, SIZE, path, tflite.ConversionConfig("none"))
    loaded = backends.load_edit_model(path)
    assert loaded.kind == "tflite" and loaded.image_size == SIZE
    rng = np.random.default_rng(3)
    images, aus = random_inputs(rng, 3)
    expected = model(images, aus)
    for key, value in loaded(images, aus).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-4)


# === Faces ===


def test_astronaut_one_face_cropped_at_the_models_size(astronaut_crops, astronaut):
    assert len(astronaut_crops) == 1
    crop = astronaut_crops[0]
    assert crop.crop.shape == (SIZE, SIZE, 3) and crop.crop.dtype == np.uint8
    assert crop.transform.size == SIZE and crop.feather == 0.1
    np.testing.assert_allclose(crop.face.box, ASTRONAUT_BOX, atol=2)
    expected, transform = detection.crop_face(astronaut, crop.face, SIZE)  # the crop prepare.py writes
    np.testing.assert_array_equal(crop.crop, expected)
    assert transform == crop.transform


def test_edit_changes_only_the_face_region(editor, astronaut, astronaut_crops):
    edited = editor.edit(astronaut, astronaut_crops, HAPPY)
    assert edited.shape == astronaut.shape and edited.dtype == np.uint8
    region = detection.face_region(astronaut_crops[0].transform, *astronaut.shape[:2])
    assert 5_000 < region.sum() < 40_000  # the face square, not the photo (262,144 pixels)
    np.testing.assert_array_equal(edited[~region], astronaut[~region])
    changed = np.any(edited != astronaut, axis=-1)
    assert changed.sum() > 1_000  # an untrained generator's attention is ~0.5: it changes the face


def test_paste_back_goldens(astronaut, astronaut_crops):
    keep_all = photo_editor.Editor(FakeModel(attention=1.0))
    np.testing.assert_array_equal(keep_all.edit(astronaut, astronaut_crops, HAPPY), astronaut)
    replace = photo_editor.Editor(FakeModel(attention=0.0, color=0.6)).edit(astronaut, astronaut_crops, HAPPY)
    # Pixels whose centre maps at least 10% of the crop side inside its border get the full edit (the
    # feather is 1 there): the colour map, 0.6 -> 0.2 on [-1, 1] -> 1.2 * 127.5 = 153.
    rows, columns = np.mgrid[0:512, 0:512]
    points = astronaut_crops[0].transform.to_crop(np.stack([columns + 0.5, rows + 0.5], axis=-1))
    inner = np.all((points >= 0.1 * SIZE) & (points <= 0.9 * SIZE), axis=-1)
    assert inner.sum() > 5_000
    assert np.all(replace[inner] == 153)
    assert np.all(replace[~detection.face_region(astronaut_crops[0].transform, 512, 512)] == astronaut[
        ~detection.face_region(astronaut_crops[0].transform, 512, 512)])


def test_whole_image_edits_every_pixel(astronaut):
    cat = _shared("chelsea.png")
    editor = photo_editor.Editor(FakeModel(attention=0.0, color=0.6), photo_editor.EditorConfig(whole_image=True))
    crops = editor.find_faces(cat)
    assert len(crops) == 1 and crops[0].face is None and crops[0].feather == 0.0
    # The longer side (451) fits the square; the crop is the whole photo.
    assert crops[0].transform.scale == pytest.approx(SIZE / 451)
    assert np.all(editor.edit(cat, crops, HAPPY) == 153)  # no feather: every pixel is the colour map
    half = photo_editor.Editor(FakeModel(attention=1.0), photo_editor.EditorConfig(whole_image=True))
    np.testing.assert_array_equal(half.edit(cat, half.find_faces(cat), HAPPY), cat)


@pytest.mark.parametrize("name", ["chelsea.png", "coffee.png"])
def test_no_face_suggests_whole_image(editor, name):
    photo = _shared(name)
    with pytest.raises(photo_editor.NoFaceError, match=f"no face found in '{name}'.*--whole_image"):
        editor.find_faces(photo, name)


def test_faces_all_or_largest(model, detector, astronaut):
    small = np.asarray(Image.fromarray(astronaut).resize((384, 384), Image.Resampling.LANCZOS))
    group = np.full((512, 512 + 384, 3), 255, np.uint8)
    group[:, :512], group[:384, 512:] = astronaut, small
    both = photo_editor.Editor(model, photo_editor.EditorConfig(faces="all"), detector).find_faces(group)
    largest = photo_editor.Editor(model, photo_editor.EditorConfig(faces="largest"), detector).find_faces(group)
    assert len(both) == 2 and len(largest) == 1
    assert both[0].face.area > both[1].face.area and largest[0].face == both[0].face
    edited = photo_editor.Editor(model, detector=detector).edit(group, both, HAPPY)
    region = detection.face_region(both[0].transform, 512, 896) | detection.face_region(both[1].transform, 512, 896)
    np.testing.assert_array_equal(edited[~region], group[~region])
    assert np.any(edited[:, 512:] != group[:, 512:]) and np.any(edited[:, :512] != group[:, :512])


# === Photos as users have them ===


def _run(tmp_path, model, detector, image, **options):
    job = photo_editor.EditJob(model="unused", image=str(image), expression="happy", out=str(tmp_path / "out.png"),
                          **options)
    summary = photo_editor.run(job, model=model, detector=detector)
    return summary, np.asarray(Image.open(tmp_path / "out.png"))


def test_exif_rotated_photo_is_edited_upright(tmp_path, model, detector, astronaut, astronaut_crops):
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored turned 90 degrees clockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(astronaut))).save(tmp_path / "rotated.png", exif=exif.tobytes())
    summary, out = _run(tmp_path, model, detector, tmp_path / "rotated.png")
    assert len(summary["faces"]) == 1 and summary["photo"] == [512, 512]
    np.testing.assert_allclose(summary["faces"][0]["box"], ASTRONAUT_BOX, atol=2)
    region = detection.face_region(astronaut_crops[0].transform, 512, 512)
    np.testing.assert_array_equal(out[~region], astronaut[~region])


def _edit_file(editor, path):
    photo = image_files.read_photo(path)
    crops = editor.find_faces(photo, str(path))
    edited = editor.edit(photo, crops, HAPPY)
    outside = ~detection.face_region(crops[0].transform, *photo.shape[:2])
    np.testing.assert_array_equal(edited[outside], photo[outside])
    return photo, crops, edited


def test_grayscale_photo(tmp_path, editor, astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    photo, crops, edited = _edit_file(editor, tmp_path / "gray.png")
    np.testing.assert_array_equal(photo, np.repeat(gray[..., None], 3, axis=-1))
    assert len(crops) == 1 and edited.shape == (512, 512, 3)
    np.testing.assert_allclose(crops[0].face.box, ASTRONAUT_BOX, atol=8)  # gray shifts MTCNN's box a little


def test_rgba_photo(tmp_path, editor, astronaut):
    rgba = np.concatenate([astronaut, np.full((512, 512, 1), 255, np.uint8)], axis=-1)
    rgba[400:, :100, 3] = 0  # a transparent corner: flattened onto white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    photo, crops, edited = _edit_file(editor, tmp_path / "rgba.png")
    assert len(crops) == 1 and edited.shape == (512, 512, 3)
    assert np.all(edited[400:, :100] == 255)
    np.testing.assert_array_equal(photo[:400], astronaut[:400])


def test_decompression_bomb_is_refused_before_decoding(tmp_path, model):
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)  # claims 900 MP in ~60 bytes
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                        + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    job = photo_editor.EditJob(model="unused", image=str(tmp_path / "bomb.png"), expression="happy",
                          out=str(tmp_path / "out.png"))
    with pytest.raises(image_files.PhotoError, match=r"bomb\.png.*900,000,000 pixels"):
        photo_editor.run(job, model=model)
    assert not (tmp_path / "out.png").exists()


# === Animations and sheets ===


def test_animation_frames_go_from_start_to_target(editor, astronaut, astronaut_crops):
    keyframes = np.stack([np.zeros(17, np.float32), HAPPY])[None]  # [faces, K, 17]
    frames = editor.animate(astronaut, astronaut_crops, keyframes, 5)
    assert len(frames) == 5 and all(frame.shape == astronaut.shape for frame in frames)
    first, last = editor.edit(astronaut, astronaut_crops, np.zeros(17)), editor.edit(astronaut, astronaut_crops, HAPPY)
    # Same crops, same AUs; a batch of 5 and a batch of 1 may round differently by one level.
    assert np.abs(frames[0].astype(int) - first).max() <= 1
    assert np.abs(frames[-1].astype(int) - last).max() <= 1
    assert np.any(frames[2] != frames[0]) and np.any(frames[2] != frames[-1])
    with pytest.raises(ValueError, match="num_frames=0"):
        editor.animate(astronaut, astronaut_crops, keyframes, 0)


def test_sheet_layout_and_au_sweep(astronaut, astronaut_crops):
    editor = photo_editor.Editor(FakeModel(attention=0.25, color=1.0))
    sheet = editor.sheet(astronaut_crops[0], np.zeros(17, np.float32), HAPPY)
    assert sheet.shape == (photo_editor.SHEET_HEADER + 18 * SIZE, photo_editor.SHEET_LABEL_WIDTH + 5 * SIZE, 3)

    def cell(row, column):
        top, left = photo_editor.SHEET_HEADER + row * SIZE, photo_editor.SHEET_LABEL_WIDTH + column * SIZE
        return sheet[top:top + SIZE, left:left + SIZE]

    np.testing.assert_array_equal(cell(0, 0), astronaut_crops[0].crop)
    assert np.all(cell(0, 1) == [255, 128, 0])  # the edit at happy: max AU 1.0 (AU12, index 8 -> 8/16)
    assert np.all(cell(0, 2) == 64) and np.all(cell(0, 3) == 255)  # attention 0.25 (gray), colour 1.0
    for au in range(17):
        for column, intensity in enumerate(photo_editor.SWEEP_INTENSITIES):
            expected_index = au if intensity > 0 else 0  # all zeros: argmax is AU01
            np.testing.assert_array_equal(cell(1 + au, column)[0, 0],
                                          [round(intensity * 255), round(expected_index / 16 * 255), 0])


def test_run_writes_the_photo_animation_and_sheet(tmp_path, model, detector, astronaut):
    _shared("astronaut.png")
    job = photo_editor.EditJob(model="unused", image=str(PHOTOS_DIR / "astronaut.png"), expression="neutral,happy",
                          out=str(tmp_path / "edit.jpg"), gif=str(tmp_path / "anim.gif"),
                          sheet=str(tmp_path / "sheet.png"), frames=4, animation_max_side=256)
    summary = photo_editor.run(job, model=model, detector=detector)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["written"] == {"out": job.out, "gif": job.gif, "sheet": job.sheet}
    assert summary["start_aus_source"] == "estimated by the critic"
    assert summary["target_aus"][1] == {"AU06": 0.8, "AU12": 1.0}
    with Image.open(job.gif) as gif:
        # 1000 / 12 fps = 83 ms, which GIF stores in 1/100 s.
        assert gif.n_frames == 4 and gif.size == (256, 256) and gif.info["duration"] == 80
    with Image.open(job.out) as out:
        assert out.format == "JPEG" and out.size == (512, 512)
    assert Image.open(job.sheet).size == (photo_editor.SHEET_LABEL_WIDTH + 5 * SIZE, photo_editor.SHEET_HEADER + 18 * SIZE)
    assert sorted(os.listdir(tmp_path)) == ["anim.gif", "edit.jpg", "sheet.png"]  # no temporary files left


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
        photo_editor.EditJob(model="run", image="photo.png", **options)


def test_edit_job_targets():
    job = photo_editor.EditJob(model="run", image="p.png", expression="neutral,happy,surprise", out="o.png")
    assert job.targets().shape == (3, 17)
    job = photo_editor.EditJob(model="run", image="p.png", aus="AU12=1,AU06=0.5", out="o.png")
    np.testing.assert_array_equal(job.targets()[0], action_units.parse_aus("AU12=1,AU06=0.5"))


@pytest.mark.slow
def test_script_edits_and_exits_2_without_a_face(tmp_path, run_dir):
    _shared("chelsea.png")
    script = str(PROJECT_ROOT / "scripts" / "animate.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, script, f"--model={run_dir}", f"--image={PHOTOS_DIR / 'chelsea.png'}",
                             "--expression=happy", f"--out={tmp_path / 'out.png'}"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "error: no face found in" in message and "chelsea.png" in message and "--whole_image" in message
    assert "Traceback" not in result.stderr and not (tmp_path / "out.png").exists()
