"""The aligned face crop: a square around a detected face, eyes level, at the generator's size.

    crop, transform = crop_face(photo, face, size=128)   # face from detection.FaceDetector.detect

`transform` (a CropTransform) is the photo -> crop similarity; blending.paste_back uses it to put an
edited crop back. Coordinates are continuous (x, y) = (column, row): pixel (row i, column j) covers
[j, j + 1) x [i, i + 1) and its centre is (j + 0.5, i + 0.5).

Notes: the paper's faces were cropped to 128x128 without rotation; we also rotate the crop so the eyes
are level, which keeps the face in the pose the generator saw most often in training.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

from tf_ganimation.faces.detection import KEYPOINT_NAMES, Face, check_photo

# The crop's margin around a face, as a fraction of its extent (align_face). The editor (animate.py) and
# the dataset builder (prepare.py) both crop with it, so a model sees at run time the crops it trained on.
CROP_MARGIN = 0.1


@dataclasses.dataclass(frozen=True)
class CropTransform:
    """The similarity that maps photo pixels to crop pixels.

    crop_xy = scale * R(-angle) @ (photo_xy - center) + (size / 2, size / 2)

    Attributes:
        center: (x, y) photo point that lands at the centre of the crop.
        angle: the eye line's angle in the photo, radians (positive = turned clockwise on screen,
            since y points down); the crop undoes it so the eyes are level.
        scale: crop pixels per photo pixel (> 1 when the face is smaller than the crop).
        size: the crop's side in pixels.
    """

    center: tuple[float, float]
    angle: float
    scale: float
    size: int

    def __post_init__(self):
        if not (isinstance(self.size, int) and self.size > 0):
            raise ValueError(f"size={self.size!r} is invalid: expected an int > 0")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale={self.scale!r} is invalid: expected a finite number > 0")
        if not (math.isfinite(self.angle) and all(math.isfinite(value) for value in self.center)):
            raise ValueError(
                f"angle={self.angle!r}, center={self.center!r} are invalid: expected finite numbers")

    def matrix(self) -> np.ndarray:
        """float64 [2, 3]: photo (x, y, 1) -> crop (x, y)."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        linear = self.scale * np.array([[cos, sin], [-sin, cos]])
        offset = np.full(2, self.size / 2.0) - linear @ np.asarray(self.center)
        return np.concatenate([linear, offset[:, None]], axis=1)

    def inverse_matrix(self) -> np.ndarray:
        """float64 [2, 3]: crop (x, y, 1) -> photo (x, y)."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        linear = np.array([[cos, -sin], [sin, cos]]) / self.scale
        offset = np.asarray(self.center) - linear @ np.full(2, self.size / 2.0)
        return np.concatenate([linear, offset[:, None]], axis=1)

    def to_crop(self, points) -> np.ndarray:
        """Photo points float [..., 2] (x, y) -> crop points float64 [..., 2]."""
        return _apply(self.matrix(), points)

    def to_photo(self, points) -> np.ndarray:
        """Crop points float [..., 2] (x, y) -> photo points float64 [..., 2]."""
        return _apply(self.inverse_matrix(), points)

    def photo_window(self, height: int, width: int, pad: int) -> tuple[int, int, int, int]:
        """Pixel range [x0, x1) x [y0, y1) of a height x width photo covering the crop square plus `pad`
        pixels on each side, clipped to the photo and never empty."""
        return _bounding_pixels(self.to_photo(_square_corners(self.size)), height, width, pad)

    def to_dict(self) -> dict:
        return {"center": [float(value) for value in self.center], "angle": float(self.angle),
                "scale": float(self.scale), "size": int(self.size)}

    @classmethod
    def from_dict(cls, record: dict) -> CropTransform:
        return cls(center=tuple(float(value) for value in record["center"]), angle=float(record["angle"]),
                   scale=float(record["scale"]), size=int(record["size"]))


def _apply(matrix: np.ndarray, points) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(face: Face, size: int = 128, margin: float = CROP_MARGIN) -> CropTransform:
    """The square around a face, eyes level, as a photo -> crop similarity.

    The face's extent is the largest of 2.5x the eye distance, 2.8x the eyes-to-mouth distance (both
    roll-invariant; the first shrinks when the head turns, the second when it nods) and the geometric
    mean of the box's sides; the crop adds `margin` of that on every side, and is centred half-way
    between the eyes' and the mouth corners' midpoints. On a frontal face (astronaut.png) this spans the
    eyebrows to below the chin and cheek to cheek, like the paper's 128x128 training crops.

    Args:
        face: a detected face.
        size: side of the crop in pixels, > 0.
        margin: extra space on each side, as a fraction of the face's extent, >= 0.

    Returns:
        The transform; `crop_face` samples the photo with it.
    """
    if not (isinstance(size, int) and size > 0):
        raise ValueError(f"size={size!r} is invalid: expected an int > 0")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin={margin!r} is invalid: expected a number >= 0")
    points = {name: np.asarray(face.keypoints[name], dtype=np.float64) for name in KEYPOINT_NAMES}
    eye_line = points["right_eye"] - points["left_eye"]
    eye_center = (points["left_eye"] + points["right_eye"]) / 2
    mouth_center = (points["mouth_left"] + points["mouth_right"]) / 2
    extent = max(2.5 * np.linalg.norm(eye_line), 2.8 * np.linalg.norm(mouth_center - eye_center),
                 math.sqrt(max(face.box[2], 0.0) * max(face.box[3], 0.0)))
    if not (math.isfinite(extent) and extent > 0):
        raise ValueError(f"face {face.to_dict()} has no extent: its keypoints and box are degenerate")
    center = (eye_center + mouth_center) / 2
    return CropTransform(center=(float(center[0]), float(center[1])),
                         angle=float(math.atan2(eye_line[1], eye_line[0])),
                         scale=float(size / (extent * (1 + 2 * margin))), size=size)


def crop_face(photo: np.ndarray, face: Face, size: int = 128,
              margin: float = CROP_MARGIN) -> tuple[np.ndarray, CropTransform]:
    """Cuts the aligned face square out of a photo: align_face, then crop_photo.

    Args:
        photo: uint8 [height, width, 3] RGB in [0, 255].
        face: a face of this photo (from detection.FaceDetector.detect).
        size: side of the crop in pixels (the generator's image_size, e.g. 128).
        margin: see align_face.

    Returns:
        crop: uint8 [size, size, 3] RGB in [0, 255] (see crop_photo).
        transform: the photo -> crop similarity, for blending.paste_back.
    """
    check_photo(photo, "photo")
    transform = align_face(face, size, margin)
    return crop_photo(photo, transform), transform


def crop_photo(photo: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Samples the crop square of a transform out of a photo.

    Args:
        photo: uint8 [height, width, 3] RGB in [0, 255].
        transform: photo -> crop similarity (from align_face).

    Returns:
        uint8 [size, size, 3] RGB in [0, 255]: crop pixel centres mapped into the photo and sampled
        bilinearly; where the square leaves the photo, the nearest edge pixels are repeated. When a crop
        pixel spans 2 or more photo pixels (a large face), the photo is first box-filtered by that whole
        factor, so the crop does not alias.
    """
    check_photo(photo, "photo")
    size = transform.size
    height, width = photo.shape[:2]
    factor = max(1, int(1.0 / transform.scale))
    x0, y0, x1, y1 = transform.photo_window(height, width, pad=2 * factor)
    region = photo[y0:y1, x0:x1]
    if factor >= 2:
        region = np.asarray(Image.fromarray(region).reduce(factor))
    source = (transform.to_photo(pixel_centres(size, size)) - np.array([x0, y0])) / factor
    crop = sample_bilinear(region.astype(np.float32), source[..., 0], source[..., 1])
    return np.clip(np.round(crop), 0, 255).astype(np.uint8)


# === Sampling ===


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of float [h, w, c] at continuous points x, y [...]; edges repeat outside."""
    height, width = image.shape[:2]
    column, row = x - 0.5, y - 0.5
    column0, row0 = np.floor(column), np.floor(row)
    weight_x = (column - column0)[..., None].astype(np.float32)
    weight_y = (row - row0)[..., None].astype(np.float32)
    left = np.clip(column0, 0, width - 1).astype(np.intp)
    right = np.clip(column0 + 1, 0, width - 1).astype(np.intp)
    top = np.clip(row0, 0, height - 1).astype(np.intp) * width
    bottom = np.clip(row0 + 1, 0, height - 1).astype(np.intp) * width
    # Gathers from the flattened image: the same values as image[rows, columns], 1.4x faster (BENCHMARKS.md, Video).
    flat = image.reshape(height * width, *image.shape[2:])
    keep_x = 1 - weight_x
    upper = flat.take(top + left, axis=0) * keep_x + flat.take(top + right, axis=0) * weight_x
    lower = flat.take(bottom + left, axis=0) * keep_x + flat.take(bottom + right, axis=0) * weight_x
    return upper * (1 - weight_y) + lower * weight_y


def warp_bilinear(image: np.ndarray, matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    """An affine resampling of float [h, w, c]: the output pixel centres mapped into the image, bilinear.

    Output pixel (row i, column j) is the bilinear sample at matrix @ (j + 0.5, i + 0.5, 1): the values
    of sample_bilinear wherever that point lies in [0, w) x [0, h) (edges repeat within half a pixel of
    the border), and 0 where it lies outside.

    Args:
        image: float [h, w, c].
        matrix: float [2, 3], output (x, y, 1) -> image (x, y).
        width, height: the output's size.

    Returns:
        float32 [c, height, width]: one plane per channel (channels first).

    Notes: Pillow's affine transform of 32-bit float images, one channel at a time (a C loop that
    releases the GIL): the values of sample_bilinear at the mapped points to float32 rounding, 3x faster
    (BENCHMARKS.md, Video).
    """
    image = np.asarray(image, np.float32)
    data = tuple(float(value) for value in np.asarray(matrix, np.float64).reshape(6))
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, channel])).transform(
        (width, height), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR))
        for channel in range(image.shape[2])])


def pixel_centres(height: int, width: int) -> np.ndarray:
    """float64 [height, width, 2]: the (x, y) centres of a height x width pixel grid."""
    rows, columns = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    return np.stack([columns, rows], axis=-1)


def _square_corners(size: int) -> np.ndarray:
    return np.array([[0.0, 0.0], [size, 0.0], [0.0, size], [size, size]])


def _bounding_pixels(points: np.ndarray, height: int, width: int, pad: int) -> tuple[int, int, int, int]:
    """Pixel range [x0, x1) x [y0, y1) covering points plus pad, clipped to the photo and never empty."""
    x0 = min(max(int(math.floor(points[:, 0].min())) - pad, 0), width - 1)
    y0 = min(max(int(math.floor(points[:, 1].min())) - pad, 0), height - 1)
    x1 = max(min(int(math.ceil(points[:, 0].max())) + pad, width), x0 + 1)
    y1 = max(min(int(math.ceil(points[:, 1].max())) + pad, height), y0 + 1)
    return x0, y0, x1, y1
