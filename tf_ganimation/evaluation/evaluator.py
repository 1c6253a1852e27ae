"""How good are the edits? Ground-truth metrics on synthetic faces, self-consistency on any data.

On the synthetic dataset (synthetic_dataset.py) the true result of every edit can be rendered: the same
identity with the target AUs. `synthetic_metrics` compares the edit with it (L1 and PSNR on the
[0, 255] scale, SSIM) next to the identity baseline, the score of returning the input unchanged. An
edit that learned nothing scores the baseline; a perfect one scores L1 0. No GANimation evaluation
in the literature has this: real datasets have no paired ground truth.

On any dataset, `consistency_metrics` reports the cycle reconstruction error and the critic's AU
error on edits. The latter is a self-consistency figure, not an independent measure: the generator
was trained to satisfy this very critic.

An `EditFunction` maps (images float32 [N, S, S, 3] in [-1, 1], target AUs float32 [N, 17] in [0, 1])
to {"fake_image" [N, S, S, 3] in [-1, 1], "attention" [N, S, S, 1] in [0, 1], "color" [N, S, S, 3]}
so that any model (Keras, SavedModel, TFLite, an oracle in tests) can be evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from tf_ganimation.core import action_units
from tf_ganimation.core.config import Config
from tf_ganimation.data import inventory, pipeline
from tf_ganimation.model import networks
from tf_ganimation.runs import run_folder
from tf_ganimation.synthetic import renderer, synthetic_dataset
from tf_ganimation.training import trainer

EditFunction = Callable[[np.ndarray, np.ndarray], Mapping[str, np.ndarray]]
SWEEP_INTENSITIES = (0.0, 0.25, 0.5, 0.75, 1.0)
SHEET_MIN_CELL = 96  # px: the evaluation sheet enlarges smaller faces to be read
# An edit "changes AUs" when some AU moves by more than this; smaller edits are near-identity.
CHANGED_AU_THRESHOLD = 0.1
# A pixel is in an edit's "changed region" when the true edit moves one of its channels by more than
# this (on [0, 255]); below it are anti-aliasing flicker and the far tails of shading changes.
CHANGED_PIXEL_THRESHOLD = 8.0


def generator_edit(generator: networks.Generator) -> EditFunction:
    """The EditFunction of a Keras generator: G, then Eq. 1's composition."""

    @tf.function(reduce_retracing=True)
    def edit(images, aus):
        outputs = generator(images, aus)
        return {"fake_image": networks.compose(images, outputs["color"], outputs["attention"]), **outputs}

    return lambda images, aus: {key: value.numpy() for key, value in edit(
        tf.convert_to_tensor(images, tf.float32), tf.convert_to_tensor(aus, tf.float32)).items()}


def rendering_edit(identity: renderer.Identity, image_size: int) -> EditFunction:
    """The oracle EditFunction of one synthetic face: the true rendering with the target AUs.

    It ignores the input image; attention is 0 (all colour) and the colour map is the rendering.
    `evaluate_run` draws the truth sheet with it, the reference for the model's sheet.
    """

    def edit(images, aus):
        truths = np.stack([renderer.render_face(identity, target, image_size) for target in np.asarray(aus)])
        fake = truths.astype(np.float32) / 127.5 - 1.0
        return {"fake_image": fake, "attention": np.zeros(fake.shape[:3] + (1,), np.float32), "color": fake}

    return edit


def to_uint8_scale(images: np.ndarray) -> np.ndarray:
    """[-1, 1] -> float [0, 255] (not rounded), the scale the pixel metrics are reported on."""
    return (np.clip(np.asarray(images, np.float32), -1.0, 1.0) + 1.0) * 127.5


