"""Faces in real photos: MTCNN detection, and the choice of which faces to edit.

    detector = FaceDetector()                          # ~0.4 s to build: build once, reuse
    faces = pick_faces(detector.detect(photo), "largest")
    if not faces:
        raise NoFaceError(path)

Boxes and keypoints are in pixels of the full-resolution photo, (x, y) = (column, row) as in
tf_ganimation.faces.alignment. MTCNN is imported here and nowhere else in the package.

Notes: the paper's faces were found with a face detector; we detect with MTCNN (Zhang et al. 2016,
the `mtcnn` 1.0 package).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib

import numpy as np
from PIL import Image

KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
FACE_CHOICES = ("all", "largest")
_WEIGHT_FILES = {"pnet": "pnet.lz4", "rnet": "rnet.lz4", "onet": "onet.lz4"}


class NoFaceError(ValueError):
    """No face in a photo; the message says what the detector looked for. `path`: the photo's path."""

    def __init__(self, path: str | os.PathLike, config: DetectorConfig | None = None):
        config = config or DetectorConfig()
        super().__init__(
            f"no face found in {os.fspath(path)!r} (MTCNN, confidence >= {config.min_confidence}, face "
            f"at least {config.min_face_fraction:.0%} of the photo's shorter side); use a photo with a "
            f"larger, more frontal face"
        )
        self.path = os.fspath(path)


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


def _graph_function(network):
    """A network's call as one TensorFlow graph, traced once for any batch and image size.

    Notes: mtcnn 1.0 calls its three Keras networks eagerly, layer by layer, once per pyramid scale;
    as graphs they give the same boxes and landmarks bit for bit, 3x faster on a 320 x 180 frame
    (BENCHMARKS.md, Video). The stages keep their network in `_model` (mtcnn is pinned to 1.0.0). mtcnn
    learns that a stage has no candidate left from the InvalidArgumentError an empty batch raises; a
    graph would also log it as a warning, so an empty batch raises it here, before the graph.
    """
    import tensorflow as tf

    graph = tf.function(network, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])

    def call(images):
        if images.shape[0] == 0:
            raise tf.errors.InvalidArgumentError(None, None, "no candidate box left")
        return graph(images)

    return call


class FaceDetector:
    """MTCNN with its package weights. Slow to build (~0.4 s), fast to call: build once, reuse.

    Args:
        config: which detections count as faces.
    """

    def __init__(self, config: DetectorConfig = DetectorConfig()):
        mtcnn, stages = _import_mtcnn()
        weights = package_weight_paths()
        self.config = config
        networks = [stages.StagePNet(weights=weights["pnet"]), stages.StageRNet(weights=weights["rnet"]),
                    stages.StageONet(weights=weights["onet"])]
        for stage in networks:
            stage._model = _graph_function(stage.model)
        self._mtcnn = mtcnn.MTCNN(stages=networks, device=config.device)
        self._output_network = networks[-1].model

    def detect(self, photo: np.ndarray) -> list[Face]:
        """Finds every face in a photo.

        Args:
            photo: uint8 [height, width, 3] RGB in [0, 255], any size; photos whose longer side exceeds
                config.max_detection_side are detected on a downscaled copy.

        Returns:
            The faces that pass the config's thresholds, largest box first, in full-photo pixels; an
            empty list when there is none (see NoFaceError).
        """
        check_photo(photo, "photo")
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

    def face_probability(self, photo: np.ndarray, boxes) -> np.ndarray:
        """MTCNN's last network (ONet) alone on given boxes: how likely each one holds a face.

        A cheap check of faces whose position is known, e.g. a tracked face between two detections: one
        network call on 48 x 48 patches (about 3 ms) instead of a whole detection (30 ms and more).

        Args:
            photo: uint8 [height, width, 3] RGB, the image the boxes are in (no downscaling here).
            boxes: float [N, 4] (x, y, width, height) in photo pixels; each is checked as the square on
                its longer side around its centre, as MTCNN's stages pass boxes on.

        Returns:
            float32 [N] in [0, 1]: about 1 for a face, near 0 for background or a box half off the face.
        """
        return self.face_probabilities([(photo, boxes)])[0]

    def face_probabilities(self, checks: list[tuple[np.ndarray, object]]) -> list[np.ndarray]:
        """face_probability of several (photo, boxes) pairs in one network call: one float32 [N_i] each."""
        patches, counts = [], []
        for photo, boxes in checks:
            check_photo(photo, "photo")
            boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
            image = Image.fromarray(photo) if len(boxes) else None
            for x, y, width, height in boxes:
                centre_x, centre_y, half = x + width / 2, y + height / 2, max(width, height) / 2
                square = (centre_x - half, centre_y - half, centre_x + half, centre_y + half)
                # Bilinear without antialiasing, grey beyond the photo: as MTCNN's own crop_and_resize.
                patch = image.transform((48, 48), Image.Transform.EXTENT, square, Image.Resampling.BILINEAR,
                                        fillcolor=(128, 128, 128))
                patches.append(np.asarray(patch, np.float32))
            counts.append(len(boxes))
        if not patches:
            return [np.zeros(0, np.float32) for _ in checks]
        scores = np.asarray(self._output_network((np.stack(patches) - 127.5) / 128.0)[-1])[:, -1]
        return np.split(scores.astype(np.float32), np.cumsum(counts)[:-1])

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


def check_photo(photo, name: str) -> None:
    """Raises ValueError unless `photo` is uint8 [height, width, 3] RGB with at least one pixel."""
    if not (isinstance(photo, np.ndarray) and photo.dtype == np.uint8 and photo.ndim == 3
            and photo.shape[2] == 3 and photo.shape[0] > 0 and photo.shape[1] > 0):
        described = (f"{photo.dtype} {list(photo.shape)}" if isinstance(photo, np.ndarray)
                     else type(photo).__name__)
        raise ValueError(f"{name} is {described}: expected uint8 [height, width, 3] RGB (image_files.read_photo)")
