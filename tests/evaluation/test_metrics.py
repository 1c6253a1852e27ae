import numpy as np
import pytest

from tf_ganimation.core import pixels
from tf_ganimation.evaluation import metrics
from tf_ganimation.model.edit_model import EditModel


class IdentityEdit(EditModel):
    """Returns the input unchanged, attention 1 everywhere: the identity baseline as a model."""

    kind, source = "identity", "identity"

    def __init__(self, image_size: int):
        self.image_size = image_size

    def _edit(self, images, aus):
        return {"images": images, "attention": np.ones(images.shape[:3] + (1,), np.float32), "color": images}


def test_metric_pixels_are_the_model_range_scale_of_the_same_images():
    rng = np.random.default_rng(4)
    model_range = rng.uniform(-1.2, 1.2, (2, 8, 8, 3)).astype(np.float32)
    scaled = metrics.metric_pixels(pixels.model_to_unit(model_range))
    assert scaled.dtype == np.float32 and scaled.min() == 0.0 and scaled.max() == 255.0  # clipped
    np.testing.assert_array_equal(scaled, pixels.model_to_255(model_range))
    # Decoded pixels stay the values the model-range decoding gives, bit for bit.
    values = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(metrics.metric_pixels(pixels.uint8_to_unit(values)),
                                  pixels.model_to_255(pixels.uint8_to_model(values)))


def test_pixel_metrics_by_hand():
    target = np.zeros((2, 16, 16, 3), np.float32)
    predicted = target.copy()
    predicted[1] += 10.0  # image 1 off by 10 everywhere: L1 10, PSNR 10 log10(255^2 / 100) = 28.13 dB
    scores = metrics.pixel_metrics(predicted, target)
    assert scores["l1"] == pytest.approx(5.0)
    assert scores["psnr"] == pytest.approx((100.0 + 10 * np.log10(255.0**2 / 100.0)) / 2, rel=1e-5)


def test_region_metrics_by_hand():
    sources = np.zeros((1, 4, 4, 3), np.float32)
    truths = sources.copy()
    truths[0, 0, :2] = 100.0  # the true edit changes 2 of 16 pixels by 100
    edited = sources.copy()
    edited[0, 0, :2] = 60.0  # the model gets 60% of the way there ...
    edited[0, 3, 3] = 12.0  # ... and damages one kept pixel by 12
    regions = metrics.region_metrics(edited, sources, truths)
    assert regions["changed_fraction"] == 2 / 16
    assert regions["changed"] == {"edit_l1": 40.0, "baseline_l1": 100.0, "l1_ratio_to_baseline": 0.4}
    assert regions["kept"] == {"edit_l1": pytest.approx(12.0 / 14), "baseline_l1": 0.0}
    # The whole-image L1 is their weighted sum.
    whole = np.abs(edited - truths).mean()
    assert whole == pytest.approx(2 / 16 * 40.0 + 14 / 16 * 12.0 / 14)
    # Changes at or below the threshold (anti-aliasing flicker) are not the edit's region.
    truths[0, 1, 1] = metrics.CHANGED_PIXEL_THRESHOLD
    assert metrics.region_metrics(edited, sources, truths)["changed_fraction"] == 2 / 16


def test_consistency_of_the_identity_model_is_perfect():
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    aus = rng.uniform(0, 1, (3, 17)).astype(np.float32)
    critic = lambda x: np.full((len(x), 17), 0.5, np.float32)
    scores = metrics.consistency_metrics(IdentityEdit(16), images, aus, 1.0 - aus, critic)
    assert scores["cycle_l1"] == 0.0
    assert scores["critic_aus_mae_on_edits"] == pytest.approx(np.abs(0.5 - (1.0 - aus)).mean(), rel=1e-6)
    assert "self-consistency" in scores["critic_aus_note"]
