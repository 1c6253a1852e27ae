"""Editing faces in real photos: find the faces, edit them with a trained generator, paste them back.

    model = load_edit_model("runs/celeba")             # a run folder, a SavedModel version folder or a .tflite
    editor = Editor(model)                        # builds the MTCNN detector once; reuse the editor
    photo = image_files.read_photo("photo.jpg")        # uint8 [H, W, 3], EXIF orientation applied
    faces = editor.find_faces(photo, "photo.jpg") # NoFaceError (exit code 2 in scripts/animate.py) if none
    edited = editor.edit(photo, faces, action_units.parse_expression("happy"))
    frames = editor.animate(photo, faces, keyframes, num_frames=24)   # a list of edited photos
    sheet = editor.sheet(faces[0], start_aus, target_aus)             # AU sweep + attention + colour

Each face is cut out by detection.crop_face at the model's image size (aligned, eyes level, the same crop
that prepare.py writes for training), the model edits it (images in [0, 1]), and detection.paste_back
blends the result into the full-resolution photo with the generator's attention mask: a pixel whose
centre falls outside the crop square keeps its exact value, and so does one where attention is 1.

`run(job)` is what scripts/animate.py calls: one photo in, an edited photo, an animation and/or a
sheet out.

Notes: the paper composes A * image + (1 - A) * C on the 128-px crop (Eq. 1). We paste the colour
map C with weight (1 - A) onto the full-resolution photo instead of pasting the composed 128-px
image, so the kept parts of the face stay at the photo's resolution and Eq. 1 still holds on the crop.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tf_ganimation.core import action_units, image_files
from tf_ganimation.export.backends import load_edit_model
from tf_ganimation.faces import detection
from tf_ganimation.model.edit_model import EditModel

PHOTO_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
ANIMATION_EXTENSIONS = {".gif": "GIF", ".webp": "WEBP"}
SWEEP_INTENSITIES = (0.0, 0.25, 0.5, 0.75, 1.0)
# Sheet layout: a caption strip on top, a label column on the left, then one S x S cell per image.
SHEET_HEADER = 20
SHEET_LABEL_WIDTH = 132
MAX_FRAMES = 1000


class NoFaceError(detection.NoFaceError):
    """No face in the photo; the message suggests --whole_image. scripts/animate.py exits with code 2."""

    def __init__(self, path: str | os.PathLike, config: detection.DetectorConfig | None = None):
        super().__init__(path, config)
        self.args = (f"{self.args[0]}, or pass --whole_image to edit the whole photo as one face",)


# === Faces: find, crop, paste back ===


@dataclasses.dataclass(frozen=True)
class EditorConfig:
    """How the editor finds faces and pastes them back.

    Attributes:
        faces: "all" faces (largest first) or only the "largest".
        whole_image: treat the whole photo as the face: the photo is scaled into the model's square
            (the longer side fits; the shorter side is filled by repeating the edge pixels), edited and
            scaled back. For photos where the detector finds no face (drawings, close-ups).
        feather: width of the smooth fall-off at the crop's border (detection.paste_back), in [0, 0.5].
        detector: which MTCNN detections count as faces.

    Notes: the issue asked to resize the whole photo to the model's square; we keep its aspect ratio
    (padding by edge repetition) so a face in a 4:3 photo is not squashed before the generator sees it.
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
        transform: photo -> crop similarity (detection.CropTransform).
        face: the detection, or None with whole_image.
        feather: the paste-back feather for this crop (0 for the whole image: no border to hide).
    """

    crop: np.ndarray
    transform: detection.CropTransform
    face: detection.Face | None
    feather: float


def whole_image_transform(height: int, width: int, size: int) -> detection.CropTransform:
    """The transform that fits a whole height x width photo into a size x size square (centred)."""
    return detection.CropTransform(center=(width / 2.0, height / 2.0), angle=0.0, scale=size / max(height, width),
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
            return [FaceCrop(detection.crop_photo(photo, transform), transform, None, 0.0)]
        detected = detection.pick_faces(self.detector.detect(photo), self.config.faces)
        if not detected:
            raise NoFaceError(source, self.config.detector)
        crops = []
        for found in detected:
            crop, transform = detection.crop_face(photo, found, size, margin=detection.CROP_MARGIN)  # as prepare.py
            crops.append(FaceCrop(crop, transform, found, self.config.feather))
        return crops

    def start_aus(self, crops: list[FaceCrop]) -> tuple[np.ndarray, str]:
        """Each face's current AUs, float32 [len(crops), 17] in [0, 1], and where they came from.

        The critic's AU head estimates them when the model has a critic (a run folder); otherwise
        every face starts neutral (all zeros).
        """
        estimated = self.model.estimate_aus(_images01(crops))
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
        images = np.repeat(_images01(crops), per_face, axis=0)
        outputs = self.model(images, aus.reshape(-1, action_units.NUM_AUS))
        return {key: value.reshape(lead + value.shape[1:]) for key, value in outputs.items()}

    def paste(self, photo: np.ndarray, crops: list[FaceCrop], color: np.ndarray,
              attention: np.ndarray) -> np.ndarray:
        """Pastes each face's colour map with weight (1 - attention) into the photo (detection.paste_back).

        Args:
            photo: uint8 [H, W, 3].
            crops: F faces.
            color: float32 [F, S, S, 3] in [0, 1].
            attention: float32 [F, S, S, 1] in [0, 1].

        Returns:
            uint8 [H, W, 3]; pixels outside every crop square are photo's, bit for bit.
        """
        result = photo
        for crop, face_color, face_attention in zip(crops, color, attention):
            result = detection.paste_back(result, face_color * 2.0 - 1.0, crop.transform,
                                     attention=np.clip(face_attention, 0.0, 1.0), feather=crop.feather)
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
        """A contact sheet of one face: the maps of the edit, then an AU sweep.

        Layout (S = model.image_size, five S-wide columns after a SHEET_LABEL_WIDTH label column, under a
        SHEET_HEADER caption strip): row 0 = input crop | edit at target_aus | attention (white = kept)
        | colour map | blank; rows 1..17, one per AU in action_units order: start_aus with that AU set
        to each of SWEEP_INTENSITIES.

        Returns:
            uint8 [SHEET_HEADER + 18 * S, SHEET_LABEL_WIDTH + 5 * S, 3].
        """
        start_aus, target_aus = _check_aus(start_aus), _check_aus(target_aus)
        size, columns = self.model.image_size, len(SWEEP_INTENSITIES)
        sweep = np.repeat(start_aus[None, None, :], action_units.NUM_AUS * columns, axis=1)
        sweep = sweep.reshape(action_units.NUM_AUS, columns, action_units.NUM_AUS).copy()
        for au in range(action_units.NUM_AUS):
            sweep[au, :, au] = SWEEP_INTENSITIES
        aus = np.concatenate([target_aus[None], sweep.reshape(-1, action_units.NUM_AUS)])[None]
        outputs = self.edit_crops([crop], aus)
        images = _to_uint8(outputs["images"][0])
        maps = [crop.crop, images[0], _to_uint8(np.repeat(outputs["attention"][0, 0], 3, axis=-1)),
                _to_uint8(outputs["color"][0, 0]), np.full_like(crop.crop, 255)]
        rows = [maps] + [list(images[1 + au * columns: 1 + (au + 1) * columns]) for au in range(action_units.NUM_AUS)]
        sheet = np.full((SHEET_HEADER + len(rows) * size, SHEET_LABEL_WIDTH + columns * size, 3), 255, np.uint8)
        for row_index, row in enumerate(rows):
            for column_index, cell in enumerate(row):
                top, left = SHEET_HEADER + row_index * size, SHEET_LABEL_WIDTH + column_index * size
                sheet[top:top + size, left:left + size] = cell
        return _label_sheet(sheet, size)


def _label_sheet(sheet: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for column, intensity in enumerate(SWEEP_INTENSITIES):
        draw.text((SHEET_LABEL_WIDTH + column * size + 3, 4), f"{intensity:g}", fill=(0, 0, 0), font=font)
    draw.text((4, SHEET_HEADER + 3), "input | edit |\nattention |\ncolour", fill=(0, 0, 0), font=font)
    for index, name in enumerate(action_units.AU_NAMES):
        top = SHEET_HEADER + (index + 1) * size + 3
        draw.text((4, top), f"{name}\n{action_units.AU_DESCRIPTIONS[name]}", fill=(0, 0, 0), font=font)
    return np.asarray(image)


def _images01(crops: list[FaceCrop]) -> np.ndarray:
    return np.stack([crop.crop for crop in crops]).astype(np.float32) / 255.0


def _to_uint8(image01: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(image01) * 255.0), 0, 255).astype(np.uint8)


def _check_aus(aus) -> np.ndarray:
    aus = np.asarray(aus, np.float32)
    if aus.ndim < 1 or aus.shape[-1] != action_units.NUM_AUS:
        raise ValueError(f"AUs of shape {list(aus.shape)}: expected [..., {action_units.NUM_AUS}]")
    if not np.all(np.isfinite(aus)) or aus.min() < 0.0 or aus.max() > 1.0:
        raise ValueError("AU intensities must be finite numbers in [0, 1]")
    return aus


# === One editor run (scripts/animate.py) ===


@dataclasses.dataclass(frozen=True)
class EditJob:
    """One photo in; an edited photo, an animation and/or a sheet out.

    Attributes:
        model: see export.backends.load_edit_model.
        image: the photo (JPEG, PNG or WebP; image_files.read_photo).
        expression: presets, mixes or AUs (action_units.parse_expression), or a sequence of them for
            animations (action_units.parse_expression_sequence): `happy`, `happy:0.5+surprise:0.5`,
            `neutral,happy,surprise`. Exactly one of expression and aus.
        aus: explicit AUs, `AU12=1,AU06=0.8` (action_units.parse_aus).
        start: where animations and sheets start ("" = each face's current AUs, see Editor.start_aus).
        out: the edited photo (.jpg, .png or .webp) at the last expression; PNG/WebP keep the pixels
            outside the faces exact, JPEG re-encodes them.
        gif: the animation (.gif or .webp), frames from start through the expressions.
        sheet: the sheet of the largest face (.png recommended; see Editor.sheet).
        frames: frames in the animation, in [1, MAX_FRAMES].
        fps: frames per second of the animation, in (0, 50] (GIF delays below 20 ms play slowly).
        animation_max_side: animation frames are downscaled so their longer side is at most this
            (0: full size); a GIF of a 12-MP photo would be hundreds of MB.
        max_pixels: refuse photos larger than this (image_files.read_photo's decompression-bomb guard).
        editor: how faces are found and pasted.
    """

    model: str
    image: str
    expression: str = ""
    aus: str = ""
    start: str = ""
    out: str = ""
    gif: str = ""
    sheet: str = ""
    frames: int = 24
    fps: float = 12.0
    animation_max_side: int = 512
    max_pixels: int = image_files.MAX_PIXELS
    editor: EditorConfig = EditorConfig()

    def __post_init__(self):
        if bool(self.expression) == bool(self.aus):
            raise ValueError("give exactly one of --expression (e.g. happy, or neutral,happy,surprise) and "
                             f"--aus (e.g. AU12=1,AU06=0.8); got expression={self.expression!r}, aus={self.aus!r}")
        if not (self.out or self.gif or self.sheet):
            raise ValueError("nothing to write: give --out (the edited photo), --gif (an animation) and/or --sheet")
        _check_extension("out", self.out, PHOTO_EXTENSIONS)
        _check_extension("gif", self.gif, ANIMATION_EXTENSIONS)
        _check_extension("sheet", self.sheet, PHOTO_EXTENSIONS)
        for name in ("out", "gif", "sheet"):
            if getattr(self, name) and os.path.abspath(getattr(self, name)) == os.path.abspath(self.image):
                raise ValueError(f"--{name} {getattr(self, name)} is the input photo: refusing to overwrite it")
        if not (isinstance(self.frames, int) and 1 <= self.frames <= MAX_FRAMES):
            raise ValueError(f"frames={self.frames!r} is invalid: expected an integer in [1, {MAX_FRAMES}]")
        if not (isinstance(self.fps, (int, float)) and 0 < self.fps <= 50):
            raise ValueError(f"fps={self.fps!r} is invalid: expected a number in (0, 50]")
        if not (isinstance(self.animation_max_side, int) and self.animation_max_side >= 0):
            raise ValueError(f"animation_max_side={self.animation_max_side!r} is invalid: expected an integer >= 0")

    def targets(self) -> np.ndarray:
        """float32 [K, 17]: the expressions in order (K = 1 for a single one)."""
        if self.aus:
            return action_units.parse_aus(self.aus)[None]
        return action_units.parse_expression_sequence(self.expression)


def _check_extension(name: str, path: str, allowed: dict) -> None:
    if path and pathlib.Path(path).suffix.lower() not in allowed:
        raise ValueError(f"--{name} {path!r}: expected a file ending in one of {', '.join(allowed)}")


def run(job: EditJob, model: EditModel | None = None, detector: detection.FaceDetector | None = None) -> dict:
    """Edits one photo as `job` says and writes the outputs.

    Args:
        job: what to do.
        model: an already loaded model (default: load_edit_model(job.model)).
        detector: a FaceDetector to reuse (default: built when needed).

    Returns:
        A JSON-able summary: outputs written, faces (boxes), start AUs and their source, timings.

    Raises:
        NoFaceError: no face and not whole_image.
        FileNotFoundError, ValueError (image_files.PhotoError included): bad paths, flags or photos.
    """
    targets = job.targets()  # parse the expression before loading anything
    started = time.perf_counter()
    photo = image_files.read_photo(job.image, max_pixels=job.max_pixels)
    model = model or load_edit_model(job.model)
    editor = Editor(model, job.editor, detector)
    crops = editor.find_faces(photo, job.image)
    if job.start:
        start = np.repeat(action_units.parse_expression(job.start)[None], len(crops), axis=0)
        start_source = f"--start {job.start}"
    else:
        start, start_source = editor.start_aus(crops)
    summary = {"model": f"{model.kind} {model.source}", "image_size": model.image_size,
               "photo": [int(photo.shape[1]), int(photo.shape[0])],
               "faces": [crop.face.to_dict() if crop.face else "whole image" for crop in crops],
               "start_aus_source": start_source,
               "start_aus": {f"face_{index}": _named(aus) for index, aus in enumerate(start)},
               "target_aus": [_named(aus) for aus in targets], "written": {}}
    if job.out:
        _write_photo(editor.edit(photo, crops, targets[-1]), job.out)
        summary["written"]["out"] = job.out
    if job.gif:
        keyframes = np.concatenate([start[:, None], np.broadcast_to(targets, (len(crops),) + targets.shape)], axis=1)
        frames = editor.animate(photo, crops, keyframes, job.frames)
        _write_animation(frames, job.gif, job.fps, job.animation_max_side)
        summary["written"]["gif"] = job.gif
        summary["frames"] = job.frames
    if job.sheet:
        _write_photo(editor.sheet(crops[0], start[0], targets[-1]), job.sheet)
        summary["written"]["sheet"] = job.sheet
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _named(aus: np.ndarray) -> dict[str, float]:
    return {name: round(float(value), 3) for name, value in zip(action_units.AU_NAMES, aus) if value > 0.005}


def _atomic_save(path: str, save) -> None:
    """Writes through a temporary file in the same folder, so a failed write leaves no partial file."""
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        save(str(temporary))
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _write_photo(image: np.ndarray, path: str) -> None:
    image_format = PHOTO_EXTENSIONS[pathlib.Path(path).suffix.lower()]
    options = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}, "PNG": {}}[image_format]
    _atomic_save(path, lambda temporary: Image.fromarray(image).save(temporary, format=image_format, **options))


def _write_animation(frames: list[np.ndarray], path: str, fps: float, max_side: int) -> None:
    """Writes frames as an animated GIF or WebP, downscaled to max_side (0: full size)."""
    images = [Image.fromarray(frame) for frame in frames]
    height, width = frames[0].shape[:2]
    if max_side and max(height, width) > max_side:
        ratio = max_side / max(height, width)
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        images = [image.resize(size, Image.Resampling.LANCZOS) for image in images]
    image_format = ANIMATION_EXTENSIONS[pathlib.Path(path).suffix.lower()]
    if image_format == "GIF":
        images = _shared_palette(images)
    duration = max(20, round(1000.0 / fps))  # browsers play GIF delays below 20 ms at 100 ms
    _atomic_save(path, lambda temporary: images[0].save(
        temporary, format=image_format, save_all=True, append_images=images[1:], duration=duration, loop=0))


def _shared_palette(images: list[Image.Image]) -> list[Image.Image]:
    """The frames in one 256-colour palette (from the first, middle and last frames), without dithering.

    One palette and no error diffusion keep every unchanged pixel the same in every frame, so the photo
    around the face does not flicker; and octree quantization takes ~0.1 s for 24 512-px frames where
    PIL's default GIF quantization took ~10 s.
    """
    picks = [images[0], images[len(images) // 2], images[-1]]
    mosaic = Image.new("RGB", (picks[0].width, picks[0].height * len(picks)))
    for index, image in enumerate(picks):
        mosaic.paste(image, (0, index * image.height))
    palette = mosaic.quantize(256, method=Image.Quantize.FASTOCTREE)
    return [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
