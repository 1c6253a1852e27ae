"""Frozen experiment configuration: what every library function takes instead of flags.

`tf_ganimation/flags.py` is the only module that reads absl FLAGS; it builds a `Config`. Defaults are
the paper's (Pumarola et al. 2018, Sec. 5 and the authors' training options). Every invalid value
raises `ValueError` naming the field, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import math

from tf_ganimation.core import action_units


def _check(name: str, value, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: expected {allowed}")


def _positive(name: str, value) -> None:
    _check(name, value, isinstance(value, (int, float)) and math.isfinite(value) and value > 0, "a number > 0")


def _non_negative(name: str, value) -> None:
    _check(name, value, isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, "a number >= 0")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Network sizes. Defaults build the paper's generator (8,471,296 weights) and critic (44,860,352)."""

    image_size: int = 128
    num_aus: int = action_units.NUM_AUS
    generator_filters: int = 64
    generator_residual_blocks: int = 6
    critic_filters: int = 64
    critic_layers: int = 6

    def __post_init__(self):
        _positive("image_size", self.image_size)
        _positive("num_aus", self.num_aus)
        _positive("generator_filters", self.generator_filters)
        _non_negative("generator_residual_blocks", self.generator_residual_blocks)
        _positive("critic_filters", self.critic_filters)
        _positive("critic_layers", self.critic_layers)
        divisor = 2 ** self.critic_layers
        _check("image_size", self.image_size, self.image_size % divisor == 0,
               f"a multiple of 2**critic_layers = {divisor} (critic_layers={self.critic_layers})")
        _check("image_size", self.image_size, self.image_size % 4 == 0,
               "a multiple of 4 (the generator downsamples twice)")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss weights, all batch-size independent (see losses.py for their source).

    Notes: lambda_aus 160 and lambda_tv 2.5e-4 are the authors' 4000 and 1e-5, which they apply to
    terms summed (not averaged) over a batch of 25; ours average, so 4000 / 25 and 1e-5 * 25.
    """

    lambda_gp: float = 10.0
    lambda_aus: float = 160.0
    lambda_cyc: float = 10.0
    lambda_attention: float = 0.1
    lambda_tv: float = 2.5e-4

    def __post_init__(self):
        for field in dataclasses.fields(self):
            _non_negative(field.name, getattr(self, field.name))


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam for both networks (paper Sec. 5), constant then linear decay to zero."""

    generator_learning_rate: float = 1e-4
    critic_learning_rate: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    epochs: int = 30
    decay_epochs: int = 10

    def __post_init__(self):
        _positive("generator_learning_rate", self.generator_learning_rate)
        _positive("critic_learning_rate", self.critic_learning_rate)
        _check("beta_1", self.beta_1, 0.0 <= self.beta_1 < 1.0, "a number in [0, 1)")
        _check("beta_2", self.beta_2, 0.0 <= self.beta_2 < 1.0, "a number in [0, 1)")
        _positive("epochs", self.epochs)
        _check("decay_epochs", self.decay_epochs, 0 <= self.decay_epochs <= self.epochs,
               f"an integer in [0, epochs={self.epochs}]")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the AU-labelled faces are and how batches are made.

    `batch_size` is the global batch of one critic update; each train_step consumes n_critic of them.
    """

    data_dir: str = ""
    data_format: str = "auto"  # auto | ganimation | openface | tfrecord
    image_size: int = 128
    batch_size: int = 25
    n_critic: int = 5
    horizontal_flip: bool = True
    target_aus_noise: float = 0.1
    shuffle_buffer: int = 2048
    seed: int = 0
    synthetic_images: int = 0  # > 0: render this many synthetic faces into data_dir first when it is missing
    per_replica_batch_size: int = 0  # > 0: batch_size becomes this times the replicas (training.strategy)
    cache_images: bool = False  # decode the training images once and keep them in host memory (uint8)

    FORMATS = ("auto", "ganimation", "openface", "tfrecord")

    def __post_init__(self):
        _check("data_format", self.data_format, self.data_format in self.FORMATS, f"one of {self.FORMATS}")
        _positive("image_size", self.image_size)
        _positive("batch_size", self.batch_size)
        _positive("n_critic", self.n_critic)
        _check("target_aus_noise", self.target_aus_noise, 0.0 <= self.target_aus_noise <= 1.0, "a number in [0, 1]")
        _positive("shuffle_buffer", self.shuffle_buffer)
        _check("synthetic_images", self.synthetic_images,
               isinstance(self.synthetic_images, int) and self.synthetic_images >= 0, "an integer >= 0")
        _check("per_replica_batch_size", self.per_replica_batch_size,
               isinstance(self.per_replica_batch_size, int) and self.per_replica_batch_size >= 0, "an integer >= 0")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How a training run is carried out: devices, precision, checkpoints, logging."""

    strategy: str = "auto"  # auto | one_device | mirrored | multi_worker
    mixed_precision: str = "auto"  # auto (training.strategy.mixed_precision) | none | mixed_bfloat16 | mixed_float16
    jit_compile: str = "auto"  # auto (XLA where a GPU is present) | true | false
    steps_per_execution: int = 0  # train_steps per tf.function call; 0: auto (training.trainer)
    max_steps: int = 0  # 0: train for OptimizerConfig.epochs
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    summary_every: int = 100
    sample_every: int = 1000
    num_samples: int = 4
    eval_every: int = 0  # 0: never; synthetic datasets only (evaluation.SyntheticProbe)
    deterministic: bool = False
    seed: int = 0
    max_nonfinite_skips: int = 0  # 0: a NaN/Inf loss stops the run

    STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
    PRECISIONS = ("auto", "none", "mixed_bfloat16", "mixed_float16")
    JIT_COMPILE = ("auto", "true", "false")

    def __post_init__(self):
        _check("jit_compile", self.jit_compile, self.jit_compile in self.JIT_COMPILE, f"one of {self.JIT_COMPILE}")
        _check("steps_per_execution", self.steps_per_execution,
               isinstance(self.steps_per_execution, int) and self.steps_per_execution >= 0, "an integer >= 0")
        _check("strategy", self.strategy, self.strategy in self.STRATEGIES, f"one of {self.STRATEGIES}")
        _check("mixed_precision", self.mixed_precision, self.mixed_precision in self.PRECISIONS,
               f"one of {self.PRECISIONS}")
        _non_negative("max_steps", self.max_steps)
        _positive("checkpoint_every", self.checkpoint_every)
        _positive("keep_checkpoints", self.keep_checkpoints)
        _positive("summary_every", self.summary_every)
        _positive("sample_every", self.sample_every)
        _positive("num_samples", self.num_samples)
        _non_negative("eval_every", self.eval_every)
        _check("max_nonfinite_skips", self.max_nonfinite_skips,
               isinstance(self.max_nonfinite_skips, int) and self.max_nonfinite_skips >= 0, "an integer >= 0")


@dataclasses.dataclass(frozen=True)
class Config:
    """One experiment: what `train(config, workdir)` needs."""

    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    data: DataConfig = DataConfig()
    run: RunConfig = RunConfig()

    def __post_init__(self):
        _check("image_size", self.data.image_size, self.data.image_size == self.model.image_size,
               f"the same for data and model (model.image_size={self.model.image_size})")
