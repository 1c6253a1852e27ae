"""Tests for tf_ganimation/core/config.py: the paper's defaults and precise errors for invalid values."""

import dataclasses

import pytest

from tf_ganimation.core import config


def test_defaults_are_the_papers():
    defaults = config.Config()
    assert (defaults.model.image_size, defaults.model.generator_filters, defaults.model.generator_residual_blocks,
            defaults.model.critic_filters, defaults.model.critic_layers,
            defaults.model.num_aus) == (128, 64, 6, 64, 6, 17)
    assert (defaults.loss.lambda_gp, defaults.loss.lambda_cyc, defaults.loss.lambda_attention) == (10.0, 10.0, 0.1)
    assert (defaults.optimizer.generator_learning_rate, defaults.optimizer.beta_1, defaults.optimizer.beta_2,
            defaults.optimizer.epochs, defaults.optimizer.decay_epochs) == (1e-4, 0.5, 0.999, 30, 10)
    assert (defaults.data.batch_size, defaults.data.n_critic) == (25, 5)


@pytest.mark.parametrize("section, field, value, expected", [
    (config.ModelConfig, "image_size", 0, "a number > 0"),
    (config.ModelConfig, "image_size", 96, "a multiple of 2**critic_layers = 64"),
    (config.ModelConfig, "generator_residual_blocks", -1, "a number >= 0"),
    (config.LossConfig, "lambda_cyc", float("nan"), "a number >= 0"),
    (config.OptimizerConfig, "beta_1", 1.0, "a number in [0, 1)"),
    (config.OptimizerConfig, "decay_epochs", 31, "an integer in [0, epochs=30]"),
    (config.DataConfig, "data_format", "csv", "one of ('auto', 'ganimation', 'openface', 'tfrecord')"),
    (config.DataConfig, "target_aus_noise", 2.0, "a number in [0, 1]"),
    (config.RunConfig, "strategy", "tpu", "one of ('auto', 'one_device', 'mirrored', 'multi_worker')"),
    (config.RunConfig, "max_nonfinite_skips", 1.5, "an integer >= 0"),
])
def test_an_invalid_value_names_the_field_the_value_and_the_allowed_range(section, field, value, expected):
    with pytest.raises(ValueError) as raised:
        section(**{field: value})
    message = str(raised.value)
    assert message.startswith(f"{field}={value!r} is invalid: expected ") and expected in message


def test_data_and_model_must_agree_on_the_image_size():
    with pytest.raises(ValueError, match=r"image_size=64 is invalid: expected the same for data and model"):
        config.Config(model=config.ModelConfig(image_size=128), data=config.DataConfig(image_size=64))


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.Config().model.image_size = 64


def test_eval_every_is_a_non_negative_integer():
    assert config.RunConfig().eval_every == 0  # off unless asked
    with pytest.raises(ValueError, match="eval_every=-1 is invalid"):
        config.RunConfig(eval_every=-1)


def test_max_nonfinite_skips_is_a_non_negative_integer():
    assert config.RunConfig().max_nonfinite_skips == 0  # default: stop at the first NaN/Inf
    assert config.RunConfig(max_nonfinite_skips=3).max_nonfinite_skips == 3
    for value in (-1, 1.5):
        with pytest.raises(ValueError, match=f"max_nonfinite_skips={value!r} is invalid: expected an integer >= 0"):
            config.RunConfig(max_nonfinite_skips=value)


def test_synthetic_images_is_a_non_negative_integer_and_off_by_default():
    assert config.DataConfig().synthetic_images == 0  # never render unless asked
    assert config.DataConfig(synthetic_images=3000).synthetic_images == 3000
    for value in (-1, 2.5):
        with pytest.raises(ValueError, match=f"synthetic_images={value!r} is invalid: expected an integer >= 0"):
            config.DataConfig(synthetic_images=value)


def test_jit_compile_is_auto_true_or_false():
    assert config.RunConfig().jit_compile == "auto"
    with pytest.raises(ValueError, match=r"jit_compile=True is invalid"):  # upgrade_run.py converts old booleans
        config.RunConfig(jit_compile=True)
    with pytest.raises(ValueError, match=r"jit_compile='yes' is invalid: expected one of \('auto', 'true', 'false'\)"):
        config.RunConfig(jit_compile="yes")
    with pytest.raises(ValueError, match="steps_per_execution=-1 is invalid: expected an integer >= 0"):
        config.RunConfig(steps_per_execution=-1)
    with pytest.raises(ValueError, match="per_replica_batch_size=2.5 is invalid: expected an integer >= 0"):
        config.DataConfig(per_replica_batch_size=2.5)
