import os

import numpy as np
import pytest

from tf_ganimation.core import pixels
from tf_ganimation.evaluation import synthetic_edits
from tf_ganimation.model import networks
from tf_ganimation.model.edit_model import EditModel
from tf_ganimation.synthetic import renderer, synthetic_dataset

from conftest import TINY_MODEL


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("faces")
    synthetic_dataset.make_dataset(os.fspath(data_dir), num_images=30, image_size=32, seed=1, progress=False)
    identities = synthetic_dataset.load_identities(os.fspath(data_dir))
    ids = sorted(identities)[:4]
    rng = np.random.default_rng(0)
    source_aus = np.stack([synthetic_dataset.sample_aus(rng) for _ in ids])
    return data_dir, identities, ids, source_aus


class IdentityEdit(EditModel):
    """Returns the input unchanged, attention 1 everywhere: the identity baseline as a model."""

    image_size, kind, source = 32, "identity", "identity"

    def _edit(self, images, aus):
        return {"images": images, "attention": np.ones(images.shape[:3] + (1,), np.float32), "color": images}


def test_render_edits_gives_model_inputs_in_the_unit_range_and_truths_on_255(faces):
    _, identities, ids, source_aus = faces
    edits = synthetic_edits.render_edits(identities, ids[:2], source_aus[:2], 32, num_targets=3)
    assert edits.sources.shape == edits.truths.shape == (6, 32, 32, 3)
    assert edits.sources.dtype == edits.truths.dtype == edits.targets.dtype == np.float32
    np.testing.assert_array_equal(edits.sources[3], pixels.uint8_to_unit(renderer.render_face(identities[ids[1]],
                                                                                              source_aus[1], 32)))
    np.testing.assert_array_equal(edits.truths[3], renderer.render_face(identities[ids[1]], edits.targets[3], 32))
    np.testing.assert_array_equal(edits.source_aus[3], source_aus[1])
    assert 0.0 <= edits.sources.min() and edits.sources.max() <= 1.0 and edits.truths.max() > 1.0


def test_true_rendering_is_the_face_rendered_with_the_target_aus(faces):
    _, identities, ids, source_aus = faces
    truth = synthetic_edits.TrueRendering(identities[ids[0]], 32)
    targets = np.stack([source_aus[1], source_aus[2]])
    outputs = truth(np.zeros((2, 32, 32, 3), np.float32), targets)  # the input image is ignored
    expected = pixels.uint8_to_unit(np.stack([renderer.render_face(identities[ids[0]], aus, 32) for aus in targets]))
    np.testing.assert_array_equal(outputs["images"], expected)
    np.testing.assert_array_equal(outputs["color"], expected)
    np.testing.assert_array_equal(outputs["attention"], 0.0)
    assert outputs["attention"].shape == (2, 32, 32, 1)


def test_identity_model_scores_exactly_the_baseline(faces):
    _, identities, ids, source_aus = faces
    metrics = synthetic_edits.synthetic_metrics(IdentityEdit(), identities, ids, source_aus, 32, num_targets=3)
    assert metrics["edit"] == metrics["identity_baseline"]
    assert metrics["l1_ratio_to_baseline"] == pytest.approx(1.0)
    assert metrics["identity_baseline"]["l1"] > 0.5  # the targets really change the faces
    assert metrics["same_aus"]["l1"] == 0.0 and metrics["same_aus"]["psnr"] == 100.0
    assert metrics["attention"]["fraction_above_0.95"] == 1.0
    assert metrics["num_edits"] == 12
    regions = metrics["regions"]
    assert regions["changed"]["l1_ratio_to_baseline"] == pytest.approx(1.0)
    assert regions["kept"]["edit_l1"] == regions["kept"]["baseline_l1"] < 1.0
    assert 0.0 < regions["changed_fraction"] < 0.5  # AUs move the face's features, not the whole image


def test_an_oracle_that_renders_the_truth_scores_zero_error(faces):
    _, identities, ids, source_aus = faces
    # The oracle recognises each source face by its pixels and renders it with the target AUs.
    by_pixels = {renderer.render_face(identities[i], aus, 32).tobytes(): identities[i]
                 for i, aus in zip(ids, source_aus)}

    class Oracle(EditModel):
        image_size, kind, source = 32, "oracle", "oracle"

        def _edit(self, images, aus):
            truth = pixels.uint8_to_unit(np.stack([renderer.render_face(by_pixels[p.tobytes()], a, 32)
                                                   for p, a in zip(pixels.unit_to_uint8(images), aus)]))
            return {"images": truth, "attention": np.zeros(images.shape[:3] + (1,), np.float32), "color": truth}

    metrics = synthetic_edits.synthetic_metrics(Oracle(), identities, ids, source_aus, 32, num_targets=2)
    assert metrics["edit"]["l1"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["edit"]["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["l1_ratio_to_baseline"] < 1e-4
    assert metrics["regions"]["changed"]["edit_l1"] < 1e-4 and metrics["regions"]["kept"]["edit_l1"] < 1e-4
    assert metrics["attention"]["fraction_below_0.05"] == 1.0


def test_gradient_alignment_of_hand_made_gradients(faces):
    _, identities, ids, source_aus = faces

    def true_direction(images, index, sign=1.0):
        """A gradient equal to (a multiple of) render(AU = 1) - render(face): the ideal AU head's."""
        directions = []
        for image in images:
            image_id, aus = next((i, a) for i, a in zip(ids, source_aus)
                                 if np.array_equal(renderer.render_face(identities[i], a, 32),
                                                   np.round((image + 1) * 127.5)))
            raised = aus.copy()
            raised[index] = 1.0
            directions.append(renderer.render_face(identities[image_id], raised, 32) - (image + 1) * 127.5)
        return sign * 0.01 * np.stack(directions)

    aligned = synthetic_edits.au_gradient_alignment(true_direction, identities, ids, source_aus, 32)
    assert set(aligned) == set(synthetic_edits.ALIGNMENT_AUS) | {"mean"}
    assert all(value == pytest.approx(1.0) for value in aligned.values())
    opposed = synthetic_edits.au_gradient_alignment(lambda x, k: true_direction(x, k, -1.0), identities, ids,
                                                    source_aus, 32)
    assert opposed["mean"] == pytest.approx(-1.0)
    noise = lambda images, index: np.random.default_rng(index).standard_normal(images.shape)
    assert abs(synthetic_edits.au_gradient_alignment(noise, identities, ids, source_aus, 32)["mean"]) < 0.1


def test_critic_gradient_matches_a_finite_difference():
    critic = networks.build_critic(TINY_MODEL)
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    step = 1e-2 * rng.standard_normal(images.shape).astype(np.float32)
    gradient = synthetic_edits.critic_gradient(critic)(images, 12)
    assert gradient.shape == images.shape
    reading = lambda x: critic(x)["aus"].numpy()[:, 12].astype(np.float64)
    finite_difference = (reading(images + step) - reading(images - step)) / 2
    np.testing.assert_allclose(np.sum(gradient * step, axis=(1, 2, 3)), finite_difference, rtol=0.05, atol=1e-5)
