"""Tests for tf_ganimation/editing/editor.py: a tiny untrained generator on the shared photos."""

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core import action_units, image_files
from tf_ganimation.editing.editor import Editor, EditorConfig, NoFaceError, whole_image_transform
from tf_ganimation.export import backends
from tf_ganimation.faces import alignment, blending
from tf_ganimation.model import edit_model

from conftest import ASTRONAUT_BOX, shared_photo
from conftest import TINY_MODEL as TINY

SIZE = TINY.image_size  # 32 px, 8 filters, 1 residual block
HAPPY = action_units.preset("happy")


@pytest.fixture(scope="module")
def model(tiny_run_dir):
    return backends.load_edit_model(tiny_run_dir)


@pytest.fixture(scope="module")
def editor(model, detector):
    return Editor(model, detector=detector)


@pytest.fixture(scope="module")
def astronaut_crops(editor, astronaut):
    return editor.find_faces(astronaut, "astronaut.png")


class FakeModel(edit_model.EditModel):
    """A model with chosen outputs: attention and colour constants, or "images" that encode the AUs."""

    kind, source = "fake", "<fake>"

    def __init__(self, attention: float = 0.0, color: float = 0.5, image_size: int = SIZE):
        self.image_size, self.attention, self.color = image_size, attention, color

    def _edit(self, images, aus):
        count, size = images.shape[0], self.image_size
        # images: R = the largest AU, G = its index / 16, B = 0 (hand-checkable cells).
        code = np.stack([aus.max(axis=1), aus.argmax(axis=1) / 16.0, np.zeros(count)], axis=1)
        return {"images": np.broadcast_to(code[:, None, None, :], images.shape).astype(np.float32),
                "attention": np.full([count, size, size, 1], self.attention, np.float32),
                "color": np.full([count, size, size, 3], self.color, np.float32)}


# === Configuration ===


@pytest.mark.parametrize("options, message", [
    (dict(faces="some"), r"faces='some' is invalid.*\('all', 'largest'\)"),
    (dict(feather=0.6), r"feather=0.6 is invalid.*\[0, 0.5\]"),
    (dict(feather="0.1"), r"feather='0.1' is invalid"),
])
def test_editor_config_errors(options, message):
    with pytest.raises(ValueError, match=message):
        EditorConfig(**options)


def test_whole_image_transform_fits_the_longer_side():
    transform = whole_image_transform(300, 600, 32)  # a landscape photo: its width fits the square
    assert transform.center == (300.0, 150.0) and transform.angle == 0.0
    assert transform.scale == pytest.approx(32 / 600) and transform.size == 32
    corners = transform.to_crop(np.array([[0.0, 150.0], [600.0, 150.0], [300.0, 0.0]]))
    np.testing.assert_allclose(corners, [[0, 16], [32, 16], [16, 8]], atol=1e-9)


# === Start AUs ===


def test_critic_estimates_start_aus_and_its_absence_means_neutral(tiny_run_dir, editor, astronaut_crops):
    start, source = editor.start_aus(astronaut_crops)
    assert start.shape == (1, 17) and start.dtype == np.float32 and source == "estimated by the critic"
    assert start.min() >= 0.0 and start.max() <= 1.0
    without = Editor(backends.load_edit_model(tiny_run_dir, with_critic=False), detector=editor.detector)
    start, source = without.start_aus(astronaut_crops)
    np.testing.assert_array_equal(start, np.zeros([1, 17]))
    assert source.startswith("neutral")


# === Faces ===


def test_astronaut_one_face_cropped_at_the_models_size(astronaut_crops, astronaut):
    assert len(astronaut_crops) == 1
    crop = astronaut_crops[0]
    assert crop.crop.shape == (SIZE, SIZE, 3) and crop.crop.dtype == np.uint8
    assert crop.transform.size == SIZE and crop.feather == 0.1
    np.testing.assert_allclose(crop.face.box, ASTRONAUT_BOX, atol=2)
    expected, transform = alignment.crop_face(astronaut, crop.face, SIZE)  # the crop prepare.py writes
    np.testing.assert_array_equal(crop.crop, expected)
    assert transform == crop.transform


def test_edit_changes_only_the_face_region(editor, astronaut, astronaut_crops):
    edited = editor.edit(astronaut, astronaut_crops, HAPPY)
    assert edited.shape == astronaut.shape and edited.dtype == np.uint8
    region = blending.face_region(astronaut_crops[0].transform, *astronaut.shape[:2])
    assert 5_000 < region.sum() < 40_000  # the face square, not the photo (262,144 pixels)
    np.testing.assert_array_equal(edited[~region], astronaut[~region])
    changed = np.any(edited != astronaut, axis=-1)
    assert changed.sum() > 1_000  # an untrained generator's attention is ~0.5: it changes the face


