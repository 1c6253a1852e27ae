"""Pixel ranges, and the one place that converts between them.

Three ranges meet in this package:
  * model range: float [-1, 1], what the generator and critic read and write (`real_image`,
    `fake_image`, `color`);
  * unit range: float [0, 1], the boundary of every `EditModel`, the SavedModel and the TFLite file;
  * uint8 range: [0, 255], files, photos and sample grids.

The conversions are plain arithmetic, so they take numpy arrays and TensorFlow tensors alike (cast
integer input to float first); the ones that end in uint8 clip and round, numpy only.
"""

from __future__ import annotations

import numpy as np


def unit_to_model(images):
    """[0, 1] -> [-1, 1]."""
    return images * 2.0 - 1.0


def model_to_unit(images):
    """[-1, 1] -> [0, 1] (not clipped)."""
    return (images + 1.0) / 2.0


# uint8_to_model of every grey level, in float32 as the input pipelines compute it: a lookup keeps a
# compiled function's image normalisation bit-exact (grappler turns the division into a multiplication by
# the reciprocal, which is off by one ulp for many levels).
UINT8_TO_MODEL_TABLE = np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def uint8_to_model(images):
    """[0, 255] (float) -> [-1, 1]."""
    return images / 127.5 - 1.0


def uint8_to_unit(images) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]."""
    return np.asarray(images, np.float32) / 255.0


def model_to_255(images) -> np.ndarray:
    """[-1, 1] -> float32 [0, 255], clipped to the range first (the scale of the paired metrics)."""
    return (np.clip(np.asarray(images, np.float32), -1.0, 1.0) + 1.0) * 127.5


def unit_to_uint8(images) -> np.ndarray:
    """[0, 1] -> uint8 [0, 255], rounded and clipped."""
    return np.clip(np.round(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def model_to_uint8(images) -> np.ndarray:
    """[-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return unit_to_uint8(model_to_unit(np.asarray(images, np.float32)))
