"""Faces in real photos: MTCNN detection, an aligned square crop for the generator, and paste-back.

The editor's flow (all coordinates in pixels of the full-resolution photo):

    detector = FaceDetector()                          # ~0.4 s to build: build once, reuse
    faces = pick_faces(detector.detect(photo), "largest")
    if not faces:
        raise NoFaceError(path)                        # the editor maps it to exit code 2
    crop, transform = crop_face(photo, faces[0], size=128)
    # the generator edits crop / 127.5 - 1 -> fake_image float [128, 128, 3] in [-1, 1] and
    # attention float [128, 128, 1] in [0, 1] (1 = keep the input pixel)
    photo = paste_back(photo, fake_image, transform, attention=attention)

Coordinates are continuous (x, y) = (column, row): pixel (row i, column j) covers [j, j + 1) x [i, i + 1)
and its centre is (j + 0.5, i + 0.5). MTCNN is imported here and nowhere else in the package.

Notes: the paper's faces were found with a face detector and cropped to 128x128 without rotation; we
detect with MTCNN (Zhang et al. 2016, the `mtcnn` 1.0 package) and also rotate the crop so the eyes are
level, which keeps the face in the pose the generator saw most often in training.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import pathlib

import numpy as np
from PIL import Image

KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
FACE_CHOICES = ("all", "largest")
# The crop's margin around a face, as a fraction of its extent (align_face). The editor (animate.py) and
# the dataset builder (prepare.py) both crop with it, so a model sees at run time the crops it trained on.
CROP_MARGIN = 0.1
_WEIGHT_FILES = {"pnet": "pnet.lz4", "rnet": "rnet.lz4", "onet": "onet.lz4"}
_BAND_ROWS = 256


class NoFaceError(ValueError):
    """No face in a photo. The editor catches it before ValueError and exits with code 2."""

    def __init__(self, path: str | os.PathLike, config: DetectorConfig | None = None):
        config = config or DetectorConfig()
        super().__init__(
            f"no face found in {os.fspath(path)!r} (MTCNN, confidence >= {config.min_confidence}, face "
            f"at least {config.min_face_fraction:.0%} of the photo's shorter side); use a photo with a "
            f"larger, more frontal face"
        )
        self.path = os.fspath(path)


# === Detection ===


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Which MTCNN detections count as faces.

    Attributes:
        min_confidence: drop detections below this MTCNN (ONet) confidence, in [0, 1].
        min_face_fraction: drop faces whose box's longer side is below this fraction of the photo's
            shorter side, in [0, 1). Real faces score > 0.99; the false positives MTCNN returns are
            small and less confident (a 21x23 box at 0.87 on a 1024 px photo).
        max_detection_side: detect on a copy whose longer side is at most this (pixels); boxes and
            keypoints are mapped back to the full photo.
        device: TensorFlow device for MTCNN, e.g. "CPU:0" or "GPU:0".

    Notes: MTCNN's own min_face_size stays at its default 20 px: in mtcnn 1.0 any larger value shrinks
    every level of its image pyramid and returned no face at all for the astronaut photo (40 px).
    """

    min_confidence: float = 0.9
    min_face_fraction: float = 0.04
    max_detection_side: int = 1024
    device: str = "CPU:0"

    def __post_init__(self):
        if not (isinstance(self.min_confidence, (int, float)) and 0 <= self.min_confidence <= 1):
            raise ValueError(
                f"min_confidence={self.min_confidence!r} is invalid: expected a number in [0, 1]")
        if not (isinstance(self.min_face_fraction, (int, float)) and 0 <= self.min_face_fraction < 1):
            raise ValueError(
                f"min_face_fraction={self.min_face_fraction!r} is invalid: expected a number in [0, 1)")
        if not (isinstance(self.max_detection_side, int) and self.max_detection_side >= 48):
            raise ValueError(
                f"max_detection_side={self.max_detection_side!r} is invalid: expected an int >= 48")


