"""Tests for tf_ganimation/core/grids.py: layout, padding, grey cells, enlargement, margins, sweep rows."""

import numpy as np
import pytest

from tf_ganimation.core import action_units, grids


def _cell(value: int, size: int = 2, channels: int = 3) -> np.ndarray:
    return np.full((size, size, channels), value, np.uint8)


def test_sweep_targets_rows():
    aus = np.array([0.1, 0.2, 0.3])
    targets = grids.sweep_targets(aus, intensities=(0.0, 1.0))
    assert targets.dtype == np.float32 and targets.shape == (6, 3)
    np.testing.assert_array_equal(targets, np.array([
        [0.0, 0.2, 0.3], [1.0, 0.2, 0.3],   # AU 0 swept
        [0.1, 0.0, 0.3], [0.1, 1.0, 0.3],   # AU 1 swept
        [0.1, 0.2, 0.0], [0.1, 0.2, 1.0]], np.float32))


def test_sweep_targets_default_intensities_cover_every_au():
    assert grids.SWEEP_INTENSITIES == (0.0, 0.25, 0.5, 0.75, 1.0)
    aus = np.full(action_units.NUM_AUS, 0.4, np.float32)
    targets = grids.sweep_targets(aus)
    assert targets.shape == (action_units.NUM_AUS * 5, action_units.NUM_AUS)
    row = 3 * 5 + 2  # AU 3 at intensity 0.5
    assert targets[row, 3] == 0.5 and (np.delete(targets[row], 3) == np.float32(0.4)).all()
    assert aus.tolist() == [np.float32(0.4)] * action_units.NUM_AUS  # the face's AUs are not changed


def test_tile_lays_out_rows_pads_short_ones_and_greys_one_channel_cells():
    grid = grids.tile([[_cell(10), _cell(20), _cell(30)], [_cell(40, channels=1)]], fill=200)
    assert grid.dtype == np.uint8 and grid.shape == (4, 6, 3)
    assert (grid[:2, :2] == 10).all() and (grid[:2, 2:4] == 20).all() and (grid[:2, 4:] == 30).all()
    assert (grid[2:, :2] == 40).all()  # a grayscale cell repeated on the three channels
    assert (grid[2:, 2:] == 200).all()  # the padding of the short row
    assert (grids.tile([[_cell(1)], [_cell(2), _cell(3)]])[:2, 2:] == 255).all()  # white by default


def test_tile_of_rectangular_cells():
    cell = np.zeros((2, 3, 3), np.uint8)
    assert grids.tile([[cell, cell], [cell, cell]]).shape == (4, 6, 3)


@pytest.mark.parametrize("size, min_cell, factor", [(32, 100, 4), (50, 100, 2), (128, 64, 1), (64, 64, 1)])
def test_enlargement_is_the_smallest_whole_factor(size, min_cell, factor):
    assert grids.enlargement(size, min_cell) == factor


def test_enlarge_repeats_each_pixel():
    grid = np.array([[[1, 1, 1], [2, 2, 2]]], np.uint8)  # 1 x 2 pixels
    assert grids.enlarge(grid, 1) is grid
    big = grids.enlarge(grid, 3)
    assert big.shape == (3, 6, 3)
    assert big[:, :, 0].tolist() == [[1, 1, 1, 2, 2, 2]] * 3


def test_with_margins():
    grid = np.zeros((2, 3, 3), np.uint8)
    canvas = grids.with_margins(grid, left=2, top=1, fill=100)
    assert canvas.shape == (3, 5, 3) and canvas.dtype == np.uint8
    assert (canvas[:1] == 100).all() and (canvas[:, :2] == 100).all() and (canvas[1:, 2:] == 0).all()
    assert (grids.with_margins(grid) == grid).all()


def test_draw_texts_draws_black_where_asked_and_leaves_the_input():
    image = np.full((20, 60, 3), 255, np.uint8)
    drawn = grids.draw_texts(image, [((2, 4), "AU01")])
    assert drawn.shape == image.shape and (image == 255).all()
    rows, columns = np.nonzero(drawn.min(axis=-1) < 255)
    assert rows.min() >= 4 and columns.min() >= 2 and columns.max() < 35  # the text, right of and below (2, 4)
    assert drawn.min() < 50 and (drawn[..., 0] == drawn[..., 2]).all()  # dark grey to black, no colour


def test_draw_texts_centres_larger_grey_text_on_its_anchor():
    image = np.full((40, 100, 3), 255, np.uint8)
    small = grids.draw_texts(image, [((50, 20), "AU12")], anchor="mm")
    large = grids.draw_texts(image, [((50, 20), "AU12\ntruth")], size=13, grey=128, anchor="mm")
    rows, columns = np.nonzero(large.min(axis=-1) < 255)
    assert abs((rows.min() + rows.max()) / 2 - 20) <= 2 and abs((columns.min() + columns.max()) / 2 - 50) <= 2
    assert rows.max() - rows.min() > 20  # two lines
    assert large.min() == 128  # grey, never darker
    small_rows, small_columns = np.nonzero(small.min(axis=-1) < 255)
    assert small.min() < 50 and small_rows.max() - small_rows.min() < 12
    assert columns.max() - columns.min() > small_columns.max() - small_columns.min()  # 13 px is wider than 10

def test_au_row_labels():
    labels = grids.au_row_labels(row_height=32, first_row=1, top=20)
    assert [text for _, text in labels] == list(action_units.AU_NAMES)
    assert labels[0] == ((2, 20 + 32 + 11), "AU01") and labels[1][0] == (2, 20 + 64 + 11)
    described = grids.au_row_labels(row_height=32, descriptions=True, x=5)
    name = action_units.AU_NAMES[0]
    assert described[0] == ((5, 3), f"{name}\n{action_units.AU_DESCRIPTIONS[name]}")
