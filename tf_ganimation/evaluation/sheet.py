"""The evaluation sheet: the paper's Fig. 4 and 5 for one face, every AU swept, to be looked at; and
an excerpt of it with its truth sheet, the README's figure."""

from __future__ import annotations

import numpy as np

from tf_ganimation.core import action_units, grids, pixels
from tf_ganimation.model.edit_model import EditModel

SHEET_MIN_CELL = 96  # px: the evaluation sheet enlarges smaller faces to be read
LABEL_WIDTH = 40  # px: the column of AU names left of the cells
EXCERPT_HEADER = 22  # px: the strip of column captions above an excerpt's cells
EXCERPT_FONT_SIZE = 13  # px: an excerpt's captions and labels, larger than the sheet's, to be read in a README
# The README's figure: the smile (AU12), its true renderings, lips part (AU25) and jaw drop (AU26).
README_EXCERPT_ROWS = (("AU12", False), ("AU12", True), ("AU25", False), ("AU26", False))
_COLUMNS = 3 + len(grids.SWEEP_INTENSITIES)  # input, the sweep, attention, colour
_TRUTH_NOTE = "rendered with\nthe true AUs"


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


def sheet_excerpt(sheet: np.ndarray, truth_sheet: np.ndarray,
                  rows: tuple[tuple[str, bool], ...] = README_EXCERPT_ROWS) -> np.ndarray:
    """Rows of an evaluation sheet and of its truth sheet under column captions (the README's figure).

    The cells are the sheets' own (same enlargement); the captions and AU labels are drawn anew, larger.
    A truth row's attention and colour cells (attention 0, colour = the truth: nothing to read) are
    left white with the words "rendered with the true AUs" in grey, and its label says "truth".

    Args:
        sheet: uint8 [17 * C, LABEL_WIDTH + 8 * C, 3], an `evaluation_sheet` of the model.
        truth_sheet: the same face's sheet of synthetic_edits.TrueRendering, the same shape.
        rows: (AU name, from the truth sheet) pairs, top to bottom.

    Returns:
        uint8 [EXCERPT_HEADER + len(rows) * C, LABEL_WIDTH + 8 * C, 3].
    """
    sheet, truth_sheet = np.asarray(sheet), np.asarray(truth_sheet)
    cell = sheet.shape[0] // action_units.NUM_AUS
    expected = (action_units.NUM_AUS * cell, LABEL_WIDTH + _COLUMNS * cell, 3)
    if sheet.dtype != np.uint8 or sheet.shape != expected or cell == 0:
        raise ValueError(f"the sheet is {sheet.dtype} {sheet.shape}, not an evaluation sheet: uint8 "
                         f"[17 * C, {LABEL_WIDTH} + {_COLUMNS} * C, 3] (a row per AU, {_COLUMNS} C-px cells each)")
    if truth_sheet.shape != sheet.shape or truth_sheet.dtype != np.uint8:
        raise ValueError(f"the truth sheet is {truth_sheet.dtype} {truth_sheet.shape}, the sheet uint8 {sheet.shape}: "
                         "they must be the same face's two sheets, the same size")
    if not rows:
        raise ValueError("an excerpt needs at least one row")
    unknown = [name for name, _ in rows if name not in action_units.AU_NAMES]
    if unknown:
        raise ValueError(f"unknown AU names {unknown}; the sheet's are {', '.join(action_units.AU_NAMES)}")
    maps = (_COLUMNS - 2) * cell  # where the attention and colour cells start
    note = grids.draw_texts(np.full((cell, 2 * cell, 3), 255, np.uint8), [((cell // 2, cell // 2), _TRUTH_NOTE)],
                            size=EXCERPT_FONT_SIZE, grey=128, anchor="mm")  # clipped to the two cells
    cells = []
    for name, truth in rows:
        row = action_units.AU_NAMES.index(name) * cell
        cells.append((truth_sheet if truth else sheet)[row:row + cell, LABEL_WIDTH:].copy())
        if truth:
            cells[-1][:, maps:] = note
    excerpt = grids.with_margins(np.concatenate(cells), left=LABEL_WIDTH, top=EXCERPT_HEADER)
    captions = ["input", *(f"AU {intensity:g}" if column == 0 else f"{intensity:g}"
                           for column, intensity in enumerate(grids.SWEEP_INTENSITIES)), "attention", "colour"]
    texts = [((LABEL_WIDTH + column * cell + cell // 2, EXCERPT_HEADER // 2 + 2), caption)
             for column, caption in enumerate(captions)]
    texts += [((LABEL_WIDTH // 2, EXCERPT_HEADER + index * cell + cell // 2), f"{name}\ntruth" if truth else name)
              for index, (name, truth) in enumerate(rows)]
    return grids.draw_texts(excerpt, texts, size=EXCERPT_FONT_SIZE, anchor="mm")
