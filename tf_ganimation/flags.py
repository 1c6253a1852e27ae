"""Command-line flags for training: the only module that reads absl FLAGS.

Every field of `config.Config` is a flag of the same name with the paper's default, so an error from
the config ("batch_size=0 is invalid: expected a number > 0") names the flag to fix. Flagfiles in
configs/ set them; `--flagfile` nests, so shared defaults live in one file.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from absl import flags

from tf_ganimation.core import atomic
from tf_ganimation.core import config as config_lib
from tf_ganimation.runs import run_folder

FLAGS = flags.FLAGS

_SECTIONS = {"model": config_lib.ModelConfig, "loss": config_lib.LossConfig, "optimizer": config_lib.OptimizerConfig,
             "data": config_lib.DataConfig, "run": config_lib.RunConfig}

_HELP = {
    "image_size": "Side of the square face crops, in pixels (paper: 128).",
    "num_aus": "Length of the AU vector (17 OpenFace intensities).",
    "generator_filters": "Channels of the generator's first convolution (paper: 64).",
    "generator_residual_blocks": "Residual blocks in the generator's bottleneck (paper: 6).",
    "critic_filters": "Channels of the critic's first convolution (paper: 64).",
    "critic_layers": "Stride-2 convolutions in the critic (paper: 6); image_size must be a multiple of 2**layers.",
    "lambda_gp": "Weight of the WGAN-GP gradient penalty (paper: 10).",
    "lambda_aus": "Weight of the AU regression losses (authors' 4000 / batch 25 = 160).",
    "lambda_cyc": "Weight of the cycle (identity) loss (paper: 10).",
    "lambda_attention": "Weight of the attention mean (saturation) term (paper: 0.1).",
    "lambda_tv": "Weight of the attention total variation (authors' 1e-5 x batch 25 = 2.5e-4).",
    "generator_learning_rate": "Adam learning rate of the generator (paper: 1e-4).",
    "critic_learning_rate": "Adam learning rate of the critic (paper: 1e-4).",
    "beta_1": "Adam beta_1 (paper: 0.5).",
    "beta_2": "Adam beta_2 (paper: 0.999).",
    "epochs": "Passes over the training images (paper: 30).",
    "decay_epochs": "Final epochs over which the learning rates decay linearly to 0 (paper: 10).",
    "data_dir": "Folder of AU-labelled faces (see README: Data layouts).",
    "data_format": "auto, ganimation (imgs/ + aus_openface.pkl), openface (imgs/ + openface/*.csv) or tfrecord.",
    "batch_size": "Global batch of one critic update (paper: 25); each step reads n_critic of them.",
    "n_critic": "Critic updates per generator update (paper: 5).",
    "horizontal_flip": "Randomly flip training faces left-right.",
    "target_aus_noise": "Uniform noise added to the borrowed target AUs (authors: 0.1).",
    "shuffle_buffer": "TFRecords: consecutive records permuted together each epoch (image folders shuffle whole "
                      "epochs).",
    "seed": "Seed of the data order, the initial weights and the gradient penalty's draws.",
    "synthetic_images": "When > 0 and --data_dir holds no dataset, render this many synthetic faces there first.",
    "strategy": "auto (all GPUs when several, else one device), one_device, mirrored or multi_worker (one "
                "process per host, the cluster in TF_CONFIG; see README).",
    "mixed_precision": "auto, none (float32), mixed_bfloat16 or mixed_float16 (GPUs); losses stay float32. auto: "
                       "mixed_bfloat16 on GPUs of compute capability 8.0+ and on CPUs with AVX512_BF16 or AMX, "
                       "else none; the run logs which and why.",
    "jit_compile": "auto, true or false: compile each replica's train_steps with XLA. auto: on where TensorFlow sees "
                   "a GPU (where XLA is fastest), off on CPU (where XLA is several times slower).",
    "steps_per_execution": "train_steps per compiled call (0: auto, 8 on a GPU, 1 on CPU). Logs, the progress bar, "
                           "the NaN guard and the stop flag are read once per call; a checkpoint, sample, summary "
                           "or evaluation due inside a call happens at the call's last step, and the run ends "
                           "exactly at its final step.",
    "per_replica_batch_size": "When > 0, the global --batch_size becomes this times the number of replicas "
                              "(GPUs over all workers); see README: Batch size on several GPUs.",
    "cache_images": "Decode the training images once, when training starts, and keep them in host memory as "
                    "uint8 (image folders and TFRecords): later epochs read and decode nothing. Needs "
                    "image_size**2 x 3 bytes per image (200k faces at 128 px: 9.8 GB), twice that while built.",
    "max_steps": "Stop after this many steps (0: train for --epochs).",
    "checkpoint_every": "Save a checkpoint every N steps (and at every epoch end).",
    "keep_checkpoints": "Checkpoints kept.",
    "summary_every": "Write TensorBoard scalars every N steps.",
    "sample_every": "Write the sample grid (TensorBoard and PNG) every N steps.",
    "num_samples": "Faces in the sample grid.",
    "eval_every": "On a synthetic dataset, score the generator against the true renderings of 128 held-out "
                  "edits every N steps and at the end (TensorBoard evaluation/*, a log line); 0: never.",
    "deterministic": "TensorFlow op determinism: the same weights from the same seed, also across a kill and "
                     "resume (slower).",
    "max_nonfinite_skips": "Steps with a NaN/Inf loss or gradient to skip (their updates are not applied) before "
                           "stopping; 0: stop at the first, keeping the last checkpoint.",
}

flags.DEFINE_string("workdir", None, "Run folder: checkpoints, logs, samples, config.json. Resumed when it exists.")
flags.DEFINE_bool("dry_run", False, "Print the resolved configuration and exit.")


def _define(field: dataclasses.Field) -> None:
    name, default, help_text = field.name, field.default, _HELP.get(field.name, field.name)
    if name in FLAGS:  # image_size and seed are shared by two sections
        return
    if isinstance(default, bool):
        flags.DEFINE_bool(name, default, help_text)
    elif isinstance(default, int):
        flags.DEFINE_integer(name, default, help_text)
    elif isinstance(default, float):
        flags.DEFINE_float(name, default, help_text)
    else:
        flags.DEFINE_string(name, default, help_text)


for _section in _SECTIONS.values():
    for _field in dataclasses.fields(_section):
        _define(_field)


def build_config() -> config_lib.Config:
    """The frozen Config from the parsed flags.

    Raises:
        ValueError: an invalid value; the message names the flag, the value and the allowed range.
    """
    sections = {name: cls(**{field.name: FLAGS[field.name].value for field in dataclasses.fields(cls)})
                for name, cls in _SECTIONS.items()}
    return config_lib.Config(**sections)


def require_workdir() -> pathlib.Path:
    if not FLAGS.workdir:
        raise ValueError("--workdir is required: the folder where the run's checkpoints, logs and samples go "
                         "(an existing run there is resumed)")
    return pathlib.Path(FLAGS.workdir)


def resolved_flags() -> str:
    """Every flag of this module with its value, as a flagfile that reproduces the run."""
    names = sorted({"workdir"} | {field.name for cls in _SECTIONS.values() for field in dataclasses.fields(cls)})
    return "".join(f"{FLAGS[name].serialize()}\n" for name in names if FLAGS[name].value is not None)


def write_resolved_flags(workdir: os.PathLike) -> pathlib.Path:
    """Writes the resolved flags to `<workdir>/flags.txt`."""
    return atomic.write_text(pathlib.Path(workdir) / run_folder.FLAGS_FILE, resolved_flags())
