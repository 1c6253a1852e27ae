"""One editor run, what scripts/animate.py calls: one photo in; an edited photo, an animation and/or a sheet out.

    job = EditJob(model="runs/celeba", image="photo.jpg", expression="neutral,happy", gif="face.gif")
    summary = run(job)          # JSON-able: faces found, start AUs and their source, files written
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time

import numpy as np

from tf_ganimation.core import action_units, image_files
from tf_ganimation.editing import outputs
from tf_ganimation.editing.editor import MAX_FRAMES, Editor, EditorConfig
from tf_ganimation.export.backends import load_edit_model
from tf_ganimation.faces import detection
from tf_ganimation.model.edit_model import EditModel


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
        _check_extension("out", self.out, image_files.PHOTO_EXTENSIONS)
        _check_extension("gif", self.gif, outputs.ANIMATION_EXTENSIONS)
        _check_extension("sheet", self.sheet, image_files.PHOTO_EXTENSIONS)
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
        outputs.write_photo(editor.edit(photo, crops, targets[-1]), job.out)
        summary["written"]["out"] = job.out
    if job.gif:
        keyframes = np.concatenate([start[:, None], np.broadcast_to(targets, (len(crops),) + targets.shape)], axis=1)
        frames = editor.animate(photo, crops, keyframes, job.frames)
        outputs.write_animation(frames, job.gif, job.fps, job.animation_max_side)
        summary["written"]["gif"] = job.gif
        summary["frames"] = job.frames
    if job.sheet:
        outputs.write_photo(editor.sheet(crops[0], start[0], targets[-1]), job.sheet)
        summary["written"]["sheet"] = job.sheet
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _named(aus: np.ndarray) -> dict[str, float]:
    """The AUs above 0.005 by name, rounded to 3 decimals (the summary's form)."""
    return {name: round(float(value), 3) for name, value in zip(action_units.AU_NAMES, aus) if value > 0.005}
