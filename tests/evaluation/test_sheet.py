import numpy as np

from tf_ganimation.core import action_units, grids
from tf_ganimation.evaluation import sheet
from tf_ganimation.model import networks
from tf_ganimation.model.edit_model import EditModel, KerasEditModel

from conftest import TINY_MODEL


def test_sheet_has_a_row_per_au_and_input_sweep_attention_color_columns():
    generator = networks.build_generator(TINY_MODEL)
    image = np.full((32, 32, 3), 0.5, np.float32)
    image[:16, :16] = 1.0  # a white top-left quarter
    grid = sheet.evaluation_sheet(KerasEditModel(generator, 32), image, np.zeros(17, np.float32))
    assert grid.dtype == np.uint8
    cell = 96  # 32-px faces are enlarged 3x to SHEET_MIN_CELL
    assert grid.shape == (action_units.NUM_AUS * cell, 40 + 8 * cell, 3)
    input_cell = grid[:cell, 40:40 + cell]  # the input: 0.5 is grey 128, 1 is white
    np.testing.assert_array_equal(input_cell[:48, :48], 255)
    np.testing.assert_array_equal(input_cell[48:, :], 128)
    np.testing.assert_array_equal(input_cell[:, 48:], 128)


class SweepReadout(EditModel):
    """Fills each edit with the sum of its target AUs (the swept AU's intensity when the others are 0)."""

    image_size, kind, source = 8, "readout", "readout"

    def _edit(self, images, aus):
        value = np.broadcast_to(aus.sum(axis=1)[:, None, None, None], images.shape).astype(np.float32)
        return {"images": value, "attention": np.full(images.shape[:3] + (1,), 0.25, np.float32),
                "color": np.full(images.shape, 0.75, np.float32)}


def test_sheet_cells_are_the_sweep_then_attention_then_color_with_au_labels():
    grid = sheet.evaluation_sheet(SweepReadout(), np.zeros((8, 8, 3), np.float32), np.zeros(17, np.float32))
    cell = 96  # 8-px faces are enlarged 12x
    assert grid.shape == (action_units.NUM_AUS * cell, sheet.LABEL_WIDTH + 8 * cell, 3)
    for row in (0, 11, 16):
        cells = [grid[row * cell:(row + 1) * cell, sheet.LABEL_WIDTH + column * cell:][:, :cell] for column in range(8)]
        np.testing.assert_array_equal(cells[0], 0)  # the black input
        for column, intensity in enumerate(grids.SWEEP_INTENSITIES):
            np.testing.assert_array_equal(cells[1 + column], round(intensity * 255))
        np.testing.assert_array_equal(cells[6], 64)  # attention 0.25, in grey
        np.testing.assert_array_equal(cells[7], 191)  # colour 0.75
        label = grid[row * cell:(row + 1) * cell, :sheet.LABEL_WIDTH]
        assert (label < 128).any() and (label[:, :2] == 255).all()  # the AU's name, in black on white
