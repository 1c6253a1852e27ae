"""The image-file rules: which files are photos or training images, how large, how they are read.

Two kinds of image file meet in this package, each with its own extensions and pixel limit:
  * photos a person edits or prepares a dataset from (`PHOTO_EXTENSIONS`, `MAX_PIXELS`), read by
    `read_photo`: a JPEG, PNG or WebP file in, an RGB uint8 [height, width, 3] array out;
  * training images, the face crops of a dataset (`TRAINING_IMAGE_EXTENSIONS`,
    `MAX_TRAINING_IMAGE_PIXELS`), checked by `check_training_image` before TensorFlow decodes them: a
    file that is not usable gives the reason it is skipped (`EMPTY_FILE`, `CORRUPT_IMAGE`, ...).

What reading a photo safely covers:
  * only the JPEG, PNG and WebP decoders are tried (`Image.open(formats=...)`); anything else is a
    `PhotoError` naming the file;
  * the pixel count claimed by the header is checked against an explicit limit (`MAX_PIXELS`) before
    any pixel is decoded, so a tiny file claiming 30000x30000 pixels is refused, not decoded;
  * the EXIF orientation tag is applied (phones store portraits sideways and set the tag);
  * every pixel mode ends as RGB uint8: grayscale, palette, CMYK, 16-bit and images with alpha.

Notes: PIL has its own decompression-bomb guard (a warning above 89.5 MP, an error above 179 MP). Our
explicit limit (100 MP by default) decides instead: PIL's warning is silenced inside `read_photo` because
the check that follows it is ours, and PIL's error, raised while reading the header of a photo above
179 MP, becomes a `PhotoError` like ours. No PIL global (`Image.MAX_IMAGE_PIXELS`) is changed.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import warnings

import numpy as np
from absl import logging
from PIL import Image, ImageOps, UnidentifiedImageError

# Photos a person edits: the largest width * height read, checked on the header before decoding.
MAX_PIXELS = 100_000_000
FORMATS = ("JPEG", "PNG", "WEBP")
# The file names of photos (editing, dataset preparation) and the format each is written in.
PHOTO_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
# Training images are JPEG or PNG (what TFRecords carry and TensorFlow decodes).
TRAINING_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Training images are face crops (the authors' are 128x128); a 24 MP camera photo (6000x4000) still
# passes. A file claiming more is refused from its header, before any pixel is decoded: a 2 KB PNG can
# claim 30000x30000 pixels, which TensorFlow's decoder would try to allocate (2.7 GB) in every parallel
# call of the input pipeline, so this limit is lower than a photo's.
MAX_TRAINING_IMAGE_PIXELS = 25_000_000

# Reasons a training image is not usable (`check_training_image`); the data summary counts examples
# under these names.
MISSING_IMAGE = "missing image"
EMPTY_FILE = "empty file"
NOT_AN_IMAGE = "not an image"
UNSUPPORTED_IMAGE_FORMAT = "not JPEG/PNG"
CORRUPT_IMAGE = "truncated or corrupt image"
TOO_MANY_PIXELS = "too many pixels (a decompression bomb?)"

# 16-bit (and 32-bit integer) grayscale modes; PIL's convert("RGB") clips these at 255 instead of scaling.
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class PhotoError(ValueError):
    """A file that is not a JPEG, PNG or WebP photo we can decode, or one too large to decode."""


def read_photo(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Reads a photo, applying its EXIF orientation.

    Args:
        path: a JPEG, PNG or WebP file. Animated files give their first frame.
        max_pixels: refuse photos whose header claims more than this many pixels (width * height).

    Returns:
        uint8 [height, width, 3] RGB in [0, 255], height and width after the EXIF rotation. Grayscale is
        repeated on the three channels; 16-bit values v become round(v / 257); transparency is flattened
        onto white (alpha 255 leaves a pixel exactly as stored).

    Raises:
        FileNotFoundError: `path` does not exist or is not a file.
        PhotoError (a ValueError): not a JPEG/PNG/WebP image, a corrupt or truncated file, or a header
            claiming more than `max_pixels` pixels. The message names the file.
    """
    path = os.fspath(path)
    if not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels={max_pixels!r} is invalid: expected an int > 0")
    if not os.path.exists(path):
        raise FileNotFoundError(f"photo {path!r} does not exist")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"photo {path!r} is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                _check_pixel_count(path, image.size, max_pixels)
                image.load()
                image = ImageOps.exif_transpose(image)
                return _to_rgb_uint8(image)
    except PhotoError:
        raise
    except Image.DecompressionBombError as error:
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{int(claimed.group(1)):,} pixels" if claimed else "too many pixels"
        raise PhotoError(
            f"refused to decode photo {path!r}: its header claims {pixels}, over the limit of "
            f"{max_pixels:,} pixels (a decompression bomb, or a photo too large to edit; downscale it first)"
        ) from None
    except UnidentifiedImageError:
        raise PhotoError(f"{path!r} is not a JPEG, PNG or WebP image (PIL could not identify it)") from None
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, EOFError, ... on corrupt files.
        raise PhotoError(f"could not decode photo {path!r}: {type(error).__name__}: {error}") from None


