import json
import os

import numpy as np
import pytest
from PIL import Image

from tf_ganimation.core import action_units
from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.data import pipeline
from tf_ganimation.evaluation import evaluator, synthetic_edits
from tf_ganimation.model import ganimation, networks
from tf_ganimation.runs import run_folder
from tf_ganimation.synthetic import renderer, synthetic_dataset
from tf_ganimation.training import checkpoints

from conftest import TINY_MODEL


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("faces")
    synthetic_dataset.make_dataset(os.fspath(data_dir), num_images=30, image_size=32, seed=1, progress=False)
    return data_dir


def test_evaluate_run_writes_metrics_and_sheet(data_dir, tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(data_dir=os.fspath(data_dir), image_size=32))
    run_folder.save_config(config, tmp_path)
    networks.build_generator(TINY_MODEL).save_weights(tmp_path / run_folder.GENERATOR_WEIGHTS)
    networks.build_critic(TINY_MODEL).save_weights(tmp_path / run_folder.CRITIC_WEIGHTS)
    metrics = evaluator.evaluate_run(os.fspath(tmp_path), num_targets=2, max_images=4)
    written = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert written["synthetic"]["num_edits"] == metrics["synthetic"]["num_edits"] > 0
    assert "critic_aus_mae_on_edits" in written["consistency"]
    assert (tmp_path / "evaluation" / "sheet.png").is_file()
    alignment = written["synthetic"]["critic_au_gradient_alignment"]
    assert -1.0 <= alignment["mean"] <= 1.0 and set(alignment) <= set(synthetic_edits.ALIGNMENT_AUS) | {"mean"}
    # The truth sheet: the sweep rendered. Its AU12 cell at intensity 1 is the face rendered with AU12 = 1.
    truth_sheet = np.asarray(Image.open(tmp_path / "evaluation" / "truth_sheet.png"))
    sheet = np.asarray(Image.open(tmp_path / "evaluation" / "sheet.png"))
    assert truth_sheet.shape == sheet.shape
    identities = synthetic_dataset.load_identities(os.fspath(data_dir))
    samples = pipeline.fixed_samples(config.data, 4, split="test")
    aus = samples["real_aus"][0].copy()
    cell = 96  # 32-px faces, enlarged 3x
    row, left = action_units.AU_NAMES.index("AU12"), 40 + 5 * cell
    aus[row] = 1.0
    expected = renderer.render_face(identities[samples["id"][0]], aus, 32).repeat(3, axis=0).repeat(3, axis=1)
    np.testing.assert_array_equal(truth_sheet[row * cell:(row + 1) * cell, left:left + cell], expected)


def test_evaluate_run_reads_a_checkpoint_while_the_run_trains(data_dir, tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(data_dir=os.fspath(data_dir), image_size=32))
    run_folder.save_config(config, tmp_path)  # no final weights: the run is still training
    gan = ganimation.make_gan(config, total_steps=40, decay_steps=10)
    gan.train_steps.assign(12)  # saved at step 12, as a training run saves
    checkpoints.make_manager(gan, tmp_path / run_folder.CHECKPOINT_DIR, keep=1).save(checkpoint_number=12)
    generator = gan.generator
    metrics = evaluator.evaluate_run(os.fspath(tmp_path), num_targets=2, max_images=4, checkpoint="ckpt-12")
    assert metrics["weights"] == "step 12"
    written = json.loads((tmp_path / "evaluation" / "step_0000012" / "metrics.json").read_text())
    assert written["synthetic"]["edit"]["l1"] == pytest.approx(metrics["synthetic"]["edit"]["l1"])
    final = tmp_path / "final"
    run_folder.save_config(config, final)
    generator.save_weights(final / run_folder.GENERATOR_WEIGHTS)
    same = evaluator.evaluate_run(os.fspath(final), num_targets=2, max_images=4)
    assert same["synthetic"]["edit"]["l1"] == pytest.approx(metrics["synthetic"]["edit"]["l1"], rel=1e-6)


def _sheet_png(path, value):
    cell = 16
    grid = np.full((17 * cell, 40 + 8 * cell, 3), value, np.uint8)
    Image.fromarray(grid).save(path)
    return grid


def test_write_sheet_excerpt_cuts_the_evaluation_sheets_into_a_png(tmp_path):
    _sheet_png(tmp_path / "sheet.png", 10)
    _sheet_png(tmp_path / "truth_sheet.png", 200)
    excerpt = evaluator.write_sheet_excerpt(os.fspath(tmp_path), os.fspath(tmp_path / "docs" / "excerpt.png"))
    written = np.asarray(Image.open(tmp_path / "docs" / "excerpt.png"))
    np.testing.assert_array_equal(written, excerpt)
    assert written.shape == (22 + 4 * 16, 40 + 8 * 16, 3)
    np.testing.assert_array_equal(written[22:38, 40:136], 10)  # AU12 from the model's sheet
    np.testing.assert_array_equal(written[38:54, 40:136], 200)  # then from the truth sheet


def test_write_sheet_excerpt_names_a_missing_sheet_and_a_wrong_one(tmp_path):
    _sheet_png(tmp_path / "sheet.png", 10)
    with pytest.raises(FileNotFoundError, match="truth_sheet.png not found"):
        evaluator.write_sheet_excerpt(os.fspath(tmp_path), os.fspath(tmp_path / "excerpt.png"))
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "truth_sheet.png")
    with pytest.raises(ValueError, match=f"{tmp_path}.*truth sheet"):
        evaluator.write_sheet_excerpt(os.fspath(tmp_path), os.fspath(tmp_path / "excerpt.png"))
    assert not (tmp_path / "excerpt.png").exists()