def pixel_metrics(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Mean over images of L1, PSNR and SSIM, on float images [N, S, S, 3] in [0, 255].

    PSNR of an exact match is capped at 100 dB so that means stay finite.
    """
    return {name: float(values.mean()) for name, values in _per_image(predicted, target).items()}


def attention_statistics(attention: np.ndarray) -> dict[str, float]:
    """Mean attention and the saturated fractions (> 0.95: input kept; < 0.05: all colour)."""
    attention = np.asarray(attention, np.float32)
    return {"mean": float(attention.mean()), "fraction_above_0.95": float((attention > 0.95).mean()),
            "fraction_below_0.05": float((attention < 0.05).mean())}


def region_metrics(edited: np.ndarray, sources: np.ndarray, truths: np.ndarray) -> dict:
    """The paired L1 split between the pixels the true edit changes and those it keeps.

    The whole-image L1 mixes two things: does the model make the edits (the changed region, where the
    identity baseline errs) and does it leave the rest alone (the kept region, where the baseline is
    near 0 and any change is damage). whole = fraction * changed + (1 - fraction) * kept.

    Args:
        edited, sources, truths: float [N, S, S, 3] on [0, 255]: the model's edits, their inputs and the
            true renderings with the target AUs.

    Returns:
        {"changed": {"edit_l1", "baseline_l1", "l1_ratio_to_baseline"}, "kept": {"edit_l1",
         "baseline_l1"}, "changed_fraction": the share of pixels in the changed region}; a region
        with no pixel is left out.
    """
    changed = np.abs(truths - sources).max(axis=-1) > CHANGED_PIXEL_THRESHOLD  # [N, S, S]
    edit_error = np.abs(edited - truths).mean(axis=-1)
    baseline_error = np.abs(sources - truths).mean(axis=-1)
    result = {"changed_fraction": float(changed.mean())}
    for name, mask in (("changed", changed), ("kept", ~changed)):
        if mask.any():
            result[name] = {"edit_l1": float(edit_error[mask].mean()), "baseline_l1": float(baseline_error[mask].mean())}
    if "changed" in result:
        result["changed"]["l1_ratio_to_baseline"] = result["changed"]["edit_l1"] / result["changed"]["baseline_l1"]
    return result


@dataclasses.dataclass(frozen=True)
class SyntheticEdits:
    """Edits of synthetic faces with their true results, rendered once (`render_edits`).

    sources: float32 [N * K, S, S, 3] in [-1, 1] (each face repeated K times); targets and source_aus:
    float32 [N * K, 17] in [0, 1]; truths: float32 [N * K, S, S, 3] on [0, 255], the faces rendered
    with the target AUs.
    """

    sources: np.ndarray
    targets: np.ndarray
    source_aus: np.ndarray
    truths: np.ndarray


def render_edits(identities: Mapping[str, renderer.Identity], ids: Sequence[str], source_aus: np.ndarray,
                 image_size: int, num_targets: int = 4, seed: int = 0) -> SyntheticEdits:
    """K = num_targets edits of each face (targets from synthetic_dataset.sample_aus, seeded), with truths.

    Args:
        identities: {image id: Identity}, synthetic_dataset.load_identities of the dataset.
        ids: the test image ids to edit.
        source_aus: float32 [len(ids), 17] in [0, 1], the AUs each source image was rendered with.
        image_size: the model's side; faces are rendered at it.
    """
    rng = np.random.default_rng(seed)
    sources, targets, truths = [], [], []
    for image_id, aus in zip(ids, np.asarray(source_aus, np.float32)):
        identity = identities[image_id]
        source = renderer.render_face(identity, aus, image_size)
        for _ in range(num_targets):
            target = synthetic_dataset.sample_aus(rng)
            sources.append(source)
            targets.append(target)
            truths.append(renderer.render_face(identity, target, image_size))
    return SyntheticEdits(sources=np.stack(sources).astype(np.float32) / 127.5 - 1.0,
                          targets=np.stack(targets).astype(np.float32),
                          source_aus=np.repeat(np.asarray(source_aus, np.float32), num_targets, axis=0),
                          truths=np.stack(truths).astype(np.float32))


def synthetic_metrics(edit: EditFunction, identities: Mapping[str, renderer.Identity], ids: Sequence[str],
                      source_aus: np.ndarray, image_size: int, num_targets: int = 4, seed: int = 0,
                      batch_size: int = 16) -> dict:
    """Paired metrics against the true renderings of edited synthetic faces (arguments: render_edits)."""
    return score_edits(edit, render_edits(identities, ids, source_aus, image_size, num_targets, seed), batch_size)


def score_edits(edit: EditFunction, edits: SyntheticEdits, batch_size: int = 16) -> dict:
    """Scores the model `edit` on rendered edits.

    Returns:
        {"edit": {l1, psnr, ssim}, "identity_baseline": {...}, "l1_ratio_to_baseline": float,
         "changed_only": the same three for the edits whose AUs moved by > CHANGED_AU_THRESHOLD,
         "regions": region_metrics of all edits (is the error in the edits or in what should stay),
         "same_aus": {l1, psnr, ssim} of editing with the source's own AUs against the source,
         "attention": attention_statistics of all edits, "num_edits": int}.
    """
    edited = _batched(edit, edits.sources, edits.targets, batch_size)
    same = _batched(edit, edits.sources, edits.source_aus, batch_size)
    edit_pixels, source_pixels = to_uint8_scale(edited["fake_image"]), to_uint8_scale(edits.sources)
    edit_scores = _per_image(edit_pixels, edits.truths)
    baseline_scores = _per_image(source_pixels, edits.truths)
    changed = np.abs(edits.targets - edits.source_aus).max(axis=1) > CHANGED_AU_THRESHOLD
    mean = lambda scores, mask=slice(None): {name: float(values[mask].mean()) for name, values in scores.items()}
    result = {
        "edit": mean(edit_scores),
        "identity_baseline": mean(baseline_scores),
        "regions": region_metrics(edit_pixels, source_pixels, edits.truths),
        "same_aus": pixel_metrics(to_uint8_scale(same["fake_image"]), source_pixels),
        "attention": attention_statistics(edited["attention"]),
        "num_edits": int(len(edits.targets)),
        "num_changed_edits": int(changed.sum()),
    }
    if changed.any():
        result["changed_only"] = {"edit": mean(edit_scores, changed), "identity_baseline": mean(baseline_scores, changed)}
        result["changed_only"]["l1_ratio_to_baseline"] = _ratio(result["changed_only"])
    result["l1_ratio_to_baseline"] = _ratio(result)
    return result


class SyntheticProbe:
    """Ground-truth scores of a generator while it trains: `train(..., probe=...)` calls it.

    `prepare` () -> SyntheticEdits runs at the first call, not at construction: the probe is made
    before `train` creates its distribution strategy, and MultiWorkerMirroredStrategy must precede
    every TensorFlow op (reading the test faces is one). Each call edits the rendered faces with the
    current generator (about 2 s for 128 edits at 64 px on a CPU) and returns the scalars of `score`.
    """

    def __init__(self, prepare: Callable[[], SyntheticEdits]):
        self._prepare, self._edits = prepare, None
        self._generator, self._edit = None, None

    @property
    def edits(self) -> SyntheticEdits:
        if self._edits is None:
            self._edits = self._prepare()
        return self._edits

    def score(self, edit: EditFunction) -> dict[str, float]:
        """{"l1_ratio_to_baseline", "changed_region_l1_ratio", "kept_region_l1", "same_aus_l1",
        "attention_mean"} of `edit`; see score_edits and region_metrics."""
        metrics = score_edits(edit, self.edits)
        regions = metrics["regions"]
        return {"l1_ratio_to_baseline": metrics["l1_ratio_to_baseline"],
                "changed_region_l1_ratio": regions.get("changed", {}).get("l1_ratio_to_baseline", math.nan),
                "kept_region_l1": regions.get("kept", {}).get("edit_l1", math.nan),
                "same_aus_l1": metrics["same_aus"]["l1"],
                "attention_mean": metrics["attention"]["mean"]}

    def __call__(self, generator: networks.Generator) -> dict[str, float]:
        if generator is not self._generator:  # one traced function per generator
            self._generator, self._edit = generator, generator_edit(generator)
        return self.score(self._edit)


def training_probe(config: Config, max_images: int = 32, num_targets: int = 4) -> SyntheticProbe | None:
    """The SyntheticProbe of a run's data: its first `max_images` test faces; None unless synthetic.

    Only checks that the dataset is synthetic (identities.json); no TensorFlow op runs until the
    probe's first call, which reads the test ids and AUs and renders the faces (no image file is read).
    """
    if not os.path.isfile(os.path.join(config.data.data_dir, synthetic_dataset.IDENTITIES_FILE)):
        return None

    def prepare() -> SyntheticEdits:
        ids, aus = synthetic_dataset.load_split(config.data.data_dir, "test")
        identities = synthetic_dataset.load_identities(config.data.data_dir)
        return render_edits(identities, ids[:max_images], aus[:max_images], config.model.image_size, num_targets)

    return SyntheticProbe(prepare)


def consistency_metrics(edit: EditFunction, real_image: np.ndarray, real_aus: np.ndarray, target_aus: np.ndarray,
                        critic_aus: Callable[[np.ndarray], np.ndarray] | None = None, batch_size: int = 16) -> dict:
    """Cycle reconstruction and (optionally) the critic's AU error on edits, for any dataset.

    Args:
        real_image: float32 [N, S, S, 3] in [-1, 1]; real_aus, target_aus: float32 [N, 17] in [0, 1].
        critic_aus: images [N, S, S, 3] in [-1, 1] -> the critic's AU regression [N, 17].

    Returns:
        {"cycle_l1": mean |G(G(x, target), real) - x| on [0, 255], "attention": ...,
         "critic_aus_mae_on_edits" (self-consistency, not an independent measure),
         "critic_aus_mae_on_real" (the critic's own error on real faces, for scale)}.
    """
    edited = _batched(edit, real_image, target_aus, batch_size)
    reconstructed = _batched(edit, edited["fake_image"], real_aus, batch_size)
    result = {
        "cycle_l1": float(np.abs(to_uint8_scale(reconstructed["fake_image"]) - to_uint8_scale(real_image)).mean()),
        "attention": attention_statistics(edited["attention"]),
        "num_images": int(len(real_image)),
    }
    if critic_aus is not None:
        result["critic_aus_mae_on_edits"] = float(np.abs(critic_aus(edited["fake_image"]) - target_aus).mean())
        result["critic_aus_mae_on_real"] = float(np.abs(critic_aus(np.asarray(real_image)) - real_aus).mean())
        result["critic_aus_note"] = ("self-consistency: the generator was trained to satisfy this critic; "
                                     "not an independent measure of AU accuracy")
    return result


# AUs whose gradient alignment is reported: brows, smile, frown and jaw, the large and distinct changes.
ALIGNMENT_AUS = ("AU01", "AU04", "AU12", "AU15", "AU26")
AUGradient = Callable[[np.ndarray, int], np.ndarray]


def critic_gradient(critic: networks.Critic) -> AUGradient:
    """(images [N, S, S, 3] in [-1, 1], AU index k) -> d critic_aus[:, k] / d images, [N, S, S, 3]."""

    @tf.function(reduce_retracing=True)
    def gradient(images, index):
        with tf.GradientTape() as tape:
            tape.watch(images)
            reading = tf.reduce_sum(tf.gather(critic(images)["aus"], index, axis=1))
        return tape.gradient(reading, images)

    return lambda images, index: gradient(tf.convert_to_tensor(images, tf.float32), tf.constant(index)).numpy()


def au_gradient_alignment(au_gradient: AUGradient, identities: Mapping[str, renderer.Identity], ids: Sequence[str],
                          source_aus: np.ndarray, image_size: int, au_names: Sequence[str] = ALIGNMENT_AUS) -> dict:
    """Does the critic's AU head point the generator at the expression? A diagnostic of the AU signal.

    For each face and AU k (where the face's own intensity is below 0.5): the cosine between the
    gradient of the critic's AU k reading with respect to the face and the true edit direction,
    render(AU k = 1) - render(face). The generator's AU term moves its edits along that gradient. Near
    1: raising the reading means drawing the expression. Near 0: the reading rises fastest along
    directions unrelated to it, which the generator can follow with small patterns (the dots and
    stripes of short runs) instead of the expression.

    Returns:
        {"AU12": mean cosine in [-1, 1], ..., "mean": over the AUs}; an AU no face qualifies for is left out.
    """
    source_aus = np.asarray(source_aus, np.float32)
    renders = [renderer.render_face(identities[i], aus, image_size).astype(np.float32) for i, aus in zip(ids, source_aus)]
    result = {}
    for name in au_names:
        index = action_units.AU_NAMES.index(name)
        sources, directions = [], []
        for image_id, aus, source in zip(ids, source_aus, renders):
            if aus[index] >= 0.5:
                continue
            raised = aus.copy()
            raised[index] = 1.0
            sources.append(source / 127.5 - 1.0)
            directions.append(renderer.render_face(identities[image_id], raised, image_size) - source)
        if not sources:
            continue
        gradients = np.asarray(au_gradient(np.stack(sources), index), np.float64).reshape(len(sources), -1)
        directions = np.stack(directions).astype(np.float64).reshape(len(sources), -1)
        norms = np.linalg.norm(gradients, axis=1) * np.linalg.norm(directions, axis=1)
        result[name] = float(np.mean(np.sum(gradients * directions, axis=1) / np.maximum(norms, 1e-12)))
    if result:
        result["mean"] = float(np.mean(list(result.values())))
    return result


def evaluation_sheet(edit: EditFunction, image: np.ndarray, aus: np.ndarray) -> np.ndarray:
    """The paper's Fig. 4 and 5 for one face: a row per AU, uint8 [17 * C, 8 * C + label, 3].

    Columns: the input; the edit with that AU set to 0, 0.25, 0.5, 0.75 and 1 (the other AUs kept at
    the face's own); then the attention mask (grey, white keeps the input) and the colour map of the
    edit at 1. Cells are C = S x the smallest whole factor that makes them at least SHEET_MIN_CELL
    pixels (nearest neighbour: 32-px faces are shown at 96, 64-px at 128, 128-px as they are).

    Args:
        image: float32 [S, S, 3] in [-1, 1]; aus: float32 [17] in [0, 1], the face's own AUs.
    """
    size = image.shape[0]
    steps = len(SWEEP_INTENSITIES)
    targets = np.repeat(np.asarray(aus, np.float32)[None], action_units.NUM_AUS * steps, axis=0)
    for row in range(action_units.NUM_AUS):
        targets[row * steps:(row + 1) * steps, row] = SWEEP_INTENSITIES
    edited = _batched(edit, np.repeat(image[None], len(targets), axis=0), targets, 32)
    unit = lambda images: np.clip((np.asarray(images) + 1.0) / 2.0, 0.0, 1.0)
    fakes = unit(edited["fake_image"]).reshape(action_units.NUM_AUS, steps, size, size, 3)
    last = slice(steps - 1, None, steps)
    attention = np.repeat(edited["attention"][last], 3, axis=-1)
    color = unit(edited["color"][last])
    rows = [np.concatenate([unit(image), *fakes[row], attention[row], color[row]], axis=1)
            for row in range(action_units.NUM_AUS)]
    grid = np.round(np.concatenate(rows, axis=0) * 255.0).astype(np.uint8)
    scale = math.ceil(SHEET_MIN_CELL / size)
    return _with_row_labels(grid.repeat(scale, axis=0).repeat(scale, axis=1), size * scale)


def _with_row_labels(grid: np.ndarray, row_height: int) -> np.ndarray:
    label_width = 40
    canvas = Image.new("RGB", (grid.shape[1] + label_width, grid.shape[0]), "white")
    canvas.paste(Image.fromarray(grid), (label_width, 0))
    draw = ImageDraw.Draw(canvas)
    for row, name in enumerate(action_units.AU_NAMES):
        draw.text((2, row * row_height + row_height // 2 - 5), name, fill="black")
    return np.asarray(canvas)


def _batched(edit: EditFunction, images: np.ndarray, aus: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    parts = [edit(np.asarray(images[i:i + batch_size], np.float32), np.asarray(aus[i:i + batch_size], np.float32))
             for i in range(0, len(images), batch_size)]
    return {key: np.concatenate([np.asarray(part[key]) for part in parts]) for key in parts[0]}


def _per_image(predicted: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """L1, PSNR (capped at 100 dB) and SSIM of each image, on [0, 255]."""
    predicted = np.asarray(predicted, np.float32)
    target = np.asarray(target, np.float32)
    l1 = np.abs(predicted - target).mean(axis=(1, 2, 3))
    mse = np.square(predicted - target).mean(axis=(1, 2, 3))
    psnr = np.minimum(np.where(mse > 0, 10.0 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), 100.0), 100.0)
    ssim = tf.image.ssim(tf.constant(predicted), tf.constant(target), max_val=255.0).numpy()
    return {"l1": l1, "psnr": psnr, "ssim": ssim}


def _ratio(scores: Mapping) -> float:
    baseline = scores["identity_baseline"]["l1"]
    return float(scores["edit"]["l1"] / baseline) if baseline > 0 else math.nan


def evaluate_run(run_dir: str, out_dir: str | None = None, data_dir: str | None = None, num_targets: int = 4,
                 max_images: int = 64, seed: int = 0, checkpoint: str | None = None) -> dict:
    """Evaluates a trained run on its test split; writes metrics.json and sheet.png into out_dir.

    Synthetic datasets (with identities.json) get the ground-truth metrics and truth_sheet.png, the
    sheet's sweep rendered by `rendering_edit` (attention 0, colour = the truth); every dataset gets the
    consistency metrics. The networks are the run's final weights, or with `checkpoint` ("latest",
    "ckpt-<step>" or a path: trainer.load_checkpoint) a checkpoint's, also while the run still trains.
    out_dir defaults to <run_dir>/evaluation, and to <run_dir>/evaluation/step_<step> for a checkpoint.
    """
    run = pathlib.Path(run_dir)
    if checkpoint is None:
        generator, config = run_folder.load_generator(run)
        critic = run_folder.load_critic(run)[0] if (run / run_folder.CRITIC_WEIGHTS).is_file() else None
        weights, default_out = os.fspath(run / run_folder.GENERATOR_WEIGHTS), run / "evaluation"
    else:
        generator, critic, config, step = trainer.load_checkpoint(run, checkpoint)
        weights, default_out = f"step {step}", run / "evaluation" / f"step_{step:07d}"
    edit = generator_edit(generator)
    data_config = config.data if data_dir is None else dataclasses.replace(config.data, data_dir=data_dir)
    examples = inventory.load_examples(data_config)
    split = examples.test if len(examples.test) else examples.train
    samples = pipeline.fixed_samples(data_config, max_images, split="test" if len(examples.test) else "train",
                                 examples=examples)
    metrics: dict = {"run": os.fspath(run_dir), "weights": weights, "data_dir": data_config.data_dir,
                     "num_test_images": len(split)}
    identities = None
    if os.path.isfile(os.path.join(data_config.data_dir, synthetic_dataset.IDENTITIES_FILE)):
        identities = synthetic_dataset.load_identities(data_config.data_dir)
        metrics["synthetic"] = synthetic_metrics(edit, identities, list(samples["id"]), samples["real_aus"],
                                                 config.model.image_size, num_targets, seed)
        if critic is not None:
            metrics["synthetic"]["critic_au_gradient_alignment"] = au_gradient_alignment(
                critic_gradient(critic), identities, list(samples["id"]), samples["real_aus"], config.model.image_size)
    critic_aus = None
    if critic is not None:
        critic_aus = lambda images: np.concatenate([critic(images[i:i + 16])["aus"].numpy()
                                                    for i in range(0, len(images), 16)])
    metrics["consistency"] = consistency_metrics(edit, samples["real_image"], samples["real_aus"],
                                                 samples["target_aus"], critic_aus)
    out = pathlib.Path(out_dir or default_out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    sheet = evaluation_sheet(edit, samples["real_image"][0], samples["real_aus"][0])
    Image.fromarray(sheet).save(out / "sheet.png")
    if identities is not None:  # the same sweep, rendered: what the edits should look like
        oracle = rendering_edit(identities[samples["id"][0]], config.model.image_size)
        truth = evaluation_sheet(oracle, samples["real_image"][0], samples["real_aus"][0])
        Image.fromarray(truth).save(out / "truth_sheet.png")
    return metrics
