"""Tests for tf_ganimation/editing/contact_sheet.py: the layout of the editor's sheet, cell by cell."""

import numpy as np
import pytest

from tf_ganimation.core import action_units, grids, image_files
from tf_ganimation.editing import contact_sheet
from tf_ganimation.editing.editor import Editor
from tf_ganimation.faces import detection
from tf_ganimation.model import edit_model

from conftest import PHOTOS_DIR
from conftest import TINY_MODEL as TINY

SIZE = TINY.image_size
HAPPY = action_units.preset("happy")


@pytest.fixture(scope="module")
def astronaut_crops():
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared test photos not found at {PHOTOS_DIR}")
    astronaut = image_files.read_photo(PHOTOS_DIR / "astronaut.png")
    return Editor(FakeModel(), detector=detection.FaceDetector()).find_faces(astronaut, "astronaut.png")


class FakeModel(edit_model.EditModel):
    """A model with chosen outputs: attention and colour constants, and "images" that encode the AUs."""

    kind, source = "fake", "<fake>"

    def __init__(self, attention: float = 0.0, color: float = 0.5, image_size: int = SIZE):
        self.image_size, self.attention, self.color = image_size, attention, color

    def _edit(self, images, aus):
        count, size = images.shape[0], self.image_size
        # images: R = the largest AU, G = its index / 16, B = 0 (hand-checkable sheet cells).
        code = np.stack([aus.max(axis=1), aus.argmax(axis=1) / 16.0, np.zeros(count)], axis=1)
        return {"images": np.broadcast_to(code[:, None, None, :], images.shape).astype(np.float32),
                "attention": np.full([count, size, size, 1], self.attention, np.float32),
                "color": np.full([count, size, size, 3], self.color, np.float32)}


def test_sheet_targets_are_the_edit_then_the_sweep():
    start = np.full(17, 0.1, np.float32)
    targets = contact_sheet.sheet_targets(start, HAPPY)
    assert targets.shape == (1 + 17 * 5, 17) and targets.dtype == np.float32
    np.testing.assert_array_equal(targets[0], HAPPY)
    expected = start.copy()
    expected[3] = 0.75  # AU05 (index 3) at the fourth intensity: row 1 + 3 * 5 + 3
    np.testing.assert_array_equal(targets[1 + 3 * 5 + 3], expected)
    np.testing.assert_array_equal(targets[1:], grids.sweep_targets(start))


def test_sheet_layout_and_au_sweep(astronaut_crops):
    editor = Editor(FakeModel(attention=0.25, color=1.0))
    sheet = editor.sheet(astronaut_crops[0], np.zeros(17, np.float32), HAPPY)
    assert sheet.shape == (contact_sheet.SHEET_HEADER + 18 * SIZE, contact_sheet.SHEET_LABEL_WIDTH + 5 * SIZE, 3)

    def cell(row, column):
        top, left = contact_sheet.SHEET_HEADER + row * SIZE, contact_sheet.SHEET_LABEL_WIDTH + column * SIZE
        return sheet[top:top + SIZE, left:left + SIZE]

    np.testing.assert_array_equal(cell(0, 0), astronaut_crops[0].crop)
    assert np.all(cell(0, 1) == [255, 128, 0])  # the edit at happy: max AU 1.0 (AU12, index 8 -> 8/16)
    assert np.all(cell(0, 2) == 64) and np.all(cell(0, 3) == 255)  # attention 0.25 (gray), colour 1.0
    assert np.all(cell(0, 4) == 255)  # blank
    for au in range(17):
        for column, intensity in enumerate(grids.SWEEP_INTENSITIES):
            expected_index = au if intensity > 0 else 0  # all zeros: argmax is AU01
            np.testing.assert_array_equal(cell(1 + au, column)[0, 0],
                                          [round(intensity * 255), round(expected_index / 16 * 255), 0])


def test_layout_labels_every_column_and_row():
    rng = np.random.default_rng(0)
    count = 1 + 17 * 5
    crop = rng.integers(0, 256, [SIZE, SIZE, 3], dtype=np.uint8)
    outputs = {"images": np.ones([count, SIZE, SIZE, 3], np.float32),
               "attention": np.ones([count, SIZE, SIZE, 1], np.float32),
               "color": np.ones([count, SIZE, SIZE, 3], np.float32)}
    sheet = contact_sheet.layout(crop, outputs)
    header, label_width = contact_sheet.SHEET_HEADER, contact_sheet.SHEET_LABEL_WIDTH
    assert sheet.shape == (header + 18 * SIZE, label_width + 5 * SIZE, 3) and sheet.dtype == np.uint8
    np.testing.assert_array_equal(sheet[header:header + SIZE, label_width:label_width + SIZE], crop)
    assert np.all(sheet[:header, :label_width] == 255)  # the corner stays blank
    for column in range(5):  # the intensity above each column, in black
        assert np.any(sheet[:header, label_width + column * SIZE:label_width + (column + 1) * SIZE] < 128)
    for row in range(18):  # the maps' caption, then each AU's name
        assert np.any(sheet[header + row * SIZE:header + (row + 1) * SIZE, :label_width] < 128)
