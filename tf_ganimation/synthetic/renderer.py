"""Procedural faces whose expression is set by exact AU intensities: a dataset made in seconds.

EmotioNet and CelebA cannot be shipped, so this module draws faces itself. A face is an `Identity`
(a frozen dataclass of ~35 numbers: face shape, placement and tilt, skin, hair, beard, eyes, lips,
clothes, background, lighting) plus an AU vector; `render_face(identity, aus, size)` turns them into
an image. Because the renderer is a pure function, the TRUE result of any edit (same identity,
other AUs) can be rendered, which gives GANimation a quantitative quality measure.
`synthetic_dataset.make_dataset` writes such faces in the authors' GANimation layout.

How a face is drawn: every shape is a polygon in *face units* (origin near the middle of the face,
x to the right, y down, 1 unit = half the cheekbone width, 0.31-0.35 of the image side), computed
from the identity and the AUs (`face_geometry` exposes the key points). The polygons are rotated,
scaled and placed, drawn with PIL at 3x the output size (2x above 128 px) and box-downsampled, so
edges are anti-aliased like a photo's. Lighting (a directional gradient and a soft darkening of the
face's rim) is applied at the output size.

What each AU does at intensity 1 (1 face unit is about 21 px at 64 px, 42 px at 128 px). Every
effect is linear in its intensity, so shapes move and lines darken monotonically as it grows:
    AU01 inner brow raiser: inner brow ends up 0.24, brow middles up 0.10, central forehead lines.
    AU02 outer brow raiser: outer brow ends up 0.24, brow middles up 0.13, lateral forehead lines.
    AU04 brow lowerer: brows down 0.06-0.15 and 0.06 closer together, frown lines and shadow between.
    AU05 upper lid raiser: upper lids up 0.09 (white shows above the iris).
    AU06 cheek raiser: cheeks up 0.14 and redder, lower lids up 0.045, crow's feet, under-eye fold.
    AU07 lid tightener: lower lids up 0.06, upper lids down 0.04 (narrowed eyes), under-eye fold.
    AU09 nose wrinkler: nose base up 0.06 and 25% wider, wrinkles across the bridge, inner brows down 0.06.
    AU10 upper lip raiser: upper lip up 0.08 (the upper teeth show), nose base up 0.03, deeper folds.
    AU12 lip corner puller: mouth corners up 0.24 and out 0.08 (smile), cheeks up 0.05, deeper folds.
    AU14 dimpler: mouth corners in 0.06 and up 0.05, dimples beside them.
    AU15 lip corner depressor: mouth corners down 0.18.
    AU17 chin raiser: mouth centre and chin up 0.05, fuller lower lip, chin crease and bumps.
    AU20 lip stretcher: mouth corners out 0.17 and down 0.04, lips 40% thinner, stretch lines.
    AU23 lip tightener: mouth 0.11 narrower, lips 65% thinner, darker line between them.
    AU25 lips part: lips 0.11 apart (upper teeth and the dark mouth show).
    AU26 jaw drop: lower lip down 0.32 and chin down 0.26; dark mouth, tongue, both rows of teeth.
    AU45 blink: upper lids close onto the lower lids.

No AU is inert: INERT_AUS is empty. It is kept (and tested) so that a simplification that drops an
effect has to say so.

Notes: the faces are illustrations (flat skin, polygon features), not photographs, and the AU
effects are exaggerated compared to FACS so that a small GANimation learns them on a CPU in minutes.
Combined AUs add their displacements (e.g. AU12 with AU15 cancel at the mouth corners), which FACS
does not promise for real faces.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tf_ganimation.core import action_units

# AUs with no visible effect on the rendered face (see the module docstring); none.
INERT_AUS: tuple[str, ...] = ()

MIN_SIZE, MAX_SIZE = 16, 1024
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
    (see the module docstring), colours are RGB 0..255 and `light_strength` a fraction of brightness.
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
    def from_dict(cls, values: Mapping[str, Any]) -> "Identity":
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


# === Geometry ===

def _check_aus(aus) -> dict[str, float]:
    aus = np.asarray(aus, np.float64)
    if aus.shape != (action_units.NUM_AUS,):
        raise ValueError(f"aus must have shape [{action_units.NUM_AUS}], got {list(aus.shape)}")
    if not np.all(np.isfinite(aus)) or aus.min() < 0.0 or aus.max() > 1.0:
        raise ValueError(f"aus must be finite intensities in [0, 1], got min {aus.min()} max {aus.max()}")
    return dict(zip(action_units.AU_NAMES, aus.tolist()))


def _bulge(t: np.ndarray, power: float) -> np.ndarray:
    """1 at t=0, 0 at t=+-1: the profile of lids and lips between their corners."""
    return np.clip(1.0 - t * t, 0.0, 1.0) ** power


def _points(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([x, y], axis=-1)


@functools.lru_cache(maxsize=None)
def _unit_circle(count: int) -> np.ndarray:
    angles = np.linspace(0.0, 2 * np.pi, count, endpoint=False)
    return _points(np.cos(angles), np.sin(angles))


def _ellipse(cx: float, cy: float, rx: float, ry: float, count: int = 24) -> np.ndarray:
    return _unit_circle(count) * (rx, ry) + (cx, cy)


def _between(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points on the segment start-end, t in [-1, 1] (start at -1)."""
    w = ((t + 1.0) / 2.0)[:, None]
    return (1.0 - w) * start + w * end


