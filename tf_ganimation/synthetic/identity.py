"""A face's identity: everything about it except its expression, as a small frozen dataclass.

An `Identity` is ~35 numbers: face shape, placement and tilt, skin, hair, beard, eyes, lips, clothes,
background, lighting. `sample_identity(rng)` draws one from palettes of skin tones, hair and eye
colours; `to_dict`/`from_dict` round-trip it through JSON exactly, which is how a synthetic dataset
stores its faces (identities.json) so that any of them can be rendered again with other AUs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

HAIR_STYLES = ("short", "long", "bob", "bangs", "buzz")

RGB = tuple[int, int, int]

# Skin tones from light to dark; an identity takes a point between two neighbours.
_SKIN_TONES = np.array([(250, 222, 200), (238, 196, 168), (222, 174, 140), (198, 140, 104),
                        (165, 108, 76), (122, 78, 54), (88, 56, 40)], np.float64)
_HAIR_COLORS = np.array([(28, 24, 22), (58, 40, 30), (98, 66, 42), (140, 74, 40), (196, 160, 100),
                         (150, 146, 142), (74, 54, 44)], np.float64)
_EYE_COLORS = np.array([(86, 54, 32), (52, 32, 22), (118, 92, 52), (78, 116, 70), (66, 108, 158),
                        (108, 118, 128)], np.float64)


@dataclasses.dataclass(frozen=True)
class Identity:
    """Everything about a face except its expression; small and JSON-serialisable.

    Placement is in fractions of the image side, tilt in degrees (clockwise), shapes in face units
    (see tf_ganimation.synthetic.geometry), colours are RGB 0..255 and `light_strength` a fraction of brightness.
    `sample_identity(rng)` draws one; `to_dict`/`from_dict` round-trip it through JSON exactly.
    """

    center_x: float = 0.5
    center_y: float = 0.47
    scale: float = 0.33
    tilt: float = 0.0
    face_width: float = 0.93
    jaw_squareness: float = 2.2
    jaw_taper: float = 0.15
    chin_length: float = 1.12
    eye_spacing: float = 0.38
    eye_size: float = 1.0
    brow_height: float = -0.36
    brow_thickness: float = 0.075
    nose_width: float = 1.0
    nose_length: float = 0.31
    mouth_width: float = 1.0
    lip_fullness: float = 1.0
    hair_style: int = 0
    hairline: float = -0.85
    hair_length: float = 1.0
    hair_volume: float = 1.08
    hair_part: float = 0.0
    beard: float = 0.0
    skin_color: RGB = (222, 174, 140)
    hair_color: RGB = (58, 40, 30)
    brow_color: RGB = (46, 32, 24)
    eye_color: RGB = (86, 54, 32)
    lip_color: RGB = (186, 106, 100)
    clothing_color: RGB = (60, 80, 120)
    background_top: RGB = (120, 140, 160)
    background_bottom: RGB = (70, 80, 90)
    background_angle: float = 90.0
    background_texture: float = 0.5
    light_angle: float = 200.0
    light_strength: float = 0.15
    texture_seed: int = 0

    def __post_init__(self):
        if not 0 <= self.hair_style < len(HAIR_STYLES):
            raise ValueError(f"hair_style={self.hair_style!r} is invalid: expected an integer in "
                             f"[0, {len(HAIR_STYLES) - 1}] ({', '.join(HAIR_STYLES)})")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            values = value if isinstance(value, tuple) else (value,)
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ValueError(f"identity field {field.name}={value!r} is invalid: expected finite numbers")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (colours become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Identity:
        """The inverse of `to_dict`; raises ValueError naming unknown or missing fields."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        missing = sorted(set(fields) - set(values))
        if unknown or missing:
            raise ValueError(f"identity dict does not match Identity: unknown fields {unknown}, "
                             f"missing fields {missing}")
        kwargs = {}
        for name, value in values.items():
            if isinstance(value, (list, tuple)):
                if len(value) != 3:
                    raise ValueError(f"identity field {name}={value!r} is invalid: expected 3 RGB values")
                value = tuple(int(v) for v in value)
            elif name in ("hair_style", "texture_seed"):
                value = int(value)
            else:
                value = float(value)
            kwargs[name] = value
        return cls(**kwargs)


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    # Rounded so that identities.json stays short; JSON round-trips the rounded float exactly.
    return round(float(rng.uniform(low, high)), 4)


