"""Image grids for people: cells laid out in rows, enlarged, labelled; and the AU sweep both sheets show.

The training samples, the evaluation sheet and the editor's sheet are all grids of uint8 cells of one
size. This module lays them out; what goes in the cells is each caller's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tf_ganimation.core import action_units

# The AU intensities of a sweep, the columns of the paper's Fig. 4 and 5.
SWEEP_INTENSITIES = (0.0, 0.25, 0.5, 0.75, 1.0)


def sweep_targets(aus: np.ndarray, intensities: Sequence[float] = SWEEP_INTENSITIES) -> np.ndarray:
    """Every AU swept over `intensities`, the others kept at `aus`.

    Args:
        aus: float [num_aus] in [0, 1], the face's own AUs.

    Returns:
        float32 [num_aus * len(intensities), num_aus]: row au * len(intensities) + k is `aus` with AU
        `au` set to intensities[k].
    """
    aus = np.asarray(aus, np.float32)
    steps = len(intensities)
    targets = np.repeat(aus[None], aus.shape[-1] * steps, axis=0)
    for au in range(aus.shape[-1]):
        targets[au * steps:(au + 1) * steps, au] = intensities
    return targets


def tile(rows: Sequence[Sequence[np.ndarray]], fill: int = 255) -> np.ndarray:
    """Cells laid out row by row: uint8 [len(rows) * S, max row length * S, 3] for S x S x 3 cells.

    A row shorter than the longest is padded with `fill`. Grayscale cells ([S, S, 1]) are shown in grey.
    """
    height, width = np.asarray(rows[0][0]).shape[:2]
    columns = max(len(row) for row in rows)
    grid = np.full((len(rows) * height, columns * width, 3), fill, np.uint8)
    for row_index, row in enumerate(rows):
        for column_index, cell in enumerate(row):
            cell = np.asarray(cell)
            if cell.ndim == 3 and cell.shape[-1] == 1:
                cell = np.repeat(cell, 3, axis=-1)
            top, left = row_index * height, column_index * width
            grid[top:top + height, left:left + width] = cell
    return grid


def enlargement(size: int, min_cell: int) -> int:
    """The smallest whole factor that makes a `size`-px cell at least `min_cell` px (1 when it is)."""
    return max(1, math.ceil(min_cell / size))


def enlarge(grid: np.ndarray, factor: int) -> np.ndarray:
    """Every pixel repeated `factor` x `factor` times (nearest neighbour: cells stay sharp)."""
    return grid if factor == 1 else grid.repeat(factor, axis=0).repeat(factor, axis=1)


def with_margins(grid: np.ndarray, left: int = 0, top: int = 0, fill: int = 255) -> np.ndarray:
    """`grid` on a `fill` canvas with a `left` label column and a `top` caption strip."""
    canvas = np.full((grid.shape[0] + top, grid.shape[1] + left, 3), fill, np.uint8)
    canvas[top:, left:] = grid
    return canvas


def draw_texts(image: np.ndarray, texts: Sequence[tuple[tuple[int, int], str]], size: float | None = None,
               grey: int = 0, anchor: str | None = None) -> np.ndarray:
    """`image` with each (x, y), text drawn in PIL's default font.

    Args:
        image: uint8 [H, W, 3]; not changed.
        texts: ((x, y), text) pairs; a text may have several lines.
        size: the font's size in px (PIL's default, 10, when None).
        grey: the text's colour, 0 (black) to 255 (white).
        anchor: where (x, y) is on the text, a PIL text anchor ("mm": its middle); None: its top left.
    """
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size)
    for position, text in texts:
        draw.text(position, text, fill=(grey, grey, grey), font=font, anchor=anchor)
    return np.asarray(canvas)


def au_row_labels(row_height: int, first_row: int = 0, top: int = 0, descriptions: bool = False,
                  x: int = 2) -> list[tuple[tuple[int, int], str]]:
    """The AU names (with their FACS names when `descriptions`) as texts for `draw_texts`, one per row."""
    texts = []
    for index, name in enumerate(action_units.AU_NAMES):
        text = f"{name}\n{action_units.AU_DESCRIPTIONS[name]}" if descriptions else name
        texts.append(((x, top + (first_row + index) * row_height + (3 if descriptions else row_height // 2 - 5)), text))
    return texts
