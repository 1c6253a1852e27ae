"""Tests for tf_ganimation/core/image_files.py: every photo and training image made here (or read from the
shared photos), all tiny."""

import io
import pathlib
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core import image_files

PHOTOS_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "photos"


def _pattern(height: int = 24, width: int = 40) -> np.ndarray:
    """uint8 [height, width, 3]: R = 6 * column, G = 10 * row, B = 200; hand-checkable values."""
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([6 * columns, 10 * rows, np.full_like(rows, 200)], axis=-1).astype(np.uint8)


def _png(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A PNG file from its parts (raw = scanlines, each prefixed by filter byte 0)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def _save(tmp_path, name: str, image: Image.Image, **options) -> pathlib.Path:
    path = tmp_path / name
    image.save(path, **options)
    return path


def test_png_rgb_is_read_exactly(tmp_path):
    path = _save(tmp_path, "rgb.png", Image.fromarray(_pattern()))
    photo = image_files.read_photo(path)
    assert photo.dtype == np.uint8 and photo.shape == (24, 40, 3)
    np.testing.assert_array_equal(photo, _pattern())
    assert photo[5, 7].tolist() == [42, 50, 200]


def test_shared_astronaut_png(tmp_path):
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared test photos not found at {PHOTOS_DIR}")
    photo = image_files.read_photo(PHOTOS_DIR / "astronaut.png")
    assert photo.dtype == np.uint8 and photo.shape == (512, 512, 3)


def test_webp_lossless_and_jpeg(tmp_path):
    webp = image_files.read_photo(_save(tmp_path, "a.webp", Image.fromarray(_pattern()), lossless=True))
    np.testing.assert_array_equal(webp, _pattern())
    jpeg = image_files.read_photo(_save(tmp_path, "a.jpg", Image.fromarray(_pattern()), quality=95))
    assert jpeg.shape == (24, 40, 3)
    assert np.abs(jpeg.astype(int) - _pattern()).mean() < 4


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((30, 60, 3), np.uint8)
    stored[:10, :20] = 255  # a white block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: display = stored rotated 90 degrees clockwise
    path = _save(tmp_path, "rotated.jpg", Image.fromarray(stored), quality=95, exif=exif.tobytes())
    photo = image_files.read_photo(path)
    assert photo.shape == (60, 30, 3)
    # Clockwise rotation moves the top-left corner to the top-right.
    assert photo[:20, -10:].mean() > 240 and photo[-20:, :10].mean() < 15
    np.testing.assert_allclose(photo, np.rot90(stored, k=-1), atol=40)


def test_grayscale_palette_and_cmyk_become_rgb(tmp_path):
    gray = np.arange(24 * 40, dtype=np.uint16).reshape(24, 40) % 256
    photo = image_files.read_photo(_save(tmp_path, "gray.png", Image.fromarray(gray.astype(np.uint8))))
    assert photo.shape == (24, 40, 3)
    np.testing.assert_array_equal(photo, np.repeat(gray[:, :, None], 3, axis=2))

    palette = Image.fromarray(_pattern()).quantize(colors=16)
    photo = image_files.read_photo(_save(tmp_path, "palette.png", palette))
    np.testing.assert_array_equal(photo, np.asarray(palette.convert("RGB")))

    cmyk_image = Image.fromarray(_pattern()).convert("CMYK")
    cmyk = image_files.read_photo(_save(tmp_path, "cmyk.jpg", cmyk_image, quality=95))
    assert cmyk.shape == (24, 40, 3)
    assert np.abs(cmyk.astype(int) - _pattern()).mean() < 6


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 1000, 128]], dtype=np.uint16)
    path = _save(tmp_path, "gray16.png", Image.fromarray(values))
    assert Image.open(path).mode == "I;16"  # the mode whose convert("RGB") would clip at 255
    photo = image_files.read_photo(path)
    assert photo[:, :, 0].tolist() == [[0, 1, 128], [255, 4, 0]]  # round(v / 257)
    assert (photo[:, :, 0] == photo[:, :, 2]).all()


def test_16_bit_rgb_png(tmp_path):
    values = np.array([[[65535, 0, 32896], [257, 25700, 51400]]], dtype=">u2")  # 1 x 2 pixels
    raw = b"".join(b"\x00" + row.tobytes() for row in values)
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png(2, 1, 16, 2, raw))
    photo = image_files.read_photo(path)
    assert photo.dtype == np.uint8 and photo.shape == (1, 2, 3)
    np.testing.assert_allclose(photo[0], np.round(values[0] / 257), atol=1)


def test_alpha_is_flattened_onto_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = [[[10, 20, 30], [100, 0, 0]], [[0, 0, 0], [50, 60, 70]]]
    rgba[..., 3] = [[255, 0], [128, 255]]
    photo = image_files.read_photo(_save(tmp_path, "rgba.png", Image.fromarray(rgba, "RGBA")))
    assert photo[0, 0].tolist() == [10, 20, 30]      # opaque: unchanged
    assert photo[0, 1].tolist() == [255, 255, 255]   # transparent: white
    assert photo[1, 0].tolist() == [127, 127, 127]   # 255 * (1 - 128/255) = 127.0
    gray_alpha = Image.fromarray(np.array([[[0, 255], [200, 0]]], np.uint8), "LA")
    photo = image_files.read_photo(_save(tmp_path, "la.png", gray_alpha))
    assert photo[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_decompression_bomb_over_pil_limit_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(30000, 30000, 8, 2, b""))  # 900 megapixels claimed, ~60 bytes on disk
    assert path.stat().st_size < 100
    with pytest.raises(image_files.PhotoError, match=r"bomb\.png.*900,000,000 pixels.*100,000,000"):
        image_files.read_photo(path)


