"""Reading photos safely: a JPEG, PNG or WebP file in, an RGB uint8 [height, width, 3] array out.

What "safely" covers:
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

import os
import re
import warnings

import numpy as np
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
