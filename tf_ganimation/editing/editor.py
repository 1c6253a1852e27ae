"""Editing faces in real photos: find the faces, edit them with a trained generator, paste them back.

    model = load_edit_model("runs/celeba")             # a run folder, a SavedModel version folder or a .tflite
    editor = Editor(model)                             # builds the MTCNN detector once; reuse the editor
    photo = image_files.read_photo("photo.jpg")        # uint8 [H, W, 3], EXIF orientation applied
    faces = editor.find_faces(photo, "photo.jpg")      # NoFaceError (exit code 2 in scripts/animate.py) if none
    edited = editor.edit(photo, faces, action_units.parse_expression("happy"))
    frames = editor.animate(photo, faces, keyframes, num_frames=24)   # a list of edited photos
    sheet = editor.sheet(faces[0], start_aus, target_aus)             # AU sweep + attention + colour

Each face is cut out by alignment.crop_face at the model's image size (aligned, eyes level, the same crop
that prepare.py writes for training), the model edits it (images in [0, 1]), and blending.paste_back
blends the result into the full-resolution photo with the generator's attention mask: a pixel whose
centre falls outside the crop square keeps its exact value, and so does one where attention is 1.

Notes: the paper composes A * image + (1 - A) * C on the 128-px crop (Eq. 1). We paste the colour
map C with weight (1 - A) onto the full-resolution photo instead of pasting the composed 128-px
image, so the kept parts of the face stay at the photo's resolution and Eq. 1 still holds on the crop.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tf_ganimation.core import action_units, pixels
from tf_ganimation.editing import contact_sheet
from tf_ganimation.faces import alignment, blending, detection
from tf_ganimation.model.edit_model import EditModel

# Why a model cannot estimate a face's AUs (EditModel.estimate_aus is None), and what works instead.
CANNOT_ESTIMATE_HELP = (
    "estimating AUs needs the critic's AU head, which a training run folder has, and a SavedModel has when "
    "exported with the critic (scripts/export.py from a run folder with critic.weights.h5: its estimate_aus "
    "signature); a .tflite model has none. Use one of those two as the model, or drive the face with an AU "
    "track instead: a .csv curve (timestamp, AU01_r..AU45_r, as OpenFace writes it; --curve=track.csv)")
MAX_FRAMES = 1000


class NoFaceError(detection.NoFaceError):
    """No face in the photo; the message suggests --whole_image. scripts/animate.py exits with code 2."""

    def __init__(self, path: str | os.PathLike, config: detection.DetectorConfig | None = None):
        super().__init__(path, config)
        self.args = (f"{self.args[0]}, or pass --whole_image to edit the whole photo as one face",)


@dataclasses.dataclass(frozen=True)
class EditorConfig:
    """How the editor finds faces and pastes them back.

    Attributes:
        faces: "all" faces (largest first) or only the "largest".
        whole_image: treat the whole photo as the face: the photo is scaled into the model's square
            (the longer side fits; the shorter side is filled by repeating the edge pixels), edited and
            scaled back. For photos where the detector finds no face (drawings, close-ups).
        feather: width of the smooth fall-off at the crop's border (blending.paste_back), in [0, 0.5].
        detector: which MTCNN detections count as faces.

    Notes: whole_image keeps the photo's aspect ratio (padding by edge repetition) rather than resizing
    it to the model's square, so a face in a 4:3 photo is not squashed before the generator sees it.
    """

    faces: str = "all"
    whole_image: bool = False
    feather: float = 0.1
    detector: detection.DetectorConfig = detection.DetectorConfig()

    def __post_init__(self):
        if self.faces not in detection.FACE_CHOICES:
            raise ValueError(f"faces={self.faces!r} is invalid: expected one of {detection.FACE_CHOICES}")
        if not (isinstance(self.feather, (int, float)) and 0 <= self.feather <= 0.5):
            raise ValueError(f"feather={self.feather!r} is invalid: expected a number in [0, 0.5]")


@dataclasses.dataclass(frozen=True)
class FaceCrop:
    """One face to edit.

    Attributes:
        crop: uint8 [S, S, 3], the aligned face as the model sees it (times 1/255).
        transform: photo -> crop similarity (alignment.CropTransform).
        face: the detection, or None with whole_image.
        feather: the paste-back feather for this crop (0 for the whole image: no border to hide).
    """

    crop: np.ndarray
    transform: alignment.CropTransform
    face: detection.Face | None
    feather: float


def whole_image_transform(height: int, width: int, size: int) -> alignment.CropTransform:
    """The transform that fits a whole height x width photo into a size x size square (centred)."""
    return alignment.CropTransform(center=(width / 2.0, height / 2.0), angle=0.0, scale=size / max(height, width),
                                   size=size)


class Editor:
    """Finds, edits and pastes back faces with one model. Build once, reuse (the detector takes ~0.4 s).

    Args:
        model: an EditModel (export.backends.load_edit_model).
        config: EditorConfig.
        detector: a FaceDetector to share (built on first use when None and not whole_image).
    """

    def __init__(self, model: EditModel, config: EditorConfig = EditorConfig(),
                 detector: detection.FaceDetector | None = None):
        self.model, self.config = model, config
        self._detector = detector

    @property
    def detector(self) -> detection.FaceDetector:
        if self._detector is None:
            self._detector = detection.FaceDetector(self.config.detector)
        return self._detector

    def find_faces(self, photo: np.ndarray, source: str = "photo") -> list[FaceCrop]:
        """The faces to edit in a photo, as crops at the model's size.

        Args:
            photo: uint8 [H, W, 3] RGB (image_files.read_photo).
            source: the photo's name, for the no-face message.

        Returns:
            One FaceCrop per face (config.faces), largest first; one for the whole photo with whole_image.

        Raises:
            NoFaceError: no face found (and not whole_image).
        """
        size = self.model.image_size
        if self.config.whole_image:
            transform = whole_image_transform(photo.shape[0], photo.shape[1], size)
            return [FaceCrop(alignment.crop_photo(photo, transform), transform, None, 0.0)]
        detected = detection.pick_faces(self.detector.detect(photo), self.config.faces)
        if not detected:
            raise NoFaceError(source, self.config.detector)
        crops = []
        for found in detected:
            crop, transform = alignment.crop_face(photo, found, size, margin=alignment.CROP_MARGIN)  # as prepare.py
            crops.append(FaceCrop(crop, transform, found, self.config.feather))
        return crops

    def start_aus(self, crops: list[FaceCrop]) -> tuple[np.ndarray, str]:
        """Each face's current AUs, float32 [len(crops), 17] in [0, 1], and where they came from.

        The critic's AU head estimates them when the model has a critic (a run folder, or a SavedModel
        exported with the critic); otherwise every face starts neutral (all zeros).
        """
        estimated = self.model.estimate_aus(_crops_unit(crops))
        if estimated is None:
            return np.zeros([len(crops), action_units.NUM_AUS], np.float32), "neutral (the model has no critic)"
        return estimated, "estimated by the critic"

    def edit_crops(self, crops: list[FaceCrop], aus: np.ndarray) -> dict[str, np.ndarray]:
        """The model on every crop for every AU vector.

        Args:
            crops: F faces.
            aus: float32 [F, 17] (one target per face) or [F, T, 17] (T targets per face), in [0, 1].

        Returns:
            The model's outputs with leading dims [F] or [F, T].
        """
        aus = _check_aus(aus)
        lead = aus.shape[:-1]
        if lead[0] != len(crops):
            raise ValueError(f"aus for {lead[0]} faces, but {len(crops)} faces were given")
        per_face = int(np.prod(lead[1:], dtype=int))
        images = np.repeat(_crops_unit(crops), per_face, axis=0)
        outputs = self.model(images, aus.reshape(-1, action_units.NUM_AUS))
        return {key: value.reshape(lead + value.shape[1:]) for key, value in outputs.items()}

    def paste(self, photo: np.ndarray, crops: list[FaceCrop], color: np.ndarray,
              attention: np.ndarray, in_place: bool = False) -> np.ndarray:
        """Pastes each face's colour map with weight (1 - attention) into the photo (blending.paste_back).

        Args:
            photo: uint8 [H, W, 3].
            crops: F faces.
            color: float32 [F, S, S, 3] in [0, 1].
            attention: float32 [F, S, S, 1] in [0, 1].
            in_place: write into `photo` (a video frame no one else holds) instead of a copy.

        Returns:
            uint8 [H, W, 3]; pixels outside every crop square are photo's, bit for bit.
        """
        result = photo if in_place else photo.copy()
        for crop, face_color, face_attention in zip(crops, color, attention):
            blending.paste_back(result, pixels.unit_to_model(face_color), crop.transform,
                                attention=np.clip(face_attention, 0.0, 1.0), feather=crop.feather, out=result)
        return result

    def edit(self, photo: np.ndarray, crops: list[FaceCrop], target_aus: np.ndarray) -> np.ndarray:
        """Every face in `crops` given the expression `target_aus` (float32 [17] in [0, 1]): uint8 [H, W, 3]."""
        target_aus = _check_aus(target_aus)
        outputs = self.edit_crops(crops, np.broadcast_to(target_aus, (len(crops), action_units.NUM_AUS)))
        return self.paste(photo, crops, outputs["color"], outputs["attention"])

    def animate(self, photo: np.ndarray, crops: list[FaceCrop], keyframes: np.ndarray,
                num_frames: int) -> list[np.ndarray]:
        """Frames of the photo with every face moving through a sequence of expressions.

        Args:
            photo: uint8 [H, W, 3].
            crops: F faces.
            keyframes: float32 [F, K, 17] in [0, 1], each face's expressions in order (typically its
                start_aus, then the targets), spaced evenly in time (action_units.interpolate_keyframes).
            num_frames: frames in the animation, in [1, MAX_FRAMES].

        Returns:
            num_frames uint8 [H, W, 3] photos; frame 0 is the edit at keyframes[:, 0].
        """
        keyframes = _check_aus(keyframes)
        if keyframes.ndim != 3 or keyframes.shape[0] != len(crops):
            raise ValueError(f"keyframes of shape {list(keyframes.shape)}: expected [{len(crops)}, K, 17]")
        if not isinstance(num_frames, (int, np.integer)) or not 1 <= num_frames <= MAX_FRAMES:
            raise ValueError(f"num_frames={num_frames!r} is invalid: expected an integer in [1, {MAX_FRAMES}]")
        paths = np.stack([action_units.interpolate_keyframes(face_keys, int(num_frames)) for face_keys in keyframes])
        outputs = self.edit_crops(crops, paths)
        return [self.paste(photo, crops, outputs["color"][:, index], outputs["attention"][:, index])
                for index in range(num_frames)]

    def sheet(self, crop: FaceCrop, start_aus: np.ndarray, target_aus: np.ndarray) -> np.ndarray:
        """A contact sheet of one face: the maps of the edit at `target_aus`, then an AU sweep of `start_aus`.

        Args:
            crop: the face.
            start_aus: float32 [17] in [0, 1], the sweep's base (typically start_aus()).
            target_aus: float32 [17] in [0, 1], the edit shown in the first row.

        Returns:
            uint8 [SHEET_HEADER + 18 * S, SHEET_LABEL_WIDTH + 5 * S, 3], S = model.image_size (the
            layout: contact_sheet.layout).
        """
        start_aus, target_aus = _check_aus(start_aus), _check_aus(target_aus)
        outputs = self.edit_crops([crop], contact_sheet.sheet_targets(start_aus, target_aus)[None])
        return contact_sheet.layout(crop.crop, {key: value[0] for key, value in outputs.items()})


def _check_aus(aus) -> np.ndarray:
    """`aus` as float32 [..., 17]; ValueError unless every intensity is a finite number in [0, 1]."""
    aus = np.asarray(aus, np.float32)
    if aus.ndim < 1 or aus.shape[-1] != action_units.NUM_AUS:
        raise ValueError(f"AUs of shape {list(aus.shape)}: expected [..., {action_units.NUM_AUS}]")
    if not np.all(np.isfinite(aus)) or aus.min() < 0.0 or aus.max() > 1.0:
        raise ValueError("AU intensities must be finite numbers in [0, 1]")
    return aus


def _crops_unit(crops: list[FaceCrop]) -> np.ndarray:
    """float32 [len(crops), S, S, 3] in [0, 1]: the model's input."""
    return pixels.uint8_to_unit(np.stack([crop.crop for crop in crops]))