def test_decompression_bomb_under_pil_limit_is_refused_by_ours(tmp_path):
    path = tmp_path / "large.png"
    path.write_bytes(_png(12000, 9000, 8, 2, b""))  # 108 MP: PIL only warns, our 100 MP limit refuses
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape
        with pytest.raises(image_files.PhotoError, match=r"large\.png.*12000x9000 = 108,000,000 pixels"):
            image_files.read_photo(path)


def test_explicit_pixel_limit(tmp_path):
    path = _save(tmp_path, "small.png", Image.fromarray(_pattern()))
    assert image_files.read_photo(path, max_pixels=24 * 40).shape == (24, 40, 3)
    with pytest.raises(image_files.PhotoError, match="40x24 = 960 pixels"):
        image_files.read_photo(path, max_pixels=959)
    with pytest.raises(ValueError, match="max_pixels=0"):
        image_files.read_photo(path, max_pixels=0)


def test_unreadable_files_name_the_file(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(image_files.PhotoError, match=r"notes\.jpg.*not a JPEG, PNG or WebP"):
        image_files.read_photo(text)
    gif = _save(tmp_path, "anim.gif", Image.fromarray(_pattern()))
    with pytest.raises(image_files.PhotoError, match=r"anim\.gif.*not a JPEG, PNG or WebP"):
        image_files.read_photo(gif)
    whole = io.BytesIO()
    Image.fromarray(_pattern()).save(whole, "PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole.getvalue()[:len(whole.getvalue()) // 2])
    with pytest.raises(image_files.PhotoError, match=r"truncated\.png"):
        image_files.read_photo(truncated)
    with pytest.raises(FileNotFoundError, match=r"missing\.png.*does not exist"):
        image_files.read_photo(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        image_files.read_photo(tmp_path)


# === Training images ===


def _encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def test_reasons_and_limit_are_the_words_the_data_summary_prints():
    assert (image_files.MISSING_IMAGE, image_files.EMPTY_FILE, image_files.NOT_AN_IMAGE) == (
        "missing image", "empty file", "not an image")
    assert (image_files.UNSUPPORTED_IMAGE_FORMAT, image_files.CORRUPT_IMAGE, image_files.TOO_MANY_PIXELS) == (
        "not JPEG/PNG", "truncated or corrupt image", "too many pixels (a decompression bomb?)")
    assert image_files.MAX_TRAINING_IMAGE_PIXELS == 25_000_000
    assert image_files.TRAINING_IMAGE_EXTENSIONS == (".jpg", ".jpeg", ".png")


def test_training_image_pixel_limit_is_checked_on_the_header(tmp_path):
    path = tmp_path / "claims.png"
    # 5000 x 5000 = 25,000,000 pixels claimed by ~1 KB of rows: at the limit, so decoded (and corrupt).
    path.write_bytes(_png(5000, 5000, 8, 0, b"\x00" * 1024))
    assert image_files.check_training_image(str(path)) == image_files.CORRUPT_IMAGE
    assert image_files.check_training_image(str(path), max_pixels=24_999_999) == image_files.TOO_MANY_PIXELS


def test_each_kind_of_training_image_file_gets_its_reason(tmp_path):
    image = Image.fromarray(_pattern())
    png = _encoded(image, "PNG")
    bad_crc = bytearray(png)
    bad_crc[-20] ^= 0xFF  # inside the IDAT chunk: PIL's load() would not notice, libpng does
    files = {
        "good.jpg": (_encoded(image, "JPEG"), None),
        "png_named.jpg": (png, None),
        "gray.png": (_encoded(image.convert("L"), "PNG"), None),
        "cmyk.jpg": (_encoded(image.convert("CMYK"), "JPEG"), None),
        "empty.jpg": (b"", image_files.EMPTY_FILE),
        "text.jpg": (b"id,au01\nface,1.0\n" * 20, image_files.NOT_AN_IMAGE),
        "gif.jpg": (_encoded(image, "GIF"), image_files.UNSUPPORTED_IMAGE_FORMAT),
        "bmp.png": (_encoded(image, "BMP"), image_files.UNSUPPORTED_IMAGE_FORMAT),
        "webp.png": (_encoded(image, "WEBP"), image_files.UNSUPPORTED_IMAGE_FORMAT),
        "truncated.jpg": (_encoded(image, "JPEG")[:300], image_files.CORRUPT_IMAGE),
        "truncated.png": (png[:-30], image_files.CORRUPT_IMAGE),
        "bad_crc.png": (bytes(bad_crc), image_files.CORRUPT_IMAGE),
        "bomb.png": (_png(30000, 30000, 8, 2, b""), image_files.TOO_MANY_PIXELS),  # over PIL's own limit too
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    for name, (_, reason) in files.items():
        assert image_files.check_training_image(str(tmp_path / name), image_size=16) == reason, name
    assert image_files.check_training_image(str(tmp_path / "absent.png")) == image_files.MISSING_IMAGE


def test_check_training_images_returns_only_the_unusable_ones(tmp_path):
    good, empty = tmp_path / "good.png", tmp_path / "empty.png"
    Image.fromarray(_pattern()).save(good)
    empty.write_bytes(b"")
    paths = [str(good), str(empty), str(tmp_path / "absent.jpg")]
    assert image_files.check_training_images(paths, num_threads=2) == {
        str(empty): image_files.EMPTY_FILE, str(tmp_path / "absent.jpg"): image_files.MISSING_IMAGE}
    assert image_files.check_training_images([]) == {}