@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face, in photo pixels.

    Attributes:
        box: (x, y, width, height) of the face box; x, y its top-left corner.
        keypoints: {name: (x, y)} for the names in KEYPOINT_NAMES. "left_eye" is the eye on the left
            of the image (the person's right eye), as MTCNN names it.
        confidence: MTCNN's face probability in [0, 1].
    """

    box: tuple[float, float, float, float]
    keypoints: dict[str, tuple[float, float]]
    confidence: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    def to_dict(self) -> dict:
        """A JSON-able dict of Python floats (coordinates to 0.01 px, confidence to 1e-6)."""
        return {
            "box": [round(float(value), 2) for value in self.box],
            "keypoints": {name: [round(float(value), 2) for value in self.keypoints[name]]
                          for name in KEYPOINT_NAMES},
            "confidence": round(float(self.confidence), 6),
        }

    @classmethod
    def from_dict(cls, record: dict) -> Face:
        return cls(box=tuple(float(value) for value in record["box"]),
                   keypoints={name: tuple(float(value) for value in record["keypoints"][name])
                              for name in KEYPOINT_NAMES},
                   confidence=float(record["confidence"]))


def _import_mtcnn():
    try:
        return importlib.import_module("mtcnn"), importlib.import_module("mtcnn.stages")
    except ImportError as error:
        raise ImportError(
            f"face detection needs the mtcnn package ({error}); install it with "
            f"`pip install mtcnn==1.0.0` (it is pinned in requirements.txt)") from error


def package_weight_paths() -> dict[str, str]:
    """Absolute paths of the weight files shipped inside the installed mtcnn package.

    mtcnn 1.0 looks for a weights file name in the current folder before its own assets, so a stray
    `pnet.lz4` in the working directory would silently replace the detector; absolute paths avoid that.
    """
    mtcnn, _ = _import_mtcnn()
    folder = pathlib.Path(mtcnn.__file__).resolve().parent / "assets" / "weights"
    paths = {stage: str(folder / name) for stage, name in _WEIGHT_FILES.items()}
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"the mtcnn package has no weights at {missing}; reinstall it with "
            f"`pip install --force-reinstall mtcnn==1.0.0`")
    return paths


class FaceDetector:
    """MTCNN with its package weights. Slow to build (~0.4 s), fast to call: build once, reuse.

    Args:
        config: which detections count as faces.
    """

    def __init__(self, config: DetectorConfig = DetectorConfig()):
        mtcnn, stages = _import_mtcnn()
        weights = package_weight_paths()
        self.config = config
        self._mtcnn = mtcnn.MTCNN(
            stages=[stages.StagePNet(weights=weights["pnet"]),
                    stages.StageRNet(weights=weights["rnet"]),
                    stages.StageONet(weights=weights["onet"])],
            device=config.device)

    def detect(self, photo: np.ndarray) -> list[Face]:
        """Finds every face in a photo.

        Args:
            photo: uint8 [height, width, 3] RGB in [0, 255], any size; photos whose longer side exceeds
                config.max_detection_side are detected on a downscaled copy.

        Returns:
            The faces that pass the config's thresholds, largest box first, in full-photo pixels; an
            empty list when there is none (see NoFaceError).
        """
        _check_photo(photo, "photo")
        height, width = photo.shape[:2]
        copy = _detection_copy(photo, self.config.max_detection_side)
        rows = self._mtcnn.detect_faces(copy.astype(np.float32), output_type="numpy", box_format="xyxy")
        scale_x, scale_y = width / copy.shape[1], height / copy.shape[0]
        min_side = self.config.min_face_fraction * min(copy.shape[:2])
        faces = []
        for row in np.asarray(rows, dtype=np.float64).reshape(-1, 16):
            x1, y1, x2, y2, confidence = row[1:6]
            if confidence < self.config.min_confidence or max(x2 - x1, y2 - y1) < min_side:
                continue
            # Columns 6..10 hold the five x's and 11..15 the five y's, in KEYPOINT_NAMES order.
            keypoints = {name: (float(row[6 + index] * scale_x), float(row[11 + index] * scale_y))
                         for index, name in enumerate(KEYPOINT_NAMES)}
            faces.append(Face(box=(float(x1 * scale_x), float(y1 * scale_y),
                                   float((x2 - x1) * scale_x), float((y2 - y1) * scale_y)),
                              keypoints=keypoints, confidence=float(confidence)))
        return sorted(faces, key=lambda face: (-face.area, face.box[0], face.box[1]))


def pick_faces(faces: list[Face], choice: str) -> list[Face]:
    """The faces to edit: "all" of them (largest first) or only the "largest" (an empty list stays empty)."""
    if choice not in FACE_CHOICES:
        raise ValueError(f"faces={choice!r} is invalid: expected one of {FACE_CHOICES}")
    ordered = sorted(faces, key=lambda face: (-face.area, face.box[0], face.box[1]))
    return ordered[:1] if choice == "largest" else ordered


def _detection_copy(photo: np.ndarray, max_side: int) -> np.ndarray:
    height, width = photo.shape[:2]
    if max(height, width) <= max_side:
        return photo
    ratio = max_side / max(height, width)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR))


# === Alignment ===


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
        face: a face of this photo (from FaceDetector.detect).
        size: side of the crop in pixels (the generator's image_size, e.g. 128).
        margin: see align_face.

    Returns:
        crop: uint8 [size, size, 3] RGB in [0, 255] (see crop_photo).
        transform: the photo -> crop similarity, for paste_back.
    """
    _check_photo(photo, "photo")
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
    _check_photo(photo, "photo")
    size = transform.size
    height, width = photo.shape[:2]
    factor = max(1, int(1.0 / transform.scale))
    x0, y0, x1, y1 = _bounding_pixels(transform.to_photo(_square_corners(size)), height, width,
                                      pad=2 * factor)
    region = photo[y0:y1, x0:x1]
    if factor >= 2:
        region = np.asarray(Image.fromarray(region).reduce(factor))
    source = (transform.to_photo(_pixel_centres(size, size)) - np.array([x0, y0])) / factor
    crop = _sample_bilinear(region.astype(np.float32), source[..., 0], source[..., 1])
    return np.clip(np.round(crop), 0, 255).astype(np.uint8)


# === Paste-back ===


def paste_back(photo: np.ndarray, edited_crop: np.ndarray, transform: CropTransform,
               attention: np.ndarray | None = None, feather: float = 0.1) -> np.ndarray:
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
        transform: from crop_face on this photo.
        attention: optional float [size, size, 1] or [size, size] in [0, 1]; 1 keeps the photo pixel.
        feather: width of the smooth (smoothstep) fall-off inside the crop border, as a fraction of the
            crop side, in [0, 0.5]; 0 pastes a hard-edged square.

    Returns:
        uint8 [height, width, 3], a new array (the input photo is not modified).
    """
    _check_photo(photo, "photo")
    size = transform.size
    edited = _edited_to_255(edited_crop, size)
    keep = np.zeros((size, size), np.float32) if attention is None else _attention_2d(attention, size)
    if not (isinstance(feather, (int, float)) and 0 <= feather <= 0.5):
        raise ValueError(f"feather={feather!r} is invalid: expected a number in [0, 0.5]")
    height, width = photo.shape[:2]
    x0, y0, x1, y1 = _bounding_pixels(transform.to_photo(_square_corners(size)), height, width, pad=1)
    # Shrink the crop first when a photo pixel spans 2 or more crop pixels (a face smaller than the crop).
    factor = max(1, int(transform.scale))
    layers = _box_reduce(np.concatenate([edited, 1.0 - keep[:, :, None]], axis=2), factor)
    result = photo.copy()
    for band in range(y0, y1, _BAND_ROWS):  # bands bound the memory on a face filling a 100 MP photo
        rows = slice(band, min(band + _BAND_ROWS, y1))
        crop_points = transform.to_crop(
            _pixel_centres(rows.stop - rows.start, x1 - x0) + np.array([x0, rows.start]))
        weight = _feather_ramp(crop_points, size, feather)
        if not weight.any():
            continue
        sampled = _sample_bilinear(layers, crop_points[..., 0] / factor, crop_points[..., 1] / factor)
        weight = weight * np.clip(sampled[..., 3], 0.0, 1.0)
        original = photo[rows, x0:x1]
        blended = original + weight[..., None] * (sampled[..., :3] - original.astype(np.float32))
        blended = np.clip(np.round(blended), 0, 255).astype(np.uint8)
        result[rows, x0:x1] = np.where(weight[..., None] > 0, blended, original)
    return result


def face_region(transform: CropTransform, height: int, width: int) -> np.ndarray:
    """bool [height, width]: pixels whose centre maps into the crop square; paste_back changes no other."""
    region = np.zeros((height, width), dtype=bool)
    corners = transform.to_photo(_square_corners(transform.size))
    x0, y0, x1, y1 = _bounding_pixels(corners, height, width, pad=1)
    crop_points = transform.to_crop(_pixel_centres(y1 - y0, x1 - x0) + np.array([x0, y0]))
    inside = (crop_points >= 0) & (crop_points <= transform.size)
    region[y0:y1, x0:x1] = inside[..., 0] & inside[..., 1]
    return region


def _feather_ramp(crop_points: np.ndarray, size: int, feather: float) -> np.ndarray:
    """float32 [...]: 0 on and outside the crop square's border, rising smoothly to 1 at feather * size in."""
    distance = np.minimum(np.minimum(crop_points[..., 0], crop_points[..., 1]),
                          np.minimum(size - crop_points[..., 0], size - crop_points[..., 1]))
    if feather == 0:
        return (distance > 0).astype(np.float32)
    ramp = np.clip(distance / (feather * size), 0.0, 1.0)
    return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)


