import dataclasses
import json
import os

import numpy as np
import pytest
from conftest import TINY_MODEL
from PIL import Image

from tf_ganimation.core import action_units
from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.data import pipeline
from tf_ganimation.evaluation import evaluator
from tf_ganimation.model import networks
from tf_ganimation.runs import run_folder
from tf_ganimation.synthetic import renderer, synthetic_dataset
from tf_ganimation.training import checkpoints, trainer


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("faces")
    synthetic_dataset.make_dataset(os.fspath(data_dir), num_images=30, image_size=32, seed=1, progress=False)
    identities = synthetic_dataset.load_identities(os.fspath(data_dir))
    ids = sorted(identities)[:4]
    rng = np.random.default_rng(0)
    source_aus = np.stack([synthetic_dataset.sample_aus(rng) for _ in ids])
    return data_dir, identities, ids, source_aus


def _identity_edit(images, aus):
    return {"fake_image": images, "attention": np.ones(images.shape[:3] + (1,), np.float32), "color": images}


def test_identity_model_scores_exactly_the_baseline(faces):
    _, identities, ids, source_aus = faces
    metrics = evaluator.synthetic_metrics(_identity_edit, identities, ids, source_aus, 32, num_targets=3)
    assert metrics["edit"] == metrics["identity_baseline"]
    assert metrics["l1_ratio_to_baseline"] == pytest.approx(1.0)
    assert metrics["identity_baseline"]["l1"] > 0.5  # the targets really change the faces
    assert metrics["same_aus"]["l1"] == 0.0 and metrics["same_aus"]["psnr"] == 100.0
    assert metrics["attention"]["fraction_above_0.95"] == 1.0
    assert metrics["num_edits"] == 12
    regions = metrics["regions"]
    assert regions["changed"]["l1_ratio_to_baseline"] == pytest.approx(1.0)
    assert regions["kept"]["edit_l1"] == regions["kept"]["baseline_l1"] < 1.0
    assert 0.0 < regions["changed_fraction"] < 0.5  # AUs move the face's features, not the whole image


