import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tf_ganimation.core.config import Config, DataConfig, OptimizerConfig, RunConfig
from tf_ganimation.runs import run_folder
from tf_ganimation.synthetic import synthetic_dataset
from tf_ganimation.training import trainer

from conftest import PROJECT_ROOT, TINY_MODEL, TWO_CPU_DEVICES_SCRIPT, scalar_summaries


@pytest.fixture(scope="module")
def synthetic_faces(tmp_path_factory) -> pathlib.Path:
    data_dir = tmp_path_factory.mktemp("faces")
    synthetic_dataset.make_dataset(os.fspath(data_dir), num_images=40, image_size=32, seed=0, progress=False)
    return data_dir


def _train_script(*args, timeout=300):
    command = [sys.executable, "scripts/train.py", "--flagfile=configs/smoke.flags", *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def _tiny_config(data_dir, synthetic_images=0, **run) -> Config:
    return Config(model=TINY_MODEL, optimizer=OptimizerConfig(epochs=2, decay_epochs=1),
                  data=DataConfig(data_dir=os.fspath(data_dir), image_size=32, batch_size=4, n_critic=2,
                                  shuffle_buffer=16, synthetic_images=synthetic_images),
                  run=RunConfig(**{"strategy": "one_device", "summary_every": 1, "sample_every": 1, "num_samples": 1,
                                   "mixed_precision": "none", **run}))


def test_train_scores_a_synthetic_dataset_and_never_renders_one(synthetic_faces, tmp_path, capsys):
    config = _tiny_config(synthetic_faces, max_steps=1, eval_every=1)
    result = trainer.train(config, tmp_path / "run")
    assert result["step"] == 1 and result["interrupted_by"] == 0
    assert sorted(scalar_summaries(tmp_path / "run" / "logs")["evaluation/l1_ratio_to_baseline"]) == [1]
    assert run_folder.load_config(tmp_path / "run") == config
    assert (tmp_path / "run" / run_folder.GENERATOR_WEIGHTS).is_file()
    # Rendering is the training script's (synthetic_dataset.render_missing): a missing folder is an error here.
    missing = _tiny_config(tmp_path / "faces", synthetic_images=20, max_steps=1)
    with pytest.raises(FileNotFoundError, match="faces"):
        trainer.train(missing, tmp_path / "other_run")
    assert not (tmp_path / "faces").exists() and "Rendering" not in capsys.readouterr().err


def test_eval_every_on_data_that_is_not_synthetic_is_ignored_with_a_message(ganimation_dir, capsys):
    assert trainer._make_probe(_tiny_config(ganimation_dir, eval_every=5)) is None
    assert (f"--eval_every=5 is ignored: {ganimation_dir} is not a synthetic dataset (no identities.json)"
            in capsys.readouterr().err)
    assert trainer._make_probe(_tiny_config(ganimation_dir)) is None  # eval_every=0: not asked


def test_a_workdir_of_other_network_sizes_is_not_resumed(synthetic_faces, tmp_path):
    config = _tiny_config(synthetic_faces, max_steps=1)
    wider = dataclasses.replace(config, model=dataclasses.replace(TINY_MODEL, generator_filters=16))
    run_folder.save_config(wider, tmp_path)
    with pytest.raises(ValueError, match=r"holds a run with other network sizes \(generator_filters differ"):
        trainer.train(config, tmp_path)


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
    ratios = scalar_summaries(run_dir / "logs")["evaluation/l1_ratio_to_baseline"]
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


# === Steps per call, XLA, float16 ===


def _weights_of(gan) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in gan.generator.weights + gan.critic.weights]


