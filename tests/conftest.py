"""Shared fixtures: tiny networks (32 px, 8 filters) so every test runs in seconds on 2 cores."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from tf_ganimation.config import ModelConfig

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
PHOTOS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "photos"

TINY_MODEL = ModelConfig(image_size=32, generator_filters=8, generator_residual_blocks=1,
                         critic_filters=8, critic_layers=3)


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    return TINY_MODEL


@pytest.fixture
def photos_dir() -> pathlib.Path:
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared test photos not found at {PHOTOS_DIR}")
    return PHOTOS_DIR


def random_batch(batch_size: int, n_critic: int, image_size: int, seed: int = 0) -> dict:
    """A train_step element: images [B, n_critic, S, S, 3] in [-1, 1], AUs [B, n_critic, 17] in [0, 1]."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, n_critic)
    return {
        "real_image": rng.uniform(-1, 1, shape + (image_size, image_size, 3)).astype(np.float32),
        "real_aus": rng.uniform(0, 1, shape + (17,)).astype(np.float32),
        "target_aus": rng.uniform(0, 1, shape + (17,)).astype(np.float32),
    }


def tiny_generator(seed: int = 0):
    """A seeded, built generator of TINY_MODEL's sizes (32 px, 8 filters, 1 residual block)."""
    import keras

    from tf_ganimation import networks

    keras.utils.set_random_seed(seed)
    return networks.build_generator(TINY_MODEL)