# === Sampling ===


def _sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of float [h, w, c] at continuous points x, y [...]; edges repeat outside."""
    height, width = image.shape[:2]
    column, row = x - 0.5, y - 0.5
    column0, row0 = np.floor(column), np.floor(row)
    weight_x = (column - column0)[..., None].astype(np.float32)
    weight_y = (row - row0)[..., None].astype(np.float32)
    left = np.clip(column0, 0, width - 1).astype(np.intp)
    right = np.clip(column0 + 1, 0, width - 1).astype(np.intp)
    top = np.clip(row0, 0, height - 1).astype(np.intp)
    bottom = np.clip(row0 + 1, 0, height - 1).astype(np.intp)
    upper = image[top, left] * (1 - weight_x) + image[top, right] * weight_x
    lower = image[bottom, left] * (1 - weight_x) + image[bottom, right] * weight_x
    return upper * (1 - weight_y) + lower * weight_y


def _box_reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Means of factor x factor blocks of float [h, w, c], edge-padded to a multiple of factor."""
    if factor == 1:
        return image
    height, width, channels = image.shape
    padded = np.pad(image, ((0, -height % factor), (0, -width % factor), (0, 0)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor, channels)
    return blocks.mean(axis=(1, 3))


def _pixel_centres(height: int, width: int) -> np.ndarray:
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


def _check_photo(photo, name: str) -> None:
    if not (isinstance(photo, np.ndarray) and photo.dtype == np.uint8 and photo.ndim == 3
            and photo.shape[2] == 3 and photo.shape[0] > 0 and photo.shape[1] > 0):
        described = (f"{photo.dtype} {list(photo.shape)}" if isinstance(photo, np.ndarray)
                     else type(photo).__name__)
        raise ValueError(f"{name} is {described}: expected uint8 [height, width, 3] RGB (photos.read_photo)")


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
    return ((np.clip(edited.astype(np.float32), -1.0, 1.0) + 1.0) * 127.5).astype(np.float32)


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
