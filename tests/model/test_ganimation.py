import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.core.config import Config, DataConfig, OptimizerConfig
from tf_ganimation.model import ganimation, networks, optimizers

from conftest import PROJECT_ROOT, TINY_MODEL, random_batch


def _gan(config=TINY_MODEL, optimizer=lambda: optimizers.make_optimizer(1e-4, 0.5, 0.999)):
    gan = ganimation.GANimation(networks.build_generator(config), networks.build_critic(config))
    gan.compile(generator_optimizer=optimizer(), critic_optimizer=optimizer())
    return gan


def _weights(network):
    return [w.numpy().copy() for w in network.trainable_variables]


def _changed(before, after):
    return any(np.abs(a - b).max() > 0 for a, b in zip(before, after))


def test_one_train_step_makes_n_critic_critic_updates_and_one_generator_update():
    gan = _gan()
    batch = {k: tf.constant(v) for k, v in random_batch(2, 5, 32).items()}
    logs = gan.train_step(batch)
    assert int(gan.critic_optimizer.iterations) == 5
    assert int(gan.generator_optimizer.iterations) == 1
    expected = {"critic_loss", "wasserstein_distance", "gradient_penalty", "critic_aus_loss", "generator_loss",
                "generator_adversarial_loss", "generator_aus_loss", "cycle_loss", "attention_mean_loss",
                "attention_tv_loss", "attention_mean"}
    assert set(logs) == expected
    assert all(np.isfinite(float(value)) for value in logs.values())
    assert 0.0 <= float(logs["attention_mean"]) <= 1.0


def test_train_step_equals_its_critic_and_generator_steps_made_one_by_one():
    # The second train_step of a run: its critic updates are numbered 3, 4, 5 (train_steps * n_critic + k),
    # the numbers that seed the gradient penalty's alpha; other numbers give other weights.
    batches = [{k: tf.constant(v) for k, v in random_batch(2, 3, 32, seed=seed).items()} for seed in (0, 1)]
    whole, stepwise, misnumbered = _gan(), _gan(), _gan()
    for gan in (stepwise, misnumbered):
        for network in ("generator", "critic"):
            getattr(gan, network).set_weights(getattr(whole, network).get_weights())
    for batch in batches:
        whole.train_step(batch)
    for gan, first_update in ((stepwise, 0), (misnumbered, 1)):
        for step, batch in enumerate(batches):
            real, real_aus, target = (batch[key] for key in ("real_image", "real_aus", "target_aus"))
            for k in range(3):
                gan.critic_step(real[:, k], real_aus[:, k], target[:, k], first_update + 3 * step + k)
            gan.generator_step(real[:, -1], real_aus[:, -1], target[:, -1])
    for network in ("generator", "critic"):
        for a, b in zip(_weights(getattr(whole, network)), _weights(getattr(stepwise, network))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert _changed(_weights(whole.critic), _weights(misnumbered.critic))
    assert int(whole.train_steps) == 2 and int(whole.critic_optimizer.iterations) == 6


def test_critic_updates_leave_the_generator_alone_and_vice_versa():
    gan = _gan()
    batch = {k: tf.constant(v[:, 0]) for k, v in random_batch(2, 1, 32).items()}
    generator_before, critic_before = _weights(gan.generator), _weights(gan.critic)
    gan.critic_step(batch["real_image"], batch["real_aus"], batch["target_aus"], update_index=0)
    assert not _changed(generator_before, _weights(gan.generator))
    critic_after = _weights(gan.critic)
    assert _changed(critic_before, critic_after)
    gan.generator_step(batch["real_image"], batch["real_aus"], batch["target_aus"])
    assert not _changed(critic_after, _weights(gan.critic))
    assert _changed(generator_before, _weights(gan.generator))


def test_fit_runs_on_a_dataset_and_calling_the_model_edits_images():
    gan = _gan()
    dataset = tf.data.Dataset.from_tensor_slices(random_batch(4, 5, 32)).batch(2, drop_remainder=True)
    history = gan.fit(dataset, epochs=2, verbose=0, shuffle=False)
    assert int(gan.generator_optimizer.iterations) == 4
    assert np.isfinite(history.history["generator_loss"]).all()
    fake = gan({"real_image": np.zeros((1, 32, 32, 3), np.float32), "target_aus": np.zeros((1, 17), np.float32)})
    assert fake.shape == (1, 32, 32, 3)


_PARITY_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path.insert(0, "tests")
    from conftest import TINY_MODEL, random_batch
    from tf_ganimation.model import ganimation, networks

    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(7)
            gan = ganimation.GANimation(networks.build_generator(TINY_MODEL), networks.build_critic(TINY_MODEL))
            gan.compile(generator_optimizer=keras.optimizers.SGD(1e-3), critic_optimizer=keras.optimizers.SGD(1e-3))
        variables = gan.generator.weights + gan.critic.weights
        initial = [w.numpy() for w in variables]
        dataset = tf.data.Dataset.from_tensor_slices(random_batch(4, 5, 32)).batch(4, drop_remainder=True)
        gan.fit(dataset, epochs=1, verbose=0)
        updates = [w.numpy() - w0 for w, w0 in zip(variables, initial)]
        return initial, updates, int(gan.critic_optimizer.iterations.numpy())

    initial, single, single_steps = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    initial_2, mirrored, mirrored_steps = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    weight_errors = [float(np.abs(a - b).max() / np.abs(w).max())
                     for w, a, b in zip(initial, single, mirrored) if np.abs(w).max() > 0]
    # Updates too: a doubled step would hide inside weights that barely move. Their float32 precision is
    # that of a difference of weights (~1e-7 * |w| / |update|), so the bound is looser.
    update_errors = [float(np.abs(a - b).max() / np.abs(a).max()) for a, b in zip(single, mirrored)
                     if np.abs(a).max() > 0]
    print(json.dumps({"weight_relative_error": max(weight_errors), "update_relative_error": max(update_errors),
                      "steps": [single_steps, mirrored_steps],
                      "same_initial_weights": all(np.array_equal(a, b) for a, b in zip(initial, initial_2)),
                      "variables_compared": len(update_errors)}))
""")


@pytest.mark.slow


def test_two_replicas_match_one_device():
    result = subprocess.run([sys.executable, "-c", _PARITY_SCRIPT], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["steps"] == [5, 5]
    assert report["same_initial_weights"] and report["variables_compared"] >= 20
    assert report["weight_relative_error"] < 1e-5, report
    assert report["update_relative_error"] < 1e-2, report


def test_make_gan_schedules_count_each_optimizers_own_updates():
    config = Config(model=TINY_MODEL, data=DataConfig(image_size=32, n_critic=5),
                    optimizer=OptimizerConfig(epochs=4, decay_epochs=2))
    gan = ganimation.make_gan(config, total_steps=40, decay_steps=20)
    # Keras 3 keeps an optimizer's schedule in `_learning_rate`; `learning_rate` is its current value.
    generator_schedule, critic_schedule = gan.generator_optimizer._learning_rate, gan.critic_optimizer._learning_rate
    assert (generator_schedule.total_steps, generator_schedule.decay_steps) == (40, 20)
    assert (critic_schedule.total_steps, critic_schedule.decay_steps) == (200, 100)
    assert ganimation.current_step(gan) == 0
    gan.train_steps.assign(3)
    assert ganimation.current_step(gan) == 3
    gan.generator_optimizer.iterations.assign(5)  # the loop's own count, not the optimizer's (float16 skips)
    assert ganimation.current_step(gan) == 3
