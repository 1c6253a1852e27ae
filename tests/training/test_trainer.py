import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import logging
from conftest import PROJECT_ROOT, TINY_MODEL

from tf_ganimation.core.config import Config, DataConfig, OptimizerConfig, RunConfig
from tf_ganimation.runs import run_folder
from tf_ganimation.synthetic import synthetic_dataset
from tf_ganimation.training import checkpoints, trainer


@pytest.fixture(scope="module")
def synthetic_faces(tmp_path_factory) -> pathlib.Path:
    data_dir = tmp_path_factory.mktemp("faces")
    synthetic_dataset.make_dataset(os.fspath(data_dir), num_images=40, image_size=32, seed=0, progress=False)
    return data_dir


def _train_script(*args, timeout=300):
    command = [sys.executable, "scripts/train.py", "--flagfile=configs/smoke.flags", *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def test_schedule_counts_steps_per_epoch_from_the_global_batch():
    config = Config(data=DataConfig(batch_size=25, n_critic=5), optimizer=OptimizerConfig(epochs=30, decay_epochs=10))
    schedule = trainer.make_schedule(config, num_train_examples=200_000)
    assert schedule.steps_per_epoch == 1600  # 200,000 / (25 x 5)
    assert (schedule.total_steps, schedule.final_step, schedule.decay_steps) == (48_000, 48_000, 16_000)
    capped = Config(data=DataConfig(batch_size=25, n_critic=5), run=RunConfig(max_steps=7))
    assert trainer.make_schedule(capped, 200_000).final_step == 7


def test_learning_rate_schedules_count_each_optimizers_own_updates():
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32, n_critic=5),
                    optimizer=OptimizerConfig(epochs=4, decay_epochs=2))
    gan = trainer.build_gan(config, trainer.Schedule(steps_per_epoch=10, total_steps=40, final_step=40,
                                                        decay_steps=20))
    # Keras 3 keeps an optimizer's schedule in `_learning_rate`; `learning_rate` is its current value.
    generator_schedule, critic_schedule = gan.generator_optimizer._learning_rate, gan.critic_optimizer._learning_rate
    assert (generator_schedule.total_steps, generator_schedule.decay_steps) == (40, 20)
    assert (critic_schedule.total_steps, critic_schedule.decay_steps) == (200, 100)


def test_sample_grid_shows_five_columns_per_face():
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    gan = trainer.build_gan(config, trainer.Schedule(1, 1, 1, 0))
    rng = np.random.default_rng(0)
    samples = {"real_image": rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32),
               "real_aus": rng.uniform(0, 1, (3, 17)).astype(np.float32),
               "target_aus": rng.uniform(0, 1, (3, 17)).astype(np.float32)}
    grid = trainer.sample_grid(gan, samples)
    assert grid.shape == (3 * 32, 5 * 32, 3) and grid.dtype == np.uint8
    real = np.round((samples["real_image"][1] + 1) / 2 * 255)
    np.testing.assert_allclose(grid[32:64, :32], real, atol=1)


def _scalars(log_dir: pathlib.Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the scalar summaries in a run's TensorBoard logs."""
    from tensorflow.core.util import event_pb2

    scalars: dict[str, dict[int, float]] = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(os.fspath(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if array.ndim == 0:
                    scalars.setdefault(value.tag, {})[event.step] = float(array)
    return scalars


def _monitor(tmp_path, probe, eval_every=2):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32),
                    run=RunConfig(eval_every=eval_every, summary_every=100, sample_every=100, checkpoint_every=100))
    schedule = trainer.Schedule(steps_per_epoch=100, total_steps=5, final_step=5, decay_steps=0)
    gan = trainer.build_gan(config, schedule)
    writer = checkpoints.CheckpointWriter(tf.train.Checkpoint(), tmp_path / "checkpoints", keep=1)
    rng = np.random.default_rng(0)
    samples = {"real_image": rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32),
               "real_aus": np.zeros((1, 17), np.float32), "target_aus": np.ones((1, 17), np.float32)}
    return trainer.TrainingMonitor(gan, config, schedule, tmp_path, writer, samples, probe)


def test_monitor_runs_the_probe_every_eval_every_steps_and_at_the_end(tmp_path):
    calls = []

    def probe(generator):
        calls.append(generator)
        return {"l1_ratio_to_baseline": 0.5 + len(calls)}

    monitor = _monitor(tmp_path, probe)
    for step in range(1, 6):
        monitor.after_step(step, {"generator_loss": 1.0}, skipped=False, stopping=False)
    monitor.summary_writer.flush()
    assert len(calls) == 3 and all(generator is monitor.gan.generator for generator in calls)
    assert _scalars(tmp_path / "logs")["evaluation/l1_ratio_to_baseline"] == {2: 1.5, 4: 2.5, 5: 3.5}


def test_a_failing_probe_is_logged_and_training_goes_on(tmp_path, caplog):
    def probe(generator):
        raise ValueError("identities.json is unreadable")

    monitor = _monitor(tmp_path, probe, eval_every=1)
    with caplog.at_level(logging.WARNING):
        monitor.after_step(1, {"generator_loss": 1.0}, skipped=False, stopping=False)
    assert "step 1: evaluation failed and was skipped: ValueError: identities.json is unreadable" in caplog.text


