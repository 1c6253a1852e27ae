"""The layout of a training run's folder, and its config.json (loading.py loads its networks back).

    <workdir>/config.json              the resolved Config (what every later tool rebuilds the networks from)
    <workdir>/flags.txt                the resolved flags, a flagfile that reproduces the run
    <workdir>/checkpoints/             tf.train checkpoints: both networks, both optimizers, the step
                                       (ckpt-<step>; loading.load_checkpoint reads them, also while training runs)
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

from tf_ganimation.core import atomic
from tf_ganimation.core import config as config_lib

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
CHECKPOINT_DIR = "checkpoints"
GENERATOR_WEIGHTS = "generator.weights.h5"
CRITIC_WEIGHTS = "critic.weights.h5"
SAMPLES_DIR = "samples"
LOGS_DIR = "logs"


def save_config(config: config_lib.Config, workdir: os.PathLike) -> pathlib.Path:
    """Writes `config` as JSON to `<workdir>/config.json`."""
    return atomic.write_json(pathlib.Path(workdir) / CONFIG_FILE, dataclasses.asdict(config), indent=2,
                             sort_keys=True)


def load_config(workdir: os.PathLike) -> config_lib.Config:
    """Reads `<workdir>/config.json` back into a validated Config.

    A field the file lacks (a run written before the field existed) takes its default.

    Raises:
        FileNotFoundError: the workdir or its config.json is missing (not a training run's folder).
        ValueError: a field holds a value this version does not accept (the message names it).
    """
    path = pathlib.Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {workdir} is not a training run's folder "
                                "(scripts/train.py writes config.json there when it starts)")
    fields = json.loads(path.read_text())
    sections = {field.name: type(field.default) for field in dataclasses.fields(config_lib.Config)}
    try:
        return config_lib.Config(**{name: cls(**fields.get(name, {})) for name, cls in sections.items()})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error} (a run written before 0.3 converts with "
                         f"`python scripts/upgrade_run.py {workdir}`)") from None
