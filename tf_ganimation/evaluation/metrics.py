"""Scores of edited images: L1, PSNR and SSIM on [0, 255], attention statistics, the changed/kept split
of the paired L1, and the self-consistency figures any dataset allows.

Edits come from an `EditModel` (tf_ganimation.model.edit_model), in [0, 1]; the pixel metrics are
reported on the float [0, 255] scale (`metric_pixels`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tf_ganimation.core import pixels
from tf_ganimation.model.edit_model import EditModel

# A pixel is in an edit's "changed region" when the true edit moves one of its channels by more than
# this (on [0, 255]); below it are anti-aliasing flicker and the far tails of shading changes.
CHANGED_PIXEL_THRESHOLD = 8.0
PSNR_CAP = 100.0  # dB, the PSNR of an exact match, so that means stay finite


def metric_pixels(images: np.ndarray) -> np.ndarray:
    """[0, 1] -> float32 [0, 255], clipped, not rounded: the scale the pixel metrics are reported on.

    It goes through the model range so that the values are bit for bit `pixels.model_to_255` of the
    generator's own [-1, 1] output: a score does not depend on the range an edit was returned in.
    """
    return pixels.model_to_255(pixels.unit_to_model(np.asarray(images, np.float32)))


def per_image_metrics(predicted: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """L1, PSNR (capped at PSNR_CAP) and SSIM of each image.

    Args:
        predicted, target: float [N, S, S, 3] on [0, 255].

    Returns:
        {"l1", "psnr", "ssim"}: float32 [N] each.
    """
    predicted = np.asarray(predicted, np.float32)
    target = np.asarray(target, np.float32)
    l1 = np.abs(predicted - target).mean(axis=(1, 2, 3))
    mse = np.square(predicted - target).mean(axis=(1, 2, 3))
    psnr = np.minimum(np.where(mse > 0, 10.0 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), PSNR_CAP), PSNR_CAP)
    ssim = tf.image.ssim(tf.constant(predicted), tf.constant(target), max_val=255.0).numpy()
    return {"l1": l1, "psnr": psnr, "ssim": ssim}


def pixel_metrics(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Mean over images of L1, PSNR and SSIM, on float images [N, S, S, 3] in [0, 255].

    PSNR of an exact match is capped at 100 dB so that means stay finite.
    """
    return {name: float(values.mean()) for name, values in per_image_metrics(predicted, target).items()}


def attention_statistics(attention: np.ndarray) -> dict[str, float]:
    """Mean attention and the saturated fractions (> 0.95: input kept; < 0.05: all colour).

    Args:
        attention: float [N, S, S, 1] in [0, 1].
    """
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
            result[name] = {"edit_l1": float(edit_error[mask].mean()),
                            "baseline_l1": float(baseline_error[mask].mean())}
    if "changed" in result:
        result["changed"]["l1_ratio_to_baseline"] = result["changed"]["edit_l1"] / result["changed"]["baseline_l1"]
    return result


def consistency_metrics(edit: EditModel, real_image: np.ndarray, real_aus: np.ndarray, target_aus: np.ndarray,
                        critic_aus: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """Cycle reconstruction and (optionally) the critic's AU error on edits, for any dataset.

    The critic's error on edits is a self-consistency figure, not an independent measure: the
    generator was trained to satisfy this very critic.

    Args:
        edit: the model to score.
        real_image: float32 [N, S, S, 3] in [0, 1]; real_aus, target_aus: float32 [N, 17] in [0, 1].
        critic_aus: images float32 [N, S, S, 3] in [0, 1] -> the critic's AU regression [N, 17].

    Returns:
        {"cycle_l1": mean |G(G(x, target), real) - x| on [0, 255], "attention": ...,
         "critic_aus_mae_on_edits" (self-consistency, not an independent measure),
         "critic_aus_mae_on_real" (the critic's own error on real faces, for scale)}.
    """
    edited = edit(real_image, target_aus)
    reconstructed = edit(edited["images"], real_aus)
    result = {
        "cycle_l1": float(np.abs(metric_pixels(reconstructed["images"]) - metric_pixels(real_image)).mean()),
        "attention": attention_statistics(edited["attention"]),
        "num_images": int(len(real_image)),
    }
    if critic_aus is not None:
        result["critic_aus_mae_on_edits"] = float(np.abs(critic_aus(edited["images"]) - target_aus).mean())
        result["critic_aus_mae_on_real"] = float(np.abs(critic_aus(np.asarray(real_image)) - real_aus).mean())
        result["critic_aus_note"] = ("self-consistency: the generator was trained to satisfy this critic; "
                                     "not an independent measure of AU accuracy")
    return result
