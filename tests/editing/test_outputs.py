"""Tests for tf_ganimation/editing/outputs.py: photos and animations written, read back."""

import os

import numpy as np
import pytest
from PIL import Image, ImageSequence

from tf_ganimation.editing import outputs


def _photo(height=60, width=80, seed=0):
    return np.random.default_rng(seed).integers(0, 256, [height, width, 3], dtype=np.uint8)


@pytest.mark.parametrize("name, image_format", [("edit.png", "PNG"), ("edit.webp", "WEBP")])
def test_lossless_photos_read_back_exactly(tmp_path, name, image_format):
    photo = _photo()
    written = outputs.write_photo(photo, str(tmp_path / "new" / name))  # the folder is made
    assert written == tmp_path / "new" / name
    with Image.open(written) as image:
        assert image.format == image_format
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), photo)
    assert os.listdir(tmp_path / "new") == [name]  # no temporary file left


@pytest.mark.parametrize("name", ["edit.jpg", "EDIT.JPEG"])
def test_jpeg_photos_keep_full_colour_resolution(tmp_path, name):
    photo = np.zeros([64, 64, 3], np.uint8)
    photo[:, ::2] = [255, 0, 0]  # one-pixel red stripes: 4:2:0 subsampling would smear them to pink
    outputs.write_photo(photo, str(tmp_path / name))
    with Image.open(tmp_path / name) as image:
        assert image.format == "JPEG" and image.size == (64, 64)
        read = np.asarray(image.convert("RGB")).astype(int)
    assert np.abs(read - photo).mean() < 20


def _frames(count=5, size=(120, 160)):
    """A still background with one square that brightens frame by frame."""
    background = _photo(*size, seed=1)
    frames = []
    for index in range(count):
        frame = background.copy()
        frame[40:80, 60:100] = 40 * index
        frames.append(frame)
    return frames


def test_gif_downscaled_with_one_palette_and_a_still_background(tmp_path):
    path = tmp_path / "anim.gif"
    outputs.write_animation(_frames(), str(path), fps=12.0, max_side=80)
    with Image.open(path) as gif:
        # 1000 / 12 fps = 83 ms, which GIF stores in 1/100 s; the longer side 160 -> 80.
        assert gif.n_frames == 5 and gif.size == (80, 60) and gif.info["duration"] == 80 and gif.info["loop"] == 0
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
    # One shared palette, no dithering: the background is the same in every frame.
    still = np.ones((60, 80), bool)
    still[15:45, 25:55] = False  # the moving square (40..80 x 60..100 at half size) and Lanczos's reach
    for frame in frames[1:]:
        np.testing.assert_array_equal(frame[still], frames[0][still])
    assert not np.array_equal(frames[0][30, 40], frames[-1][30, 40])


def test_webp_animation_at_full_size_and_the_shortest_gif_delay(tmp_path):
    outputs.write_animation(_frames(3), str(tmp_path / "anim.webp"), fps=10.0, max_side=0)
    with Image.open(tmp_path / "anim.webp") as webp:
        assert webp.format == "WEBP" and webp.n_frames == 3 and webp.size == (160, 120)
    outputs.write_animation(_frames(2), str(tmp_path / "fast.gif"), fps=50.0, max_side=0)
    with Image.open(tmp_path / "fast.gif") as gif:
        assert gif.info["duration"] == 20  # 1000 / 50 fps = 20 ms, the shortest delay browsers keep
    assert sorted(os.listdir(tmp_path)) == ["anim.webp", "fast.gif"]


def test_shared_palette_is_one_palette_without_dithering():
    images = [Image.fromarray(frame) for frame in _frames(4)]
    quantized = outputs.shared_palette(images)
    assert [image.mode for image in quantized] == ["P"] * 4
    palettes = {bytes(image.getpalette()) for image in quantized}
    assert len(palettes) == 1
    indices = [np.asarray(image) for image in quantized]
    still = np.ones((120, 160), bool)
    still[40:80, 60:100] = False
    for frame in indices[1:]:
        np.testing.assert_array_equal(frame[still], indices[0][still])
