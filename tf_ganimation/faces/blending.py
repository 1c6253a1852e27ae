"""Paste-back: an edited face crop blended into the full-resolution photo it was cut from.

    photo = paste_back(photo, fake_image, transform, attention=attention)

`transform` comes from alignment.crop_face on this photo; `fake_image` is the generator's output on the
crop (float [-1, 1] or uint8) and `attention` its mask (1 keeps the photo pixel). The crop border is
feathered, and every pixel outside face_region keeps its exact value.
"""

from __future__ import annotations

import numpy as np

from tf_ganimation.core import pixels
from tf_ganimation.faces import alignment
from tf_ganimation.faces.alignment import CropTransform, pixel_centres
from tf_ganimation.faces.detection import check_photo

_BAND_ROWS = 256


def paste_back(photo: np.ndarray, edited_crop: np.ndarray, transform: CropTransform,
               attention: np.ndarray | None = None, feather: float = 0.1, out: np.ndarray | None = None) -> np.ndarray:
    """Blends an edited crop back into the photo it was cut from.

    Each photo pixel whose centre maps into the crop square gets weight
    w = feather_ramp(distance to the square's border) * (1 - attention), and becomes
    round((1 - w) * photo + w * edited); pixels with w == 0 keep their exact value. So every pixel outside
    the face region (see face_region) is unchanged bit for bit, and with attention 1 everywhere the whole
    photo comes back bit-exact: where the generator kept the input, the full-resolution original is kept
    instead of its resampled copy.

    Args:
        photo: uint8 [height, width, 3] RGB in [0, 255], the full-resolution photo.
        edited_crop: [size, size, 3], either uint8 in [0, 255] or float in [-1, 1] (the generator's
            fake_image, mapped back by (x + 1) * 127.5).
        transform: from alignment.crop_face on this photo.
        attention: optional float [size, size, 1] or [size, size] in [0, 1]; 1 keeps the photo pixel.
        feather: width of the smooth (smoothstep) fall-off inside the crop border, as a fraction of the
            crop side, in [0, 0.5]; 0 pastes a hard-edged square.
        out: where to write the result, uint8 [height, width, 3] holding the photo's pixels (the photo
            itself edits it in place: a video frame no one else holds); None makes a copy.

    Returns:
        uint8 [height, width, 3]: `out`, or a new array (the input photo is not modified).
    """
    check_photo(photo, "photo")
    size = transform.size
    edited = _edited_to_255(edited_crop, size)
    keep = np.zeros((size, size), np.float32) if attention is None else _attention_2d(attention, size)
    if not (isinstance(feather, (int, float)) and 0 <= feather <= 0.5):
        raise ValueError(f"feather={feather!r} is invalid: expected a number in [0, 0.5]")
    height, width = photo.shape[:2]
    x0, y0, x1, y1 = transform.photo_window(height, width, pad=1)
    # Shrink the crop first when a photo pixel spans 2 or more crop pixels (a face smaller than the crop).
    factor = max(1, int(transform.scale))
    layers = _box_reduce(np.concatenate([edited, 1.0 - keep[:, :, None]], axis=2), factor)
    matrix = transform.matrix()
    columns = np.arange(x0, x1) + 0.5
    if out is not None and (out.shape != photo.shape or out.dtype != np.uint8):
        raise ValueError(f"out is {out.dtype} {list(out.shape)}: expected uint8 {list(photo.shape)}")
    result = photo.copy() if out is None else out
    for band in range(y0, y1, _BAND_ROWS):  # bands bound the memory on a face filling a 100 MP photo
        rows = slice(band, min(band + _BAND_ROWS, y1))
        centres_y = np.arange(rows.start, rows.stop) + 0.5
        crop_x, crop_y = (np.add.outer((matrix[axis, 1] * centres_y + matrix[axis, 2]).astype(np.float32),
                                       (matrix[axis, 0] * columns).astype(np.float32)) for axis in (0, 1))
        weight = _feather_ramp(crop_x, crop_y, size, feather)
        if not weight.any():
            continue
        # The band's pixel centres (j + 0.5, i + 0.5) -> the layers' points (crop points / factor).
        offset = matrix[:, :2] @ np.array([x0, rows.start]) + matrix[:, 2]
        band_matrix = np.concatenate([matrix[:, :2], offset[:, None]], axis=1) / factor
        *colour, alpha = alignment.warp_bilinear(layers, band_matrix, x1 - x0, rows.stop - rows.start)
        weight *= np.clip(alpha, 0.0, 1.0, out=alpha)
        window = result[rows, x0:x1]
        for channel, edited_channel in enumerate(colour):
            # round((1 - w) * photo + w * edited): where w == 0, the photo's value exactly.
            original = window[:, :, channel].astype(np.float32)
            edited_channel -= original
            edited_channel *= weight
            edited_channel += original
            window[:, :, channel] = np.clip(np.rint(edited_channel, out=edited_channel), 0, 255, out=edited_channel)
    return result


def face_region(transform: CropTransform, height: int, width: int) -> np.ndarray:
    """bool [height, width]: pixels whose centre maps into the crop square; paste_back changes no other."""
    region = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = transform.photo_window(height, width, pad=1)
    crop_points = transform.to_crop(pixel_centres(y1 - y0, x1 - x0) + np.array([x0, y0]))
    inside = (crop_points >= 0) & (crop_points <= transform.size)
    region[y0:y1, x0:x1] = inside[..., 0] & inside[..., 1]
    return region


def _feather_ramp(crop_x: np.ndarray, crop_y: np.ndarray, size: int, feather: float) -> np.ndarray:
    """float32 [...]: 0 on and outside the crop square's border, rising smoothly to 1 at feather * size in."""
    distance = np.minimum(np.minimum(crop_x, crop_y), np.minimum(size - crop_x, size - crop_y))
    if feather == 0:
        return (distance > 0).astype(np.float32)
    ramp = np.clip(distance * np.float32(1.0 / (feather * size)), 0.0, 1.0, out=distance)
    return ramp * ramp * (3.0 - 2.0 * ramp)


def _box_reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Means of factor x factor blocks of float [h, w, c], edge-padded to a multiple of factor."""
    if factor == 1:
        return image
    height, width, channels = image.shape
    padded = np.pad(image, ((0, -height % factor), (0, -width % factor), (0, 0)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor, channels)
    return blocks.mean(axis=(1, 3))


def _edited_to_255(edited_crop, size: int) -> np.ndarray:
    edited = np.asarray(edited_crop)
    if edited.shape != (size, size, 3):
        raise ValueError(f"edited_crop has shape {list(edited.shape)}: expected [{size}, {size}, 3]")
    if edited.dtype == np.uint8:
        return edited.astype(np.float32)
    if not np.issubdtype(edited.dtype, np.floating):
        raise ValueError(f"edited_crop is {edited.dtype}: expected uint8 in [0, 255] or float in [-1, 1]")
    if not np.all(np.isfinite(edited)):
        raise ValueError("edited_crop has NaN or infinite values: expected float in [-1, 1]")
    return pixels.model_to_255(edited)


def _attention_2d(attention, size: int) -> np.ndarray:
    attention = np.asarray(attention, dtype=np.float32)
    if attention.shape == (size, size, 1):
        attention = attention[:, :, 0]
    if attention.shape != (size, size):
        raise ValueError(f"attention has shape {list(attention.shape)}: "
                         f"expected [{size}, {size}, 1] or [{size}, {size}]")
    if not np.all(np.isfinite(attention)) or attention.min() < 0 or attention.max() > 1:
        raise ValueError("attention must be finite and in [0, 1] (1 keeps the photo pixel)")
    return attention