def _head_outline(identity: Identity, chin: float, count: int = 48) -> np.ndarray:
    """The face's outline: an ellipse above y=0, a tapering superellipse down to the chin."""
    width = identity.face_width
    upper = np.linspace(np.pi, 2 * np.pi, count // 2, endpoint=False)
    top = _points(width * np.cos(upper), 1.3 * np.sin(upper))
    lower = np.linspace(0.0, np.pi, count // 2, endpoint=False)
    exponent = 2.0 / identity.jaw_squareness
    cos, sin = np.cos(lower), np.sin(lower)
    y = chin * np.abs(sin) ** exponent
    x = width * np.sign(cos) * np.abs(cos) ** exponent * (1.0 - identity.jaw_taper * (y / chin) ** 2)
    return np.concatenate([top, _points(x, y)])


def _beard_outline(identity: Identity, head: np.ndarray, nose_base: float) -> np.ndarray:
    """The jaw below the sideburns, closed by the beard line over the cheeks and under the nose."""
    jaw = head[len(head) // 2:]  # the lower half: right cheek, down around the chin, up the left cheek
    right = np.array([[0.25, nose_base + 0.09], [0.58, 0.4], [identity.face_width * 0.9, 0.05]])
    top = np.concatenate([(right * [-1.0, 1.0])[::-1], [[0.0, nose_base + 0.04]], right])
    return np.concatenate([jaw, top])


def _eye(identity: Identity, au: Mapping[str, float], side: int) -> dict[str, np.ndarray]:
    """One eye (side -1: image left, +1: image right): lids, iris, folds, in face units."""
    size = identity.eye_size
    center = np.array([side * identity.eye_spacing, -0.12])
    half_width = 0.18 * size
    inner = center + [-side * half_width, 0.012]
    outer = center + [side * half_width, -0.015]
    upper_height = 0.105 * size + 0.09 * au["AU05"] - 0.04 * au["AU07"] - 0.02 * au["AU06"]
    lower_height = 0.062 * size - 0.06 * au["AU07"] - 0.045 * au["AU06"]
    upper_height = max(upper_height, 0.01 - lower_height)
    t = np.linspace(-1.0, 1.0, 15)
    line = _between(inner, outer, t)
    upper = line - _points(0 * t, upper_height * _bulge(t + 0.15 * side * (1 - t * t), 0.9))
    lower = line + _points(0 * t, lower_height * _bulge(t, 0.9))
    # A blink lowers the upper lid all the way onto the lower lid.
    upper = upper + au["AU45"] * (lower - upper)
    opening = np.concatenate([upper, lower[::-1]])
    iris_radius = 0.083 * size
    lid_fold = min(0.055, 0.03 + 0.6 * max(upper_height, 0.0))
    return {
        "upper_lid": upper,
        "lower_lid": lower,
        "opening": opening,
        "iris_center": center + [0.0, -0.008],
        "iris_radius": np.array(iris_radius),
        "crease": upper[2:-2] - [0.0, lid_fold],
        "socket": _ellipse(center[0], center[1] - 0.02, 0.27 * size, 0.19 * size),
        "under_eye": lower[3:-2] + [0.0, 0.055],
        "crows_feet": np.array([[outer + [side * 0.05, dy], outer + [side * 0.15, 2.2 * dy]]
                                for dy in (-0.035, 0.0, 0.035)]),
    }


def _brow(identity: Identity, au: Mapping[str, float], side: int) -> np.ndarray:
    """One eyebrow as a polygon, thick at the inner end and thin at the outer end."""
    base = identity.brow_height
    inner = np.array([side * 0.13, base + 0.03])
    middle = np.array([side * 0.37, base - 0.055])
    outer = np.array([side * 0.63, base + 0.01])
    inner = inner + [side * 0.06 * au["AU04"], -0.24 * au["AU01"] + 0.15 * au["AU04"] + 0.06 * au["AU09"]]
    middle = middle + [0.0, -0.10 * au["AU01"] - 0.13 * au["AU02"] + 0.12 * au["AU04"] + 0.03 * au["AU09"]]
    outer = outer + [0.0, -0.24 * au["AU02"] + 0.06 * au["AU04"]]
    t = np.linspace(0.0, 1.0, 11)[:, None]
    curve = (1 - t) ** 2 * inner + 2 * t * (1 - t) * (2 * middle - (inner + outer) / 2) + t**2 * outer
    thickness = identity.brow_thickness * (1.0 - 0.55 * t[:, 0])
    upper = curve - _points(0 * thickness, thickness * 0.55)
    lower = curve + _points(0 * thickness, thickness * 0.45)
    return np.concatenate([upper, lower[::-1]])


def _mouth(identity: Identity, au: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Lips, opening and teeth in face units; see the module docstring for each AU's share."""
    half_width = (0.33 * identity.mouth_width + 0.08 * au["AU12"] + 0.17 * au["AU20"] - 0.11 * au["AU23"]
                  - 0.06 * au["AU14"] - 0.04 * au["AU26"])
    center_y = 0.64 - 0.05 * au["AU17"]
    corner_y = (0.64 - 0.24 * au["AU12"] + 0.18 * au["AU15"] + 0.04 * au["AU20"] + 0.02 * au["AU17"]
                + 0.09 * au["AU26"] + 0.02 * au["AU25"] - 0.02 * au["AU10"] - 0.05 * au["AU14"])
    thinning = max(0.2, 1.0 - 0.4 * au["AU20"] - 0.65 * au["AU23"] - 0.15 * au["AU12"])
    upper_thickness = 0.072 * identity.lip_fullness * thinning
    lower_thickness = 0.095 * identity.lip_fullness * thinning * (1.0 + 0.35 * au["AU17"])
    lift = 0.08 * au["AU10"]  # AU10 raises the whole upper lip
    gap_up = 0.025 * au["AU25"] + 0.01 * au["AU26"] + lift
    gap_down = 0.085 * au["AU25"] + 0.32 * au["AU26"]
    t = np.linspace(-1.0, 1.0, 21)
    x = t * half_width
    upper_inner = corner_y + (center_y - gap_up - corner_y) * _bulge(t, 0.9)
    lower_inner = corner_y + (center_y + gap_down - corner_y) * _bulge(t, 0.6 if gap_down > 0.05 else 0.9)
    cupid = 1.0 + 0.3 * np.exp(-(((np.abs(t) - 0.25) / 0.13) ** 2)) - 0.25 * np.exp(-((t / 0.1) ** 2))
    upper_outer = upper_inner - upper_thickness * _bulge(t, 0.45) * cupid - lift * 0.3 * _bulge(t, 1.0)
    lower_outer = lower_inner + lower_thickness * _bulge(t, 0.55)
    inner_t = t[3:-3]
    teeth_x = inner_t * half_width
    upper_teeth_top = upper_inner[3:-3] - 0.02
    upper_teeth_bottom = upper_inner[3:-3] + 0.075 * _bulge(inner_t, 0.3)
    lower_teeth_top = lower_inner[3:-3] - 0.05 * _bulge(inner_t, 0.3)
    lower_teeth_bottom = lower_inner[3:-3] + 0.02
    return {
        "upper_lip": np.concatenate([_points(x, upper_outer), _points(x, upper_inner)[::-1]]),
        "lower_lip": np.concatenate([_points(x, lower_inner), _points(x, lower_outer)[::-1]]),
        "opening": np.concatenate([_points(x, upper_inner), _points(x, lower_inner)[::-1]]),
        "upper_teeth": np.concatenate([_points(teeth_x, upper_teeth_top), _points(teeth_x, upper_teeth_bottom)[::-1]]),
        "lower_teeth": np.concatenate([_points(teeth_x, lower_teeth_top), _points(teeth_x, lower_teeth_bottom)[::-1]]),
        "tongue": _ellipse(0.0, center_y + gap_down - 0.02, 0.6 * half_width, 0.09),
        "lower_lip_bottom": np.array([0.0, lower_outer[10]]),
        "upper_lip_top": np.array([0.0, upper_outer[10]]),
        "opening_height": np.array(gap_up + gap_down),
        "corners": np.array([[-half_width, corner_y], [half_width, corner_y]]),
    }


def _nose(identity: Identity, au: Mapping[str, float]) -> dict[str, np.ndarray]:
    width = identity.nose_width
    base = identity.nose_length - 0.06 * au["AU09"] - 0.03 * au["AU10"]
    flare = width * (1.0 + 0.25 * au["AU09"])
    wings = []
    for side in (-1, 1):
        angles = np.linspace(-0.5 * np.pi, 0.6 * np.pi, 9)
        wing = _points(side * (0.075 * flare + 0.06 * flare * np.cos(angles)), base - 0.02 + 0.065 * np.sin(angles))
        wings.append(wing)
    return {
        "base": np.array([0.0, base]),
        "nostrils": np.array([_ellipse(side * 0.068 * flare, base - 0.005, 0.04 * flare, 0.022, 12)
                              for side in (-1, 1)]),
        "wings": np.array(wings),
        "bridge": np.array([[[side * 0.07, -0.12], [side * 0.085, base - 0.12]] for side in (-1, 1)]),
        "tip": _ellipse(0.0, base - 0.06, 0.055 * width, 0.04),
        "shadow": _ellipse(0.0, base + 0.055, 0.11 * width, 0.035),
        "wrinkles": np.array([[[-0.08, y], [0.0, y - 0.015], [0.08, y]] for y in (-0.08, -0.02, 0.04)]),
    }


def _face_shapes(identity: Identity, au: Mapping[str, float]) -> dict[str, Any]:
    """All the polygons, in face units, that `render_face` draws."""
    chin = identity.chin_length + 0.26 * au["AU26"] - 0.05 * au["AU17"]
    mouth = _mouth(identity, au)
    nose = _nose(identity, au)
    eyes = [_eye(identity, au, side) for side in (-1, 1)]
    fold_strength = max(au["AU12"], au["AU10"], 0.7 * au["AU09"], 0.5 * au["AU06"])
    folds, dimples, cheeks, stretch_lines = [], [], [], []
    for index, side in enumerate((-1, 1)):
        corner = mouth["corners"][index]
        start = np.array([side * 0.17 * identity.nose_width, nose["base"][1] - 0.06])
        end = corner + [side * (0.07 + 0.02 * au["AU12"]), 0.04]
        middle = (start + end) / 2 + [side * (0.06 + 0.03 * fold_strength), 0.0]
        t = np.linspace(0.0, 1.0, 8)[:, None]
        folds.append((1 - t) ** 2 * start + 2 * t * (1 - t) * middle + t**2 * end)
        dimple_center = corner + [side * 0.07, 0.0]
        angles = np.linspace(-0.6, 0.6, 6) + (0.0 if side > 0 else np.pi)
        dimples.append(_points(dimple_center[0] + 0.05 * np.cos(angles), dimple_center[1] + 0.08 * np.sin(angles)))
        cheeks.append(np.array([side * 0.5, 0.27 - 0.14 * au["AU06"] - 0.05 * au["AU12"]]))
        stretch_lines.append(corner + [[side * 0.04, 0.03], [side * 0.1, 0.12], [side * 0.12, 0.22]])
    lower_lip_bottom = mouth["lower_lip_bottom"][1]
    chin_crease_y = lower_lip_bottom + 0.21 * (chin - lower_lip_bottom) + 0.03
    t = np.linspace(-1.0, 1.0, 9)
    forehead_center, forehead_sides = [], []
    for row in range(3):  # raised brows push up the skin above them
        y = identity.brow_height - 0.18 - 0.09 * row - 0.15 * max(au["AU01"], au["AU02"])
        forehead_center.append(np.array([[-0.25, y + 0.02], [0.0, y], [0.25, y + 0.02]]))
        forehead_sides += [np.array([[side * 0.2, y + 0.02], [side * 0.45, y + 0.01], [side * 0.62, y + 0.05]])
                           for side in (-1, 1)]
    head = _head_outline(identity, chin)
    frown_top = identity.brow_height + 0.02 + 0.06 * au["AU04"]
    return {
        "head": head,
        "beard": _beard_outline(identity, head, nose["base"][1]),
        "chin": np.array([0.0, chin]),
        "eyes": eyes,
        "brows": [_brow(identity, au, side) for side in (-1, 1)],
        "nose": nose,
        "mouth": mouth,
        "cheeks": cheeks,
        "folds": folds,
        "dimples": dimples,
        "chin_crease": _points(0.16 * t, chin_crease_y - 0.02 * _bulge(t, 1.0)),
        "chin_bumps": np.array([[dx, chin - 0.16 + 0.05 * (abs(dx) > 0.05)] for dx in (-0.09, -0.03, 0.03, 0.09)]),
        "stretch_lines": stretch_lines,
        "frown_lines": np.array([[[side * 0.05, frown_top], [side * 0.035, frown_top + 0.14]] for side in (-1, 1)]),
        "frown_shadow": _ellipse(0.0, identity.brow_height + 0.1, 0.12, 0.1, 16),
        "forehead_center": forehead_center,
        "forehead_sides": forehead_sides,
    }


class _Placement:
    """Face units -> pixels: rotate by the tilt, scale, move to the identity's centre."""

    def __init__(self, identity: Identity, pixels: float):
        angle = math.radians(identity.tilt)
        unit = identity.scale * pixels
        self.matrix = unit * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        self.offset = np.array([identity.center_x, identity.center_y]) * pixels
        self.unit = unit

    def __call__(self, points) -> np.ndarray:
        return np.asarray(points, np.float64) @ self.matrix.T + self.offset

    def flat(self, points) -> list[float]:
        return self(points).ravel().tolist()


def face_geometry(identity: Identity, aus, size: int) -> dict[str, np.ndarray]:
    """Named key points of the face as drawn at `size`, in pixels (x right, y down).

    Args:
        identity: the face.
        aus: float [17] in [0, 1], action_units.AU_NAMES order.
        size: the image side in pixels.

    Returns:
        {name: float64 [2] (x, y)}: `mouth_left`, `mouth_right` (corners), `upper_lip_top`,
        `lower_lip_bottom`, `chin`, `nose_base`, `brow_<side>_inner`, `brow_<side>_outer`,
        `eye_<side>_upper`, `eye_<side>_lower` (lid midpoints), `cheek_<side>`, with side `left`/`right`
        as seen in the image; plus `mouth_opening` and `eye_<side>_opening`, float64 [] heights in pixels.
    """
    shapes = _face_shapes(identity, _check_aus(aus))
    place = _Placement(identity, size)
    mouth = shapes["mouth"]
    geometry = {
        "mouth_left": place(mouth["corners"][0]),
        "mouth_right": place(mouth["corners"][1]),
        "upper_lip_top": place(mouth["upper_lip_top"]),
        "lower_lip_bottom": place(mouth["lower_lip_bottom"]),
        "chin": place(shapes["chin"]),
        "nose_base": place(shapes["nose"]["base"]),
        "mouth_opening": np.array(float(mouth["opening_height"]) * place.unit),
    }
    for index, side in enumerate(("left", "right")):
        brow = shapes["brows"][index]
        eye = shapes["eyes"][index]
        geometry[f"brow_{side}_inner"] = place(brow[0])
        geometry[f"brow_{side}_outer"] = place(brow[10])
        geometry[f"eye_{side}_upper"] = place(eye["upper_lid"][7])
        geometry[f"eye_{side}_lower"] = place(eye["lower_lid"][7])
        geometry[f"eye_{side}_opening"] = np.array(float(eye["lower_lid"][7][1] - eye["upper_lid"][7][1]) * place.unit)
        geometry[f"cheek_{side}"] = place(shapes["cheeks"][index])
    return geometry


# === Drawing ===

def _shade(color: RGB, factor: float, alpha: float = 1.0) -> tuple[int, int, int, int]:
    # Plain Python: this runs ~80 times per face, and np.clip on scalars was a third of the render time.
    return tuple(min(max(int(c * factor), 0), 255) for c in color) + (min(max(int(alpha * 255), 0), 255),)


def _mix(color: RGB, other: RGB, weight: float) -> RGB:
    return tuple(int(round(c + weight * (o - c))) for c, o in zip(color, other))


def _background(identity: Identity, size: int) -> np.ndarray:
    """float32 [size, size, 3] in 0..255: a two-colour gradient, soft blotches, fine grain."""
    rng = np.random.default_rng(identity.texture_seed)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    angle = math.radians(identity.background_angle)
    # math.cos, not np.cos: a NumPy float64 scalar would promote the whole image to float64 (2x slower).
    ramp = (math.cos(angle) * coords[None, :] + math.sin(angle) * coords[:, None]) * 0.5 + 0.5
    ramp = np.clip(ramp, 0.0, 1.0)[..., None]
    top = np.array(identity.background_top, np.float32)
    bottom = np.array(identity.background_bottom, np.float32)
    image = top + ramp * (bottom - top)
    blotches = rng.standard_normal((4, 4), dtype=np.float32)
    blotches = np.asarray(Image.fromarray(blotches).resize((size, size), Image.BICUBIC))[..., None]
    grain = rng.standard_normal((size, size, 1), dtype=np.float32)
    return image + identity.background_texture * (14.0 * blotches + 4.0 * grain)


def _lighting(identity: Identity, place: _Placement, head: np.ndarray, size: int) -> np.ndarray:
    """float32 [size, size, 1]: a directional light times a soft darkening of the face's rim."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    angle = math.radians(identity.light_angle)
    direction = np.array([math.cos(angle), math.sin(angle)])
    light = 1.0 + identity.light_strength * (direction[0] * coords[None, :] + direction[1] * coords[:, None])
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon(place.flat(head), fill=255)
    shift = place.matrix @ direction * 0.12
    blurred_mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(blurred_mask).polygon(place.flat(head * 0.93 + shift / place.unit), fill=255)
    blurred = np.asarray(blurred_mask.filter(ImageFilter.GaussianBlur(0.12 * place.unit)), np.float32) / 255.0
    inside = np.asarray(mask, np.float32) / 255.0
    rim = 1.0 - 0.22 * inside * (1.0 - blurred)
    return (light[..., None] * rim[..., None]).astype(np.float32)


def _hair_shapes(identity: Identity) -> dict[str, Any]:
    """Hair in face units: `back` (behind the head, or None), `front` (over the top of the head),
    `strands` (polylines drawn over `front`) and `alpha` (buzz cuts let the scalp show through)."""
    style = HAIR_STYLES[identity.hair_style]
    # A buzz cut is translucent, so it hugs the head exactly instead of showing the background through it.
    volume = identity.hair_volume if style != "buzz" else 1.0
    width = identity.face_width * volume
    top = 1.3 * volume + (0.05 if style != "buzz" else 0.0)
    hairline = identity.hairline + {"bangs": 0.16, "buzz": 0.1}.get(style, 0.0)
    hairline = min(hairline, -0.7)  # never over a raised brow
    temple_y = -0.12 if style != "buzz" else -0.25
    # Outer edge over the top of the head, from the left temple to the right temple, a little uneven.
    start = math.asin(min(1.0, -temple_y / top))
    angles = np.linspace(np.pi + start, 2 * np.pi - start, 25)
    phase = (identity.texture_seed % 1000) / 1000 * 2 * np.pi
    radius = 1.0 + (0.025 if style != "buzz" else 0.0) * np.sin(7 * angles + phase)
    outer = _points(width * radius * np.cos(angles), top * radius * np.sin(angles))
    # Hairline from the right temple back to the left, with an optional side part.
    x = np.linspace(identity.face_width * 0.97, -identity.face_width * 0.97, 25)
    relative = np.abs(x) / identity.face_width
    exponent = 2.5 if style != "bangs" else 6.0
    y = hairline + (temple_y - hairline) * relative**exponent + 0.08 * identity.hair_part * x
    if style == "bangs":
        y = y + 0.03 * np.cos(x * 40.0) * (relative < 0.8)
    hairline_points = _points(x, y)
    strands = []
    if style != "buzz":
        fractions = np.linspace(0.15, 0.85, 6)[:, None]
        for index in range(2, 23, 3):
            root = hairline_points[24 - index]
            strands.append((1 - fractions) * root + fractions * outer[index] + [0.1 * identity.hair_part, 0.0])
    back = None
    if style in ("long", "bangs", "bob"):
        length = identity.hair_length if style != "bob" else min(identity.hair_length, 0.75)
        side = np.linspace(0.0, 1.0, 6)
        crown_angles = np.linspace(np.pi, 2 * np.pi, 25)
        crown = _points(width * 1.08 * np.cos(crown_angles), top * 1.02 * np.sin(crown_angles))
        right = _points(width * (1.08 + 0.06 * side), length * side)
        left = (right * [-1.0, 1.0])[::-1]
        back = np.concatenate([left, crown, right])
    return {"back": back, "front": np.concatenate([outer, hairline_points]), "strands": strands,
            "alpha": 0.6 if style == "buzz" else 1.0}


class _Canvas:
    """A PIL canvas, `supersample` times the output size, that takes points in face units."""

    def __init__(self, identity: Identity, size: int):
        self.supersample = 3 if size <= 128 else 2
        pixels = size * self.supersample
        self.place = _Placement(identity, pixels)
        background = np.clip(_background(identity, size) + 0.5, 0, 255).astype(np.uint8)
        # NEAREST up, then box down in `finish`: the background comes back exactly.
        self.image = Image.fromarray(background).resize((pixels, pixels), Image.NEAREST)
        self.draw = ImageDraw.Draw(self.image, "RGBA")

    def width(self, units: float) -> int:
        return max(1, round(units * self.place.unit))

    def polygon(self, points, color):
        self.draw.polygon(self.place.flat(points), fill=color)

    def line(self, points, color, units: float):
        self.draw.line(self.place.flat(points), fill=color, width=self.width(units), joint="curve")

    def clipped(self, clip: np.ndarray, fill, polygons=(), lines=()):
        """Paints `fill`, then polygons [(points, color)], then lines [(points, color, width)], inside `clip` only."""
        pixels = self.place(clip)
        x0, y0 = np.maximum(np.floor(pixels.min(axis=0)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(pixels.max(axis=0)).astype(int) + 3, self.image.size)
        if x1 <= x0 or y1 <= y0:
            return
        offset = np.array([x0, y0], np.float64)
        region = Image.new("RGB", (int(x1 - x0), int(y1 - y0)), fill[:3])
        draw = ImageDraw.Draw(region, "RGBA")
        for points, color in polygons:
            draw.polygon((self.place(points) - offset).ravel().tolist(), fill=color)
        for points, color, units in lines:
            draw.line((self.place(points) - offset).ravel().tolist(), fill=color, width=self.width(units))
        mask = Image.new("L", region.size, 0)
        ImageDraw.Draw(mask).polygon((pixels - offset).ravel().tolist(), fill=255)
        self.image.paste(region, (int(x0), int(y0)), mask)

    def finish(self) -> np.ndarray:
        """float32 [size, size, 3] in 0..255: the canvas box-downsampled to the output size."""
        return np.asarray(self.image.reduce(self.supersample), np.float32)


def _draw_body(canvas: _Canvas, identity: Identity, shapes: Mapping[str, Any], hair: Mapping[str, Any]):
    """Neck and shoulders, hair that falls behind the head, ears, the head."""
    skin, clothing, chin = identity.skin_color, identity.clothing_color, identity.chin_length
    canvas.polygon([[-0.42, 0.4], [0.42, 0.4], [0.5, chin + 1.5], [-0.5, chin + 1.5]], _shade(skin, 0.78))
    canvas.polygon(_ellipse(0.0, chin + 1.25, 2.0, 0.85, 40), _shade(clothing, 1.0))
    canvas.polygon(_ellipse(0.0, chin + 0.43, 0.47, 0.08, 16), _shade(clothing, 0.7))
    if hair["back"] is not None:
        canvas.polygon(hair["back"], _shade(identity.hair_color, 0.85))
    for side in (-1, 1):
        ear_x = side * identity.face_width * 0.97
        canvas.polygon(_ellipse(ear_x, -0.03, 0.12, 0.24), _shade(skin, 0.93))
        canvas.polygon(_ellipse(ear_x + side * 0.02, -0.03, 0.06, 0.15), _shade(skin, 0.72))
    canvas.polygon(shapes["head"], _shade(skin, 1.0))
    if identity.beard > 0:
        # Twice, the second time a little lower, so that the beard line over the cheeks is soft.
        beard_color = _shade(identity.hair_color, 0.8, identity.beard / 2)
        canvas.polygon(shapes["beard"], beard_color)
        canvas.polygon(shapes["beard"] + [0.0, 0.05] * (shapes["beard"][:, 1:] < 0.6), beard_color)


def _draw_skin(canvas: _Canvas, identity: Identity, shapes: Mapping[str, Any], au: Mapping[str, float]):
    """Cheeks, folds, dimples and wrinkles; each one's strength follows its AU."""
    skin = identity.skin_color
    blush = _shade(_mix(skin, (215, 90, 90), 0.5), 1.0, 0.06 + 0.06 * au["AU06"] + 0.03 * au["AU12"])
    for cheek in shapes["cheeks"]:
        for ring in range(4):  # concentric translucent ellipses make a soft gradient
            radius = 1.0 - 0.22 * ring
            canvas.polygon(_ellipse(cheek[0], cheek[1], 0.2 * radius, 0.13 * radius, 20), blush)
    fold_alpha = 0.16 + 0.6 * max(au["AU12"], au["AU10"], 0.7 * au["AU09"], 0.5 * au["AU20"])
    for fold in shapes["folds"]:
        canvas.line(fold, _shade(skin, 0.55, fold_alpha), 0.025)
    for dimple in shapes["dimples"]:
        center = dimple.mean(axis=0)
        canvas.polygon(_ellipse(center[0], center[1], 0.045, 0.09, 12), _shade(skin, 0.5, 0.7 * au["AU14"]))
        canvas.line(dimple, _shade(skin, 0.35, au["AU14"]), 0.045)
    for stretch in shapes["stretch_lines"]:
        canvas.line(stretch, _shade(skin, 0.35, au["AU20"]), 0.035)
    canvas.line(shapes["chin_crease"], _shade(skin, 0.5, 0.25 + 0.6 * au["AU17"]), 0.035)
    for bump in shapes["chin_bumps"]:
        canvas.polygon(_ellipse(bump[0], bump[1], 0.045, 0.03, 8), _shade(skin, 0.45, 0.8 * au["AU17"]))
    for wrinkle in shapes["forehead_center"]:
        canvas.line(wrinkle, _shade(skin, 0.6, 0.65 * au["AU01"]), 0.022)
    for wrinkle in shapes["forehead_sides"]:
        canvas.line(wrinkle, _shade(skin, 0.6, 0.65 * au["AU02"]), 0.022)
    for frown in shapes["frown_lines"]:
        canvas.line(frown, _shade(skin, 0.5, 0.8 * au["AU04"]), 0.03)
    canvas.polygon(shapes["frown_shadow"], _shade(skin, 0.6, 0.25 * au["AU04"]))


def _draw_eyes_and_brows(canvas: _Canvas, identity: Identity, shapes: Mapping[str, Any], au: Mapping[str, float]):
    skin = identity.skin_color
    for eye in shapes["eyes"]:
        canvas.polygon(eye["socket"], _shade(skin, 0.86, 0.35))
        canvas.line(eye["crease"], _shade(skin, 0.6, 0.6), 0.018)
        (x, y), radius = eye["iris_center"], float(eye["iris_radius"])
        canvas.clipped(eye["opening"], (232, 226, 220, 255), polygons=[
            (_ellipse(x, y, radius, radius, 20), _shade(identity.eye_color, 1.0)),
            (_ellipse(x, y, 0.45 * radius, 0.45 * radius, 16), (12, 10, 10, 255)),
            (_ellipse(x - 0.35 * radius, y - 0.35 * radius, 0.22 * radius, 0.22 * radius, 8), (250, 250, 250, 230)),
        ], lines=[(eye["upper_lid"], (60, 40, 40, 90), 0.05)])  # the upper lid's shadow on the eyeball
        canvas.line(eye["lower_lid"], _shade(skin, 0.55, 0.8), 0.014)
        canvas.line(eye["upper_lid"], (28, 20, 20, 255), 0.03)
        canvas.line(eye["under_eye"], _shade(skin, 0.6, 0.15 + 0.6 * max(au["AU06"], 0.7 * au["AU07"])), 0.02)
        for crow in eye["crows_feet"]:
            canvas.line(crow, _shade(skin, 0.55, 0.8 * au["AU06"]), 0.018)
    for brow in shapes["brows"]:
        canvas.polygon(brow, _shade(identity.brow_color, 1.0))


def _draw_nose(canvas: _Canvas, identity: Identity, nose: Mapping[str, np.ndarray], au: Mapping[str, float]):
    skin = identity.skin_color
    dark_side = 0 if math.cos(math.radians(identity.light_angle)) > 0 else 1  # the side away from the light
    canvas.line(nose["bridge"][dark_side], _shade(skin, 0.6, 0.35), 0.03)
    canvas.line(nose["bridge"][1 - dark_side], _shade(skin, 0.7, 0.12), 0.02)
    canvas.polygon(nose["shadow"], _shade(skin, 0.6, 0.3))
    canvas.polygon(nose["tip"], _shade(skin, 1.1, 0.5))
    for wing in nose["wings"]:
        canvas.line(wing, _shade(skin, 0.55, 0.75), 0.022)
    for nostril in nose["nostrils"]:
        canvas.polygon(nostril, _shade(skin, 0.3))
    for wrinkle in nose["wrinkles"]:
        canvas.line(wrinkle, _shade(skin, 0.5, 0.85 * au["AU09"]), 0.025)


def _draw_mouth(canvas: _Canvas, identity: Identity, mouth: Mapping[str, np.ndarray], au: Mapping[str, float]):
    """The dark inside with tongue and teeth, clipped to the opening, then the lips over it."""
    if float(mouth["opening_height"]) > 1e-4:
        canvas.clipped(mouth["opening"], (58, 18, 24, 255), polygons=[
            (mouth["tongue"], (150, 60, 66, 255)),
            (mouth["lower_teeth"], (214, 208, 196, 255)),
            (mouth["upper_teeth"], (242, 238, 228, 255)),
        ])
    lip = identity.lip_color
    canvas.polygon(mouth["lower_lip"], _shade(lip, 1.05))
    canvas.polygon(mouth["upper_lip"], _shade(lip, 0.9))
    # Tightened lips roll in: the line between them gets darker and wider.
    canvas.line(mouth["opening"][: len(mouth["opening"]) // 2], _shade(lip, 0.45 - 0.15 * au["AU23"]),
                0.028 + 0.03 * au["AU23"])
    for corner in mouth["corners"]:
        canvas.polygon(_ellipse(corner[0], corner[1], 0.02, 0.02, 8), _shade(lip, 0.4, 0.8))


def _draw_hair(canvas: _Canvas, identity: Identity, hair: Mapping[str, Any]):
    """Hair on top of the head, with strands and a highlight."""
    canvas.polygon(hair["front"], _shade(identity.hair_color, 1.0, hair["alpha"]))
    for strand in hair["strands"]:
        canvas.line(strand, _shade(identity.hair_color, 0.6, 0.5), 0.02)
    if hair["strands"]:
        arc = np.linspace(1.2 * np.pi, 1.55 * np.pi, 8)
        highlight = _points(identity.face_width * identity.hair_volume * 0.8 * np.cos(arc),
                            1.3 * identity.hair_volume * 0.92 * np.sin(arc))
        canvas.line(highlight, _shade(_mix(identity.hair_color, (255, 255, 255), 0.35), 1.0, 0.3), 0.05)


def render_face(identity: Identity, aus, size: int = 128) -> np.ndarray:
    """Draws one face with the expression set by the AUs.

    Args:
        identity: the face (see Identity / sample_identity).
        aus: float [17] in [0, 1], action_units.AU_NAMES order.
        size: output side in pixels, in [16, 1024].

    Returns:
        uint8 [size, size, 3] RGB; identical bytes for identical arguments.

    Raises:
        ValueError: aus of the wrong shape or outside [0, 1], or a size out of range.
    """
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size={size!r} is invalid: expected an integer in [{MIN_SIZE}, {MAX_SIZE}]")
    size = int(size)
    au = _check_aus(aus)
    shapes = _face_shapes(identity, au)
    hair = _hair_shapes(identity)
    canvas = _Canvas(identity, size)
    _draw_body(canvas, identity, shapes, hair)
    _draw_skin(canvas, identity, shapes, au)
    _draw_eyes_and_brows(canvas, identity, shapes, au)
    _draw_nose(canvas, identity, shapes["nose"], au)
    _draw_mouth(canvas, identity, shapes["mouth"], au)
    _draw_hair(canvas, identity, hair)
    lighting = _lighting(identity, _Placement(identity, size), shapes["head"], size)
    return np.clip(canvas.finish() * lighting + 0.5, 0, 255).astype(np.uint8)