def test_eval_every_is_a_non_negative_integer():
    assert RunConfig().eval_every == 0  # off unless asked
    with pytest.raises(ValueError, match="eval_every=-1 is invalid"):
        RunConfig(eval_every=-1)


@pytest.mark.slow
def test_train_script_smoke_run_then_resume(synthetic_faces, tmp_path):
    run_dir = tmp_path / "run"
    first = _train_script(f"--data_dir={synthetic_faces}", f"--workdir={run_dir}", "--max_steps=2", "--eval_every=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(first.stderr.strip().splitlines()[-1])["step"] == 2
    assert (run_dir / "flags.txt").read_text().count("--max_steps=2") == 1
    assert (run_dir / "checkpoints" / "ckpt-2.index").is_file()
    assert list((run_dir / "logs").glob("events.out.tfevents.*"))
    # Evaluated at step 2 against the synthetic faces' true renderings.
    ratios = _scalars(run_dir / "logs")["evaluation/l1_ratio_to_baseline"]
    assert sorted(ratios) == [2] and 0.0 < ratios[2] < 100.0
    assert "step 2 evaluation: l1_ratio_to_baseline" in first.stderr
    assert (run_dir / "samples" / "step_0000002.png").is_file()
    assert (run_dir / "generator.weights.h5").is_file()

    second = _train_script(f"--data_dir={synthetic_faces}", f"--workdir={run_dir}", "--max_steps=4")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming from step 2" in second.stderr
    result = json.loads(second.stderr.strip().splitlines()[-1])
    assert result["step"] == 4
    assert all(np.isfinite(value) for key, value in result.items() if key.endswith("loss"))
    assert (run_dir / "checkpoints" / "ckpt-4.index").is_file()


@pytest.mark.slow
def test_train_script_reports_user_errors_in_one_paragraph(tmp_path):
    missing = _train_script(f"--data_dir={tmp_path / 'nowhere'}", f"--workdir={tmp_path / 'run'}")
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
    assert "error: the data folder" in missing.stderr and "nowhere" in missing.stderr
    bad_flag = _train_script("--batch_size=0", f"--workdir={tmp_path / 'run'}")
    assert bad_flag.returncode == 2 and "error: batch_size=0 is invalid" in bad_flag.stderr


def test_max_nonfinite_skips_is_a_non_negative_integer():
    assert RunConfig().max_nonfinite_skips == 0  # default: stop at the first NaN/Inf
    assert RunConfig(max_nonfinite_skips=3).max_nonfinite_skips == 3
    for value in (-1, 1.5):
        with pytest.raises(ValueError, match=f"max_nonfinite_skips={value!r} is invalid: expected an integer >= 0"):
            RunConfig(max_nonfinite_skips=value)


# === Reading checkpoints (evaluate.py --checkpoint) ===


def test_load_checkpoint_reads_both_networks_of_a_training_checkpoint(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    run_folder.save_config(config, tmp_path)
    gan = trainer.build_gan(config, trainer.Schedule(steps_per_epoch=10, total_steps=100, final_step=100,
                                                       decay_steps=50))  # as scripts/train.py builds it
    manager = checkpoints.make_manager(gan, tmp_path / run_folder.CHECKPOINT_DIR, keep=3)
    gan.generator_optimizer.iterations.assign(7)  # the step, as a training run saves it
    manager.save(checkpoint_number=7)
    gan.generator.trainable_variables[0].assign_add(np.ones(gan.generator.trainable_variables[0].shape))
    gan.generator_optimizer.iterations.assign(9)
    manager.save(checkpoint_number=9)
    image, aus = np.full((1, 32, 32, 3), 0.3, np.float32), np.ones((1, 17), np.float32)
    generator, critic, _, step = trainer.load_checkpoint(tmp_path)  # "latest"
    assert step == 9
    np.testing.assert_array_equal(generator(image, aus)["color"], gan.generator(image, aus)["color"])
    np.testing.assert_array_equal(critic(image)["aus"], gan.critic(image)["aus"])
    older, _, _, step = trainer.load_checkpoint(tmp_path, "ckpt-7")
    assert step == 7
    assert not np.allclose(older(image, aus)["color"], generator(image, aus)["color"])
    with pytest.raises(FileNotFoundError, match="ckpt-8.*the run has ckpt-7, ckpt-9"):
        trainer.load_checkpoint(tmp_path, "ckpt-8")


def test_load_checkpoint_of_a_run_without_checkpoints_says_so(tmp_path):
    run_folder.save_config(Config(model=TINY_MODEL, data=DataConfig(image_size=32)), tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoints yet"):
        trainer.load_checkpoint(tmp_path)


def test_load_checkpoint_of_other_networks_names_the_checkpoint(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32))
    wider = Config(model=dataclasses.replace(TINY_MODEL, generator_filters=16), data=config.data)
    schedule = trainer.Schedule(steps_per_epoch=10, total_steps=100, final_step=100, decay_steps=50)
    checkpoints.make_manager(trainer.build_gan(wider, schedule), tmp_path / run_folder.CHECKPOINT_DIR,
                             keep=1).save(checkpoint_number=3)
    run_folder.save_config(config, tmp_path)
    with pytest.raises(ValueError, match="ckpt-3 does not hold the networks of .*config.json"):
        trainer.load_checkpoint(tmp_path)
