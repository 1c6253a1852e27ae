import numpy as np
import pytest

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


def _code(row: int, column: int, truth: bool) -> int:
    return 255 - 8 * row - column if truth else 8 * row + column


def _coded_sheet(cell: int, truth: bool = False) -> np.ndarray:
    """A sheet-shaped array whose cell (AU row, column) is filled with _code(row, column, truth)."""
    grid = np.full((action_units.NUM_AUS * cell, sheet.LABEL_WIDTH + 8 * cell, 3), 255, np.uint8)
    for row in range(action_units.NUM_AUS):
        for column in range(8):
            grid[row * cell:(row + 1) * cell, sheet.LABEL_WIDTH + column * cell:][:, :cell] = _code(row, column, truth)
    return grid


def test_excerpt_takes_the_named_rows_from_each_sheet_and_blanks_the_truth_rows_maps():
    cell = 32
    model, truth = _coded_sheet(cell), _coded_sheet(cell, truth=True)
    excerpt = sheet.sheet_excerpt(model, truth)
    assert excerpt.dtype == np.uint8
    assert excerpt.shape == (sheet.EXCERPT_HEADER + 4 * cell, sheet.LABEL_WIDTH + 8 * cell, 3)
    au12, au25, au26 = (action_units.AU_NAMES.index(name) for name in ("AU12", "AU25", "AU26"))
    expected = [(au12, False), (au12, True), (au25, False), (au26, False)]  # README_EXCERPT_ROWS
    for index, (row, truth) in enumerate(expected):
        top = sheet.EXCERPT_HEADER + index * cell
        cells = [excerpt[top:top + cell, sheet.LABEL_WIDTH + column * cell:][:, :cell] for column in range(8)]
        shown = 6 if truth else 8  # a truth row shows the input and the sweep only
        for column in range(shown):
            np.testing.assert_array_equal(cells[column], _code(row, column, truth))
        if truth:
            maps = np.concatenate(cells[6:], axis=1)
            assert maps.min() >= 128 and 0.5 < (maps == 255).mean() < 1  # white, with the note in grey
        label = excerpt[top:top + cell, :sheet.LABEL_WIDTH]
        assert label.min() < 64 and (label[:, :2] == 255).all()  # the row's name, in black
    header = excerpt[:sheet.EXCERPT_HEADER]
    for column in range(8):  # a caption over every column
        assert header[:, sheet.LABEL_WIDTH + column * cell + cell // 2 - 4:][:, :8].min() < 64


def test_excerpt_of_real_sheets_keeps_their_cells_and_enlargement():
    aus = np.zeros(17, np.float32)
    model = sheet.evaluation_sheet(SweepReadout(), np.zeros((8, 8, 3), np.float32), aus)
    truth = sheet.evaluation_sheet(SweepReadout(), np.ones((8, 8, 3), np.float32), aus)
    excerpt = sheet.sheet_excerpt(model, truth, rows=(("AU01", True), ("AU45", False)))
    cell = 96
    assert excerpt.shape == (sheet.EXCERPT_HEADER + 2 * cell, sheet.LABEL_WIDTH + 8 * cell, 3)
    first, second = (excerpt[sheet.EXCERPT_HEADER + index * cell:][:cell, sheet.LABEL_WIDTH:] for index in (0, 1))
    np.testing.assert_array_equal(first[:, :cell], 255)  # the truth sheet's white input
    np.testing.assert_array_equal(second[:, :cell], 0)  # the model sheet's black one
    np.testing.assert_array_equal(second[:, 5 * cell:6 * cell], 255)  # AU45 at 1
    np.testing.assert_array_equal(second[:, 6 * cell:7 * cell], 64)  # its attention


def test_excerpt_rejects_other_images_and_unknown_aus():
    model = _coded_sheet(16)
    with pytest.raises(ValueError, match="not an evaluation sheet"):
        sheet.sheet_excerpt(model[:, :-1], model)
    with pytest.raises(ValueError, match="same size"):
        sheet.sheet_excerpt(model, _coded_sheet(32))
    with pytest.raises(ValueError, match="AU13"):
        sheet.sheet_excerpt(model, model, rows=(("AU12", False), ("AU13", True)))
