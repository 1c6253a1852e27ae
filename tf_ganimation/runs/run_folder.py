"""The layout of a training run's folder, and loading trained networks back from it.

    <workdir>/config.json              the resolved Config (what every later tool rebuilds the networks from)
    <workdir>/flags.txt                the resolved flags, a flagfile that reproduces the run
    <workdir>/checkpoints/             tf.train checkpoints: both networks, both optimizers, the step
                                       (ckpt-<step>; training.load_checkpoint reads them, also while training runs)
    <workdir>/generator.weights.h5     the generator's final weights (written when training ends)
    <workdir>/critic.weights.h5        the critic's final weights (its AU head estimates a face's AUs)
    <workdir>/samples/step_<N>.png     sample grids: real | attention | color | fake | reconstruction
    <workdir>/logs/                    TensorBoard event files
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from tf_ganimation.core import config as config_lib
from tf_ganimation.model import networks

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
CHECKPOINT_DIR = "checkpoints"
GENERATOR_WEIGHTS = "generator.weights.h5"
CRITIC_WEIGHTS = "critic.weights.h5"
SAMPLES_DIR = "samples"
LOGS_DIR = "logs"


def atomic_write_text(path: os.PathLike, text: str) -> None:
    """Writes a text file so that readers see the old or the new content, never a part of it."""
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def save_config(config: config_lib.Config, workdir: os.PathLike) -> pathlib.Path:
    """Writes `config` as JSON to `<workdir>/config.json`."""
    path = pathlib.Path(workdir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True) + "\n")
    return path


def load_config(workdir: os.PathLike) -> config_lib.Config:
    """Reads `<workdir>/config.json` back into a validated Config.

    Raises:
        FileNotFoundError: the workdir or its config.json is missing (not a training run's folder).
    """
    path = pathlib.Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {workdir} is not a training run's folder "
                                "(scripts/train.py writes config.json there when it starts)")
    fields = json.loads(path.read_text())
    sections = {field.name: type(field.default) for field in dataclasses.fields(config_lib.Config)}
    return config_lib.Config(**{name: cls(**fields.get(name, {})) for name, cls in sections.items()})


def _load_network(workdir: os.PathLike, weights_file: str, build):
    workdir = pathlib.Path(workdir)
    config = load_config(workdir)
    path = workdir / weights_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run in {workdir} has not finished training "
                                "(train.py writes it at the end; run scripts/train.py again to finish)")
    network = build(config.model)
    network.load_weights(path)
    return network, config


def load_generator(workdir: os.PathLike) -> tuple[networks.Generator, config_lib.Config]:
    """The trained generator of a run, built at the run's sizes, and the run's Config."""
    return _load_network(workdir, GENERATOR_WEIGHTS, networks.build_generator)


def load_critic(workdir: os.PathLike) -> tuple[networks.Critic, config_lib.Config]:
    """The trained critic of a run (its `aus` head estimates the AUs of a face) and the run's Config."""
    return _load_network(workdir, CRITIC_WEIGHTS, networks.build_critic)
