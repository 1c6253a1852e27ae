import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from tf_ganimation.core.config import Config, DataConfig, RunConfig
from tf_ganimation.model import ganimation
from tf_ganimation.training import checkpoints, monitor
from tf_ganimation.training.schedule import Schedule

from conftest import TINY_MODEL, scalar_summaries


def _samples(count, seed=0):
    rng = np.random.default_rng(seed)
    return {"real_image": rng.uniform(-1, 1, (count, 32, 32, 3)).astype(np.float32),
            "real_aus": rng.uniform(0, 1, (count, 17)).astype(np.float32),
            "target_aus": rng.uniform(0, 1, (count, 17)).astype(np.float32)}


def test_sample_grid_shows_five_columns_per_face():
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    gan = ganimation.make_gan(config, total_steps=1, decay_steps=0)
    samples = _samples(3)
    grid = monitor.sample_grid(gan, samples)
    assert grid.shape == (3 * 32, 5 * 32, 3) and grid.dtype == np.uint8
    real = np.round((samples["real_image"][1] + 1) / 2 * 255)
    np.testing.assert_allclose(grid[32:64, :32], real, atol=1)


def test_sample_grid_cells_are_the_edit_and_its_reconstruction_in_uint8():
    gan = ganimation.make_gan(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), total_steps=1, decay_steps=0)
    samples = _samples(2, seed=1)
    grid = monitor.sample_grid(gan, samples)
    edited = gan.edit(samples["real_image"], samples["target_aus"])
    reconstructed = gan.edit(edited["fake_image"], samples["real_aus"])
    to_uint8 = lambda unit: np.round(np.clip(np.asarray(unit), 0.0, 1.0) * 255.0).astype(np.uint8)
    row = grid[32:64]  # the second face
    np.testing.assert_array_equal(row[:, :32], to_uint8((samples["real_image"][1] + 1) / 2))
    for channel in range(3):  # the attention mask in grey
        np.testing.assert_array_equal(row[:, 32:64, channel], to_uint8(edited["attention"][1, ..., 0]))
    np.testing.assert_array_equal(row[:, 64:96], to_uint8((edited["color"][1] + 1) / 2))
    np.testing.assert_array_equal(row[:, 96:128], to_uint8((edited["fake_image"][1] + 1) / 2))
    np.testing.assert_array_equal(row[:, 128:], to_uint8((reconstructed["fake_image"][1] + 1) / 2))


def _monitor(tmp_path, probe, eval_every=2):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32),
                    run=RunConfig(eval_every=eval_every, summary_every=100, sample_every=100, checkpoint_every=100))
    schedule = Schedule(steps_per_epoch=100, total_steps=5, final_step=5, decay_steps=0)
    gan = ganimation.make_gan(config, schedule.total_steps, schedule.decay_steps)
    writer = checkpoints.CheckpointWriter(tf.train.Checkpoint(), tmp_path / "checkpoints", keep=1)
    rng = np.random.default_rng(0)
    samples = {"real_image": rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32),
               "real_aus": np.zeros((1, 17), np.float32), "target_aus": np.ones((1, 17), np.float32)}
    return monitor.TrainingMonitor(gan, config, schedule, tmp_path, writer, samples, probe)


def _one_step_call(training_monitor, step: int, logs: dict, skipped: bool = False) -> None:
    """What the training loop does for a call of one step."""
    training_monitor.record(logs, skipped)
    training_monitor.after_call(step, stopping=False)


def test_monitor_runs_the_probe_every_eval_every_steps_and_at_the_end(tmp_path):
    calls = []

    def probe(generator):
        calls.append(generator)
        return {"l1_ratio_to_baseline": 0.5 + len(calls)}

    training_monitor = _monitor(tmp_path, probe)
    for step in range(1, 6):
        _one_step_call(training_monitor, step, {"generator_loss": 1.0})
    training_monitor.summary_writer.flush()
    assert len(calls) == 3 and all(generator is training_monitor.gan.generator for generator in calls)
    assert scalar_summaries(tmp_path / "logs")["evaluation/l1_ratio_to_baseline"] == {2: 1.5, 4: 2.5, 5: 3.5}


def test_a_failing_probe_is_logged_and_training_goes_on(tmp_path, caplog):
    def probe(generator):
        raise ValueError("identities.json is unreadable")

    training_monitor = _monitor(tmp_path, probe, eval_every=1)
    with caplog.at_level(logging.WARNING):
        _one_step_call(training_monitor, 1, {"generator_loss": 1.0})
    assert "step 1: evaluation failed and was skipped: ValueError: identities.json is unreadable" in caplog.text


def test_the_last_step_writes_scalars_samples_and_a_checkpoint(tmp_path):
    training_monitor = _monitor(tmp_path, probe=None)
    for step in range(1, 6):
        _one_step_call(training_monitor, step, {"generator_loss": float(step)}, skipped=step == 3)
    training_monitor.summary_writer.flush()
    # Steps 1-5 less the skipped step 3: the mean of 1, 2, 4 and 5.
    assert scalar_summaries(tmp_path / "logs")["losses/generator_loss"] == {5: 3.0}
    sample = tmp_path / "samples" / "step_0000005.png"
    np.testing.assert_array_equal(np.asarray(Image.open(sample)),
                                  monitor.sample_grid(training_monitor.gan, training_monitor.samples))
    assert [path.name for path in (tmp_path / "samples").iterdir()] == ["step_0000005.png"]  # no temporary left
    assert checkpoints.recorded(tmp_path / "checkpoints")[-1].endswith("ckpt-5")
