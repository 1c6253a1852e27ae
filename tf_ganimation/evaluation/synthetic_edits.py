"""Ground-truth scores on synthetic faces: every edit has a true result, the same face rendered.

On the synthetic dataset (synthetic_dataset.py) the true result of every edit can be rendered: the same
identity with the target AUs. `synthetic_metrics` compares the edit with it (L1 and PSNR on the
[0, 255] scale, SSIM) next to the identity baseline, the score of returning the input unchanged. An
edit that learned nothing scores the baseline; a perfect one scores L1 0. No GANimation evaluation
in the literature has this: real datasets have no paired ground truth.

`au_gradient_alignment` asks the same faces a question about the critic: does its AU head point the
generator at the expression?
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tf_ganimation.core import action_units, pixels
from tf_ganimation.evaluation import metrics
from tf_ganimation.model import networks
from tf_ganimation.model.edit_model import EditModel
from tf_ganimation.synthetic import renderer, synthetic_dataset
from tf_ganimation.synthetic.identity import Identity

# An edit "changes AUs" when some AU moves by more than this; smaller edits are near-identity.
CHANGED_AU_THRESHOLD = 0.1
# AUs whose gradient alignment is reported: brows, smile, frown and jaw, the large and distinct changes.
ALIGNMENT_AUS = ("AU01", "AU04", "AU12", "AU15", "AU26")
# (images float32 [N, S, S, 3] in [-1, 1], AU index k) -> a gradient [N, S, S, 3] of AU k's reading.
AUGradient = Callable[[np.ndarray, int], np.ndarray]


@dataclasses.dataclass(frozen=True)
class SyntheticEdits:
    """Edits of synthetic faces with their true results, rendered once (`render_edits`).

    sources: float32 [N * K, S, S, 3] in [0, 1] (each face repeated K times), the EditModel's input;
    targets and source_aus: float32 [N * K, 17] in [0, 1]; truths: float32 [N * K, S, S, 3] on
    [0, 255], the faces rendered with the target AUs.
    """

    sources: np.ndarray
    targets: np.ndarray
    source_aus: np.ndarray
    truths: np.ndarray


class TrueRendering(EditModel):
    """The oracle edit of one synthetic face: its true rendering with the target AUs.

    It ignores the input image; attention is 0 (all colour) and the colour map is the rendering.
    `evaluate_run` draws the truth sheet with it, the reference for the model's sheet.

    Args:
        identity: the face, synthetic_dataset.load_identities of its dataset.
        image_size: the side it is rendered at.
    """

    kind = "rendering"

    def __init__(self, identity: Identity, image_size: int):
        self.identity, self.image_size, self.source = identity, int(image_size), "true rendering"

    def _edit(self, images, aus):
        truths = pixels.uint8_to_unit(np.stack([renderer.render_face(self.identity, target, self.image_size)
                                                for target in aus]))
        return {"images": truths, "attention": np.zeros(truths.shape[:3] + (1,), np.float32), "color": truths}


def render_edits(identities: Mapping[str, Identity], ids: Sequence[str], source_aus: np.ndarray,
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
    return SyntheticEdits(sources=pixels.uint8_to_unit(np.stack(sources)),
                          targets=np.stack(targets).astype(np.float32),
                          source_aus=np.repeat(np.asarray(source_aus, np.float32), num_targets, axis=0),
                          truths=np.stack(truths).astype(np.float32))


def synthetic_metrics(edit: EditModel, identities: Mapping[str, Identity], ids: Sequence[str],
                      source_aus: np.ndarray, image_size: int, num_targets: int = 4, seed: int = 0) -> dict:
    """Paired metrics against the true renderings of edited synthetic faces (arguments: render_edits)."""
    return score_edits(edit, render_edits(identities, ids, source_aus, image_size, num_targets, seed))


def score_edits(edit: EditModel, edits: SyntheticEdits) -> dict:
    """Scores the model `edit` on rendered edits.

    Returns:
        {"edit": {l1, psnr, ssim}, "identity_baseline": {...}, "l1_ratio_to_baseline": float,
         "changed_only": the same three for the edits whose AUs moved by > CHANGED_AU_THRESHOLD,
         "regions": region_metrics of all edits (is the error in the edits or in what should stay),
         "same_aus": {l1, psnr, ssim} of editing with the source's own AUs against the source,
         "attention": attention_statistics of all edits, "num_edits": int}.
    """
    edited = edit(edits.sources, edits.targets)
    same = edit(edits.sources, edits.source_aus)
    edit_pixels, source_pixels = metrics.metric_pixels(edited["images"]), metrics.metric_pixels(edits.sources)
    edit_scores = metrics.per_image_metrics(edit_pixels, edits.truths)
    baseline_scores = metrics.per_image_metrics(source_pixels, edits.truths)
    changed = np.abs(edits.targets - edits.source_aus).max(axis=1) > CHANGED_AU_THRESHOLD
    mean = lambda scores, mask=slice(None): {name: float(values[mask].mean()) for name, values in scores.items()}
    result = {
        "edit": mean(edit_scores),
        "identity_baseline": mean(baseline_scores),
        "regions": metrics.region_metrics(edit_pixels, source_pixels, edits.truths),
        "same_aus": metrics.pixel_metrics(metrics.metric_pixels(same["images"]), source_pixels),
        "attention": metrics.attention_statistics(edited["attention"]),
        "num_edits": int(len(edits.targets)),
        "num_changed_edits": int(changed.sum()),
    }
    if changed.any():
        result["changed_only"] = {"edit": mean(edit_scores, changed),
                                  "identity_baseline": mean(baseline_scores, changed)}
        result["changed_only"]["l1_ratio_to_baseline"] = _l1_ratio(result["changed_only"])
    result["l1_ratio_to_baseline"] = _l1_ratio(result)
    return result


def _l1_ratio(scores: Mapping) -> float:
    baseline = scores["identity_baseline"]["l1"]
    return float(scores["edit"]["l1"] / baseline) if baseline > 0 else math.nan


def critic_gradient(critic: networks.Critic) -> AUGradient:
    """(images [N, S, S, 3] in [-1, 1], AU index k) -> d critic_aus[:, k] / d images, [N, S, S, 3]."""

    @tf.function(reduce_retracing=True)
    def gradient(images, index):
        with tf.GradientTape() as tape:
            tape.watch(images)
            reading = tf.reduce_sum(tf.gather(critic(images)["aus"], index, axis=1))
        return tape.gradient(reading, images)

    return lambda images, index: gradient(tf.convert_to_tensor(images, tf.float32), tf.constant(index)).numpy()


def au_gradient_alignment(au_gradient: AUGradient, identities: Mapping[str, Identity], ids: Sequence[str],
                          source_aus: np.ndarray, image_size: int, au_names: Sequence[str] = ALIGNMENT_AUS) -> dict:
    """Does the critic's AU head point the generator at the expression? A diagnostic of the AU signal.

    For each face and AU k (where the face's own intensity is below 0.5): the cosine between the
    gradient of the critic's AU k reading with respect to the face and the true edit direction,
    render(AU k = 1) - render(face). The generator's AU term moves its edits along that gradient. Near
    1: raising the reading means drawing the expression. Near 0: the reading rises fastest along
    directions unrelated to it, which the generator can follow with small patterns (the dots and
    stripes of short runs) instead of the expression.

    Args:
        au_gradient: e.g. critic_gradient(critic); it reads faces in the critic's range, [-1, 1].
        identities, ids, source_aus, image_size: as for render_edits.

    Returns:
        {"AU12": mean cosine in [-1, 1], ..., "mean": over the AUs}; an AU no face qualifies for is left out.
    """
    source_aus = np.asarray(source_aus, np.float32)
    renders = [renderer.render_face(identities[i], aus, image_size).astype(np.float32)
               for i, aus in zip(ids, source_aus)]
    result = {}
    for name in au_names:
        index = action_units.AU_NAMES.index(name)
        sources, directions = [], []
        for image_id, aus, source in zip(ids, source_aus, renders):
            if aus[index] >= 0.5:
                continue
            raised = aus.copy()
            raised[index] = 1.0
            sources.append(pixels.uint8_to_model(source))
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
