"""The files the editor writes: the edited photo (or a sheet) and the animation, each written atomically.

    write_photo(edited, "happy.png")                       # .jpg, .jpeg, .png or .webp (PHOTO_EXTENSIONS)
    write_animation(frames, "face.gif", fps=12, max_side=512)  # .gif or .webp (ANIMATION_EXTENSIONS)

PNG and WebP photos are lossless, so pixels outside the faces stay exact; JPEG re-encodes them.
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from tf_ganimation.core import atomic, image_files

# The file names of animations and the format each is written in.
ANIMATION_EXTENSIONS = {".gif": "GIF", ".webp": "WEBP"}
_PHOTO_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}, "PNG": {}}
# Browsers play GIF delays below 20 ms at 100 ms.
_MIN_FRAME_MS = 20


def write_photo(image: np.ndarray, path: str) -> pathlib.Path:
    """Writes uint8 [H, W, 3] `image` in the format of `path`'s extension (image_files.PHOTO_EXTENSIONS).

    JPEG at quality 95 without chroma subsampling; WebP lossless; PNG.
    """
    image_format = image_files.PHOTO_EXTENSIONS[pathlib.Path(path).suffix.lower()]
    options = _PHOTO_OPTIONS[image_format]
    return atomic.write_with(path, lambda temporary: Image.fromarray(image).save(
        temporary, format=image_format, **options))


def write_animation(frames: list[np.ndarray], path: str, fps: float, max_side: int) -> pathlib.Path:
    """Writes frames as an animated GIF or WebP (ANIMATION_EXTENSIONS), looping forever.

    Args:
        frames: uint8 [H, W, 3] photos, in order.
        path: a .gif (one shared palette, see shared_palette) or .webp file.
        fps: frames per second; each frame lasts round(1000 / fps) ms, at least 20 ms.
        max_side: frames are downscaled (Lanczos) so their longer side is at most this (0: full size).
    """
    images = [Image.fromarray(frame) for frame in frames]
    height, width = frames[0].shape[:2]
    if max_side and max(height, width) > max_side:
        ratio = max_side / max(height, width)
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        images = [image.resize(size, Image.Resampling.LANCZOS) for image in images]
    image_format = ANIMATION_EXTENSIONS[pathlib.Path(path).suffix.lower()]
    if image_format == "GIF":
        images = shared_palette(images)
    duration = max(_MIN_FRAME_MS, round(1000.0 / fps))
    return atomic.write_with(path, lambda temporary: images[0].save(
        temporary, format=image_format, save_all=True, append_images=images[1:], duration=duration, loop=0))


def shared_palette(images: list[Image.Image]) -> list[Image.Image]:
    """The frames in one 256-colour palette (from the first, middle and last frames), without dithering.

    One palette and no error diffusion keep every unchanged pixel the same in every frame, so the photo
    around the face does not flicker; and octree quantization is about a hundred times faster than PIL's
    default GIF quantization (BENCHMARKS.md, "Photo editor").
    """
    picks = [images[0], images[len(images) // 2], images[-1]]
    mosaic = Image.new("RGB", (picks[0].width, picks[0].height * len(picks)))
    for index, image in enumerate(picks):
        mosaic.paste(image, (0, index * image.height))
    palette = mosaic.quantize(256, method=Image.Quantize.FASTOCTREE)
    return [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