def _color(rgb: np.ndarray) -> RGB:
    return tuple(int(round(v)) for v in np.clip(rgb, 0, 255))


def _pick_color(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> RGB:
    return _color(palette[rng.integers(len(palette))] + rng.normal(0, jitter, 3))


def _luminance(rgb: np.ndarray) -> float:
    return float(np.dot(rgb, [0.299, 0.587, 0.114]))


def _muted_color(rng: np.random.Generator) -> np.ndarray:
    hue = rng.uniform(0, 2 * np.pi)
    base = rng.uniform(50, 200)
    saturation = rng.uniform(0, 60)
    return base + saturation * np.cos(hue + np.array([0.0, 2.1, 4.2]))


def sample_identity(rng: np.random.Generator) -> Identity:
    """A random identity; the same generator state always gives the same identity."""
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    low = int(tone)
    skin = _SKIN_TONES[low] + (tone - low) * (_SKIN_TONES[min(low + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[low])
    skin = skin * rng.uniform(0.96, 1.04, 3)
    hair = np.array(_pick_color(rng, _HAIR_COLORS, 8.0), np.float64)
    hair_style = int(rng.integers(len(HAIR_STYLES)))
    bearded = HAIR_STYLES[hair_style] in ("short", "buzz") and rng.uniform() < 0.5
    lip = skin + rng.uniform(0.3, 0.5) * (np.array([176.0, 64.0, 76.0]) - skin)
    lip = lip * rng.uniform(0.78, 0.92)
    # Lips and brows stay clearly darker than the skin, or their AUs would vanish on some skins.
    lip = lip * min(1.0, (_luminance(skin) - 28.0) / _luminance(lip))
    brow = np.minimum(hair * 0.75 + 8.0, skin * 0.5)
    top = _muted_color(rng)
    return Identity(
        center_x=_uniform(rng, 0.47, 0.53),
        center_y=_uniform(rng, 0.45, 0.5),
        scale=_uniform(rng, 0.31, 0.35),
        tilt=_uniform(rng, -7.0, 7.0),
        face_width=_uniform(rng, 0.86, 1.0),
        jaw_squareness=_uniform(rng, 1.8, 2.7),
        jaw_taper=_uniform(rng, 0.05, 0.25),
        chin_length=_uniform(rng, 1.06, 1.18),
        eye_spacing=_uniform(rng, 0.35, 0.41),
        eye_size=_uniform(rng, 0.92, 1.12),
        brow_height=_uniform(rng, -0.39, -0.34),
        brow_thickness=_uniform(rng, 0.06, 0.095),
        nose_width=_uniform(rng, 0.85, 1.2),
        nose_length=_uniform(rng, 0.28, 0.34),
        mouth_width=_uniform(rng, 0.9, 1.12),
        lip_fullness=_uniform(rng, 0.8, 1.25),
        hair_style=hair_style,
        hairline=_uniform(rng, -0.95, -0.78),
        hair_length=_uniform(rng, 0.5, 1.7),
        hair_volume=_uniform(rng, 1.04, 1.16),
        hair_part=_uniform(rng, -0.3, 0.3),
        beard=_uniform(rng, 0.2, 0.45) if bearded else 0.0,
        skin_color=_color(skin),
        hair_color=_color(hair),
        brow_color=_color(brow),
        eye_color=_pick_color(rng, _EYE_COLORS, 10.0),
        lip_color=_color(lip),
        clothing_color=_color(_muted_color(rng) * rng.uniform(0.5, 1.2)),
        background_top=_color(top),
        background_bottom=_color(top * rng.uniform(0.4, 1.0) + rng.normal(0, 20, 3)),
        background_angle=_uniform(rng, 0.0, 360.0),
        background_texture=_uniform(rng, 0.0, 1.0),
        light_angle=_uniform(rng, 0.0, 360.0),
        light_strength=_uniform(rng, 0.04, 0.22),
        texture_seed=int(rng.integers(2**31 - 1)),
    )
