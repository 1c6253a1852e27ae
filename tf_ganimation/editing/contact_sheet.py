"""The editor's contact sheet of one face: the maps of an edit, then every AU swept (the paper's Fig. 4).

    aus = sheet_targets(start_aus, target_aus)         # float32 [1 + 17 * 5, 17]
    outputs = model(np.repeat(crop01[None], len(aus), axis=0), aus)
    sheet = layout(crop, outputs)                      # uint8 [SHEET_HEADER + 18 * S, SHEET_LABEL_WIDTH + 5 * S, 3]

Editor.sheet does the three steps for a FaceCrop. The cells are laid out by core/grids, as the
evaluation sheet's and the training samples' are.
"""

from __future__ import annotations

import numpy as np

from tf_ganimation.core import action_units, grids, pixels

# A caption strip on top (the sweep intensities), a label column on the left (the AU names), then
# one S x S cell per image.
SHEET_HEADER = 20
SHEET_LABEL_WIDTH = 132
_MAPS_LABEL = "input | edit |\nattention |\ncolour"


def sheet_targets(start_aus: np.ndarray, target_aus: np.ndarray) -> np.ndarray:
    """The AUs a sheet shows, in `layout`'s order.

    Args:
        start_aus: float32 [17] in [0, 1], the base of the sweep.
        target_aus: float32 [17] in [0, 1], the edit of the first row.

    Returns:
        float32 [1 + 17 * len(SWEEP_INTENSITIES), 17]: target_aus, then grids.sweep_targets(start_aus).
    """
    return np.concatenate([np.asarray(target_aus, np.float32)[None], grids.sweep_targets(start_aus)])


def layout(crop: np.ndarray, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The sheet of one face from the model's outputs at `sheet_targets`.

    Layout (S = the crop's side, len(SWEEP_INTENSITIES) = 5 S-wide columns after a SHEET_LABEL_WIDTH
    label column, under a SHEET_HEADER caption strip): row 0 = input crop | edit at target_aus |
    attention (white = kept) | colour map | blank; rows 1..17, one per AU in action_units order:
    start_aus with that AU set to each of SWEEP_INTENSITIES.

    Args:
        crop: uint8 [S, S, 3], the face the model edited.
        outputs: the model's outputs for `crop` at sheet_targets (N = 1 + 17 * 5): "images" and
            "color" float32 [N, S, S, 3], "attention" float32 [N, S, S, 1], all in [0, 1].

    Returns:
        uint8 [SHEET_HEADER + 18 * S, SHEET_LABEL_WIDTH + 5 * S, 3].
    """
    size, columns = crop.shape[0], len(grids.SWEEP_INTENSITIES)
    images = pixels.unit_to_uint8(outputs["images"])
    maps = [crop, images[0], pixels.unit_to_uint8(outputs["attention"][0]), pixels.unit_to_uint8(outputs["color"][0])]
    sweeps = [list(images[1 + au * columns: 1 + (au + 1) * columns]) for au in range(action_units.NUM_AUS)]
    sheet = grids.with_margins(grids.tile([maps] + sweeps), left=SHEET_LABEL_WIDTH, top=SHEET_HEADER)
    texts = [((SHEET_LABEL_WIDTH + column * size + 3, 4), f"{intensity:g}")
             for column, intensity in enumerate(grids.SWEEP_INTENSITIES)]
    texts.append(((4, SHEET_HEADER + 3), _MAPS_LABEL))
    texts += grids.au_row_labels(size, first_row=1, top=SHEET_HEADER, descriptions=True, x=4)
    return grids.draw_texts(sheet, texts)
