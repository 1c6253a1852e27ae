"""Synthetic video clips: a face whose AUs follow a known curve over time, with a small head motion.

    times = np.arange(48) / 12.0
    aus = true_aus(times)                                 # float32 [48, 17]: holds and ramps, known exactly
    for frame in render_clip(identity, aus, times, size=128):
        ...                                               # uint8 [128, 128, 3]

Every frame is `renderer.render_face` of the identity, moved by `head_motion` (a slow sway, nod, turn
and zoom in face placement), with that frame's AUs, so the true AUs of every frame are known and the
true rendering of any other face with them can be drawn: the ground truth of reenactment.

The default curve (KEYFRAMES) holds each expression for a while between ramps, so a clip has stretches
where the truth does not change: any frame-to-frame change there is jitter.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np

from tf_ganimation.core import action_units
from tf_ganimation.synthetic import renderer
from tf_ganimation.synthetic.identity import Identity

# (seconds, expression): holds of 0.5 s between 0.5 s ramps.
KEYFRAMES: tuple[tuple[float, str], ...] = (
    (0.0, "neutral"), (0.5, "neutral"), (1.0, "happy"), (1.5, "happy"), (2.0, "surprise"), (2.5, "surprise"),
    (3.0, "sad"), (3.5, "sad"), (4.0, "neutral"),
)


@dataclasses.dataclass(frozen=True)
class HeadMotion:
    """A small periodic head motion, in the identity's placement units.

    Attributes:
        sway: horizontal amplitude, a fraction of the image side.
        nod: vertical amplitude, a fraction of the image side.
        turn: tilt amplitude in degrees.
        zoom: relative scale amplitude.
        period_s: seconds of one cycle.
    """

    sway: float = 0.03
    nod: float = 0.015
    turn: float = 3.0
    zoom: float = 0.04
    period_s: float = 2.5


def true_aus(times, keyframes=KEYFRAMES) -> np.ndarray:
    """The AUs at `times` (seconds, float [N]) of a piecewise-linear curve through (time, expression) keyframes.

    Returns:
        float32 [N, 17] in [0, 1]; before the first keyframe the first, after the last the last.
    """
    key_times = np.array([time for time, _ in keyframes], np.float64)
    if np.any(np.diff(key_times) < 0):
        raise ValueError(f"keyframe times must not decrease, got {key_times.tolist()}")
    key_aus = np.stack([action_units.parse_expression(expression) for _, expression in keyframes])
    times = np.asarray(times, np.float64).reshape(-1)
    return np.stack([np.interp(times, key_times, key_aus[:, index]) for index in range(action_units.NUM_AUS)],
                    axis=1).astype(np.float32)


def head_motion(identity: Identity, time: float, motion: HeadMotion = HeadMotion()) -> Identity:
    """The identity moved as `motion` says at `time` seconds (sway and zoom in phase, nod and turn at other phases)."""
    phase = 2 * math.pi * time / motion.period_s
    return dataclasses.replace(
        identity, center_x=identity.center_x + motion.sway * math.sin(phase),
        center_y=identity.center_y + motion.nod * math.sin(2 * phase),
        tilt=identity.tilt + motion.turn * math.sin(phase + 1.0),
        scale=identity.scale * (1.0 + motion.zoom * math.sin(phase + 2.0)))


def render_clip(identity: Identity, aus: np.ndarray, times, size: int = 128,
                motion: HeadMotion | None = HeadMotion()) -> Iterator[np.ndarray]:
    """The frames of a clip, one at a time.

    Args:
        identity: the face.
        aus: float [N, 17] in [0, 1], each frame's AUs (true_aus(times)).
        times: float [N] seconds (they set the head motion).
        size: frame side in pixels (renderer.MIN_SIZE..MAX_SIZE).
        motion: the head motion; None keeps the head still.

    Yields:
        uint8 [size, size, 3] frames.
    """
    aus = np.asarray(aus, np.float32)
    times = np.asarray(times, np.float64).reshape(-1)
    if aus.shape != (times.size, action_units.NUM_AUS):
        raise ValueError(f"aus of shape {list(aus.shape)} for {times.size} times: expected [{times.size}, "
                         f"{action_units.NUM_AUS}]")
    for time, frame_aus in zip(times, aus):
        placed = identity if motion is None else head_motion(identity, float(time), motion)
        yield renderer.render_face(placed, frame_aus, size)