def test_an_oracle_that_renders_the_truth_scores_zero_error(faces):
    _, identities, ids, source_aus = faces
    # The oracle recognises each source face by its pixels and renders it with the target AUs.
    by_pixels = {renderer.render_face(identities[i], aus, 32).tobytes(): identities[i]
                 for i, aus in zip(ids, source_aus)}

    def oracle(images, aus):
        pixels = np.round((images + 1.0) * 127.5).astype(np.uint8)
        truth = np.stack([renderer.render_face(by_pixels[p.tobytes()], a, 32) for p, a in zip(pixels, aus)])
        fake = truth.astype(np.float32) / 127.5 - 1.0
        return {"fake_image": fake, "attention": np.zeros(images.shape[:3] + (1,), np.float32), "color": fake}

    metrics = evaluator.synthetic_metrics(oracle, identities, ids, source_aus, 32, num_targets=2)
    assert metrics["edit"]["l1"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["edit"]["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["l1_ratio_to_baseline"] < 1e-4
    assert metrics["regions"]["changed"]["edit_l1"] < 1e-4 and metrics["regions"]["kept"]["edit_l1"] < 1e-4
    assert metrics["attention"]["fraction_below_0.05"] == 1.0


def test_training_probe_scores_like_synthetic_metrics(faces, tmp_path):
    data_dir, identities, _, _ = faces
    config = Config(model=TINY_MODEL, data=DataConfig(data_dir=os.fspath(data_dir), image_size=32))
    probe = evaluator.training_probe(config, max_images=3, num_targets=2)
    assert len(probe.edits.targets) == 6
    scores = probe.score(_identity_edit)
    assert scores["l1_ratio_to_baseline"] == pytest.approx(1.0)
    assert scores["changed_region_l1_ratio"] == pytest.approx(1.0) and scores["same_aus_l1"] == 0.0
    assert scores["attention_mean"] == 1.0
    generator = networks.build_generator(TINY_MODEL)
    samples = pipeline.fixed_samples(config.data, 3, split="test")
    full = evaluator.synthetic_metrics(evaluator.generator_edit(generator), identities, list(samples["id"]),
                                        samples["real_aus"], 32, num_targets=2)
    scores = probe(generator)
    assert scores["l1_ratio_to_baseline"] == pytest.approx(full["l1_ratio_to_baseline"], rel=1e-5)
    assert scores["kept_region_l1"] == pytest.approx(full["regions"]["kept"]["edit_l1"], rel=1e-5)
    # Not a synthetic dataset (no identities.json): no true edits, no probe.
    assert evaluator.training_probe(dataclasses.replace(config, data=dataclasses.replace(
        config.data, data_dir=os.fspath(tmp_path)))) is None


def test_pixel_metrics_by_hand():
    target = np.zeros((2, 16, 16, 3), np.float32)
    predicted = target.copy()
    predicted[1] += 10.0  # image 1 off by 10 everywhere: L1 10, PSNR 10 log10(255^2 / 100) = 28.13 dB
    metrics = evaluator.pixel_metrics(predicted, target)
    assert metrics["l1"] == pytest.approx(5.0)
    assert metrics["psnr"] == pytest.approx((100.0 + 10 * np.log10(255.0**2 / 100.0)) / 2, rel=1e-5)


def test_region_metrics_by_hand():
    sources = np.zeros((1, 4, 4, 3), np.float32)
    truths = sources.copy()
    truths[0, 0, :2] = 100.0  # the true edit changes 2 of 16 pixels by 100
    edited = sources.copy()
    edited[0, 0, :2] = 60.0  # the model gets 60% of the way there ...
    edited[0, 3, 3] = 12.0  # ... and damages one kept pixel by 12
    regions = evaluator.region_metrics(edited, sources, truths)
    assert regions["changed_fraction"] == 2 / 16
    assert regions["changed"] == {"edit_l1": 40.0, "baseline_l1": 100.0, "l1_ratio_to_baseline": 0.4}
    assert regions["kept"] == {"edit_l1": pytest.approx(12.0 / 14), "baseline_l1": 0.0}
    # The whole-image L1 is their weighted sum.
    whole = np.abs(edited - truths).mean()
    assert whole == pytest.approx(2 / 16 * 40.0 + 14 / 16 * 12.0 / 14)
    # Changes at or below the threshold (anti-aliasing flicker) are not the edit's region.
    truths[0, 1, 1] = evaluator.CHANGED_PIXEL_THRESHOLD
    assert evaluator.region_metrics(edited, sources, truths)["changed_fraction"] == 2 / 16


def test_gradient_alignment_of_hand_made_gradients(faces):
    _, identities, ids, source_aus = faces

    def true_direction(images, index, sign=1.0):
        """A gradient equal to (a multiple of) render(AU = 1) - render(face): the ideal AU head's."""
        directions = []
        for image in images:
            image_id, aus = next((i, a) for i, a in zip(ids, source_aus)
                                 if np.array_equal(renderer.render_face(identities[i], a, 32), np.round((image + 1) * 127.5)))
            raised = aus.copy()
            raised[index] = 1.0
            directions.append(renderer.render_face(identities[image_id], raised, 32) - (image + 1) * 127.5)
        return sign * 0.01 * np.stack(directions)

    aligned = evaluator.au_gradient_alignment(true_direction, identities, ids, source_aus, 32)
    assert set(aligned) == set(evaluator.ALIGNMENT_AUS) | {"mean"}
    assert all(value == pytest.approx(1.0) for value in aligned.values())
    opposed = evaluator.au_gradient_alignment(lambda x, k: true_direction(x, k, -1.0), identities, ids, source_aus, 32)
    assert opposed["mean"] == pytest.approx(-1.0)
    noise = lambda images, index: np.random.default_rng(index).standard_normal(images.shape)
    assert abs(evaluator.au_gradient_alignment(noise, identities, ids, source_aus, 32)["mean"]) < 0.1


def test_critic_gradient_matches_a_finite_difference():
    critic = networks.build_critic(TINY_MODEL)
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    step = 1e-2 * rng.standard_normal(images.shape).astype(np.float32)
    gradient = evaluator.critic_gradient(critic)(images, 12)
    assert gradient.shape == images.shape
    reading = lambda x: critic(x)["aus"].numpy()[:, 12].astype(np.float64)
    finite_difference = (reading(images + step) - reading(images - step)) / 2
    np.testing.assert_allclose(np.sum(gradient * step, axis=(1, 2, 3)), finite_difference, rtol=0.05, atol=1e-5)


def test_consistency_of_the_identity_model_is_perfect():
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
    aus = rng.uniform(0, 1, (3, 17)).astype(np.float32)
    critic = lambda x: np.full((len(x), 17), 0.5, np.float32)
    metrics = evaluator.consistency_metrics(_identity_edit, images, aus, 1.0 - aus, critic)
    assert metrics["cycle_l1"] == 0.0
    assert metrics["critic_aus_mae_on_edits"] == pytest.approx(np.abs(0.5 - (1.0 - aus)).mean(), rel=1e-6)
    assert "self-consistency" in metrics["critic_aus_note"]


def test_sheet_has_a_row_per_au_and_input_sweep_attention_color_columns():
    generator = networks.build_generator(TINY_MODEL)
    image = np.zeros((32, 32, 3), np.float32)
    image[:16, :16] = 1.0  # a white top-left quarter
    sheet = evaluator.evaluation_sheet(evaluator.generator_edit(generator), image, np.zeros(17, np.float32))
    assert sheet.dtype == np.uint8
    cell = 96  # 32-px faces are enlarged 3x to SHEET_MIN_CELL
    assert sheet.shape == (action_units.NUM_AUS * cell, 40 + 8 * cell, 3)
    input_cell = sheet[:cell, 40:40 + cell]  # the input: 0 in [-1, 1] is grey 128, 1 is white
    np.testing.assert_array_equal(input_cell[:48, :48], 255)
    np.testing.assert_array_equal(input_cell[48:, :], 128)
    np.testing.assert_array_equal(input_cell[:, 48:], 128)


def test_evaluate_run_writes_metrics_and_sheet(faces, tmp_path):
    data_dir = faces[0]
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
    assert -1.0 <= alignment["mean"] <= 1.0 and set(alignment) <= set(evaluator.ALIGNMENT_AUS) | {"mean"}
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


def test_evaluate_run_reads_a_checkpoint_while_the_run_trains(faces, tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(data_dir=os.fspath(faces[0]), image_size=32))
    run_folder.save_config(config, tmp_path)  # no final weights: the run is still training
    gan = trainer.build_gan(config, trainer.Schedule(steps_per_epoch=4, total_steps=40, final_step=40,
                                                       decay_steps=10))
    gan.generator_optimizer.iterations.assign(12)  # saved at step 12, as a training run saves
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
