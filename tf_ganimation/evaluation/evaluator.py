"""Evaluates a trained run on its test split: metrics.json, sheet.png and, on synthetic data, truth_sheet.png;
and crops the two sheets into the README's figure (write_sheet_excerpt).

Synthetic datasets (with identities.json) get the ground-truth metrics of synthetic_edits; every
dataset gets the self-consistency metrics of metrics.consistency_metrics. The run's generator is
evaluated as a `KerasEditModel`, the one edit abstraction every backend shares.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np
from PIL import Image

from tf_ganimation.core import atomic, pixels
from tf_ganimation.data import inventory, pipeline
from tf_ganimation.evaluation import metrics as metrics_lib
from tf_ganimation.evaluation import synthetic_edits
from tf_ganimation.evaluation.sheet import evaluation_sheet, sheet_excerpt
from tf_ganimation.model.edit_model import KerasEditModel
from tf_ganimation.runs import loading, run_folder
from tf_ganimation.synthetic import synthetic_dataset

CRITIC_BATCH_SIZE = 16


def evaluate_run(run_dir: str, out_dir: str | None = None, data_dir: str | None = None, num_targets: int = 4,
                 max_images: int = 64, seed: int = 0, checkpoint: str | None = None) -> dict:
    """Evaluates a trained run on its test split; writes metrics.json and sheet.png into out_dir.

    Synthetic datasets (with identities.json) get the ground-truth metrics and truth_sheet.png, the
    sheet's sweep rendered by `synthetic_edits.TrueRendering` (attention 0, colour = the truth); every
    dataset gets the consistency metrics. The networks are the run's final weights, or with
    `checkpoint` ("latest", "ckpt-<step>" or a path: runs.loading.load_checkpoint) a checkpoint's, also
    while the run still trains. out_dir defaults to <run_dir>/evaluation, and to
    <run_dir>/evaluation/step_<step> for a checkpoint.
    """
    run = pathlib.Path(run_dir)
    if checkpoint is None:
        generator, config = loading.load_generator(run)
        critic = loading.load_critic(run)[0] if (run / run_folder.CRITIC_WEIGHTS).is_file() else None
        weights, default_out = os.fspath(run / run_folder.GENERATOR_WEIGHTS), run / "evaluation"
    else:
        generator, critic, config, step = loading.load_checkpoint(run, checkpoint)
        weights, default_out = f"step {step}", run / "evaluation" / f"step_{step:07d}"
    image_size = config.model.image_size
    edit = KerasEditModel(generator, image_size, source=weights)
    data_config = config.data if data_dir is None else dataclasses.replace(config.data, data_dir=data_dir)
    examples = inventory.load_examples(data_config)
    split = examples.test if len(examples.test) else examples.train
    samples = pipeline.fixed_samples(data_config, max_images, split="test" if len(examples.test) else "train",
                                     examples=examples)
    images = pixels.model_to_unit(samples["real_image"])
    metrics: dict = {"run": os.fspath(run_dir), "weights": weights, "data_dir": data_config.data_dir,
                     "num_test_images": len(split)}
    identities = None
    if os.path.isfile(os.path.join(data_config.data_dir, synthetic_dataset.IDENTITIES_FILE)):
        identities = synthetic_dataset.load_identities(data_config.data_dir)
        ids = list(samples["id"])
        metrics["synthetic"] = synthetic_edits.synthetic_metrics(edit, identities, ids, samples["real_aus"],
                                                                 image_size, num_targets, seed)
        if critic is not None:
            metrics["synthetic"]["critic_au_gradient_alignment"] = synthetic_edits.au_gradient_alignment(
                synthetic_edits.critic_gradient(critic), identities, ids, samples["real_aus"], image_size)
    critic_aus = None
    if critic is not None:  # the raw regression, not clipped to [0, 1] as EditModel.estimate_aus is
        critic_aus = lambda faces: np.concatenate([
            critic(pixels.unit_to_model(faces[i:i + CRITIC_BATCH_SIZE]))["aus"].numpy()
            for i in range(0, len(faces), CRITIC_BATCH_SIZE)])
    metrics["consistency"] = metrics_lib.consistency_metrics(edit, images, samples["real_aus"],
                                                             samples["target_aus"], critic_aus)
    out = pathlib.Path(out_dir or default_out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "metrics.json", metrics, indent=2)
    _write_png(out / "sheet.png", evaluation_sheet(edit, images[0], samples["real_aus"][0]))
    if identities is not None:  # the same sweep, rendered: what the edits should look like
        truth = synthetic_edits.TrueRendering(identities[samples["id"][0]], image_size)
        _write_png(out / "truth_sheet.png", evaluation_sheet(truth, images[0], samples["real_aus"][0]))
    return metrics


def write_sheet_excerpt(evaluation_dir: str, path: str) -> np.ndarray:
    """Writes `sheet.sheet_excerpt` of an evaluation's sheet.png and truth_sheet.png to `path` (a PNG).

    Args:
        evaluation_dir: the folder `evaluate_run` wrote on synthetic data (both sheets are needed).
        path: the PNG to write (smallest lossless encoding: the excerpt is meant for documents).

    Returns:
        The excerpt, uint8 [EXCERPT_HEADER + 4 * C, LABEL_WIDTH + 8 * C, 3].
    """
    folder = pathlib.Path(evaluation_dir)
    sheets = []
    for name in ("sheet.png", "truth_sheet.png"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found: the excerpt is cut from the sheet.png and "
                                    "truth_sheet.png an evaluation writes (the truth sheet on synthetic data only): "
                                    "evaluate the run first")
        with Image.open(folder / name) as image:
            sheets.append(np.asarray(image.convert("RGB")))
    try:
        excerpt = sheet_excerpt(*sheets)
    except ValueError as error:
        raise ValueError(f"{folder}: {error}") from None
    _write_png(pathlib.Path(path), excerpt, optimize=True)
    return excerpt


def _write_png(path: pathlib.Path, image: np.ndarray, optimize: bool = False) -> None:
    atomic.write_with(path, lambda temporary: Image.fromarray(image).save(temporary, format="PNG", optimize=optimize))
