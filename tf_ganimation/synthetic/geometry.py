"""The face's shapes in face units, and how each AU moves them.

Every shape is a polygon or polyline in *face units*: origin near the middle of the face, x to the
right, y down, 1 unit = half the cheekbone width, 0.31-0.35 of the image side (`Identity.scale`).
`face_shapes(identity, au)` computes them from the identity and the AU intensities, `hair_shapes` the
hair's, and `Placement` maps face units to pixels (tilt, scale, centre). `face_geometry` gives the
key points in pixels, so tests and evaluation can measure what an AU did.

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
Shapes move here; lines and shading darken with their AU where `renderer` draws them.

Notes: the AU effects are exaggerated compared to FACS so that a small GANimation learns them on a
CPU in minutes. Combined AUs add their displacements (e.g. AU12 with AU15 cancel at the mouth
corners), which FACS does not promise for real faces.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tf_ganimation.core import action_units
from tf_ganimation.synthetic.identity import HAIR_STYLES, Identity


def au_intensities(aus) -> dict[str, float]:
    """{AU name: intensity} of an AU vector: float [17] in [0, 1], action_units.AU_NAMES order.

    Raises:
        ValueError: aus of the wrong shape, not finite, or outside [0, 1].
    """
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


@functools.cache
def _unit_circle(count: int) -> np.ndarray:
    angles = np.linspace(0.0, 2 * np.pi, count, endpoint=False)
    return _points(np.cos(angles), np.sin(angles))


def ellipse(cx: float, cy: float, rx: float, ry: float, count: int = 24) -> np.ndarray:
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
        "socket": ellipse(center[0], center[1] - 0.02, 0.27 * size, 0.19 * size),
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
        "tongue": ellipse(0.0, center_y + gap_down - 0.02, 0.6 * half_width, 0.09),
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
        "nostrils": np.array([ellipse(side * 0.068 * flare, base - 0.005, 0.04 * flare, 0.022, 12)
                              for side in (-1, 1)]),
        "wings": np.array(wings),
        "bridge": np.array([[[side * 0.07, -0.12], [side * 0.085, base - 0.12]] for side in (-1, 1)]),
        "tip": ellipse(0.0, base - 0.06, 0.055 * width, 0.04),
        "shadow": ellipse(0.0, base + 0.055, 0.11 * width, 0.035),
        "wrinkles": np.array([[[-0.08, y], [0.0, y - 0.015], [0.08, y]] for y in (-0.08, -0.02, 0.04)]),
    }


def face_shapes(identity: Identity, au: Mapping[str, float]) -> dict[str, Any]:
    """All the polygons, in face units, that `renderer.render_face` draws (but the hair's)."""
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
        "frown_shadow": ellipse(0.0, identity.brow_height + 0.1, 0.12, 0.1, 16),
        "forehead_center": forehead_center,
        "forehead_sides": forehead_sides,
    }


def hair_shapes(identity: Identity) -> dict[str, Any]:
    """Hair in face units: `back` (behind the head, or None), `front` (over the top of the head),
    `strands` (polylines drawn over `front`), `highlight` (a polyline, drawn when there are strands)
    and `alpha` (buzz cuts let the scalp show through)."""
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
    arc = np.linspace(1.2 * np.pi, 1.55 * np.pi, 8)
    highlight = _points(identity.face_width * identity.hair_volume * 0.8 * np.cos(arc),
                        1.3 * identity.hair_volume * 0.92 * np.sin(arc))
    return {"back": back, "front": np.concatenate([outer, hairline_points]), "strands": strands,
            "highlight": highlight, "alpha": 0.6 if style == "buzz" else 1.0}


class Placement:
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
    shapes = face_shapes(identity, au_intensities(aus))
    place = Placement(identity, size)
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