def _check_pixel_count(path: str, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise PhotoError(
            f"refused to decode photo {path!r}: its header claims {width}x{height} = {width * height:,} "
            f"pixels, over the limit of {max_pixels:,} pixels (a decompression bomb, or a photo too large "
            f"to edit; downscale it first)"
        )


def _to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> uint8 [height, width, 3] RGB."""
    if image.mode in _WIDE_GRAY_MODES:
        values = np.asarray(image, dtype=np.float64)
        gray = np.round(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        alpha = rgba[:, :, 3:] / 255.0
        flattened = rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
        return np.round(flattened).astype(np.uint8)
    return np.array(image.convert("RGB"), dtype=np.uint8)


# === Training images ===


def check_training_image(path: str, image_size: int = 128,
                         max_pixels: int = MAX_TRAINING_IMAGE_PIXELS) -> str | None:
    """Opens and fully decodes one image with PIL, after checking its header's pixel count.

    What is usable is what `pipeline.preprocess_image` (TensorFlow's decoder) reads, restricted to JPEG
    and PNG (the formats TFRecords carry): whatever the file's extension (a PNG named .jpg is fine), and
    in any pixel format TensorFlow turns into RGB (grayscale, palette, alpha, CMYK JPEG, 16-bit PNG).

    Args:
        path: an image file.
        image_size: JPEGs are decoded at the smallest DCT scale that is still >= this size (draft
            mode), which keeps checking large photos fast and still reads the whole stream.
        max_pixels: the largest width * height accepted (MAX_TRAINING_IMAGE_PIXELS); checked on the header.

    Returns:
        None when it is a readable JPEG/PNG, else the reason: MISSING_IMAGE, EMPTY_FILE, NOT_AN_IMAGE,
        UNSUPPORTED_IMAGE_FORMAT (GIF, BMP, WebP...), TOO_MANY_PIXELS or CORRUPT_IMAGE (truncated, bad
        CRC, undecodable).
    """
    try:
        if os.path.getsize(path) == 0:
            return EMPTY_FILE
        with Image.open(path) as image:
            if image.format not in ("JPEG", "PNG"):
                return UNSUPPORTED_IMAGE_FORMAT
            width, height = image.size
            if width * height > max_pixels:
                return TOO_MANY_PIXELS
            if image.format == "PNG":
                image.verify()  # chunk CRCs, which libpng (TF's decoder) checks and PIL's load() does not
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (image_size, image_size))
            image.load()
    except FileNotFoundError:
        return MISSING_IMAGE
    except UnidentifiedImageError:
        return NOT_AN_IMAGE
    except Image.DecompressionBombError:  # PIL's own guard, in Image.open, above 2 x 89.5 MP
        return TOO_MANY_PIXELS
    except Exception:  # OSError (truncated), SyntaxError (bad PNG), ValueError...
        return CORRUPT_IMAGE
    return None


def check_training_images(paths: list[str], image_size: int = 128,
                          num_threads: int | None = None) -> dict[str, str]:
    """`check_training_image` over many files in a thread pool (PIL decodes without holding the GIL).

    Returns:
        {path: reason} for the files that are not usable; readable files are absent.
    """
    num_threads = num_threads or min(32, 4 * (os.cpu_count() or 1))
    if paths:
        logging.info("Checking %d images with %d threads", len(paths), num_threads)
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        reasons = pool.map(lambda path: check_training_image(path, image_size), paths, chunksize=64)
        return {path: reason for path, reason in zip(paths, reasons) if reason}
