"""Loading a run's trained networks back: its final weights, or any of its training checkpoints.

Every stage that reads a run (evaluation, export, editing) goes through these three functions; each
rebuilds the networks at the sizes the run's config.json records (run_folder.load_config).
"""

from __future__ import annotations

import os
import pathlib

import tensorflow as tf

from tf_ganimation.core.config import Config
from tf_ganimation.model import networks
from tf_ganimation.runs import run_folder


def _load_network(workdir: os.PathLike, weights_file: str, build):
    workdir = pathlib.Path(workdir)
    config = run_folder.load_config(workdir)
    path = workdir / weights_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run in {workdir} has not finished training "
                                "(train.py writes it at the end; run scripts/train.py again to finish)")
    network = build(config.model)
    network.load_weights(path)
    return network, config


def load_generator(workdir: os.PathLike) -> tuple[networks.Generator, Config]:
    """The trained generator of a run, built at the run's sizes, and the run's Config.

    Raises:
        FileNotFoundError: no config.json, or no final weights yet (the message says which).
    """
    return _load_network(workdir, run_folder.GENERATOR_WEIGHTS, networks.build_generator)


def load_critic(workdir: os.PathLike) -> tuple[networks.Critic, Config]:
    """The trained critic of a run (its `aus` head estimates the AUs of a face) and the run's Config.

    Raises:
        FileNotFoundError: no config.json, or no final weights yet (the message says which).
    """
    return _load_network(workdir, run_folder.CRITIC_WEIGHTS, networks.build_critic)


def load_checkpoint(workdir: os.PathLike, checkpoint: str = "latest"
                    ) -> tuple[networks.Generator, networks.Critic, Config, int]:
    """Both networks of a run as a training checkpoint holds them: (generator, critic, config, step).

    Reads a run that is still training (or was stopped) as well as a finished one (evaluate.py
    --checkpoint): the two networks and the step, not the optimizers (ganimation.make_checkpoint
    addresses every weight through its network).

    Args:
        checkpoint: "latest" (the newest one the run records), a checkpoint name in
            <workdir>/checkpoints ("ckpt-429"), or a checkpoint path prefix.

    Raises:
        FileNotFoundError: no such checkpoint (the message lists the ones the run has).
        ValueError: the checkpoint holds other networks than the run's config.json describes.
    """
    workdir = pathlib.Path(workdir)
    config = run_folder.load_config(workdir)
    directory = workdir / run_folder.CHECKPOINT_DIR
    generator, critic = networks.build_generator(config.model), networks.build_critic(config.model)
    train_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_steps")
    if checkpoint == "latest":
        path = tf.train.latest_checkpoint(os.fspath(directory))
    else:
        path = checkpoint if os.sep in checkpoint else os.fspath(directory / checkpoint)
    if not path or not os.path.isfile(f"{path}.index"):
        found = sorted(index.name[:-len(".index")] for index in directory.glob("*.index"))
        raise FileNotFoundError(f"checkpoint {checkpoint!r} not found in {directory}: the run has "
                                f"{', '.join(found) or 'no checkpoints yet'}")
    reader = tf.train.Checkpoint(generator=generator, critic=critic, train_steps=train_steps)
    try:
        reader.read(path).expect_partial().assert_existing_objects_matched()
    except (ValueError, AssertionError) as error:
        raise ValueError(f"{path} does not hold the networks of {workdir / run_folder.CONFIG_FILE} "
                         f"(a run of an earlier layout converts with scripts/upgrade_run.py): {error}") from None
    return generator, critic, config, int(train_steps.numpy())