@pytest.mark.slow
def test_several_steps_per_call_end_with_the_same_weights_logs_and_checkpoints(synthetic_faces, tmp_path):
    import tensorflow as tf

    runs = {}
    for steps_per_execution in (1, 3):
        run_dir = tmp_path / f"n{steps_per_execution}"
        config = _tiny_config(synthetic_faces, deterministic=True, max_steps=5, checkpoint_every=2, summary_every=2,
                              sample_every=4, steps_per_execution=steps_per_execution)
        result = trainer.train(config, run_dir)
        reader = tf.train.load_checkpoint(os.fspath(run_dir / "checkpoints" / "ckpt-5"))
        runs[steps_per_execution] = (result, run_dir, reader)
    (one, one_dir, one_reader), (three, three_dir, three_reader) = runs[1], runs[3]
    assert one["step"] == three["step"] == 5
    # Calls end at every step where something is due (2, 4 and the final 5), so both runs save the same checkpoints...
    for run_dir in (one_dir, three_dir):
        assert sorted(path.name for path in (run_dir / "checkpoints").glob("*.index")) == [
            "ckpt-2.index", "ckpt-4.index", "ckpt-5.index"]
    assert sorted(path.name for path in (three_dir / "samples").iterdir()) == ["step_0000004.png", "step_0000005.png"]
    # ... the same scalars at the same steps, and the same weights.
    one_scalars, three_scalars = scalar_summaries(one_dir / "logs"), scalar_summaries(three_dir / "logs")
    assert sorted(three_scalars["losses/critic_loss"]) == [2, 4, 5]
    for tag in ("losses/critic_loss", "losses/generator_loss", "losses/gradient_penalty"):
        assert one_scalars[tag] == pytest.approx(three_scalars[tag], rel=1e-5), tag
    # Every saved tensor: the weights (Keras 3 saves most through the optimizers' lists) and Adam's moments.
    names = sorted(set(one_reader.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"})
    assert names == sorted(set(three_reader.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"})
    assert len(names) > 90
    for name in names:
        np.testing.assert_allclose(one_reader.get_tensor(name), three_reader.get_tensor(name), rtol=1e-5, atol=1e-6)
    assert int(three_reader.get_tensor("train_steps/.ATTRIBUTES/VARIABLE_VALUE")) == 5
    # Stopped after step 3 and resumed: the same calls from there on, the same checkpoint 5.
    resumed_dir = tmp_path / "resumed"
    stopped = _tiny_config(synthetic_faces, deterministic=True, max_steps=3, checkpoint_every=2, summary_every=2,
                           sample_every=4, steps_per_execution=3)
    assert trainer.train(stopped, resumed_dir)["step"] == 3
    assert trainer.train(dataclasses.replace(stopped, run=dataclasses.replace(stopped.run, max_steps=5)),
                         resumed_dir)["step"] == 5
    resumed_reader = tf.train.load_checkpoint(os.fspath(resumed_dir / "checkpoints" / "ckpt-5"))
    for name in (name for name in names if not name.startswith("save_counter")):  # it saved twice more
        np.testing.assert_allclose(resumed_reader.get_tensor(name), three_reader.get_tensor(name), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("step, expected", [(0, 3), (3, 1), (4, 2), (6, 2), (7, 1), (9, 1)])
def test_a_call_ends_at_the_next_due_step_or_multiple_of_steps_per_execution(synthetic_faces, step, expected):
    from tf_ganimation.training.schedule import Schedule

    config = _tiny_config(synthetic_faces, checkpoint_every=4, summary_every=100, sample_every=100)
    schedule = Schedule(steps_per_epoch=100, total_steps=100, final_step=10, decay_steps=0)
    assert trainer.call_length(step, 3, config, schedule) == expected


# Runs in a subprocess: logical devices must be configured before TensorFlow starts.
_XLA_ON_TWO_DEVICES_SCRIPT = TWO_CPU_DEVICES_SCRIPT + """
batches = [random_batch(4, 2, 32, seed=seed) for seed in range(2)]
dataset = tf.data.Dataset.from_tensor_slices({k: np.stack([b[k] for b in batches]) for k in batches[0]}).unbatch()
results = {}
for jit_compile in (False, True):
    with strategy.scope():
        keras.utils.set_random_seed(3)
        gan = ganimation.make_gan(config, total_steps=10, decay_steps=0)
        # SGD: an update proportional to the gradient can be compared; Adam's first steps are lr * sign(g)
        # and flip with the rounding of gradients near 0.
        gan.compile(generator_optimizer=keras.optimizers.SGD(1e-3), critic_optimizer=keras.optimizers.SGD(1e-3))
    initial = [np.array(v.numpy()) for v in gan.generator.weights + gan.critic.weights]
    iterator = iter(strategy.experimental_distribute_dataset(dataset.batch(4)))
    step = trainer.make_step_function(gan, strategy, jit_compile=jit_compile, steps_per_execution=2)
    logs, skipped, _ = step(iterator, tf.constant(False), tf.constant(2))
    weights = [[np.array(c.numpy()) for c in strategy.experimental_local_results(v.value)]
               for v in gan.generator.weights + gan.critic.weights]
    results[jit_compile] = {"initial": initial, "weights": weights, "critic_loss": logs["critic_loss"].numpy().tolist(),
                            "skipped": float(sum(v.numpy().sum() for v in skipped.values())),
                            "steps": int(gan.train_steps.numpy())}
plain, xla = results[False], results[True]
print(json.dumps({
    "weight_error": max(float(np.abs(a[0] - b[0]).max() / max(np.abs(a[0]).max(), 1e-12))
                        for a, b in zip(plain["weights"], xla["weights"])),
    "update_error": max(float(np.abs(a[0] - b[0]).max() / max(np.abs(a[0] - w).max(), 1e-12))
                        for a, b, w in zip(plain["weights"], xla["weights"], plain["initial"])
                        if np.abs(a[0] - w).max() > 0),
    "replicas_equal": all(np.array_equal(c[0], c[1]) for c in xla["weights"]),
    "moved": any(np.abs(a[0] - w).max() > 0 for a, w in zip(xla["weights"], xla["initial"])),
    "critic_loss": [plain["critic_loss"], xla["critic_loss"]], "skipped": [plain["skipped"], xla["skipped"]],
    "steps": [plain["steps"], xla["steps"]]}))
"""


@pytest.mark.slow
def test_xla_under_mirrored_strategy_on_two_devices_matches_the_run_without_it():
    result = subprocess.run([sys.executable, "-c", _XLA_ON_TWO_DEVICES_SCRIPT], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["steps"] == [2, 2] and report["skipped"] == [0.0, 0.0]
    assert report["moved"] and report["replicas_equal"]
    plain_losses, xla_losses = report["critic_loss"]
    assert len(plain_losses) == 2 and np.allclose(plain_losses, xla_losses, rtol=1e-4), report["critic_loss"]
    # XLA fuses and reorders float32 arithmetic: the weights agree to ~1e-6 of their size, the updates to ~1e-3.
    assert report["weight_error"] < 1e-5, report
    assert report["update_error"] < 1e-2, report


def test_float16_steps_through_skipped_warm_up_updates_count_like_float32(tmp_path):
    import keras
    import tensorflow as tf

    from tf_ganimation.model import ganimation

    from conftest import random_batch

    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32, batch_size=2, n_critic=2),
                    run=RunConfig(mixed_precision="mixed_float16"))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        gan = ganimation.make_gan(config, total_steps=10, decay_steps=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # A loss scale float16 cannot hold: every update overflows and is skipped while the scale halves.
    for optimizer in (gan.generator_optimizer, gan.critic_optimizer):
        optimizer.dynamic_scale.assign(2.0 ** 40)
    batch = {key: tf.constant(value) for key, value in random_batch(2, 2, 32).items()}
    strategy = tf.distribute.get_strategy()
    step = trainer.make_step_function(gan, strategy, steps_per_execution=3)
    logs, skipped, _ = step(iter(tf.data.Dataset.from_tensors(batch).repeat()), tf.constant(False), tf.constant(3))
    assert ganimation.current_step(gan) == 3  # the loop's own count: 3 steps made, whatever was skipped
    assert int(gan.generator_optimizer.iterations) < 3  # the optimizer skipped warm-up updates
    assert float(gan.critic_optimizer.dynamic_scale) < 2.0 ** 40
    # Overflow is loss scaling's business, not a fault: nothing counts as a non-finite skip.
    assert all(float(value.numpy().sum()) == 0.0 for value in skipped.values())
    assert np.isfinite(logs["critic_loss"].numpy()).all()
    # The count is what a checkpoint stores and a resumed run starts from (its data position too).
    ganimation.make_checkpoint(gan).write(os.fspath(tmp_path / "ckpt"))
    fresh = ganimation.make_gan(config, total_steps=10, decay_steps=0)
    ganimation.make_checkpoint(fresh).read(os.fspath(tmp_path / "ckpt")).expect_partial()
    assert ganimation.current_step(fresh) == 3


def test_train_leaves_the_global_precision_policy_as_it_found_it(tmp_path):
    # A bfloat16 run (what auto picks on some CPUs) must not turn later networks of the same process bfloat16.
    import keras

    data_dir = tmp_path / "faces"
    synthetic_dataset.make_dataset(os.fspath(data_dir), num_images=24, image_size=32, seed=0, progress=False)
    config = _tiny_config(data_dir, mixed_precision="mixed_bfloat16", max_steps=1, checkpoint_every=1)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert trainer.train(config, tmp_path / "run")["step"] == 1
    assert keras.mixed_precision.global_policy().name == "float32"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["run"]["mixed_precision"] == "mixed_bfloat16"