def test_paste_back_goldens(astronaut, astronaut_crops):
    keep_all = Editor(FakeModel(attention=1.0))
    np.testing.assert_array_equal(keep_all.edit(astronaut, astronaut_crops, HAPPY), astronaut)
    replace = Editor(FakeModel(attention=0.0, color=0.6)).edit(astronaut, astronaut_crops, HAPPY)
    # Pixels whose centre maps at least 10% of the crop side inside its border get the full edit (the
    # feather is 1 there): the colour map, 0.6 -> 0.2 on [-1, 1] -> 1.2 * 127.5 = 153.
    rows, columns = np.mgrid[0:512, 0:512]
    points = astronaut_crops[0].transform.to_crop(np.stack([columns + 0.5, rows + 0.5], axis=-1))
    inner = np.all((points >= 0.1 * SIZE) & (points <= 0.9 * SIZE), axis=-1)
    assert inner.sum() > 5_000
    assert np.all(replace[inner] == 153)
    assert np.all(replace[~blending.face_region(astronaut_crops[0].transform, 512, 512)] == astronaut[
        ~blending.face_region(astronaut_crops[0].transform, 512, 512)])


def test_whole_image_edits_every_pixel(astronaut):
    cat = shared_photo("chelsea.png")
    editor = Editor(FakeModel(attention=0.0, color=0.6), EditorConfig(whole_image=True))
    crops = editor.find_faces(cat)
    assert len(crops) == 1 and crops[0].face is None and crops[0].feather == 0.0
    # The longer side (451) fits the square; the crop is the whole photo.
    assert crops[0].transform.scale == pytest.approx(SIZE / 451)
    assert np.all(editor.edit(cat, crops, HAPPY) == 153)  # no feather: every pixel is the colour map
    half = Editor(FakeModel(attention=1.0), EditorConfig(whole_image=True))
    np.testing.assert_array_equal(half.edit(cat, half.find_faces(cat), HAPPY), cat)


@pytest.mark.parametrize("name", ["chelsea.png", "coffee.png"])
def test_no_face_suggests_whole_image(editor, name):
    photo = shared_photo(name)
    with pytest.raises(NoFaceError, match=f"no face found in '{name}'.*--whole_image"):
        editor.find_faces(photo, name)


def test_faces_all_or_largest(model, detector, astronaut):
    small = np.asarray(Image.fromarray(astronaut).resize((384, 384), Image.Resampling.LANCZOS))
    group = np.full((512, 512 + 384, 3), 255, np.uint8)
    group[:, :512], group[:384, 512:] = astronaut, small
    both = Editor(model, EditorConfig(faces="all"), detector).find_faces(group)
    largest = Editor(model, EditorConfig(faces="largest"), detector).find_faces(group)
    assert len(both) == 2 and len(largest) == 1
    assert both[0].face.area > both[1].face.area and largest[0].face == both[0].face
    edited = Editor(model, detector=detector).edit(group, both, HAPPY)
    region = blending.face_region(both[0].transform, 512, 896) | blending.face_region(both[1].transform, 512, 896)
    np.testing.assert_array_equal(edited[~region], group[~region])
    assert np.any(edited[:, 512:] != group[:, 512:]) and np.any(edited[:, :512] != group[:, :512])


# === AUs ===


def test_edit_crops_shapes_and_au_errors(astronaut_crops):
    editor = Editor(FakeModel(attention=0.25))
    outputs = editor.edit_crops(astronaut_crops, np.zeros([1, 3, 17], np.float32))  # [F, T, 17]
    assert outputs["images"].shape == (1, 3, SIZE, SIZE, 3) and outputs["attention"].shape == (1, 3, SIZE, SIZE, 1)
    with pytest.raises(ValueError, match=r"aus for 2 faces, but 1 faces were given"):
        editor.edit_crops(astronaut_crops, np.zeros([2, 17], np.float32))
    with pytest.raises(ValueError, match=r"AUs of shape \[16\]: expected \[\.\.\., 17\]"):
        editor.edit(np.zeros([64, 64, 3], np.uint8), astronaut_crops, np.zeros(16))
    with pytest.raises(ValueError, match=r"finite numbers in \[0, 1\]"):
        editor.edit(np.zeros([64, 64, 3], np.uint8), astronaut_crops, np.full(17, 1.5))
    with pytest.raises(ValueError, match=r"keyframes of shape \[2, 17\]: expected \[1, K, 17\]"):
        editor.animate(np.zeros([64, 64, 3], np.uint8), astronaut_crops, np.zeros([2, 17]), 3)


# === Photos as users have them ===


def _edit_file(editor, path):
    photo = image_files.read_photo(path)
    crops = editor.find_faces(photo, str(path))
    edited = editor.edit(photo, crops, HAPPY)
    outside = ~blending.face_region(crops[0].transform, *photo.shape[:2])
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


# === Animations ===


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
