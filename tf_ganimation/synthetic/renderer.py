"""Procedural faces whose expression is set by exact AU intensities: a dataset made in seconds.

EmotioNet and CelebA cannot be shipped, so this package draws faces itself. A face is an `Identity`
(tf_ganimation.synthetic.identity) plus an AU vector; `render_face(identity, aus, size)` turns them
into an image. Because the renderer is a pure function, the TRUE result of any edit (same identity,
other AUs) can be rendered, which gives GANimation a quantitative quality measure.
`synthetic_dataset.make_dataset` writes such faces in the authors' GANimation layout.

How a face is drawn: the shapes come in face units from tf_ganimation.synthetic.geometry (which
also lists what each AU does to them). They are rotated, scaled and placed, drawn with PIL at 3x the
output size (2x above 128 px) and box-downsampled, so edges are anti-aliased like a photo's. Lighting
(a directional gradient and a soft darkening of the face's rim) is applied at the output size.

No AU is inert: INERT_AUS is empty. It is kept (and tested) so that a simplification that drops an
effect has to say so.

Notes: the faces are illustrations (flat skin, polygon features), not photographs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tf_ganimation.core.pixels import uint8_to_unit
from tf_ganimation.synthetic.geometry import Placement, au_intensities, ellipse, face_shapes, hair_shapes
from tf_ganimation.synthetic.identity import RGB, Identity

# AUs with no visible effect on the rendered face (see the module docstring); none.
INERT_AUS: tuple[str, ...] = ()

MIN_SIZE, MAX_SIZE = 16, 1024


def _shade(color: RGB, factor: float, alpha: float = 1.0) -> tuple[int, int, int, int]:
    # Plain Python, not np.clip: this runs ~80 times per face, and NumPy's per-call cost on scalars dominates.
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


def _lighting(identity: Identity, place: Placement, head: np.ndarray, size: int) -> np.ndarray:
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
    blurred = uint8_to_unit(blurred_mask.filter(ImageFilter.GaussianBlur(0.12 * place.unit)))
    inside = uint8_to_unit(mask)
    rim = 1.0 - 0.22 * inside * (1.0 - blurred)
    return (light[..., None] * rim[..., None]).astype(np.float32)


class _Canvas:
    """A PIL canvas, `supersample` times the output size, that takes points in face units."""

    def __init__(self, identity: Identity, size: int):
        self.supersample = 3 if size <= 128 else 2
        pixels = size * self.supersample
        self.place = Placement(identity, pixels)
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
    canvas.polygon(ellipse(0.0, chin + 1.25, 2.0, 0.85, 40), _shade(clothing, 1.0))
    canvas.polygon(ellipse(0.0, chin + 0.43, 0.47, 0.08, 16), _shade(clothing, 0.7))
    if hair["back"] is not None:
        canvas.polygon(hair["back"], _shade(identity.hair_color, 0.85))
    for side in (-1, 1):
        ear_x = side * identity.face_width * 0.97
        canvas.polygon(ellipse(ear_x, -0.03, 0.12, 0.24), _shade(skin, 0.93))
        canvas.polygon(ellipse(ear_x + side * 0.02, -0.03, 0.06, 0.15), _shade(skin, 0.72))
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
            canvas.polygon(ellipse(cheek[0], cheek[1], 0.2 * radius, 0.13 * radius, 20), blush)
    fold_alpha = 0.16 + 0.6 * max(au["AU12"], au["AU10"], 0.7 * au["AU09"], 0.5 * au["AU20"])
    for fold in shapes["folds"]:
        canvas.line(fold, _shade(skin, 0.55, fold_alpha), 0.025)
    for dimple in shapes["dimples"]:
        center = dimple.mean(axis=0)
        canvas.polygon(ellipse(center[0], center[1], 0.045, 0.09, 12), _shade(skin, 0.5, 0.7 * au["AU14"]))
        canvas.line(dimple, _shade(skin, 0.35, au["AU14"]), 0.045)
    for stretch in shapes["stretch_lines"]:
        canvas.line(stretch, _shade(skin, 0.35, au["AU20"]), 0.035)
    canvas.line(shapes["chin_crease"], _shade(skin, 0.5, 0.25 + 0.6 * au["AU17"]), 0.035)
    for bump in shapes["chin_bumps"]:
        canvas.polygon(ellipse(bump[0], bump[1], 0.045, 0.03, 8), _shade(skin, 0.45, 0.8 * au["AU17"]))
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
            (ellipse(x, y, radius, radius, 20), _shade(identity.eye_color, 1.0)),
            (ellipse(x, y, 0.45 * radius, 0.45 * radius, 16), (12, 10, 10, 255)),
            (ellipse(x - 0.35 * radius, y - 0.35 * radius, 0.22 * radius, 0.22 * radius, 8), (250, 250, 250, 230)),
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
        canvas.polygon(ellipse(corner[0], corner[1], 0.02, 0.02, 8), _shade(lip, 0.4, 0.8))


def _draw_hair(canvas: _Canvas, identity: Identity, hair: Mapping[str, Any]):
    """Hair on top of the head, with strands and a highlight."""
    canvas.polygon(hair["front"], _shade(identity.hair_color, 1.0, hair["alpha"]))
    for strand in hair["strands"]:
        canvas.line(strand, _shade(identity.hair_color, 0.6, 0.5), 0.02)
    if hair["strands"]:
        canvas.line(hair["highlight"], _shade(_mix(identity.hair_color, (255, 255, 255), 0.35), 1.0, 0.3), 0.05)


def render_face(identity: Identity, aus, size: int = 128) -> np.ndarray:
    """Draws one face with the expression set by the AUs.

    Args:
        identity: the face (see identity.Identity / identity.sample_identity).
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
    au = au_intensities(aus)
    shapes = face_shapes(identity, au)
    hair = hair_shapes(identity)
    canvas = _Canvas(identity, size)
    _draw_body(canvas, identity, shapes, hair)
    _draw_skin(canvas, identity, shapes, au)
    _draw_eyes_and_brows(canvas, identity, shapes, au)
    _draw_nose(canvas, identity, shapes["nose"], au)
    _draw_mouth(canvas, identity, shapes["mouth"], au)
    _draw_hair(canvas, identity, hair)
    lighting = _lighting(identity, Placement(identity, size), shapes["head"], size)
    return np.clip(canvas.finish() * lighting + 0.5, 0, 255).astype(np.uint8)
