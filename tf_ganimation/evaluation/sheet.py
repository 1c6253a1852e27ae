"""The evaluation sheet: the paper's Fig. 4 and 5 for one face, every AU swept, to be looked at."""

from __future__ import annotations

import numpy as np

from tf_ganimation.core import action_units, grids, pixels
from tf_ganimation.model.edit_model import EditModel

SHEET_MIN_CELL = 96  # px: the evaluation sheet enlarges smaller faces to be read
LABEL_WIDTH = 40  # px: the column of AU names left of the cells


def evaluation_sheet(edit: EditModel, image: np.ndarray, aus: np.ndarray) -> np.ndarray:
    """The paper's Fig. 4 and 5 for one face: a row per AU, uint8 [17 * C, 8 * C + label, 3].

    Columns: the input; the edit with that AU set to 0, 0.25, 0.5, 0.75 and 1 (grids.SWEEP_INTENSITIES,
    the other AUs kept at the face's own); then the attention mask (grey, white keeps the input) and
    the colour map of the edit at 1. Cells are C = S x the smallest whole factor that makes them at
    least SHEET_MIN_CELL pixels (nearest neighbour: 32-px faces are shown at 96, 64-px at 128, 128-px
    as they are); the label column is LABEL_WIDTH pixels.

    Args:
        edit: the model whose edits are shown (or synthetic_edits.TrueRendering, the truth).
        image: float32 [S, S, 3] in [0, 1]; aus: float32 [17] in [0, 1], the face's own AUs.
    """
    size = image.shape[0]
    steps = len(grids.SWEEP_INTENSITIES)
    targets = grids.sweep_targets(aus)
    edited = edit(np.repeat(np.asarray(image, np.float32)[None], len(targets), axis=0), targets)
    fakes = edited["images"].reshape(action_units.NUM_AUS, steps, size, size, 3)
    last = slice(steps - 1, None, steps)
    attention, color = edited["attention"][last], edited["color"][last]
    grid = grids.tile([[pixels.unit_to_uint8(cell) for cell in (image, *fakes[row], attention[row], color[row])]
                       for row in range(action_units.NUM_AUS)])
    factor = grids.enlargement(size, SHEET_MIN_CELL)
    sheet = grids.with_margins(grids.enlarge(grid, factor), left=LABEL_WIDTH)
    return grids.draw_texts(sheet, grids.au_row_labels(size * factor))
