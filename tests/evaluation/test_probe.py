import dataclasses
import os

import numpy as np
import pytest

from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.data import pipeline
from tf_ganimation.evaluation import probe as probe_lib
from tf_ganimation.evaluation import synthetic_edits
from tf_ganimation.model import networks
from tf_ganimation.model.edit_model import EditModel, KerasEditModel
from tf_ganimation.synthetic import synthetic_dataset

from conftest import TINY_MODEL


class IdentityEdit(EditModel):
    """Returns the input unchanged, attention 1 everywhere: the identity baseline as a model."""

    image_size, kind, source = 32, "identity", "identity"

    def _edit(self, images, aus):
        return {"images": images, "attention": np.ones(images.shape[:3] + (1,), np.float32), "color": images}


def test_training_probe_scores_like_synthetic_metrics(tmp_path_factory, tmp_path):
    data_dir = tmp_path_factory.mktemp("faces")
    synthetic_dataset.make_dataset(os.fspath(data_dir), num_images=30, image_size=32, seed=1, progress=False)
    identities = synthetic_dataset.load_identities(os.fspath(data_dir))
    config = Config(model=TINY_MODEL, data=DataConfig(data_dir=os.fspath(data_dir), image_size=32))
    probe = probe_lib.training_probe(config, max_images=3, num_targets=2)
    assert len(probe.edits.targets) == 6
    scores = probe.score(IdentityEdit())
    assert scores["l1_ratio_to_baseline"] == pytest.approx(1.0)
    assert scores["changed_region_l1_ratio"] == pytest.approx(1.0) and scores["same_aus_l1"] == 0.0
    assert scores["attention_mean"] == 1.0
    generator = networks.build_generator(TINY_MODEL)
    samples = pipeline.fixed_samples(config.data, 3, split="test")
    full = synthetic_edits.synthetic_metrics(KerasEditModel(generator, 32), identities, list(samples["id"]),
                                             samples["real_aus"], 32, num_targets=2)
    scores = probe(generator)
    assert scores["l1_ratio_to_baseline"] == pytest.approx(full["l1_ratio_to_baseline"], rel=1e-5)
    assert scores["kept_region_l1"] == pytest.approx(full["regions"]["kept"]["edit_l1"], rel=1e-5)
    # Not a synthetic dataset (no identities.json): no true edits, no probe.
    assert probe_lib.training_probe(dataclasses.replace(config, data=dataclasses.replace(
        config.data, data_dir=os.fspath(tmp_path)))) is None
